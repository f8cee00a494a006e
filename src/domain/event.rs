//! Webhook events: what happened to a finding or a sync, as JSON `{type, timestamp, data}`
//! with an id derived from the fact. The findings stage and the jobs create them; notify
//! signs and sends them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Every event type a webhook endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 7] = [
    "finding.opened",
    "finding.escalated",
    "finding.resolved",
    "finding.acknowledged",
    "finding.reopened",
    "sync.completed",
    "sync.failed",
];

/// One event, before it is queued for each endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The `webhook-id`: derived from what happened, so the same fact always has the same
    /// id, on every retry and even if it were queued twice.
    #[serde(skip)]
    pub id: String,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl Event {
    /// An event whose id is a digest of `identity` (what makes the fact unique).
    pub fn new(
        type_: &'static str,
        identity: &str,
        timestamp: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Event {
        let h = Sha256::digest(format!("{type_}\n{identity}").as_bytes());
        Event { id: format!("msg_{}", &hex::encode(h)[..32]), type_, timestamp, data }
    }

    /// Whether an endpoint subscribed to `events` receives this event (an endpoint with no
    /// `events` list receives all).
    pub fn is_for(&self, events: &[String]) -> bool {
        events.is_empty() || events.iter().any(|e| e == self.type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_whatever_the_data() {
        let now = Utc::now();
        let a = Event::new("finding.opened", "CO1|closable|", now, serde_json::json!({}));
        let b = Event::new("finding.opened", "CO1|closable|", now, serde_json::json!({"x": 1}));
        assert_eq!(a.id, b.id);
        assert!(a.is_for(&[]) && a.is_for(&["finding.opened".into()]));
        assert!(!a.is_for(&["sync.failed".into()]));
    }
}
