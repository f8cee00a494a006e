//! Notify, webhook channel: the events queued in the outbox (see [`crate::domain::event`])
//! POSTed signed per the Standard Webhooks spec (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256>`).

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::{Webhook, decode_secret};

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Why a POST failed: whether a retry can help, and when the endpoint asked to be retried.
#[derive(Debug, Clone, PartialEq)]
pub struct PostError {
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

/// Posts signed events. Redirects are never followed: a signed payload goes only to the
/// URL the administrator configured.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    client: reqwest::Client,
}

impl WebhookClient {
    pub fn new(timeout: Duration) -> Result<WebhookClient, String> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cierre/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(WebhookClient { client })
    }

    /// POSTs `body` to the endpoint, signed with its secret at `now`.
    pub async fn post(
        &self,
        endpoint: &Webhook,
        id: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<(), PostError> {
        let key = decode_secret(endpoint.secret.expose_secret()).ok_or_else(|| PostError {
            message: "the endpoint's secret is not a whsec_ secret".into(),
            retryable: false,
            retry_after: None,
        })?;
        let ts = now.timestamp();
        let response = self
            .client
            .post(endpoint.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sign(&key, id, ts, body))
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| PostError {
                message: format!("POST {}: {}", endpoint.url, describe(&e)),
                retryable: true,
                retry_after: None,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        // 4xx means the request itself is refused: retrying the same request cannot help,
        // except 408 (timeout) and 429 (rate limit). 3xx is a redirect we will not follow.
        let retryable =
            status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        Err(PostError {
            message: format!("POST {}: HTTP {}", endpoint.url, status),
            retryable,
            retry_after,
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect ({e})")
    } else {
        e.to_string()
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?.with_timezone(&Utc);
    (at - now).to_std().ok()
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

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
