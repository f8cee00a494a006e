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

/// The synced datasets, their passes and sync runs, as the sync stage (and the status
/// views) use them. Futures are `Send` so jobs can run on any thread.
pub trait SyncStore: Send + Sync {
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
