//! Store, SQLite findings: [`FindingStore`] on SQLite. An evaluation page (contracts, their
//! documents, guarantees and open findings) is read, and its changes written, on the bulk
//! connection with prepared statements: an evaluation reads about six rows per contract and,
//! on the first run, writes one or two per finding. A page covers the contract ids
//! `(after, up_to]` (`?1`, `?2`), or `> ?1` on the last page, or a JSON list of ids (`?1`,
//! an incremental evaluation's).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use super::outbox::insert_outbox;
use super::rows::{self, Columns, Day, Ts, json};
use crate::domain::StoredFinding;
use crate::domain::ack;
use crate::domain::{Contract, Document};
use crate::error::StoreResult;
use crate::store::{
    DossierFacts, EvaluatedState, EvaluationMark, EvaluationPage, EvaluationStore, FindingChanges,
    FindingCursor, FindingStore, KeptSummary, NewOutboxItem, Selection,
};

/// The contract columns, as [`rows::contract`] reads them.
fn contract_columns() -> String {
    rows::CONTRACT.join(", ")
}

/// The finding columns, as [`rows::finding`] reads them.
fn finding_columns() -> String {
    rows::FINDING.join(", ")
}

impl FindingStore for SqliteStore {
    async fn contract(&self, id: &str) -> StoreResult<Option<Contract>> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM contracts WHERE id_contrato = ?1",
                contract_columns()
            ))?;
            let cols = Columns::of(&stmt, &rows::CONTRACT)?;
            Ok(stmt.query_row([id], |r| rows::contract(r, &cols)).optional()?)
        })
        .await
    }

    /// Read on the bulk connection in one transaction, so that the contracts, their facts
    /// and their open findings are one snapshot.
    async fn evaluation_page(&self, selection: &Selection) -> StoreResult<EvaluationPage> {
        let selection = selection.clone();
        self.with_bulk(move |conn| evaluation_page(conn, &selection)).await
    }

    /// On the bulk connection: a listing may go through a million rows.
    async fn open_findings_sorted(
        &self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredFinding>> {
        let after = after.cloned();
        self.with_bulk(move |conn| open_findings_sorted(conn, after.as_ref(), limit)).await
    }

    async fn apply_findings(
        &self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (changes, events) = (changes.clone(), events.to_vec());
        self.with_bulk(move |conn| apply_findings(conn, &changes, &events, on, at)).await
    }

    async fn findings_summary(&self) -> StoreResult<Vec<(String, String, u64)>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT kind, level, COUNT(*) AS n FROM findings WHERE status = 'open' \
                 GROUP BY kind, level ORDER BY kind, level",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get("kind")?, r.get("level")?, r.get::<_, i64>("n")? as u64))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

/// The contracts a page covers, as SQL over a column of contract ids and the values it binds.
enum Covered {
    /// `(after, up_to]`, or `> after` on the last page.
    Range { after: String, up_to: Option<String> },
    /// A JSON array of ids.
    Ids(String),
}

impl Covered {
    fn sql(&self, col: &str) -> String {
        match self {
            Covered::Range { up_to: Some(_), .. } => format!("{col} > ?1 AND {col} <= ?2"),
            Covered::Range { up_to: None, .. } => format!("{col} > ?1"),
            Covered::Ids(_) => format!("{col} IN (SELECT value FROM json_each(?1))"),
        }
    }

    fn bind(&self, stmt: &mut rusqlite::CachedStatement<'_>) -> rusqlite::Result<()> {
        match self {
            Covered::Range { after, up_to } => {
                stmt.raw_bind_parameter(1, after)?;
                if let Some(up_to) = up_to {
                    stmt.raw_bind_parameter(2, up_to.as_str())?;
                }
            }
            Covered::Ids(ids) => stmt.raw_bind_parameter(1, ids)?,
        }
        Ok(())
    }
}

fn evaluation_page(conn: &mut Connection, selection: &Selection) -> StoreResult<EvaluationPage> {
    let tx = conn.transaction()?;
    let (contracts, covered) = match selection {
        Selection::After { after, limit } => {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {} FROM contracts WHERE vanished_at IS NULL AND id_contrato > ?1 \
                 ORDER BY id_contrato LIMIT ?2",
                contract_columns()
            ))?;
            let cols = Columns::of(&stmt, &rows::CONTRACT)?;
            let contracts = stmt
                .query_map(params![after, limit], |r| rows::contract(r, &cols))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let up_to = match contracts.last() {
                Some(last) if contracts.len() == *limit as usize => Some(last.id.clone()),
                _ => None,
            };
            (contracts, Covered::Range { after: after.clone(), up_to })
        }
        Selection::Ids(ids) => {
            let covered = Covered::Ids(serde_json::to_string(ids).unwrap_or_default());
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {} FROM contracts WHERE vanished_at IS NULL AND {} ORDER BY id_contrato",
                contract_columns(),
                covered.sql("id_contrato")
            ))?;
            let cols = Columns::of(&stmt, &rows::CONTRACT)?;
            covered.bind(&mut stmt)?;
            let mut rows = stmt.raw_query();
            let mut contracts = Vec::new();
            while let Some(r) = rows.next()? {
                contracts.push(rows::contract(r, &cols)?);
            }
            drop(rows);
            (contracts, covered)
        }
    };

    let mut facts = DossierFacts::default();
    {
        // Documents published on the contracts covered.
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT id_contrato, {} FROM documents WHERE {} AND vanished_at IS NULL",
            rows::DOCUMENT.join(", "),
            covered.sql("id_contrato")
        ))?;
        let cols = Columns::of(&stmt, &rows::DOCUMENT)?;
        let owner_at = stmt.column_index("id_contrato")?;
        covered.bind(&mut stmt)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            let owner: String = r.get(owner_at)?;
            facts.documents.push((owner.clone(), rows::document(r, &cols, owner)?));
        }
    }
    {
        // Documents published on a process count for each of its contracts. Looked up by
        // the processes of the contracts just read, not by joining contracts again: that
        // read every contract row of the page a second time, at random places of the file.
        let mut processes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in &contracts {
            if let Some(p) = c.process_id.as_deref() {
                processes.entry(p).or_default().push(c.id.as_str());
            }
        }
        // Every column it names is in the partial index documents_process (migration 0006),
        // so the lookup never visits the table.
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {} FROM documents \
             WHERE proceso = ?1 AND id_contrato IS NULL AND vanished_at IS NULL",
            rows::DOCUMENT.join(", ")
        ))?;
        let cols = Columns::of(&stmt, &rows::DOCUMENT)?;
        for (process, owners) in &processes {
            let mut rows = stmt.query(params![process])?;
            while let Some(r) = rows.next()? {
                let published = rows::document(r, &cols, String::new())?;
                for owner in owners {
                    let doc =
                        Document { contract_id: Some(owner.to_string()), ..published.clone() };
                    facts.documents.push((owner.to_string(), doc));
                }
            }
        }
    }
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {} FROM guarantees WHERE {} AND vanished_at IS NULL",
            rows::GUARANTEE.join(", "),
            covered.sql("id_contrato")
        ))?;
        let cols = Columns::of(&stmt, &rows::GUARANTEE)?;
        covered.bind(&mut stmt)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            facts.guarantees.push(rows::guarantee(r, &cols)?);
        }
    }
    let mut open = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {} FROM findings WHERE status = 'open' AND {}",
            finding_columns(),
            covered.sql("contract_id")
        ))?;
        let cols = Columns::of(&stmt, &rows::FINDING)?;
        covered.bind(&mut stmt)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            open.push(rows::finding(r, &cols)?);
        }
    }
    let mut kept = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {} FROM contract_evaluations WHERE {}",
            rows::KEPT.join(", "),
            covered.sql("contract_id")
        ))?;
        let cols = Columns::of(&stmt, &rows::KEPT)?;
        covered.bind(&mut stmt)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            kept.push(rows::kept(r, &cols)?);
        }
    }
    {
        let mut stmt =
            tx.prepare_cached("SELECT id_documento, kind FROM document_classifications")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            facts.classified.insert(r.get(0)?, r.get(1)?);
        }
    }
    tx.commit()?;
    let up_to = match covered {
        Covered::Range { up_to, .. } => up_to,
        Covered::Ids(_) => None,
    };
    Ok(EvaluationPage { contracts, up_to, facts, open, kept })
}

/// Open findings most urgent first, the page after `after`. Business days left grow with the
/// deadline, so this is their order whatever date they are counted from.
fn open_findings_sorted(
    conn: &mut Connection,
    after: Option<&FindingCursor>,
    limit: u32,
) -> StoreResult<Vec<StoredFinding>> {
    let columns = finding_columns();
    let mut stmt = match after {
        None => conn.prepare_cached(&format!(
            "SELECT {columns} FROM findings WHERE status = 'open' \
             ORDER BY deadline, contract_id, kind, stage LIMIT ?1"
        ))?,
        Some(_) => conn.prepare_cached(&format!(
            "SELECT {columns} FROM findings WHERE status = 'open' \
             AND (deadline, contract_id, kind, stage) > (?1, ?2, ?3, ?4) \
             ORDER BY deadline, contract_id, kind, stage LIMIT ?5"
        ))?,
    };
    let cols = Columns::of(&stmt, &rows::FINDING)?;
    let mut rows = match after {
        None => stmt.query(params![limit])?,
        Some(c) => stmt.query(params![Day(c.deadline), c.contract_id, c.kind, c.stage, limit])?,
    };
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(rows::finding(r, &cols)?);
    }
    Ok(out)
}

/// Records an evaluation page's changes and their events in one immediate transaction.
fn apply_findings(
    conn: &mut Connection,
    changes: &FindingChanges,
    events: &[NewOutboxItem],
    on: NaiveDate,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for item in events {
        insert_outbox(&tx, item, at)?;
    }
    // Formatted once: every row written binds the same day and time.
    let (on, at) = (on.format("%Y-%m-%d").to_string(), Ts(at).text());
    let mut opened = 0;
    {
        let mut event = tx.prepare_cached(
            "INSERT INTO finding_events (finding_id, event, level, on_date, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        // No RETURNING: SQLite runs a statement with RETURNING with a statement journal of
        // every page it touches, which cost more than the insert itself. The new row's id
        // is the connection's last insert rowid.
        let mut insert = tx.prepare_cached(
            "INSERT INTO findings (contract_id, kind, stage, status, since, deadline, \
             business_days_left, level, step, reasons, missing, evaluated_on, opened_on, \
             updated_at, facts) \
             VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13) \
             ON CONFLICT (contract_id, kind, stage) WHERE status = 'open' DO NOTHING",
        )?;
        for f in &changes.opened {
            let inserted = insert.execute(params![
                f.contract_id,
                f.kind.as_str(),
                f.stage_str(),
                Day(f.since),
                Day(f.deadline),
                f.business_days_left,
                f.level,
                f.step,
                json(&f.reasons),
                json(&f.missing),
                on,
                at,
                f.facts
            ])?;
            // 0: another replica opened it first.
            if inserted == 1 {
                opened += 1;
                let id = tx.last_insert_rowid();
                event.execute(params![id, "opened", f.level, on, at])?;
            }
        }
        let mut update = tx.prepare_cached(
            "UPDATE findings SET since = ?1, deadline = ?2, business_days_left = ?3, level = ?4, \
             step = ?5, reasons = ?6, missing = ?7, evaluated_on = ?8, updated_at = ?9, \
             facts = ?11 WHERE id = ?10 AND status = 'open'",
        )?;
        let updates = changes
            .relevelled
            .iter()
            .map(|(id, f, ev)| (*id, f, Some(*ev)))
            .chain(changes.refreshed.iter().map(|(id, f)| (*id, f, None)));
        for (id, f, ev) in updates {
            let updated = update.execute(params![
                Day(f.since),
                Day(f.deadline),
                f.business_days_left,
                f.level,
                f.step,
                json(&f.reasons),
                json(&f.missing),
                on,
                at,
                id,
                f.facts
            ])?;
            // 0: another replica resolved it meanwhile; nothing to record.
            if let (Some(ev), 1) = (ev, updated) {
                event.execute(params![id, ev, f.level, on, at])?;
            }
        }
        // An answer ends with its finding, or when the finding reopens.
        let mut end_ack = tx.prepare_cached(
            "UPDATE acknowledgements SET ended_on = ?1, ended_reason = ?2, ended_at = ?3 \
             WHERE id = ?4 AND ended_at IS NULL",
        )?;
        let mut resolve = tx.prepare_cached(
            "UPDATE findings SET status = 'resolved', resolved_on = ?1, updated_at = ?2, \
             ack_id = NULL, ack_state = NULL, ack_until = NULL, ack_level = NULL, ack_facts = NULL \
             WHERE id = ?3 AND status = 'open' RETURNING level, \
             (SELECT id FROM acknowledgements WHERE finding_id = ?3 AND ended_at IS NULL) AS ack",
        )?;
        for &id in &changes.resolved {
            let row: Option<(String, Option<i64>)> = resolve
                .query_row(params![on, at, id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            // None: another replica resolved it first.
            if let Some((level, answer)) = row {
                event.execute(params![id, "resolved", level, on, at])?;
                if let Some(answer) = answer {
                    end_ack.execute(params![on, ack::RESOLVED, at, answer])?;
                }
            }
        }
        let mut reopen = tx.prepare_cached(
            "UPDATE findings SET ack_id = NULL, ack_state = NULL, ack_until = NULL, \
             ack_level = NULL, ack_facts = NULL, updated_at = ?3 \
             WHERE id = ?1 AND ack_id = ?2 AND status = 'open' RETURNING level",
        )?;
        let mut reopened = tx.prepare_cached(
            "INSERT INTO finding_events (finding_id, event, level, on_date, created_at, detail) \
             VALUES (?1, 'reopened', ?2, ?3, ?4, ?5)",
        )?;
        for (id, ack, why) in &changes.reopened {
            let level: Option<String> =
                reopen.query_row(params![id, ack, at], |r| r.get(0)).optional()?;
            // None: answered again, or resolved, meanwhile.
            if let Some(level) = level {
                end_ack.execute(params![on, why, at, ack])?;
                reopened.execute(params![id, level, on, at, why])?;
            }
        }
        let mut keep = tx.prepare_cached(
            "INSERT INTO contract_evaluations (contract_id, inputs, next_on, quality, \
             unknown_state, findings, unrouted, evaluated_on) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (contract_id) DO UPDATE SET inputs = excluded.inputs, \
             next_on = excluded.next_on, quality = excluded.quality, \
             unknown_state = excluded.unknown_state, findings = excluded.findings, \
             unrouted = excluded.unrouted, evaluated_on = excluded.evaluated_on",
        )?;
        for k in &changes.kept {
            keep.execute(params![
                k.contract_id,
                k.inputs,
                k.next_on.map(Day),
                k.quality.flags,
                k.quality.unknown_state,
                k.findings,
                k.unrouted,
                on
            ])?;
        }
        let mut forget =
            tx.prepare_cached("DELETE FROM contract_evaluations WHERE contract_id = ?1")?;
        for id in &changes.forgotten {
            forget.execute([id])?;
        }
    }
    tx.commit()?;
    Ok(opened)
}

impl EvaluationStore for SqliteStore {
    async fn evaluated_state(&self) -> StoreResult<Option<EvaluatedState>> {
        self.with_conn(|conn| {
            let row: Option<(String, Day)> = conn
                .query_row(
                    "SELECT fingerprint, as_of FROM evaluation_state \
                     WHERE id = 1 AND fingerprint IS NOT NULL AND as_of IS NOT NULL",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(row.map(|(fingerprint, as_of)| EvaluatedState { fingerprint, as_of: as_of.0 }))
        })
        .await
    }

    async fn begin_full_evaluation(&self) -> StoreResult<Vec<(i64, i64)>> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO evaluation_state (id, fingerprint, as_of, updated_at) \
                 VALUES (1, NULL, NULL, ?1) \
                 ON CONFLICT (id) DO UPDATE SET fingerprint = NULL, updated_at = excluded.updated_at",
                [Ts(chrono::Utc::now())],
            )?;
            // One writer at a time: every mark up to the last is committed.
            let range: (Option<i64>, Option<i64>) = tx.query_row(
                "SELECT MIN(seq), MAX(seq) FROM evaluation_marks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            tx.commit()?;
            Ok(match range {
                (Some(lo), Some(hi)) => vec![(lo, hi)],
                _ => vec![],
            })
        })
        .await
    }

    async fn evaluation_marks(&self, limit: u32) -> StoreResult<Vec<EvaluationMark>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, contract_id, process FROM evaluation_marks ORDER BY seq LIMIT ?1",
            )?;
            let marks = stmt.query_map([limit], |r| {
                Ok(EvaluationMark { seq: r.get(0)?, contract_id: r.get(1)?, process: r.get(2)? })
            })?;
            Ok(marks.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn evaluations_due(&self, as_of: NaiveDate, limit: u32) -> StoreResult<Vec<String>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT contract_id FROM contract_evaluations WHERE next_on <= ?1 LIMIT ?2",
            )?;
            let ids = stmt.query_map(params![Day(as_of), limit], |r| r.get(0))?;
            Ok(ids.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn contracts_of_processes(&self, processes: &[String]) -> StoreResult<Vec<String>> {
        let processes = serde_json::to_string(processes).unwrap_or_default();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id_contrato FROM contracts WHERE vanished_at IS NULL \
                 AND proceso_de_compra IN (SELECT value FROM json_each(?1))",
            )?;
            let ids = stmt.query_map([processes], |r| r.get(0))?;
            Ok(ids.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    /// On the bulk connection: it reads every kept evaluation.
    async fn kept_summary(&self) -> StoreResult<Vec<KeptSummary>> {
        self.with_bulk(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT findings, unrouted, quality, unknown_state, COUNT(*) \
                 FROM contract_evaluations GROUP BY findings, unrouted, quality, unknown_state",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(KeptSummary {
                    findings: r.get(0)?,
                    unrouted: r.get(1)?,
                    quality: crate::domain::Quality { flags: r.get(2)?, unknown_state: r.get(3)? },
                    contracts: r.get::<_, i64>(4)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn end_evaluation(
        &self,
        state: &EvaluatedState,
        full: bool,
        marks: &[(i64, i64)],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (state, marks) = (state.clone(), marks.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut delete = tx
                    .prepare_cached("DELETE FROM evaluation_marks WHERE seq >= ?1 AND seq <= ?2")?;
                for (lo, hi) in marks {
                    delete.execute([lo, hi])?;
                }
            }
            if full {
                tx.execute(
                    "INSERT INTO evaluation_state (id, fingerprint, as_of, updated_at) \
                     VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET \
                     fingerprint = excluded.fingerprint, as_of = excluded.as_of, \
                     updated_at = excluded.updated_at",
                    params![state.fingerprint, Day(state.as_of), Ts(at)],
                )?;
            } else {
                // Only over the evaluation it continued: a full one begun since decides.
                tx.execute(
                    "UPDATE evaluation_state SET as_of = MAX(as_of, ?2), updated_at = ?3 \
                     WHERE id = 1 AND fingerprint = ?1",
                    params![state.fingerprint, Day(state.as_of), Ts(at)],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
