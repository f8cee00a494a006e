//! Personal links (beneath notify and the web view): a token naming a digest recipient and
//! when it expires, signed with HMAC-SHA256 under `http.link_secret`, so an office head
//! opens "Mis hallazgos" from a digest without a password. Rotating the secret revokes every
//! link given out.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("not a link token")]
    Malformed,
    #[error("the link's signature does not match")]
    Forged,
    #[error("the link has expired")]
    Expired,
}

fn mac(secret: &[u8], purpose: &str, payload: &str) -> hmac::Hmac<Sha256> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.update(b"\n");
    mac.update(payload.as_bytes());
    mac
}

/// A token for `email` (compared in lower case) valid until `expires`.
pub fn sign(secret: &[u8], email: &str, expires: DateTime<Utc>) -> String {
    sign_as(secret, "link", &email.to_lowercase(), expires)
}

/// The recipient a token names, if it is signed with `secret` and not expired at `now`.
pub fn verify(secret: &[u8], token: &str, now: DateTime<Utc>) -> Result<String, LinkError> {
    verify_as(secret, "link", token, now)
}

/// A token naming `subject` for one `purpose` (a personal link, an admin session), valid
/// until `expires`: a token signed for one purpose is refused for any other.
pub fn sign_as(secret: &[u8], purpose: &str, subject: &str, expires: DateTime<Utc>) -> String {
    let payload = format!("1.{}.{}", expires.timestamp(), subject);
    let sig = mac(secret, purpose, &payload).finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(sig))
}

/// The subject of a token signed with `secret` for `purpose`, if it has not expired at `now`.
pub fn verify_as(
    secret: &[u8],
    purpose: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<String, LinkError> {
    let (payload, sig) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| LinkError::Malformed)?;
    let payload = String::from_utf8(payload).map_err(|_| LinkError::Malformed)?;
    mac(secret, purpose, &payload).verify_slice(&sig).map_err(|_| LinkError::Forged)?;
    let mut parts = payload.splitn(3, '.');
    let (Some("1"), Some(expires), Some(subject)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(LinkError::Malformed);
    };
    let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    if now.timestamp() >= expires {
        return Err(LinkError::Expired);
    }
    Ok(subject.to_string())
}

/// The form token of a session (CSRF): derived from its link token, so a page can only post
/// what was rendered for the same session, and checked in constant time.
pub fn form_token(secret: &[u8], session: &str) -> String {
    URL_SAFE_NO_PAD.encode(mac(secret, "form", session).finalize().into_bytes())
}

/// Whether `given` is the form token of `session`.
pub fn check_form_token(secret: &[u8], session: &str, given: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(given) {
        Ok(sig) => mac(secret, "form", session).verify_slice(&sig).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a secret of at least thirty-two bytes!!";

    #[test]
    fn a_link_names_its_recipient_until_it_expires_and_refuses_tampering() {
        let now = Utc::now();
        let token = sign(KEY, "Jefa@SENA.example", now + chrono::Duration::days(1));
        assert_eq!(verify(KEY, &token, now), Ok("jefa@sena.example".into()));
        assert_eq!(verify(KEY, &token, now + chrono::Duration::days(2)), Err(LinkError::Expired));
        assert_eq!(verify(b"another secret", &token, now), Err(LinkError::Forged));
        // Another recipient with the first one's signature.
        let other = sign(KEY, "otro@sena.example", now + chrono::Duration::days(1));
        let forged =
            format!("{}.{}", other.split_once('.').unwrap().0, token.split_once('.').unwrap().1);
        assert_eq!(verify(KEY, &forged, now), Err(LinkError::Forged));
        assert_eq!(verify(KEY, "nonsense", now), Err(LinkError::Malformed));
        // A token signed for another purpose (an admin session) is not a link.
        let admin = sign_as(KEY, "admin", "jefa@sena.example", now + chrono::Duration::days(1));
        assert_eq!(verify(KEY, &admin, now), Err(LinkError::Forged));
        assert_eq!(verify_as(KEY, "admin", &admin, now), Ok("jefa@sena.example".into()));
        let form = form_token(KEY, &token);
        assert!(check_form_token(KEY, &token, &form));
        assert!(!check_form_token(KEY, &other, &form));
        assert!(!check_form_token(KEY, &token, "x"));
    }
}
