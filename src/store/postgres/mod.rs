//! Store, PostgreSQL backend: one database shared by every replica, reached through sqlx.
//! Outbox items are claimed with `FOR UPDATE SKIP LOCKED`, slots with the run history's
//! unique key. Every statement of this backend is in this folder: `sync.rs`, `findings.rs`,
//! `outbox.rs`, `runs.rs`, one per stage trait; rows are mapped by column name in `rows.rs`.

mod acks;
mod digests;
mod findings;
mod outbox;
mod rows;
mod runs;
mod silences;
mod sync;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::error::{StoreError, StoreResult};

/// The embedded migrations of this backend.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// PostgreSQL allows 65,535 bound values per statement; rows per multi-row INSERT stay below.
const MAX_PARAMS: usize = 30_000;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
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
}

impl crate::store::Store for PgStore {
    async fn open(url: &str) -> StoreResult<Self> {
        PgStore::open(url).await
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
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
