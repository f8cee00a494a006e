//! Store, SQLite backend: the embedded default — one file in WAL mode, created if missing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::sqlite_writer::SqliteWriter;
use super::table::{Col, TableRow};
use super::*;
use crate::config::MAX_MMAP_MIB;
use crate::domain::Flag;

/// The embedded migrations of this backend.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite allows 32,766 bound values per statement; rows per multi-row INSERT stay well below.
const MAX_PARAMS: usize = 30_000;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file, for the bulk page writer; `None` for an in-memory database,
    /// which only the pool can reach.
    path: Option<PathBuf>,
    /// The bulk page writer's connection, opened at the first page (after migrations).
    writer: Arc<Mutex<Option<SqliteWriter>>>,
    /// How much of the file the bulk connection maps into memory (`PRAGMA mmap_size`).
    mmap_bytes: u64,
}

/// What the bulk connection maps of the file unless `store.sqlite_mmap_mib` says otherwise:
/// as much as SQLite allows ([`MAX_MMAP_MIB`]).
pub const DEFAULT_MMAP_BYTES: u64 = MAX_MMAP_MIB * 1024 * 1024;

impl SqliteStore {
    /// Sets how much of the file the bulk connection maps into memory (0: none, every page
    /// is read into its cache). Takes effect when that connection opens, at its first job.
    pub fn set_mmap_bytes(&mut self, bytes: u64) {
        self.mmap_bytes = bytes;
    }

    /// Opens (creating if missing) the database at a `sqlite://path` URL.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open { url: url.into(), message: e.to_string() })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across process crashes in WAL mode; only an OS crash can
            // lose the last transactions, which the next sync re-reads anyway.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // 4 MB of page cache per connection (the default is 2 MB): the bulk work, sync
            // pages and evaluation pages, runs on the bulk connection with a cache of its own
            // (sqlite_writer.rs); these serve small queries and full scans, which a bigger
            // cache would not speed up but would add to the peak memory.
            .pragma("cache_size", "-4096")
            // Pages of 16 KB (for a new database): contract rows are ~1 KB, and bigger pages
            // mean fewer b-tree splits and WAL frames per row written.
            .page_size(16_384);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await
            .map_err(|e| StoreError::Open { url: url.into(), message: e.to_string() })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let path = (!in_memory).then(|| opts.get_filename().to_path_buf());
        Ok(SqliteStore { pool, path, writer: Arc::default(), mmap_bytes: DEFAULT_MMAP_BYTES })
    }

    /// Runs `job` on the bulk connection (opened on first use), on a blocking thread.
    async fn with_bulk<T: Send + 'static>(
        &self,
        path: PathBuf,
        job: impl FnOnce(&mut SqliteWriter) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (writer, mmap_bytes) = (self.writer.clone(), self.mmap_bytes);
        tokio::task::spawn_blocking(move || {
            // A panic mid-job rolled its transaction back: the connection is still usable.
            let mut guard = writer.lock().unwrap_or_else(|p| p.into_inner());
            let w = match guard.as_mut() {
                Some(w) => w,
                None => guard.insert(SqliteWriter::open(&path, mmap_bytes)?),
            };
            job(w)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the bulk connection stopped: {e}")))?
    }

    /// Applies a pass's pages with the bulk writer: each page that arrives, with those
    /// waiting behind it, is one transaction on a blocking thread (see
    /// [`SqliteWriter::apply_batch`]). The bulk connection is held for a batch, not while
    /// waiting for the source, so an evaluation can read between batches. Without a file,
    /// one sqlx transaction per page.
    async fn write_pages(
        &self,
        mut pages: tokio::sync::mpsc::Receiver<PageWrite>,
        committed: tokio::sync::mpsc::UnboundedSender<Committed>,
    ) -> StoreResult<()> {
        let Some(path) = self.path.clone() else {
            return apply_pages_sqlx(&self.pool, pages, committed).await;
        };
        while let Some(first) = pages.recv().await {
            // The receiver goes to the blocking thread, which takes the waiting pages, and
            // comes back with the outcome.
            let (back, done) = self
                .with_bulk(path.clone(), move |w| {
                    let done = w.apply_batch(first, &mut pages);
                    Ok((pages, done))
                })
                .await?;
            pages = back;
            report_commit(&committed, done?);
        }
        Ok(())
    }

    /// Reads an evaluation page on the bulk connection: sqlx hands every row of every column
    /// across threads, which for the ~6 rows per contract an evaluation reads costs more
    /// than the rules themselves.
    async fn read_evaluation_page(&self, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
        let Some(path) = self.path.clone() else {
            return evaluation_page_sqlx(&self.pool, after, limit).await;
        };
        let after = after.to_string();
        self.with_bulk(path, move |w| w.evaluation_page(&after, limit)).await
    }

    /// Lists open findings on the bulk connection (a listing may hold a million rows).
    async fn read_open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredFinding>> {
        let Some(path) = self.path.clone() else {
            return open_findings_sorted_sqlx(&self.pool, after, limit).await;
        };
        let after = after.cloned();
        self.with_bulk(path, move |w| w.open_findings_sorted(after.as_ref(), limit)).await
    }

    /// Records an evaluation page's changes on the bulk connection (prepared statements).
    async fn write_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let Some(path) = self.path.clone() else {
            return apply_findings_sqlx(&self.pool, changes, events, on, at).await;
        };
        let (changes, events) = (changes.clone(), events.to_vec());
        self.with_bulk(path, move |w| w.apply_findings(&changes, &events, on, at)).await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Dates are `YYYY-MM-DD` text here.
fn d(date: Option<NaiveDate>) -> Option<String> {
    date.map(|d| d.format("%Y-%m-%d").to_string())
}

pub(super) fn parse_day(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|s| crate::domain::parse_day(&s))
}

/// The raw record, compressed on the parse workers (`cierre record` shows it).
fn push_raw(b: &mut sqlx::query_builder::Separated<'_, Sqlite, &'static str>, raw: &[u8]) {
    b.push_bind(raw.to_vec());
}

super::sql::sql_store!(SqliteStore, Sqlite, SqliteRow, "", "");
