//! Store, SQLite digests: [`DigestStore`] on SQLite — open findings in pages of finding ids
//! joined with their contracts (one query per page, not one per finding), and the slot of
//! each recipient's digests.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{self, Columns, Day, Ts};
use crate::error::StoreResult;
use crate::store::{DigestFinding, DigestStore, FindingCursor, FindingFilter, ResolvedCursor};

/// A [`FindingFilter`] as SQL over the findings (`f`) and their contracts (`c`): its kind,
/// level and entity bound at `?first`, `?first+1` and `?first+2`, each `NULL` for any.
fn filtered(first: usize) -> String {
    let (kind, level, entity) = (first, first + 1, first + 2);
    format!(
        "(?{kind} IS NULL OR f.kind = ?{kind}) \
         AND (?{level} IS NULL OR f.level = ?{level}) \
         AND (?{entity} IS NULL OR c.nit_entidad = ?{entity})"
    )
}

/// The columns of a digest finding: the finding's, its last escalation and resolution
/// days, and its contract's.
fn select() -> String {
    let finding = rows::FINDING.iter().map(|c| format!("f.{c}")).collect::<Vec<_>>().join(", ");
    let contract = rows::CONTRACT.iter().map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {finding}, f.resolved_on AS resolved_on, \
         (SELECT MAX(e.on_date) FROM finding_events e \
          WHERE e.finding_id = f.id AND e.event = 'escalated') AS escalated_on, {contract} \
         FROM findings f JOIN contracts c ON c.id_contrato = f.contract_id"
    )
}

fn query(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<DigestFinding>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let fcols = Columns::of(&stmt, &rows::FINDING)?;
    let ccols = Columns::of(&stmt, &rows::CONTRACT)?;
    let (escalated, resolved) =
        (stmt.column_index("escalated_on")?, stmt.column_index("resolved_on")?);
    let mut found = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = found.next()? {
        out.push(DigestFinding {
            stored: rows::finding(r, &fcols)?,
            escalated_on: r.get::<_, Option<Day>>(escalated)?.map(|d| d.0),
            resolved_on: r.get::<_, Option<Day>>(resolved)?.map(|d| d.0),
            contract: rows::contract(r, &ccols)?,
        });
    }
    Ok(out)
}

impl DigestStore for SqliteStore {
    async fn urgent_page(
        &self,
        after: Option<&FindingCursor>,
        filter: &FindingFilter,
        limit: u32,
    ) -> StoreResult<Vec<DigestFinding>> {
        let after = after.cloned();
        let f = filter.clone();
        self.with_conn(move |conn| {
            // The first page has no cursor: its condition is then always true.
            let from = if after.is_some() {
                "(f.deadline, f.contract_id, f.kind, f.stage) > (?1, ?2, ?3, ?4)"
            } else {
                "?1 IS NULL AND ?2 IS NULL AND ?3 IS NULL AND ?4 IS NULL"
            };
            let sql = format!(
                "{} WHERE f.status = 'open' AND {from} AND {} \
                 ORDER BY f.deadline, f.contract_id, f.kind, f.stage LIMIT ?5",
                select(),
                filtered(6)
            );
            let c = after.as_ref();
            query(
                conn,
                &sql,
                params![
                    c.map(|c| Day(c.deadline)),
                    c.map(|c| &c.contract_id),
                    c.map(|c| &c.kind),
                    c.map(|c| &c.stage),
                    limit,
                    f.kind,
                    f.level,
                    f.entity
                ],
            )
        })
        .await
    }

    async fn digest_page(
        &self,
        after: i64,
        filter: &FindingFilter,
        limit: u32,
    ) -> StoreResult<Vec<DigestFinding>> {
        let f = filter.clone();
        self.with_conn(move |conn| {
            let sql = format!(
                "{} WHERE f.status = 'open' AND f.id > ?1 AND {} ORDER BY f.id LIMIT ?2",
                select(),
                filtered(3)
            );
            query(conn, &sql, params![after, limit, f.kind, f.level, f.entity])
        })
        .await
    }

    async fn digest_findings(&self, ids: &[i64]) -> StoreResult<Vec<DigestFinding>> {
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        self.with_conn(move |conn| {
            let sql = format!(
                "{} WHERE f.id IN (SELECT value FROM json_each(?1)) ORDER BY f.id",
                select()
            );
            query(conn, &sql, [ids])
        })
        .await
    }

    async fn resolved_page(
        &self,
        since: NaiveDate,
        after: Option<ResolvedCursor>,
        limit: u32,
    ) -> StoreResult<Vec<DigestFinding>> {
        let (day, id) = after.map_or((since, i64::MAX), |a| (a.resolved_on, a.id));
        self.with_conn(move |conn| {
            // From the day after `since`: the first page starts past every id of that day.
            let sql = format!(
                "{} WHERE f.status = 'resolved' AND f.resolved_on IS NOT NULL \
                 AND (f.resolved_on, f.id) > (?1, ?2) ORDER BY f.resolved_on, f.id LIMIT ?3",
                select()
            );
            query(conn, &sql, params![Day(day), id, limit])
        })
        .await
    }

    async fn record_digest(
        &self,
        recipient: &str,
        slot: NaiveDate,
        rows: u64,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let recipient = recipient.to_string();
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "INSERT INTO digest_slots (recipient, slot, rows, created_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![recipient, Day(slot), rows as i64, Ts(at)])?;
            Ok(())
        })
        .await
    }

    async fn previous_digests(&self, slot: NaiveDate) -> StoreResult<Vec<(String, NaiveDate)>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT recipient, MAX(slot) AS slot FROM digest_slots WHERE slot < ?1 \
                 GROUP BY recipient",
            )?;
            let found = stmt.query_map([Day(slot)], |r| {
                Ok((r.get("recipient")?, r.get::<_, Day>("slot")?.0))
            })?;
            Ok(found.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn purge_digests(&self, before: NaiveDate) -> StoreResult<u64> {
        self.with_conn(move |conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM digest_slots WHERE slot < ?1 AND slot < \
                 (SELECT MAX(d.slot) FROM digest_slots d WHERE d.recipient = digest_slots.recipient)",
                )?
                .execute([Day(before)])?;
            Ok(n as u64)
        })
        .await
    }
}
