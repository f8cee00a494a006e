//! Store, SQLite evaluation path: reads an evaluation page (contracts, their documents,
//! guarantees and open findings) and records its changes on the bulk connection of
//! [`SqliteWriter`], with prepared statements. It exists because sqlx's SQLite driver moves
//! every row across threads; an evaluation reads about six rows per contract and, on the
//! first run, writes one or two per finding (later only those whose conclusion changed).
//! The read queries are those of `store/eval_sql.rs`, shared with the sqlx path that
//! PostgreSQL and in-memory databases use.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::eval_sql;
use super::sqlite::parse_day;
use super::sqlite_writer::{SqliteWriter, err, ts};
use super::{
    DossierFacts, EvaluationPage, FindingChanges, FindingCursor, NewOutboxItem, StoreError,
    StoreResult,
};
use crate::domain::{Contract, Document, Finding, Flag, Guarantee, StoredFinding};

/// The UTC day of an RFC 3339 timestamp. Both connections store UTC (`+00:00` or `Z`), whose
/// day is the text's first ten bytes; any other offset goes through chrono.
fn utc_day(t: &str) -> Option<NaiveDate> {
    if t.ends_with('Z') || t.ends_with("+00:00") {
        return t.get(..10).and_then(crate::domain::parse_day);
    }
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc).date_naive())
}

fn text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn contract(r: &Row) -> rusqlite::Result<Contract> {
    Ok(Contract {
        id: r.get(0)?,
        process_id: r.get(1)?,
        reference: r.get(2)?,
        entity_nit: r.get(3)?,
        entity_name: r.get(4)?,
        entity_code: r.get(5)?,
        state: r.get(6)?,
        contract_type: r.get(7)?,
        modality: r.get(8)?,
        modality_justification: r.get(9)?,
        object: r.get(10)?,
        signed_on: parse_day(r.get(11)?),
        starts_on: parse_day(r.get(12)?),
        ends_on: parse_day(r.get(13)?),
        requires_liquidation: Flag::from_db(r.get::<_, Option<String>>(14)?.as_deref()),
        environmental_obligation: Flag::from_db(r.get::<_, Option<String>>(15)?.as_deref()),
        post_consumption_obligation: Flag::from_db(r.get::<_, Option<String>>(16)?.as_deref()),
        liquidation_starts_on: parse_day(r.get(17)?),
        liquidation_ends_on: parse_day(r.get(18)?),
        value: r.get(19)?,
        paid: r.get(20)?,
        pending_payment: r.get(21)?,
        days_added: r.get(22)?,
        last_update: parse_day(r.get(23)?),
        url: r.get(24)?,
        supervisor_name: r.get(25)?,
        supervisor_document: r.get(26)?,
        spending_officer_name: r.get(27)?,
        spending_officer_document: r.get(28)?,
        supplier_name: r.get(29)?,
        supplier_document: r.get(30)?,
        changed_on: r.get::<_, Option<String>>(31)?.and_then(|t| utc_day(&t)),
    })
}

impl SqliteWriter {
    /// [`super::Store::evaluation_page`], read in one transaction so that the contracts, their
    /// facts and their open findings are one snapshot.
    pub fn evaluation_page(&mut self, after: &str, limit: u32) -> StoreResult<EvaluationPage> {
        let tx = self.conn.transaction().map_err(err)?;
        let contracts = tx
            .prepare_cached(&eval_sql::contracts_page())
            .map_err(err)?
            .query_map(params![after, limit], contract)
            .map_err(err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err)?;
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
        let sql = eval_sql::contract_documents_in_range(bounded);
        let mut stmt = tx.prepare_cached(&sql).map_err(err)?;
        bind(&mut stmt).map_err(err)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next().map_err(err)? {
            let owner: String = r.get(0).map_err(err)?;
            let doc = Document {
                id: r.get(1).map_err(err)?,
                contract_id: Some(owner.clone()),
                file_name: r.get(2).map_err(err)?,
                description: r.get(3).map_err(err)?,
                uploaded_on: parse_day(r.get(4).map_err(err)?),
                ..Default::default()
            };
            facts.documents.push((owner, doc));
        }
        drop(rows);
        drop(stmt);
        // Documents published on a process count for each of its contracts. Looked up by
        // the processes of the contracts just read, not by joining contracts again: that
        // read every contract row of the page a second time, at random places of the file.
        let mut processes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in &contracts {
            if let Some(p) = c.process_id.as_deref() {
                processes.entry(p).or_default().push(c.id.as_str());
            }
        }
        let mut stmt = tx.prepare_cached(eval_sql::PROCESS_DOCUMENTS).map_err(err)?;
        for (process, owners) in &processes {
            let mut rows = stmt.query(params![process]).map_err(err)?;
            while let Some(r) = rows.next().map_err(err)? {
                let published = Document {
                    id: r.get(0).map_err(err)?,
                    file_name: r.get(1).map_err(err)?,
                    description: r.get(2).map_err(err)?,
                    uploaded_on: parse_day(r.get(3).map_err(err)?),
                    ..Default::default()
                };
                for owner in owners {
                    let doc =
                        Document { contract_id: Some(owner.to_string()), ..published.clone() };
                    facts.documents.push((owner.to_string(), doc));
                }
            }
        }
        drop(stmt);

        let sql = eval_sql::guarantees_in_range(bounded);
        let mut stmt = tx.prepare_cached(&sql).map_err(err)?;
        bind(&mut stmt).map_err(err)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next().map_err(err)? {
            facts.guarantees.push(Guarantee {
                key: r.get(0).map_err(err)?,
                contract_id: r.get(1).map_err(err)?,
                policy_number: r.get(2).map_err(err)?,
                policy_type: r.get(3).map_err(err)?,
                policy_subtype: r.get(4).map_err(err)?,
                ends_on: parse_day(r.get(5).map_err(err)?),
                status: r.get(6).map_err(err)?,
                insurer: r.get(7).map_err(err)?,
                value: r.get(8).map_err(err)?,
            });
        }
        drop(rows);
        drop(stmt);

        let sql = eval_sql::open_findings_in_range(bounded);
        let mut stmt = tx.prepare_cached(&sql).map_err(err)?;
        bind(&mut stmt).map_err(err)?;
        let mut rows = stmt.raw_query();
        let mut open = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            open.push(stored_finding(r)?);
        }
        drop(rows);
        drop(stmt);
        tx.commit().map_err(err)?;
        Ok(EvaluationPage { contracts, up_to, facts, open })
    }

    /// [`super::Store::open_findings_sorted`].
    pub fn open_findings_sorted(
        &mut self,
        after: Option<&FindingCursor>,
        limit: u32,
    ) -> StoreResult<Vec<StoredFinding>> {
        let sql = eval_sql::open_findings_sorted(after.is_some());
        let mut out = Vec::new();
        let mut push = |mut rows: rusqlite::Rows<'_>| -> StoreResult<()> {
            while let Some(r) = rows.next().map_err(err)? {
                out.push(stored_finding(r)?);
            }
            Ok(())
        };
        match after {
            None => {
                let mut stmt = self.conn.prepare_cached(&sql).map_err(err)?;
                push(stmt.query(params![limit]).map_err(err)?)?;
            }
            Some(c) => {
                let mut stmt = self.conn.prepare_cached(&sql).map_err(err)?;
                push(
                    stmt.query(params![
                        c.deadline.to_string(),
                        c.contract_id,
                        c.kind,
                        c.stage,
                        limit
                    ])
                    .map_err(err)?,
                )?;
            }
        }
        Ok(out)
    }

    /// [`super::Store::apply_findings`] in one immediate transaction.
    pub fn apply_findings(
        &mut self,
        changes: &FindingChanges,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let tx =
            self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let (on, at) = (text(on), ts(at));
        {
            let mut outbox = tx
                .prepare_cached(
                    "INSERT INTO outbox (idempotency_key, channel, target, subject, message_id, \
                     payload, status, attempts, next_attempt_at, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7) \
                     ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .map_err(err)?;
            for item in events {
                outbox
                    .execute(params![
                        item.idempotency_key,
                        item.channel,
                        item.target,
                        item.subject,
                        item.message_id,
                        item.payload,
                        at
                    ])
                    .map_err(err)?;
            }
        }
        let mut opened = 0;
        {
            let mut event = tx
                .prepare_cached(
                    "INSERT INTO finding_events (finding_id, event, level, on_date, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            // No RETURNING: SQLite runs a statement with RETURNING as one that may write
            // several rows, with a statement journal holding the original of every page it
            // touches (16 KB each, spilled to a temporary file), which cost more than the
            // insert itself. The new row's id is the connection's last insert rowid.
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO findings (contract_id, kind, stage, status, since, deadline, \
                     business_days_left, level, step, reasons, missing, evaluated_on, opened_on, updated_at) \
                     VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12) \
                     ON CONFLICT (contract_id, kind, stage) WHERE status = 'open' DO NOTHING",
                )
                .map_err(err)?;
            for f in &changes.opened {
                let inserted = insert
                    .execute(params![
                        f.contract_id,
                        f.kind.as_str(),
                        f.stage_str(),
                        text(f.since),
                        text(f.deadline),
                        f.business_days_left,
                        f.level,
                        f.step,
                        json(&f.reasons),
                        json(&f.missing),
                        on,
                        at
                    ])
                    .map_err(err)?;
                // 0: another replica opened it first.
                if inserted == 1 {
                    opened += 1;
                    let id = tx.last_insert_rowid();
                    event.execute(params![id, "opened", f.level, on, at]).map_err(err)?;
                }
            }
            let mut update = tx
                .prepare_cached(
                    "UPDATE findings SET since = ?1, deadline = ?2, business_days_left = ?3, level = ?4, \
                     step = ?5, reasons = ?6, missing = ?7, evaluated_on = ?8, updated_at = ?9 \
                     WHERE id = ?10 AND status = 'open'",
                )
                .map_err(err)?;
            let updates = changes
                .relevelled
                .iter()
                .map(|(id, f, ev)| (*id, f, Some(*ev)))
                .chain(changes.refreshed.iter().map(|(id, f)| (*id, f, None)));
            for (id, f, ev) in updates {
                let updated = update
                    .execute(params![
                        text(f.since),
                        text(f.deadline),
                        f.business_days_left,
                        f.level,
                        f.step,
                        json(&f.reasons),
                        json(&f.missing),
                        on,
                        at,
                        id
                    ])
                    .map_err(err)?;
                // 0: another replica resolved it meanwhile; nothing to record.
                if let (Some(ev), 1) = (ev, updated) {
                    event.execute(params![id, ev, f.level, on, at]).map_err(err)?;
                }
            }
            let mut resolve = tx
                .prepare_cached(
                    "UPDATE findings SET status = 'resolved', resolved_on = ?1, updated_at = ?2 \
                     WHERE id = ?3 AND status = 'open' RETURNING level",
                )
                .map_err(err)?;
            for &id in &changes.resolved {
                let level: Option<String> =
                    resolve.query_row(params![on, at, id], |r| r.get(0)).optional().map_err(err)?;
                // None: another replica resolved it first.
                if let Some(level) = level {
                    event.execute(params![id, "resolved", level, on, at]).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(opened)
    }
}

fn stored_finding(r: &Row) -> StoreResult<StoredFinding> {
    let date = |i: usize, col: &str| -> StoreResult<NaiveDate> {
        parse_day(r.get(i).map_err(err)?)
            .ok_or_else(|| StoreError::Corrupt(format!("findings.{col}")))
    };
    let list = |i: usize, col: &str| -> StoreResult<Vec<String>> {
        let text: String = r.get(i).map_err(err)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("findings.{col}: {e}")))
    };
    let stage: String = r.get(4).map_err(err)?;
    let kind: String = r.get(3).map_err(err)?;
    Ok(StoredFinding {
        id: r.get(0).map_err(err)?,
        opened_on: date(1, "opened_on")?,
        finding: Finding {
            contract_id: r.get(2).map_err(err)?,
            kind: kind.parse().map_err(|e| StoreError::Corrupt(format!("findings.kind: {e}")))?,
            stage: (!stage.is_empty())
                .then(|| stage.parse())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("findings.stage: {e}")))?,
            since: date(5, "since")?,
            deadline: date(6, "deadline")?,
            business_days_left: r.get(7).map_err(err)?,
            level: r.get(8).map_err(err)?,
            step: r.get(9).map_err(err)?,
            reasons: list(10, "reasons")?,
            missing: list(11, "missing")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_of_a_stored_timestamp_is_its_utc_day() {
        for t in [
            "2026-02-15T12:00:00Z",
            "2026-02-15T23:59:59.123456789+00:00",
            "2026-02-15T21:30:00-05:00",
            "2026-02-16T01:00:00+05:00",
        ] {
            let chrono = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc).date_naive();
            assert_eq!(utc_day(t), Some(chrono), "{t}");
        }
        assert_eq!(utc_day("not a time"), None);
    }
}
