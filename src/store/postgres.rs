//! Store, PostgreSQL backend: one database shared by every replica; outbox items are
//! claimed with `FOR UPDATE SKIP LOCKED`, slots with the run history's unique key.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::table::{Col, TableRow};
use super::*;
use crate::domain::Flag;

/// The embedded migrations of this backend.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// PostgreSQL allows 65,535 bound values per statement; rows per multi-row INSERT stay below.
const MAX_PARAMS: usize = 30_000;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Applies pages one transaction each: PostgreSQL's multi-row upserts make a page's
    /// commit a small part of its cost.
    async fn write_pages(
        &self,
        pages: tokio::sync::mpsc::Receiver<PageWrite>,
        committed: tokio::sync::mpsc::UnboundedSender<Committed>,
    ) -> StoreResult<()> {
        apply_pages_sqlx(&self.pool, pages, committed).await
    }

    async fn read_open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredFinding>> {
        open_findings_sorted_sqlx(&self.pool, after, limit).await
    }

    async fn read_evaluation_page(&self, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
        evaluation_page_sqlx(&self.pool, after, limit).await
    }

    async fn write_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        apply_findings_batched(&self.pool, changes, events, on, at).await
    }

    /// Connects to the database at a `postgres://` URL (which must exist).
    pub async fn open(url: &str) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|e| StoreError::Open { url: redact(url), message: e.to_string() })?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            u.set_password(Some("***")).ok();
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Dates are native `DATE`s here.
fn d(date: Option<NaiveDate>) -> Option<NaiveDate> {
    date
}

fn parse_day(d: Option<NaiveDate>) -> Option<NaiveDate> {
    d
}

/// The raw record, compressed on the parse workers (`cierre record` shows it).
fn push_raw(b: &mut sqlx::query_builder::Separated<'_, Postgres, &'static str>, raw: &[u8]) {
    b.push_bind(raw.to_vec());
}

super::sql::sql_store!(
    PgStore,
    Postgres,
    PgRow,
    " FOR UPDATE SKIP LOCKED",
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
);

/// Rows per multi-row statement of [`apply_findings_batched`] (at most 9 values each).
const FINDING_ROWS: usize = 2_000;

/// [`Store::apply_findings`] in a few multi-row statements per page instead of two round trips
/// per finding: what the shared sqlx version does, at a cost that does not grow with the
/// network latency times the findings.
async fn apply_findings_batched(
    pool: &PgPool,
    changes: &FindingChanges,
    events: &[NewOutboxItem],
    on: NaiveDate,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    for chunk in events.chunks(FINDING_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO outbox (idempotency_key, channel, target, subject, message_id, payload, \
             status, attempts, next_attempt_at, created_at) ",
        );
        q.push_values(chunk, |mut b, item| {
            b.push_bind(&item.idempotency_key)
                .push_bind(&item.channel)
                .push_bind(&item.target)
                .push_bind(&item.subject)
                .push_bind(&item.message_id)
                .push_bind(&item.payload)
                .push("'pending'")
                .push("0")
                .push_bind(at)
                .push_bind(at);
        });
        q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
        q.build().execute(&mut *tx).await?;
    }
    // (finding id, event, level) to record.
    let mut history: Vec<(i64, &str, String)> = Vec::new();
    for chunk in changes.opened.chunks(FINDING_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO findings (contract_id, kind, stage, status, since, deadline, \
             business_days_left, level, step, reasons, missing, evaluated_on, opened_on, updated_at) ",
        );
        q.push_values(chunk, |mut b, f| {
            b.push_bind(&f.contract_id)
                .push_bind(f.kind.as_str())
                .push_bind(f.stage_str())
                .push("'open'")
                .push_bind(f.since)
                .push_bind(f.deadline)
                .push_bind(f.business_days_left)
                .push_bind(&f.level)
                .push_bind(&f.step)
                .push_bind(json(&f.reasons))
                .push_bind(json(&f.missing))
                .push_bind(on)
                .push_bind(on)
                .push_bind(at);
        });
        // Another replica may have opened some first: those are skipped, and not recorded.
        q.push(
            " ON CONFLICT (contract_id, kind, stage) WHERE status = 'open' DO NOTHING \
             RETURNING id, level",
        );
        for row in q.build().fetch_all(&mut *tx).await? {
            history.push((row.get(0), "opened", row.get(1)));
        }
    }
    let updates: Vec<(i64, &Finding, Option<&'static str>)> = changes
        .relevelled
        .iter()
        .map(|(id, f, ev)| (*id, f, Some(*ev)))
        .chain(changes.refreshed.iter().map(|(id, f)| (*id, f, None)))
        .collect();
    let events_of: HashMap<i64, &'static str> =
        updates.iter().filter_map(|(id, _, ev)| ev.map(|e| (*id, e))).collect();
    for chunk in updates.chunks(FINDING_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "UPDATE findings AS f SET since = v.since, deadline = v.deadline, \
             business_days_left = v.days, level = v.level, step = v.step, reasons = v.reasons, \
             missing = v.missing, evaluated_on = ",
        );
        q.push_bind(on).push(", updated_at = ").push_bind(at).push(" FROM (");
        q.push_values(chunk, |mut b, (id, f, _)| {
            b.push_bind(*id)
                .push_unseparated("::bigint")
                .push_bind(f.since)
                .push_unseparated("::date")
                .push_bind(f.deadline)
                .push_unseparated("::date")
                .push_bind(f.business_days_left)
                .push_unseparated("::bigint")
                .push_bind(&f.level)
                .push_unseparated("::text")
                .push_bind(&f.step)
                .push_unseparated("::text")
                .push_bind(json(&f.reasons))
                .push_unseparated("::text")
                .push_bind(json(&f.missing))
                .push_unseparated("::text");
        });
        q.push(
            ") AS v (id, since, deadline, days, level, step, reasons, missing) \
             WHERE f.id = v.id AND f.status = 'open' RETURNING f.id, f.level",
        );
        for row in q.build().fetch_all(&mut *tx).await? {
            let id: i64 = row.get(0);
            if let Some(ev) = events_of.get(&id) {
                history.push((id, ev, row.get(1)));
            }
        }
    }
    for chunk in changes.resolved.chunks(FINDING_ROWS) {
        let rows = sqlx::query(
            "UPDATE findings SET status = 'resolved', resolved_on = $1, updated_at = $2 \
             WHERE id = ANY($3) AND status = 'open' RETURNING id, level",
        )
        .bind(on)
        .bind(at)
        .bind(chunk)
        .fetch_all(&mut *tx)
        .await?;
        // Ids another replica resolved first are not returned.
        for row in rows {
            history.push((row.get(0), "resolved", row.get(1)));
        }
    }
    let opened = history.iter().filter(|(_, e, _)| *e == "opened").count() as u64;
    for chunk in history.chunks(FINDING_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO finding_events (finding_id, event, level, on_date, created_at) ",
        );
        q.push_values(chunk, |mut b, (id, event, level)| {
            b.push_bind(*id).push_bind(*event).push_bind(level).push_bind(on).push_bind(at);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(opened)
}
