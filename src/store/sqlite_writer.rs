//! Store, SQLite bulk page writer: applies sync pages through prepared statements on a
//! connection of its own (rusqlite on the same bundled SQLite as sqlx). It exists because the
//! page upsert is the hot path of a sync: per-row prepared statements avoid building and
//! re-parsing 30,000-parameter SQL per page and run several times faster. The evaluation's
//! reads and writes use the same connection (`sqlite_eval.rs`); other queries go through
//! sqlx. The connections share the database file in WAL mode.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::table::{Col, TableRow};
use super::{Committed, PageCounts, PageRecords, PageWrite, StoreError, StoreResult};
use crate::domain::Parsed;
use tokio::sync::mpsc;

/// The writer's connection.
pub struct SqliteWriter {
    pub(super) conn: Connection,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

pub(super) fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Writer(e)
}

/// Timestamps as sqlx writes them, so both connections store the same text.
pub(super) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

impl SqliteWriter {
    /// Opens a second connection to the (already migrated) database file, mapping up to
    /// `mmap_bytes` of it into memory.
    pub fn open(path: &Path, mmap_bytes: u64) -> StoreResult<SqliteWriter> {
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        // The same settings as the pool's (see sqlite.rs), and a 32 MB page cache: the
        // writer looks up and inserts every key of a page at a random place of the key
        // index, and each miss costs a 16 KB read. The index of 1,000,000 contracts
        // (~28 MB) stays cached: with 16 MB the sync of a million rows took 27 s instead of 20.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 4096; \
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(err)?;
        // Pages read through a memory map of the file rather than copied into the cache: an
        // evaluation walks contracts, documents, guarantees and findings in contract order,
        // which is not the order they were stored in, so nearly every row is a page the
        // cache does not hold. A first 1,000,000-contract evaluation spent 19.7 s of its 67.6 in
        // the kernel, mostly copying those 16 KB pages; mapped, it reads them where the kernel's
        // page cache already has them. The mapped pages count in the process's resident
        // memory, but they are the kernel's file cache, shared and reclaimable, not memory
        // this process allocates. Writes still go through the WAL.
        conn.execute_batch(&format!("PRAGMA mmap_size = {mmap_bytes};")).map_err(err)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(SqliteWriter { conn })
    }

    /// Applies `first` and the pages already waiting behind it in one transaction, until
    /// [`COMMIT_ROWS`] rows or [`COMMIT_AFTER`] (checked after each page, so a batch may
    /// pass them by one page), and returns what the committed batch did. When the writer is
    /// the bottleneck, batches grow and each b-tree page of the key index, which random keys
    /// touch all over, is written once per commit rather than once per source page: at a
    /// million contracts that was half the bytes written. Rows are held one page at a time;
    /// only the transaction grows. A page that fails rolls the whole batch back.
    pub fn apply_batch(
        &mut self,
        first: PageWrite,
        pages: &mut mpsc::Receiver<PageWrite>,
    ) -> StoreResult<Committed> {
        let started = Instant::now();
        let tx =
            self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let (mut done, mut rows, mut page) = (Committed::default(), 0, first);
        loop {
            rows += page.records.len();
            done.counts += write_page(&tx, &page)?;
            done.pages += 1;
            if rows >= COMMIT_ROWS || started.elapsed() >= COMMIT_AFTER {
                break;
            }
            match pages.try_recv() {
                Ok(next) => page = next,
                Err(_) => break,
            }
        }
        tx.commit().map_err(err)?;
        tracing::trace!(pages = done.pages, rows, "pages committed");
        Ok(done)
    }
}

/// Rows after which a batch is committed (see [`SqliteWriter::apply_batch`]).
pub const COMMIT_ROWS: usize = 100_000;
/// How long after its start a batch is committed while pages keep coming.
pub const COMMIT_AFTER: Duration = Duration::from_secs(5);

/// One page inside the caller's transaction: rows, rejects, and the cursor after them.
fn write_page(tx: &Connection, page: &PageWrite) -> StoreResult<PageCounts> {
    let seen_at = ts(page.seen_at);
    let name = page.dataset.name();
    let counts = match &page.records {
        PageRecords::Contracts(rows) => upsert(tx, rows, name, page.pass, &seen_at)?,
        PageRecords::Documents(rows) => upsert(tx, rows, name, page.pass, &seen_at)?,
        PageRecords::Guarantees(rows) => upsert(tx, rows, name, page.pass, &seen_at)?,
    };
    if !page.rejected.is_empty() {
        let mut q = tx
            .prepare_cached(
                "INSERT INTO quarantine (sync_run_id, dataset, locator, reason, raw, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(err)?;
        for r in &page.rejected {
            q.execute(params![
                page.sync_run_id,
                page.dataset.name(),
                r.locator,
                r.reason,
                r.raw,
                seen_at
            ])
            .map_err(err)?;
        }
    }
    tx.execute(
        "UPDATE sync_state SET cursor = ?1, updated_at = ?2 WHERE dataset = ?3",
        params![page.cursor, ts(Utc::now()), page.dataset.name()],
    )
    .map_err(err)?;
    Ok(counts)
}

/// `YYYY-MM-DD`, as sqlite.rs stores dates, written into `buf`: a page binds several dates
/// per row, and formatting each into a new `String` cost more than binding it.
fn iso_date(d: chrono::NaiveDate, buf: &mut [u8; 10]) -> std::borrow::Cow<'_, str> {
    use chrono::Datelike;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        // Not a date SECOP II publishes; stored as chrono writes it.
        return d.format("%Y-%m-%d").to_string().into();
    }
    let digits = [y / 1000, y / 100 % 10, y / 10 % 10, y % 10];
    for (i, v) in digits.into_iter().enumerate() {
        buf[i] = b'0' + v as u8;
    }
    buf[4] = b'-';
    buf[5] = b'0' + (m / 10) as u8;
    buf[6] = b'0' + (m % 10) as u8;
    buf[7] = b'-';
    buf[8] = b'0' + (day / 10) as u8;
    buf[9] = b'0' + (day % 10) as u8;
    String::from_utf8_lossy(&buf[..])
}

/// New rows inserted, changed rows rewritten (keeping `first_seen`), unchanged rows left as
/// they are, their keys listed in `sync_seen`. A key repeated within a page counts once:
/// the last one wins.
fn upsert<T: TableRow>(
    tx: &Connection,
    rows: &[Parsed<T>],
    dataset: &str,
    pass: i64,
    seen_at: &str,
) -> StoreResult<PageCounts> {
    // Rows in key order: index inserts and lookups walk the b-tree forward instead of
    // jumping around it. Of a key repeated within the page, the last occurrence is kept.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[a].value.key().cmp(rows[b].value.key()));
    let mut unique = Vec::with_capacity(order.len());
    for (n, &i) in order.iter().enumerate() {
        let next_same =
            order.get(n + 1).is_some_and(|&j| rows[j].value.key() == rows[i].value.key());
        if !next_same {
            unique.push(i);
        }
    }
    let (table, key, cols) = (T::TABLE, T::KEY, T::COLUMNS);
    let mut lookup = tx
        .prepare_cached(&format!(
            "SELECT content_hash, vanished_at IS NOT NULL FROM {table} WHERE {key} = ?1"
        ))
        .map_err(err)?;
    let n = cols.len();
    // ?1 key, ?2… the columns, then raw, hash, the time seen (first, last, changed), pass.
    let placeholders: Vec<String> = (1..=n + 4).map(|i| format!("?{i}")).collect();
    let set: Vec<String> = cols
        .iter()
        .chain(&["raw", "content_hash", "last_seen", "last_changed", "seen_pass"])
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let mut write = tx
        .prepare_cached(&format!(
            "INSERT INTO {table} ({key}, {}, raw, content_hash, first_seen, last_seen, last_changed, seen_pass) \
             VALUES ({}, ?{}, ?{}, ?{}) ON CONFLICT ({key}) DO UPDATE SET {}, vanished_at = NULL",
            cols.join(", "),
            placeholders.join(", "),
            n + 4,
            n + 4,
            n + 5,
            set.join(", "),
        ))
        .map_err(err)?;
    let mut seen = tx
        .prepare_cached(
            "INSERT INTO sync_seen (dataset, pass, key) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .map_err(err)?;

    let mut counts = PageCounts::default();
    for i in unique {
        let r = &rows[i];
        let existing: Option<(String, bool)> = lookup
            .query_row([r.value.key()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(err)?;
        match existing {
            Some((hash, false)) if hash == r.hash => {
                counts.unchanged += 1;
                seen.execute(params![dataset, pass, r.value.key()]).map_err(err)?;
                continue;
            }
            Some(_) => counts.changed += 1,
            None => counts.new += 1,
        }
        write.raw_bind_parameter(1, r.value.key()).map_err(err)?;
        for (j, col) in r.value.values().into_iter().enumerate() {
            let at = j + 2;
            match col {
                Col::Text(v) => write.raw_bind_parameter(at, v),
                Col::Int(v) => write.raw_bind_parameter(at, v),
                Col::Date(v) => {
                    let mut buf = [0; 10];
                    write.raw_bind_parameter(at, v.map(|d| iso_date(d, &mut buf)))
                }
            }
            .map_err(err)?;
        }
        write.raw_bind_parameter(n + 2, &r.raw[..]).map_err(err)?;
        write.raw_bind_parameter(n + 3, &r.hash).map_err(err)?;
        write.raw_bind_parameter(n + 4, seen_at).map_err(err)?;
        write.raw_bind_parameter(n + 5, pass).map_err(err)?;
        write.raw_execute().map_err(err)?;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::{SqliteWriter, iso_date};

    #[test]
    fn the_bulk_connection_maps_what_it_is_told_up_to_sqlites_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.db");
        let mapped = |bytes| {
            let w = SqliteWriter::open(&path, bytes).unwrap();
            w.conn.query_row("PRAGMA mmap_size", [], |r| r.get::<_, i64>(0)).unwrap()
        };
        assert_eq!(mapped(0), 0);
        assert_eq!(mapped(64 << 20), 64 << 20);
        assert_eq!(mapped(super::super::sqlite::DEFAULT_MMAP_BYTES), 0x7fff_0000);
    }

    #[test]
    fn dates_are_bound_as_chrono_writes_them() {
        for (y, m, d) in
            [(2026, 2, 16), (1999, 12, 31), (5, 1, 9), (9999, 10, 1), (10000, 1, 1), (-1, 3, 4)]
        {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(iso_date(date, &mut [0; 10]), date.format("%Y-%m-%d").to_string());
        }
    }
}
