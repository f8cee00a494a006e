//! Findings: runs the rules over every stored contract as of a date and reconciles the
//! result with the stored open findings — new ones opened, changed levels escalated, those
//! whose condition stopped holding resolved — keeping the history.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use chrono::NaiveDate;
use serde::Serialize;

use serde_json::json;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::Contract;
use crate::notify::webhook::Event;
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
    // Webhook events of the changes, queued in the same transaction as the changes.
    let mut events = Vec::new();
    let now = clock.now();
    let hooks = &settings.webhooks;
    let event = |type_, identity: String, data| Event::new(type_, &identity, now, data);
    let mut after: Option<String> = None;
    loop {
        let page =
            store.contracts_page(after.as_deref(), PAGE).await.context("reading contracts")?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for contract in &page {
            for f in engine.evaluate(contract, as_of, &mut eval.data_quality) {
                let (c, k, s) = f.key();
                match open.remove(&f.key()) {
                    None => {
                        if !hooks.is_empty() {
                            let data =
                                json!({ "finding": &f, "contract": contract_json(contract) });
                            let e = event("finding.opened", format!("{c}|{k}|{s}|{as_of}"), data);
                            events.extend(e.items(hooks));
                        }
                        changes.opened.push(f.clone());
                    }
                    Some(stored) if stored.finding.level != f.level => {
                        let before = urgency(&settings.levels, &stored.finding.level);
                        let after = urgency(&settings.levels, &f.level);
                        let kind = if after < before { "escalated" } else { "deescalated" };
                        if kind == "escalated" && !hooks.is_empty() {
                            let data = json!({
                                "finding": &f,
                                "previous_level": &stored.finding.level,
                                "contract": contract_json(contract),
                            });
                            let id = format!("{c}|{k}|{s}|{}|{as_of}", f.level);
                            events.extend(event("finding.escalated", id, data).items(hooks));
                        }
                        changes.relevelled.push((stored.id, f.clone(), kind));
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
    let mut resolved: Vec<&StoredFinding> = open.values().collect();
    resolved.sort_by_key(|f| f.id);
    if !hooks.is_empty() {
        for stored in &resolved {
            let f = &stored.finding;
            let (c, k, s) = f.key();
            let data = json!({ "finding": f, "resolved_on": as_of, "opened_on": stored.opened_on });
            let id = format!("{c}|{k}|{s}|{}|{as_of}", stored.opened_on);
            events.extend(event("finding.resolved", id, data).items(hooks));
        }
    }
    changes.resolved = resolved.iter().map(|f| f.id).collect();

    eval.opened = changes.opened.len();
    eval.escalated = changes.relevelled.iter().filter(|(_, _, e)| *e == "escalated").count();
    eval.resolved = changes.resolved.len();
    store.apply_findings(&changes, &events, as_of, now).await.context("recording findings")?;
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

/// The contract as webhook consumers see it.
pub fn contract_json(c: &Contract) -> serde_json::Value {
    json!({
        "id_contrato": c.id,
        "referencia_del_contrato": c.reference,
        "nit_entidad": c.entity_nit,
        "nombre_entidad": c.entity_name,
        "estado_contrato": c.state,
        "tipo_de_contrato": c.contract_type,
        "fecha_de_fin_del_contrato": c.ends_on,
        "nombre_supervisor": c.supervisor_name,
        "url": c.url,
    })
}
