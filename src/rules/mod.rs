//! Rules: what the law makes of each stored contract as of a date. Each rule is one small
//! [`Rule`]; the engine runs them all, computes deadlines in business days and sets the
//! escalation level of every finding.

pub mod closable;
pub mod documents;
pub mod liquidation;
pub mod state;

use std::cell::Cell;
use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use crate::calendar::Calendar;
use crate::config::classify::Classifier;
use crate::config::{Level, RuleSettings, Settings};
pub use crate::domain::Quality;
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

/// The date the rules are evaluated as of, and the first later date on which one of the
/// comparisons the rules made with it would come out otherwise. Until that date, on the same
/// data, the rules take the same path and conclude the same: an incremental evaluation need
/// not look at the contract again before it. Every use of the date goes through here.
#[derive(Debug)]
pub struct AsOf {
    date: NaiveDate,
    next: Cell<Option<NaiveDate>>,
}

impl AsOf {
    pub fn new(date: NaiveDate) -> AsOf {
        AsOf { date, next: Cell::new(None) }
    }

    /// The date itself, for what only names it (never to compare with it: see [`reached`],
    /// [`passed`], [`as_value`]).
    ///
    /// [`reached`]: AsOf::reached
    /// [`passed`]: AsOf::passed
    /// [`as_value`]: AsOf::as_value
    pub fn date(&self) -> NaiveDate {
        self.date
    }

    /// Whether `day` has come (`day <= as_of`); when not, it is when this changes.
    pub fn reached(&self, day: NaiveDate) -> bool {
        let reached = day <= self.date;
        if !reached {
            self.changes_on(day);
        }
        reached
    }

    /// Whether `day` is over (`day < as_of`); when not, the day after it is when this changes.
    pub fn passed(&self, day: NaiveDate) -> bool {
        let passed = day < self.date;
        if !passed && let Some(after) = day.checked_add_days(Days::new(1)) {
            self.changes_on(after);
        }
        passed
    }

    /// The date taken as a value (a start that is "today"): what is concluded from it changes
    /// every day.
    pub fn as_value(&self) -> NaiveDate {
        if let Some(tomorrow) = self.date.checked_add_days(Days::new(1)) {
            self.changes_on(tomorrow);
        }
        self.date
    }

    /// Something concluded as of the date changes on `day` (ignored unless later).
    pub fn changes_on(&self, day: NaiveDate) {
        if day > self.date && self.next.get().is_none_or(|n| day < n) {
            self.next.set(Some(day));
        }
    }

    /// The first later date on which anything concluded so far may change; `None`: never, on
    /// the same data.
    pub fn next_change(&self) -> Option<NaiveDate> {
        self.next.get()
    }
}

/// What a rule needs besides the contract.
pub struct RuleContext<'a> {
    pub as_of: &'a AsOf,
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

    /// The findings of one contract as of `as_of`, what its data says of its quality, and
    /// the first later date on which they may change ([`Outcome::next_change`]).
    pub fn evaluate(&self, d: &Dossier, as_of: &AsOf) -> Outcome {
        let c = d.contract;
        let quality = Quality::of(d);
        let ctx = RuleContext {
            as_of,
            calendar: &self.calendar,
            rules: &self.rule_settings,
            classifier: &self.classifier,
        };
        let day = as_of.date();
        let docs = || d.documents.iter().map(|x| (x.id.as_str(), x.kind.as_str()));
        let findings = self
            .rules
            .iter()
            .flat_map(|r| r.evaluate(d, &ctx))
            .map(|d| {
                let left = self.calendar.business_days_between(day, d.deadline);
                if let Some(on) = level_changes_on(&self.levels, &self.calendar, day, left) {
                    as_of.changes_on(on);
                }
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
            .collect();
        Outcome { findings, quality, next_change: as_of.next_change() }
    }
}

/// What the engine concluded of one contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub quality: Quality,
    /// The first later date on which the findings or their levels may change on the same
    /// data (a grace period ends, a liquidation step, a guarantee expires, a stage starts, a
    /// level threshold is crossed…); `None`: never.
    pub next_change: Option<NaiveDate>,
}

impl Quality {
    /// What the contract of `d` says of its quality.
    pub fn of(d: &Dossier) -> Quality {
        let c = d.contract;
        let unknown_state = (d.state == StateClass::Unknown)
            .then(|| c.state.clone().unwrap_or_else(|| "(vacío)".into()));
        let mut flags = 0;
        if let (Some(end), Some(signed)) = (c.ends_on, c.signed_on)
            && end < signed
        {
            flags |= Quality::END_BEFORE_SIGNING;
        }
        if c.ends_on.is_none() {
            flags |= Quality::MISSING_END_DATE;
        }
        if c.absurd_days_added() {
            flags |= Quality::ABSURD_DAYS_ADDED;
        }
        if c.absurd_pending_payment() {
            flags |= Quality::ABSURD_PENDING_PAYMENT;
        }
        Quality { unknown_state, flags }
    }
}

impl DataQuality {
    /// Counts `n` contracts of quality `q`.
    pub fn add(&mut self, q: &Quality, n: u64) {
        self.contracts += n;
        if let Some(state) = &q.unknown_state {
            *self.unknown_states.entry(state.clone()).or_default() += n;
        }
        let count = |flag: u8| if q.flags & flag != 0 { n } else { 0 };
        self.end_before_signing += count(Quality::END_BEFORE_SIGNING);
        self.missing_end_date += count(Quality::MISSING_END_DATE);
        self.absurd_days_added += count(Quality::ABSURD_DAYS_ADDED);
        self.absurd_pending_payment += count(Quality::ABSURD_PENDING_PAYMENT);
    }
}

/// The first date after `as_of` on which a finding with `left` business days left as of
/// `as_of` changes level; `None` when it already has the most urgent one. Days left drop by
/// one on each business day, so the level changes on the business day that brings them down
/// to the threshold of the nearest more urgent level.
pub fn level_changes_on(
    levels: &[Level],
    calendar: &Calendar,
    as_of: NaiveDate,
    left: i64,
) -> Option<NaiveDate> {
    let current = urgency(levels, level_for(levels, left));
    let threshold = levels[..current].iter().map(|l| l.max_business_days_left).max()?;
    Some(calendar.add_business_days(as_of, left - threshold))
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
    use crate::domain::Flag;
    use proptest::prelude::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(n)
    }

    /// A contract, its documents and guarantees, with dates spread over two years.
    fn any_dossier() -> impl Strategy<Value = (Contract, Vec<DocumentFact>, Vec<Guarantee>)> {
        let states = prop::sample::select(vec![
            "En ejecución",
            "terminado",
            "Modificado",
            "Suspendido",
            "Cerrado",
            "Borrador",
            "En liquidación",
        ]);
        let types = prop::sample::select(vec!["Prestación de servicios", "Obra", "Suministros"]);
        let flag = prop::sample::select(vec![Flag::Yes, Flag::No, Flag::Unknown]);
        let date = prop::option::of((0i64..730).prop_map(day));
        let kinds = prop::sample::select(vec![
            "acta_liquidacion",
            "estudios_previos",
            "cdp",
            "contrato",
            "informe_final",
            "otro",
        ]);
        let docs = prop::collection::vec((kinds, date.clone()), 0..4);
        let guarantees = prop::collection::vec(
            (prop::sample::select(vec!["Calidad del servicio", "Cumplimiento"]), date.clone()),
            0..3,
        );
        (
            (states, types, flag.clone(), flag.clone(), flag),
            (date.clone(), date.clone(), date.clone(), date.clone(), date.clone(), date),
            (prop::option::of(0i64..400), prop::option::of(0i64..5)),
            docs,
            guarantees,
        )
            .prop_map(
                |(
                    (state, kind, liq, env, post),
                    (signed, starts, ends, liq_ends, upd, changed),
                    (added, pending),
                    docs,
                    gs,
                )| {
                    let contract = Contract {
                        id: "CO1.PCCNTR.1".into(),
                        state: Some(state.into()),
                        contract_type: Some(kind.into()),
                        modality: Some("Contratación directa".into()),
                        signed_on: signed,
                        starts_on: starts,
                        ends_on: ends,
                        requires_liquidation: liq,
                        environmental_obligation: env,
                        post_consumption_obligation: post,
                        liquidation_ends_on: liq_ends,
                        last_update: upd,
                        changed_on: changed,
                        days_added: added,
                        value: Some(1_000_000),
                        pending_payment: pending.map(|p| p * 100_000),
                        ..Default::default()
                    };
                    let docs = docs
                        .into_iter()
                        .enumerate()
                        .map(|(i, (kind, on))| DocumentFact {
                            id: format!("d{i}"),
                            kind: kind.into(),
                            name: None,
                            uploaded_on: on,
                        })
                        .collect();
                    let gs = gs
                        .into_iter()
                        .enumerate()
                        .map(|(i, (sub, ends))| Guarantee {
                            key: format!("g{i}"),
                            contract_id: Some("CO1.PCCNTR.1".into()),
                            policy_subtype: Some(sub.into()),
                            ends_on: ends,
                            ..Default::default()
                        })
                        .collect();
                    (contract, docs, gs)
                },
            )
    }

    /// What an evaluation concludes, apart from the days left (counted whenever read).
    fn conclusions(o: &Outcome) -> (Vec<Finding>, Quality) {
        let findings =
            o.findings.iter().map(|f| Finding { business_days_left: 0, ..f.clone() }).collect();
        (findings, o.quality.clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(250))]
        /// Nothing the rules conclude changes before the next date they name: every day up to
        /// it concludes the same findings, levels and quality, on the same data.
        #[test]
        fn the_rules_conclude_the_same_until_their_next_date(
            (contract, docs, guarantees) in any_dossier(),
            start in 0i64..800,
            campaign in prop::option::of(300i64..500),
        ) {
            let mut settings = crate::config::Settings::defaults();
            settings.rules.closable.campaign_deadline = campaign.map(day);
            let engine = Engine::new(&settings);
            let dossier = Dossier::new(&contract, &docs, &guarantees);
            let mut from = day(start);
            for _ in 0..6 {
                let first = engine.evaluate(&dossier, &AsOf::new(from));
                let until = first.next_change.unwrap_or(from + chrono::Duration::days(400));
                prop_assert!(until > from);
                let mut d = from;
                while d < until && d < from + chrono::Duration::days(400) {
                    let later = engine.evaluate(&dossier, &AsOf::new(d));
                    prop_assert_eq!(conclusions(&later), conclusions(&first), "as of {} (from {})", d, from);
                    d = d.succ_opt().unwrap();
                }
                match first.next_change {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
    }

    #[test]
    fn a_level_changes_on_the_business_day_that_brings_it_to_the_next_threshold() {
        let settings = crate::config::Settings::defaults();
        let (levels, cal) = (&settings.levels, &settings.calendar);
        let deadline = day(200);
        for start in 100..260 {
            let as_of = day(start);
            let left = cal.business_days_between(as_of, deadline);
            let level = level_for(levels, left);
            let next = level_changes_on(levels, cal, as_of, left);
            // Brute force: the first later day whose level differs.
            let mut d = as_of.succ_opt().unwrap();
            let first_other = loop {
                if level_for(levels, cal.business_days_between(d, deadline)) != level {
                    break Some(d);
                }
                if d > day(600) {
                    break None;
                }
                d = d.succ_opt().unwrap();
            };
            assert_eq!(next, first_other, "as of {as_of}, {left} left ({level})");
        }
    }

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
