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
    /// Applies a sync page with the shared sqlx upsert.
    async fn write_page(&self, page: PageWrite) -> StoreResult<PageCounts> {
        apply_page_sqlx(&self.pool, page).await
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
        apply_findings_sqlx(&self.pool, changes, events, on, at).await
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

super::sql::sql_store!(PgStore, Postgres, PgRow, " FOR UPDATE SKIP LOCKED");
