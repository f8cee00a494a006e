//! Findings as every stage exchanges them: what the rules conclude about a contract, what
//! the store keeps, what digests, webhooks and the CLI show.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// What a finding says about a contract: one per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Closable,
    LiquidationDue,
    StateOutdated,
    MissingDocuments,
}

impl Kind {
    pub const ALL: [Kind; 4] =
        [Kind::Closable, Kind::LiquidationDue, Kind::StateOutdated, Kind::MissingDocuments];

    /// The name in the store, JSON, CSV and templates: `closable`, `liquidation_due`…
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Closable => "closable",
            Kind::LiquidationDue => "liquidation_due",
            Kind::StateOutdated => "state_outdated",
            Kind::MissingDocuments => "missing_documents",
        }
    }
}

/// The stages of a contract, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Precontractual,
    Contractual,
    Postcontractual,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Precontractual, Stage::Contractual, Stage::Postcontractual];

    /// The name in the store, JSON, CSV and `daemon.toml`: `precontractual`…
    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::Precontractual => "precontractual",
            Stage::Contractual => "contractual",
            Stage::Postcontractual => "postcontractual",
        }
    }
}

/// A name that is not one of a closed set's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a finding {what}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
}

macro_rules! names {
    ($t:ty, $what:literal) => {
        impl FromStr for $t {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName { what: $what, value: s.to_string() })
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(Kind, "kind");
names!(Stage, "stage");

/// Counts business days: what a finding needs of the calendar, which sits above the domain.
pub trait BusinessDays {
    /// Business days in (`from`, `to`]; negative when `to` is before `from`.
    fn business_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64;
}

/// A conclusion about one contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub contract_id: String,
    pub kind: Kind,
    pub stage: Option<Stage>,
    /// The day the condition became true.
    pub since: NaiveDate,
    pub deadline: NaiveDate,
    /// Business days from the evaluation date (or, read from the store, the date it is read
    /// for: [`Finding::count_days_from`]) to the deadline; negative when overdue.
    pub business_days_left: i64,
    /// The escalation level (`aviso`, `urgente`, `vencido`…), or `info` before any threshold.
    pub level: String,
    pub step: Option<String>,
    /// Why, in Spanish, citing the rule and the data.
    pub reasons: Vec<String>,
    /// Document kinds missing (for `missing_documents`).
    pub missing: Vec<String>,
    /// A fingerprint of the facts it was concluded from (set by the evaluation, see
    /// [`crate::domain::ack::facts`]): a dismissal holds while it stays the same.
    #[serde(skip)]
    pub facts: String,
}

impl Finding {
    /// Identity across evaluations: one open finding per contract, kind and stage.
    pub fn key(&self) -> (String, Kind, Option<Stage>) {
        (self.contract_id.clone(), self.kind, self.stage)
    }

    /// The stage as stored and shown: its name, or empty when the finding has none.
    pub fn stage_str(&self) -> &'static str {
        self.stage.as_ref().map(Stage::as_str).unwrap_or_default()
    }

    /// Counts the business days left as of `as_of`. The store keeps the count of the
    /// evaluation that last wrote the finding; a finding read for another day is recounted.
    pub fn count_days_from(&mut self, calendar: &impl BusinessDays, as_of: NaiveDate) {
        self.business_days_left = calendar.business_days_between(as_of, self.deadline);
    }

    /// The same conclusion, whatever day the business days left were counted from: an
    /// evaluation rewrites a stored finding only when this is false, not every day.
    pub fn same_apart_from_days_left(&self, other: &Finding) -> bool {
        let Finding {
            contract_id,
            kind,
            stage,
            since,
            deadline,
            business_days_left: _,
            level,
            step,
            reasons,
            missing,
            facts,
        } = self;
        *contract_id == other.contract_id
            && *kind == other.kind
            && *stage == other.stage
            && *since == other.since
            && *deadline == other.deadline
            && *level == other.level
            && *step == other.step
            && *reasons == other.reasons
            && *missing == other.missing
            && *facts == other.facts
    }
}

/// A finding as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    pub id: i64,
    pub opened_on: NaiveDate,
    pub finding: Finding,
    /// The office head's answer in force, if any.
    pub ack: Option<super::ack::AckInForce>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Finding {
        Finding {
            contract_id: "CO1.PCCNTR.1".into(),
            kind: Kind::Closable,
            stage: Some(Stage::Postcontractual),
            since: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            deadline: NaiveDate::from_ymd_opt(2026, 3, 16).unwrap(),
            business_days_left: 20,
            level: "aviso".into(),
            step: None,
            reasons: vec!["El plazo de ejecución terminó.".into()],
            missing: vec![],
            facts: String::new(),
        }
    }

    #[test]
    fn a_finding_counted_from_another_day_is_the_same_conclusion() {
        let later = Finding { business_days_left: 19, ..finding() };
        assert!(finding().same_apart_from_days_left(&later));
    }

    #[test]
    fn a_finding_with_other_reasons_level_or_deadline_is_not_the_same_conclusion() {
        let reasons = Finding { reasons: vec!["Otra razón.".into()], ..finding() };
        let level = Finding { level: "urgente".into(), ..finding() };
        let deadline =
            Finding { deadline: NaiveDate::from_ymd_opt(2026, 3, 17).unwrap(), ..finding() };
        for other in [reasons, level, deadline] {
            assert!(!finding().same_apart_from_days_left(&other), "{other:?}");
        }
    }

    #[test]
    fn kinds_and_stages_read_back_from_their_names_in_json_and_text() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("closed".parse::<Kind>().is_err());
        assert!("".parse::<Stage>().is_err());
    }
}
