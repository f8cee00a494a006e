//! Domain, beneath every stage: a SECOP II contract, document and guarantee as the pipeline
//! understands them after the source's strings have been parsed, the records the sync
//! stores, the findings the rules conclude, the webhook events announcing them, and the
//! Spanish every report is written in. Imports nothing else of the crate.

pub mod ack;
pub mod event;
pub mod finding;
pub mod record;
pub mod silence;
pub mod spanish;

pub use event::{EVENT_TYPES, Event};
pub use finding::{BusinessDays, Finding, Kind, Stage, StoredFinding, UnknownName};
pub use record::{Dataset, Parsed};

use chrono::NaiveDate;
use unicode_normalization::UnicodeNormalization;

/// A yes/no flag as SECOP II publishes it (`Si`, `No`, `No Definido`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flag {
    Yes,
    No,
    /// `No Definido`, absent, or anything else: the data does not say.
    #[default]
    Unknown,
}

impl Flag {
    pub fn parse(value: Option<&str>) -> Flag {
        match value.map(fold).as_deref() {
            Some("si") | Some("s") | Some("yes") | Some("true") => Flag::Yes,
            Some("no") | Some("n") | Some("false") => Flag::No,
            _ => Flag::Unknown,
        }
    }

    /// The stored form: `si`, `no`, or NULL for unknown.
    pub fn as_db(self) -> Option<&'static str> {
        match self {
            Flag::Yes => Some("si"),
            Flag::No => Some("no"),
            Flag::Unknown => None,
        }
    }

    pub fn from_db(value: Option<&str>) -> Flag {
        Flag::parse(value)
    }

    /// The Spanish word used in reasons.
    pub fn spanish(self) -> &'static str {
        match self {
            Flag::Yes => "Sí",
            Flag::No => "No",
            Flag::Unknown => "No definido",
        }
    }
}

/// Money in centavos: SECOP II publishes pesos with up to two decimals.
pub type Centavos = i64;

/// A contract of `jbjy-vk9h` with the fields the rules, routing and digests use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contract {
    pub id: String,
    pub process_id: Option<String>,
    pub reference: Option<String>,
    pub entity_nit: Option<String>,
    pub entity_name: Option<String>,
    pub entity_code: Option<String>,
    /// `estado_contrato` as published (case and accents vary: compare with [`fold`]).
    pub state: Option<String>,
    pub contract_type: Option<String>,
    pub modality: Option<String>,
    pub modality_justification: Option<String>,
    pub object: Option<String>,
    pub signed_on: Option<NaiveDate>,
    pub starts_on: Option<NaiveDate>,
    pub ends_on: Option<NaiveDate>,
    pub requires_liquidation: Flag,
    pub environmental_obligation: Flag,
    pub post_consumption_obligation: Flag,
    pub liquidation_starts_on: Option<NaiveDate>,
    pub liquidation_ends_on: Option<NaiveDate>,
    pub value: Option<Centavos>,
    pub paid: Option<Centavos>,
    pub pending_payment: Option<Centavos>,
    pub days_added: Option<i64>,
    pub last_update: Option<NaiveDate>,
    pub url: Option<String>,
    pub supervisor_name: Option<String>,
    pub supervisor_document: Option<String>,
    pub spending_officer_name: Option<String>,
    pub spending_officer_document: Option<String>,
    pub supplier_name: Option<String>,
    pub supplier_document: Option<String>,
    /// The day the stored row last changed (set by the store, not the source): the best
    /// evidence of when a contract became `terminado` when SECOP II gives no date.
    pub changed_on: Option<NaiveDate>,
    /// The hash of the row as the source last sent it (set by the store): what a
    /// dismissal's facts compare.
    pub content_hash: Option<String>,
}

/// The contract fields routes may match on, by their SODA API names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContractField {
    IdContrato,
    NitEntidad,
    NombreEntidad,
    CodigoEntidad,
    EstadoContrato,
    TipoDeContrato,
    ModalidadDeContratacion,
    JustificacionModalidadDe,
    NombreOrdenadorDelGasto,
    DocumentoOrdenadorDelGasto,
    NombreSupervisor,
    DocumentoSupervisor,
    ReferenciaDelContrato,
    ProcesoDeCompra,
}

/// More days added than this (ten years) is not an extension SECOP II could have recorded:
/// the value is a data-entry error, and rules treat it as unknown.
pub const MAX_DAYS_ADDED: i64 = 3_650;
/// A pending amount more than this many times the contract's value is an error of orders of
/// magnitude (a value typed in centavos, digits repeated), not a debt.
pub const MAX_PENDING_TO_VALUE: i64 = 100;

impl Contract {
    /// `dias_adicionados` when plausible (0 to [`MAX_DAYS_ADDED`]); `None` when absent or absurd.
    pub fn plausible_days_added(&self) -> Option<i64> {
        self.days_added.filter(|d| (0..=MAX_DAYS_ADDED).contains(d))
    }

    /// Whether `dias_adicionados` is given but absurd (a data-quality fact).
    pub fn absurd_days_added(&self) -> bool {
        self.days_added.is_some() && self.plausible_days_added().is_none()
    }

    /// `valor_pendiente_de_pago` when plausible: not beyond [`MAX_PENDING_TO_VALUE`] times the
    /// contract's value (when the value is known and positive).
    pub fn plausible_pending_payment(&self) -> Option<Centavos> {
        self.pending_payment.filter(|p| match self.value {
            Some(v) if v > 0 => *p <= v.saturating_mul(MAX_PENDING_TO_VALUE),
            _ => true,
        })
    }

    /// Whether the pending amount is given but absurd (a data-quality fact).
    pub fn absurd_pending_payment(&self) -> bool {
        self.pending_payment.is_some() && self.plausible_pending_payment().is_none()
    }
}

impl ContractField {
    pub const ALL: [ContractField; 14] = [
        ContractField::IdContrato,
        ContractField::NitEntidad,
        ContractField::NombreEntidad,
        ContractField::CodigoEntidad,
        ContractField::EstadoContrato,
        ContractField::TipoDeContrato,
        ContractField::ModalidadDeContratacion,
        ContractField::JustificacionModalidadDe,
        ContractField::NombreOrdenadorDelGasto,
        ContractField::DocumentoOrdenadorDelGasto,
        ContractField::NombreSupervisor,
        ContractField::DocumentoSupervisor,
        ContractField::ReferenciaDelContrato,
        ContractField::ProcesoDeCompra,
    ];

    pub fn api_name(self) -> &'static str {
        match self {
            ContractField::IdContrato => "id_contrato",
            ContractField::NitEntidad => "nit_entidad",
            ContractField::NombreEntidad => "nombre_entidad",
            ContractField::CodigoEntidad => "codigo_entidad",
            ContractField::EstadoContrato => "estado_contrato",
            ContractField::TipoDeContrato => "tipo_de_contrato",
            ContractField::ModalidadDeContratacion => "modalidad_de_contratacion",
            ContractField::JustificacionModalidadDe => "justificacion_modalidad_de",
            ContractField::NombreOrdenadorDelGasto => "nombre_ordenador_del_gasto",
            ContractField::DocumentoOrdenadorDelGasto => "n_mero_de_documento_ordenador_del_gasto",
            ContractField::NombreSupervisor => "nombre_supervisor",
            ContractField::DocumentoSupervisor => "n_mero_de_documento_supervisor",
            ContractField::ReferenciaDelContrato => "referencia_del_contrato",
            ContractField::ProcesoDeCompra => "proceso_de_compra",
        }
    }

    pub fn from_api_name(name: &str) -> Option<ContractField> {
        Self::ALL.into_iter().find(|f| f.api_name() == name)
    }

    pub fn get(self, c: &Contract) -> Option<&str> {
        match self {
            ContractField::IdContrato => Some(&c.id),
            ContractField::NitEntidad => c.entity_nit.as_deref(),
            ContractField::NombreEntidad => c.entity_name.as_deref(),
            ContractField::CodigoEntidad => c.entity_code.as_deref(),
            ContractField::EstadoContrato => c.state.as_deref(),
            ContractField::TipoDeContrato => c.contract_type.as_deref(),
            ContractField::ModalidadDeContratacion => c.modality.as_deref(),
            ContractField::JustificacionModalidadDe => c.modality_justification.as_deref(),
            ContractField::NombreOrdenadorDelGasto => c.spending_officer_name.as_deref(),
            ContractField::DocumentoOrdenadorDelGasto => c.spending_officer_document.as_deref(),
            ContractField::NombreSupervisor => c.supervisor_name.as_deref(),
            ContractField::DocumentoSupervisor => c.supervisor_document.as_deref(),
            ContractField::ReferenciaDelContrato => c.reference.as_deref(),
            ContractField::ProcesoDeCompra => c.process_id.as_deref(),
        }
    }
}

/// A published document of a contract (`dmgg-8hin`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub id: String,
    pub contract_id: Option<String>,
    pub process_id: Option<String>,
    pub file_name: Option<String>,
    pub extension: Option<String>,
    pub description: Option<String>,
    pub uploaded_on: Option<NaiveDate>,
    pub entity_nit: Option<String>,
    pub url: Option<String>,
}

/// What one contract's data says of its quality (counted in an evaluation's report): it does
/// not depend on the date, so it is kept with the contract's evaluation and summed without
/// reading the contract again. Worked out by the rules (`rules::Quality::of`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Quality {
    /// `estado_contrato` when this version does not know it (`(vacío)` when missing).
    pub unknown_state: Option<String>,
    /// [`Quality::END_BEFORE_SIGNING`] and the other flags.
    pub flags: u8,
}

impl Quality {
    pub const END_BEFORE_SIGNING: u8 = 1;
    pub const MISSING_END_DATE: u8 = 2;
    pub const ABSURD_DAYS_ADDED: u8 = 4;
    pub const ABSURD_PENDING_PAYMENT: u8 = 8;
}

/// A guarantee (insurance policy) of a contract (`gjp9-cutm`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guarantee {
    /// id_contrato|numeropoliza|tipopoliza|subtipopoliza: the dataset has no key of its own.
    pub key: String,
    pub contract_id: Option<String>,
    pub policy_number: Option<String>,
    pub policy_type: Option<String>,
    pub policy_subtype: Option<String>,
    pub ends_on: Option<NaiveDate>,
    pub status: Option<String>,
    pub insurer: Option<String>,
    pub value: Option<Centavos>,
}

/// Lower-case, accents removed, inner whitespace collapsed: how SECOP II's free-form
/// categorical values are compared (`terminado` vs `Terminado`, `En ejecución` vs
/// `En ejecucion`).
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        // Most values: no accents to strip, no Unicode case rules.
        let mut out = String::with_capacity(s.len());
        let mut space = false;
        for b in s.trim().bytes() {
            if (b as char).is_whitespace() {
                space = true;
                continue;
            }
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(b.to_ascii_lowercase() as char);
        }
        return out;
    }
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.trim().nfd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Values SECOP II uses to mean "unknown".
pub fn is_sentinel(s: &str) -> bool {
    // Every sentinel is short: skip folding the long values (objects, names), which are
    // most of a record's text.
    if s.len() > 20 {
        return false;
    }
    // Every sentinel starts with n or s (or is empty).
    if !matches!(s.trim_start().bytes().next(), None | Some(b'n' | b'N' | b's' | b'S')) {
        return false;
    }
    matches!(
        fold(s).as_str(),
        "" | "no definido" | "n/d" | "nd" | "sin descripcion" | "no d" | "null" | "none"
    )
}

/// A date a person typed (`--as-of`, configuration): exactly `YYYY-MM-DD`, so that `26-02-16`
/// is an error rather than the year 26.
pub fn parse_iso_date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    let shaped = t.len() == 10
        && t.bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    match shaped.then(|| parse_day(t)).flatten() {
        Some(d) => Ok(d),
        None => Err(format!(
            "`{s}` is not a date in the form YYYY-MM-DD (a four-digit year, e.g. 2026-02-16)"
        )),
    }
}

/// A `YYYY-MM-DD` date, as chrono's `%Y-%m-%d` reads it. The ten-byte form every stored date
/// and SECOP II date has is read directly, as an evaluation reads a dozen dates per contract
/// and chrono's format interpreter is slow; anything else goes through chrono, so the two
/// agree on every input.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let number = |digits: &[u8]| {
            digits
                .iter()
                .try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
        };
        if let (Some(y), Some(m), Some(d)) = (number(&b[..4]), number(&b[5..7]), number(&b[8..])) {
            return NaiveDate::from_ymd_opt(y as i32, m, d);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn dates_are_read_as_chrono_reads_them(s in "[0-9+ -]{0,3}[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,3}[ T0-9]{0,2}") {
            prop_assert_eq!(parse_day(&s), NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
        }

        #[test]
        fn every_calendar_date_reads_back(days in 0i64..3_000_000) {
            let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Duration::days(days);
            let text = date.format("%Y-%m-%d").to_string();
            prop_assert_eq!(parse_day(&text), Some(date));
        }
    }

    #[test]
    fn fold_removes_accents_case_and_extra_spaces() {
        assert_eq!(fold("  En   Ejecución "), "en ejecucion");
        assert_eq!(fold("terminado"), fold("Terminado"));
    }

    #[test]
    fn flags_understand_si_no_and_no_definido() {
        assert_eq!(Flag::parse(Some("Si")), Flag::Yes);
        assert_eq!(Flag::parse(Some("Sí")), Flag::Yes);
        assert_eq!(Flag::parse(Some("No")), Flag::No);
        assert_eq!(Flag::parse(Some("No Definido")), Flag::Unknown);
        assert_eq!(Flag::parse(None), Flag::Unknown);
    }

    #[test]
    fn sentinels_are_recognised_in_any_case() {
        for s in ["No Definido", "No definido", "N/D", "Sin Descripcion", "sin descripción"] {
            assert!(is_sentinel(s), "{s}");
        }
        assert!(!is_sentinel("Bogotá"));
    }
}
