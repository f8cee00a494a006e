//! Notify, delivery: drains the durable outbox — claims due items with a lease, sends each,
//! records it as sent, or schedules a retry with exponential backoff and jitter, and
//! dead-letters it once the attempt budget is spent. Delivery is at-least-once: an item is
//! recorded as sent only after the send succeeded, and never sent again once recorded.

use chrono::Duration;
use lettre::address::Envelope;
use serde::Serialize;

use crate::clock::Clock;
use crate::notify::email::Mailer;
use crate::store::{OutboxItem, Store};

/// How long a claim holds before another deliverer may take the item over.
const LEASE: Duration = Duration::minutes(5);
/// Items claimed per round.
const BATCH: u32 = 50;

/// What one drain of the outbox did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DeliveryReport {
    pub sent: u64,
    pub retrying: u64,
    pub dead: u64,
}

/// The delay before attempt `attempts + 1`: 1 min, 2, 4… capped at 6 h, ±20 % jitter so
/// that many items failing together do not retry together.
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    let base = 60i64.saturating_mul(1i64 << exp.min(12)).min(6 * 3600);
    let jitter = (fastrand::f64() * 0.4 - 0.2) * base as f64;
    Duration::seconds(base + jitter as i64)
}

/// Delivers every due item once; items failing are left for a later drain.
pub async fn deliver<S: Store>(
    store: &S,
    mailer: &Mailer,
    from: &lettre::Address,
    max_attempts: u32,
    clock: &dyn Clock,
) -> anyhow::Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let mut seen = std::collections::HashSet::new();
    loop {
        let now = clock.now();
        let items = store.claim_due(now, now + LEASE, BATCH).await?;
        // An item retried within this same drain (due again at once) is left for the next.
        let fresh: Vec<OutboxItem> = items.into_iter().filter(|i| seen.insert(i.id)).collect();
        if fresh.is_empty() {
            break;
        }
        for item in fresh {
            match send(mailer, from, &item).await {
                Ok(()) => {
                    store.mark_sent(item.id, clock.now()).await?;
                    report.sent += 1;
                }
                Err((message, retryable)) => {
                    let dead = !retryable || item.attempts >= max_attempts as i64;
                    let retry_at = (!dead).then(|| clock.now() + backoff(item.attempts));
                    store.mark_failed(item.id, &message, retry_at).await?;
                    if dead {
                        tracing::error!(target_ = %item.target, key = %item.idempotency_key, error = %message, "notification dead-lettered");
                        report.dead += 1;
                    } else {
                        tracing::warn!(target_ = %item.target, key = %item.idempotency_key, error = %message, ?retry_at, "delivery failed; will retry");
                        report.retrying += 1;
                    }
                }
            }
        }
    }
    Ok(report)
}

async fn send(
    mailer: &Mailer,
    from: &lettre::Address,
    item: &OutboxItem,
) -> Result<(), (String, bool)> {
    match item.channel.as_str() {
        "email" => {
            let to: lettre::Address = item
                .target
                .parse()
                .map_err(|e| (format!("bad recipient {}: {e}", item.target), false))?;
            let envelope =
                Envelope::new(Some(from.clone()), vec![to]).map_err(|e| (e.to_string(), false))?;
            mailer
                .send(&envelope, item.payload.as_bytes())
                .await
                .map_err(|e| (e.to_string(), e.retryable()))
        }
        other => Err((format!("no channel `{other}` in this version"), false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        for attempts in 1..=12 {
            let expected = (60i64 << (attempts - 1)).min(6 * 3600) as f64;
            let got = backoff(attempts).num_seconds() as f64;
            assert!(got >= expected * 0.79 && got <= expected * 1.21, "{attempts}: {got}");
        }
        assert!(backoff(40).num_seconds() <= (6 * 3600) * 121 / 100);
    }
}
