//! Rules: what the law makes of each stored contract as of a date. Each rule is one small
//! [`Rule`]; the engine runs them all, computes deadlines in business days and sets the
//! escalation level of every finding.

pub mod closable;
pub mod documents;
pub mod liquidation;
pub mod state;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::calendar::Calendar;
use crate::config::classify::Classifier;
use crate::config::{Level, RuleSettings, Settings};
use crate::domain::{Contract, Finding, Guarantee, Kind, Stage, fold};

/// A published document as the rules see it: its kind, already inferred by the classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentFact {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub uploaded_on: Option<NaiveDate>,
}

/// Everything the rules know about one contract: the contract, its published documents
/// (deduplicated by `id_documento`, those of its process included) and its guarantees.
/// What every rule would otherwise work out again from the contract's text (folding is the
/// costly part) is worked out once here.
#[derive(Debug, Clone)]
pub struct Dossier<'a> {
    pub contract: &'a Contract,
    pub documents: &'a [DocumentFact],
    pub guarantees: &'a [Guarantee],
    /// `estado_contrato`, classified.
    pub state: StateClass,
    /// `tipo_de_contrato`, folded (lower case, no accents).
    pub folded_type: String,
    /// `modalidad_de_contratacion`, folded.
    pub folded_modality: String,
    /// A services and support contract ([`closable::is_services`]).
    pub services: bool,
}

impl<'a> Dossier<'a> {
    pub fn new(
        contract: &'a Contract,
        documents: &'a [DocumentFact],
        guarantees: &'a [Guarantee],
    ) -> Dossier<'a> {
        Dossier {
            contract,
            documents,
            guarantees,
            state: StateClass::of(contract.state.as_deref()),
            folded_type: contract.contract_type.as_deref().map(fold).unwrap_or_default(),
            folded_modality: contract.modality.as_deref().map(fold).unwrap_or_default(),
            services: closable::is_services(contract),
        }
    }

    /// A contract with no documents and no guarantees.
    pub fn bare(contract: &'a Contract) -> Dossier<'a> {
        Dossier::new(contract, &[], &[])
    }

    /// The first published document of `kind` (the earliest upload; undated ones last).
    pub fn first_of(&self, kind: &str) -> Option<&'a DocumentFact> {
        self.documents
            .iter()
            .filter(|d| d.kind == kind)
            .min_by_key(|d| (d.uploaded_on.is_none(), d.uploaded_on))
    }
}

/// What a rule needs besides the contract.
pub struct RuleContext<'a> {
    pub as_of: NaiveDate,
    pub calendar: &'a Calendar,
    pub rules: &'a RuleSettings,
    /// For the Spanish labels of document kinds.
    pub classifier: &'a Classifier,
}

/// A rule's conclusion before the engine adds days left and level.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: Kind,
    pub stage: Option<Stage>,
    pub since: NaiveDate,
    pub deadline: NaiveDate,
    pub step: Option<String>,
    pub reasons: Vec<String>,
    pub missing: Vec<String>,
}

/// One rule: looks at one contract and what was published about it, concludes zero or more
/// findings.
pub trait Rule: Send + Sync {
    fn kind(&self) -> Kind;
    fn evaluate(&self, dossier: &Dossier, ctx: &RuleContext) -> Vec<Draft>;
}

/// The lifecycle state of a contract, from `estado_contrato`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateClass {
    /// Not signed yet: Borrador, En aprobación, Aprobado, enviado Proveedor.
    Draft,
    /// Signed and running: En ejecución, Modificado, cedido, Prorrogado.
    Executing,
    Suspended,
    /// `terminado`: execution over, file still open.
    Terminated,
    Closed,
    Cancelled,
    /// A value this version does not know: kept and reported, never guessed.
    Unknown,
}

impl StateClass {
    pub fn of(state: Option<&str>) -> StateClass {
        let Some(s) = state else { return StateClass::Unknown };
        match fold(s).as_str() {
            "borrador"
            | "en aprobacion"
            | "aprobado"
            | "enviado proveedor"
            | "enviado al proveedor" => StateClass::Draft,
            "en ejecucion" | "modificado" | "cedido" | "prorrogado" | "activo" | "firmado" => {
                StateClass::Executing
            }
            "suspendido" => StateClass::Suspended,
            "terminado" | "liquidado" => StateClass::Terminated,
            "cerrado" => StateClass::Closed,
            "cancelado" => StateClass::Cancelled,
            _ => StateClass::Unknown,
        }
    }

    /// Signed and not yet closed or cancelled.
    pub fn is_signed_open(self) -> bool {
        matches!(self, StateClass::Executing | StateClass::Suspended | StateClass::Terminated)
    }
}

/// Counts an evaluation reports besides the findings.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DataQuality {
    pub contracts: u64,
    /// `estado_contrato` values this version does not know, with how many contracts have each.
    pub unknown_states: BTreeMap<String, u64>,
    /// Contracts whose end date is before their signing date.
    pub end_before_signing: u64,
    /// Contracts with no end date.
    pub missing_end_date: u64,
    /// Contracts whose `dias_adicionados` is beyond ten years (taken as unknown).
    pub absurd_days_added: u64,
    /// Contracts whose pending amount is orders of magnitude beyond their value (unknown).
    pub absurd_pending_payment: u64,
}

/// All enabled rules, run over contracts as of a date.
pub struct Engine {
    rules: Vec<Box<dyn Rule>>,
    calendar: Calendar,
    rule_settings: RuleSettings,
    classifier: Classifier,
    levels: Vec<Level>,
}

impl Engine {
    pub fn new(settings: &Settings) -> Engine {
        let mut rules: Vec<Box<dyn Rule>> = Vec::new();
        if settings.rules.closable.enabled {
            rules.push(Box::new(closable::Closable));
        }
        if settings.rules.liquidation_due.enabled {
            rules.push(Box::new(liquidation::LiquidationDue));
        }
        if settings.rules.state_outdated.enabled {
            rules.push(Box::new(state::StateOutdated));
        }
        if settings.rules.missing_documents.enabled {
            rules.push(Box::new(documents::MissingDocuments));
        }
        Engine {
            rules,
            calendar: settings.calendar.clone(),
            rule_settings: settings.rules.clone(),
            classifier: settings.classifier.clone(),
            levels: settings.levels.clone(),
        }
    }

    /// The classifier the engine labels document kinds with.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The findings of one contract as of `as_of`, and its data-quality facts.
    pub fn evaluate(&self, d: &Dossier, as_of: NaiveDate, dq: &mut DataQuality) -> Vec<Finding> {
        let c = d.contract;
        dq.contracts += 1;
        if d.state == StateClass::Unknown {
            let name = c.state.clone().unwrap_or_else(|| "(vacío)".into());
            *dq.unknown_states.entry(name).or_default() += 1;
        }
        if let (Some(end), Some(signed)) = (c.ends_on, c.signed_on)
            && end < signed
        {
            dq.end_before_signing += 1;
        }
        if c.ends_on.is_none() {
            dq.missing_end_date += 1;
        }
        dq.absurd_days_added += u64::from(c.absurd_days_added());
        dq.absurd_pending_payment += u64::from(c.absurd_pending_payment());
        let ctx = RuleContext {
            as_of,
            calendar: &self.calendar,
            rules: &self.rule_settings,
            classifier: &self.classifier,
        };
        let docs = || d.documents.iter().map(|x| (x.id.as_str(), x.kind.as_str()));
        self.rules
            .iter()
            .flat_map(|r| r.evaluate(d, &ctx))
            .map(|d| {
                let left = self.calendar.business_days_between(as_of, d.deadline);
                let facts =
                    crate::domain::ack::facts(c.content_hash.as_deref(), docs(), d.step.as_deref());
                Finding {
                    contract_id: c.id.clone(),
                    kind: d.kind,
                    stage: d.stage,
                    since: d.since,
                    deadline: d.deadline,
                    business_days_left: left,
                    level: level_for(&self.levels, left).to_string(),
                    step: d.step,
                    reasons: d.reasons,
                    missing: d.missing,
                    facts,
                }
            })
            .collect()
    }
}

/// The level of a finding with `left` business days left: the most urgent level whose
/// threshold holds (`levels` sorted most urgent first), or `info` when none does.
pub fn level_for(levels: &[Level], left: i64) -> &str {
    levels
        .iter()
        .find(|l| left <= l.max_business_days_left)
        .map(|l| l.name.as_str())
        .unwrap_or("info")
}

/// How urgent a level is: 0 is the most urgent; `info` comes last.
pub fn urgency(levels: &[Level], level: &str) -> usize {
    levels.iter().position(|l| l.name == level).unwrap_or(levels.len())
}

/// What the rule tests share: dates from text and the default rule settings.
#[cfg(test)]
pub(crate) mod test_support {
    use chrono::NaiveDate;

    use super::DocumentFact;
    use crate::config::RuleSettings;

    pub fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// The built-in defaults (as an empty `daemon.toml` leaves them).
    pub fn default_settings() -> RuleSettings {
        crate::config::Settings::defaults().rules
    }

    /// A published document of `kind` uploaded on `day`.
    pub fn doc(id: &str, kind: &str, day: &str) -> DocumentFact {
        DocumentFact { id: id.into(), kind: kind.into(), name: None, uploaded_on: Some(date(day)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_classified_whatever_their_case_and_accents() {
        assert_eq!(StateClass::of(Some("En ejecución")), StateClass::Executing);
        assert_eq!(StateClass::of(Some("terminado")), StateClass::Terminated);
        assert_eq!(StateClass::of(Some("enviado Proveedor")), StateClass::Draft);
        assert_eq!(StateClass::of(Some("Cerrado")), StateClass::Closed);
        assert_eq!(StateClass::of(Some("Suspendido")), StateClass::Suspended);
        assert_eq!(StateClass::of(Some("En liquidación")), StateClass::Unknown);
    }
}
