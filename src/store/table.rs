//! Store, record tables: the column layout of the three synced tables and each record's
//! values in that order, the schema both backends' page upserts write (the SQL itself is
//! each backend's, in its `sync.rs`).

use chrono::NaiveDate;

use crate::domain::{Contract, Dataset, Document, Guarantee};

/// One column value, typed so each backend binds it natively (dates are DATE in PostgreSQL
/// and `YYYY-MM-DD` text in SQLite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Col<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Date(Option<NaiveDate>),
}

/// A synced record type's table.
pub trait TableRow {
    const TABLE: &'static str;
    const KEY: &'static str;
    /// Typed columns after the key, before raw/content_hash/first_seen/last_seen/last_changed.
    const COLUMNS: &'static [&'static str];
    fn key(&self) -> &str;
    /// The values of [`Self::COLUMNS`], in order.
    fn values(&self) -> Vec<Col<'_>>;
}

/// The table and key column of a dataset.
pub fn of(dataset: Dataset) -> (&'static str, &'static str) {
    match dataset {
        Dataset::Contracts => (Contract::TABLE, Contract::KEY),
        Dataset::Documents => (Document::TABLE, Document::KEY),
        Dataset::Guarantees => (Guarantee::TABLE, Guarantee::KEY),
    }
}

/// The columns a contract is read back by: its key, its typed columns and when its row last
/// changed (the day a change of state is dated from). Both backends select these.
pub const CONTRACT_READ: [&str; 33] =
    read_columns(Contract::KEY, Contract::COLUMNS, &["last_changed", "content_hash"]);

/// The columns a guarantee is read back by: its key and its typed columns.
pub const GUARANTEE_READ: [&str; 9] = read_columns(Guarantee::KEY, Guarantee::COLUMNS, &[]);

/// `key`, then `columns`, then `extra`; `N` must be their number (checked when compiled).
const fn read_columns<const N: usize>(
    key: &'static str,
    columns: &[&'static str],
    extra: &[&'static str],
) -> [&'static str; N] {
    let mut out = [""; N];
    out[0] = key;
    let mut i = 0;
    while i < columns.len() {
        out[1 + i] = columns[i];
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        out[1 + i + j] = extra[j];
        j += 1;
    }
    assert!(1 + i + j == N, "the number of columns read");
    out
}

fn t(s: &Option<String>) -> Col<'_> {
    Col::Text(s.as_deref())
}

impl TableRow for Contract {
    const TABLE: &'static str = "contracts";
    const KEY: &'static str = "id_contrato";
    const COLUMNS: &'static [&'static str] = &[
        "proceso_de_compra",
        "referencia_del_contrato",
        "nit_entidad",
        "nombre_entidad",
        "codigo_entidad",
        "estado_contrato",
        "tipo_de_contrato",
        "modalidad_de_contratacion",
        "justificacion_modalidad_de",
        "objeto_del_contrato",
        "fecha_de_firma",
        "fecha_de_inicio",
        "fecha_de_fin",
        "liquidacion",
        "obligacion_ambiental",
        "obligaciones_postconsumo",
        "fecha_inicio_liquidacion",
        "fecha_fin_liquidacion",
        "valor_del_contrato",
        "valor_pagado",
        "valor_pendiente_de_pago",
        "dias_adicionados",
        "ultima_actualizacion",
        "url_proceso",
        "nombre_supervisor",
        "documento_supervisor",
        "nombre_ordenador_del_gasto",
        "documento_ordenador_del_gasto",
        "proveedor_adjudicado",
        "documento_proveedor",
    ];
    fn key(&self) -> &str {
        &self.id
    }
    fn values(&self) -> Vec<Col<'_>> {
        vec![
            t(&self.process_id),
            t(&self.reference),
            t(&self.entity_nit),
            t(&self.entity_name),
            t(&self.entity_code),
            t(&self.state),
            t(&self.contract_type),
            t(&self.modality),
            t(&self.modality_justification),
            t(&self.object),
            Col::Date(self.signed_on),
            Col::Date(self.starts_on),
            Col::Date(self.ends_on),
            Col::Text(self.requires_liquidation.as_db()),
            Col::Text(self.environmental_obligation.as_db()),
            Col::Text(self.post_consumption_obligation.as_db()),
            Col::Date(self.liquidation_starts_on),
            Col::Date(self.liquidation_ends_on),
            Col::Int(self.value),
            Col::Int(self.paid),
            Col::Int(self.pending_payment),
            Col::Int(self.days_added),
            Col::Date(self.last_update),
            t(&self.url),
            t(&self.supervisor_name),
            t(&self.supervisor_document),
            t(&self.spending_officer_name),
            t(&self.spending_officer_document),
            t(&self.supplier_name),
            t(&self.supplier_document),
        ]
    }
}

impl TableRow for Document {
    const TABLE: &'static str = "documents";
    const KEY: &'static str = "id_documento";
    const COLUMNS: &'static [&'static str] = &[
        "id_contrato",
        "proceso",
        "nombre_archivo",
        "extension",
        "descripcion",
        "fecha_carga",
        "nit_entidad",
        "url_descarga",
    ];
    fn key(&self) -> &str {
        &self.id
    }
    fn values(&self) -> Vec<Col<'_>> {
        vec![
            t(&self.contract_id),
            t(&self.process_id),
            t(&self.file_name),
            t(&self.extension),
            t(&self.description),
            Col::Date(self.uploaded_on),
            t(&self.entity_nit),
            t(&self.url),
        ]
    }
}

impl TableRow for Guarantee {
    const TABLE: &'static str = "guarantees";
    const KEY: &'static str = "guarantee_key";
    const COLUMNS: &'static [&'static str] = &[
        "id_contrato",
        "numeropoliza",
        "tipopoliza",
        "subtipopoliza",
        "fechafinpoliza",
        "estado",
        "aseguradora",
        "valor",
    ];
    fn key(&self) -> &str {
        &self.key
    }
    fn values(&self) -> Vec<Col<'_>> {
        vec![
            t(&self.contract_id),
            t(&self.policy_number),
            t(&self.policy_type),
            t(&self.policy_subtype),
            Col::Date(self.ends_on),
            t(&self.status),
            t(&self.insurer),
            Col::Int(self.value),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_gives_one_value_per_column() {
        assert_eq!(Contract::default().values().len(), Contract::COLUMNS.len());
        assert_eq!(Document::default().values().len(), Document::COLUMNS.len());
        assert_eq!(Guarantee::default().values().len(), Guarantee::COLUMNS.len());
    }
}
