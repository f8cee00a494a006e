//! Store, PostgreSQL silences: [`SilenceStore`] on PostgreSQL; matchers are kept as JSON.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::domain::silence::{NewSilence, Silence};
use crate::error::{StoreError, StoreResult};
use crate::store::{IdPage, SilenceStore};

fn silence(r: &PgRow) -> StoreResult<Silence> {
    Ok(Silence {
        id: r.get("id"),
        silence: NewSilence {
            matchers: serde_json::from_str(r.get::<&str, _>("matchers"))
                .map_err(|e| StoreError::Corrupt(format!("silences.matchers: {e}")))?,
            starts_on: r.get("starts_on"),
            ends_on: r.get("ends_on"),
            webhooks: r.get("webhooks"),
            author: r.get("author"),
            comment: r.get("comment"),
        },
        created_at: r.get("created_at"),
        expired_at: r.get("expired_at"),
    })
}

impl SilenceStore for PgStore {
    async fn add_silence(&self, s: &NewSilence, at: DateTime<Utc>) -> StoreResult<i64> {
        let matchers = serde_json::to_string(&s.matchers).unwrap_or_else(|_| "{}".into());
        let row = sqlx::query(
            "INSERT INTO silences (matchers, starts_on, ends_on, webhooks, author, comment, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(matchers)
        .bind(s.starts_on)
        .bind(s.ends_on)
        .bind(s.webhooks)
        .bind(&s.author)
        .bind(&s.comment)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get("id"))
    }

    async fn silences(&self, day: NaiveDate, all: bool, page: IdPage) -> StoreResult<Vec<Silence>> {
        let found = sqlx::query(
            "SELECT * FROM silences WHERE ($2 OR ends_on > $1) AND ($3::bigint IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(day)
        .bind(all)
        .bind(page.from)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(silence).collect()
    }

    async fn expire_silence(
        &self,
        id: i64,
        day: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE silences SET ends_on = GREATEST(starts_on, $2), expired_at = $3 \
             WHERE id = $1 AND ends_on > $2",
        )
        .bind(id)
        .bind(day)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
