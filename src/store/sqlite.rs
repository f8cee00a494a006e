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
}

impl SqliteStore {
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
        Ok(SqliteStore { pool, path, writer: Arc::default() })
    }

    /// Applies a sync page with the bulk writer, on a blocking thread.
    async fn write_page(&self, page: PageWrite) -> StoreResult<PageCounts> {
        let Some(path) = self.path.clone() else {
            return apply_page_sqlx(&self.pool, page).await;
        };
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            // A panic mid-page rolled its transaction back: the connection is still usable.
            let mut guard = writer.lock().unwrap_or_else(|p| p.into_inner());
            let w = match guard.as_mut() {
                Some(w) => w,
                None => guard.insert(SqliteWriter::open(&path)?),
            };
            w.apply_page(&page)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the page writer stopped: {e}")))?
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Dates are `YYYY-MM-DD` text here.
fn d(date: Option<NaiveDate>) -> Option<String> {
    date.map(|d| d.format("%Y-%m-%d").to_string())
}

fn parse_day(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
}

/// The raw record, compressed on the parse workers (`cierre record` shows it).
fn push_raw(b: &mut sqlx::query_builder::Separated<'_, Sqlite, &'static str>, raw: &[u8]) {
    b.push_bind(raw.to_vec());
}

super::sql::sql_store!(SqliteStore, Sqlite, SqliteRow, "");
