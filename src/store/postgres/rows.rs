//! Store, PostgreSQL rows: how each table's row becomes a value, by column name, one
//! function per table. Days are `DATE`, times `TIMESTAMPTZ`: sqlx reads them natively.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::domain::ack::{AckInForce, Acknowledgement};
use crate::domain::{Contract, Document, Flag, Guarantee};
use crate::domain::{Finding, StoredFinding};
use crate::error::{StoreError, StoreResult};
use crate::store::{Delivery, EndpointHealth, JobRun, OutboxItem};

/// The contract columns the rules, routing and digests read, as [`contract`] maps them.
pub(super) fn contract_columns() -> String {
    crate::store::table::CONTRACT_READ.join(", ")
}

/// The guarantee columns the rules read, as [`guarantee`] maps them.
pub(super) fn guarantee_columns() -> String {
    crate::store::table::GUARANTEE_READ.join(", ")
}

/// The finding columns the evaluation and the listings read, as [`finding`] maps them.
pub(super) const FINDING_COLUMNS: &str = "id, opened_on, contract_id, kind, stage, since, \
    deadline, business_days_left, level, step, reasons, missing, facts, ack_id, ack_state, \
    ack_until, ack_level, ack_facts";

/// A list stored as a JSON array of strings.
pub(super) fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

pub(super) fn contract(r: &PgRow) -> Contract {
    let flag = |col: &str| Flag::from_db(r.get::<Option<String>, _>(col).as_deref());
    Contract {
        id: r.get("id_contrato"),
        process_id: r.get("proceso_de_compra"),
        reference: r.get("referencia_del_contrato"),
        entity_nit: r.get("nit_entidad"),
        entity_name: r.get("nombre_entidad"),
        entity_code: r.get("codigo_entidad"),
        state: r.get("estado_contrato"),
        contract_type: r.get("tipo_de_contrato"),
        modality: r.get("modalidad_de_contratacion"),
        modality_justification: r.get("justificacion_modalidad_de"),
        object: r.get("objeto_del_contrato"),
        signed_on: r.get("fecha_de_firma"),
        starts_on: r.get("fecha_de_inicio"),
        ends_on: r.get("fecha_de_fin"),
        requires_liquidation: flag("liquidacion"),
        environmental_obligation: flag("obligacion_ambiental"),
        post_consumption_obligation: flag("obligaciones_postconsumo"),
        liquidation_starts_on: r.get("fecha_inicio_liquidacion"),
        liquidation_ends_on: r.get("fecha_fin_liquidacion"),
        value: r.get("valor_del_contrato"),
        paid: r.get("valor_pagado"),
        pending_payment: r.get("valor_pendiente_de_pago"),
        days_added: r.get("dias_adicionados"),
        last_update: r.get("ultima_actualizacion"),
        url: r.get("url_proceso"),
        supervisor_name: r.get("nombre_supervisor"),
        supervisor_document: r.get("documento_supervisor"),
        spending_officer_name: r.get("nombre_ordenador_del_gasto"),
        spending_officer_document: r.get("documento_ordenador_del_gasto"),
        supplier_name: r.get("proveedor_adjudicado"),
        supplier_document: r.get("documento_proveedor"),
        changed_on: r.get::<Option<DateTime<Utc>>, _>("last_changed").map(|t| t.date_naive()),
        content_hash: r.get("content_hash"),
    }
}

pub(super) fn finding(r: &PgRow) -> StoreResult<StoredFinding> {
    let list = |col: &str| -> StoreResult<Vec<String>> {
        serde_json::from_str(&r.get::<String, _>(col))
            .map_err(|e| StoreError::Corrupt(format!("findings.{col}: {e}")))
    };
    let stage: String = r.get("stage");
    let kind: String = r.get("kind");
    Ok(StoredFinding {
        id: r.get("id"),
        opened_on: r.get("opened_on"),
        finding: Finding {
            contract_id: r.get("contract_id"),
            kind: kind.parse().map_err(|e| StoreError::Corrupt(format!("findings.kind: {e}")))?,
            stage: (!stage.is_empty())
                .then(|| stage.parse())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("findings.stage: {e}")))?,
            since: r.get("since"),
            deadline: r.get("deadline"),
            business_days_left: r.get("business_days_left"),
            level: r.get("level"),
            step: r.get("step"),
            reasons: list("reasons")?,
            missing: list("missing")?,
            facts: r.get::<Option<String>, _>("facts").unwrap_or_default(),
        },
        ack: match r.get::<Option<i64>, _>("ack_id") {
            None => None,
            Some(id) => Some(AckInForce {
                id,
                state: r
                    .get::<String, _>("ack_state")
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("findings.ack_state: {e}")))?,
                until: r.get("ack_until"),
                level: r.get("ack_level"),
                facts: r.get("ack_facts"),
            }),
        },
    })
}

/// A document as the rules see it, for the contract `owner`.
pub(super) fn document(r: &PgRow, owner: String) -> Document {
    Document {
        id: r.get("id_documento"),
        contract_id: Some(owner),
        file_name: r.get("nombre_archivo"),
        description: r.get("descripcion"),
        uploaded_on: r.get("fecha_carga"),
        ..Default::default()
    }
}

pub(super) fn guarantee(r: &PgRow) -> Guarantee {
    Guarantee {
        key: r.get("guarantee_key"),
        contract_id: r.get("id_contrato"),
        policy_number: r.get("numeropoliza"),
        policy_type: r.get("tipopoliza"),
        policy_subtype: r.get("subtipopoliza"),
        ends_on: r.get("fechafinpoliza"),
        status: r.get("estado"),
        insurer: r.get("aseguradora"),
        value: r.get("valor"),
    }
}

pub(super) fn outbox_item(r: &PgRow) -> OutboxItem {
    OutboxItem {
        id: r.get("id"),
        idempotency_key: r.get("idempotency_key"),
        channel: r.get("channel"),
        target: r.get("target"),
        subject: r.get("subject"),
        message_id: r.get("message_id"),
        payload: r.get("payload"),
        status: r.get("status"),
        attempts: r.get("attempts"),
        next_attempt_at: r.get("next_attempt_at"),
        last_error: r.get("last_error"),
        claimed_by: r.get("claimed_by"),
        claim_token: r.get("claim_token"),
        created_at: r.get("created_at"),
        finished_at: r.get("finished_at"),
    }
}

/// A deliveries row (`SELECT *`).
pub(super) fn delivery(r: &PgRow) -> Delivery {
    Delivery {
        id: r.get("id"),
        idempotency_key: r.get("idempotency_key"),
        channel: r.get("channel"),
        target: r.get("target"),
        subject: r.get("subject"),
        message_id: r.get("message_id"),
        status: r.get("status"),
        attempts: r.get("attempts"),
        last_error: r.get("last_error"),
        created_at: r.get("created_at"),
        finished_at: r.get("finished_at"),
    }
}

pub(super) fn endpoint(r: &PgRow) -> EndpointHealth {
    EndpointHealth {
        target: r.get("target"),
        consecutive_failures: r.get("consecutive_failures"),
        suspended_until: r.get("suspended_until"),
        last_error: r.get("last_error"),
    }
}

pub(super) fn job_run(r: &PgRow) -> JobRun {
    let counts: Option<String> = r.get("counts");
    JobRun {
        id: Some(r.get("id")),
        job: r.get("job"),
        scheduled_for: r.get("scheduled_for"),
        started_at: r.get("started_at"),
        finished_at: r
            .get::<Option<DateTime<Utc>>, _>("finished_at")
            .unwrap_or_else(|| r.get("started_at")),
        outcome: r.get("outcome"),
        counts: counts
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or(serde_json::Value::Null),
        error: r.get("error"),
        owner: r.get("owner"),
    }
}

/// An acknowledgement row joined with its finding's contract_id, kind and stage.
pub(super) fn acknowledgement(r: &PgRow) -> StoreResult<Acknowledgement> {
    let corrupt = |col: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("acknowledgements.{col}: {e}"))
    };
    let stage: String = r.get("stage");
    Ok(Acknowledgement {
        id: r.get("id"),
        finding_id: r.get("finding_id"),
        contract_id: r.get("contract_id"),
        kind: r.get::<String, _>("kind").parse().map_err(|e| corrupt("kind", &e))?,
        stage: (!stage.is_empty())
            .then(|| stage.parse())
            .transpose()
            .map_err(|e| corrupt("stage", &e))?,
        state: r.get::<String, _>("state").parse().map_err(|e| corrupt("state", &e))?,
        until: r.get("until"),
        level: r.get("level"),
        document_id: r.get("document_id"),
        document_kind: r.get("document_kind"),
        author: r.get("author"),
        reason: r.get("reason"),
        note: r.get("note"),
        on_date: r.get("on_date"),
        created_at: r.get("created_at"),
        ended_on: r.get("ended_on"),
        ended_reason: r.get("ended_reason"),
    })
}
