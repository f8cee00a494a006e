//! Store, SQLite rows: how each table's row becomes a value, by column name, one function
//! per table, and how times and days are written (RFC 3339 UTC text and `YYYY-MM-DD` text:
//! both sort as they compare, which the outbox's and the runs' queries rely on).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Row, Statement};

use crate::domain::ack::{AckInForce, Acknowledgement};
use crate::domain::{Contract, Document, Flag, Guarantee};
use crate::domain::{Finding, StoredFinding};
use crate::error::{StoreError, StoreResult};
use crate::store::table;
use crate::store::{ContractEvaluation, Delivery, EndpointHealth, JobRun, OutboxItem};

/// A time as stored: RFC 3339 in UTC (`2026-02-16T05:00:00+00:00`, fractions when there
/// are some), the form earlier versions wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ts(pub DateTime<Utc>);

impl Ts {
    pub fn text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }
}

impl ToSql for Ts {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.text()))
    }
}

impl FromSql for Ts {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        parse_time(text).map(Ts).ok_or_else(|| FromSqlError::Other(bad_text("time", text)))
    }
}

/// RFC 3339, or the forms sqlx also read: with a space for the `T`, an offset without a
/// colon, or no offset at all (taken as UTC), to the minute or the second.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]
    {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .into_iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.and_utc())
}

/// A day as stored: `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Day(pub NaiveDate);

impl ToSql for Day {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.format("%Y-%m-%d").to_string()))
    }
}

impl FromSql for Day {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        crate::domain::parse_day(text)
            .map(Day)
            .ok_or_else(|| FromSqlError::Other(bad_text("day", text)))
    }
}

fn bad_text(what: &str, text: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("not a {what}: {text:?}").into()
}

/// An optional stored day; text that is not a day reads as unknown, as the sync stored only
/// days it could parse.
fn day(r: &Row, i: usize) -> rusqlite::Result<Option<NaiveDate>> {
    Ok(r.get::<_, Option<String>>(i)?.and_then(|s| crate::domain::parse_day(&s)))
}

/// The UTC day of a stored time. Times are stored in UTC (`+00:00` or `Z`), whose day is the
/// text's first ten bytes; any other offset goes through chrono.
pub(super) fn utc_day(t: &str) -> Option<NaiveDate> {
    if t.ends_with('Z') || t.ends_with("+00:00") {
        return t.get(..10).and_then(crate::domain::parse_day);
    }
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc).date_naive())
}

/// A list stored as a JSON array of strings.
pub(super) fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// Where each column of a statement is, looked up by name once per statement: the
/// evaluation maps millions of rows, and a lookup by name per value would cost more than
/// the rules.
pub(super) struct Columns<const N: usize>([usize; N]);

impl<const N: usize> Columns<N> {
    pub fn of(stmt: &Statement<'_>, names: &[&str; N]) -> StoreResult<Columns<N>> {
        let mut at = [0; N];
        for (slot, name) in at.iter_mut().zip(names) {
            *slot = stmt.column_index(name)?;
        }
        Ok(Columns(at))
    }
}

/// The contract columns the rules, routing and digests read.
pub(super) const CONTRACT: [&str; 33] = table::CONTRACT_READ;

/// A contract row, its columns found by [`CONTRACT`]'s names (in the order of
/// `table.rs`'s contract columns, which the bindings below follow).
pub(super) fn contract(r: &Row, c: &Columns<33>) -> rusqlite::Result<Contract> {
    let [
        id,
        process,
        reference,
        nit,
        entity,
        code,
        state,
        kind,
        modality,
        justification,
        object,
        signed,
        starts,
        ends,
        liquidation,
        environmental,
        post_consumption,
        liquidation_starts,
        liquidation_ends,
        value,
        paid,
        pending,
        days_added,
        last_update,
        url,
        supervisor,
        supervisor_document,
        officer,
        officer_document,
        supplier,
        supplier_document,
        last_changed,
        content_hash,
    ] = c.0;
    let flag = |i: usize| -> rusqlite::Result<Flag> {
        Ok(Flag::from_db(r.get::<_, Option<String>>(i)?.as_deref()))
    };
    Ok(Contract {
        id: r.get(id)?,
        process_id: r.get(process)?,
        reference: r.get(reference)?,
        entity_nit: r.get(nit)?,
        entity_name: r.get(entity)?,
        entity_code: r.get(code)?,
        state: r.get(state)?,
        contract_type: r.get(kind)?,
        modality: r.get(modality)?,
        modality_justification: r.get(justification)?,
        object: r.get(object)?,
        signed_on: day(r, signed)?,
        starts_on: day(r, starts)?,
        ends_on: day(r, ends)?,
        requires_liquidation: flag(liquidation)?,
        environmental_obligation: flag(environmental)?,
        post_consumption_obligation: flag(post_consumption)?,
        liquidation_starts_on: day(r, liquidation_starts)?,
        liquidation_ends_on: day(r, liquidation_ends)?,
        value: r.get(value)?,
        paid: r.get(paid)?,
        pending_payment: r.get(pending)?,
        days_added: r.get(days_added)?,
        last_update: day(r, last_update)?,
        url: r.get(url)?,
        supervisor_name: r.get(supervisor)?,
        supervisor_document: r.get(supervisor_document)?,
        spending_officer_name: r.get(officer)?,
        spending_officer_document: r.get(officer_document)?,
        supplier_name: r.get(supplier)?,
        supplier_document: r.get(supplier_document)?,
        changed_on: r.get::<_, Option<String>>(last_changed)?.and_then(|t| utc_day(&t)),
        content_hash: r.get(content_hash)?,
    })
}

/// The columns of a kept evaluation (`contract_evaluations`).
pub(super) const KEPT: [&str; 7] =
    ["contract_id", "inputs", "next_on", "quality", "unknown_state", "findings", "unrouted"];

/// A kept evaluation, its columns found by [`KEPT`]'s names.
pub(super) fn kept(r: &Row, c: &Columns<7>) -> StoreResult<ContractEvaluation> {
    let [contract_id, inputs, next_on, quality, unknown_state, findings, unrouted] = c.0;
    Ok(ContractEvaluation {
        contract_id: r.get(contract_id)?,
        inputs: r.get(inputs)?,
        next_on: r.get::<_, Option<Day>>(next_on)?.map(|d| d.0),
        quality: crate::domain::Quality {
            flags: r.get(quality)?,
            unknown_state: r.get(unknown_state)?,
        },
        findings: r.get(findings)?,
        unrouted: r.get(unrouted)?,
    })
}

/// The finding columns the evaluation and the listings read.
pub(super) const FINDING: [&str; 18] = [
    "id",
    "opened_on",
    "contract_id",
    "kind",
    "stage",
    "since",
    "deadline",
    "business_days_left",
    "level",
    "step",
    "reasons",
    "missing",
    "facts",
    "ack_id",
    "ack_state",
    "ack_until",
    "ack_level",
    "ack_facts",
];

/// A finding row, its columns found by [`FINDING`]'s names.
pub(super) fn finding(r: &Row, c: &Columns<18>) -> StoreResult<StoredFinding> {
    let [
        id,
        opened_on,
        contract_id,
        kind,
        stage,
        since,
        deadline,
        days_left,
        level,
        step,
        reasons,
        missing,
        facts,
        ack_id,
        ack_state,
        ack_until,
        ack_level,
        ack_facts,
    ] = c.0;
    let list = |i: usize, col: &str| -> StoreResult<Vec<String>> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("findings.{col}: {e}")))
    };
    let stage: String = r.get(stage)?;
    let kind: String = r.get(kind)?;
    Ok(StoredFinding {
        id: r.get(id)?,
        opened_on: r.get::<_, Day>(opened_on)?.0,
        finding: Finding {
            contract_id: r.get(contract_id)?,
            kind: kind.parse().map_err(|e| StoreError::Corrupt(format!("findings.kind: {e}")))?,
            stage: (!stage.is_empty())
                .then(|| stage.parse())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("findings.stage: {e}")))?,
            since: r.get::<_, Day>(since)?.0,
            deadline: r.get::<_, Day>(deadline)?.0,
            business_days_left: r.get(days_left)?,
            level: r.get(level)?,
            step: r.get(step)?,
            reasons: list(reasons, "reasons")?,
            missing: list(missing, "missing")?,
            facts: r.get::<_, Option<String>>(facts)?.unwrap_or_default(),
        },
        ack: match r.get::<_, Option<i64>>(ack_id)? {
            None => None,
            Some(id) => Some(AckInForce {
                id,
                state: r
                    .get::<_, String>(ack_state)?
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("findings.ack_state: {e}")))?,
                until: r.get::<_, Option<Day>>(ack_until)?.map(|d| d.0),
                level: r.get(ack_level)?,
                facts: r.get(ack_facts)?,
            }),
        },
    })
}

/// The document columns the rules read (the contract it counts for is given apart: its own,
/// or each contract of its process).
pub(super) const DOCUMENT: [&str; 4] =
    ["id_documento", "nombre_archivo", "descripcion", "fecha_carga"];

/// A document row for the contract `owner`, its columns found by [`DOCUMENT`]'s names.
pub(super) fn document(r: &Row, c: &Columns<4>, owner: String) -> rusqlite::Result<Document> {
    let [id, file_name, description, uploaded] = c.0;
    Ok(Document {
        id: r.get(id)?,
        contract_id: Some(owner),
        file_name: r.get(file_name)?,
        description: r.get(description)?,
        uploaded_on: day(r, uploaded)?,
        ..Default::default()
    })
}

/// The guarantee columns the rules read.
pub(super) const GUARANTEE: [&str; 9] = table::GUARANTEE_READ;

/// A guarantee row, its columns found by [`GUARANTEE`]'s names.
pub(super) fn guarantee(r: &Row, c: &Columns<9>) -> rusqlite::Result<Guarantee> {
    let [key, contract, number, kind, subtype, ends, status, insurer, value] = c.0;
    Ok(Guarantee {
        key: r.get(key)?,
        contract_id: r.get(contract)?,
        policy_number: r.get(number)?,
        policy_type: r.get(kind)?,
        policy_subtype: r.get(subtype)?,
        ends_on: day(r, ends)?,
        status: r.get(status)?,
        insurer: r.get(insurer)?,
        value: r.get(value)?,
    })
}

/// An outbox row (`SELECT *`).
pub(super) fn outbox_item(r: &Row) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        id: r.get("id")?,
        idempotency_key: r.get("idempotency_key")?,
        channel: r.get("channel")?,
        target: r.get("target")?,
        subject: r.get("subject")?,
        message_id: r.get("message_id")?,
        payload: r.get("payload")?,
        status: r.get("status")?,
        attempts: r.get("attempts")?,
        next_attempt_at: r.get::<_, Ts>("next_attempt_at")?.0,
        last_error: r.get("last_error")?,
        claimed_by: r.get("claimed_by")?,
        claim_token: r.get("claim_token")?,
        created_at: r.get::<_, Ts>("created_at")?.0,
        finished_at: r.get::<_, Option<Ts>>("finished_at")?.map(|t| t.0),
    })
}

/// A deliveries row (`SELECT *`).
pub(super) fn delivery(r: &Row) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get("id")?,
        idempotency_key: r.get("idempotency_key")?,
        channel: r.get("channel")?,
        target: r.get("target")?,
        subject: r.get("subject")?,
        message_id: r.get("message_id")?,
        status: r.get("status")?,
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        created_at: r.get::<_, Ts>("created_at")?.0,
        finished_at: r.get::<_, Ts>("finished_at")?.0,
    })
}

/// An endpoints row (`SELECT *`).
pub(super) fn endpoint(r: &Row) -> rusqlite::Result<EndpointHealth> {
    Ok(EndpointHealth {
        target: r.get("target")?,
        consecutive_failures: r.get("consecutive_failures")?,
        suspended_until: r.get::<_, Option<Ts>>("suspended_until")?.map(|t| t.0),
        last_error: r.get("last_error")?,
    })
}

/// A job_runs row (`SELECT *`).
pub(super) fn job_run(r: &Row) -> rusqlite::Result<JobRun> {
    let started_at = r.get::<_, Ts>("started_at")?.0;
    let counts: Option<String> = r.get("counts")?;
    Ok(JobRun {
        id: Some(r.get("id")?),
        job: r.get("job")?,
        scheduled_for: r.get::<_, Ts>("scheduled_for")?.0,
        started_at,
        finished_at: r.get::<_, Option<Ts>>("finished_at")?.map_or(started_at, |t| t.0),
        outcome: r.get("outcome")?,
        counts: counts
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(serde_json::Value::Null),
        error: r.get("error")?,
        owner: r.get("owner")?,
    })
}

/// An acknowledgement row joined with its finding's contract_id, kind and stage.
pub(super) fn acknowledgement(r: &Row) -> StoreResult<Acknowledgement> {
    let corrupt = |col: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("acknowledgements.{col}: {e}"))
    };
    let stage: String = r.get("stage")?;
    Ok(Acknowledgement {
        id: r.get("id")?,
        finding_id: r.get("finding_id")?,
        contract_id: r.get("contract_id")?,
        kind: r.get::<_, String>("kind")?.parse().map_err(|e| corrupt("kind", &e))?,
        stage: (!stage.is_empty())
            .then(|| stage.parse())
            .transpose()
            .map_err(|e| corrupt("stage", &e))?,
        state: r.get::<_, String>("state")?.parse().map_err(|e| corrupt("state", &e))?,
        until: r.get::<_, Option<Day>>("until")?.map(|d| d.0),
        level: r.get("level")?,
        document_id: r.get("document_id")?,
        document_kind: r.get("document_kind")?,
        author: r.get("author")?,
        reason: r.get("reason")?,
        note: r.get("note")?,
        on_date: r.get::<_, Day>("on_date")?.0,
        created_at: r.get::<_, Ts>("created_at")?.0,
        ended_on: r.get::<_, Option<Day>>("ended_on")?.map(|d| d.0),
        ended_reason: r.get("ended_reason")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_of_a_stored_time_is_its_utc_day() {
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

    #[test]
    fn times_are_stored_as_earlier_versions_stored_them_and_read_back() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-02-16T05:00:00.250+00:00").unwrap().to_utc();
        let text: String = conn.query_row("SELECT ?1", [Ts(t)], |r| r.get(0)).unwrap();
        assert_eq!(text, "2026-02-16T05:00:00.250+00:00");
        let back: Ts = conn.query_row("SELECT ?1", [&text], |r| r.get(0)).unwrap();
        assert_eq!(back.0, t);
        let whole = t - chrono::Duration::milliseconds(250);
        for text in [
            "2026-02-16 05:00:00",
            "2026-02-16T05:00:00",
            "2026-02-16 05:00",
            "2026-02-16 05:00:00+00:00",
            "2026-02-16 00:00:00-0500",
        ] {
            let read: Ts = conn.query_row("SELECT ?1", [text], |r| r.get(0)).unwrap();
            assert_eq!(read.0, whole, "{text}");
        }
    }
}
