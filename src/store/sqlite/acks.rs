//! Store, SQLite acknowledgements: [`AckStore`] on SQLite — an answer is recorded in one
//! immediate transaction, so two answers on one finding at once are applied one after the
//! other.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use super::outbox::insert_outbox;
use super::rows::{self, Columns, Day, Ts};
use crate::domain::StoredFinding;
use crate::domain::ack::{
    self, AckState, Acknowledgement, HistoryEntry, ManualClassification, NewAck,
};
use crate::error::StoreResult;
use crate::store::{AckStore, IdPage, NewOutboxItem};

impl AckStore for SqliteStore {
    async fn finding(&self, id: i64) -> StoreResult<Option<StoredFinding>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM findings WHERE id = ?1",
                rows::FINDING.join(", ")
            ))?;
            let cols = Columns::of(&stmt, &rows::FINDING)?;
            let mut found = stmt.query([id])?;
            match found.next()? {
                Some(r) => Ok(Some(rows::finding(r, &cols)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn open_findings_of(&self, contract_id: &str) -> StoreResult<Vec<StoredFinding>> {
        let contract_id = contract_id.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM findings WHERE contract_id = ?1 AND status = 'open' \
                 ORDER BY kind, stage",
                rows::FINDING.join(", ")
            ))?;
            let cols = Columns::of(&stmt, &rows::FINDING)?;
            let mut found = stmt.query([contract_id])?;
            let mut out = Vec::new();
            while let Some(r) = found.next()? {
                out.push(rows::finding(r, &cols)?);
            }
            Ok(out)
        })
        .await
    }

    async fn acknowledge(
        &self,
        finding_id: i64,
        ack: &NewAck,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        let (ack, events) = (ack.clone(), events.to_vec());
        self.with_conn(move |conn| acknowledge(conn, finding_id, &ack, &events, on, at)).await
    }

    async fn acknowledgements(
        &self,
        finding_id: Option<i64>,
        all: bool,
        page: IdPage,
    ) -> StoreResult<Vec<Acknowledgement>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT a.*, f.contract_id, f.kind, f.stage FROM acknowledgements a \
                 JOIN findings f ON f.id = a.finding_id \
                 WHERE (?1 IS NULL OR a.finding_id = ?1) AND (?2 OR a.ended_at IS NULL) \
                 AND (?3 IS NULL OR a.id < ?3) ORDER BY a.id DESC LIMIT ?4",
            )?;
            let mut found = stmt.query(params![finding_id, all, page.from, page.limit])?;
            let mut out = Vec::new();
            while let Some(r) = found.next()? {
                out.push(rows::acknowledgement(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn acknowledgement_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT ack_state, COUNT(*) AS n FROM findings \
                 WHERE ack_id IS NOT NULL AND status = 'open' GROUP BY ack_state ORDER BY ack_state",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get("ack_state")?, r.get::<_, i64>("n")? as u64)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn finding_history(&self, finding_id: i64) -> StoreResult<Vec<HistoryEntry>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT event, level, on_date, created_at, author, detail FROM finding_events \
                 WHERE finding_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([finding_id], |r| {
                Ok(HistoryEntry {
                    on_date: r.get::<_, Day>("on_date")?.0,
                    event: r.get("event")?,
                    level: r.get("level")?,
                    author: r.get("author")?,
                    detail: r.get("detail")?,
                    at: r.get::<_, Ts>("created_at")?.0,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn manual_classifications(&self) -> StoreResult<Vec<ManualClassification>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id_documento, kind, author, reason, created_at \
                 FROM document_classifications ORDER BY id_documento",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ManualClassification {
                    document_id: r.get("id_documento")?,
                    kind: r.get("kind")?,
                    author: r.get("author")?,
                    reason: r.get("reason")?,
                    created_at: r.get::<_, Ts>("created_at")?.0,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn document_owner(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Option<String>, Option<String>)>> {
        let id = id.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id_contrato, proceso FROM documents \
                     WHERE id_documento = ?1 AND vanished_at IS NULL",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
        })
        .await
    }
}

fn acknowledge(
    conn: &mut Connection,
    finding_id: i64,
    ack: &NewAck,
    events: &[NewOutboxItem],
    on: NaiveDate,
    at: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: Option<(String, Option<String>, Option<i64>)> = tx
        .query_row(
            "SELECT level, facts, ack_id FROM findings WHERE id = ?1 AND status = 'open'",
            [finding_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((level, facts, previous)) = found else { return Ok(None) };
    if let Some(previous) = previous {
        tx.execute(
            "UPDATE acknowledgements SET ended_on = ?1, ended_reason = ?2, ended_at = ?3 \
             WHERE id = ?4 AND ended_at IS NULL",
            params![Day(on), ack::ANSWERED_AGAIN, Ts(at), previous],
        )?;
    }
    let id: i64 = tx.query_row(
        "INSERT INTO acknowledgements (finding_id, state, until, level, facts, document_id, \
         document_kind, author, reason, note, on_date, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
        params![
            finding_id,
            ack.state.as_str(),
            ack.until.map(Day),
            level,
            facts,
            ack.document_id,
            ack.document_kind,
            ack.author,
            ack.reason,
            ack.note,
            Day(on),
            Ts(at)
        ],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE findings SET ack_id = ?2, ack_state = ?3, ack_until = ?4, ack_level = level, \
         ack_facts = facts, updated_at = ?5 WHERE id = ?1",
        params![finding_id, id, ack.state.as_str(), ack.until.map(Day), Ts(at)],
    )?;
    tx.execute(
        "INSERT INTO finding_events (finding_id, event, level, on_date, created_at, author, \
         detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![finding_id, ack.state.event(), level, Day(on), Ts(at), ack.author, ack.detail()],
    )?;
    if let (AckState::DocumentoPublicado, Some(doc), Some(kind)) =
        (ack.state, &ack.document_id, &ack.document_kind)
    {
        tx.execute(
            "INSERT INTO document_classifications (id_documento, kind, author, reason, \
             acknowledgement_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (id_documento) DO UPDATE SET kind = excluded.kind, \
             author = excluded.author, reason = excluded.reason, \
             acknowledgement_id = excluded.acknowledgement_id, created_at = excluded.created_at",
            params![doc, kind, ack.author, ack.reason, id, Ts(at)],
        )?;
    }
    for item in events {
        insert_outbox(&tx, item, at)?;
    }
    tx.commit()?;
    Ok(Some(id))
}
