//! Notify, delivery: drains the durable outbox — claims due items with a lease, sends each
//! (email or webhook), records it as sent, or schedules a retry with exponential backoff and
//! jitter (honouring `Retry-After`), dead-letters it once the attempt budget is spent, and
//! suspends a target that keeps failing. Delivery is at-least-once: an item is recorded as
//! sent only after the send succeeded, and never sent again once recorded. Every change to
//! an item is conditional on the claim this process holds; the claim is verified and
//! extended just before each send and renewed while the send goes on, so a sender whose
//! lease ran out does not send what another replica now holds. Each target receives its
//! items in queue order: the store hands out only the head of each target's queue.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use lettre::address::Envelope;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::{DeliverySettings, Settings};
use crate::notify::email::Mailer;
use crate::notify::webhook::WebhookClient;
use crate::store::{Claim, OutboxItem, Store};

/// What one drain of the outbox did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DeliveryReport {
    pub sent: u64,
    pub retrying: u64,
    pub dead: u64,
    /// Items put back without spending an attempt because their channel was down (the SMTP
    /// relay unreachable): no recipient is charged with the channel's failure.
    pub deferred: u64,
    /// Items not sent because their claim was lost before the send (another replica took
    /// them over after the lease ran out).
    pub lost_claims: u64,
    /// Targets suspended during this drain.
    pub suspended: Vec<String>,
    /// Failed attempts (retrying or dead) by channel.
    pub failures: std::collections::BTreeMap<String, u64>,
}

/// Why one send failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    /// Whether trying again later can help (a 4xx other than 408/429, a 5xx SMTP reply or a
    /// malformed item cannot).
    pub retryable: bool,
    /// When the receiver asked to be retried (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
    /// The channel failed, not this item or its target ([`crate::notify::email::SendError::channel_down`]).
    pub channel_down: bool,
}

/// The delay before the attempt after `attempts` failed ones: `delivery.retry_base_secs`
/// (1 min), doubled at each failure, capped at `delivery.retry_max_secs` (6 h), ±20 % jitter
/// so that many items failing together do not retry together.
pub fn backoff(attempts: i64, d: &DeliverySettings) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let base = d.retry_base.as_millis() as i64;
    let max = d.retry_max.as_millis() as i64;
    let delay = base.saturating_mul(1i64 << exp.min(30)).min(max);
    let jitter = (fastrand::f64() * 0.4 - 0.2) * delay as f64;
    Duration::milliseconds(delay + jitter as i64)
}

/// The channels an item can go out on.
pub struct Channels {
    pub mailer: Mailer,
    pub webhooks: WebhookClient,
}

impl Channels {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Channels> {
        Ok(Channels {
            mailer: Mailer::from_settings(&settings.email)?,
            webhooks: WebhookClient::new(settings.delivery.webhook_timeout)
                .map_err(anyhow::Error::msg)?,
        })
    }
}

/// Sends one item, without recording anything.
pub async fn send_item(
    channels: &Channels,
    settings: &Settings,
    item: &OutboxItem,
) -> Result<(), Failure> {
    let permanent = |message: String| Failure {
        message,
        retryable: false,
        retry_after: None,
        channel_down: false,
    };
    match item.channel.as_str() {
        "email" => {
            let to: lettre::Address = item
                .target
                .parse()
                .map_err(|e| permanent(format!("bad recipient {}: {e}", item.target)))?;
            let envelope = Envelope::new(Some(settings.email.from.email.clone()), vec![to])
                .map_err(|e| permanent(e.to_string()))?;
            channels.mailer.send(&envelope, item.payload.as_bytes()).await.map_err(|e| Failure {
                message: e.to_string(),
                retryable: e.retryable(),
                retry_after: None,
                channel_down: e.channel_down(),
            })
        }
        "webhook" => {
            let Some(endpoint) = settings.webhooks.iter().find(|w| w.url.as_str() == item.target)
            else {
                return Err(permanent(format!(
                    "{} is no longer a configured webhook",
                    item.target
                )));
            };
            let id = item.message_id.as_deref().unwrap_or(&item.idempotency_key);
            // The signature's timestamp is the real send time, whatever the injected clock
            // says: receivers check it against their own clocks to refuse replays.
            let sent_at = Utc::now();
            // Each endpoint is its own server: its failures are its own.
            channels.webhooks.post(endpoint, id, &item.payload, sent_at).await.map_err(|e| {
                Failure {
                    message: e.message,
                    retryable: e.retryable,
                    retry_after: e.retry_after,
                    channel_down: false,
                }
            })
        }
        other => Err(permanent(format!("no channel `{other}`"))),
    }
}

/// What happened to one item.
enum Outcome {
    Sent,
    Retrying,
    Dead,
    /// Put back unsent: its target was suspended meanwhile.
    Released,
    /// Not sent: the claim was lost before the send.
    Lost,
    /// Put back without spending an attempt: its channel is down.
    Deferred,
}

/// The health row of the email channel itself (beside each target's).
pub const EMAIL_CHANNEL: &str = "channel:email";

/// State shared by the concurrent sends of one drain.
struct Drain<'a, S> {
    store: &'a S,
    settings: &'a Settings,
    channels: &'a Channels,
    clock: &'a dyn Clock,
    /// How long a claim lasts from its last renewal.
    lease: Duration,
    /// Targets suspended during this drain, and until when: a std Mutex, never held across
    /// an await.
    suspended: std::sync::Mutex<HashMap<String, DateTime<Utc>>>,
    /// Until when the email channel is down, once a send found it so in this drain: set once,
    /// by the first send that failed, so a drain counts one failure of the channel.
    email_down: tokio::sync::OnceCell<DateTime<Utc>>,
}

impl<S: Store> Drain<'_, S> {
    fn suspended_until(&self, target: &str) -> Option<DateTime<Utc>> {
        self.suspended.lock().expect("not poisoned").get(target).copied()
    }

    async fn process(&self, item: OutboxItem) -> anyhow::Result<(Outcome, String, Option<String>)> {
        let channel = item.channel.clone();
        let (outcome, suspended) = self.attempt(item).await?;
        Ok((outcome, channel, suspended))
    }

    /// Runs `send` while renewing `claim` every third of the lease, so a slow send keeps
    /// its item; a renewal refused (the claim was lost meanwhile) is logged.
    async fn renewing<T>(
        &self,
        item: &OutboxItem,
        claim: &Claim,
        send: impl std::future::Future<Output = T>,
    ) -> anyhow::Result<T> {
        tokio::pin!(send);
        let every = (self.lease / 3).to_std().unwrap_or(std::time::Duration::from_secs(1));
        let mut renew = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
        renew.tick().await;
        loop {
            tokio::select! {
                done = &mut send => return Ok(done),
                _ = renew.tick() => {
                    let now = self.clock.now();
                    if !self.store.renew_claim(item.id, claim, now, now + self.lease).await? {
                        tracing::warn!(key = %item.idempotency_key, "the claim was lost during the send");
                    }
                }
            }
        }
    }

    async fn attempt(&self, item: OutboxItem) -> anyhow::Result<(Outcome, Option<String>)> {
        let (store, d) = (self.store, &self.settings.delivery);
        let claim = item.claim();
        if let Some(until) = self.suspended_until(&item.target) {
            // Claimed before its target was suspended: put it back, attempt unspent.
            store.release(item.id, &claim, until).await?;
            return Ok((Outcome::Released, None));
        }
        if let (Some(&until), "email") = (self.email_down.get(), item.channel.as_str()) {
            store.release(item.id, &claim, until).await?;
            return Ok((Outcome::Deferred, None));
        }
        let now = self.clock.now();
        // Verified and extended just before the send: items of a batch wait their turn, and
        // one whose lease ran out meanwhile may be another replica's now.
        if !store.renew_claim(item.id, &claim, now, now + self.lease).await? {
            tracing::warn!(key = %item.idempotency_key, target_ = %item.target,
                "the claim ran out before the send; the item is left to whoever holds it now");
            return Ok((Outcome::Lost, None));
        }
        let sent =
            self.renewing(&item, &claim, send_item(self.channels, self.settings, &item)).await?;
        let f = match sent {
            Ok(()) => {
                if !store.mark_sent(item.id, &claim, self.clock.now()).await? {
                    tracing::warn!(key = %item.idempotency_key, target_ = %item.target,
                        "sent, but the claim was lost during the send: another replica may send it again");
                }
                store.record_endpoint(&item.target, None, now).await?;
                if item.channel == "email" {
                    store.record_endpoint(EMAIL_CHANNEL, None, now).await?;
                }
                return Ok((Outcome::Sent, None));
            }
            Err(f) => f,
        };
        if f.channel_down {
            // The relay, not the recipient: back the channel off (1 min, 2, 4 … 6 h as its
            // failures add up) and put the item back with its attempt unspent.
            // One failure of the channel per drain, however many sends found it down.
            let until = *self
                .email_down
                .get_or_try_init(|| async {
                    let health =
                        store.record_endpoint(EMAIL_CHANNEL, Some(&f.message), now).await?;
                    anyhow::Ok(now + backoff(health.consecutive_failures, d))
                })
                .await?;
            store.release(item.id, &claim, until).await?;
            tracing::warn!(target_ = %item.target, error = %f.message, %until,
                "the email channel is down; digests wait for it without spending attempts");
            return Ok((Outcome::Deferred, None));
        }
        let health = store.record_endpoint(&item.target, Some(&f.message), now).await?;
        let mut retry_at = now + backoff(item.attempts, d);
        if let Some(after) = f.retry_after.and_then(|a| Duration::from_std(a).ok()) {
            retry_at = retry_at.max(now + after);
        }
        let mut newly_suspended = None;
        if health.consecutive_failures >= d.suspend_after_failures as i64
            && self.suspended_until(&item.target).is_none()
        {
            let until = now + Duration::from_std(d.suspend_for).unwrap_or(Duration::hours(1));
            store.suspend_endpoint(&item.target, until).await?;
            tracing::error!(target_ = %item.target, failures = health.consecutive_failures, %until, error = %f.message,
                "delivery target suspended after repeated failures; check it, its items wait");
            self.suspended.lock().expect("not poisoned").insert(item.target.clone(), until);
            newly_suspended = Some(item.target.clone());
            retry_at = retry_at.max(until);
        }
        let dead = !f.retryable || item.attempts >= d.max_attempts as i64;
        if !store.mark_failed(item.id, &claim, &f.message, (!dead).then_some(retry_at), now).await?
        {
            tracing::warn!(key = %item.idempotency_key, "the claim was lost during the failed send");
            return Ok((Outcome::Lost, newly_suspended));
        }
        if dead {
            tracing::error!(channel = %item.channel, target_ = %item.target, key = %item.idempotency_key,
                attempts = item.attempts, error = %f.message, "notification dead-lettered");
            Ok((Outcome::Dead, newly_suspended))
        } else {
            tracing::warn!(channel = %item.channel, target_ = %item.target, key = %item.idempotency_key,
                error = %f.message, %retry_at, "delivery failed; will retry");
            Ok((Outcome::Retrying, newly_suspended))
        }
    }
}

/// Delivers every due item once, `delivery.concurrency` at a time (a slot claims the next
/// item as soon as it is free); failing items are left for a later drain.
pub async fn deliver<S: Store>(
    store: &S,
    settings: &Settings,
    channels: &Channels,
    clock: &dyn Clock,
) -> anyhow::Result<DeliveryReport> {
    use futures_util::StreamExt;

    let lease = Duration::from_std(settings.delivery.lease).unwrap_or(Duration::minutes(5));
    let drain = Drain {
        store,
        settings,
        channels,
        clock,
        lease,
        suspended: Default::default(),
        email_down: Default::default(),
    };
    let mut report = DeliveryReport::default();
    let mut seen = HashSet::new();
    let concurrency = settings.delivery.concurrency.max(1);
    let claimer = crate::replica_id();
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    // Whether a claim may find more: after an empty one, only once a send has finished
    // (which may make the next item of its target the head of its queue).
    let mut more = true;
    // Targets take turns: each claim starts after the last target claimed.
    let mut after = String::new();
    loop {
        // Free slots are filled as soon as they free up, so one slow target never holds the
        // others; each item is claimed just before it goes out, never left waiting in a
        // queue until its lease runs out.
        if more && in_flight.len() < concurrency {
            let now = clock.now();
            let free = (concurrency - in_flight.len()) as u32;
            let items = store.claim_due(now, now + lease, free, &claimer, &after).await?;
            more = !items.is_empty();
            if let Some(last) = items.last() {
                after = last.target.clone();
            }
            for item in items {
                if seen.insert(item.id) {
                    in_flight.push(drain.process(item));
                } else {
                    // Tried once in this drain already (due again at once): the next drain's.
                    store.release(item.id, &item.claim(), now).await?;
                    more = false;
                }
            }
            if more && in_flight.len() < concurrency {
                continue;
            }
        }
        let Some(result) = in_flight.next().await else { break };
        more = true;
        let (outcome, channel, suspended) = result?;
        match outcome {
            Outcome::Sent => report.sent += 1,
            Outcome::Retrying => report.retrying += 1,
            Outcome::Dead => report.dead += 1,
            Outcome::Released => {}
            Outcome::Lost => report.lost_claims += 1,
            Outcome::Deferred => report.deferred += 1,
        }
        if matches!(outcome, Outcome::Retrying | Outcome::Dead) {
            *report.failures.entry(channel).or_default() += 1;
        }
        report.suspended.extend(suspended);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let mut d = Settings::defaults().delivery;
        for attempts in 1..=12 {
            let expected = (60i64 << (attempts - 1)).min(6 * 3600) as f64;
            let got = backoff(attempts, &d).num_seconds() as f64;
            assert!(got >= expected * 0.79 && got <= expected * 1.21, "{attempts}: {got}");
        }
        assert!(backoff(40, &d).num_seconds() <= (6 * 3600) * 121 / 100);
        // Configured: 1 s, 2, 4, then 5 at most.
        d.retry_base = std::time::Duration::from_secs(1);
        d.retry_max = std::time::Duration::from_secs(5);
        for (attempts, expected) in [(1, 1000), (2, 2000), (3, 4000), (4, 5000), (30, 5000)] {
            let got = backoff(attempts, &d).num_milliseconds() as f64;
            assert!(got >= expected as f64 * 0.79 && got <= expected as f64 * 1.21, "{got}");
        }
    }
}
