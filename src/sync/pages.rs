//! Sync, what the stage asks of the store: the pages it writes and the [`SyncStore`] trait
//! each backend implements (`store/<backend>/sync.rs`), so that the sync never names a
//! backend and the store depends on the sync, not the other way round.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::domain::{Contract, Document, Guarantee};
use crate::domain::{Dataset, Parsed};
use crate::error::StoreResult;

/// Where a dataset's current pass is.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncState {
    /// The number of the pass in progress.
    pub pass: i64,
    pub pass_started_at: DateTime<Utc>,
    /// The source cursor after the last committed page; `None` before the first page.
    pub cursor: Option<String>,
    /// What the pass was reading ([`crate::source::Source::fingerprint`]).
    pub fingerprint: Option<String>,
}

/// Which stored rows a complete pass read, so that those of them it did not see have
/// vanished from the source ([`SyncStore::finish_pass`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vouches {
    /// Every row of the dataset — of these entities when any (contracts and documents carry
    /// `nit_entidad`; guarantees do not, and are then vouched for whole).
    Rows { entities: Vec<String> },
    /// The guarantees of the live contracts of these entities (every live contract when
    /// none): the pass asked for those contracts' guarantees only.
    GuaranteesOfContracts { entities: Vec<String> },
    /// Nothing: the pass read only what changed since the last one; no row vanishes.
    Nothing,
}

/// How a pass ended ([`SyncStore::finish_pass`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// Rows of the scope not seen were marked vanished.
    Ended { vanished: u64 },
    /// More of the scope would have vanished than the guard allows: nothing was marked, and
    /// the pass is closed, so the next sync reads the source again.
    Held { would_vanish: u64, live: u64 },
    /// Another sync ended or replaced the pass meanwhile: nothing was marked.
    NotOpen,
}

/// A sync run as `cierre status` and `/readyz` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncRunSummary {
    pub dataset: String,
    /// `running`, `ok`, `degraded` (rows rejected), `held`, `failed`, `abandoned`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// A row rejected by the sync.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub locator: String,
    pub reason: String,
    /// The text as received (decoded lossily when it was not UTF-8).
    pub raw: String,
    /// The bytes as received, when they were not text.
    pub bytes: Option<Vec<u8>>,
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
    /// Keys seen before in the same pass (the last occurrence is kept).
    pub duplicate: u64,
}

impl std::ops::AddAssign for PageCounts {
    fn add_assign(&mut self, o: PageCounts) {
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
        self.duplicate += o.duplicate;
    }
}

/// Pages a writer committed in one transaction: how many, and what they did. Reported after
/// each commit, so a sync counts exactly what is in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub pages: u64,
    pub counts: PageCounts,
}

/// The counts of one dataset's sync, as recorded in `sync_runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    pub read: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Rows whose key an earlier row of the same pass had: counted here, not as new,
    /// changed or unchanged, so `read = new + changed + unchanged + duplicate + rejected +
    /// skipped`.
    pub duplicate: u64,
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
        self.duplicate += o.duplicate;
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
        self.duplicate += o.duplicate;
    }
}

/// A quarantined row, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRow {
    pub dataset: String,
    pub locator: String,
    pub reason: String,
    pub raw: String,
    pub bytes: Option<Vec<u8>>,
}

/// The synced datasets, their passes and sync runs, as the sync stage (and the status
/// views) use them. Futures are `Send` so jobs can run on any thread.
pub trait SyncStore: Send + Sync {
    fn sync_state(
        &self,
        dataset: Dataset,
    ) -> impl Future<Output = StoreResult<Option<SyncState>>> + Send;
    /// When the last complete pass over `dataset` started: the next one may read only the
    /// rows updated since (less a look-back). `None` before the first complete pass.
    fn watermark(
        &self,
        dataset: Dataset,
    ) -> impl Future<Output = StoreResult<Option<DateTime<Utc>>>> + Send;
    /// The `id_contrato` of every stored live contract of `entities` (every one when
    /// empty), sorted: the contracts whose guarantees a pass asks for.
    fn live_contract_ids(
        &self,
        entities: &[String],
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// Starts a new pass over the source `fingerprint` names (forgetting any cursor) and
    /// returns its number.
    fn begin_pass(
        &self,
        dataset: Dataset,
        at: DateTime<Utc>,
        fingerprint: &str,
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
    /// Ends a complete pass: the rows it [`Vouches`] for that it did not see are marked
    /// vanished (never deleted), the cursor is cleared, and the watermark becomes the
    /// pass's start. When more than `max_share` of the vouched live rows would vanish, none
    /// is marked and the pass is closed ([`PassEnd::Held`]); `None` accepts any share. A
    /// pass that is no longer the open one (another sync ended or replaced it meanwhile)
    /// ends nothing.
    fn finish_pass(
        &self,
        dataset: Dataset,
        pass: i64,
        vouches: &Vouches,
        max_share: Option<f64>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<PassEnd>> + Send;
    /// Records a sync run of `owner` (`host:pid`, [`crate::replica_id`]) as `running`.
    fn start_sync_run(
        &self,
        dataset: Dataset,
        source: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Runs still `running`, with their owners: `(id, owner)`.
    fn running_sync_runs(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<(i64, Option<String>)>>> + Send;
    /// Closes a run as `abandoned` if it is still `running`; whether it was.
    fn abandon_sync_run(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The latest run of each dataset.
    fn last_sync_runs(&self) -> impl Future<Output = StoreResult<Vec<SyncRunSummary>>> + Send;
    fn finish_sync_run(
        &self,
        id: i64,
        status: &str,
        counts: &SyncCounts,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// When the last sync of contracts that completed its pass finished.
    fn last_sync_success(&self) -> impl Future<Output = StoreResult<Option<DateTime<Utc>>>> + Send;
    fn quarantined(
        &self,
        dataset: Dataset,
    ) -> impl Future<Output = StoreResult<Vec<QuarantinedRow>>> + Send;
    fn count_rows(
        &self,
        dataset: Dataset,
        include_vanished: bool,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// The record as the source sent it (a zstd frame, see `source::raw::decompress`), by
    /// the dataset's key (`id_contrato`, `id_documento`, or the guarantee key).
    fn raw_record(
        &self,
        dataset: Dataset,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;
}
