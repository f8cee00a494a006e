//! Store, SQLite findings: [`FindingStore`] on SQLite. An evaluation page (contracts, their
//! documents, guarantees and open findings) is read, and its changes written, on the bulk
//! connection with prepared statements: an evaluation reads about six rows per contract and,
//! on the first run, writes one or two per finding. Ranges of contract ids are
//! `(after, up_to]` (`?1`, `?2`), or `> ?1` on the last page.

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
    DossierFacts, EvaluationPage, FindingChanges, FindingCursor, FindingStore, NewOutboxItem,
};

/// The contract columns, as [`rows::contract`] reads them.
fn contract_columns() -> String {
    rows::CONTRACT.join(", ")
}

/// The finding columns, as [`rows::finding`] reads them.
fn finding_columns() -> String {
    rows::FINDING.join(", ")
}

/// The id range as SQL over `col`.
fn range(col: &str, bounded: bool) -> String {
    if bounded { format!("{col} > ?1 AND {col} <= ?2") } else { format!("{col} > ?1") }
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
    async fn evaluation_page(&self, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
        let after = after.to_string();
        self.with_bulk(move |conn| evaluation_page(conn, &after, limit)).await
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

fn evaluation_page(conn: &mut Connection, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
    let tx = conn.transaction()?;
    let contracts = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {} FROM contracts WHERE vanished_at IS NULL AND id_contrato > ?1 \
             ORDER BY id_contrato LIMIT ?2",
            contract_columns()
        ))?;
        let cols = Columns::of(&stmt, &rows::CONTRACT)?;
        stmt.query_map(params![after, limit], |r| rows::contract(r, &cols))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let up_to = match contracts.last() {
        Some(last) if contracts.len() == limit as usize => Some(last.id.clone()),
        _ => None,
    };
    let bounded = up_to.is_some();
    let bind = |stmt: &mut rusqlite::CachedStatement<'_>| -> rusqlite::Result<()> {
        stmt.raw_bind_parameter(1, after)?;
        if let Some(up_to) = &up_to {
            stmt.raw_bind_parameter(2, up_to.as_str())?;
        }
        Ok(())
    };

    let mut facts = DossierFacts::default();
    {
        // Documents published on the contracts of the range.
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT id_contrato, {} FROM documents WHERE {} AND vanished_at IS NULL",
            rows::DOCUMENT.join(", "),
            range("id_contrato", bounded)
        ))?;
        let cols = Columns::of(&stmt, &rows::DOCUMENT)?;
        let owner_at = stmt.column_index("id_contrato")?;
        bind(&mut stmt)?;
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
            range("id_contrato", bounded)
        ))?;
        let cols = Columns::of(&stmt, &rows::GUARANTEE)?;
        bind(&mut stmt)?;
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
            range("contract_id", bounded)
        ))?;
        let cols = Columns::of(&stmt, &rows::FINDING)?;
        bind(&mut stmt)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next()? {
            open.push(rows::finding(r, &cols)?);
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
    Ok(EvaluationPage { contracts, up_to, facts, open })
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
    }
    tx.commit()?;
    Ok(opened)
}
