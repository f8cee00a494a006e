//! Store, the SQL of an evaluation: the queries that read an evaluation page and list open
//! findings, written once for the sqlx path of both backends (`store/sql.rs`) and SQLite's
//! rusqlite path (`store/sqlite_eval.rs`). Parameters are `$1`, `$2`… in order of first
//! appearance, which PostgreSQL, sqlx's SQLite and rusqlite all read by position. Ranges of
//! contract ids are `(after, up_to]` (`$1`, `$2`), or `> $1` when unbounded.

/// The contract columns every contract query reads, in the order `sqlite_eval.rs` maps them.
pub const CONTRACT_COLUMNS: &str = "id_contrato, proceso_de_compra, referencia_del_contrato, \
    nit_entidad, nombre_entidad, codigo_entidad, estado_contrato, tipo_de_contrato, \
    modalidad_de_contratacion, justificacion_modalidad_de, objeto_del_contrato, fecha_de_firma, \
    fecha_de_inicio, fecha_de_fin, liquidacion, obligacion_ambiental, obligaciones_postconsumo, \
    fecha_inicio_liquidacion, fecha_fin_liquidacion, valor_del_contrato, valor_pagado, \
    valor_pendiente_de_pago, dias_adicionados, ultima_actualizacion, url_proceso, \
    nombre_supervisor, documento_supervisor, nombre_ordenador_del_gasto, \
    documento_ordenador_del_gasto, proveedor_adjudicado, documento_proveedor, last_changed";

/// The finding columns the listings read, in the order `sqlite_eval.rs` maps them.
const FINDING_COLUMNS: &str = "id, opened_on, contract_id, kind, stage, since, deadline, \
    business_days_left, level, step, reasons, missing";

/// The order people read open findings in: most urgent first. Business days left grow with
/// the deadline, so this is their order whatever date they are counted from.
const FINDING_ORDER: &str = "ORDER BY deadline, contract_id, kind, stage";

/// Up to `$2` contracts not vanished with ids after `$1`, in id order.
pub fn contracts_page() -> String {
    format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts \
         WHERE vanished_at IS NULL AND id_contrato > $1 ORDER BY id_contrato LIMIT $2"
    )
}

/// The id range as SQL over `col`.
fn range(col: &str, bounded: bool) -> String {
    if bounded { format!("{col} > $1 AND {col} <= $2") } else { format!("{col} > $1") }
}

/// The documents of the contracts in the range: (owner, id_documento, nombre_archivo,
/// descripcion, fecha_carga), those published on the contract and, for each contract, those
/// published on its process without a contract number.
pub fn documents_in_range(bounded: bool) -> String {
    format!(
        "SELECT d.id_contrato AS owner, d.id_documento, d.nombre_archivo, d.descripcion, d.fecha_carga \
         FROM documents d WHERE {} AND d.vanished_at IS NULL \
         UNION ALL \
         SELECT c.id_contrato AS owner, d.id_documento, d.nombre_archivo, d.descripcion, d.fecha_carga \
         FROM contracts c JOIN documents d ON d.proceso = c.proceso_de_compra \
         WHERE {} AND c.vanished_at IS NULL AND d.id_contrato IS NULL AND d.vanished_at IS NULL",
        range("d.id_contrato", bounded),
        range("c.id_contrato", bounded)
    )
}

/// The documents published on the contracts in the range, (owner, id_documento,
/// nombre_archivo, descripcion, fecha_carga): the first half of [`documents_in_range`].
pub fn contract_documents_in_range(bounded: bool) -> String {
    format!(
        "SELECT d.id_contrato AS owner, d.id_documento, d.nombre_archivo, d.descripcion, d.fecha_carga \
         FROM documents d WHERE {} AND d.vanished_at IS NULL",
        range("d.id_contrato", bounded)
    )
}

/// The documents published on process `$1` without a contract number (id_documento,
/// nombre_archivo, descripcion, fecha_carga): the second half of [`documents_in_range`], one
/// process at a time, for a reader that already holds the page's contracts.
pub const PROCESS_DOCUMENTS: &str = "SELECT id_documento, nombre_archivo, descripcion, fecha_carga \
     FROM documents WHERE proceso = $1 AND id_contrato IS NULL AND vanished_at IS NULL";

/// The guarantees of the contracts in the range.
pub fn guarantees_in_range(bounded: bool) -> String {
    format!(
        "SELECT guarantee_key, id_contrato, numeropoliza, tipopoliza, subtipopoliza, \
         fechafinpoliza, estado, aseguradora, valor FROM guarantees \
         WHERE {} AND vanished_at IS NULL",
        range("id_contrato", bounded)
    )
}

/// The open findings of the contracts in the range.
pub fn open_findings_in_range(bounded: bool) -> String {
    format!(
        "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' AND {}",
        range("contract_id", bounded)
    )
}

/// Open findings most urgent first: the first `$1` (`after` false), or the `$5` after the
/// sort key (`$1`…`$4`: deadline, contract, kind, stage).
pub fn open_findings_sorted(after: bool) -> String {
    if after {
        format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' \
             AND (deadline, contract_id, kind, stage) > ($1, $2, $3, $4) \
             {FINDING_ORDER} LIMIT $5"
        )
    } else {
        format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' {FINDING_ORDER} LIMIT $1"
        )
    }
}
