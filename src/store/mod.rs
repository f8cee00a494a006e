//! Store: the one place state lives — synced records, sync progress, quarantine, findings
//! and their history, the notification outbox and the job runs. One trait, one
//! implementation per backend (SQLite now; PostgreSQL is the second implementation).

mod eval_sql;
pub mod postgres;
mod sql;
pub mod sqlite;
mod sqlite_eval;
mod sqlite_writer;
pub mod table;

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Contract, Dataset, Document, Finding, Guarantee, Parsed, StoredFinding};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Why a store operation failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot open the store at {url}: {message}")]
    Open { url: String, message: String },
    #[error("database error: {0}")]
    Writer(#[from] rusqlite::Error),
    #[error("stored data is not what this version expects: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Database(e) => {
                matches!(
                    e,
                    sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
                ) || e.as_database_error().is_some_and(|d| {
                    // SQLITE_BUSY / SQLITE_LOCKED: another writer holds the database.
                    matches!(d.code().as_deref(), Some("5") | Some("6"))
                })
            }
            StoreError::Writer(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Where a dataset's current pass is.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncState {
    /// The number of the pass in progress.
    pub pass: i64,
    pub pass_started_at: DateTime<Utc>,
    /// The source cursor after the last committed page; `None` before the first page.
    pub cursor: Option<String>,
}

/// A row rejected by the sync.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub locator: String,
    pub reason: String,
    pub raw: String,
}

/// The parsed records of one page, of one dataset.
#[derive(Debug)]
pub enum PageRecords {
    Contracts(Vec<Parsed<Contract>>),
    Documents(Vec<Parsed<Document>>),
    Guarantees(Vec<Parsed<Guarantee>>),
}

impl PageRecords {
    pub fn len(&self) -> usize {
        match self {
            PageRecords::Contracts(r) => r.len(),
            PageRecords::Documents(r) => r.len(),
            PageRecords::Guarantees(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One page to apply atomically: records, rejects and the cursor after it.
#[derive(Debug)]
pub struct PageWrite {
    pub dataset: Dataset,
    pub sync_run_id: i64,
    pub records: PageRecords,
    pub rejected: Vec<Rejected>,
    /// The pass: every row it stores (new or changed) is marked with its number and every
    /// key it finds unchanged is listed under it in `sync_seen`, so rows of the scope not
    /// seen by the end of the pass are those marked with an older one and not listed.
    pub pass: i64,
    /// When the rows were seen (`last_seen`).
    pub seen_at: DateTime<Utc>,
    pub cursor: String,
}

/// What a page did to the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
}

impl std::ops::AddAssign for PageCounts {
    fn add_assign(&mut self, o: PageCounts) {
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
    }
}

/// Pages a writer committed in one transaction: how many, and what they did. Reported after
/// each commit, so a sync counts exactly what is in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub pages: u64,
    pub counts: PageCounts,
}

/// Reports a commit to the sync. A sync that stopped listening is going away; the pages are
/// stored all the same.
fn report_commit(committed: &tokio::sync::mpsc::UnboundedSender<Committed>, done: Committed) {
    if committed.send(done).is_err() {
        tracing::debug!("committed pages were not reported");
    }
}

/// The counts of one dataset's sync, as recorded in `sync_runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    pub read: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub vanished: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub pages: u64,
    pub retries: u64,
}

impl std::ops::AddAssign for SyncCounts {
    fn add_assign(&mut self, o: SyncCounts) {
        self.read += o.read;
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
        self.vanished += o.vanished;
        self.rejected += o.rejected;
        self.skipped += o.skipped;
        self.pages += o.pages;
        self.retries += o.retries;
    }
}

impl std::ops::AddAssign<PageCounts> for SyncCounts {
    fn add_assign(&mut self, o: PageCounts) {
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
    }
}

/// A quarantined row, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRow {
    pub dataset: String,
    pub locator: String,
    pub reason: String,
    pub raw: String,
}

/// Where a page of [`Store::open_findings_sorted`] ends: the sort key of its last finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingCursor {
    pub deadline: NaiveDate,
    pub contract_id: String,
    pub kind: String,
    pub stage: String,
}

impl FindingCursor {
    pub fn of(f: &Finding) -> FindingCursor {
        FindingCursor {
            deadline: f.deadline,
            contract_id: f.contract_id.clone(),
            kind: f.kind.as_str().to_string(),
            stage: f.stage_str().to_string(),
        }
    }
}

/// The documents and guarantees of a range of contracts, for the rules.
#[derive(Debug, Default)]
pub struct DossierFacts {
    /// Each document with the id of the contract it counts for: its own
    /// (`n_mero_de_contrato`), or each contract of its process when it has none. The same
    /// document may come twice for a contract; deduplicate by `id_documento`.
    pub documents: Vec<(String, Document)>,
    pub guarantees: Vec<Guarantee>,
}

/// What [`Store::evaluation_page`] reads.
#[derive(Debug, Default)]
pub struct EvaluationPage {
    pub contracts: Vec<Contract>,
    /// The end of the id range read: the last contract, or `None` on the last page.
    pub up_to: Option<String>,
    pub facts: DossierFacts,
    pub open: Vec<StoredFinding>,
}

/// What an evaluation changes in the stored findings.
#[derive(Debug, Default, Clone)]
pub struct FindingChanges {
    pub opened: Vec<Finding>,
    /// Open findings whose level changed (`escalated` when more urgent).
    pub relevelled: Vec<(i64, Finding, &'static str)>,
    /// Open findings still true whose conclusion moved (reasons, dates, missing documents;
    /// not the days left alone, which are counted whenever findings are read).
    pub refreshed: Vec<(i64, Finding)>,
    pub resolved: Vec<i64>,
}

/// An item to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewOutboxItem {
    pub idempotency_key: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// The recipient address or the endpoint URL.
    pub target: String,
    pub subject: Option<String>,
    /// Email Message-ID or webhook-id: the same on every attempt.
    pub message_id: Option<String>,
    /// The formatted email, or the webhook body.
    pub payload: String,
}

/// An outbox item as stored.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub idempotency_key: String,
    pub channel: String,
    pub target: String,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// The process holding (or that last held) the claim.
    pub claimed_by: Option<String>,
}

/// A target's delivery health.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHealth {
    pub target: String,
    pub consecutive_failures: i64,
    pub suspended_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// How many outbox items are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting for their first attempt.
    pub pending: u64,
    /// Failed before, waiting for a retry.
    pub retrying: u64,
    pub sending: u64,
    pub sent: u64,
    pub dead: u64,
}

/// One run of a job, for the run history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    pub job: String,
    /// The slot the run belongs to: one run per (job, slot).
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `ok` or `failed`.
    pub outcome: String,
    pub counts: serde_json::Value,
    pub error: Option<String>,
}

/// The store, as every stage sees it. Futures are `Send` so jobs can run on any thread.
pub trait Store: Send + Sync {
    /// Applies pending migrations.
    fn migrate(&self) -> impl Future<Output = StoreResult<()>> + Send;

    // --- sync
    fn sync_state(
        &self,
        dataset: Dataset,
    ) -> impl Future<Output = StoreResult<Option<SyncState>>> + Send;
    /// Starts a new pass (forgetting any cursor) and returns its number.
    fn begin_pass(
        &self,
        dataset: Dataset,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Applies the pages received until `pages` closes, each commit reported on `committed`.
    /// A page is never half-applied: its rows, rejects and cursor are in one transaction; a
    /// backend may put several waiting pages in one. On an error the open transaction is
    /// rolled back, so the pages reported are exactly those in the store.
    fn apply_pages(
        &self,
        pages: tokio::sync::mpsc::Receiver<PageWrite>,
        committed: tokio::sync::mpsc::UnboundedSender<Committed>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Ends a complete pass: rows of the scope not seen in it are marked vanished (never
    /// deleted), and the cursor is cleared. `entities` empty = the whole table. A pass that
    /// is no longer the open one (another sync ended or replaced it meanwhile) ends nothing
    /// and returns 0.
    fn finish_pass(
        &self,
        dataset: Dataset,
        pass: i64,
        entities: &[String],
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    fn start_sync_run(
        &self,
        dataset: Dataset,
        source: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    fn finish_sync_run(
        &self,
        id: i64,
        status: &str,
        counts: &SyncCounts,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn quarantined(
        &self,
        dataset: Dataset,
    ) -> impl Future<Output = StoreResult<Vec<QuarantinedRow>>> + Send;
    fn count_rows(
        &self,
        dataset: Dataset,
        include_vanished: bool,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    // --- evaluation
    fn contract(&self, id: &str) -> impl Future<Output = StoreResult<Option<Contract>>> + Send;
    fn open_findings(&self) -> impl Future<Output = StoreResult<Vec<StoredFinding>>> + Send;
    /// The record as the source sent it (a zstd frame, see `source::raw::decompress`), by
    /// the dataset's key (`id_contrato`, `id_documento`, or the guarantee key).
    fn raw_record(
        &self,
        dataset: Dataset,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;
    /// One page of an evaluation: up to `limit` contracts after `after` (in id order), with
    /// the documents, guarantees and open findings of their id range — up to the last
    /// contract, or without bound on the last page, so that findings of contracts gone since
    /// are seen too.
    fn evaluation_page(
        &self,
        after: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<EvaluationPage>> + Send;
    /// Open findings most urgent first (earliest deadline, then contract id, kind, stage),
    /// the page after `after`. Their business days left are as stored, counted by the
    /// evaluation that last wrote them: readers recount ([`Finding::count_days_from`]).
    fn open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<StoredFinding>>> + Send;
    /// Records the changes and queues their notifications (`events`) in one transaction, so
    /// a change is never recorded without its webhook events, nor the other way round.
    /// Returns how many findings it opened (another replica may have opened some first).
    fn apply_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Each event of a finding: (event, level, date).
    fn finding_history(
        &self,
        finding_id: i64,
    ) -> impl Future<Output = StoreResult<Vec<(String, String, NaiveDate)>>> + Send;

    // --- outbox
    /// Inserts unless an item with the same idempotency key exists; true when inserted.
    fn enqueue(
        &self,
        item: &NewOutboxItem,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Claims up to `limit` due items (pending, or sending with an expired lease), skipping
    /// targets suspended at `now`.
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        claimer: &str,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;
    fn mark_sent(&self, id: i64, at: DateTime<Utc>)
    -> impl Future<Output = StoreResult<()>> + Send;
    /// Gives a claimed item back unsent, its attempt not counted, due again at `at`.
    fn release(&self, id: i64, at: DateTime<Utc>) -> impl Future<Output = StoreResult<()>> + Send;
    /// Records a failed attempt: retried at `retry_at`, or dead when `None`.
    fn mark_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Notes a delivery outcome for a target: success resets it, a failure counts. Returns
    /// the new health.
    fn record_endpoint(
        &self,
        target: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<EndpointHealth>> + Send;
    /// Suspends a target: its items are not claimed before `until`.
    fn suspend_endpoint(
        &self,
        target: &str,
        until: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn endpoints(&self) -> impl Future<Output = StoreResult<Vec<EndpointHealth>>> + Send;
    fn outbox_counts(&self) -> impl Future<Output = StoreResult<OutboxCounts>> + Send;
    fn outbox_items(&self) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;

    // --- runs
    fn record_run(&self, run: &JobRun) -> impl Future<Output = StoreResult<()>> + Send;
    /// Claims a scheduled slot: true when this caller is the one to run it (the row
    /// `UNIQUE (job, scheduled_for)` makes a slot run once, across replicas too).
    fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Runs left `running` by a process that died are marked `abandoned`; returns how many.
    fn abandon_running(&self, at: DateTime<Utc>) -> impl Future<Output = StoreResult<u64>> + Send;
    /// The latest slot of `job` in the history.
    fn last_slot(
        &self,
        job: &str,
    ) -> impl Future<Output = StoreResult<Option<DateTime<Utc>>>> + Send;
    /// The latest run of each job.
    fn last_runs(&self) -> impl Future<Output = StoreResult<Vec<JobRun>>> + Send;
    /// The most recent runs, newest first.
    fn runs(&self, limit: u32) -> impl Future<Output = StoreResult<Vec<JobRun>>> + Send;
    /// When the last sync of contracts that completed its pass finished.
    fn last_sync_success(&self) -> impl Future<Output = StoreResult<Option<DateTime<Utc>>>> + Send;
    /// Open findings counted by kind and level.
    fn findings_summary(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<(String, String, u64)>>> + Send;
}

/// The store named by `store.url`: `sqlite://…` or `postgres://…`.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the store at `url`, choosing the backend by the scheme.
    pub async fn open(url: &str) -> StoreResult<AnyStore> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(PgStore::open(url).await?))
        } else {
            Ok(AnyStore::Sqlite(SqliteStore::open(url).await?))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

// Every call goes to the backend in use.
impl Store for AnyStore {
    async fn migrate(&self) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.migrate().await,
            AnyStore::Postgres(s) => s.migrate().await,
        }
    }
    async fn sync_state(&self, dataset: Dataset) -> StoreResult<Option<SyncState>> {
        match self {
            AnyStore::Sqlite(s) => s.sync_state(dataset).await,
            AnyStore::Postgres(s) => s.sync_state(dataset).await,
        }
    }
    async fn begin_pass(&self, dataset: Dataset, at: DateTime<Utc>) -> StoreResult<i64> {
        match self {
            AnyStore::Sqlite(s) => s.begin_pass(dataset, at).await,
            AnyStore::Postgres(s) => s.begin_pass(dataset, at).await,
        }
    }
    async fn apply_pages(
        &self,
        pages: tokio::sync::mpsc::Receiver<PageWrite>,
        committed: tokio::sync::mpsc::UnboundedSender<Committed>,
    ) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.apply_pages(pages, committed).await,
            AnyStore::Postgres(s) => s.apply_pages(pages, committed).await,
        }
    }
    async fn finish_pass(
        &self,
        dataset: Dataset,
        pass: i64,
        entities: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        match self {
            AnyStore::Sqlite(s) => s.finish_pass(dataset, pass, entities, at).await,
            AnyStore::Postgres(s) => s.finish_pass(dataset, pass, entities, at).await,
        }
    }
    async fn start_sync_run(
        &self,
        dataset: Dataset,
        source: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        match self {
            AnyStore::Sqlite(s) => s.start_sync_run(dataset, source, at).await,
            AnyStore::Postgres(s) => s.start_sync_run(dataset, source, at).await,
        }
    }
    async fn finish_sync_run(
        &self,
        id: i64,
        status: &str,
        counts: &SyncCounts,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.finish_sync_run(id, status, counts, error, at).await,
            AnyStore::Postgres(s) => s.finish_sync_run(id, status, counts, error, at).await,
        }
    }
    async fn quarantined(&self, dataset: Dataset) -> StoreResult<Vec<QuarantinedRow>> {
        match self {
            AnyStore::Sqlite(s) => s.quarantined(dataset).await,
            AnyStore::Postgres(s) => s.quarantined(dataset).await,
        }
    }
    async fn count_rows(&self, dataset: Dataset, include_vanished: bool) -> StoreResult<u64> {
        match self {
            AnyStore::Sqlite(s) => s.count_rows(dataset, include_vanished).await,
            AnyStore::Postgres(s) => s.count_rows(dataset, include_vanished).await,
        }
    }
    async fn contract(&self, id: &str) -> StoreResult<Option<Contract>> {
        match self {
            AnyStore::Sqlite(s) => s.contract(id).await,
            AnyStore::Postgres(s) => s.contract(id).await,
        }
    }
    async fn open_findings(&self) -> StoreResult<Vec<StoredFinding>> {
        match self {
            AnyStore::Sqlite(s) => s.open_findings().await,
            AnyStore::Postgres(s) => s.open_findings().await,
        }
    }
    async fn raw_record(&self, dataset: Dataset, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self {
            AnyStore::Sqlite(s) => s.raw_record(dataset, key).await,
            AnyStore::Postgres(s) => s.raw_record(dataset, key).await,
        }
    }
    async fn evaluation_page(&self, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
        match self {
            AnyStore::Sqlite(s) => s.evaluation_page(after, limit).await,
            AnyStore::Postgres(s) => s.evaluation_page(after, limit).await,
        }
    }
    async fn open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredFinding>> {
        match self {
            AnyStore::Sqlite(s) => s.open_findings_sorted(after, limit).await,
            AnyStore::Postgres(s) => s.open_findings_sorted(after, limit).await,
        }
    }
    async fn apply_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        match self {
            AnyStore::Sqlite(s) => s.apply_findings(changes, events, on, at).await,
            AnyStore::Postgres(s) => s.apply_findings(changes, events, on, at).await,
        }
    }
    async fn finding_history(
        &self,
        finding_id: i64,
    ) -> StoreResult<Vec<(String, String, NaiveDate)>> {
        match self {
            AnyStore::Sqlite(s) => s.finding_history(finding_id).await,
            AnyStore::Postgres(s) => s.finding_history(finding_id).await,
        }
    }
    async fn enqueue(&self, item: &NewOutboxItem, at: DateTime<Utc>) -> StoreResult<bool> {
        match self {
            AnyStore::Sqlite(s) => s.enqueue(item, at).await,
            AnyStore::Postgres(s) => s.enqueue(item, at).await,
        }
    }
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        claimer: &str,
    ) -> StoreResult<Vec<OutboxItem>> {
        match self {
            AnyStore::Sqlite(s) => s.claim_due(now, lease_until, limit, claimer).await,
            AnyStore::Postgres(s) => s.claim_due(now, lease_until, limit, claimer).await,
        }
    }
    async fn mark_sent(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.mark_sent(id, at).await,
            AnyStore::Postgres(s) => s.mark_sent(id, at).await,
        }
    }
    async fn release(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.release(id, at).await,
            AnyStore::Postgres(s) => s.release(id, at).await,
        }
    }
    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.mark_failed(id, error, retry_at).await,
            AnyStore::Postgres(s) => s.mark_failed(id, error, retry_at).await,
        }
    }
    async fn record_endpoint(
        &self,
        target: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<EndpointHealth> {
        match self {
            AnyStore::Sqlite(s) => s.record_endpoint(target, error, at).await,
            AnyStore::Postgres(s) => s.record_endpoint(target, error, at).await,
        }
    }
    async fn suspend_endpoint(&self, target: &str, until: DateTime<Utc>) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.suspend_endpoint(target, until).await,
            AnyStore::Postgres(s) => s.suspend_endpoint(target, until).await,
        }
    }
    async fn endpoints(&self) -> StoreResult<Vec<EndpointHealth>> {
        match self {
            AnyStore::Sqlite(s) => s.endpoints().await,
            AnyStore::Postgres(s) => s.endpoints().await,
        }
    }
    async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        match self {
            AnyStore::Sqlite(s) => s.outbox_counts().await,
            AnyStore::Postgres(s) => s.outbox_counts().await,
        }
    }
    async fn outbox_items(&self) -> StoreResult<Vec<OutboxItem>> {
        match self {
            AnyStore::Sqlite(s) => s.outbox_items().await,
            AnyStore::Postgres(s) => s.outbox_items().await,
        }
    }
    async fn record_run(&self, run: &JobRun) -> StoreResult<()> {
        match self {
            AnyStore::Sqlite(s) => s.record_run(run).await,
            AnyStore::Postgres(s) => s.record_run(run).await,
        }
    }
    async fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        match self {
            AnyStore::Sqlite(s) => s.claim_run(job, slot, at).await,
            AnyStore::Postgres(s) => s.claim_run(job, slot, at).await,
        }
    }
    async fn abandon_running(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        match self {
            AnyStore::Sqlite(s) => s.abandon_running(at).await,
            AnyStore::Postgres(s) => s.abandon_running(at).await,
        }
    }
    async fn last_slot(&self, job: &str) -> StoreResult<Option<DateTime<Utc>>> {
        match self {
            AnyStore::Sqlite(s) => s.last_slot(job).await,
            AnyStore::Postgres(s) => s.last_slot(job).await,
        }
    }
    async fn last_runs(&self) -> StoreResult<Vec<JobRun>> {
        match self {
            AnyStore::Sqlite(s) => s.last_runs().await,
            AnyStore::Postgres(s) => s.last_runs().await,
        }
    }
    async fn runs(&self, limit: u32) -> StoreResult<Vec<JobRun>> {
        match self {
            AnyStore::Sqlite(s) => s.runs(limit).await,
            AnyStore::Postgres(s) => s.runs(limit).await,
        }
    }
    async fn last_sync_success(&self) -> StoreResult<Option<DateTime<Utc>>> {
        match self {
            AnyStore::Sqlite(s) => s.last_sync_success().await,
            AnyStore::Postgres(s) => s.last_sync_success().await,
        }
    }
    async fn findings_summary(&self) -> StoreResult<Vec<(String, String, u64)>> {
        match self {
            AnyStore::Sqlite(s) => s.findings_summary().await,
            AnyStore::Postgres(s) => s.findings_summary().await,
        }
    }
}
