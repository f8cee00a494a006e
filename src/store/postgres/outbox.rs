//! Store, PostgreSQL outbox: [`OutboxStore`] on PostgreSQL. Replicas claiming at once get
//! different items (`FOR UPDATE SKIP LOCKED`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::PgStore;
use super::rows;
use crate::error::StoreResult;
use crate::store::{
    Claim, Delivery, EndpointHealth, NewOutboxItem, OutboxCounts, OutboxItem, OutboxPage,
    OutboxStore, RequeueFilter,
};

/// The advisory lock that makes outbox claims one at a time (an arbitrary constant).
const CLAIM_LOCK: i64 = 0x6369_6572_7265_0001;

/// Items per multi-row insert (8 values each).
const ITEMS_PER_INSERT: usize = 2_000;

/// Queues `items`, skipping those whose idempotency key is already queued; returns how many
/// were queued. Also used by the evaluation, which queues its events with the findings they
/// announce.
pub(super) async fn insert_outbox(
    conn: &mut PgConnection,
    items: &[NewOutboxItem],
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut inserted = 0;
    for chunk in items.chunks(ITEMS_PER_INSERT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO outbox (idempotency_key, channel, target, subject, message_id, payload, \
             status, attempts, next_attempt_at, created_at) SELECT * FROM (",
        );
        // A notification purged to the delivery history keeps its key: never queued again.
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
        q.push(
            ") AS v (idempotency_key, channel, target, subject, message_id, payload, status, \
             attempts, next_attempt_at, created_at) \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries d \
               WHERE d.idempotency_key = v.idempotency_key) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        );
        inserted += q.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

/// Up to `limit` ids of claimable heads of queues (a target's earliest item still pending or
/// sending) among the targets after `after` (up to `upto`), in target order. The targets are
/// walked one index probe each (a loose index scan of `outbox_target_open`), and the walk
/// stops at `limit`: a long queue behind one target costs nothing.
async fn claimable_heads(
    conn: &mut PgConnection,
    after: &str,
    upto: Option<&str>,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<i64>> {
    let found = sqlx::query(
        "WITH RECURSIVE heads (target, id, status, next_attempt_at, claimed_until) AS ( \
           (SELECT target, id, status, next_attempt_at, claimed_until FROM outbox \
            WHERE status IN ('pending', 'sending') AND target > $1 \
              AND ($2::TEXT IS NULL OR target <= $2) \
            ORDER BY target, id LIMIT 1) \
           UNION ALL \
           SELECT n.* FROM heads h CROSS JOIN LATERAL ( \
             SELECT target, id, status, next_attempt_at, claimed_until FROM outbox \
             WHERE status IN ('pending', 'sending') AND target > h.target \
               AND ($2::TEXT IS NULL OR target <= $2) \
             ORDER BY target, id LIMIT 1) n) \
         SELECT id FROM heads \
         WHERE ((status = 'pending' AND next_attempt_at <= $3) \
             OR (status = 'sending' AND claimed_until <= $3)) \
           AND target NOT IN (SELECT target FROM endpoints WHERE suspended_until > $3) \
         LIMIT $4",
    )
    .bind(after)
    .bind(upto)
    .bind(now)
    .bind(limit as i64)
    .fetch_all(&mut *conn)
    .await?;
    Ok(found.iter().map(|r| r.get("id")).collect())
}

impl OutboxStore for PgStore {
    async fn enqueue(&self, item: &NewOutboxItem, at: DateTime<Utc>) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await?;
        Ok(insert_outbox(&mut conn, std::slice::from_ref(item), at).await? == 1)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        claimer: &str,
        after: &str,
    ) -> StoreResult<Vec<OutboxItem>> {
        // Claims are taken one at a time (a transaction-scoped advisory lock): the head of a
        // target's queue is judged on committed states only, so two replicas never claim a
        // target's first and second items together. An expired lease (a claimer that died)
        // makes the item claimable again.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CLAIM_LOCK).execute(&mut *tx).await?;
        // The heads after `after`, then (wrapping round) those up to it.
        let mut ids = claimable_heads(&mut tx, after, None, now, limit).await?;
        if (ids.len() as u32) < limit && !after.is_empty() {
            let more = limit - ids.len() as u32;
            ids.extend(claimable_heads(&mut tx, "", Some(after), now, more).await?);
        }
        let found = sqlx::query(
            "UPDATE outbox SET status = 'sending', claimed_until = $1, claimed_by = $2, \
             claim_token = $3, attempts = attempts + 1 WHERE id = ANY($4) RETURNING *",
        )
        .bind(lease_until)
        .bind(claimer)
        .bind(crate::store::claim_token())
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut items: Vec<OutboxItem> = found.iter().map(rows::outbox_item).collect();
        items.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(items)
    }

    async fn renew_claim(
        &self,
        id: i64,
        claim: &Claim,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_until = $1 WHERE id = $2 AND status = 'sending' \
             AND claimed_by = $3 AND claim_token = $4 AND claimed_until > $5",
        )
        .bind(lease_until)
        .bind(id)
        .bind(&claim.by)
        .bind(&claim.token)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_sent(&self, id: i64, claim: &Claim, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, finished_at = $1, claimed_until = NULL, \
             last_error = NULL WHERE id = $2 AND status = 'sending' AND claimed_by = $3 \
             AND claim_token = $4",
        )
        .bind(at)
        .bind(id)
        .bind(&claim.by)
        .bind(&claim.token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release(&self, id: i64, claim: &Claim, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
             claimed_until = NULL, next_attempt_at = $1 WHERE id = $2 AND status = 'sending' \
             AND claimed_by = $3 AND claim_token = $4",
        )
        .bind(at)
        .bind(id)
        .bind(&claim.by)
        .bind(&claim.token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_failed(
        &self,
        id: i64,
        claim: &Claim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (status, finished) = match retry_at {
            Some(_) => ("pending", None),
            None => ("dead", Some(at)),
        };
        let done = sqlx::query(
            "UPDATE outbox SET status = $1, last_error = $2, claimed_until = NULL, \
             next_attempt_at = COALESCE($3, next_attempt_at), finished_at = $7 WHERE id = $4 \
             AND status = 'sending' AND claimed_by = $5 AND claim_token = $6",
        )
        .bind(status)
        .bind(error)
        .bind(retry_at)
        .bind(id)
        .bind(&claim.by)
        .bind(&claim.token)
        .bind(finished)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_endpoint(
        &self,
        target: &str,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> StoreResult<EndpointHealth> {
        let row =
            match error {
                None => {
                    sqlx::query(
                        "INSERT INTO endpoints (target, consecutive_failures, updated_at) \
                     VALUES ($1, 0, $2) \
                     ON CONFLICT (target) DO UPDATE SET consecutive_failures = 0, \
                     suspended_until = NULL, last_error = NULL, updated_at = excluded.updated_at \
                     RETURNING *",
                    )
                    .bind(target)
                    .bind(at)
                    .fetch_one(&self.pool)
                    .await?
                }
                Some(error) => sqlx::query(
                    "INSERT INTO endpoints (target, consecutive_failures, last_error, updated_at) \
                     VALUES ($1, 1, $2, $3) \
                     ON CONFLICT (target) DO UPDATE SET \
                     consecutive_failures = endpoints.consecutive_failures + 1, \
                     last_error = excluded.last_error, updated_at = excluded.updated_at \
                     RETURNING *",
                )
                .bind(target)
                .bind(error)
                .bind(at)
                .fetch_one(&self.pool)
                .await?,
            };
        Ok(rows::endpoint(&row))
    }

    async fn suspend_endpoint(&self, target: &str, until: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE endpoints SET suspended_until = $1 WHERE target = $2")
            .bind(until)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn endpoints(&self) -> StoreResult<Vec<EndpointHealth>> {
        let found =
            sqlx::query("SELECT * FROM endpoints ORDER BY target").fetch_all(&self.pool).await?;
        Ok(found.iter().map(rows::endpoint).collect())
    }

    async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        // A pending item that has failed before is waiting for a retry.
        let found = sqlx::query(
            "SELECT CASE WHEN status = 'pending' AND attempts > 0 THEN 'retrying' \
             ELSE status END AS state, COUNT(*) AS n FROM outbox GROUP BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut c = OutboxCounts::default();
        for r in found {
            c.set(&r.get::<String, _>("state"), r.get::<i64, _>("n") as u64);
        }
        Ok(c)
    }

    async fn requeue_dead(
        &self,
        filter: &RequeueFilter,
        actor: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, \
             claimed_until = NULL, finished_at = NULL WHERE status = 'dead' AND ($2::TEXT IS NULL OR channel = $2) \
             AND ($3::TEXT IS NULL OR target = $3) AND ($4::BIGINT IS NULL OR id = $4)",
        )
        .bind(at)
        .bind(&filter.channel)
        .bind(&filter.target)
        .bind(filter.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO outbox_audit (at, actor, action, filter, items) \
             VALUES ($1, $2, 'requeue', $3, $4)",
        )
        .bind(at)
        .bind(actor)
        .bind(serde_json::to_string(filter).unwrap_or_default())
        .bind(n as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn outbox_items(&self, page: &OutboxPage) -> StoreResult<Vec<OutboxItem>> {
        let found = sqlx::query(
            "SELECT id, idempotency_key, channel, target, subject, message_id, \
             CASE WHEN $6 THEN payload ELSE '' END AS payload, status, attempts, \
             next_attempt_at, last_error, claimed_by, claim_token, created_at, finished_at \
             FROM outbox WHERE ($1::TEXT IS NULL OR status = $1) \
             AND ($2::TEXT IS NULL OR channel = $2) AND ($3::TEXT IS NULL OR target = $3) \
             AND ($4::BIGINT IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        )
        .bind(&page.status)
        .bind(&page.channel)
        .bind(&page.target)
        .bind(page.before)
        .bind(page.limit as i64)
        .bind(page.payload)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::outbox_item).collect())
    }

    async fn deliveries(&self, page: &OutboxPage) -> StoreResult<Vec<Delivery>> {
        let found = sqlx::query(
            "SELECT * FROM deliveries WHERE ($1::TEXT IS NULL OR status = $1) \
             AND ($2::TEXT IS NULL OR channel = $2) AND ($3::TEXT IS NULL OR target = $3) \
             AND ($4::BIGINT IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        )
        .bind(&page.status)
        .bind(&page.channel)
        .bind(&page.target)
        .bind(page.before)
        .bind(page.limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::delivery).collect())
    }

    async fn purge_outbox(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        // One statement: the rows deleted are the rows kept. The status is checked again on
        // the row deleted, in case an operator queued a dead item again meanwhile.
        let done = sqlx::query(
            "WITH gone AS (DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
               WHERE status IN ('sent', 'dead') AND finished_at < $1 ORDER BY finished_at \
               LIMIT $2) AND status IN ('sent', 'dead') \
             RETURNING id, idempotency_key, channel, target, subject, message_id, status, \
               attempts, last_error, created_at, finished_at) \
             INSERT INTO deliveries (id, idempotency_key, channel, target, subject, message_id, \
               status, attempts, last_error, created_at, finished_at) \
             SELECT * FROM gone ON CONFLICT DO NOTHING",
        )
        .bind(before)
        .bind(batch as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
             WHERE finished_at < $1 ORDER BY finished_at LIMIT $2)",
        )
        .bind(before)
        .bind(batch as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
