//! Store, PostgreSQL findings: [`FindingStore`] on PostgreSQL. An evaluation page is read
//! in one repeatable-read transaction (one snapshot); its changes are written in multi-row
//! statements. A page covers the contract ids `(after, up_to]` (`$1`, `$2`), or `> $1` on
//! the last page, or a list of ids (`$1`, an incremental evaluation's).

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
    ContractEvaluation, DossierFacts, EvaluatedState, EvaluationMark, EvaluationPage,
    EvaluationStore, FindingChanges, FindingCursor, FindingStore, KeptSummary, NewOutboxItem,
    Selection,
};

/// The contracts a page covers, as SQL over a column of contract ids and the values it binds.
enum Covered {
    /// `(after, up_to]`, or `> after` on the last page.
    Range {
        after: String,
        up_to: Option<String>,
    },
    Ids(Vec<String>),
}

impl Covered {
    fn sql(&self, col: &str) -> String {
        match self {
            Covered::Range { up_to: Some(_), .. } => format!("{col} > $1 AND {col} <= $2"),
            Covered::Range { up_to: None, .. } => format!("{col} > $1"),
            Covered::Ids(_) => format!("{col} = ANY($1)"),
        }
    }

    /// `sql`, its values bound.
    fn query(
        &self,
        sql: String,
    ) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql));
        match self {
            Covered::Range { after, up_to: Some(up_to) } => {
                q.bind(after.clone()).bind(up_to.clone())
            }
            Covered::Range { after, up_to: None } => q.bind(after.clone()),
            Covered::Ids(ids) => q.bind(ids.clone()),
        }
    }
}

impl FindingStore for PgStore {
    async fn contract(&self, id: &str) -> StoreResult<Option<Contract>> {
        let sql = format!("SELECT {} FROM contracts WHERE id_contrato = $1", contract_columns());
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(rows::contract))
    }

    async fn evaluation_page(&self, selection: &Selection) -> StoreResult<EvaluationPage> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let (contracts, covered) = match selection {
            Selection::After { after, limit } => {
                let sql = format!(
                    "SELECT {} FROM contracts WHERE vanished_at IS NULL AND id_contrato > $1 \
                     ORDER BY id_contrato LIMIT $2",
                    contract_columns()
                );
                let contracts: Vec<Contract> = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(after)
                    .bind(*limit as i64)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(rows::contract)
                    .collect();
                let up_to = match contracts.last() {
                    Some(last) if contracts.len() == *limit as usize => Some(last.id.clone()),
                    _ => None,
                };
                (contracts, Covered::Range { after: after.clone(), up_to })
            }
            Selection::Ids(ids) => {
                let covered = Covered::Ids(ids.clone());
                let sql = format!(
                    "SELECT {} FROM contracts WHERE vanished_at IS NULL AND {} \
                     ORDER BY id_contrato",
                    contract_columns(),
                    covered.sql("id_contrato")
                );
                let contracts = covered
                    .query(sql)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(rows::contract)
                    .collect();
                (contracts, covered)
            }
        };
        let mut facts = dossier_facts(&mut tx, &covered).await?;
        facts.classified = sqlx::query_as::<_, (String, String)>(
            "SELECT id_documento, kind FROM document_classifications",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' AND {}",
            covered.sql("contract_id")
        );
        let open = covered
            .query(sql)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(rows::finding)
            .collect::<StoreResult<_>>()?;
        let sql = format!(
            "SELECT {KEPT_COLUMNS} FROM contract_evaluations WHERE {}",
            covered.sql("contract_id")
        );
        let kept = covered.query(sql).fetch_all(&mut *tx).await?.iter().map(kept).collect();
        tx.commit().await?;
        let up_to = match covered {
            Covered::Range { up_to, .. } => up_to,
            Covered::Ids(_) => None,
        };
        Ok(EvaluationPage { contracts, up_to, facts, open, kept })
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

/// The documents and guarantees of the contracts covered: documents published on each
/// contract and, for each contract, those published on its process without a contract
/// number.
async fn dossier_facts(conn: &mut PgConnection, covered: &Covered) -> StoreResult<DossierFacts> {
    let sql = format!(
        "SELECT d.id_contrato AS owner, d.id_documento, d.nombre_archivo, d.descripcion, \
         d.fecha_carga FROM documents d WHERE {} AND d.vanished_at IS NULL \
         UNION ALL \
         SELECT c.id_contrato AS owner, d.id_documento, d.nombre_archivo, d.descripcion, \
         d.fecha_carga FROM contracts c JOIN documents d ON d.proceso = c.proceso_de_compra \
         WHERE {} AND c.vanished_at IS NULL AND d.id_contrato IS NULL AND d.vanished_at IS NULL",
        covered.sql("d.id_contrato"),
        covered.sql("c.id_contrato")
    );
    let documents = covered
        .query(sql)
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
        covered.sql("id_contrato")
    );
    let guarantees =
        covered.query(sql).fetch_all(&mut *conn).await?.iter().map(rows::guarantee).collect();
    Ok(DossierFacts { documents, guarantees, ..Default::default() })
}

/// The columns of a kept evaluation, as [`kept`] reads them.
const KEPT_COLUMNS: &str =
    "contract_id, inputs, next_on, quality, unknown_state, findings, unrouted";

fn kept(r: &sqlx::postgres::PgRow) -> ContractEvaluation {
    ContractEvaluation {
        contract_id: r.get("contract_id"),
        inputs: r.get("inputs"),
        next_on: r.get("next_on"),
        quality: crate::domain::Quality {
            flags: r.get::<i32, _>("quality") as u8,
            unknown_state: r.get("unknown_state"),
        },
        findings: r.get("findings"),
        unrouted: r.get("unrouted"),
    }
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
    for chunk in changes.kept.chunks(FINDING_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO contract_evaluations (contract_id, inputs, next_on, quality, \
             unknown_state, findings, unrouted, evaluated_on) ",
        );
        q.push_values(chunk, |mut b, k| {
            b.push_bind(&k.contract_id)
                .push_bind(k.inputs)
                .push_bind(k.next_on)
                .push_bind(i32::from(k.quality.flags))
                .push_bind(&k.quality.unknown_state)
                .push_bind(&k.findings)
                .push_bind(k.unrouted)
                .push_bind(on);
        });
        q.push(
            " ON CONFLICT (contract_id) DO UPDATE SET inputs = excluded.inputs, \
             next_on = excluded.next_on, quality = excluded.quality, \
             unknown_state = excluded.unknown_state, findings = excluded.findings, \
             unrouted = excluded.unrouted, evaluated_on = excluded.evaluated_on",
        );
        q.build().execute(&mut *tx).await?;
    }
    if !changes.forgotten.is_empty() {
        sqlx::query("DELETE FROM contract_evaluations WHERE contract_id = ANY($1)")
            .bind(&changes.forgotten)
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

impl EvaluationStore for PgStore {
    async fn evaluated_state(&self) -> StoreResult<Option<EvaluatedState>> {
        let row: Option<(String, NaiveDate)> = sqlx::query_as(
            "SELECT fingerprint, as_of FROM evaluation_state \
             WHERE id = 1 AND fingerprint IS NOT NULL AND as_of IS NOT NULL",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(fingerprint, as_of)| EvaluatedState { fingerprint, as_of }))
    }

    async fn begin_full_evaluation(&self) -> StoreResult<Vec<(i64, i64)>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO evaluation_state (id, fingerprint, as_of, updated_at) \
             VALUES (1, NULL, NULL, now()) \
             ON CONFLICT (id) DO UPDATE SET fingerprint = NULL, updated_at = excluded.updated_at",
        )
        .execute(&mut *tx)
        .await?;
        // The marks committed now, as runs of consecutive seq: a mark of a transaction still
        // open may have a lower seq than one committed, and it is not accounted for.
        let ranges: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT MIN(seq), MAX(seq) FROM \
             (SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS run FROM evaluation_marks) r \
             GROUP BY run ORDER BY 1",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ranges)
    }

    async fn evaluation_marks(&self, limit: u32) -> StoreResult<Vec<EvaluationMark>> {
        let rows: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT seq, contract_id, process FROM evaluation_marks ORDER BY seq LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, contract_id, process)| EvaluationMark { seq, contract_id, process })
            .collect())
    }

    async fn evaluations_due(&self, as_of: NaiveDate, limit: u32) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT contract_id FROM contract_evaluations WHERE next_on <= $1 LIMIT $2",
        )
        .bind(as_of)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn contracts_of_processes(&self, processes: &[String]) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id_contrato FROM contracts WHERE vanished_at IS NULL \
             AND proceso_de_compra = ANY($1)",
        )
        .bind(processes)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn kept_summary(&self) -> StoreResult<Vec<KeptSummary>> {
        let rows = sqlx::query(
            "SELECT findings, unrouted, quality, unknown_state, COUNT(*) AS n \
             FROM contract_evaluations GROUP BY findings, unrouted, quality, unknown_state",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| KeptSummary {
                findings: r.get("findings"),
                unrouted: r.get("unrouted"),
                quality: crate::domain::Quality {
                    flags: r.get::<i32, _>("quality") as u8,
                    unknown_state: r.get("unknown_state"),
                },
                contracts: r.get::<i64, _>("n") as u64,
            })
            .collect())
    }

    async fn end_evaluation(
        &self,
        state: &EvaluatedState,
        full: bool,
        marks: &[(i64, i64)],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for (lo, hi) in marks {
            sqlx::query("DELETE FROM evaluation_marks WHERE seq BETWEEN $1 AND $2")
                .bind(lo)
                .bind(hi)
                .execute(&mut *tx)
                .await?;
        }
        if full {
            sqlx::query(
                "INSERT INTO evaluation_state (id, fingerprint, as_of, updated_at) \
                 VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, as_of = excluded.as_of, \
                 updated_at = excluded.updated_at",
            )
            .bind(&state.fingerprint)
            .bind(state.as_of)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        } else {
            // Only over the evaluation it continued: a full one begun since decides.
            sqlx::query(
                "UPDATE evaluation_state SET as_of = GREATEST(as_of, $2), updated_at = $3 \
                 WHERE id = 1 AND fingerprint = $1",
            )
            .bind(&state.fingerprint)
            .bind(state.as_of)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
