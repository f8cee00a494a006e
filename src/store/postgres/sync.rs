//! Store, PostgreSQL sync: [`SyncStore`] on PostgreSQL. Each page is one transaction of
//! multi-row statements: a page's commit is a small part of its cost here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::query_builder::Separated;
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use tokio::sync::mpsc;

use super::{MAX_PARAMS, PgStore};
use crate::domain::{Dataset, Parsed};
use crate::error::StoreResult;
use crate::store::report_commit;
use crate::store::table::{self, Col, TableRow};
use crate::sync::{
    Committed, PageCounts, PageRecords, PageWrite, PassEnd, QuarantinedRow, SyncCounts,
    SyncRunSummary, SyncState, SyncStore, Vouches,
};

/// Ends the open pass: the watermark becomes its start (whatever changed after it is read
/// again), and the cursor is cleared.
const END_PASS: &str = "UPDATE sync_state SET watermark = pass_started_at, cursor = NULL, \
     pass_started_at = NULL, updated_at = $1 \
     WHERE dataset = $2 AND pass = $3 AND pass_started_at IS NOT NULL";

impl SyncStore for PgStore {
    async fn watermark(&self, dataset: Dataset) -> StoreResult<Option<DateTime<Utc>>> {
        let w: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT watermark FROM sync_state WHERE dataset = $1")
                .bind(dataset.name())
                .fetch_optional(&self.pool)
                .await?;
        Ok(w.flatten())
    }

    async fn live_contract_ids(&self, entities: &[String]) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id_contrato FROM contracts WHERE vanished_at IS NULL \
             AND (cardinality($1::TEXT[]) = 0 OR nit_entidad = ANY($1)) ORDER BY id_contrato",
        )
        .bind(entities)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn sync_state(&self, dataset: Dataset) -> StoreResult<Option<SyncState>> {
        let row = sqlx::query(
            "SELECT pass, pass_started_at, cursor, source_fingerprint FROM sync_state \
                 WHERE dataset = $1",
        )
        .bind(dataset.name())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| {
            let started: Option<DateTime<Utc>> = r.get("pass_started_at");
            started.map(|pass_started_at| SyncState {
                pass: r.get("pass"),
                pass_started_at,
                cursor: r.get("cursor"),
                fingerprint: r.get("source_fingerprint"),
            })
        }))
    }

    async fn begin_pass(
        &self,
        dataset: Dataset,
        at: DateTime<Utc>,
        fingerprint: &str,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await?;
        // Keys of earlier passes are garbage: an abandoned pass, or one still running
        // elsewhere, can no longer end (`finish_pass` ends only the open pass).
        sqlx::query("DELETE FROM sync_seen WHERE dataset = $1")
            .bind(dataset.name())
            .execute(&mut *tx)
            .await?;
        let pass: i64 = sqlx::query_scalar(
            "INSERT INTO sync_state (dataset, pass, pass_started_at, cursor, updated_at, \
             source_fingerprint) VALUES ($1, 1, $2, NULL, $2, $3) \
             ON CONFLICT (dataset) DO UPDATE SET pass = sync_state.pass + 1, \
             pass_started_at = excluded.pass_started_at, cursor = NULL, \
             updated_at = excluded.updated_at, source_fingerprint = excluded.source_fingerprint \
             RETURNING pass",
        )
        .bind(dataset.name())
        .bind(at)
        .bind(fingerprint)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(pass)
    }

    async fn apply_pages(
        &self,
        mut pages: mpsc::Receiver<PageWrite>,
        committed: mpsc::UnboundedSender<Committed>,
    ) -> StoreResult<()> {
        while let Some(page) = pages.recv().await {
            let counts = self.apply_page(page).await?;
            report_commit(&committed, Committed { pages: 1, counts });
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
        let (table, key) = table::of(dataset);
        let unvouched = *vouches == Vouches::Nothing;
        // A table just loaded has no statistics, and without them the planner joins it
        // with sync_seen by nested loops: quadratic in the rows of the pass.
        // Only the columns the vanish query reads: sampling the raw records too took longer.
        let scope = if dataset == Dataset::Guarantees { "" } else { ", nit_entidad" };
        let analyses = [
            format!("ANALYZE {table} ({key}, seen_pass, vanished_at{scope})"),
            "ANALYZE sync_seen".into(),
        ];
        for analyze in analyses.into_iter().filter(|_| !unvouched) {
            sqlx::query(sqlx::AssertSqlSafe(analyze)).execute(&self.pool).await?;
        }
        let mut tx = self.pool.begin().await?;
        // Only the open pass ends: a sync that resumed the same pass, or started the next
        // one, while this one ran may have ended it or deleted its keys, and marking rows
        // vanished without them would take every unchanged row for gone.
        let ended = sqlx::query(END_PASS)
            .bind(at)
            .bind(dataset.name())
            .bind(pass)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if ended == 0 {
            tracing::warn!(
                dataset = dataset.name(),
                pass,
                "the pass was ended or replaced by another sync meanwhile; it marks no row vanished"
            );
            return Ok(PassEnd::NotOpen);
        }
        let (entities, of_contracts) = match vouches {
            Vouches::Rows { entities } if dataset != Dataset::Guarantees => {
                (entities.clone(), false)
            }
            Vouches::GuaranteesOfContracts { entities } => (entities.clone(), true),
            _ => (vec![], false),
        };
        let scoped = !entities.is_empty();
        // The rows the pass vouches for: of the entities, or the guarantees of the live
        // contracts (of the entities) it asked for.
        let in_scope = |n: usize| {
            let nit = if scoped { format!(" AND nit_entidad = ANY(${n})") } else { String::new() };
            if of_contracts {
                format!(
                    " AND id_contrato IN (SELECT id_contrato FROM contracts \
                     WHERE vanished_at IS NULL{nit})"
                )
            } else {
                nit
            }
        };
        // Rows the pass found unchanged were not rewritten: their keys are in sync_seen.
        let live: i64 = match max_share {
            None => 0,
            Some(_) if unvouched => 0,
            Some(_) => {
                let sql = format!(
                    "SELECT COUNT(*) FROM {table} WHERE vanished_at IS NULL{}",
                    in_scope(1)
                );
                let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                if scoped {
                    q = q.bind(entities.clone());
                }
                q.fetch_one(&mut *tx).await?
            }
        };
        let sql = format!(
            "UPDATE {table} SET vanished_at = $1 WHERE vanished_at IS NULL AND seen_pass < $2 \
             AND NOT EXISTS (SELECT 1 FROM sync_seen s WHERE s.dataset = $3 AND s.pass = $2 \
             AND s.key = {table}.{key}){}",
            in_scope(4)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at).bind(pass).bind(dataset.name());
        if scoped {
            q = q.bind(entities);
        }
        // An incremental pass vouches for nothing: no row vanishes.
        let end = if unvouched {
            PassEnd::Ended { vanished: 0 }
        } else {
            let mut marking = sqlx::Acquire::begin(&mut *tx).await?;
            let vanished = q.execute(&mut *marking).await?.rows_affected();
            match max_share {
                Some(share) if vanished as f64 > share * live as f64 => {
                    marking.rollback().await?;
                    PassEnd::Held { would_vanish: vanished, live: live as u64 }
                }
                _ => {
                    marking.commit().await?;
                    PassEnd::Ended { vanished }
                }
            }
        };
        sqlx::query("DELETE FROM sync_seen WHERE dataset = $1 AND pass <= $2")
            .bind(dataset.name())
            .bind(pass)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(end)
    }

    async fn start_sync_run(
        &self,
        dataset: Dataset,
        source: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO sync_runs (dataset, source, started_at, status, owner) \
             VALUES ($1, $2, $3, 'running', $4) RETURNING id",
        )
        .bind(dataset.name())
        .bind(source)
        .bind(at)
        .bind(owner)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn running_sync_runs(&self) -> StoreResult<Vec<(i64, Option<String>)>> {
        let rows =
            sqlx::query("SELECT id, owner FROM sync_runs WHERE status = 'running' ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| (r.get("id"), r.get("owner"))).collect())
    }

    async fn abandon_sync_run(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE sync_runs SET status = 'abandoned', finished_at = $1, \
             error = 'the process running it stopped before it ended' \
             WHERE id = $2 AND status = 'running'",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn last_sync_runs(&self) -> StoreResult<Vec<SyncRunSummary>> {
        let rows = sqlx::query(
            "SELECT dataset, status, started_at, finished_at, error FROM sync_runs \
             WHERE id IN (SELECT MAX(id) FROM sync_runs GROUP BY dataset) ORDER BY dataset",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SyncRunSummary {
                dataset: r.get("dataset"),
                status: r.get("status"),
                started_at: r.get("started_at"),
                finished_at: r.get("finished_at"),
                error: r.get("error"),
            })
            .collect())
    }

    async fn finish_sync_run(
        &self,
        id: i64,
        status: &str,
        c: &SyncCounts,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sync_runs SET finished_at = $1, status = $2, rows_read = $3, rows_new = $4, \
             rows_changed = $5, rows_unchanged = $6, rows_vanished = $7, rows_rejected = $8, \
             rows_skipped = $9, pages = $10, retries = $11, error = $12, rows_duplicate = $14 \
             WHERE id = $13",
        )
        .bind(at)
        .bind(status)
        .bind(c.read as i64)
        .bind(c.new as i64)
        .bind(c.changed as i64)
        .bind(c.unchanged as i64)
        .bind(c.vanished as i64)
        .bind(c.rejected as i64)
        .bind(c.skipped as i64)
        .bind(c.pages as i64)
        .bind(c.retries as i64)
        .bind(error)
        .bind(id)
        .bind(c.duplicate as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_sync_success(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(finished_at) FROM sync_runs \
             WHERE dataset = 'contracts' AND status IN ('ok', 'degraded')",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn quarantined(&self, dataset: Dataset) -> StoreResult<Vec<QuarantinedRow>> {
        let rows = sqlx::query(
            "SELECT dataset, locator, reason, raw, raw_bytes FROM quarantine WHERE dataset = $1 \
             ORDER BY id",
        )
        .bind(dataset.name())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| QuarantinedRow {
                dataset: r.get("dataset"),
                locator: r.get("locator"),
                reason: r.get("reason"),
                raw: r.get("raw"),
                bytes: r.get("raw_bytes"),
            })
            .collect())
    }

    async fn count_rows(&self, dataset: Dataset, include_vanished: bool) -> StoreResult<u64> {
        let (table, _) = table::of(dataset);
        let filter = if include_vanished { "" } else { " WHERE vanished_at IS NULL" };
        let sql = format!("SELECT COUNT(*) FROM {table}{filter}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    async fn raw_record(&self, dataset: Dataset, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let (table, key_col) = table::of(dataset);
        let sql = format!("SELECT raw FROM {table} WHERE {key_col} = $1");
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }
}

impl PgStore {
    /// One page in one transaction: rows, rejects, and the cursor after them.
    async fn apply_page(&self, page: PageWrite) -> StoreResult<PageCounts> {
        let mut tx = self.pool.begin().await?;
        let name = page.dataset.name();
        let counts = match &page.records {
            PageRecords::Contracts(rows) => {
                upsert(&mut tx, rows, name, page.pass, page.seen_at).await?
            }
            PageRecords::Documents(rows) => {
                upsert(&mut tx, rows, name, page.pass, page.seen_at).await?
            }
            PageRecords::Guarantees(rows) => {
                upsert(&mut tx, rows, name, page.pass, page.seen_at).await?
            }
        };
        for chunk in page.rejected.chunks(MAX_PARAMS / 7) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO quarantine (sync_run_id, dataset, locator, reason, raw, created_at, \
                 raw_bytes) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(page.sync_run_id)
                    .push_bind(name)
                    .push_bind(&r.locator)
                    .push_bind(&r.reason)
                    .push_bind(&r.raw)
                    .push_bind(page.seen_at)
                    .push_bind(&r.bytes);
            });
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE sync_state SET cursor = $1, updated_at = $2 WHERE dataset = $3")
            .bind(&page.cursor)
            .bind(Utc::now())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(counts)
    }
}

/// Binds one column value: days as `DATE`.
fn bind_col(b: &mut Separated<'_, Postgres, &'static str>, col: Col<'_>) {
    match col {
        Col::Text(v) => b.push_bind(v.map(str::to_string)),
        Col::Int(v) => b.push_bind(v),
        Col::Date(v) => b.push_bind(v),
    };
}

/// Upserts a page of one table inside `tx`: new rows inserted, changed rows rewritten,
/// unchanged rows left as they are, their keys listed in `sync_seen`. A key repeated within
/// a page counts once: the last occurrence wins.
async fn upsert<T: TableRow>(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[Parsed<T>],
    dataset: &str,
    pass: i64,
    seen_at: DateTime<Utc>,
) -> StoreResult<PageCounts> {
    let mut counts = PageCounts::default();
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if last.insert(r.value.key(), i).is_some() {
            counts.duplicate += 1;
        }
    }
    let mut unique: Vec<usize> = last.values().copied().collect();
    unique.sort_unstable();

    // What the store holds for these keys: hash and whether they had vanished.
    let mut existing: HashMap<String, (String, bool, i64)> = HashMap::with_capacity(unique.len());
    for chunk in unique.chunks(5_000) {
        let keys: Vec<&str> = chunk.iter().map(|&i| rows[i].value.key()).collect();
        let sql = format!(
            "SELECT {key} AS key, content_hash, vanished_at IS NOT NULL AS vanished, seen_pass \
             FROM {table} WHERE {key} = ANY($1)",
            key = T::KEY,
            table = T::TABLE
        );
        for row in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&keys).fetch_all(&mut **tx).await? {
            existing.insert(
                row.get("key"),
                (row.get("content_hash"), row.get("vanished"), row.get("seen_pass")),
            );
        }
    }

    let (mut write, mut seen) = (Vec::new(), Vec::new());
    for &i in &unique {
        let r = &rows[i];
        match existing.get(r.value.key()) {
            None => {
                counts.new += 1;
                write.push(i);
            }
            // Stored by this pass already: an earlier row of it had the key.
            Some((hash, _, seen_pass)) if *seen_pass == pass => {
                counts.duplicate += 1;
                if hash != &r.hash {
                    write.push(i);
                }
            }
            Some((hash, vanished, _)) if hash != &r.hash || *vanished => {
                counts.changed += 1;
                write.push(i);
            }
            Some(_) => {
                counts.unchanged += 1;
                seen.push(i);
            }
        }
    }

    let ncols = T::COLUMNS.len() + 7;
    for chunk in write.chunks((MAX_PARAMS / ncols).max(1)) {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {} ({}, {}, raw, content_hash, first_seen, last_seen, last_changed, \
             seen_pass) ",
            T::TABLE,
            T::KEY,
            T::COLUMNS.join(", ")
        ));
        q.push_values(chunk, |mut b, &i| {
            let r = &rows[i];
            b.push_bind(r.value.key().to_string());
            for col in r.value.values() {
                bind_col(&mut b, col);
            }
            b.push_bind(r.raw.to_vec())
                .push_bind(r.hash.clone())
                .push_bind(seen_at)
                .push_bind(seen_at)
                .push_bind(seen_at)
                .push_bind(pass);
        });
        q.push(format!(" ON CONFLICT ({}) DO UPDATE SET ", T::KEY));
        let mut set = q.separated(", ");
        for c in T::COLUMNS.iter().chain(&[
            "raw",
            "content_hash",
            "last_seen",
            "last_changed",
            "seen_pass",
        ]) {
            set.push(format!("{c} = excluded.{c}"));
        }
        set.push("vanished_at = NULL");
        q.build().execute(&mut **tx).await?;
    }
    for chunk in seen.chunks(MAX_PARAMS / 3) {
        let mut q = QueryBuilder::<Postgres>::new("INSERT INTO sync_seen (dataset, pass, key) ");
        q.push_values(chunk, |mut b, &i| {
            b.push_bind(dataset.to_string())
                .push_bind(pass)
                .push_bind(rows[i].value.key().to_string());
        });
        q.push(" ON CONFLICT DO NOTHING");
        // A key listed already was seen by an earlier page of the pass.
        let listed = q.build().execute(&mut **tx).await?.rows_affected();
        let repeated = chunk.len() as u64 - listed;
        counts.unchanged -= repeated;
        counts.duplicate += repeated;
    }
    Ok(counts)
}
