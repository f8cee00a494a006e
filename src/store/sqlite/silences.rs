//! Store, SQLite silences: [`SilenceStore`] on SQLite; matchers are kept as JSON.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Row, params};

use super::SqliteStore;
use super::rows::{Day, Ts};
use crate::domain::silence::{NewSilence, Silence};
use crate::error::{StoreError, StoreResult};
use crate::store::{IdPage, SilenceStore};

fn silence(r: &Row) -> StoreResult<Silence> {
    let matchers: String = r.get("matchers")?;
    Ok(Silence {
        id: r.get("id")?,
        silence: NewSilence {
            matchers: serde_json::from_str(&matchers)
                .map_err(|e| StoreError::Corrupt(format!("silences.matchers: {e}")))?,
            starts_on: r.get::<_, Day>("starts_on")?.0,
            ends_on: r.get::<_, Day>("ends_on")?.0,
            webhooks: r.get("webhooks")?,
            author: r.get("author")?,
            comment: r.get("comment")?,
        },
        created_at: r.get::<_, Ts>("created_at")?.0,
        expired_at: r.get::<_, Option<Ts>>("expired_at")?.map(|t| t.0),
    })
}

impl SilenceStore for SqliteStore {
    async fn add_silence(&self, s: &NewSilence, at: DateTime<Utc>) -> StoreResult<i64> {
        let s = s.clone();
        let matchers = serde_json::to_string(&s.matchers).unwrap_or_else(|_| "{}".into());
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "INSERT INTO silences (matchers, starts_on, ends_on, webhooks, author, comment, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                params![
                    matchers,
                    Day(s.starts_on),
                    Day(s.ends_on),
                    s.webhooks,
                    s.author,
                    s.comment,
                    Ts(at)
                ],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn silences(&self, day: NaiveDate, all: bool, page: IdPage) -> StoreResult<Vec<Silence>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM silences WHERE (?2 OR ends_on > ?1) AND (?3 IS NULL OR id > ?3) \
                 ORDER BY id LIMIT ?4",
            )?;
            let mut found = stmt.query(params![Day(day), all, page.from, page.limit])?;
            let mut out = Vec::new();
            while let Some(r) = found.next()? {
                out.push(silence(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn expire_silence(
        &self,
        id: i64,
        day: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE silences SET ends_on = MAX(starts_on, ?2), expired_at = ?3 \
                 WHERE id = ?1 AND ends_on > ?2",
                params![id, Day(day), Ts(at)],
            )?;
            Ok(n == 1)
        })
        .await
    }
}
