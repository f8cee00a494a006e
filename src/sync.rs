//! Sync: plan (a full pass, or only what changed since the last one; guarantees of the
//! contracts in scope) → source pages → parse and hash (on blocking threads) → the store's
//! writer, which applies whole pages in transactions (upsert with change detection,
//! quarantine, cursor; pages already waiting share one) → vanished rows marked at the end
//! of a complete full pass, unless the guards hold it (an empty pass, or too much of the
//! scope gone). An interrupted pass resumes after its last committed page while the source
//! is unchanged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::domain::{Contract, Dataset, Document, Guarantee, Parsed};
use crate::source::record::{parse_contract, parse_document, parse_guarantee, storable};
use crate::source::{Page, PassPlan, Source};

mod pages;
pub use pages::{
    Committed, PageCounts, PageRecords, PageWrite, PassEnd, QuarantinedRow, Rejected, SyncCounts,
    SyncRunSummary, SyncState, SyncStore, Vouches,
};

/// What one dataset's sync did.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub dataset: &'static str,
    #[serde(flatten)]
    pub counts: SyncCounts,
    pub seconds: f64,
    /// Whether the pass read the whole scope (only then are vanished rows marked).
    pub complete: bool,
    /// Where and why rows were rejected (the first [`MAX_REPORTED`]; all are quarantined).
    pub rejected_rows: Vec<(String, String)>,
}

/// Rejected rows listed in a report; the quarantine table keeps them all.
pub const MAX_REPORTED: usize = 50;

/// Everything one `cierre sync` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub datasets: Vec<DatasetReport>,
}

impl SyncReport {
    /// The human summary `cierre sync` prints.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<11} {:>8} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8} {:>6} {:>8}\n",
            "dataset",
            "read",
            "new",
            "changed",
            "unchanged",
            "duplicate",
            "vanished",
            "rejected",
            "seconds",
            "pages",
            "retries"
        );
        for d in &self.datasets {
            let c = &d.counts;
            out.push_str(&format!(
                "{:<11} {:>8} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8.2} {:>6} {:>8}\n",
                d.dataset,
                c.read,
                c.new,
                c.changed,
                c.unchanged,
                c.duplicate,
                c.vanished,
                c.rejected,
                d.seconds,
                c.pages,
                c.retries
            ));
        }
        for d in &self.datasets {
            for (locator, reason) in &d.rejected_rows {
                out.push_str(&format!("rejected {} {locator}: {reason}\n", d.dataset));
            }
            if d.counts.rejected as usize > d.rejected_rows.len() {
                out.push_str(&format!(
                    "… and {} more rejected {} rows: see the quarantine table\n",
                    d.counts.rejected as usize - d.rejected_rows.len(),
                    d.dataset
                ));
            }
        }
        out
    }
}

/// The scope of a sync: which entities' rows belong to it.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `nit_entidad` values; empty = all.
    pub entities: Vec<String>,
    /// Contracts are also filtered by the administrator's `source.where`.
    pub filtered: bool,
}

impl Scope {
    /// Whether only some contracts are synced: their guarantees are then asked for by
    /// contract instead of reading the national dataset.
    fn restricted(&self) -> bool {
        !self.entities.is_empty() || self.filtered
    }

    fn contains(&self, nit: Option<&str>) -> bool {
        self.entities.is_empty() || nit.is_some_and(|n| self.entities.iter().any(|e| e == n))
    }
}

/// Told of a sync's progress, page by page: a progress bar on a terminal, log lines
/// otherwise.
pub trait Progress: Send + Sync {
    /// After each commit of the store's writer (one page or several), with the counts so far.
    fn page(&self, dataset: Dataset, counts: &SyncCounts);
    /// When the dataset's pass is complete.
    fn finished(&self, dataset: Dataset, counts: &SyncCounts);
}

/// Progress as log lines: one every ten pages.
#[derive(Debug, Default)]
pub struct LogProgress {
    /// Pages at the last line: a write may cover several pages, so lines are due when the
    /// count crosses a multiple of ten, not only when it lands on one.
    logged: std::sync::atomic::AtomicU64,
}

impl Progress for LogProgress {
    fn page(&self, dataset: Dataset, c: &SyncCounts) {
        let before = self.logged.swap(c.pages, std::sync::atomic::Ordering::Relaxed);
        if c.pages / 10 > before / 10 {
            tracing::info!(
                dataset = dataset.name(),
                pages = c.pages,
                read = c.read,
                new = c.new,
                changed = c.changed,
                rejected = c.rejected,
                retries = c.retries,
                "sync progress"
            );
        }
    }

    fn finished(&self, _dataset: Dataset, _counts: &SyncCounts) {}
}

/// How a sync runs, and what its passes may conclude without an operator's word.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// The largest share of the scope's live rows one pass may mark vanished.
    pub max_vanished_share: f64,
    /// The operator confirmed the drop (`cierre sync --accept-vanishing`): an empty pass, or
    /// any share vanished, is accepted.
    pub accept_vanishing: bool,
    /// Start a new full pass even where one was interrupted or only changes would be read
    /// (the periodic `resync`, `cierre sync --full`).
    pub fresh: bool,
    /// How far before the last complete pass's start an incremental pass reads again
    /// (`source.lookback_hours`): rows written late, clocks that disagree.
    pub lookback: chrono::Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_vanished_share: 0.05,
            accept_vanishing: false,
            fresh: false,
            lookback: chrono::Duration::hours(48),
        }
    }
}

/// A pass held by its guards ([`SyncOptions`]): nothing was marked vanished.
#[derive(Debug, thiserror::Error)]
#[error(
    "held, nothing marked vanished: {reason}. If the drop is real, confirm it with `cierre sync --accept-vanishing`"
)]
pub struct Held {
    pub reason: String,
}

/// Syncs every dataset the source has. A dataset that fails or is held does not stop the
/// others; the error names every one that did not complete.
pub async fn sync_all<S: SyncStore, R: Source>(
    store: &S,
    source: &R,
    scope: &Scope,
    options: SyncOptions,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> anyhow::Result<SyncReport> {
    close_abandoned_runs(store, clock).await?;
    let mut report = SyncReport::default();
    let mut failed = Vec::new();
    for dataset in [Dataset::Contracts, Dataset::Documents, Dataset::Guarantees] {
        if !source.has(dataset) {
            continue;
        }
        match sync_dataset(store, source, dataset, scope, options, clock, progress).await {
            Ok(r) => report.datasets.push(r),
            Err(e) => {
                tracing::error!(dataset = dataset.name(), error = %format!("{e:#}"), "sync did not complete");
                failed.push(format!("syncing {}: {e:#}", dataset.name()));
            }
        }
    }
    if failed.is_empty() { Ok(report) } else { Err(anyhow::anyhow!(failed.join("; "))) }
}

/// Runs left `running` by a process of this host that is gone are closed as abandoned; a
/// run of another host is its replica's to close. Runs recorded without an owner predate
/// owners and are closed too.
async fn close_abandoned_runs<S: SyncStore>(store: &S, clock: &dyn Clock) -> anyhow::Result<()> {
    for (id, owner) in store.running_sync_runs().await? {
        if owner.as_deref().is_none_or(crate::replica_gone)
            && store.abandon_sync_run(id, clock.now()).await?
        {
            tracing::warn!(run = id, owner = ?owner, "a sync run left running by a process that is gone was closed as abandoned");
        }
    }
    Ok(())
}

/// One page parsed: records to store, rows rejected, rows out of scope.
struct ParsedPage {
    records: PageRecords,
    rejected: Vec<Rejected>,
    read: u64,
    skipped: u64,
    cursor: String,
    last: bool,
    retries: u32,
}

fn parse_page(dataset: Dataset, page: Page, scope: &Scope) -> ParsedPage {
    let mut rejected = Vec::new();
    let mut skipped = 0;
    let read = page.records.len() as u64;
    macro_rules! parse_all {
        ($parse:expr, $in_scope:expr) => {{
            let mut ok = Vec::with_capacity(page.records.len());
            for rec in page.records {
                let text = match rec.text {
                    Ok(t) => t,
                    Err(reason) => {
                        let raw = rec
                            .bytes
                            .as_deref()
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .unwrap_or_default();
                        rejected.push(Rejected {
                            locator: storable(rec.locator),
                            reason: storable(reason),
                            raw: storable(raw),
                            bytes: rec.bytes,
                        });
                        continue;
                    }
                };
                match $parse(&text) {
                    Ok(p) => {
                        let p: Parsed<_> = p;
                        if $in_scope(&p.value) {
                            ok.push(p);
                        } else {
                            skipped += 1;
                        }
                    }
                    Err(reason) => rejected.push(Rejected {
                        locator: storable(rec.locator),
                        reason: storable(reason),
                        raw: storable(text),
                        bytes: None,
                    }),
                }
            }
            ok
        }};
    }
    let records = match dataset {
        Dataset::Contracts => PageRecords::Contracts(parse_all!(parse_contract, |c: &Contract| {
            scope.contains(c.entity_nit.as_deref())
        })),
        Dataset::Documents => PageRecords::Documents(parse_all!(parse_document, |d: &Document| {
            scope.contains(d.entity_nit.as_deref())
        })),
        // Guarantees carry no entity: they are kept, and reach the rules through their contract.
        Dataset::Guarantees => {
            PageRecords::Guarantees(parse_all!(parse_guarantee, |_: &Guarantee| true))
        }
    };
    ParsedPage {
        records,
        rejected,
        read,
        skipped,
        cursor: page.cursor,
        last: page.last,
        retries: page.retries,
    }
}

/// Contracts in a page from which a field the rules read can be missing everywhere only if
/// the source lost the column: SODA omits a null field from a record, so one record without
/// it says nothing, but a hundred without it say the column is gone.
const COLUMN_CHECK_ROWS: usize = 100;

/// The field the rules need that no contract of a page of at least [`COLUMN_CHECK_ROWS`]
/// has: `fecha_de_fin_del_contrato` or `estado_contrato`.
fn missing_rule_fields(records: &PageRecords) -> Option<&'static str> {
    let PageRecords::Contracts(rows) = records else { return None };
    if rows.len() < COLUMN_CHECK_ROWS {
        return None;
    }
    if rows.iter().all(|r| r.value.ends_on.is_none()) {
        Some("fecha_de_fin_del_contrato")
    } else if rows.iter().all(|r| r.value.state.is_none()) {
        Some("estado_contrato")
    } else {
        None
    }
}

/// Parses pages as they arrive on as many blocking threads as there are cores (parsing,
/// hashing and compressing are the CPU-heavy part of a sync), handing them to the writer in
/// source order. At most `workers` pages are being parsed at once, so memory stays bounded.
fn parse_stage(
    dataset: Dataset,
    mut pages: tokio::sync::mpsc::Receiver<Result<Page, crate::source::SourceError>>,
    scope: Scope,
) -> tokio::sync::mpsc::Receiver<anyhow::Result<ParsedPage>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    // Parsed pages are a third of their text (the raw record is compressed): a few may wait
    // for the writer, which then takes them in one transaction.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let scope = std::sync::Arc::new(scope);
        let mut in_flight: std::collections::VecDeque<tokio::task::JoinHandle<ParsedPage>> =
            std::collections::VecDeque::new();
        // A source error waits until the pages before it are handed over.
        let mut failed: Option<crate::source::SourceError> = None;
        let mut source_done = false;
        loop {
            tokio::select! {
                biased;
                parsed = async { in_flight.front_mut().expect("checked").await }, if !in_flight.is_empty() => {
                    in_flight.pop_front();
                    let parsed: anyhow::Result<ParsedPage> =
                        parsed.map_err(|e| anyhow::anyhow!("parser task failed: {e}"));
                    let stop = parsed.is_err();
                    if tx.send(parsed).await.is_err() || stop {
                        return;
                    }
                }
                page = pages.recv(), if !source_done && failed.is_none() && in_flight.len() < workers => {
                    match page {
                        Some(Ok(page)) => {
                            let scope = scope.clone();
                            in_flight.push_back(tokio::task::spawn_blocking(move || {
                                parse_page(dataset, page, &scope)
                            }));
                        }
                        Some(Err(e)) => failed = Some(e),
                        None => source_done = true,
                    }
                }
                else => break,
            }
        }
        if let Some(e) = failed {
            tx.send(Err(anyhow::Error::new(e))).await.ok();
        }
    });
    rx
}

/// What the next pass over `dataset` reads, what that read would be called
/// ([`Source::fingerprint`]), and the pass in progress, if any.
///
/// Documents and guarantees are written incrementally by SECOP II: after a complete pass, a
/// pass reads only the rows updated since it started (less the look-back), and the weekly
/// resync reads them all again. Contracts are rebuilt every night: always read whole.
/// Guarantees carry no entity: when the contracts are scoped, only theirs are asked for. An
/// interrupted full pass is resumed as one.
async fn plan_pass<S: SyncStore, R: Source>(
    store: &S,
    source: &R,
    dataset: Dataset,
    scope: &Scope,
    options: SyncOptions,
) -> anyhow::Result<(PassPlan, String, Option<SyncState>)> {
    let selective = source.selective() && dataset != Dataset::Contracts;
    let contracts = if selective && dataset == Dataset::Guarantees && scope.restricted() {
        Some(Arc::new(store.live_contract_ids(&scope.entities).await?))
    } else {
        None
    };
    let full = PassPlan { since: None, contracts };
    let since = match store.watermark(dataset).await? {
        Some(w) if selective && !options.fresh => Some(w - options.lookback),
        _ => None,
    };
    let plan = PassPlan { since, ..full.clone() };
    let fingerprint = source.fingerprint(dataset, &plan).await.context("looking at the source")?;
    let state = store.sync_state(dataset).await?;
    if let Some(st) = &state
        && plan.since.is_some()
        && st.fingerprint.as_deref() != Some(fingerprint.as_str())
    {
        let whole = source.fingerprint(dataset, &full).await.context("looking at the source")?;
        if st.fingerprint.as_deref() == Some(whole.as_str()) {
            return Ok((full, whole, state));
        }
    }
    Ok((plan, fingerprint, state))
}

/// Syncs one dataset: resumes an interrupted pass or starts a new one, applies each page
/// atomically, and marks vanished rows once a pass that vouches for them is complete.
pub async fn sync_dataset<S: SyncStore, R: Source>(
    store: &S,
    source: &R,
    dataset: Dataset,
    scope: &Scope,
    options: SyncOptions,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> anyhow::Result<DatasetReport> {
    let started = Instant::now();
    let now = clock.now();
    let (plan, fingerprint, state) = plan_pass(store, source, dataset, scope, options).await?;
    tracing::info!(
        dataset = dataset.name(),
        since = ?plan.since,
        contracts = plan.contracts.as_ref().map(|c| c.len()),
        "pass planned"
    );
    let (pass, resume) = match state {
        Some(state)
            if !options.fresh && state.fingerprint.as_deref() == Some(fingerprint.as_str()) =>
        {
            tracing::info!(dataset = dataset.name(), cursor = ?state.cursor, "resuming an interrupted pass");
            (state.pass, state.cursor)
        }
        Some(_) if options.fresh => (store.begin_pass(dataset, now, &fingerprint).await?, None),
        Some(state) => {
            tracing::warn!(
                dataset = dataset.name(),
                was = ?state.fingerprint,
                now = %fingerprint,
                "the source changed since the interrupted pass: it is discarded and a new one starts"
            );
            (store.begin_pass(dataset, now, &fingerprint).await?, None)
        }
        None => (store.begin_pass(dataset, now, &fingerprint).await?, None),
    };
    let fresh_pass = resume.is_none();
    let run_id = store.start_sync_run(dataset, source.name(), &crate::replica_id(), now).await?;
    let mut rejected_rows = Vec::new();
    let pass_run = PassRun { dataset, pass, seen_at: now, run_id };
    let result =
        run_pass(store, source, scope, &pass_run, &plan, resume, &mut rejected_rows, progress)
            .await;
    let mut counts = match result {
        Ok(c) => c,
        Err((counts, e)) => {
            let msg = format!("{e:#}");
            store.finish_sync_run(run_id, "failed", &counts, Some(&msg), clock.now()).await?;
            return Err(e);
        }
    };
    // A full pass that read nothing at all may not vanish anything: an empty export, or a
    // filter that matches nothing, says more about the download than about the contracts.
    // (An incremental pass that finds nothing changed is the usual day.)
    let empty = fresh_pass && counts.read == 0 && plan.since.is_none();
    let entities = scope.entities.clone();
    let vouches = match (&plan.since, &plan.contracts) {
        (Some(_), _) => Vouches::Nothing,
        (None, Some(_)) => Vouches::GuaranteesOfContracts { entities },
        (None, None) => Vouches::Rows { entities },
    };
    let max_share = match (options.accept_vanishing, empty) {
        (true, _) => None,
        (false, true) => Some(0.0),
        (false, false) => Some(options.max_vanished_share),
    };
    let held = match store.finish_pass(dataset, pass, &vouches, max_share, clock.now()).await? {
        PassEnd::Ended { vanished } => {
            counts.vanished = vanished;
            None
        }
        PassEnd::NotOpen => None,
        PassEnd::Held { would_vanish, .. } if empty => Some(Held {
            reason: format!(
                "the source returned no {} rows at all, so the {would_vanish} stored in scope would all be marked vanished",
                dataset.name()
            ),
        }),
        PassEnd::Held { would_vanish, live } => Some(Held {
            reason: format!(
                "{would_vanish} of the {live} {} in scope ({:.1} %) would be marked vanished, more than the {} % allowed (source.max_vanished_share)",
                dataset.name(),
                would_vanish as f64 * 100.0 / live.max(1) as f64,
                options.max_vanished_share * 100.0
            ),
        }),
    };
    if let Some(held) = held {
        let message = held.to_string();
        store.finish_sync_run(run_id, "held", &counts, Some(&message), clock.now()).await?;
        return Err(held.into());
    }
    progress.finished(dataset, &counts);
    let status = if counts.rejected > 0 { "degraded" } else { "ok" };
    store.finish_sync_run(run_id, status, &counts, None, clock.now()).await?;
    tracing::info!(
        dataset = dataset.name(),
        read = counts.read,
        new = counts.new,
        changed = counts.changed,
        unchanged = counts.unchanged,
        duplicate = counts.duplicate,
        vanished = counts.vanished,
        rejected = counts.rejected,
        "sync finished"
    );
    Ok(DatasetReport {
        dataset: dataset.name(),
        counts,
        seconds: started.elapsed().as_secs_f64(),
        complete: true,
        rejected_rows,
    })
}

/// Which pass a run of [`run_pass`] belongs to.
struct PassRun {
    dataset: Dataset,
    pass: i64,
    seen_at: DateTime<Utc>,
    run_id: i64,
}

#[allow(clippy::too_many_arguments)]
async fn run_pass<S: SyncStore, R: Source>(
    store: &S,
    source: &R,
    scope: &Scope,
    run: &PassRun,
    plan: &PassPlan,
    resume: Option<String>,
    rejected_rows: &mut Vec<(String, String)>,
    progress: &dyn Progress,
) -> Result<SyncCounts, (SyncCounts, anyhow::Error)> {
    let dataset = run.dataset;
    let pages = source.pages(dataset, plan, resume);
    let mut parsed_pages = parse_stage(dataset, pages, scope.clone());
    // The counts so far, and what each page handed to the writer but not yet committed
    // counted when parsed: counts follow commits, so they say what is in the store.
    let tally: Mutex<(SyncCounts, VecDeque<SyncCounts>)> = Mutex::default();
    let (page_tx, page_rx) = tokio::sync::mpsc::channel::<PageWrite>(2);
    let (committed_tx, mut committed_rx) = tokio::sync::mpsc::unbounded_channel::<Committed>();
    // Where the pass's time goes: waiting for parsed pages (the source and the parsers are
    // the bottleneck) or for the writer to take them (the store is).
    let (mut waiting, mut writing) = (Duration::ZERO, Duration::ZERO);

    let write = store.apply_pages(page_rx, committed_tx);
    // Hands parsed pages to the writer; true once the page that ends the pass is handed.
    let feed = async {
        let page_tx = page_tx;
        let fed: anyhow::Result<bool> = async {
            loop {
                let t = Instant::now();
                let Some(parsed) = parsed_pages.recv().await else { return Ok(false) };
                waiting += t.elapsed();
                let parsed = parsed?;
                if let Some(missing) = missing_rule_fields(&parsed.records) {
                    anyhow::bail!(
                        "none of the {} contracts of the page at cursor {} has {missing}: the source lacks a column the rules need, and nothing of the page was stored",
                        parsed.records.len(),
                        parsed.cursor
                    );
                }
                for r in &parsed.rejected {
                    tracing::warn!(dataset = dataset.name(), locator = %r.locator, reason = %r.reason, "row quarantined");
                    if rejected_rows.len() < MAX_REPORTED {
                        rejected_rows.push((r.locator.clone(), r.reason.clone()));
                    }
                }
                let counted = SyncCounts {
                    read: parsed.read,
                    skipped: parsed.skipped,
                    rejected: parsed.rejected.len() as u64,
                    pages: 1,
                    retries: u64::from(parsed.retries),
                    ..SyncCounts::default()
                };
                tally.lock().unwrap_or_else(|p| p.into_inner()).1.push_back(counted);
                let last = parsed.last;
                let page = PageWrite {
                    dataset,
                    sync_run_id: run.run_id,
                    records: parsed.records,
                    rejected: parsed.rejected,
                    pass: run.pass,
                    seen_at: run.seen_at,
                    cursor: parsed.cursor,
                };
                let t = Instant::now();
                // A closed channel means the writer stopped; its error says why.
                if page_tx.send(page).await.is_err() {
                    return Ok(false);
                }
                writing += t.elapsed();
                if last {
                    return Ok(true);
                }
            }
        }
        .await;
        // The writer commits what it has and ends once no more pages can come.
        drop(page_tx);
        fed
    };
    let report = async {
        while let Some(done) = committed_rx.recv().await {
            let mut guard = tally.lock().unwrap_or_else(|p| p.into_inner());
            let (counts, pending) = &mut *guard;
            for page in pending.drain(..(done.pages as usize).min(pending.len())) {
                *counts += page;
            }
            *counts += done.counts;
            progress.page(dataset, counts);
        }
    };
    let (written, fed, ()) = tokio::join!(write, feed, report);
    let counts = tally.into_inner().unwrap_or_else(|p| p.into_inner()).0;
    tracing::debug!(
        dataset = dataset.name(),
        waiting_for_pages_s = waiting.as_secs_f64(),
        waiting_for_writer_s = writing.as_secs_f64(),
        "pass timing"
    );
    if let Err(e) = written {
        return Err((counts, anyhow::Error::new(e).context("writing a page")));
    }
    match fed {
        Ok(true) => Ok(counts),
        Err(e) => Err((counts, e)),
        // The source stopped without saying the pass was complete (a crashed reader): the
        // committed pages stay, and the next sync resumes after them.
        Ok(false) => {
            Err((counts, anyhow::anyhow!("the source ended before the end of the dataset")))
        }
    }
}
