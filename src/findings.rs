//! Findings: runs the rules over every stored contract as of a date and reconciles the
//! result with the stored open findings — new ones opened, changed levels escalated, those
//! whose condition stopped holding resolved — keeping the history.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use crate::domain::ack::AckInForce;
use crate::domain::{Contract, Event, Finding, Guarantee, Kind, Stage, StoredFinding};
use crate::rules::{AsOf, DataQuality, DocumentFact, Dossier, Engine, urgency};
use crate::store::{
    ContractEvaluation, DossierFacts, EvaluatedState, EvaluationPage, FindingChanges,
    FindingCursor, IdPage, KeptSummary, NewOutboxItem, Selection, Store,
};

/// What an evaluation found and changed: counts only, so that memory does not grow with the
/// number of contracts; the findings themselves are in the store
/// ([`Store::open_findings_sorted`]).
#[derive(Debug, Default, Serialize)]
pub struct Evaluation {
    pub as_of: Option<NaiveDate>,
    /// Every contract's rules ran (`cierre evaluate --full`, new settings, calendar or
    /// program, an earlier date than the last evaluation's); otherwise only those of the
    /// contracts whose data changed or whose next date arrived did, and the counts below
    /// still cover every contract.
    pub full: bool,
    /// Contracts whose rules ran.
    pub evaluated: u64,
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
    /// How long the evaluation took (not the listing of its findings).
    pub seconds: f64,
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

/// Beyond this many contracts to look at again, an evaluation reads every contract in id
/// order instead: by then reading them by id costs more than reading them all.
const MOST_INCREMENTAL: u32 = 100_000;

/// Bumped when the rules conclude otherwise on the same data within the same package
/// version: part of the fingerprint that makes the next evaluation a full one.
const RULES_REVISION: u32 = 1;

/// What a full evaluation ran with — the rules and their settings, levels, document
/// classifier, routes, answers' settings, calendar and program version — as one fingerprint:
/// when it changes, what was kept of each contract says nothing and every contract is
/// evaluated again.
pub fn settings_fingerprint(settings: &Settings) -> String {
    let cal = &settings.calendar;
    let text = format!(
        "{} {RULES_REVISION}\n{:?}\n{:?}\n{:?}\n{}\n{:?}\n{:?} {:?} {:?}",
        env!("CARGO_PKG_VERSION"),
        settings.rules,
        settings.levels,
        settings.classifier,
        settings.routes.fingerprint(),
        settings.acknowledgements,
        cal.working_days(),
        cal.extra_non_working().collect::<Vec<_>>(),
        cal.rules(),
    );
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// Evaluates the contracts as of `as_of` and records the changes in the findings.
///
/// Incremental unless `full` (or the last complete evaluation ran with other settings, or as
/// of a later date): only the contracts the store marked as changed since (their row,
/// documents, guarantees, classifications, answers) and those whose next date
/// ([`crate::rules::Outcome::next_change`]) has come are read and evaluated; every other
/// contract would conclude what it concluded last time. The findings, levels and events are
/// those of a full evaluation, and so are the report's counts (summed over what each
/// contract's evaluation kept).
///
/// Contracts are read a page at a time (in id order, or by id); for each page the
/// documents, guarantees and open findings of the same contracts are read, the rules run,
/// and the changes (with their webhook events) are written in one transaction. Memory stays
/// that of a page; an interrupted evaluation leaves whole pages applied and the next one
/// redoes the rest (re-evaluating a page changes nothing).
pub async fn evaluate<S: Store>(
    store: &S,
    settings: &Settings,
    as_of: NaiveDate,
    full: bool,
    clock: &dyn Clock,
) -> anyhow::Result<Evaluation> {
    let started = Instant::now();
    let engine = Engine::new(settings);
    let fingerprint = settings_fingerprint(settings);
    // Silences that also hold back webhook events.
    let muted: Vec<silences::Compiled> = if settings.webhooks.is_empty() {
        Vec::new()
    } else {
        let stored = store.silences(as_of, false, IdPage::ALL).await.context("reading silences")?;
        silences::in_force(&stored, as_of, settings).into_iter().filter(|s| s.webhooks).collect()
    };
    let plan = if full { None } else { incremental_plan(store, &fingerprint, as_of).await? };
    let (mut walk, marks) = match plan {
        Some(Plan { ids, marks }) => {
            let chunks: Vec<Vec<String>> = ids.chunks(PAGE as usize).map(<[_]>::to_vec).collect();
            (Walk::Ids(chunks.into_iter()), marks)
        }
        None => {
            let marks =
                store.begin_full_evaluation().await.context("starting a full evaluation")?;
            (Walk::Full { started: false }, marks)
        }
    };
    let full = matches!(walk, Walk::Full { .. });
    let mut eval = Evaluation { as_of: Some(as_of), full, ..Default::default() };
    let now = clock.now();
    let mut memo = KindMemo::default();
    // Where the time goes, for the debug log: waiting for pages, rules, writing.
    let (mut waiting, mut ruling, mut writing) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let t = Instant::now();
    let mut current = match walk.next(None) {
        Some(first) => Some(store.evaluation_page(&first).await.context("reading contracts")?),
        None => None,
    };
    waiting += t.elapsed();
    while let Some(EvaluationPage { contracts: page, up_to, facts, open, kept }) = current.take() {
        // The next page is read (on the store's own thread) while this one is evaluated and
        // recorded: pages do not overlap, so neither sees the other's changes.
        let (t, spent) = (Instant::now(), ruling + writing);
        let next = walk.next(up_to.as_ref());
        let read_next = async {
            match &next {
                Some(selection) => Some(store.evaluation_page(selection).await),
                None => None,
            }
        };
        let work = async {
            let t = Instant::now();
            let read = PageRead { contracts: &page, facts, open, kept };
            let changes = evaluate_page(
                &engine, settings, read, as_of, now, &muted, full, &mut eval, &mut memo,
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
    if !full {
        // The counts cover every contract: those not evaluated again as they were kept.
        let kept = store.kept_summary().await.context("summing the kept evaluations")?;
        count_kept(&mut eval, &kept);
    }
    let state = EvaluatedState { fingerprint, as_of };
    store.end_evaluation(&state, full, &marks, now).await.context("ending the evaluation")?;
    eval.seconds = started.elapsed().as_secs_f64();
    tracing::debug!(?waiting, ?ruling, ?writing, "evaluation timing");
    tracing::info!(
        %as_of,
        full,
        evaluated = eval.evaluated,
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

/// The contracts an incremental evaluation looks at, and the marks it accounts for.
struct Plan {
    ids: Vec<String>,
    /// Ranges of mark `seq`.
    marks: Vec<(i64, i64)>,
}

/// What to evaluate incrementally, or `None` when the evaluation must be a full one: no
/// complete evaluation yet, another fingerprint, an earlier date, or too much to look at.
async fn incremental_plan<S: Store>(
    store: &S,
    fingerprint: &str,
    as_of: NaiveDate,
) -> anyhow::Result<Option<Plan>> {
    let state = store.evaluated_state().await.context("reading the last evaluation")?;
    match state {
        Some(s) if s.fingerprint == fingerprint && s.as_of <= as_of => {}
        Some(s) if s.fingerprint == fingerprint => {
            tracing::info!(last = %s.as_of, %as_of, "an earlier date: full evaluation");
            return Ok(None);
        }
        Some(_) => {
            tracing::info!("settings, calendar or program changed: full evaluation");
            return Ok(None);
        }
        None => return Ok(None),
    }
    let found = store.evaluation_marks(MOST_INCREMENTAL + 1).await.context("reading marks")?;
    let due =
        store.evaluations_due(as_of, MOST_INCREMENTAL + 1).await.context("reading due dates")?;
    if found.len() > MOST_INCREMENTAL as usize || due.len() > MOST_INCREMENTAL as usize {
        return Ok(None);
    }
    let mut ids: BTreeSet<String> = due.into_iter().collect();
    let mut processes = BTreeSet::new();
    let mut seqs = Vec::with_capacity(found.len());
    for m in found {
        seqs.push(m.seq);
        match (m.contract_id, m.process) {
            (Some(id), _) => {
                ids.insert(id);
            }
            (None, Some(p)) => {
                processes.insert(p);
            }
            (None, None) => {}
        }
    }
    let processes: Vec<String> = processes.into_iter().collect();
    for chunk in processes.chunks(1_000) {
        ids.extend(store.contracts_of_processes(chunk).await.context("reading processes")?);
    }
    if ids.len() > MOST_INCREMENTAL as usize {
        return Ok(None);
    }
    seqs.sort_unstable();
    let mut marks: Vec<(i64, i64)> = Vec::new();
    for seq in seqs {
        match marks.last_mut() {
            Some((_, hi)) if *hi + 1 == seq => *hi = seq,
            _ => marks.push((seq, seq)),
        }
    }
    Ok(Some(Plan { ids: ids.into_iter().collect(), marks }))
}

/// The pages of an evaluation: every contract in id order, or lists of ids.
enum Walk {
    Full { started: bool },
    Ids(std::vec::IntoIter<Vec<String>>),
}

impl Walk {
    /// The page after the one that ended at `up_to` (`None`: the last one, or before the
    /// first).
    fn next(&mut self, up_to: Option<&String>) -> Option<Selection> {
        match self {
            Walk::Full { started } => {
                let after = match (up_to, *started) {
                    (None, false) => String::new(),
                    (Some(last), true) => last.clone(),
                    _ => return None,
                };
                *started = true;
                Some(Selection::After { after, limit: PAGE })
            }
            Walk::Ids(chunks) => chunks.next().map(Selection::Ids),
        }
    }
}

/// Adds what the kept evaluations count to `eval` (in place of what the evaluated pages
/// counted: the kept ones include them).
fn count_kept(eval: &mut Evaluation, kept: &[KeptSummary]) {
    eval.total = 0;
    eval.counts.clear();
    eval.unrouted = 0;
    eval.data_quality = DataQuality::default();
    for k in kept {
        eval.data_quality.add(&k.quality, k.contracts);
        let n = k.contracts as usize;
        for (kind, level) in k.findings.split(',').filter_map(|f| f.split_once(':')) {
            *eval.counts.entry((kind.to_string(), level.to_string())).or_default() += n;
            eval.total += n;
            if k.unrouted {
                eval.unrouted += n;
            }
        }
    }
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
            && c.kept.is_empty()
            && c.forgotten.is_empty()
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
/// once, sorted by id) and its guarantees by contract (sorted by key). Documents uploaded
/// after the evaluation date are kept: the caller leaves them out, and notes the day they
/// count from.
fn group_facts<'a>(
    facts: &'a DossierFacts,
    engine: &Engine,
    memo: &mut KindMemo,
) -> (ByContract<'a, DocumentFact>, ByContract<'a, Guarantee>) {
    let mut docs: HashMap<&str, Vec<DocumentFact>> = HashMap::new();
    for (owner, d) in &facts.documents {
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
    for list in docs.values_mut() {
        list.sort_by(|a, b| a.id.cmp(&b.id));
    }
    let mut guarantees: HashMap<&str, Vec<Guarantee>> = HashMap::new();
    for g in &facts.guarantees {
        if let Some(id) = g.contract_id.as_deref() {
            guarantees.entry(id).or_default().push(g.clone());
        }
    }
    for list in guarantees.values_mut() {
        list.sort_by(|a, b| a.key.cmp(&b.key));
    }
    (docs, guarantees)
}

/// What a page read: its contracts, their facts, open findings and kept evaluations.
struct PageRead<'a> {
    contracts: &'a [Contract],
    facts: DossierFacts,
    open: Vec<StoredFinding>,
    kept: Vec<ContractEvaluation>,
}

/// An answer in force on one of a contract's open findings.
type Answer = (Kind, Option<Stage>, AckInForce);

/// A fingerprint of everything an evaluation of one contract reads besides the date: the
/// contract row (as received, and the day it last changed), its documents with their kinds,
/// its guarantees and the answers in force on its open findings.
fn inputs_fingerprint(
    c: &Contract,
    docs: &[DocumentFact],
    guarantees: &[Guarantee],
    answers: &[Answer],
) -> i64 {
    let mut h = Fingerprint::default();
    h.text(Some(&c.id)).text(c.content_hash.as_deref()).day(c.changed_on);
    h.text(c.process_id.as_deref());
    for d in docs {
        h.text(Some(&d.id)).text(Some(&d.kind)).text(d.name.as_deref()).day(d.uploaded_on);
    }
    h.text(Some("guarantees"));
    for g in guarantees {
        h.text(Some(&g.key)).text(g.policy_number.as_deref()).text(g.policy_type.as_deref());
        h.text(g.policy_subtype.as_deref()).day(g.ends_on).text(g.status.as_deref());
        h.text(g.insurer.as_deref()).number(g.value);
    }
    h.text(Some("answers"));
    for (kind, stage, a) in answers {
        h.text(Some(kind.as_str())).text(stage.map(|s| s.as_str()));
        h.number(Some(a.id)).text(Some(a.state.as_str())).day(a.until).text(Some(&a.level));
        h.text(a.facts.as_deref());
    }
    h.0.digest() as i64
}

/// Values fed to xxh3, each framed so that no two sequences of values feed the same bytes.
#[derive(Default)]
struct Fingerprint(xxhash_rust::xxh3::Xxh3);

impl Fingerprint {
    fn text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.0.update(&[0]),
            Some(v) => {
                self.0.update(&[1]);
                self.0.update(&(v.len() as u64).to_le_bytes());
                self.0.update(v.as_bytes());
            }
        }
        self
    }

    fn day(&mut self, v: Option<NaiveDate>) -> &mut Self {
        use chrono::Datelike;
        match v {
            None => self.0.update(&[0]),
            Some(d) => {
                self.0.update(&[1]);
                self.0.update(&d.num_days_from_ce().to_le_bytes());
            }
        }
        self
    }

    fn number(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            None => self.0.update(&[0]),
            Some(n) => {
                self.0.update(&[1]);
                self.0.update(&n.to_le_bytes());
            }
        }
        self
    }
}

/// Runs the rules over one page and diffs the result against the page's open findings.
/// `full`: every contract of the page is evaluated; otherwise a contract whose inputs are
/// those its kept evaluation saw, and whose next date has not come, is left as it is.
#[allow(clippy::too_many_arguments)]
fn evaluate_page(
    engine: &Engine,
    settings: &Settings,
    read: PageRead,
    as_of: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
    muted: &[silences::Compiled],
    full: bool,
    eval: &mut Evaluation,
    memo: &mut KindMemo,
) -> PageChanges {
    let PageRead { contracts: page, facts, open, kept } = read;
    // The answers in force on each contract's open findings, in kind and stage order.
    let mut answers: HashMap<String, Vec<Answer>> = HashMap::new();
    for f in &open {
        if let Some(a) = &f.ack {
            let list = answers.entry(f.finding.contract_id.clone()).or_default();
            list.push((f.finding.kind, f.finding.stage, a.clone()));
        }
    }
    for list in answers.values_mut() {
        list.sort_by_key(|(kind, stage, _)| (kind.as_str(), stage.map(|s| s.as_str())));
    }
    // Open findings by key, and their keys by contract.
    let mut open_of: HashMap<String, Vec<(String, Kind, Option<Stage>)>> = HashMap::new();
    if !full {
        for f in &open {
            open_of.entry(f.finding.contract_id.clone()).or_default().push(f.finding.key());
        }
    }
    let mut open: HashMap<(String, Kind, Option<Stage>), StoredFinding> =
        open.into_iter().map(|f| (f.finding.key(), f)).collect();
    let mut kept: HashMap<String, ContractEvaluation> =
        kept.into_iter().map(|k| (k.contract_id.clone(), k)).collect();
    let (docs, guarantees) = group_facts(&facts, engine, memo);
    let mut changes = FindingChanges::default();
    // Webhook events of the changes, queued in the same transaction as the changes.
    let mut events = Vec::new();
    let hooks = &settings.webhooks;
    let event = |type_, identity: String, data| Event::new(type_, &identity, now, data);
    for contract in page {
        let all_docs = docs.get(contract.id.as_str()).map_or(&[][..], Vec::as_slice);
        let its_guarantees = guarantees.get(contract.id.as_str()).map_or(&[][..], Vec::as_slice);
        let its_answers = answers.get(&contract.id).map_or(&[][..], Vec::as_slice);
        let inputs = inputs_fingerprint(contract, all_docs, its_guarantees, its_answers);
        let previous = kept.remove(&contract.id);
        if !full
            && let Some(k) = &previous
            && k.inputs == inputs
            && k.next_on.is_none_or(|next| next > as_of)
        {
            // Nothing it depends on changed: it concludes what it concluded.
            for key in open_of.get(&contract.id).into_iter().flatten() {
                open.remove(key);
            }
            continue;
        }
        eval.evaluated += 1;
        let at = AsOf::new(as_of);
        // A document uploaded after the evaluation date was not there yet: results as of a
        // date stay the same whatever was published since. Undated documents count.
        let visible: Cow<[DocumentFact]> =
            if all_docs.iter().any(|d| d.uploaded_on.is_some_and(|u| u > as_of)) {
                for d in all_docs {
                    if let Some(u) = d.uploaded_on {
                        at.changes_on(u);
                    }
                }
                let published =
                    all_docs.iter().filter(|d| d.uploaded_on.is_none_or(|u| u <= as_of));
                published.cloned().collect()
            } else {
                all_docs.into()
            };
        // An answer «en trámite» ends on its day.
        for (_, _, a) in its_answers {
            if let Some(until) = a.until {
                at.changes_on(until);
            }
        }
        let dossier = Dossier::new(contract, &visible, its_guarantees);
        let outcome = engine.evaluate(&dossier, &at);
        let found = outcome.findings;
        eval.data_quality.add(&outcome.quality, 1);
        let offices =
            if found.is_empty() { Vec::new() } else { routing::route(&settings.routes, contract) };
        let unrouted = !found.is_empty() && offices.is_empty();
        if unrouted {
            eval.unrouted += found.len();
        }
        let mut summary: Vec<String> =
            found.iter().map(|f| format!("{}:{}", f.kind.as_str(), f.level)).collect();
        summary.sort();
        let keep = ContractEvaluation {
            contract_id: contract.id.clone(),
            inputs,
            next_on: outcome.next_change,
            quality: outcome.quality,
            findings: summary.join(","),
            unrouted,
        };
        if previous.as_ref() != Some(&keep) {
            changes.kept.push(keep);
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
    // What was kept of contracts no longer live (vanished, or gone) goes with them.
    let mut forgotten: Vec<String> = kept.into_keys().collect();
    forgotten.sort();
    changes.forgotten = forgotten;
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
    fn the_settings_fingerprint_follows_what_the_rules_read_and_nothing_else() {
        let base = Settings::defaults();
        let fp = settings_fingerprint(&base);
        assert_eq!(fp, settings_fingerprint(&Settings::defaults()), "stable");
        let changed = |change: &dyn Fn(&mut Settings)| {
            let mut s = base.clone();
            change(&mut s);
            settings_fingerprint(&s)
        };
        // An extra non-working day moves deadlines.
        let holiday = NaiveDate::from_ymd_opt(2026, 7, 15).unwrap();
        let cal = |s: &mut Settings| {
            s.calendar = Calendar::new(s.calendar.working_days(), vec![holiday])
                .with_rules(s.calendar.rules().to_vec())
        };
        assert_ne!(changed(&cal), fp);
        assert_ne!(changed(&|s| s.rules.closable.deadline_business_days += 1), fp);
        assert_ne!(changed(&|s| s.levels[0].max_business_days_left += 1), fp);
        assert_ne!(changed(&|s| s.rules.missing_documents.enabled = false), fp);
        // Mail and schedules change no conclusion.
        assert_eq!(changed(&|s| s.email.digest.max_rows += 1), fp);
        assert_eq!(changed(&|s| s.webhooks.clear()), fp);
    }

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
