//! Store, SQLite sync: [`SyncStore`] on SQLite. Pages are applied on the bulk connection
//! through prepared statements, several waiting pages per transaction: the page upsert is
//! the hot path of a sync, and per-row prepared statements beat building and re-parsing
//! multi-row SQL per page several times over.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::SqliteStore;
use super::rows::Ts;
use crate::domain::{Dataset, Parsed};
use crate::error::StoreResult;
use crate::store::report_commit;
use crate::store::table::{self, Col, TableRow};
use crate::sync::{
    Committed, PageCounts, PageRecords, PageWrite, PassEnd, QuarantinedRow, SyncCounts,
    SyncRunSummary, SyncState, SyncStore, Vouches,
};

impl SyncStore for SqliteStore {
    async fn watermark(&self, dataset: Dataset) -> StoreResult<Option<DateTime<Utc>>> {
        self.with_conn(move |conn| {
            let w = conn
                .query_row(
                    "SELECT watermark FROM sync_state WHERE dataset = ?1",
                    [dataset.name()],
                    |r| r.get::<_, Option<Ts>>("watermark"),
                )
                .optional()?;
            Ok(w.flatten().map(|Ts(t)| t))
        })
        .await
    }

    async fn live_contract_ids(&self, entities: &[String]) -> StoreResult<Vec<String>> {
        let entities = serde_json::to_string(entities).unwrap_or_else(|_| "[]".into());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id_contrato FROM contracts WHERE vanished_at IS NULL \
                 AND (json_array_length(?1) = 0 OR nit_entidad IN (SELECT value FROM json_each(?1))) \
                 ORDER BY id_contrato",
            )?;
            let ids = stmt.query_map([entities], |r| r.get::<_, String>(0))?;
            Ok(ids.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn sync_state(&self, dataset: Dataset) -> StoreResult<Option<SyncState>> {
        self.with_conn(move |conn| {
            let row = conn
                .query_row(
                    "SELECT pass, pass_started_at, cursor, source_fingerprint FROM sync_state \
                     WHERE dataset = ?1",
                    [dataset.name()],
                    |r| {
                        Ok((
                            r.get::<_, i64>("pass")?,
                            r.get::<_, Option<Ts>>("pass_started_at")?,
                            r.get::<_, Option<String>>("cursor")?,
                            r.get::<_, Option<String>>("source_fingerprint")?,
                        ))
                    },
                )
                .optional()?;
            Ok(row.and_then(|(pass, started, cursor, fingerprint)| {
                started.map(|Ts(pass_started_at)| SyncState {
                    pass,
                    pass_started_at,
                    cursor,
                    fingerprint,
                })
            }))
        })
        .await
    }

    async fn begin_pass(
        &self,
        dataset: Dataset,
        at: DateTime<Utc>,
        fingerprint: &str,
    ) -> StoreResult<i64> {
        let fingerprint = fingerprint.to_string();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Keys of earlier passes are garbage: an abandoned pass, or one still running
            // elsewhere, can no longer end (`finish_pass` ends only the open pass).
            tx.execute("DELETE FROM sync_seen WHERE dataset = ?1", [dataset.name()])?;
            let pass: i64 = tx.query_row(
                "INSERT INTO sync_state (dataset, pass, pass_started_at, cursor, updated_at, \
                 source_fingerprint) VALUES (?1, 1, ?2, NULL, ?2, ?3) \
                 ON CONFLICT (dataset) DO UPDATE SET pass = sync_state.pass + 1, \
                 pass_started_at = excluded.pass_started_at, cursor = NULL, \
                 updated_at = excluded.updated_at, \
                 source_fingerprint = excluded.source_fingerprint \
                 RETURNING pass",
                params![dataset.name(), Ts(at), fingerprint],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(pass)
        })
        .await
    }

    /// Each page that arrives, with those waiting behind it, is one transaction on the bulk
    /// connection ([`apply_batch`]). The connection is held for a batch, not while waiting
    /// for the source, so an evaluation can read between batches.
    async fn apply_pages(
        &self,
        mut pages: mpsc::Receiver<PageWrite>,
        committed: mpsc::UnboundedSender<Committed>,
    ) -> StoreResult<()> {
        while let Some(first) = pages.recv().await {
            // The receiver goes to the blocking thread, which takes the waiting pages, and
            // comes back with the outcome.
            let (back, done) = self
                .with_bulk(move |conn| {
                    let done = apply_batch(conn, first, &mut pages);
                    Ok((pages, done))
                })
                .await?;
            pages = back;
            report_commit(&committed, done?);
        }
        Ok(())
    }

    async fn finish_pass(
        &self,
        dataset: Dataset,
        pass: i64,
        vouches: &Vouches,
        max_share: Option<f64>,
        at: DateTime<Utc>,
    ) -> StoreResult<PassEnd> {
        let vouches = vouches.clone();
        self.with_conn(move |conn| {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Only the open pass ends: a sync that resumed the same pass, or started the
            // next one, while this one ran may have ended it or deleted its keys, and marking
            // rows vanished without them would take every unchanged row for gone.
            // The watermark is the pass's start: whatever changed after it is read again.
            let ended = tx.execute(
                "UPDATE sync_state SET watermark = pass_started_at, cursor = NULL, \
                 pass_started_at = NULL, updated_at = ?1 \
                 WHERE dataset = ?2 AND pass = ?3 AND pass_started_at IS NOT NULL",
                params![Ts(at), dataset.name(), pass],
            )?;
            if ended == 0 {
                tracing::warn!(
                    dataset = dataset.name(),
                    pass,
                    "the pass was ended or replaced by another sync meanwhile; it marks no row vanished"
                );
                return Ok(PassEnd::NotOpen);
            }
            let (table, key) = table::of(dataset);
            let unvouched = vouches == Vouches::Nothing;
            let (entities, of_contracts) = match vouches {
                Vouches::Rows { entities } if dataset != Dataset::Guarantees => (entities, false),
                Vouches::GuaranteesOfContracts { entities } => (entities, true),
                _ => (vec![], false),
            };
            let scoped = !entities.is_empty();
            // The rows the pass vouches for: of the entities (` AND nit_entidad IN (?first, …)`),
            // or the guarantees of the live contracts (of the entities) it asked for.
            let in_scope = |first: usize| {
                let marks: Vec<String> =
                    (0..entities.len()).map(|i| format!("?{}", i + first)).collect();
                let nit = if scoped {
                    format!(" AND nit_entidad IN ({})", marks.join(", "))
                } else {
                    String::new()
                };
                if of_contracts {
                    format!(
                        " AND id_contrato IN (SELECT id_contrato FROM contracts \
                         WHERE vanished_at IS NULL{nit})"
                    )
                } else {
                    nit
                }
            };
            let live: i64 = match max_share {
                None => 0,
                Some(_) if unvouched => 0,
                Some(_) => tx.query_row(
                    &format!("SELECT COUNT(*) FROM {table} WHERE vanished_at IS NULL{}", in_scope(1)),
                    rusqlite::params_from_iter(entities.iter().filter(|_| scoped)),
                    |r| r.get(0),
                )?,
            };
            let mut values: Vec<Box<dyn rusqlite::ToSql>> =
                vec![Box::new(Ts(at)), Box::new(pass), Box::new(dataset.name())];
            if scoped {
                values.extend(entities.iter().map(|e| Box::new(e.clone()) as Box<dyn rusqlite::ToSql>));
            }
            // Rows the pass found unchanged were not rewritten: their keys are in sync_seen.
            let sql = format!(
                "UPDATE {table} SET vanished_at = ?1 WHERE vanished_at IS NULL AND seen_pass < ?2 \
                 AND NOT EXISTS (SELECT 1 FROM sync_seen s WHERE s.dataset = ?3 AND s.pass = ?2 \
                 AND s.key = {table}.{key}){}",
                in_scope(4)
            );
            let mut marking = tx.savepoint()?;
            // An incremental pass vouches for nothing: no row vanishes.
            let vanished = if unvouched {
                0
            } else {
                marking.execute(&sql, rusqlite::params_from_iter(values))? as u64
            };
            let end = match max_share {
                Some(share) if vanished as f64 > share * live as f64 => {
                    marking.rollback()?;
                    PassEnd::Held { would_vanish: vanished, live: live as u64 }
                }
                _ => PassEnd::Ended { vanished },
            };
            marking.commit()?;
            tx.execute(
                "DELETE FROM sync_seen WHERE dataset = ?1 AND pass <= ?2",
                params![dataset.name(), pass],
            )?;
            tx.commit()?;
            Ok(end)
        })
        .await
    }

    async fn start_sync_run(
        &self,
        dataset: Dataset,
        source: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let (source, owner) = (source.to_string(), owner.to_string());
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "INSERT INTO sync_runs (dataset, source, started_at, status, owner) \
                 VALUES (?1, ?2, ?3, 'running', ?4) RETURNING id",
                params![dataset.name(), source, Ts(at), owner],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn running_sync_runs(&self) -> StoreResult<Vec<(i64, Option<String>)>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, owner FROM sync_runs WHERE status = 'running' ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get("id")?, r.get("owner")?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn abandon_sync_run(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE sync_runs SET status = 'abandoned', finished_at = ?1, \
                 error = 'the process running it stopped before it ended' \
                 WHERE id = ?2 AND status = 'running'",
                params![Ts(at), id],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn last_sync_runs(&self) -> StoreResult<Vec<SyncRunSummary>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT dataset, status, started_at, finished_at, error FROM sync_runs \
                 WHERE id IN (SELECT MAX(id) FROM sync_runs GROUP BY dataset) ORDER BY dataset",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(SyncRunSummary {
                    dataset: r.get("dataset")?,
                    status: r.get("status")?,
                    started_at: r.get::<_, Ts>("started_at")?.0,
                    finished_at: r.get::<_, Option<Ts>>("finished_at")?.map(|t| t.0),
                    error: r.get("error")?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn finish_sync_run(
        &self,
        id: i64,
        status: &str,
        c: &SyncCounts,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (status, c, error) = (status.to_string(), c.clone(), error.map(str::to_string));
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE sync_runs SET finished_at = ?1, status = ?2, rows_read = ?3, rows_new = ?4, \
                 rows_changed = ?5, rows_unchanged = ?6, rows_vanished = ?7, rows_rejected = ?8, \
                 rows_skipped = ?9, pages = ?10, retries = ?11, error = ?12, rows_duplicate = ?14 \
                 WHERE id = ?13",
                params![
                    Ts(at),
                    status,
                    c.read as i64,
                    c.new as i64,
                    c.changed as i64,
                    c.unchanged as i64,
                    c.vanished as i64,
                    c.rejected as i64,
                    c.skipped as i64,
                    c.pages as i64,
                    c.retries as i64,
                    error,
                    id,
                    c.duplicate as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn last_sync_success(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.with_conn(|conn| {
            let at: Option<Ts> = conn.query_row(
                "SELECT MAX(finished_at) FROM sync_runs \
                 WHERE dataset = 'contracts' AND status IN ('ok', 'degraded')",
                [],
                |r| r.get(0),
            )?;
            Ok(at.map(|t| t.0))
        })
        .await
    }

    async fn quarantined(&self, dataset: Dataset) -> StoreResult<Vec<QuarantinedRow>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT dataset, locator, reason, raw, raw_bytes FROM quarantine WHERE dataset = ?1 \
                 ORDER BY id",
            )?;
            let rows = stmt.query_map([dataset.name()], |r| {
                Ok(QuarantinedRow {
                    dataset: r.get("dataset")?,
                    locator: r.get("locator")?,
                    reason: r.get("reason")?,
                    raw: r.get("raw")?,
                    bytes: r.get("raw_bytes")?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn count_rows(&self, dataset: Dataset, include_vanished: bool) -> StoreResult<u64> {
        self.with_conn(move |conn| {
            let (table, _) = table::of(dataset);
            let filter = if include_vanished { "" } else { " WHERE vanished_at IS NULL" };
            let n: i64 =
                conn.query_row(&format!("SELECT COUNT(*) FROM {table}{filter}"), [], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn raw_record(&self, dataset: Dataset, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_string();
        self.with_conn(move |conn| {
            let (table, key_col) = table::of(dataset);
            Ok(conn
                .query_row(&format!("SELECT raw FROM {table} WHERE {key_col} = ?1"), [key], |r| {
                    r.get(0)
                })
                .optional()?)
        })
        .await
    }
}

/// Applies `first` and the pages already waiting behind it in one transaction, until
/// [`COMMIT_ROWS`] rows or [`COMMIT_AFTER`] (checked after each page, so a batch may pass
/// them by one page), and returns what the committed batch did. When the writer is the
/// bottleneck, batches grow and each b-tree page of the key index, which random keys touch
/// all over, is written once per commit rather than once per source page. Rows are held one
/// page at a time; only the transaction grows. A page that fails rolls the whole batch back.
fn apply_batch(
    conn: &mut Connection,
    first: PageWrite,
    pages: &mut mpsc::Receiver<PageWrite>,
) -> StoreResult<Committed> {
    let started = Instant::now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    tx.commit()?;
    tracing::trace!(pages = done.pages, rows, "pages committed");
    Ok(done)
}

/// Rows after which a batch is committed (see [`SqliteWriter::apply_batch`]).
pub const COMMIT_ROWS: usize = 100_000;
/// How long after its start a batch is committed while pages keep coming.
pub const COMMIT_AFTER: Duration = Duration::from_secs(5);

/// One page inside the caller's transaction: rows, rejects, and the cursor after them.
fn write_page(tx: &Connection, page: &PageWrite) -> StoreResult<PageCounts> {
    // Formatted once per page: every row of it binds the same time.
    let seen_at = Ts(page.seen_at).text();
    let name = page.dataset.name();
    let counts = match &page.records {
        PageRecords::Contracts(rows) => upsert(tx, rows, name, page.pass, &seen_at)?,
        PageRecords::Documents(rows) => upsert(tx, rows, name, page.pass, &seen_at)?,
        PageRecords::Guarantees(rows) => upsert(tx, rows, name, page.pass, &seen_at)?,
    };
    if !page.rejected.is_empty() {
        let mut q = tx.prepare_cached(
            "INSERT INTO quarantine (sync_run_id, dataset, locator, reason, raw, created_at, \
             raw_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for r in &page.rejected {
            q.execute(params![
                page.sync_run_id,
                page.dataset.name(),
                r.locator,
                r.reason,
                r.raw,
                seen_at,
                r.bytes
            ])?;
        }
    }
    tx.execute(
        "UPDATE sync_state SET cursor = ?1, updated_at = ?2 WHERE dataset = ?3",
        params![page.cursor, Ts(Utc::now()), page.dataset.name()],
    )?;
    Ok(counts)
}

/// `YYYY-MM-DD`, as this backend stores days, written into `buf`: a page binds several dates
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
    let mut counts = PageCounts::default();
    for (n, &i) in order.iter().enumerate() {
        let next_same =
            order.get(n + 1).is_some_and(|&j| rows[j].value.key() == rows[i].value.key());
        if next_same {
            counts.duplicate += 1;
        } else {
            unique.push(i);
        }
    }
    let (table, key, cols) = (T::TABLE, T::KEY, T::COLUMNS);
    let mut lookup = tx.prepare_cached(&format!(
        "SELECT content_hash, vanished_at IS NOT NULL, seen_pass FROM {table} WHERE {key} = ?1"
    ))?;
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
        ?;
    let mut seen = tx.prepare_cached(
        "INSERT INTO sync_seen (dataset, pass, key) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;

    for i in unique {
        let r = &rows[i];
        let existing: Option<(String, bool, i64)> = lookup
            .query_row([r.value.key()], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        match existing {
            Some((hash, false, seen_pass)) if hash == r.hash => {
                // Listed already, or stored by this pass: an earlier row of it had the key.
                if seen.execute(params![dataset, pass, r.value.key()])? == 0 || seen_pass == pass {
                    counts.duplicate += 1;
                } else {
                    counts.unchanged += 1;
                }
                continue;
            }
            Some((_, _, seen_pass)) if seen_pass == pass => counts.duplicate += 1,
            Some(_) => counts.changed += 1,
            None => counts.new += 1,
        }
        write.raw_bind_parameter(1, r.value.key())?;
        for (j, col) in r.value.values().into_iter().enumerate() {
            let at = j + 2;
            match col {
                Col::Text(v) => write.raw_bind_parameter(at, v),
                Col::Int(v) => write.raw_bind_parameter(at, v),
                Col::Date(v) => {
                    let mut buf = [0; 10];
                    write.raw_bind_parameter(at, v.map(|d| iso_date(d, &mut buf)))
                }
            }?;
        }
        write.raw_bind_parameter(n + 2, &r.raw[..])?;
        write.raw_bind_parameter(n + 3, &r.hash)?;
        write.raw_bind_parameter(n + 4, seen_at)?;
        write.raw_bind_parameter(n + 5, pass)?;
        write.raw_execute()?;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::iso_date;

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
