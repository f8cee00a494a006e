//! Silences, as the store keeps them and the CLI and API show them: an administrator's
//! matchers (Alertmanager's model) that keep the findings they match out of digests (and,
//! when asked, out of webhooks) from one day until another.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Kind;

/// A condition on a contract field, by its SODA name: equal (ignoring case and accents) or,
/// with `regex`, a regular expression that finds a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMatcher {
    pub field: String,
    pub value: String,
    #[serde(default)]
    pub regex: bool,
}

/// What a silence matches: every list given must hold (an empty list matches anything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatchers {
    #[serde(default)]
    pub kinds: Vec<Kind>,
    #[serde(default)]
    pub levels: Vec<String>,
    /// Office ids: the finding's contract is routed to one of them.
    #[serde(default)]
    pub offices: Vec<String>,
    #[serde(default)]
    pub fields: Vec<FieldMatcher>,
}

impl SilenceMatchers {
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
            && self.levels.is_empty()
            && self.offices.is_empty()
            && self.fields.is_empty()
    }
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSilence {
    pub matchers: SilenceMatchers,
    /// The first day it is in force.
    pub starts_on: NaiveDate,
    /// The first day it is no longer in force.
    pub ends_on: NaiveDate,
    /// Whether it also holds back the webhook events of the findings it matches.
    #[serde(default)]
    pub webhooks: bool,
    pub author: String,
    pub comment: String,
}

/// A silence as stored: never deleted; expiring one ends it early and says when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    pub id: i64,
    #[serde(flatten)]
    pub silence: NewSilence,
    pub created_at: DateTime<Utc>,
    pub expired_at: Option<DateTime<Utc>>,
}

impl Silence {
    /// Whether it is in force on `day`.
    pub fn active_on(&self, day: NaiveDate) -> bool {
        self.silence.starts_on <= day && day < self.silence.ends_on
    }
}
