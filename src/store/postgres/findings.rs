//! Store, PostgreSQL findings: [`FindingStore`] on PostgreSQL. An evaluation page is read
//! in one repeatable-read transaction (one snapshot); its changes are written in multi-row
//! statements. Ranges of contract ids are `(after, up_to]` (`$1`, `$2`), or `> $1` on the
//! last page.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::PgStore;
use super::outbox::insert_outbox;
use super::rows::{self, FINDING_COLUMNS, contract_columns, guarantee_columns, json};
use crate::domain::Contract;
use crate::domain::ack;
use crate::domain::{Finding, StoredFinding};
use crate::error::StoreResult;
use crate::store::{
    DossierFacts, EvaluationPage, FindingChanges, FindingCursor, FindingStore, NewOutboxItem,
};

/// The id range as SQL over `col`.
fn range(col: &str, bounded: bool) -> String {
    if bounded { format!("{col} > $1 AND {col} <= $2") } else { format!("{col} > $1") }
}

/// A query over the id range `(after, up_to]`, its bounds bound.
fn in_range(
    sql: String,
    after: &str,
    up_to: Option<&str>,
) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after.to_string());
    match up_to {
        Some(up_to) => q.bind(up_to.to_string()),
        None => q,
    }
}

impl FindingStore for PgStore {
    async fn contract(&self, id: &str) -> StoreResult<Option<Contract>> {
        let sql = format!("SELECT {} FROM contracts WHERE id_contrato = $1", contract_columns());
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(rows::contract))
    }

    async fn evaluation_page(&self, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT {} FROM contracts WHERE vanished_at IS NULL AND id_contrato > $1 \
             ORDER BY id_contrato LIMIT $2",
            contract_columns()
        );
        let contracts: Vec<Contract> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(rows::contract)
            .collect();
        let up_to = match contracts.last() {
            Some(last) if contracts.len() == limit as usize => Some(last.id.clone()),
            _ => None,
        };
        let mut facts = dossier_facts(&mut tx, after, up_to.as_deref()).await?;
        facts.classified = sqlx::query_as::<_, (String, String)>(
            "SELECT id_documento, kind FROM document_classifications",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' AND {}",
            range("contract_id", up_to.is_some())
        );
        let open = in_range(sql, after, up_to.as_deref())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(rows::finding)
            .collect::<StoreResult<_>>()?;
        tx.commit().await?;
        Ok(EvaluationPage { contracts, up_to, facts, open })
    }

    async fn open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredFinding>> {
        // Business days left grow with the deadline, so this is their order whatever date
        // they are counted from.
        let found = match after {
            None => {
                let sql = format!(
                    "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' \
                     ORDER BY deadline, contract_id, kind, stage LIMIT $1"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(c) => {
                let sql = format!(
                    "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' \
                     AND (deadline, contract_id, kind, stage) > ($1, $2, $3, $4) \
                     ORDER BY deadline, contract_id, kind, stage LIMIT $5"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(c.deadline)
                    .bind(&c.contract_id)
                    .bind(&c.kind)
                    .bind(&c.stage)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        found.iter().map(rows::finding).collect()
    }

    async fn apply_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        apply_findings(&self.pool, changes, events, on, at).await
    }

    async fn findings_summary(&self) -> StoreResult<Vec<(String, String, u64)>> {
        let found = sqlx::query(
            "SELECT kind, level, COUNT(*) AS n FROM findings WHERE status = 'open' \
             GROUP BY kind, level ORDER BY kind, level",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(found
            .iter()
            .map(|r| (r.get("kind"), r.get("level"), r.get::<i64, _>("n") as u64))
            .collect())
    }
}

/// The documents and guarantees of the contracts with ids in `(after, up_to]`: documents
/// published on each contract and, for each contract, those published on its process
/// without a contract number.
async fn dossier_facts(
    conn: &mut PgConnection,
    after: &str,
    up_to: Option<&str>,
) -> StoreResult<DossierFacts> {
    let bounded = up_to.is_some();
    let sql = format!(
        "SELECT d.id_contrato AS owner, d.id_documento, d.nombre_archivo, d.descripcion, \
         d.fecha_carga FROM documents d WHERE {} AND d.vanished_at IS NULL \
         UNION ALL \
         SELECT c.id_contrato AS owner, d.id_documento, d.nombre_archivo, d.descripcion, \
         d.fecha_carga FROM contracts c JOIN documents d ON d.proceso = c.proceso_de_compra \
         WHERE {} AND c.vanished_at IS NULL AND d.id_contrato IS NULL AND d.vanished_at IS NULL",
        range("d.id_contrato", bounded),
        range("c.id_contrato", bounded)
    );
    let documents = in_range(sql, after, up_to)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let owner: String = r.get("owner");
            (owner.clone(), rows::document(r, owner))
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM guarantees WHERE {} AND vanished_at IS NULL",
        guarantee_columns(),
        range("id_contrato", bounded)
    );
    let guarantees = in_range(sql, after, up_to)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(rows::guarantee)
        .collect();
    Ok(DossierFacts { documents, guarantees, ..Default::default() })
}

/// Rows per multi-row statement of [`apply_findings_batched`] (at most 9 values each).
const FINDING_ROWS: usize = 2_000;

/// Records an evaluation page's changes and their events in a few multi-row statements, one
/// transaction: a cost that does not grow with the network latency times the findings.
async fn apply_findings(
    pool: &PgPool,
    changes: &FindingChanges,
    events: &[NewOutboxItem],
    on: NaiveDate,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    insert_outbox(&mut tx, events, at).await?;
    // (finding id, event, level) to record.
    let mut history: Vec<(i64, &str, String)> = Vec::new();
    for chunk in changes.opened.chunks(FINDING_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO findings (contract_id, kind, stage, status, since, deadline, \
             business_days_left, level, step, reasons, missing, evaluated_on, opened_on, \
             updated_at, facts) ",
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
                .push_bind(at)
                .push_bind(&f.facts);
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
             missing = v.missing, facts = v.facts, evaluated_on = ",
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
                .push_unseparated("::text")
                .push_bind(&f.facts)
                .push_unseparated("::text");
        });
        q.push(
            ") AS v (id, since, deadline, days, level, step, reasons, missing, facts) \
             WHERE f.id = v.id AND f.status = 'open' RETURNING f.id, f.level",
        );
        for row in q.build().fetch_all(&mut *tx).await? {
            let id: i64 = row.get(0);
            if let Some(ev) = events_of.get(&id) {
                history.push((id, ev, row.get(1)));
            }
        }
    }
    // (answer id, why) of the answers that end: with their finding, or when it reopens.
    let mut ended: Vec<(i64, String)> = Vec::new();
    for chunk in changes.resolved.chunks(FINDING_ROWS) {
        let rows = sqlx::query(
            "UPDATE findings AS f SET status = 'resolved', resolved_on = $1, updated_at = $2, \
             ack_id = NULL, ack_state = NULL, ack_until = NULL, ack_level = NULL, ack_facts = NULL \
             FROM findings AS old WHERE old.id = f.id AND f.id = ANY($3) AND f.status = 'open' \
             RETURNING f.id, f.level, old.ack_id",
        )
        .bind(on)
        .bind(at)
        .bind(chunk)
        .fetch_all(&mut *tx)
        .await?;
        // Ids another replica resolved first are not returned.
        for row in rows {
            history.push((row.get(0), "resolved", row.get(1)));
            if let Some(answer) = row.get::<Option<i64>, _>(2) {
                ended.push((answer, ack::RESOLVED.to_string()));
            }
        }
    }
    // (finding id, level, why) of the findings shown again.
    let mut reopened: Vec<(i64, String, String)> = Vec::new();
    for (id, ack, why) in &changes.reopened {
        let level: Option<String> = sqlx::query_scalar(
            "UPDATE findings SET ack_id = NULL, ack_state = NULL, ack_until = NULL, \
             ack_level = NULL, ack_facts = NULL, updated_at = $3 \
             WHERE id = $1 AND ack_id = $2 AND status = 'open' RETURNING level",
        )
        .bind(id)
        .bind(ack)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        // None: answered again, or resolved, meanwhile.
        if let Some(level) = level {
            ended.push((*ack, why.clone()));
            reopened.push((*id, level, why.clone()));
        }
    }
    for (ack, why) in &ended {
        sqlx::query(
            "UPDATE acknowledgements SET ended_on = $1, ended_reason = $2, ended_at = $3 \
             WHERE id = $4 AND ended_at IS NULL",
        )
        .bind(on)
        .bind(why)
        .bind(at)
        .bind(ack)
        .execute(&mut *tx)
        .await?;
    }
    for (id, level, why) in &reopened {
        sqlx::query(
            "INSERT INTO finding_events (finding_id, event, level, on_date, created_at, detail) \
             VALUES ($1, 'reopened', $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(level)
        .bind(on)
        .bind(at)
        .bind(why)
        .execute(&mut *tx)
        .await?;
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
