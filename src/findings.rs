//! Findings: runs the rules over every stored contract as of a date and reconciles the
//! result with the stored open findings — new ones opened, changed levels escalated, those
//! whose condition stopped holding resolved — keeping the history.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use chrono::NaiveDate;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::Settings;
use crate::rules::{DataQuality, Engine, urgency};
use crate::store::{FindingChanges, Store};

/// A conclusion about one contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub contract_id: String,
    /// `closable`, `liquidation_due`, `state_outdated`, `missing_documents`.
    pub kind: String,
    /// `precontractual`, `contractual`, `postcontractual`.
    pub stage: Option<String>,
    /// The day the condition became true.
    pub since: NaiveDate,
    pub deadline: NaiveDate,
    /// Business days from the evaluation date to the deadline; negative when overdue.
    pub business_days_left: i64,
    /// The escalation level (`aviso`, `urgente`, `vencido`…), or `info` before any threshold.
    pub level: String,
    pub step: Option<String>,
    /// Why, in Spanish, citing the rule and the data.
    pub reasons: Vec<String>,
    /// Document kinds missing (for `missing_documents`).
    pub missing: Vec<String>,
}

impl Finding {
    /// Identity across evaluations: one open finding per contract, kind and stage.
    pub fn key(&self) -> (String, String, String) {
        (self.contract_id.clone(), self.kind.clone(), self.stage.clone().unwrap_or_default())
    }
}

/// A finding as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    pub id: i64,
    pub opened_on: NaiveDate,
    pub finding: Finding,
}

/// What an evaluation found and changed.
#[derive(Debug, Default, Serialize)]
pub struct Evaluation {
    pub as_of: Option<NaiveDate>,
    /// Every finding true as of the date, most urgent first.
    pub findings: Vec<Finding>,
    pub opened: usize,
    pub escalated: usize,
    pub resolved: usize,
    pub data_quality: DataQuality,
}

impl Evaluation {
    /// Findings per kind and level, for the summary.
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        let mut m = BTreeMap::new();
        for f in &self.findings {
            *m.entry((f.kind.clone(), f.level.clone())).or_default() += 1;
        }
        m
    }
}

/// How many contracts are read from the store at a time.
const PAGE: u32 = 2_000;

/// Evaluates every contract as of `as_of` and records the changes in the findings.
pub async fn evaluate<S: Store>(
    store: &S,
    settings: &Settings,
    as_of: NaiveDate,
    clock: &dyn Clock,
) -> anyhow::Result<Evaluation> {
    let engine = Engine::new(settings);
    let mut open: HashMap<(String, String, String), StoredFinding> = store
        .open_findings()
        .await
        .context("reading open findings")?
        .into_iter()
        .map(|f| (f.finding.key(), f))
        .collect();

    let mut eval = Evaluation { as_of: Some(as_of), ..Default::default() };
    let mut changes = FindingChanges::default();
    let mut after: Option<String> = None;
    loop {
        let page =
            store.contracts_page(after.as_deref(), PAGE).await.context("reading contracts")?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for contract in &page {
            for f in engine.evaluate(contract, as_of, &mut eval.data_quality) {
                match open.remove(&f.key()) {
                    None => changes.opened.push(f.clone()),
                    Some(stored) if stored.finding.level != f.level => {
                        let before = urgency(&settings.levels, &stored.finding.level);
                        let now = urgency(&settings.levels, &f.level);
                        let event = if now < before { "escalated" } else { "deescalated" };
                        changes.relevelled.push((stored.id, f.clone(), event));
                    }
                    Some(stored) if stored.finding != f => {
                        changes.refreshed.push((stored.id, f.clone()))
                    }
                    Some(_) => {}
                }
                eval.findings.push(f);
            }
        }
    }
    // Whatever is still open was not concluded again: its condition no longer holds.
    changes.resolved = open.values().map(|f| f.id).collect();
    changes.resolved.sort_unstable();

    eval.opened = changes.opened.len();
    eval.escalated = changes.relevelled.iter().filter(|(_, _, e)| *e == "escalated").count();
    eval.resolved = changes.resolved.len();
    store.apply_findings(&changes, as_of, clock.now()).await.context("recording findings")?;
    eval.findings.sort_by(|a, b| {
        urgency(&settings.levels, &a.level)
            .cmp(&urgency(&settings.levels, &b.level))
            .then(a.business_days_left.cmp(&b.business_days_left))
            .then(a.contract_id.cmp(&b.contract_id))
    });
    tracing::info!(
        %as_of,
        contracts = eval.data_quality.contracts,
        findings = eval.findings.len(),
        opened = eval.opened,
        escalated = eval.escalated,
        resolved = eval.resolved,
        "evaluation finished"
    );
    Ok(eval)
}
