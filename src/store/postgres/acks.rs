//! Store, PostgreSQL acknowledgements: [`AckStore`] on PostgreSQL — an answer locks its
//! finding's row (`FOR UPDATE`), so replicas answering one finding at once are applied one
//! after the other.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use super::PgStore;
use super::outbox::insert_outbox;
use super::rows::{self, FINDING_COLUMNS};
use crate::domain::StoredFinding;
use crate::domain::ack::{
    self, AckState, Acknowledgement, HistoryEntry, ManualClassification, NewAck,
};
use crate::error::StoreResult;
use crate::store::{AckStore, IdPage, NewOutboxItem};

impl AckStore for PgStore {
    async fn finding(&self, id: i64) -> StoreResult<Option<StoredFinding>> {
        let sql = format!("SELECT {FINDING_COLUMNS} FROM findings WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::finding).transpose()
    }

    async fn open_findings_of(&self, contract_id: &str) -> StoreResult<Vec<StoredFinding>> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE contract_id = $1 AND status = 'open' \
             ORDER BY kind, stage"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(contract_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::finding)
            .collect()
    }

    async fn acknowledge(
        &self,
        finding_id: i64,
        ack: &NewAck,
        events: &[NewOutboxItem],
        on: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(
            "SELECT level, facts, ack_id FROM findings WHERE id = $1 AND status = 'open' \
             FOR UPDATE",
        )
        .bind(finding_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(found) = found else { return Ok(None) };
        let (level, facts, previous): (String, Option<String>, Option<i64>) =
            (found.get("level"), found.get("facts"), found.get("ack_id"));
        if let Some(previous) = previous {
            sqlx::query(
                "UPDATE acknowledgements SET ended_on = $1, ended_reason = $2, ended_at = $3 \
                 WHERE id = $4 AND ended_at IS NULL",
            )
            .bind(on)
            .bind(ack::ANSWERED_AGAIN)
            .bind(at)
            .bind(previous)
            .execute(&mut *tx)
            .await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO acknowledgements (finding_id, state, until, level, facts, document_id, \
             document_kind, author, reason, note, on_date, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(finding_id)
        .bind(ack.state.as_str())
        .bind(ack.until)
        .bind(&level)
        .bind(&facts)
        .bind(&ack.document_id)
        .bind(&ack.document_kind)
        .bind(&ack.author)
        .bind(&ack.reason)
        .bind(&ack.note)
        .bind(on)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE findings SET ack_id = $2, ack_state = $3, ack_until = $4, ack_level = level, \
             ack_facts = facts, updated_at = $5 WHERE id = $1",
        )
        .bind(finding_id)
        .bind(id)
        .bind(ack.state.as_str())
        .bind(ack.until)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO finding_events (finding_id, event, level, on_date, created_at, author, \
             detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(finding_id)
        .bind(ack.state.event())
        .bind(&level)
        .bind(on)
        .bind(at)
        .bind(&ack.author)
        .bind(ack.detail())
        .execute(&mut *tx)
        .await?;
        if let (AckState::DocumentoPublicado, Some(doc), Some(kind)) =
            (ack.state, &ack.document_id, &ack.document_kind)
        {
            sqlx::query(
                "INSERT INTO document_classifications (id_documento, kind, author, reason, \
                 acknowledgement_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id_documento) DO UPDATE SET kind = excluded.kind, \
                 author = excluded.author, reason = excluded.reason, \
                 acknowledgement_id = excluded.acknowledgement_id, created_at = excluded.created_at",
            )
            .bind(doc)
            .bind(kind)
            .bind(&ack.author)
            .bind(&ack.reason)
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        insert_outbox(&mut tx, events, at).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn acknowledgements(
        &self,
        finding_id: Option<i64>,
        all: bool,
        page: IdPage,
    ) -> StoreResult<Vec<Acknowledgement>> {
        sqlx::query(
            "SELECT a.*, f.contract_id, f.kind, f.stage FROM acknowledgements a \
             JOIN findings f ON f.id = a.finding_id \
             WHERE ($1::bigint IS NULL OR a.finding_id = $1) AND ($2 OR a.ended_at IS NULL) \
             AND ($3::bigint IS NULL OR a.id < $3) ORDER BY a.id DESC LIMIT $4",
        )
        .bind(finding_id)
        .bind(all)
        .bind(page.from)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::acknowledgement)
        .collect()
    }

    async fn acknowledgement_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT ack_state, COUNT(*) AS n FROM findings \
             WHERE ack_id IS NOT NULL AND status = 'open' GROUP BY ack_state ORDER BY ack_state",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get("ack_state"), r.get::<i64, _>("n") as u64)).collect())
    }

    async fn finding_history(&self, finding_id: i64) -> StoreResult<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT event, level, on_date, created_at, author, detail FROM finding_events \
             WHERE finding_id = $1 ORDER BY id",
        )
        .bind(finding_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| HistoryEntry {
                on_date: r.get("on_date"),
                event: r.get("event"),
                level: r.get("level"),
                author: r.get("author"),
                detail: r.get("detail"),
                at: r.get("created_at"),
            })
            .collect())
    }

    async fn manual_classifications(&self) -> StoreResult<Vec<ManualClassification>> {
        let rows = sqlx::query(
            "SELECT id_documento, kind, author, reason, created_at \
             FROM document_classifications ORDER BY id_documento",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ManualClassification {
                document_id: r.get("id_documento"),
                kind: r.get("kind"),
                author: r.get("author"),
                reason: r.get("reason"),
                created_at: r.get("created_at"),
            })
            .collect())
    }

    async fn document_owner(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Option<String>, Option<String>)>> {
        let row = sqlx::query(
            "SELECT id_contrato, proceso FROM documents \
             WHERE id_documento = $1 AND vanished_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.get("id_contrato"), r.get("proceso"))))
    }
}
