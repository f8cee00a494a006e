//! Findings: runs the rules over every stored contract as of a date and reconciles the
//! result with the stored open findings — new ones opened, changed levels escalated, those
//! whose condition stopped holding resolved — keeping the history.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use serde::Serialize;

use serde_json::json;

pub mod acks;
pub mod silences;

use crate::calendar::Calendar;
use crate::clock::Clock;
use crate::config::{Settings, Webhook, routing};
use crate::domain::{Contract, Event, Finding, Guarantee, Kind, Stage, StoredFinding};
use crate::rules::{DataQuality, DocumentFact, Dossier, Engine, urgency};
use crate::store::{
    DossierFacts, EvaluationPage, FindingChanges, FindingCursor, IdPage, NewOutboxItem, Store,
};

/// What an evaluation found and changed: counts only, so that memory does not grow with the
/// number of contracts; the findings themselves are in the store
/// ([`Store::open_findings_sorted`]).
#[derive(Debug, Default, Serialize)]
pub struct Evaluation {
    pub as_of: Option<NaiveDate>,
    /// Findings true as of the date.
    pub total: usize,
    /// Findings per kind and level.
    #[serde(serialize_with = "counts_as_list")]
    pub counts: BTreeMap<(String, String), usize>,
    pub opened: usize,
    pub escalated: usize,
    pub resolved: usize,
    /// Findings whose contract matches no route (they go to the fallback recipient).
    pub unrouted: usize,
    /// Webhook events held back by a silence (`webhooks = true`) in force that day.
    pub muted: usize,
    /// Contract-sized pages read and written.
    pub pages: u64,
    pub data_quality: DataQuality,
}

fn counts_as_list<S: serde::Serializer>(
    counts: &BTreeMap<(String, String), usize>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(counts.len()))?;
    for ((kind, level), n) in counts {
        seq.serialize_element(&json!({ "kind": kind, "level": level, "count": n }))?;
    }
    seq.end()
}

/// How many contracts are evaluated per page (one read of contracts, documents, guarantees
/// and open findings, one transaction of changes).
const PAGE: u32 = 2_000;

/// Evaluates every contract as of `as_of` and records the changes in the findings.
///
/// Contracts are walked in id order, a page at a time; for each page the documents,
/// guarantees and open findings of the same id range are read, the rules run, and the
/// changes (with their webhook events) are written in one transaction. Memory stays that of
/// a page; an interrupted evaluation leaves whole pages applied and the next one redoes the
/// rest (re-evaluating a page changes nothing).
pub async fn evaluate<S: Store>(
    store: &S,
    settings: &Settings,
    as_of: NaiveDate,
    clock: &dyn Clock,
) -> anyhow::Result<Evaluation> {
    let engine = Engine::new(settings);
    let mut eval = Evaluation { as_of: Some(as_of), ..Default::default() };
    // Silences that also hold back webhook events.
    let muted: Vec<silences::Compiled> = if settings.webhooks.is_empty() {
        Vec::new()
    } else {
        let stored = store.silences(as_of, false, IdPage::ALL).await.context("reading silences")?;
        silences::in_force(&stored, as_of, settings).into_iter().filter(|s| s.webhooks).collect()
    };
    let now = clock.now();
    let mut memo = KindMemo::default();
    // Where the time goes, for the debug log: waiting for pages, rules, writing.
    let (mut waiting, mut ruling, mut writing) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let t = Instant::now();
    let mut current = Some(store.evaluation_page("", PAGE).await.context("reading contracts")?);
    waiting += t.elapsed();
    while let Some(EvaluationPage { contracts: page, up_to, facts, open }) = current.take() {
        // The next page is read (on the store's own thread) while this one is evaluated and
        // recorded: id ranges do not overlap, so neither sees the other's changes.
        let (t, spent) = (Instant::now(), ruling + writing);
        let read_next = async {
            match &up_to {
                Some(last) => Some(store.evaluation_page(last, PAGE).await),
                None => None,
            }
        };
        let work = async {
            let t = Instant::now();
            let changes = evaluate_page(
                &engine, settings, &page, facts, open, as_of, now, &muted, &mut eval, &mut memo,
            );
            eval.escalated +=
                changes.changes.relevelled.iter().filter(|(_, _, e)| *e == "escalated").count();
            eval.resolved += changes.changes.resolved.len();
            ruling += t.elapsed();
            let t = Instant::now();
            if !changes.is_empty() {
                eval.opened += store
                    .apply_findings(&changes.changes, &changes.events, as_of, now)
                    .await
                    .context("recording findings")? as usize;
            }
            writing += t.elapsed();
            eval.pages += 1;
            anyhow::Ok(())
        };
        let (next, done) = tokio::join!(read_next, work);
        waiting += t.elapsed().saturating_sub(ruling + writing - spent);
        done?;
        current = next.transpose().context("reading contracts")?;
    }
    tracing::debug!(?waiting, ?ruling, ?writing, "evaluation timing");
    tracing::info!(
        %as_of,
        contracts = eval.data_quality.contracts,
        findings = eval.total,
        opened = eval.opened,
        escalated = eval.escalated,
        resolved = eval.resolved,
        unrouted = eval.unrouted,
        "evaluation finished"
    );
    Ok(eval)
}

/// The changes of one page and the webhook events that announce them.
struct PageChanges {
    changes: FindingChanges,
    events: Vec<NewOutboxItem>,
}

impl PageChanges {
    fn is_empty(&self) -> bool {
        let c = &self.changes;
        c.opened.is_empty()
            && c.relevelled.is_empty()
            && c.refreshed.is_empty()
            && c.resolved.is_empty()
            && c.reopened.is_empty()
            && self.events.is_empty()
    }
}

/// Document kinds already inferred, by file name and description: entities reuse the same
/// names ("CDP.pdf", "Estudios previos") across thousands of contracts, and the classifier
/// is the costliest step of an evaluation. Bounded: cleared when full.
#[derive(Default)]
struct KindMemo {
    kinds: HashMap<(Option<String>, Option<String>), String>,
}

impl KindMemo {
    const MAX: usize = 200_000;

    fn kind(
        &mut self,
        engine: &Engine,
        name: &Option<String>,
        description: &Option<String>,
    ) -> String {
        let key = (name.clone(), description.clone());
        if let Some(kind) = self.kinds.get(&key) {
            return kind.clone();
        }
        let kind =
            engine.classifier().classify(name.as_deref(), description.as_deref()).to_string();
        if self.kinds.len() >= Self::MAX {
            self.kinds.clear();
        }
        self.kinds.insert(key, kind.clone());
        kind
    }
}

/// Facts of a page keyed by contract id.
type ByContract<'a, T> = HashMap<&'a str, Vec<T>>;

/// Groups a page's documents by contract (deduplicated by `id_documento`, each classified
/// once) and its guarantees by contract.
fn group_facts<'a>(
    facts: &'a DossierFacts,
    engine: &Engine,
    memo: &mut KindMemo,
    as_of: NaiveDate,
) -> (ByContract<'a, DocumentFact>, ByContract<'a, Guarantee>) {
    let mut docs: HashMap<&str, Vec<DocumentFact>> = HashMap::new();
    // A document uploaded after the evaluation date was not there yet: results as of a date
    // stay the same whatever was published since. Undated documents count.
    let published =
        facts.documents.iter().filter(|(_, d)| d.uploaded_on.is_none_or(|u| u <= as_of));
    for (owner, d) in published {
        let list = docs.entry(owner.as_str()).or_default();
        if list.iter().any(|x| x.id == d.id) {
            continue;
        }
        // Classified by hand (an office head's documento_publicado) before by name.
        let kind = match facts.classified.get(&d.id) {
            Some(kind) => kind.clone(),
            None => memo.kind(engine, &d.file_name, &d.description),
        };
        list.push(DocumentFact {
            id: d.id.clone(),
            kind,
            name: d.file_name.clone().or_else(|| d.description.clone()),
            uploaded_on: d.uploaded_on,
        });
    }
    let mut guarantees: HashMap<&str, Vec<Guarantee>> = HashMap::new();
    for g in &facts.guarantees {
        if let Some(id) = g.contract_id.as_deref() {
            guarantees.entry(id).or_default().push(g.clone());
        }
    }
    (docs, guarantees)
}

/// Runs the rules over one page and diffs the result against the page's open findings.
#[allow(clippy::too_many_arguments)]
fn evaluate_page(
    engine: &Engine,
    settings: &Settings,
    page: &[Contract],
    facts: DossierFacts,
    open: Vec<StoredFinding>,
    as_of: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
    muted: &[silences::Compiled],
    eval: &mut Evaluation,
    memo: &mut KindMemo,
) -> PageChanges {
    let mut open: HashMap<(String, Kind, Option<Stage>), StoredFinding> =
        open.into_iter().map(|f| (f.finding.key(), f)).collect();
    let (docs, guarantees) = group_facts(&facts, engine, memo, as_of);
    let mut changes = FindingChanges::default();
    // Webhook events of the changes, queued in the same transaction as the changes.
    let mut events = Vec::new();
    let hooks = &settings.webhooks;
    let event = |type_, identity: String, data| Event::new(type_, &identity, now, data);
    for contract in page {
        let dossier = Dossier::new(
            contract,
            docs.get(contract.id.as_str()).map_or(&[], Vec::as_slice),
            guarantees.get(contract.id.as_str()).map_or(&[], Vec::as_slice),
        );
        let found = engine.evaluate(&dossier, as_of, &mut eval.data_quality);
        let offices =
            if found.is_empty() { Vec::new() } else { routing::route(&settings.routes, contract) };
        if !found.is_empty() && offices.is_empty() {
            eval.unrouted += found.len();
        }
        let is_muted = |f: &Finding| muted.iter().any(|s| s.matches(f, contract, &offices));
        for f in found {
            eval.total += 1;
            *eval.counts.entry((f.kind.as_str().to_string(), f.level.clone())).or_default() += 1;
            let (c, k, s) = (&f.contract_id, f.kind, f.stage_str());
            match open.remove(&f.key()) {
                None => {
                    if !hooks.is_empty() && is_muted(&f) {
                        eval.muted += 1;
                    } else if !hooks.is_empty() {
                        let data = json!({ "finding": &f, "contract": contract_json(contract) });
                        let e = event("finding.opened", format!("{c}|{k}|{s}|{as_of}"), data);
                        events.extend(outbox_items(&e, hooks));
                    }
                    changes.opened.push(f);
                }
                Some(stored) => {
                    if let Some(ack) = &stored.ack
                        && let Some(why) = acks::reopen_reason(ack, &f, as_of, settings)
                    {
                        if !hooks.is_empty() && is_muted(&f) {
                            eval.muted += 1;
                        } else if !hooks.is_empty() {
                            let data = json!({
                                "finding": &f,
                                "reason": &why,
                                "acknowledgement": { "id": ack.id, "state": ack.state },
                                "contract": contract_json(contract),
                            });
                            let id = format!("{c}|{k}|{s}|reopened|{}", ack.id);
                            events
                                .extend(outbox_items(&event("finding.reopened", id, data), hooks));
                        }
                        changes.reopened.push((stored.id, ack.id, why));
                    }
                    if stored.finding.level != f.level {
                        let before = urgency(&settings.levels, &stored.finding.level);
                        let after = urgency(&settings.levels, &f.level);
                        let kind = if after < before { "escalated" } else { "deescalated" };
                        if kind == "escalated" && !hooks.is_empty() && is_muted(&f) {
                            eval.muted += 1;
                        } else if kind == "escalated" && !hooks.is_empty() {
                            let data = json!({
                                "finding": &f,
                                "previous_level": &stored.finding.level,
                                "contract": contract_json(contract),
                            });
                            let id = format!("{c}|{k}|{s}|{}|{as_of}", f.level);
                            let e = event("finding.escalated", id, data);
                            events.extend(outbox_items(&e, hooks));
                        }
                        changes.relevelled.push((stored.id, f, kind));
                    } else if !stored.finding.same_apart_from_days_left(&f) {
                        changes.refreshed.push((stored.id, f));
                    }
                }
            }
        }
    }
    // Whatever is still open was not concluded again: its condition no longer holds.
    let mut resolved: Vec<StoredFinding> = open.into_values().collect();
    resolved.sort_by_key(|f| f.id);
    if !hooks.is_empty() {
        let no_contract = Contract::default();
        for stored in &resolved {
            // Counted as of the evaluation, not as of the last time the finding was written.
            let mut f = stored.finding.clone();
            f.count_days_from(&settings.calendar, as_of);
            if !muted.is_empty() {
                // Its contract, if still in the page (a vanished one matches no field).
                let c = page.iter().find(|c| c.id == f.contract_id).unwrap_or(&no_contract);
                let offices = routing::route(&settings.routes, c);
                if muted.iter().any(|s| s.matches(&f, c, &offices)) {
                    eval.muted += 1;
                    continue;
                }
            }
            let (c, k, s) = (&f.contract_id, f.kind, f.stage_str());
            let data =
                json!({ "finding": &f, "resolved_on": as_of, "opened_on": stored.opened_on });
            let id = format!("{c}|{k}|{s}|{}|{as_of}", stored.opened_on);
            events.extend(outbox_items(&event("finding.resolved", id, data), hooks));
        }
    }
    changes.resolved = resolved.iter().map(|f| f.id).collect();
    PageChanges { changes, events }
}

/// Every open finding, most urgent first (earliest deadline, so fewest business days left,
/// then contract, kind and stage), with its business days left as of `as_of`, read from the
/// store a page at a time and handed to `each`.
pub async fn for_each_open<S: Store>(
    store: &S,
    calendar: &Calendar,
    as_of: NaiveDate,
    mut each: impl FnMut(&StoredFinding) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    const PAGE: u32 = 2_000;
    let mut n = 0;
    let mut page = store.open_findings_sorted(None, PAGE).await.context("reading open findings")?;
    while let Some(last) = page.last() {
        // The next page is read (on the store's own thread) while this one is handed out.
        let after = FindingCursor::of(&last.finding);
        let read_next = store.open_findings_sorted(Some(&after), PAGE);
        let hand_out = async {
            for mut f in page {
                f.finding.count_days_from(calendar, as_of);
                each(&f)?;
                n += 1;
            }
            anyhow::Ok(())
        };
        let (next, done) = tokio::join!(read_next, hand_out);
        done?;
        page = next.context("reading open findings")?;
    }
    Ok(n)
}

/// Every open finding, most urgent first, counted as of `as_of` (see [`for_each_open`]).
pub async fn open_sorted<S: Store>(
    store: &S,
    calendar: &Calendar,
    as_of: NaiveDate,
) -> anyhow::Result<Vec<Finding>> {
    let mut all = Vec::new();
    for_each_open(store, calendar, as_of, |f| {
        all.push(f.finding.clone());
        Ok(())
    })
    .await?;
    Ok(all)
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

/// The outbox items of a webhook event: one per endpoint subscribed to its type. The
/// evaluation queues them with its changes, the sync job with its report.
pub fn outbox_items(event: &Event, endpoints: &[Webhook]) -> Vec<NewOutboxItem> {
    let body = serde_json::to_string(event).unwrap_or_default();
    endpoints
        .iter()
        .filter(|w| event.is_for(&w.events))
        .map(|w| NewOutboxItem {
            idempotency_key: format!("webhook:{}:{}", w.url, event.id),
            channel: "webhook".into(),
            target: w.url.to_string(),
            subject: Some(event.type_.to_string()),
            message_id: Some(event.id.clone()),
            payload: body.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn days_left_are_recounted_for_the_day_a_finding_is_read_for() {
        let calendar = Calendar::colombia();
        let mut f = Finding {
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
        };
        let day = NaiveDate::from_ymd_opt(2026, 3, 13).unwrap(); // a Friday
        f.count_days_from(&calendar, day);
        assert_eq!(f.business_days_left, calendar.business_days_between(day, f.deadline));
        assert_eq!(f.business_days_left, 1);
    }

    #[test]
    fn event_ids_are_stable_and_endpoints_get_only_their_events() {
        let now = Utc::now();
        let a = Event::new("finding.opened", "CO1|closable|", now, serde_json::json!({}));
        let b = Event::new("finding.opened", "CO1|closable|", now, serde_json::json!({"x": 1}));
        assert_eq!(a.id, b.id);
        let hook = |events: Vec<&str>| Webhook {
            url: "http://127.0.0.1:1/h".parse().unwrap(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string().into(),
            events: events.into_iter().map(str::to_string).collect(),
        };
        assert_eq!(outbox_items(&a, &[hook(vec![]), hook(vec!["sync.failed"])]).len(), 1);
        assert_eq!(
            outbox_items(&a, &[hook(vec!["finding.opened"])])[0].message_id.as_deref(),
            Some(a.id.as_str())
        );
    }
}
