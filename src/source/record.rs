//! Source → sync boundary: one SODA-shaped JSON record (as the API serves it, or as the
//! portal CSV is converted) parsed into a domain type, with the content hash that change
//! detection compares. A record that cannot be parsed yields the reason it is quarantined.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128_with_seed};

use super::raw::compress;
use crate::domain::{Centavos, Contract, Dataset, Document, Flag, Guarantee, Parsed, is_sentinel};

/// Every field a parser reads, across the three datasets: each gets a slot in [`Fields`].
const KEYS: [&str; 47] = [
    "aseguradora",
    "codigo_entidad",
    "descripci_n",
    "descripcion_del_proceso",
    "dias_adicionados",
    "documento_proveedor",
    "estado",
    "estado_contrato",
    "extensi_n",
    "fecha_carga",
    "fecha_de_fin_del_contrato",
    "fecha_de_firma",
    "fecha_de_inicio_del_contrato",
    "fecha_fin_liquidacion",
    "fecha_inicio_liquidacion",
    "fechafinpoliza",
    "id_contrato",
    "id_documento",
    "justificacion_modalidad_de",
    "liquidaci_n",
    "modalidad_de_contratacion",
    "n_mero_de_contrato",
    "n_mero_de_documento_ordenador_del_gasto",
    "n_mero_de_documento_supervisor",
    "nit_entidad",
    "nombre_archivo",
    "nombre_entidad",
    "nombre_ordenador_del_gasto",
    "nombre_supervisor",
    "numeropoliza",
    "obligaci_n_ambiental",
    "obligaciones_postconsumo",
    "objeto_del_contrato",
    "proceso",
    "proceso_de_compra",
    "proveedor_adjudicado",
    "referencia_del_contrato",
    "subtipopoliza",
    "tipo_de_contrato",
    "tipopoliza",
    "ultima_actualizacion",
    "url_descarga_documento",
    "urlproceso",
    "valor",
    "valor_del_contrato",
    "valor_pagado",
    "valor_pendiente_de_pago",
];

static SLOTS: LazyLock<FxHashMap<&'static str, usize>> =
    LazyLock::new(|| KEYS.iter().enumerate().map(|(i, k)| (*k, i)).collect());

fn slot(key: &str) -> Option<usize> {
    SLOTS.get(key).copied()
}

/// The fields of one record that parsers read, borrowed from its text, and the content
/// hash of all of them. One pass over the text, no sorting, no allocation per field.
struct Fields<'a> {
    slots: [Option<&'a RawValue>; KEYS.len()],
    /// XXH3-128 of each field (seeded with its key's hash), summed: independent of the
    /// order the source writes fields in.
    hash: u128,
}

impl<'a> Fields<'a> {
    fn parse(text: &'a str) -> Result<Fields<'a>, String> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Fields { slots: [None; KEYS.len()], hash: 0 };
                while let Some(key) = map.next_key::<&'de str>()? {
                    let value = map.next_value::<&'de RawValue>()?;
                    // Socrata's system fields (`:id`, `:updated_at`…) change on every
                    // nightly rebuild of the dataset: they are not content.
                    if !key.starts_with(':') {
                        let seed = xxh3_64(key.as_bytes());
                        fields.hash = fields
                            .hash
                            .wrapping_add(xxh3_128_with_seed(value.get().as_bytes(), seed));
                    }
                    if let Some(i) = slot(key) {
                        // A repeated key keeps its last value, as a map would.
                        fields.slots[i] = Some(value);
                    }
                }
                Ok(fields)
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(Visit)
            .and_then(|f| de.end().map(|()| f))
            .map_err(|e| format!("not a JSON object: {e}"))
    }

    fn get(&self, key: &str) -> Option<&'a RawValue> {
        let i = slot(key);
        debug_assert!(i.is_some(), "{key} is not in record::KEYS");
        self.slots[i?]
    }

    fn hash(&self) -> String {
        format!("{:032x}", self.hash)
    }

    /// A text field, trimmed; `None` when absent, empty or a sentinel such as `No Definido`.
    fn text(&self, key: &str) -> Option<String> {
        let v = self.raw_str(key)?;
        let t = v.trim();
        if is_sentinel(t) { None } else { Some(t.to_string()) }
    }

    /// The string as published, sentinels included (flags need `No Definido` as is).
    fn raw_str(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(key)?;
        let text = raw.get();
        if text == "null" {
            return None;
        }
        // Most strings have no escapes: the text between the quotes is the value.
        if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
            && !inner.contains('\\')
        {
            return Some(Cow::Borrowed(inner));
        }
        if let Ok(s) = serde_json::from_str::<&str>(text) {
            return Some(Cow::Borrowed(s));
        }
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return Some(Cow::Owned(without_nul(s)));
        }
        // Numbers and booleans (some exports do not quote them) are taken as written.
        Some(Cow::Borrowed(text))
    }

    fn date(&self, key: &str) -> Result<Option<NaiveDate>, String> {
        match self.text(key) {
            None => Ok(None),
            Some(v) => {
                parse_date(&v).map(Some).ok_or_else(|| format!("{key}: `{v}` is not a date"))
            }
        }
    }

    fn money(&self, key: &str) -> Result<Option<Centavos>, String> {
        match self.text(key) {
            None => Ok(None),
            Some(v) => {
                parse_money(&v).map(Some).ok_or_else(|| format!("{key}: `{v}` is not an amount"))
            }
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.text(key) {
            None => Ok(None),
            Some(v) => parse_money(&v)
                .filter(|c| c % 100 == 0)
                .map(|c| Some(c / 100))
                .ok_or_else(|| format!("{key}: `{v}` is not a whole number")),
        }
    }

    fn flag(&self, key: &str) -> Flag {
        Flag::parse(self.raw_str(key).as_deref())
    }

    /// `urlproceso` is an object `{"url": "…"}` in the API; some exports give a plain string.
    fn url(&self, key: &str) -> Option<String> {
        let raw = self.get(key)?;
        #[derive(serde::Deserialize)]
        struct Url {
            url: Option<String>,
        }
        if let Ok(Url { url }) = serde_json::from_str::<Url>(raw.get()) {
            return url.map(without_nul).filter(|u| !u.trim().is_empty());
        }
        self.text(key)
    }
}

/// A value without `\u0000`, which PostgreSQL refuses in text (SQLite would keep it): both
/// backends store the same text; the raw record keeps the original.
fn without_nul(s: String) -> String {
    if s.contains('\0') { s.replace('\0', "") } else { s }
}

/// Text of a quarantined row made storable in any backend: `\0` written as the escape
/// `\u0000`, so nothing is lost and nothing is refused.
pub fn storable(s: String) -> String {
    if s.contains('\0') { s.replace('\0', "\\u0000") } else { s }
}

/// `2023-09-18T00:00:00.000`, `2023-09-18` → the date (floating: SODA dates have no zone).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let day = s.get(..10)?;
    if s.len() > 10 && !s[10..].starts_with(['T', ' ']) {
        return None;
    }
    crate::domain::parse_day(day)
}

/// A plain decimal amount (`73451015`, `-1500.5`, `12.00`) → centavos. More than two
/// decimals are rounded half away from zero.
pub fn parse_money(s: &str) -> Option<Centavos> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pesos: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut cents: i64 = 0;
    let f = frac.as_bytes();
    for i in 0..2 {
        cents = cents * 10 + f.get(i).map(|b| (b - b'0') as i64).unwrap_or(0);
    }
    if f.get(2).is_some_and(|b| *b >= b'5') {
        cents += 1;
    }
    let total = pesos.checked_mul(100)?.checked_add(cents)?;
    Some(if neg { -total } else { total })
}

/// Keeps a field's value, or notes why it is unusable (all reasons are reported together).
fn take<T>(errors: &mut Vec<String>, r: Result<Option<T>, String>) -> Option<T> {
    r.unwrap_or_else(|e| {
        errors.push(e);
        None
    })
}

fn required_id(f: &Fields, key: &str) -> Result<String, String> {
    f.text(key).ok_or_else(|| format!("{key} is missing"))
}

/// Parses one `jbjy-vk9h` record.
pub fn parse_contract(text: &str) -> Result<Parsed<Contract>, String> {
    let f = Fields::parse(text)?;
    let mut errors = Vec::new();
    let contract = Contract {
        id: String::new(),
        process_id: f.text("proceso_de_compra"),
        reference: f.text("referencia_del_contrato"),
        entity_nit: f.text("nit_entidad"),
        entity_name: f.text("nombre_entidad"),
        entity_code: f.text("codigo_entidad"),
        state: f.text("estado_contrato"),
        contract_type: f.text("tipo_de_contrato"),
        modality: f.text("modalidad_de_contratacion"),
        modality_justification: f.text("justificacion_modalidad_de"),
        object: f.text("objeto_del_contrato").or_else(|| f.text("descripcion_del_proceso")),
        signed_on: take(&mut errors, f.date("fecha_de_firma")),
        starts_on: take(&mut errors, f.date("fecha_de_inicio_del_contrato")),
        ends_on: take(&mut errors, f.date("fecha_de_fin_del_contrato")),
        requires_liquidation: f.flag("liquidaci_n"),
        environmental_obligation: f.flag("obligaci_n_ambiental"),
        post_consumption_obligation: f.flag("obligaciones_postconsumo"),
        liquidation_starts_on: take(&mut errors, f.date("fecha_inicio_liquidacion")),
        liquidation_ends_on: take(&mut errors, f.date("fecha_fin_liquidacion")),
        value: take(&mut errors, f.money("valor_del_contrato")),
        paid: take(&mut errors, f.money("valor_pagado")),
        pending_payment: take(&mut errors, f.money("valor_pendiente_de_pago")),
        days_added: take(&mut errors, f.int("dias_adicionados")),
        last_update: take(&mut errors, f.date("ultima_actualizacion")),
        url: f.url("urlproceso"),
        supervisor_name: f.text("nombre_supervisor"),
        supervisor_document: f.text("n_mero_de_documento_supervisor"),
        spending_officer_name: f.text("nombre_ordenador_del_gasto"),
        spending_officer_document: f.text("n_mero_de_documento_ordenador_del_gasto"),
        supplier_name: f.text("proveedor_adjudicado"),
        supplier_document: f.text("documento_proveedor"),
        changed_on: None,
        content_hash: None,
    };
    let id = required_id(&f, "id_contrato");
    match (id, errors.is_empty()) {
        (Ok(id), true) => Ok(Parsed {
            value: Contract { id, ..contract },
            raw: compress(Dataset::Contracts, text.trim()),
            hash: f.hash(),
        }),
        (Ok(_), false) => Err(errors.join("; ")),
        (Err(e), _) => Err(std::iter::once(e).chain(errors).collect::<Vec<_>>().join("; ")),
    }
}

/// Parses one `dmgg-8hin` record.
pub fn parse_document(text: &str) -> Result<Parsed<Document>, String> {
    let f = Fields::parse(text)?;
    let id = required_id(&f, "id_documento")?;
    let doc = Document {
        id,
        contract_id: f.text("n_mero_de_contrato").or_else(|| f.text("id_contrato")),
        process_id: f.text("proceso"),
        file_name: f.text("nombre_archivo"),
        extension: f.text("extensi_n"),
        description: f.text("descripci_n"),
        uploaded_on: f.date("fecha_carga")?,
        entity_nit: f.text("nit_entidad"),
        url: f.url("url_descarga_documento"),
    };
    Ok(Parsed { value: doc, raw: compress(Dataset::Documents, text.trim()), hash: f.hash() })
}

/// Parses one `gjp9-cutm` record.
pub fn parse_guarantee(text: &str) -> Result<Parsed<Guarantee>, String> {
    let f = Fields::parse(text)?;
    let contract_id = required_id(&f, "id_contrato")?;
    let policy_number = f.text("numeropoliza");
    let policy_type = f.text("tipopoliza");
    let policy_subtype = f.text("subtipopoliza");
    let key = [
        Some(contract_id.as_str()),
        policy_number.as_deref(),
        policy_type.as_deref(),
        policy_subtype.as_deref(),
    ]
    .map(|p| p.unwrap_or(""))
    .join("|");
    let g = Guarantee {
        key,
        contract_id: Some(contract_id),
        policy_number,
        policy_type,
        policy_subtype,
        ends_on: f.date("fechafinpoliza")?,
        status: f.text("estado"),
        insurer: f.text("aseguradora"),
        value: f.money("valor")?,
    };
    Ok(Parsed { value: g, raw: compress(Dataset::Guarantees, text.trim()), hash: f.hash() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = include_str!("../../examples/secop/contract.one.json");

    #[test]
    fn the_real_borrador_record_parses_into_typed_fields() {
        let text = ONE.trim().trim_start_matches('[').trim_end_matches(']');
        let p = parse_contract(text).unwrap();
        let c = p.value;
        assert_eq!(c.id, "CO1.PCCNTR.5361557");
        assert_eq!(c.entity_nit.as_deref(), Some("900143276"));
        assert_eq!(c.state.as_deref(), Some("Borrador"));
        assert_eq!(c.ends_on, NaiveDate::from_ymd_opt(2023, 9, 18));
        assert_eq!(c.signed_on, None);
        assert_eq!(c.requires_liquidation, Flag::No);
        assert_eq!(c.value, Some(308_025_000));
        assert_eq!(
            c.url.as_deref(),
            Some("https://community.secop.gov.co/Public/Tendering/OpportunityDetail")
        );
        // `ciudad` is "No Definido": a sentinel, not a value.
        assert_eq!(p.hash.len(), 32);
    }

    #[test]
    fn system_fields_do_not_change_the_hash_but_data_fields_do() {
        let a = r#"{"id_contrato":"X","estado_contrato":"Cerrado",":updated_at":"2026-01-01"}"#;
        let b = r#"{":updated_at":"2026-01-02","estado_contrato":"Cerrado","id_contrato":"X"}"#;
        let c = r#"{"id_contrato":"X","estado_contrato":"terminado"}"#;
        let (ha, hb, hc) = (
            parse_contract(a).unwrap().hash,
            parse_contract(b).unwrap().hash,
            parse_contract(c).unwrap().hash,
        );
        assert_eq!(ha, hb);
        assert_ne!(ha, hc);
    }

    #[test]
    fn a_record_without_id_or_with_a_bad_date_is_rejected_with_the_reasons() {
        let err = parse_contract(r#"{"fecha_de_firma":"ayer"}"#).unwrap_err();
        assert!(err.contains("id_contrato is missing"), "{err}");
        assert!(err.contains("fecha_de_firma: `ayer` is not a date"), "{err}");
        assert!(parse_contract("not json").unwrap_err().starts_with("not a JSON object"));
    }

    #[test]
    fn money_is_parsed_to_centavos() {
        assert_eq!(parse_money("73451015"), Some(7_345_101_500));
        assert_eq!(parse_money("-1500.5"), Some(-150_050));
        assert_eq!(parse_money("12.345"), Some(1235));
        assert_eq!(parse_money("1.2.3"), None);
        assert_eq!(parse_money("$5"), None);
    }

    #[test]
    fn documents_and_guarantees_parse_with_their_keys() {
        let d = parse_document(r#"{"id_documento":"77","n_mero_de_contrato":"CO1.PCCNTR.1","nombre_archivo":"ACTA DE INICIO.pdf","fecha_carga":"2025-02-03T10:11:12.000"}"#).unwrap();
        assert_eq!(d.value.contract_id.as_deref(), Some("CO1.PCCNTR.1"));
        assert_eq!(d.value.uploaded_on, NaiveDate::from_ymd_opt(2025, 2, 3));
        let g = parse_guarantee(r#"{"id_contrato":"CO1.PCCNTR.1","numeropoliza":"55","tipopoliza":"Cumplimiento","subtipopoliza":"Calidad del servicio","fechafinpoliza":"2027-01-31T00:00:00.000","valor":"1000000"}"#).unwrap();
        assert_eq!(g.value.key, "CO1.PCCNTR.1|55|Cumplimiento|Calidad del servicio");
        assert_eq!(g.value.ends_on, NaiveDate::from_ymd_opt(2027, 1, 31));
    }
}
