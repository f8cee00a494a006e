//! Notify, webhook channel: the event types consumers can subscribe to and the Standard
//! Webhooks secret format (`whsec_` + base64) endpoints are configured with.

use base64::Engine as _;

/// Every event type a webhook endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 5] =
    ["finding.opened", "finding.escalated", "finding.resolved", "sync.completed", "sync.failed"];

/// The signing key of a `whsec_…` secret, or `None` when it is not one.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whsec_base64_secrets_are_accepted() {
        assert_eq!(
            decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()),
            Some(24)
        );
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(decode_secret("whsec_!!!").is_none());
    }
}
