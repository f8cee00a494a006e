//! Configuration, document classifier: infers the kind of a published SECOP II document from
//! its file name and description (the documents dataset `dmgg-8hin` has no type column),
//! with the built-in patterns and the administrators' own (`[[documents.kinds]]`).
//!
//! The rules engine then checks, stage by stage, that the documents the law requires were
//! published (Decreto 1082 de 2015, art. 2.2.1.1.1.7.1). Both texts go through [`normalize`]
//! (lower case, no accents, punctuation and underscores turned into spaces, file extension
//! removed) and are matched against an ordered list of [`KindPattern`]s: the first entry one of
//! whose patterns matches gives the kind. The file name is tried first, then the description;
//! when neither matches the kind is [`OTHER`].
//!
//! All patterns are compiled into one [`RegexSet`], so a text is scanned once whatever the
//! number of kinds.

use regex::{RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::domain::fold;

/// The document kind that evidences a liquidation.
pub const ACTA_LIQUIDACION: &str = "acta_liquidacion";

/// The kind given to a document no pattern recognizes.
pub const OTHER: &str = "otro";

/// The label of [`OTHER`] unless the configuration gives one.
const OTHER_LABEL: &str = "Otro documento";

/// Compiled size limits, generous so that administrators may add many patterns.
const SIZE_LIMIT: usize = 64 << 20;

/// One entry of the classifier, as administrators write it in `daemon.toml` (an element of a
/// list of tables):
///
/// ```toml
/// kind = "pliego"
/// label = "Pliego de condiciones"
/// patterns = ['\bpliego\b', '\bterminos de referencia\b']
/// ```
///
/// Patterns are regular expressions (Rust `regex` syntax) matched against the text as
/// [`normalize`] leaves it: lower case, without accents, punctuation, underscores, dots and
/// hyphens turned into single spaces, letters and digits split apart (`cdp8120` is
/// `cdp 8120`), file extension removed. Accents in a pattern are ignored and matching is
/// case-insensitive, so `Análisis` and `analisis` are the same pattern. Entries are in
/// priority order; a kind may appear in several entries (a strict one early, a loose one
/// late), and then the first entry's label is the kind's label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindPattern {
    /// Stable snake_case id (`estudios_previos`), what rules and reports refer to.
    pub kind: String,
    /// Spanish label for people (`Estudios y documentos previos`).
    pub label: String,
    /// Regular expressions; any of them matching assigns the kind.
    pub patterns: Vec<String>,
}

/// The compiled classifier: build it once (it is cheap to clone and shared between threads)
/// and call [`Classifier::classify`] per document.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// Every pattern of every entry, in priority order.
    set: RegexSet,
    /// For each pattern of `set`, the index in `kinds` of its kind.
    owner: Vec<usize>,
    /// Distinct kinds (id, label) in order of first appearance.
    kinds: Vec<(String, String)>,
}

/// Leading numbering such as `1.`, `4.1.` or `#120`, as it looks once normalized.
macro_rules! lead {
    ($rest:literal) => {
        concat!(r"^(?:[0-9]+ )*", $rest)
    };
}

const L_OBSERVACIONES: &str = "Observaciones y respuestas a observaciones";
const L_OFICIO: &str = "Oficio, remisión o solicitud";
const L_ADENDA: &str = "Adenda";
const L_PROPUESTA: &str = "Propuesta u oferta (o su formato)";
const L_CONTRATO: &str = "Contrato, minuta o aceptación de la oferta";
const L_PLIEGO: &str = "Pliego de condiciones o invitación";

/// The built-in entries, in priority order: (kind, label, patterns).
const DEFAULTS: &[(&str, &str, &[&str])] = &[
    // Documents about other documents come first: an answer to the observations on the
    // pliego is not the pliego, a letter sending the estudios previos is not them.
    (
        "observaciones",
        L_OBSERVACIONES,
        &[
            r"\b(?:respuestas?|rtas?) (?:a |de )?(?:las |los )?observacion(?:es)?\b",
            lead!(r"rtas?\b"),
            lead!(r"observaciones\b"),
            r"\bobservaciones (?:al|a la|a los|del|de la|de los) (?:proyecto|pliego|invitacion|informe|evaluacion|documento)",
        ],
    ),
    (
        "oficio",
        L_OFICIO,
        &[
            lead!(r"(?:oficio|remision|radicado|radicacion|rad|solicitud)\b"),
            r"\boficios? (?:de )?(?:remision|remisori[a-z]*|radicacion|radicado)\b",
        ],
    ),
    // A name that starts with "Adenda" is the adenda; "Estudio del sector - Adenda 3" is the
    // estudio del sector as the adenda left it (see the loose entry below).
    ("adenda", L_ADENDA, &[lead!(r"adendas?\b")]),
    ("propuesta", L_PROPUESTA, &[r"\bmanifestacion(?:es)? de interes\b"]),
    // In mínima cuantía the accepted offer is the contract (Decreto 1082, 2.2.1.2.1.5.2).
    ("contrato", L_CONTRATO, &[r"\baceptacion (?:de )?(?:la )?(?:oferta|propuesta)\b"]),
    (
        "estudios_previos",
        "Estudios y documentos previos",
        &[
            r"\bestudios? (?:y documentos )?previos?\b",
            r"\bdocumentos? previos?\b",
            r"\best prev(?:io|ios)?\b",
            r"\bep\b",
            r"\bestudios? de (?:conveniencia|oportunidad)\b",
            // "Manifestación de la necesidad": the estudio previo of some entities (FEAB).
            r"\bma[a-z]*festaci[a-z]*(?: de)?(?: la)? necesidad",
            lead!(r"ma[a-z]*festaci[a-z]*\b"),
        ],
    ),
    (
        "analisis_sector",
        "Análisis del sector o estudio de mercado",
        &[
            r"\b(?:analisis|estudios?) (?:del? |de los )?sector(?:es)?\b",
            r"\bsectorial\b",
            r"\b(?:estudios?|analisis|sondeos?) (?:del? )?mercado\b",
            r"\bsondeo\b",
            r"\bcotizacion(?:es)?\b",
            r"\binvitacion a cotizar\b",
            r"\banalisis (?:de )?(?:precios|costos)\b",
            r"\bestudio (?:de )?costos\b",
        ],
    ),
    (
        "cdp",
        "Certificado de disponibilidad presupuestal (CDP)",
        &[
            r"\bcdp\b",
            // Tolerates the typos seen in real names: Diponibilidad, Disponilidad, Dsiponibilidad.
            r"\bcertificados? de d[a-z]*(?:poni|pono|pnib)[a-z]*\b",
            r"\bdisponibilidad(?:es)? presupuesta[a-z]*\b",
        ],
    ),
    (
        "registro_presupuestal",
        "Registro presupuestal (RP)",
        &[
            r"\bc?rp\b",
            r"\bregistros? presupuesta[a-z]*\b",
            r"\bcomprobantes? (?:de )?compromisos?\b",
            r"\bregistros? (?:de )?compromisos?\b",
        ],
    ),
    ("vigencias_futuras", "Autorización de vigencias futuras", &[r"\bvigencias? futuras?\b"]),
    // Some national entities certify that the contract respects the spending austerity rules.
    ("certificado_austeridad", "Certificado de austeridad del gasto", &[r"\baus?teridad\b"]),
    (
        "insuficiencia_personal",
        "Certificado de inexistencia o insuficiencia de personal de planta",
        &[
            r"\b(?:no existencia|inexistencia|insuficiencia|ausencia)(?: de)? (?:personal|planta)\b",
            r"\bcertificad[a-z]* de (?:no existencia|inexistencia|insuficiencia)\b",
            r"\bpersonal de planta\b",
        ],
    ),
    (
        "certificado_idoneidad",
        "Certificado de idoneidad y experiencia",
        &[r"\bidoneidad\b", r"\bcertificad[a-z]* de (?:la )?experiencia\b"],
    ),
    (
        "acto_justificacion",
        "Acto administrativo de justificación de la contratación directa",
        &[
            r"\b(?:acto|resolucion)(?: administrativo)? (?:de )?justificacion\b",
            r"\bjustificacion\b.*\bdirecta\b",
            r"\bresolucion (?:de )?contratacion directa\b",
            lead!(r"justificacion\b"),
        ],
    ),
    (
        "acto_apertura",
        "Acto administrativo de apertura",
        &[
            r"\b(?:resolucion|acto)(?: administrativo)? (?:de )?apertura\b",
            r"\bapertura (?:del )?proceso\b",
        ],
    ),
    (
        "aviso_convocatoria",
        "Aviso de convocatoria",
        &[r"\bavisos? (?:de )?convocatoria\b", r"\bconvocatoria publica\b"],
    ),
    (
        "pliego",
        L_PLIEGO,
        &[r"\bpliegos?\b", r"\binvitacion(?:es)?\b", r"\bterminos de referencia\b"],
    ),
    (
        "matriz_riesgos",
        "Matriz de riesgos",
        &[r"\bmatri[a-z]* (?:de )?riesgos?\b", r"\briesgos? previsibles\b"],
    ),
    (
        "ficha_tecnica",
        "Ficha técnica o especificaciones técnicas",
        &[
            r"\bfichas?\b",
            r"\bespecificacion(?:es)?\b",
            r"\b(?:anexos?|formatos?|requerimientos?|condiciones) tecnic[a-z]*\b",
            r"\bhojas? de seguridad\b",
            r"\bplanos?\b",
            r"\bcantidades (?:de )?obra\b",
            r"\bformatos? (?:de )?cantidades\b",
        ],
    ),
    ("avaluo", "Avalúo", &[r"\bavaluos?\b", r"\bperitajes?\b"]),
    (
        "evaluacion",
        "Informe de evaluación de ofertas",
        &[
            r"\binformes? (?:[a-z]+ )?(?:de )?(?:la )?evaluacion\b",
            r"\bevaluacion (?:de )?(?:las )?(?:ofertas|propuestas)\b",
            r"\b(?:acta|consolidado|resultados?) (?:de )?(?:la )?evaluacion\b",
            r"\bverificacion (?:de )?(?:los )?requisitos habilitantes\b",
            r"\bcomite evaluador\b",
            r"\bcuadro comparativo\b",
        ],
    ),
    ("adjudicacion", "Acto de adjudicación", &[r"\badjudica[a-z]*\b"]),
    (
        "declaratoria_desierta",
        "Declaratoria de desierto",
        &[r"\bdesiert[oa]s?\b", r"\bdeclaratoria\b"],
    ),
    ("acta_audiencia", "Acta de audiencia", &[r"\baudiencias?\b", r"\bacta aud\b"]),
    (
        "propuesta",
        L_PROPUESTA,
        &[r"\bofertas?\b", r"\bpropuestas?\b", r"\bcarta de presentacion\b", r"\bofrecimiento\b"],
    ),
    // The complement to the electronic contract (the contract's clauses), even when an
    // adenda changed it.
    (
        "contrato",
        L_CONTRATO,
        &[r"\bcomple[a-z]* (?:al |del )?contrato\b", r"\bcontratos? comple[a-z]*\b"],
    ),
    // Any other mention of an adenda, before the contractual kinds ("Modificación adenda").
    ("adenda", L_ADENDA, &[r"\badendas?\b"]),
    (
        "cierre_expediente",
        "Constancia de cierre del expediente",
        &[r"\bcierre (?:del? )?expediente\b", r"\bcierre contractual\b"],
    ),
    (
        "pago",
        "Soporte de pago (factura, cuenta de cobro, planilla de aportes)",
        &[
            lead!(r"facturas?\b"),
            r"\bcuentas? de cobro\b",
            r"\bplanillas?\b",
            r"\bpila\b",
            r"\b(?:soportes?|ordenes?|orden|comprobantes?) de (?:pago|egreso)\b",
            r"\bcertificaci[a-z]* de (?:pagos?|aportes)\b",
        ],
    ),
    ("acta_liquidacion", "Acta de liquidación", &[r"\bliquidacion(?:es)?\b", r"\bliquidad[oa]\b"]),
    ("informe_final", "Informe final", &[r"\binformes? finale?s?\b"]),
    ("acta_terminacion", "Acta de terminación", &[r"\bterminacion\b"]),
    (
        "certificado_cumplimiento",
        "Certificado de cumplimiento o recibo a satisfacción",
        &[
            r"\bcertificad[a-z]* (?:de )?cumplimiento\b",
            r"\brecib[a-z]* (?:a |a entera )?satisfaccion\b",
            r"\bactas? de recibo\b",
            r"\bcumplidos?\b",
            r"\bentrada (?:de |a )?almacen\b",
        ],
    ),
    (
        "informe_supervision",
        "Informe de supervisión o de actividades",
        &[
            r"\binformes? (?:[a-z]+ )?(?:de )?(?:la )?(?:supervision|supervisor|interventoria|actividades|ejecucion|gestion|avance|seguimiento)\b",
            r"\binformes? (?:mensual|parcial|periodico|trimestral|bimestral)[a-z]*\b",
            r"\bcertificad[a-z]* de supervision\b",
        ],
    ),
    (
        "acta_inicio",
        "Acta de inicio",
        &[r"\b(?:acta|orden) (?:de )?inicio\b", r"\binicio (?:de )?(?:la )?ejecucion\b"],
    ),
    (
        "suspension",
        "Suspensión o reinicio",
        &[r"\bsuspension(?:es)?\b", r"\breinicio\b", r"\bsuspendid[oa]\b"],
    ),
    ("cesion", "Cesión del contrato", &[r"\bcesion(?:es)?\b"]),
    ("garantia", "Garantía (póliza) o su aprobación", &[r"\bpolizas?\b", r"\bgarantias?\b"]),
    (
        "modificacion",
        "Modificación contractual (otrosí, prórroga, adición)",
        &[
            r"\bmodificaci(?:on|ones)\b",
            r"\bmodificatori[oa]s?\b",
            r"\botros?i\b",
            r"\botro si\b",
            r"\bprorroga[a-z]*\b",
            r"\badicion(?:es|al)?\b",
        ],
    ),
    // After every kind that mentions the contract ("estudios previos del contrato",
    // "informe de supervisión del contrato", "modificación al contrato").
    ("contrato", L_CONTRATO, &[r"\bcontratos?\b", r"\bminutas?\b"]),
    // "Documento complementario" alone is the complement to the electronic pliego.
    ("pliego", L_PLIEGO, &[r"\bd[a-z]*cumentos? comple[a-z]*\b"]),
    (
        "documentos_contratista",
        "Documentos del contratista (RUT, cédula, antecedentes, hoja de vida)",
        &[
            r"\brut\b",
            r"\bregistro unico tributario\b",
            r"\bcedulas?\b",
            r"\bantecedentes?\b",
            r"\bhojas? de vida\b",
            r"\bexistencia y representacion\b",
            r"\bcamara de comercio\b",
            r"\bcertifica[a-z]* bancari[oa]\b",
            r"\bdeclaracion (?:de )?(?:bienes|renta|juramentada)\b",
            r"\bconflictos? (?:de )?interes(?:es)?\b",
            r"\bsigep\b",
            r"\bredam\b",
            r"\blibreta militar\b",
            r"\btarjeta profesional\b",
            r"\bmedidas correctivas\b",
            r"\bdiplomas?\b",
            r"\bactas? de grado\b",
            r"\bcertificaci[a-z]* laboral(?:es)?\b",
            r"\bdocumentos? (?:del )?(?:contratista|proponente)\b",
            lead!(r"poder\b"),
        ],
    ),
    (
        "oficio",
        L_OFICIO,
        &[
            r"\boficios?\b",
            r"\bremision\b",
            r"\bradicad[oa]\b",
            r"\balcances?\b",
            r"\bcomunicaci(?:on|ones)\b",
            r"\bmemorandos?\b",
        ],
    ),
    // Last: whatever else the pliego attaches.
    (
        "anexo",
        "Anexo o formato",
        &[
            r"\banexos?\b",
            r"\baenxos?\b",
            r"\bformatos?\b",
            r"\bformularios?\b",
            r"\binstructivos?\b",
            r"\bsoportes?\b",
        ],
    ),
];

impl Classifier {
    /// The built-in Spanish entries, in priority order (the first entry that matches wins).
    /// Some kinds appear twice: a strict entry early (a name starting with "Adenda") and a
    /// loose one late (any mention of an adenda).
    pub fn defaults() -> Vec<KindPattern> {
        DEFAULTS
            .iter()
            .map(|(kind, label, patterns)| KindPattern {
                kind: (*kind).to_owned(),
                label: (*label).to_owned(),
                patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            })
            .collect()
    }

    /// Compiles `kinds` (in priority order). On failure, every problem is reported, each as
    /// the index of the offending entry and a message naming its kind (and pattern): a kind id
    /// that is not snake_case, an empty label, an entry without patterns, a bad regex.
    pub fn new(kinds: &[KindPattern]) -> Result<Classifier, Vec<(usize, String)>> {
        let mut errors = Vec::new();
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        let mut ids: Vec<(String, String)> = Vec::new();
        for (i, entry) in kinds.iter().enumerate() {
            let id = entry.kind.trim();
            if !is_kind_id(id) {
                errors.push((
                    i,
                    format!(
                        "kind `{}`: the id must be snake_case (a-z, 0-9 and _, starting with a letter)",
                        entry.kind
                    ),
                ));
            }
            let label = entry.label.trim();
            if label.is_empty() {
                errors.push((i, format!("kind `{id}`: the label is empty")));
            }
            if entry.patterns.is_empty() {
                errors.push((i, format!("kind `{id}`: no patterns")));
            }
            let slot = match ids.iter().position(|(known, _)| known == id) {
                Some(slot) => slot,
                None => {
                    ids.push((id.to_owned(), label.to_owned()));
                    ids.len() - 1
                }
            };
            for pattern in &entry.patterns {
                let pattern = strip_accents(pattern);
                match RegexBuilder::new(&pattern)
                    .case_insensitive(true)
                    .size_limit(SIZE_LIMIT)
                    .build()
                {
                    Ok(_) => {
                        patterns.push(pattern);
                        owner.push(slot);
                    }
                    Err(e) => {
                        errors.push((i, format!("kind `{id}`, pattern `{pattern}`: {e}")));
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let set = RegexSetBuilder::new(&patterns)
            .case_insensitive(true)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| {
                let last = kinds.len().saturating_sub(1);
                let id = kinds.last().map_or("", |k| k.kind.as_str());
                vec![(last, format!("kind `{id}`: all patterns together do not compile: {e}"))]
            })?;
        Ok(Classifier { set, owner, kinds: ids })
    }

    /// The classifier with the built-in entries, [`Classifier::defaults`].
    pub fn standard() -> Classifier {
        // The defaults are tested to compile; failing here is a bug in this file.
        Classifier::new(&Classifier::defaults()).expect("the default document kinds compile")
    }

    /// The kind id of a document: the file name decides when it matches anything, otherwise
    /// the description; [`OTHER`] when neither does (or both are missing).
    pub fn classify(&self, file_name: Option<&str>, description: Option<&str>) -> &str {
        [file_name, description]
            .into_iter()
            .flatten()
            .find_map(|text| self.kind_of(&normalize(text)))
            .map_or(OTHER, |slot| self.kinds[slot].0.as_str())
    }

    /// The label of a kind id; [`OTHER`] has one even when not configured.
    pub fn label(&self, kind: &str) -> Option<&str> {
        self.kinds
            .iter()
            .find(|(id, _)| id == kind)
            .map(|(_, label)| label.as_str())
            .or((kind == OTHER).then_some(OTHER_LABEL))
    }

    /// The configured kinds as (id, label), each once, in priority order (of their first
    /// entry), followed by [`OTHER`] unless configured.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str)> {
        let other_configured = self.kinds.iter().any(|(id, _)| id == OTHER);
        self.kinds
            .iter()
            .map(|(id, label)| (id.as_str(), label.as_str()))
            .chain((!other_configured).then_some((OTHER, OTHER_LABEL)))
    }

    /// The kind slot of an already normalized text.
    fn kind_of(&self, normalized: &str) -> Option<usize> {
        if normalized.is_empty() {
            return None;
        }
        // Patterns are in priority order: the lowest index that matches wins.
        self.set.matches(normalized).iter().next().map(|pattern| self.owner[pattern])
    }
}

/// The text classifier patterns are matched against: `%20` decoded, camelCase split
/// (`ComprobanteCompromiso`), folded with [`fold`] (lower case, no accents), file extension(s)
/// removed (`.pdf`, `.docx.pdf`), every character that is not an ASCII letter or digit turned
/// into a space (loose accents such as `´` and apostrophes are dropped instead), letters and
/// digits split apart (`cdp8120` → `cdp 8120`) and spaces collapsed.
///
/// `normalize("4.1. Estudio_del SECTOR (Análisis).pdf") == "4 1 estudio del sector analisis"`.
pub fn normalize(text: &str) -> String {
    let mut spaced = String::with_capacity(text.len() + 8);
    let mut prev_lower = false;
    for c in text.replace("%20", " ").chars() {
        if prev_lower && c.is_uppercase() {
            spaced.push(' ');
        }
        prev_lower = c.is_lowercase();
        spaced.push(c);
    }
    let mut folded = fold(&spaced);
    strip_extensions(&mut folded);

    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        None,
        Letter,
        Digit,
    }
    let mut out = String::with_capacity(folded.len());
    let mut last = Class::None;
    let mut gap = false;
    for c in folded.chars() {
        let class = if c.is_ascii_lowercase() || c.is_ascii_uppercase() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Digit
        } else {
            if !is_loose_mark(c) {
                gap = true;
            }
            continue;
        };
        if last != Class::None && (gap || last != class) {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
        last = class;
        gap = false;
    }
    out
}

/// Characters that only decorate a letter (spacing accents, apostrophes, combining marks left
/// by lower-casing): dropped without splitting the word (`Invitacio´n`, `electro´nico`).
fn is_loose_mark(c: char) -> bool {
    matches!(c, '\'' | '`' | '´' | '¨' | '^' | '˜' | '’' | '‘' | 'ˆ')
        || unicode_normalization::char::is_combining_mark(c)
}

/// File extensions removed from the end of a folded name, repeatedly (`.pdf.p7m`).
const EXTENSIONS: &[&str] = &[
    "pdf", "doc", "docx", "docm", "dot", "dotx", "odt", "rtf", "txt", "xls", "xlsx", "xlsm",
    "xlsb", "ods", "csv", "ppt", "pptx", "odp", "zip", "rar", "7z", "gz", "tar", "jpg", "jpeg",
    "png", "gif", "tif", "tiff", "bmp", "heic", "msg", "eml", "xml", "htm", "html", "json", "p7m",
    "p7z", "p7s", "sig", "xps", "dwg", "kmz", "mp3", "mp4",
];

fn strip_extensions(folded: &mut String) {
    for _ in 0..3 {
        let Some((stem, ext)) = folded.rsplit_once('.') else { return };
        if stem.trim().is_empty() || !EXTENSIONS.contains(&ext.trim()) {
            return;
        }
        let keep = stem.trim_end().len();
        folded.truncate(keep);
    }
}

/// Removes accents from a pattern (matching is already case-insensitive); no regex syntax
/// uses combining marks, so the pattern's meaning is otherwise unchanged.
fn strip_accents(pattern: &str) -> String {
    pattern.nfd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)).collect()
}

fn is_kind_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    /// Real names uploaded by the FEAB (Bogotá), from `document-names.feab.csv`.
    const FEAB: &str = include_str!("../../examples/secop/document-names.feab.csv");

    /// The `nombre_archivo` column of the FEAB file (the only quoted field in it).
    fn feab_names() -> Vec<String> {
        FEAB.lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let rest = line.split_once(',').expect("a notice_uid column").1;
                if let Some(quoted) = rest.strip_prefix('"') {
                    let end = quoted.find("\",").expect("a closing quote");
                    quoted[..end].replace("\"\"", "\"")
                } else {
                    rest.split(',').next().unwrap_or_default().to_owned()
                }
            })
            .collect()
    }

    static STANDARD: LazyLock<Classifier> = LazyLock::new(Classifier::standard);

    fn kind_of(name: &str) -> &'static str {
        STANDARD.classify(Some(name), None)
    }

    #[test]
    fn real_feab_names_get_the_kind_a_person_would_give_them() {
        let cases = [
            ("ESTUDIO PREVIO PRUEBAS DE APTITUD.pdf", "estudios_previos"),
            ("Estudios Previos.pdf", "estudios_previos"),
            ("ESTUDIOS PREVIOS MTM EQUIPOS COMPUTARIZADOS DEL HABLA.pdf", "estudios_previos"),
            ("DEF. EST. PREV. LUPAS 2020 (revision) (1) (1) (1).pdf", "estudios_previos"),
            ("ALCANCE ESTUDIO PREVIO-convertido.pdf", "estudios_previos"),
            ("1. Manifestación de Necesidad.pdf", "estudios_previos"),
            ("Manifestaciòn de la necesidad.pdf", "estudios_previos"),
            ("Manfestación de la Necesidad.pdf", "estudios_previos"),
            ("MANIFESTACIO´N 50% VEHI´CULO NVL-049.pdf", "estudios_previos"),
            ("Manifestación de la Necesidad - Adenda 3.pdf", "estudios_previos"),
            ("ESTUDIO DEL SECTOR PRUEBAS DE APTITUD.pdf", "analisis_sector"),
            ("4.1. Estudio del Sector en Word.pdf", "analisis_sector"),
            ("ESTUDIO-SECTORIAL-AVALUO-SUSTANCIAS.pdf", "analisis_sector"),
            ("ANÁLISIS DEL SECTOR CÁMARAS.xls", "analisis_sector"),
            ("Estudio del Sector- Adenda 3.pdf", "analisis_sector"),
            ("ESTUDIO DE MERCADO PARA PUBLICAR.pdf", "analisis_sector"),
            ("JUSTIFICACION ESTUDIO DE MERCADO BANCO MERCANTIL.doc", "analisis_sector"),
            ("COTIZACION 1.xlsx", "analisis_sector"),
            ("CDP PRUEBAS DE APTITUD.pdf", "cdp"),
            ("5. CDP.pdf", "cdp"),
            ("CDP8120.fluorescenciaFDRX.FEAB.pdf", "cdp"),
            ("6. CDP 7822 FEAB ADICION.pdf", "cdp"),
            ("Certificado de Disponibilidad Presupuestal - CDP.pdf", "cdp"),
            ("Certificado de Dsiponibilidad Presupuestal.pdf", "cdp"),
            ("Certificado de Disponilidad Presupuestal - CDP.pdf", "cdp"),
            ("REP_Comprobante CDP No. 28920.pdf", "cdp"),
            ("Registro Presupuestal.pdf", "registro_presupuestal"),
            ("REP_EPG003_ComprobanteCompromiso (9).pdf", "registro_presupuestal"),
            ("17.Aprobación de cupo de Vigencias Futuras 2022(16).pdf", "vigencias_futuras"),
            (
                "71 JUSTIFICACION TERMOCICLADORES marca AGILENT contrs directa.pdf",
                "acto_justificacion",
            ),
            ("#120 JUSTIFICACIÓN ENAJENACIÓNRESIDUOS ORDINARIOS FEAB.docx", "acto_justificacion"),
            ("Complemento al Pliegos de Condiciones.pdf", "pliego"),
            ("Documento complementario al proyecto de pliego de condiciones.doc", "pliego"),
            ("Documento Complementario Invitación a Ofertar Mínima Cuantía.pdf", "pliego"),
            ("Documento Complementario Invitacio´n a Ofertar Mi´nima Cuanti´a.pdf", "pliego"),
            ("Invitación a Ofertar Minima MC-FEAB-0002-2023.pdf", "pliego"),
            ("DUCUMENTO COMPLEMENTARIO V11.pdf", "pliego"),
            ("RESPUESTA A OBSERVACIONES PROYECTO DE PLIEGO DE CONDICIONES.pdf", "observaciones"),
            ("RTAS EXTEMPORANEAS A PUBLICAR 15 FEB.doc", "observaciones"),
            ("MATRIZ DE RIESGO SUSCRIPCION ENSAYOS DE APTITUD-1.xlsx", "matriz_riesgos"),
            ("Anexo No. 5 Matriz de Riesgos.xlsx", "matriz_riesgos"),
            ("2. Ficha Técnica.pdf", "ficha_tecnica"),
            ("ANEXO 3 - Ficha Técnica.docx", "ficha_tecnica"),
            (
                "Anexo 3. Especificaciones Técnicas GRUPO 1 (Modificación Adenda No. 1).pdf",
                "ficha_tecnica",
            ),
            ("381-2022 AVALUO ITH 63E.pdf", "avaluo"),
            ("Protocolo audiencia de asignaciòn de riesgos.doc", "acta_audiencia"),
            (
                "Certificación Declaratoria Desierta FEAB- FEAB_IOCA_0019_2021.pdf",
                "declaratoria_desierta",
            ),
            ("Anexo 4 - Propuesta Económica.xlsx", "propuesta"),
            ("ANEXO 1 - Carta de Presentación de la Oferta.docx", "propuesta"),
            ("OFERTA ECONÓMICA INCLUYE MODIFICACION ADENDA No 3 (5).xlsx", "propuesta"),
            ("Adenda No. 1.pdf", "adenda"),
            ("20230418182032885 Adenda No 1 proceso FEAB-EB-0006-2023.pdf", "adenda"),
            ("ADENDA N. 1 Documento de complemento al contrato electronico.doc", "adenda"),
            ("Adenda 1_Contrato de Promesa de Permuta.docx", "adenda"),
            ("Anexo 3 adenda 2.pdf", "adenda"),
            (
                "Anexo 13 - Documento complementario al contrato electrónico - Adenda 1.pdf",
                "contrato",
            ),
            (
                "Certificado de Austeridad para Contratos de Suministro, Mantenimiento y Adquisición de Bienes Inmuebles.pdf",
                "certificado_austeridad",
            ),
            ("DECLARACION_CONFLICTO_INTERES.pdf", "documentos_contratista"),
            ("Documento complementario al contrato electrónico.pdf", "contrato"),
            ("Anexo 13 - Documento complementario al contrato electro´nico(2).pdf", "contrato"),
            ("CONTRATO COMPLEMENTARIO_ FEAB IOCA 005-2020.pdf", "contrato"),
            ("ANEXO 14. Minuta.pdf", "contrato"),
            ("CONTRATO DE ARRENDAMIENTO 120.pdf", "contrato"),
            ("Acta de Inicio.pdf", "acta_inicio"),
            ("Acta aprobacion poliza de cumplimiento.pdf", "garantia"),
            (
                "Legalización de Póliza - Contrato de arrendamiento No. 0120 de 2021 Municipio de Buena-ventura (Calle del Cauca)..pdf",
                "garantia",
            ),
            ("Poliza de RCE 101181231 ANEXO 1.pdf", "garantia"),
            ("Informe parcial No 01 contrato 120 de 2021.pdf", "informe_supervision"),
            ("INFORME PARCIAL No. 4 --CN 120--- PATIO BUENAVENTURA def.pdf", "informe_supervision"),
            ("OFICIO REMISIÓN DE ESTUDIO PREVIO DEFINITIVO.pdf", "oficio"),
            ("120234980003971_00001 oficio remisorio.pdf", "oficio"),
            ("Solicitud modificacion proceso.pdf", "oficio"),
            ("10.1. Registro Único y Tributario - RUT(16).pdf", "documentos_contratista"),
            ("Antecedentes Fiscales Rep Legal.pdf", "documentos_contratista"),
            ("Formato Único de Hoja de Vida Persona Jurídica.pdf", "documentos_contratista"),
            ("Anexos.pdf", "anexo"),
            ("ANEXOS%20APROBADOS_SECOP%20II1 (1).docx", "anexo"),
            ("ANEXO 9 - Origen de Fondos.docx", "anexo"),
            ("Analisis de Pertinencia.pdf", OTHER),
            ("15. PLACA XHY96E..pdf", OTHER),
            ("Certificado de tradiciòn del vehìculo.pdf", OTHER),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(name, want)| kind_of(name) != *want)
            .map(|(name, want)| format!("{name}: got {}, want {want}", kind_of(name)))
            .collect();
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
        assert!(cases.len() >= 40);
    }

    #[test]
    fn execution_and_closing_documents_get_their_kind() {
        let cases = [
            ("ESTUDIOS PREVIOS DEL CONTRATO 045 DE 2024.pdf", "estudios_previos"),
            ("EP prestacion servicios.pdf", "estudios_previos"),
            ("MINUTA CONTRATO.docx", "contrato"),
            ("Contrato firmado.pdf", "contrato"),
            ("Comunicación de aceptación de la oferta.pdf", "contrato"),
            ("RP 4523.pdf", "registro_presupuestal"),
            ("CRP_2024_118.pdf", "registro_presupuestal"),
            ("Certificado de insuficiencia de personal de planta.pdf", "insuficiencia_personal"),
            ("Certificado de idoneidad y experiencia.pdf", "certificado_idoneidad"),
            ("Resolución de justificación de la contratación directa.pdf", "acto_justificacion"),
            ("Resolución de apertura.pdf", "acto_apertura"),
            ("Aviso de convocatoria.pdf", "aviso_convocatoria"),
            ("Informe de evaluación definitivo.pdf", "evaluacion"),
            ("Informe preliminar de evaluación.pdf", "evaluacion"),
            ("Resolución de adjudicación No. 12.pdf", "adjudicacion"),
            ("ACTA_DE_INICIO_CTO_045.pdf", "acta_inicio"),
            ("Aprobación de garantías.pdf", "garantia"),
            ("Informe de supervisión No. 3.pdf", "informe_supervision"),
            ("INFORME DE ACTIVIDADES MARZO.pdf", "informe_supervision"),
            ("Certificado de cumplimiento a satisfacción.pdf", "certificado_cumplimiento"),
            ("Recibo a satisfacción.pdf", "certificado_cumplimiento"),
            ("Cuenta de cobro No. 4.pdf", "pago"),
            ("Planilla PILA marzo.pdf", "pago"),
            ("OTROSI No. 1.pdf", "modificacion"),
            ("Otro sí 2 al contrato 045.pdf", "modificacion"),
            ("Prórroga y adición No. 1.pdf", "modificacion"),
            ("Modificación No. 2 contrato 45.pdf", "modificacion"),
            ("Acta de suspensión.pdf", "suspension"),
            ("Cesión del contrato.pdf", "cesion"),
            ("Acta de terminación anticipada.pdf", "acta_terminacion"),
            ("INFORME FINAL DE SUPERVISION.pdf", "informe_final"),
            ("Acta de liquidación bilateral.pdf", "acta_liquidacion"),
            ("liquidacion_unilateral.pdf", "acta_liquidacion"),
            ("Acta de terminación y liquidación.pdf", "acta_liquidacion"),
            ("Constancia de cierre del expediente.pdf", "cierre_expediente"),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(name, want)| kind_of(name) != *want)
            .map(|(name, want)| format!("{name}: got {}, want {want}", kind_of(name)))
            .collect();
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    }

    #[test]
    fn accents_case_and_separators_do_not_matter() {
        for name in [
            "Análisis del Sector",
            "ANALISIS_DEL_SECTOR.pdf",
            "analisis-del-sector.xlsx",
            "AnálisisDelSector.pdf",
            "  análisis   DEL  sector ",
        ] {
            assert_eq!(kind_of(name), "analisis_sector", "{name}");
        }
        assert_eq!(kind_of("otrosí_1.pdf"), "modificacion");
        assert_eq!(kind_of("Acta.de.Liquidación.PDF"), "acta_liquidacion");
    }

    #[test]
    fn short_abbreviations_match_only_as_whole_words() {
        assert_eq!(kind_of("CDP 123.pdf"), "cdp");
        assert_eq!(kind_of("cdp_123.pdf"), "cdp");
        assert_ne!(kind_of("ACDPX.pdf"), "cdp");
        assert_ne!(kind_of("Receta.pdf"), "estudios_previos");
        assert_ne!(kind_of("Grupo 3.pdf"), "registro_presupuestal");
        assert_ne!(kind_of("Crepe.pdf"), "registro_presupuestal");
        assert_eq!(kind_of("EP.pdf"), "estudios_previos");
        assert_eq!(kind_of("RP.pdf"), "registro_presupuestal");
    }

    #[test]
    fn the_description_is_used_when_the_file_name_says_nothing() {
        let c = Classifier::standard();
        assert_eq!(
            c.classify(Some("scan_001.pdf"), Some("Acta de liquidación bilateral")),
            "acta_liquidacion"
        );
        assert_eq!(c.classify(None, Some("Contrato firmado")), "contrato");
        assert_eq!(c.classify(Some("CDP.pdf"), Some("Acta de liquidación")), "cdp");
        assert_eq!(c.classify(Some("scan_001.pdf"), Some("Documento del proceso")), OTHER);
        assert_eq!(c.classify(None, None), OTHER);
        assert_eq!(c.classify(Some(""), Some("  ")), OTHER);
    }

    #[test]
    fn normalize_folds_names_into_plain_words() {
        assert_eq!(
            normalize("4.1. Estudio_del SECTOR (Análisis).pdf"),
            "4 1 estudio del sector analisis"
        );
        assert_eq!(
            normalize("CDP8120.fluorescenciaFDRX.FEAB.pdf"),
            "cdp 8120 fluorescencia fdrx feab"
        );
        assert_eq!(
            normalize("ANEXOS%20APROBADOS_SECOP%20II1 (1).docx"),
            "anexos aprobados secop ii 1 1"
        );
        assert_eq!(normalize("ESTUDIO DEL SECTOR.docx.pdf"), "estudio del sector");
        assert_eq!(normalize("Invitacio´n a Ofertar"), "invitacion a ofertar");
        assert_eq!(normalize("Adenda N° 1"), "adenda n 1");
        assert_eq!(normalize("Estudio del Sector..pdf"), "estudio del sector");
        assert_eq!(normalize("Contrato 120.2021"), "contrato 120 2021");
        assert_eq!(normalize(".pdf"), "pdf");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn most_real_feab_names_are_recognized() {
        let names = feab_names();
        assert_eq!(names.len(), 2100);
        let classifier = Classifier::standard();
        let known = names.iter().filter(|n| classifier.classify(Some(n), None) != OTHER).count();
        let share = known as f64 / names.len() as f64;
        assert!(share >= 0.93, "only {known} of {} names recognized ({share:.3})", names.len());
    }

    #[test]
    fn all_bad_regexes_are_reported_with_their_kind() {
        let mut kinds = Classifier::defaults();
        kinds[2].patterns.push("(unclosed".into());
        kinds[7].patterns.push(r"\bcdp[".into());
        let errors = Classifier::new(&kinds).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, 2);
        assert!(errors[0].1.contains(&kinds[2].kind) && errors[0].1.contains("(unclosed"));
        assert_eq!(errors[1].0, 7);
        assert!(errors[1].1.contains(&kinds[7].kind) && errors[1].1.contains(r"\bcdp["));
    }

    #[test]
    fn entries_without_a_usable_id_label_or_patterns_are_rejected() {
        let entry = |kind: &str, label: &str, patterns: &[&str]| KindPattern {
            kind: kind.into(),
            label: label.into(),
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        };
        let errors = Classifier::new(&[
            entry("Pliego", "Pliego", &["pliego"]),
            entry("acta", "", &["acta"]),
            entry("vacio", "Vacío", &[]),
        ])
        .unwrap_err();
        let indexes: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [0, 1, 2], "{errors:?}");
    }

    #[test]
    fn administrators_patterns_given_first_override_the_defaults() {
        let custom = KindPattern {
            kind: "pliego".into(),
            label: "Pliego o documento base".into(),
            patterns: vec![r"\bdocumento base\b".into(), r"^Estudio Previo Ajustado".into()],
        };
        let standard = Classifier::standard();
        assert_eq!(
            standard.classify(Some("Estudio previo ajustado.pdf"), None),
            "estudios_previos"
        );
        let kinds: Vec<KindPattern> =
            std::iter::once(custom).chain(Classifier::defaults()).collect();
        let c = Classifier::new(&kinds).unwrap();
        assert_eq!(c.classify(Some("Documento Base Obra.pdf"), None), "pliego");
        assert_eq!(c.classify(Some("Estudio previo ajustado.pdf"), None), "pliego");
        assert_eq!(c.classify(Some("Estudio previo.pdf"), None), "estudios_previos");
        assert_eq!(c.label("pliego"), Some("Pliego o documento base"));
        assert_eq!(c.kinds().next(), Some(("pliego", "Pliego o documento base")));
        assert_eq!(c.kinds().filter(|(id, _)| *id == "pliego").count(), 1);
    }

    #[test]
    fn accented_patterns_from_administrators_match_folded_text() {
        let c = Classifier::new(&[KindPattern {
            kind: "concepto".into(),
            label: "Concepto jurídico".into(),
            patterns: vec![r"\bConcepto Jurídico\b".into()],
        }])
        .unwrap();
        assert_eq!(c.classify(Some("CONCEPTO_JURIDICO_12.pdf"), None), "concepto");
        assert_eq!(c.classify(Some("Otro.pdf"), None), OTHER);
        let empty = Classifier::new(&[]).unwrap();
        assert_eq!(empty.classify(Some("CDP.pdf"), Some("Contrato")), OTHER);
        assert_eq!(empty.kinds().collect::<Vec<_>>(), [(OTHER, OTHER_LABEL)]);
    }

    #[test]
    fn kinds_and_labels_list_every_default_kind_once_then_otro() {
        let c = Classifier::standard();
        let kinds: Vec<(&str, &str)> = c.kinds().collect();
        let mut ids: Vec<&str> = kinds.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.last(), Some(&OTHER));
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a kind listed twice");
        for required in [
            "estudios_previos",
            "analisis_sector",
            "cdp",
            "acto_justificacion",
            "certificado_idoneidad",
            "insuficiencia_personal",
            "pliego",
            "aviso_convocatoria",
            "matriz_riesgos",
            "propuesta",
            "evaluacion",
            "adjudicacion",
            "contrato",
            "registro_presupuestal",
            "garantia",
            "acta_inicio",
            "informe_supervision",
            "certificado_cumplimiento",
            "modificacion",
            "adenda",
            "acta_terminacion",
            "informe_final",
            "acta_liquidacion",
        ] {
            assert!(c.label(required).is_some_and(|l| !l.is_empty()), "{required}");
        }
        assert_eq!(c.label(OTHER), Some(OTHER_LABEL));
        assert_eq!(c.label("no_such_kind"), None);
        assert_eq!(c.kinds().next(), Some(("observaciones", L_OBSERVACIONES)));
    }

    #[test]
    fn repeated_default_kinds_share_one_label() {
        for (kind, label, _) in DEFAULTS {
            for (other, other_label, _) in DEFAULTS {
                if kind == other {
                    assert_eq!(label, other_label, "{kind}");
                }
            }
        }
    }

    #[test]
    fn the_classifier_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
        shareable::<Classifier>();
        let c = Classifier::standard();
        let copy = c.clone();
        let kind = std::thread::spawn(move || copy.classify(Some("CDP.pdf"), None).to_owned())
            .join()
            .unwrap();
        assert_eq!(kind, "cdp");
    }

    #[test]
    fn kind_patterns_deserialize_strictly() {
        let ok: KindPattern =
            serde_json::from_str(r#"{"kind": "cdp", "label": "CDP", "patterns": ["\\bcdp\\b"]}"#)
                .unwrap();
        assert_eq!(ok.patterns, [r"\bcdp\b"]);
        let unknown = r#"{"kind": "cdp", "label": "CDP", "patterns": [], "prioridad": 1}"#;
        assert!(serde_json::from_str::<KindPattern>(unknown).is_err());
        let missing = r#"{"kind": "cdp", "label": "CDP"}"#;
        assert!(serde_json::from_str::<KindPattern>(missing).is_err());
    }
}
