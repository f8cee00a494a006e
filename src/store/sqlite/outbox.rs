//! Store, SQLite outbox: [`OutboxStore`] on SQLite. SQLite serialises writers, so one
//! `UPDATE … RETURNING` claims items without two claimers ever taking the same one.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::rows::{self, Ts};
use crate::error::StoreResult;
use crate::store::{
    Claim, Delivery, EndpointHealth, NewOutboxItem, OutboxCounts, OutboxItem, OutboxPage,
    OutboxStore, RequeueFilter,
};

/// Queues `item` unless an item with its idempotency key exists; true when queued. Also
/// used by the evaluation, which queues its events with the findings they announce.
pub(super) fn insert_outbox(
    conn: &Connection,
    item: &NewOutboxItem,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let inserted = conn
        .prepare_cached(
            // A notification purged to the delivery history keeps its key: never queued again.
            "INSERT INTO outbox (idempotency_key, channel, target, subject, message_id, payload, \
             status, attempts, next_attempt_at, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7 \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries WHERE idempotency_key = ?1) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )?
        .execute(params![
            item.idempotency_key,
            item.channel,
            item.target,
            item.subject,
            item.message_id,
            item.payload,
            Ts(at)
        ])?;
    Ok(inserted == 1)
}

/// Up to `limit` ids of claimable heads of queues (a target's earliest item still pending or
/// sending) among the targets after `after` (up to `upto`), in target order: one probe of
/// `outbox_target_open` per target, so a long queue behind one target costs nothing.
fn claimable_heads(
    conn: &Connection,
    after: &str,
    upto: Option<&str>,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<i64>> {
    let mut next = conn.prepare_cached(
        "SELECT target, id, status, next_attempt_at, claimed_until FROM outbox \
         WHERE status IN ('pending', 'sending') AND target > ?1 ORDER BY target, id LIMIT 1",
    )?;
    let mut suspended = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE target = ?1 AND suspended_until > ?2)",
    )?;
    let mut ids = Vec::new();
    let mut target = after.to_string();
    while (ids.len() as u32) < limit {
        let head = next
            .query_row([&target], |r| {
                Ok((
                    r.get::<_, String>("target")?,
                    r.get::<_, i64>("id")?,
                    r.get::<_, String>("status")?,
                    r.get::<_, Ts>("next_attempt_at")?.0,
                    r.get::<_, Option<Ts>>("claimed_until")?.map(|t| t.0),
                ))
            })
            .optional()?;
        let Some((t, id, status, due, until)) = head else { break };
        if upto.is_some_and(|u| t.as_str() > u) {
            break;
        }
        let claimable = match status.as_str() {
            "pending" => due <= now,
            _ => until.is_some_and(|u| u <= now),
        };
        if claimable && !suspended.query_row(params![t, Ts(now)], |r| r.get::<_, bool>(0))? {
            ids.push(id);
        }
        target = t;
    }
    Ok(ids)
}

impl OutboxStore for SqliteStore {
    async fn enqueue(&self, item: &NewOutboxItem, at: DateTime<Utc>) -> StoreResult<bool> {
        let item = item.clone();
        self.with_conn(move |conn| insert_outbox(conn, &item, at)).await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        claimer: &str,
        after: &str,
    ) -> StoreResult<Vec<OutboxItem>> {
        let (claimer, token) = (claimer.to_string(), crate::store::claim_token());
        let after = after.to_string();
        self.with_conn(move |conn| {
            // SQLite serialises writers: the heads are judged and claimed in one transaction.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut ids = claimable_heads(&tx, &after, None, now, limit)?;
            if (ids.len() as u32) < limit && !after.is_empty() {
                let more = limit - ids.len() as u32;
                ids.extend(claimable_heads(&tx, "", Some(&after), now, more)?);
            }
            let mut items = Vec::with_capacity(ids.len());
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE outbox SET status = 'sending', claimed_until = ?1, claimed_by = ?2, \
                     claim_token = ?3, attempts = attempts + 1 WHERE id = ?4 RETURNING *",
                )?;
                for id in ids {
                    items.push(stmt.query_row(
                        params![Ts(lease_until), claimer, token, id],
                        rows::outbox_item,
                    )?);
                }
            }
            tx.commit()?;
            Ok(items)
        })
        .await
    }

    async fn renew_claim(
        &self,
        id: i64,
        claim: &Claim,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let claim = claim.clone();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE outbox SET claimed_until = ?1 WHERE id = ?2 AND status = 'sending' \
                 AND claimed_by = ?3 AND claim_token = ?4 AND claimed_until > ?5",
                params![Ts(lease_until), id, claim.by, claim.token, Ts(now)],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn mark_sent(&self, id: i64, claim: &Claim, at: DateTime<Utc>) -> StoreResult<bool> {
        let claim = claim.clone();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?1, finished_at = ?1, claimed_until = NULL, \
                 last_error = NULL WHERE id = ?2 AND status = 'sending' AND claimed_by = ?3 \
                 AND claim_token = ?4",
                params![Ts(at), id, claim.by, claim.token],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn release(&self, id: i64, claim: &Claim, at: DateTime<Utc>) -> StoreResult<bool> {
        let claim = claim.clone();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE outbox SET status = 'pending', \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 claimed_until = NULL, next_attempt_at = ?1 WHERE id = ?2 AND status = 'sending' \
                 AND claimed_by = ?3 AND claim_token = ?4",
                params![Ts(at), id, claim.by, claim.token],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn mark_failed(
        &self,
        id: i64,
        claim: &Claim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (claim, error) = (claim.clone(), error.to_string());
        self.with_conn(move |conn| {
            let (status, finished) = match retry_at {
                Some(_) => ("pending", None),
                None => ("dead", Some(Ts(at))),
            };
            let n = conn.execute(
                "UPDATE outbox SET status = ?1, last_error = ?2, claimed_until = NULL, \
                 next_attempt_at = COALESCE(?3, next_attempt_at), finished_at = ?7 WHERE id = ?4 \
                 AND status = 'sending' AND claimed_by = ?5 AND claim_token = ?6",
                params![status, error, retry_at.map(Ts), id, claim.by, claim.token, finished],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn record_endpoint(
        &self,
        target: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<EndpointHealth> {
        let (target, error) = (target.to_string(), error.map(str::to_string));
        self.with_conn(move |conn| {
            Ok(match error {
                None => conn.query_row(
                    "INSERT INTO endpoints (target, consecutive_failures, updated_at) \
                     VALUES (?1, 0, ?2) \
                     ON CONFLICT (target) DO UPDATE SET consecutive_failures = 0, \
                     suspended_until = NULL, last_error = NULL, updated_at = excluded.updated_at \
                     RETURNING *",
                    params![target, Ts(at)],
                    rows::endpoint,
                )?,
                Some(error) => conn.query_row(
                    "INSERT INTO endpoints (target, consecutive_failures, last_error, updated_at) \
                     VALUES (?1, 1, ?2, ?3) \
                     ON CONFLICT (target) DO UPDATE SET \
                     consecutive_failures = endpoints.consecutive_failures + 1, \
                     last_error = excluded.last_error, updated_at = excluded.updated_at \
                     RETURNING *",
                    params![target, error, Ts(at)],
                    rows::endpoint,
                )?,
            })
        })
        .await
    }

    async fn suspend_endpoint(&self, target: &str, until: DateTime<Utc>) -> StoreResult<()> {
        let target = target.to_string();
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE endpoints SET suspended_until = ?1 WHERE target = ?2",
                params![Ts(until), target],
            )?;
            Ok(())
        })
        .await
    }

    async fn endpoints(&self) -> StoreResult<Vec<EndpointHealth>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached("SELECT * FROM endpoints ORDER BY target")?;
            Ok(stmt.query_map([], rows::endpoint)?.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        self.with_conn(|conn| {
            // A pending item that has failed before is waiting for a retry.
            let mut stmt = conn.prepare_cached(
                "SELECT CASE WHEN status = 'pending' AND attempts > 0 THEN 'retrying' \
                 ELSE status END AS state, COUNT(*) AS n FROM outbox GROUP BY 1",
            )?;
            let mut rows = stmt.query([])?;
            let mut c = OutboxCounts::default();
            while let Some(r) = rows.next()? {
                c.set(&r.get::<_, String>("state")?, r.get::<_, i64>("n")? as u64);
            }
            Ok(c)
        })
        .await
    }

    async fn requeue_dead(
        &self,
        filter: &RequeueFilter,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (filter, actor) = (filter.clone(), actor.to_string());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?1, \
                 claimed_until = NULL, finished_at = NULL WHERE status = 'dead' AND (?2 IS NULL OR channel = ?2) \
                 AND (?3 IS NULL OR target = ?3) AND (?4 IS NULL OR id = ?4)",
                params![Ts(at), filter.channel, filter.target, filter.id],
            )?;
            tx.execute(
                "INSERT INTO outbox_audit (at, actor, action, filter, items) \
                 VALUES (?1, ?2, 'requeue', ?3, ?4)",
                params![
                    Ts(at),
                    actor,
                    serde_json::to_string(&filter).unwrap_or_default(),
                    n as i64
                ],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn outbox_items(&self, page: &OutboxPage) -> StoreResult<Vec<OutboxItem>> {
        let page = page.clone();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, idempotency_key, channel, target, subject, message_id, \
                 CASE WHEN ?6 THEN payload ELSE '' END AS payload, status, attempts, \
                 next_attempt_at, last_error, claimed_by, claim_token, created_at, finished_at \
                 FROM outbox WHERE (?1 IS NULL OR status = ?1) \
                 AND (?2 IS NULL OR channel = ?2) AND (?3 IS NULL OR target = ?3) \
                 AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5",
            )?;
            let found = stmt.query_map(
                params![
                    page.status,
                    page.channel,
                    page.target,
                    page.before,
                    page.limit,
                    page.payload
                ],
                rows::outbox_item,
            )?;
            Ok(found.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn deliveries(&self, page: &OutboxPage) -> StoreResult<Vec<Delivery>> {
        let page = page.clone();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM deliveries WHERE (?1 IS NULL OR status = ?1) \
                 AND (?2 IS NULL OR channel = ?2) AND (?3 IS NULL OR target = ?3) \
                 AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5",
            )?;
            let found = stmt.query_map(
                params![page.status, page.channel, page.target, page.before, page.limit],
                rows::delivery,
            )?;
            Ok(found.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn purge_outbox(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        self.with_conn(move |conn| {
            // SQLite serialises writers: the same batch is copied, then deleted.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO deliveries (id, idempotency_key, channel, target, subject, \
                 message_id, status, attempts, last_error, created_at, finished_at) \
                 SELECT id, idempotency_key, channel, target, subject, message_id, status, \
                 attempts, last_error, created_at, finished_at FROM outbox \
                 WHERE status IN ('sent', 'dead') AND finished_at < ?1 ORDER BY finished_at \
                 LIMIT ?2 ON CONFLICT DO NOTHING",
                params![Ts(before), batch],
            )?;
            let n = tx.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
                 WHERE status IN ('sent', 'dead') AND finished_at < ?1 ORDER BY finished_at \
                 LIMIT ?2)",
                params![Ts(before), batch],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        self.with_conn(move |conn| {
            let n = conn.execute(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
                 WHERE finished_at < ?1 ORDER BY finished_at LIMIT ?2)",
                params![Ts(before), batch],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
