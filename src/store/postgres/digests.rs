//! Store, PostgreSQL digests: [`DigestStore`] on PostgreSQL — open findings in pages of
//! finding ids joined with their contracts (one query per page, not one per finding), and
//! the slot of each recipient's digests.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::rows::{self, FINDING_COLUMNS};
use crate::error::StoreResult;
use crate::store::{DigestFinding, DigestStore, FindingCursor, FindingFilter, ResolvedCursor};

/// A [`FindingFilter`] as SQL over the findings (`f`) and their contracts (`c`): its kind,
/// level and entity bound at `$first`, `$first+1` and `$first+2`, each `NULL` for any.
fn filtered(first: usize) -> String {
    let (kind, level, entity) = (first, first + 1, first + 2);
    format!(
        "(${kind}::TEXT IS NULL OR f.kind = ${kind}) \
         AND (${level}::TEXT IS NULL OR f.level = ${level}) \
         AND (${entity}::TEXT IS NULL OR c.nit_entidad = ${entity})"
    )
}

/// The columns of a digest finding: the finding's, its last escalation and resolution
/// days, and its contract's.
fn select() -> String {
    let finding =
        FINDING_COLUMNS.split(", ").map(|c| format!("f.{}", c.trim())).collect::<Vec<_>>();
    let contract = crate::store::table::CONTRACT_READ.map(|c| format!("c.{c}"));
    format!(
        "SELECT {}, f.resolved_on AS resolved_on, \
         (SELECT MAX(e.on_date) FROM finding_events e \
          WHERE e.finding_id = f.id AND e.event = 'escalated') AS escalated_on, {} \
         FROM findings f JOIN contracts c ON c.id_contrato = f.contract_id",
        finding.join(", "),
        contract.join(", ")
    )
}

fn digest_finding(r: &PgRow) -> StoreResult<DigestFinding> {
    Ok(DigestFinding {
        stored: rows::finding(r)?,
        escalated_on: r.get("escalated_on"),
        resolved_on: r.get("resolved_on"),
        contract: rows::contract(r),
    })
}

impl DigestStore for PgStore {
    async fn urgent_page(
        &self,
        after: Option<&FindingCursor>,
        filter: &FindingFilter,
        limit: u32,
    ) -> StoreResult<Vec<DigestFinding>> {
        // The first page has no cursor: its condition is then always true (typed, so the
        // parameters stay the same in both queries).
        let from = if after.is_some() {
            "(f.deadline, f.contract_id, f.kind, f.stage) > ($1, $2, $3, $4)"
        } else {
            "$1::DATE IS NULL AND $2::TEXT IS NULL AND $3::TEXT IS NULL AND $4::TEXT IS NULL"
        };
        let sql = format!(
            "{} WHERE f.status = 'open' AND {from} AND {} \
             ORDER BY f.deadline, f.contract_id, f.kind, f.stage LIMIT $5",
            select(),
            filtered(6)
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.map(|c| c.deadline))
            .bind(after.map(|c| c.contract_id.as_str()))
            .bind(after.map(|c| c.kind.as_str()))
            .bind(after.map(|c| c.stage.as_str()))
            .bind(limit as i64)
            .bind(&filter.kind)
            .bind(&filter.level)
            .bind(&filter.entity)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(digest_finding).collect()
    }

    async fn digest_page(
        &self,
        after: i64,
        filter: &FindingFilter,
        limit: u32,
    ) -> StoreResult<Vec<DigestFinding>> {
        let sql = format!(
            "{} WHERE f.status = 'open' AND f.id > $1 AND {} ORDER BY f.id LIMIT $2",
            select(),
            filtered(3)
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit as i64)
            .bind(&filter.kind)
            .bind(&filter.level)
            .bind(&filter.entity)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(digest_finding).collect()
    }

    async fn digest_findings(&self, ids: &[i64]) -> StoreResult<Vec<DigestFinding>> {
        let sql = format!("{} WHERE f.id = ANY($1) ORDER BY f.id", select());
        let found =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids.to_vec()).fetch_all(&self.pool).await?;
        found.iter().map(digest_finding).collect()
    }

    async fn resolved_page(
        &self,
        since: NaiveDate,
        after: Option<ResolvedCursor>,
        limit: u32,
    ) -> StoreResult<Vec<DigestFinding>> {
        let (day, id) = after.map_or((since, i64::MAX), |a| (a.resolved_on, a.id));
        // From the day after `since`: the first page starts past every id of that day.
        let sql = format!(
            "{} WHERE f.status = 'resolved' AND f.resolved_on IS NOT NULL \
             AND (f.resolved_on, f.id) > ($1, $2) ORDER BY f.resolved_on, f.id LIMIT $3",
            select()
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(day)
            .bind(id)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(digest_finding).collect()
    }

    async fn record_digest(
        &self,
        recipient: &str,
        slot: NaiveDate,
        rows: u64,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO digest_slots (recipient, slot, rows, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(recipient)
        .bind(slot)
        .bind(rows as i64)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn previous_digests(&self, slot: NaiveDate) -> StoreResult<Vec<(String, NaiveDate)>> {
        let found = sqlx::query(
            "SELECT recipient, MAX(slot) AS slot FROM digest_slots WHERE slot < $1 \
             GROUP BY recipient",
        )
        .bind(slot)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(|r| (r.get("recipient"), r.get("slot"))).collect())
    }

    async fn purge_digests(&self, before: NaiveDate) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM digest_slots WHERE slot < $1 AND slot < \
             (SELECT MAX(d.slot) FROM digest_slots d WHERE d.recipient = digest_slots.recipient)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
