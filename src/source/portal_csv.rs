//! Source, portal CSV form: turns the portal's human-header CSV export of SECOP II contracts into SODA-shaped JSON rows.
//!
//! The datos.gov.co portal exports the contracts dataset (`jbjy-vk9h`) as CSV with human
//! column names ("Fecha de Firma", "Liquidación", …), and such files are often edited in a
//! spreadsheet before they reach us: dates become `MM/DD/YYYY`, money becomes
//! `$ 31.500.000,00`, identifiers become `890.480.184,00`. [`PortalCsvReader`] streams such a
//! file and gives, for every record, the JSON object the SODA API would have returned for
//! it: API field names, every value a JSON string (except `urlproceso`, an object
//! `{"url": …}`), empty cells omitted, so the rest of the pipeline needs a single parser.
//!
//! The reader streams: it keeps one record in memory at a time. It accepts a UTF-8 byte
//! order mark, `,` `;` or tab as the delimiter (guessed from the header line), and cells in
//! UTF-8 or, failing that, Windows-1252 (what spreadsheets on Windows save).

use std::borrow::Cow;
use std::io::{self, Chain, Cursor, Read};

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The field that identifies a contract; a file without it is not a contracts export.
const ID_FIELD: &str = "id_contrato";

/// Columns the rules read: an export without one of them would make every contract look
/// as if the value were unknown (and resolve findings that depend on it), so it is refused.
const RULE_FIELDS: [(&str, &str); 5] = [
    ("Nit Entidad", "nit_entidad"),
    ("Estado Contrato", "estado_contrato"),
    ("Fecha de Firma", "fecha_de_firma"),
    ("Fecha de Fin del Contrato", "fecha_de_fin_del_contrato"),
    ("Liquidación", "liquidaci_n"),
];

/// How much of the file is read ahead, at most, to look at the header line (delimiter).
const HEADER_SNIFF_LIMIT: usize = 1 << 20;

/// Human header (as the portal writes it) → SODA API field name, for every column of
/// `jbjy-vk9h`. Headers are compared after [`normalise_header`], so case, accents,
/// punctuation and spacing do not matter.
const ALIASES: &[(&str, &str)] = &[
    ("Nombre Entidad", "nombre_entidad"),
    ("Nit Entidad", "nit_entidad"),
    ("Departamento", "departamento"),
    ("Ciudad", "ciudad"),
    ("Localización", "localizaci_n"),
    ("Orden", "orden"),
    ("Sector", "sector"),
    ("Rama", "rama"),
    ("Entidad Centralizada", "entidad_centralizada"),
    ("Proceso de Compra", "proceso_de_compra"),
    ("ID Contrato", "id_contrato"),
    ("Referencia del Contrato", "referencia_del_contrato"),
    ("Estado Contrato", "estado_contrato"),
    ("Codigo de Categoria Principal", "codigo_de_categoria_principal"),
    ("Descripcion del Proceso", "descripcion_del_proceso"),
    ("Tipo de Contrato", "tipo_de_contrato"),
    ("Modalidad de Contratacion", "modalidad_de_contratacion"),
    ("Justificacion Modalidad de Contratacion", "justificacion_modalidad_de"),
    ("Fecha de Firma", "fecha_de_firma"),
    ("Fecha de Inicio del Contrato", "fecha_de_inicio_del_contrato"),
    ("Fecha de Fin del Contrato", "fecha_de_fin_del_contrato"),
    ("Condiciones de Entrega", "condiciones_de_entrega"),
    ("TipoDocProveedor", "tipodocproveedor"),
    ("Documento Proveedor", "documento_proveedor"),
    ("Proveedor Adjudicado", "proveedor_adjudicado"),
    ("Es Grupo", "es_grupo"),
    ("Es Pyme", "es_pyme"),
    ("Habilita Pago Adelantado", "habilita_pago_adelantado"),
    ("Liquidación", "liquidaci_n"),
    ("Obligación Ambiental", "obligaci_n_ambiental"),
    ("Obligaciones Postconsumo", "obligaciones_postconsumo"),
    ("Reversion", "reversion"),
    ("Origen de los Recursos", "origen_de_los_recursos"),
    ("Destino Gasto", "destino_gasto"),
    ("Valor del Contrato", "valor_del_contrato"),
    ("Valor de pago adelantado", "valor_de_pago_adelantado"),
    ("Valor Facturado", "valor_facturado"),
    ("Valor Pendiente de Pago", "valor_pendiente_de_pago"),
    ("Valor Pagado", "valor_pagado"),
    ("Valor Amortizado", "valor_amortizado"),
    ("Valor Pendiente de Amortizacion", "valor_pendiente_de"),
    ("Valor Pendiente de Ejecucion", "valor_pendiente_de_ejecucion"),
    ("Estado BPIN", "estado_bpin"),
    ("Código BPIN", "c_digo_bpin"),
    ("Anno BPIN", "anno_bpin"),
    ("Año BPIN", "anno_bpin"),
    ("Saldo CDP", "saldo_cdp"),
    ("Saldo Vigencia", "saldo_vigencia"),
    ("EsPostConflicto", "espostconflicto"),
    ("Dias adicionados", "dias_adicionados"),
    ("Puntos del Acuerdo", "puntos_del_acuerdo"),
    ("Pilares del Acuerdo", "pilares_del_acuerdo"),
    ("URLProceso", "urlproceso"),
    ("Nombre Representante Legal", "nombre_representante_legal"),
    ("Nacionalidad Representante Legal", "nacionalidad_representante_legal"),
    ("Domicilio Representante Legal", "domicilio_representante_legal"),
    ("Tipo de Identificación Representante Legal", "tipo_de_identificaci_n_representante_legal"),
    ("Identificación Representante Legal", "identificaci_n_representante_legal"),
    ("Género Representante Legal", "g_nero_representante_legal"),
    ("Presupuesto General de la Nacion – PGN", "presupuesto_general_de_la_nacion_pgn"),
    ("Sistema General de Participaciones", "sistema_general_de_participaciones"),
    ("Sistema General de Regalías", "sistema_general_de_regal_as"),
    (
        "Recursos Propios (Alcaldías, Gobernaciones y Resguardos Indígenas)",
        "recursos_propios_alcald_as_gobernaciones_y_resguardos_ind_genas_",
    ),
    ("Recursos de Credito", "recursos_de_credito"),
    ("Recursos Propios", "recursos_propios"),
    ("Codigo Entidad", "codigo_entidad"),
    ("Codigo Proveedor", "codigo_proveedor"),
    ("Objeto del Contrato", "objeto_del_contrato"),
    ("Duración del contrato", "duraci_n_del_contrato"),
    ("Nombre del banco", "nombre_del_banco"),
    ("Tipo de cuenta", "tipo_de_cuenta"),
    ("Número de cuenta", "n_mero_de_cuenta"),
    ("El contrato puede ser prorrogado", "el_contrato_puede_ser_prorrogado"),
    ("Nombre ordenador del gasto", "nombre_ordenador_del_gasto"),
    ("Tipo de documento Ordenador del gasto", "tipo_de_documento_ordenador_del_gasto"),
    ("Número de documento Ordenador del gasto", "n_mero_de_documento_ordenador_del_gasto"),
    ("Nombre supervisor", "nombre_supervisor"),
    ("Tipo de documento supervisor", "tipo_de_documento_supervisor"),
    ("Número de documento supervisor", "n_mero_de_documento_supervisor"),
    ("Nombre ordenador de pago", "nombre_ordenador_de_pago"),
    ("Tipo de documento Ordenador de pago", "tipo_de_documento_ordenador_de_pago"),
    ("Número de documento Ordenador de pago", "n_mero_de_documento_ordenador_de_pago"),
    ("Documentos Tipo", "documentos_tipo"),
    ("Descripcion Documentos Tipo", "descripcion_documentos_tipo"),
    ("Ultima Actualizacion", "ultima_actualizacion"),
    ("Fecha de notificación de prorrogación", "fecha_de_notificaci_n_de_prorrogaci_n"),
    ("Fecha Inicio Liquidacion", "fecha_inicio_liquidacion"),
    ("Fecha Fin Liquidacion", "fecha_fin_liquidacion"),
];

/// Why a portal CSV file cannot be read at all (as opposed to one bad record, which is
/// reported in its [`CsvRow`]).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be read.
    #[error("cannot read the CSV file: {0}")]
    Io(#[from] io::Error),
    /// The CSV parser failed on the header row.
    #[error("cannot read the CSV header row: {0}")]
    Csv(#[from] csv::Error),
    /// The file is empty.
    #[error("the CSV file is empty: it has no header row")]
    NoHeader,
    /// The header has no contract identifier column.
    #[error(
        "the CSV header has no `ID Contrato` (id_contrato) column, so it is not a SECOP II contracts export; its columns are: {found}"
    )]
    MissingIdColumn {
        /// The first headers of the file, for the message.
        found: String,
    },
    /// The header lacks columns the rules need.
    #[error("the CSV header lacks the column(s) the rules need: {missing}")]
    MissingColumns {
        /// The missing headers, as the portal writes them, with their API field names.
        missing: String,
    },
    /// Two headers map to the same API field, so their values would overwrite each other.
    #[error("the CSV columns `{first}` and `{second}` both map to the field `{field}`")]
    DuplicateColumn {
        /// The earlier header.
        first: String,
        /// The later header.
        second: String,
        /// The API field both map to.
        field: String,
    },
}

/// One CSV record: the 1-based line where it starts in the file, and either the SODA-shaped object or why it was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    /// 1-based line of the file where the record starts (records may span lines).
    pub line: u64,
    /// The SODA-shaped object, or the reason (English, starting with `line N:`) the record was rejected.
    pub result: Result<Map<String, Value>, String>,
}

/// How a column's cells are converted to the SODA form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// Passed through, trimmed.
    Text,
    /// A floating timestamp: `YYYY-MM-DDTHH:MM:SS.fff`.
    Date,
    /// A number: plain digits, optional `-` and `.` decimals.
    Money,
    /// A whole number.
    Integer,
    /// An identifier the spreadsheet may have formatted as a number (`890.480.184,00`).
    Identifier,
    /// The process URL, an object `{"url": …}` in SODA.
    Url,
}

impl FieldKind {
    fn of(field: &str) -> Self {
        match field {
            "urlproceso" => Self::Url,
            "nit_entidad" | "documento_proveedor" | "codigo_entidad" | "codigo_proveedor" => {
                Self::Identifier
            }
            "dias_adicionados" => Self::Integer,
            "ultima_actualizacion" => Self::Date,
            "presupuesto_general_de_la_nacion_pgn" => Self::Money,
            f if f.starts_with("fecha_") => Self::Date,
            f if f.starts_with("valor_")
                || f.starts_with("saldo_")
                || f.starts_with("sistema_general_de_")
                || f.starts_with("recursos_") =>
            {
                Self::Money
            }
            _ => Self::Text,
        }
    }
}

/// One column of the file.
#[derive(Debug)]
struct Column {
    header: String,
    field: String,
    kind: FieldKind,
}

/// Streams a portal CSV export of `jbjy-vk9h`, yielding one [`CsvRow`] per record.
pub struct PortalCsvReader<R: Read> {
    inner: csv::Reader<Chain<Cursor<Vec<u8>>, R>>,
    columns: Vec<Column>,
    id_index: usize,
    record: csv::ByteRecord,
    finished: bool,
    /// Lines end with a lone CR (old Mac spreadsheets), which the CSV parser does not count
    /// as lines: number records instead.
    cr_only: bool,
    /// Records read so far, the header included.
    records_read: u64,
}

impl<R: Read> PortalCsvReader<R> {
    /// Refuses a header without the columns the rules read ([`RULE_FIELDS`]): the export
    /// of a sync must have them; a conversion of any export need not.
    pub fn require_rule_columns(&self) -> Result<(), CsvError> {
        let missing: Vec<String> = RULE_FIELDS
            .iter()
            .filter(|(_, field)| !self.columns.iter().any(|c| c.field == *field))
            .map(|(human, field)| format!("`{human}` ({field})"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CsvError::MissingColumns { missing: missing.join(", ") })
        }
    }

    /// Reads the header row; errors if the file has no header or no `ID Contrato`/`id_contrato` column.
    pub fn new(mut reader: R) -> Result<Self, CsvError> {
        let mut prefix = read_first_line(&mut reader)?;
        if prefix.starts_with(b"\xEF\xBB\xBF") {
            prefix.drain(..3);
        }
        let delimiter = sniff_delimiter(first_line(&prefix));
        let cr_only = ends_with_lone_cr(&prefix);
        // With LF or CRLF line ends, split records on LF only (a CR left at the end of a cell
        // is trimmed away): the parser's CRLF mode would date each record from the LF that
        // ends the record before it, one line too early.
        let terminator = if cr_only { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
        let mut inner = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .terminator(terminator)
            .from_reader(Cursor::new(prefix).chain(reader));

        let mut header = csv::ByteRecord::new();
        if !inner.read_byte_record(&mut header)? {
            return Err(CsvError::NoHeader);
        }

        let mut columns: Vec<Column> = Vec::with_capacity(header.len());
        for (index, raw) in header.iter().enumerate() {
            let human = decode(raw).trim().trim_start_matches('\u{feff}').to_owned();
            let mut field = api_field_name(&human);
            if field.is_empty() {
                field = format!("column_{}", index + 1);
            }
            if let Some(earlier) = columns.iter().find(|c| c.field == field) {
                return Err(CsvError::DuplicateColumn {
                    first: earlier.header.clone(),
                    second: human,
                    field,
                });
            }
            let kind = FieldKind::of(&field);
            columns.push(Column { header: human, field, kind });
        }

        let Some(id_index) = columns.iter().position(|c| c.field == ID_FIELD) else {
            let mut found: Vec<&str> = columns.iter().take(10).map(|c| c.header.as_str()).collect();
            if columns.len() > 10 {
                found.push("…");
            }
            return Err(CsvError::MissingIdColumn { found: found.join(", ") });
        };

        Ok(Self {
            inner,
            columns,
            id_index,
            record: csv::ByteRecord::new(),
            finished: false,
            cr_only,
            records_read: 1,
        })
    }

    /// Converts the current record (already read into `self.record`).
    fn convert(&self, line: u64) -> Result<Map<String, Value>, String> {
        if self.record.len() != self.columns.len() {
            return Err(format!(
                "line {line}: expected {} fields, found {}",
                self.columns.len(),
                self.record.len()
            ));
        }
        let mut object = Map::new();
        let mut problems = Vec::new();
        for (index, (column, raw)) in self.columns.iter().zip(self.record.iter()).enumerate() {
            let text = decode(raw);
            let value = text.trim();
            if value.is_empty() {
                if index == self.id_index {
                    problems
                        .push(format!("column `{}` ({}) is empty", column.header, column.field));
                }
                continue;
            }
            match convert_value(column.kind, value) {
                Ok(converted) => {
                    object.insert(column.field.clone(), converted);
                }
                Err(what) => problems.push(format!(
                    "column `{}` ({}): {what} {value:?}",
                    column.header, column.field
                )),
            }
        }
        if problems.is_empty() {
            Ok(object)
        } else {
            Err(format!("line {line}: {}", problems.join("; ")))
        }
    }
}

impl<R: Read> Iterator for PortalCsvReader<R> {
    type Item = CsvRow;

    fn next(&mut self) -> Option<CsvRow> {
        while !self.finished {
            match self.inner.read_byte_record(&mut self.record) {
                Ok(false) => self.finished = true,
                Ok(true) => {
                    self.records_read += 1;
                    // Spreadsheets leave rows of bare delimiters behind; they carry nothing.
                    if self.record.iter().all(|field| field.iter().all(u8::is_ascii_whitespace)) {
                        continue;
                    }
                    let line = if self.cr_only {
                        self.records_read
                    } else {
                        self.record
                            .position()
                            .map_or_else(|| self.inner.position().line(), csv::Position::line)
                    };
                    return Some(CsvRow { line, result: self.convert(line) });
                }
                Err(error) => {
                    // With flexible byte records the only possible failure is reading the
                    // underlying stream, after which nothing more can be trusted.
                    self.finished = true;
                    let line = if self.cr_only {
                        self.records_read + 1
                    } else {
                        error
                            .position()
                            .map_or_else(|| self.inner.position().line(), csv::Position::line)
                    };
                    return Some(CsvRow {
                        line,
                        result: Err(format!("line {line}: cannot read the file: {error}")),
                    });
                }
            }
        }
        None
    }
}

/// The SODA API field name of a column of `jbjy-vk9h`, given its human header.
///
/// Known headers (compared ignoring case, accents, punctuation and spacing) use the explicit
/// alias table, since Socrata truncated or kept odd characters in some names
/// (`Justificacion Modalidad de Contratacion` → `justificacion_modalidad_de`); API names
/// map to themselves; anything else gets Socrata's generic rule: lowercase, every
/// character other than an ASCII letter or digit becomes `_`, runs collapsed, trimmed
/// (`Valor del Contrato 2` → `valor_del_contrato_2`).
pub fn api_field_name(human_header: &str) -> String {
    let header = human_header.trim().trim_start_matches('\u{feff}').trim();
    if ALIASES.iter().any(|&(_, api)| api == header) {
        return header.to_owned();
    }
    let key = normalise_header(header);
    if let Some(&(_, api)) = ALIASES.iter().find(|&&(human, _)| normalise_header(human) == key) {
        return api.to_owned();
    }
    generic_field_name(header)
}

/// Lowercase, accents stripped, anything but letters and digits turned into single spaces.
fn normalise_header(header: &str) -> String {
    let plain: String = header
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Socrata's generic rule for deriving a field name from a column name.
fn generic_field_name(header: &str) -> String {
    let mut name = String::with_capacity(header.len());
    let mut pending_separator = false;
    for c in header.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            if pending_separator && !name.is_empty() {
                name.push('_');
            }
            pending_separator = false;
            name.push(c);
        } else {
            pending_separator = true;
        }
    }
    name
}

/// Converts one non-empty, trimmed cell; the error names what was expected.
fn convert_value(kind: FieldKind, value: &str) -> Result<Value, &'static str> {
    let text = match kind {
        FieldKind::Text => value.to_owned(),
        FieldKind::Date => convert_date(value).ok_or("unparseable date")?,
        FieldKind::Money => convert_money(value).ok_or("unparseable amount")?,
        FieldKind::Integer => convert_integer(value).ok_or("unparseable whole number")?,
        FieldKind::Identifier => convert_identifier(value),
        FieldKind::Url => {
            let mut url = Map::new();
            url.insert("url".to_owned(), Value::String(value.to_owned()));
            return Ok(Value::Object(url));
        }
    };
    Ok(Value::String(text))
}

/// `MM/DD/YYYY`, `YYYY-MM-DD`, ISO `YYYY-MM-DDTHH:MM:SS(.fff)` or `2023 ago 09`, each
/// optionally followed by a time of day (24 h, or 12 h with AM/PM) → `YYYY-MM-DDTHH:MM:SS.fff`.
fn convert_date(value: &str) -> Option<String> {
    let value = value.trim();
    let (first, rest) = value
        .split_once(char::is_whitespace)
        .map_or((value, ""), |(first, rest)| (first, rest.trim()));

    let (date, time) = if first.contains('/') {
        let mut parts = first.split('/');
        let month = number(parts.next()?, 1, 2)?;
        let day = number(parts.next()?, 1, 2)?;
        let year = number(parts.next()?, 4, 4)?;
        if parts.next().is_some() {
            return None;
        }
        (NaiveDate::from_ymd_opt(year as i32, month, day)?, rest)
    } else if first.contains('-') {
        let (day_part, time) = match first.split_once(['T', 't']) {
            Some(_) if !rest.is_empty() => return None,
            Some((day_part, time)) => (day_part, time),
            None => (first, rest),
        };
        let mut parts = day_part.split('-');
        let year = number(parts.next()?, 4, 4)?;
        let month = number(parts.next()?, 1, 2)?;
        let day = number(parts.next()?, 1, 2)?;
        if parts.next().is_some() {
            return None;
        }
        (NaiveDate::from_ymd_opt(year as i32, month, day)?, time)
    } else {
        // `2023 ago 09 12:00:00 AM`
        let year = number(first, 4, 4)?;
        let (month, rest) = rest.split_once(char::is_whitespace)?;
        let rest = rest.trim_start();
        let (day, time) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(day, time)| (day, time.trim()));
        let month = spanish_month(month)?;
        let day = number(day, 1, 2)?;
        (NaiveDate::from_ymd_opt(year as i32, month, day)?, time)
    };
    let time = parse_time(time)?;
    Some(NaiveDateTime::new(date, time).format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
}

/// `ene` … `dic` (also `sept`, `set`, full names, a trailing dot) → 1 … 12.
fn spanish_month(token: &str) -> Option<u32> {
    const MONTHS: [(&str, &str); 12] = [
        ("ene", "enero"),
        ("feb", "febrero"),
        ("mar", "marzo"),
        ("abr", "abril"),
        ("may", "mayo"),
        ("jun", "junio"),
        ("jul", "julio"),
        ("ago", "agosto"),
        ("sep", "septiembre"),
        ("oct", "octubre"),
        ("nov", "noviembre"),
        ("dic", "diciembre"),
    ];
    let token = token.trim_end_matches('.').to_lowercase();
    match token.as_str() {
        "sept" | "set" | "setiembre" => return Some(9),
        _ => {}
    }
    MONTHS
        .iter()
        .position(|&(short, long)| token == short || token == long)
        .map(|index| index as u32 + 1)
}

/// `HH:MM`, `HH:MM:SS`, `HH:MM:SS.fff`, optionally followed by `AM`/`PM` (`a. m.` too);
/// empty → midnight.
fn parse_time(time: &str) -> Option<NaiveTime> {
    let time = time.trim();
    if time.is_empty() {
        return NaiveTime::from_hms_opt(0, 0, 0);
    }
    let split = time.find(|c: char| c.is_alphabetic()).unwrap_or(time.len());
    let (clock, meridiem) = time.split_at(split);
    let meridiem: String = meridiem
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .flat_map(char::to_lowercase)
        .collect();

    let mut parts = clock.trim().split(':');
    let mut hour = number(parts.next()?, 1, 2)?;
    let minute = number(parts.next()?, 2, 2)?;
    let (second, milli) = match parts.next() {
        None => (0, 0),
        Some(seconds) => {
            let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
            let second = number(whole, 2, 2)?;
            if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
                return None;
            }
            let milli = format!("{fraction:0<3}")[..3].parse::<u32>().ok()?;
            (second, milli)
        }
    };
    if parts.next().is_some() {
        return None;
    }
    match meridiem.as_str() {
        "" => {}
        "am" | "pm" => {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour %= 12;
            if meridiem == "pm" {
                hour += 12;
            }
        }
        _ => return None,
    }
    NaiveTime::from_hms_milli_opt(hour, minute, second, milli)
}

/// A run of `min..=max` ASCII digits, as a number.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    if (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// True for `1`, `12`, `123`, `1.234`, `12.345.678`: digits grouped by thousands with dots.
fn is_dot_grouped(text: &str) -> bool {
    let mut groups = text.split('.');
    let first_ok = groups
        .next()
        .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
    first_ok && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Colombian money (`$ 31.500.000,00`, `-1.000,50`) or plain (`31500000`, `31500000.00`)
/// → `31500000`, `-1000.5`: no grouping, `.` decimals only when not zero.
fn convert_money(value: &str) -> Option<String> {
    let mut text: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let mut negative = false;
    if text.len() >= 2 && text.starts_with('(') && text.ends_with(')') {
        negative = true;
        text = text[1..text.len() - 1].to_owned();
    }
    let mut body = text.as_str();
    let mut seen_sign = negative;
    let mut seen_currency = false;
    loop {
        if !seen_currency && let Some(rest) = body.strip_prefix('$') {
            seen_currency = true;
            body = rest;
        } else if !seen_sign && let Some(rest) = body.strip_prefix(['-', '+']) {
            seen_sign = true;
            negative = body.starts_with('-');
            body = rest;
        } else {
            break;
        }
    }

    let (integer, fraction) = if let Some((integer, fraction)) = body.split_once(',') {
        if !(is_digits(integer) || is_dot_grouped(integer) || integer.is_empty())
            || !is_digits(fraction)
        {
            return None;
        }
        (integer.replace('.', ""), fraction.to_owned())
    } else if body.contains('.') {
        if is_dot_grouped(body) {
            (body.replace('.', ""), String::new())
        } else {
            // A single dot that is not a thousands separator is a decimal point (`31500000.00`).
            let (integer, fraction) = body.split_once('.')?;
            if !is_digits(integer) || !is_digits(fraction) {
                return None;
            }
            (integer.to_owned(), fraction.to_owned())
        }
    } else if is_digits(body) {
        (body.to_owned(), String::new())
    } else {
        return None;
    };

    let integer = integer.trim_start_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let fraction = fraction.trim_end_matches('0');
    let mut out = String::with_capacity(integer.len() + fraction.len() + 2);
    if negative && (integer != "0" || !fraction.is_empty()) {
        out.push('-');
    }
    out.push_str(integer);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    Some(out)
}

/// A whole number, possibly written by a spreadsheet as `12,00` or `1.234`.
fn convert_integer(value: &str) -> Option<String> {
    convert_money(value).filter(|number| !number.contains('.'))
}

/// An identifier a spreadsheet turned into a number (`890.480.184,00`, `890480184,00`,
/// `890.480.184`) → its digits; anything else (`No Definido`, `21870623-7`) as it is.
fn convert_identifier(value: &str) -> String {
    let (integer, fraction) = match value.split_once(',') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (value, None),
    };
    if let Some(fraction) = fraction
        && (fraction.is_empty() || !fraction.bytes().all(|b| b == b'0'))
    {
        return value.to_owned();
    }
    if is_digits(integer) || is_dot_grouped(integer) {
        integer.replace('.', "")
    } else {
        value.to_owned()
    }
}

/// A cell as text: UTF-8 if it is, otherwise Windows-1252 (spreadsheets on Windows).
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0,
    }
}

/// Reads from the start of the file until the end of the first line (or EOF, or
/// [`HEADER_SNIFF_LIMIT`]); the bytes are replayed to the CSV parser afterwards.
fn read_first_line<R: Read>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 8192];
    while buffer.len() < HEADER_SNIFF_LIMIT {
        let read = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        buffer.extend_from_slice(&chunk[..read]);
        // Stop once the first line end is known, telling CR from CRLF.
        if let Some(end) = buffer.iter().position(|&b| b == b'\n' || b == b'\r')
            && (buffer[end] == b'\n' || end + 1 < buffer.len())
        {
            break;
        }
    }
    Ok(buffer)
}

/// True when the first line ends with a CR that no LF follows.
fn ends_with_lone_cr(bytes: &[u8]) -> bool {
    match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
        Some(end) => bytes[end] == b'\r' && bytes.get(end + 1).is_some_and(|&b| b != b'\n'),
        None => false,
    }
}

fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == b'\n' || b == b'\r').unwrap_or(bytes.len());
    &bytes[..end]
}

/// The delimiter the header line uses most outside quotes: `,` (the default), `;` or tab.
fn sniff_delimiter(line: &[u8]) -> u8 {
    let candidates = [b',', b';', b'\t'];
    let mut counts = [0_usize; 3];
    let mut quoted = false;
    for &byte in line {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(index) = candidates.iter().position(|&c| c == byte) {
            counts[index] += 1;
        }
    }
    let mut best = 0;
    for index in 1..candidates.len() {
        if counts[index] > counts[best] {
            best = index;
        }
    }
    candidates[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../examples/secop/contracts.portal-export.20.csv");

    /// Every key of the SODA JSON sample (`contracts.jbjy-vk9h.1000.jsonl`).
    const JSONL_KEYS: [&str; 87] = [
        "nombre_entidad",
        "nit_entidad",
        "departamento",
        "ciudad",
        "localizaci_n",
        "orden",
        "sector",
        "rama",
        "entidad_centralizada",
        "proceso_de_compra",
        "id_contrato",
        "referencia_del_contrato",
        "estado_contrato",
        "codigo_de_categoria_principal",
        "descripcion_del_proceso",
        "tipo_de_contrato",
        "modalidad_de_contratacion",
        "justificacion_modalidad_de",
        "fecha_de_inicio_del_contrato",
        "fecha_de_fin_del_contrato",
        "condiciones_de_entrega",
        "tipodocproveedor",
        "documento_proveedor",
        "proveedor_adjudicado",
        "es_grupo",
        "es_pyme",
        "habilita_pago_adelantado",
        "liquidaci_n",
        "obligaci_n_ambiental",
        "obligaciones_postconsumo",
        "reversion",
        "origen_de_los_recursos",
        "destino_gasto",
        "valor_del_contrato",
        "valor_de_pago_adelantado",
        "valor_facturado",
        "valor_pendiente_de_pago",
        "valor_pagado",
        "valor_amortizado",
        "valor_pendiente_de",
        "valor_pendiente_de_ejecucion",
        "estado_bpin",
        "c_digo_bpin",
        "anno_bpin",
        "saldo_cdp",
        "saldo_vigencia",
        "espostconflicto",
        "dias_adicionados",
        "puntos_del_acuerdo",
        "pilares_del_acuerdo",
        "urlproceso",
        "nombre_representante_legal",
        "nacionalidad_representante_legal",
        "domicilio_representante_legal",
        "tipo_de_identificaci_n_representante_legal",
        "identificaci_n_representante_legal",
        "g_nero_representante_legal",
        "presupuesto_general_de_la_nacion_pgn",
        "sistema_general_de_participaciones",
        "sistema_general_de_regal_as",
        "recursos_propios_alcald_as_gobernaciones_y_resguardos_ind_genas_",
        "recursos_de_credito",
        "recursos_propios",
        "codigo_entidad",
        "codigo_proveedor",
        "objeto_del_contrato",
        "duraci_n_del_contrato",
        "nombre_del_banco",
        "tipo_de_cuenta",
        "n_mero_de_cuenta",
        "el_contrato_puede_ser_prorrogado",
        "nombre_ordenador_del_gasto",
        "tipo_de_documento_ordenador_del_gasto",
        "n_mero_de_documento_ordenador_del_gasto",
        "nombre_supervisor",
        "tipo_de_documento_supervisor",
        "n_mero_de_documento_supervisor",
        "nombre_ordenador_de_pago",
        "tipo_de_documento_ordenador_de_pago",
        "n_mero_de_documento_ordenador_de_pago",
        "documentos_tipo",
        "descripcion_documentos_tipo",
        "fecha_de_firma",
        "ultima_actualizacion",
        "fecha_de_notificaci_n_de_prorrogaci_n",
        "fecha_inicio_liquidacion",
        "fecha_fin_liquidacion",
    ];

    fn rows(input: &[u8]) -> Vec<CsvRow> {
        PortalCsvReader::new(input).expect("header is readable").collect()
    }

    fn ok(row: &CsvRow) -> &Map<String, Value> {
        match &row.result {
            Ok(object) => object,
            Err(reason) => panic!("row at line {} rejected: {reason}", row.line),
        }
    }

    fn text<'a>(object: &'a Map<String, Value>, field: &str) -> &'a str {
        object
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{field} missing or not a string in {object:?}"))
    }

    fn sample_headers() -> Vec<String> {
        let mut reader = csv::Reader::from_reader(SAMPLE.as_bytes());
        reader.headers().expect("sample header").iter().map(str::to_owned).collect()
    }

    #[test]
    fn the_real_sample_yields_twenty_valid_rows_with_their_starting_lines() {
        let rows = rows(SAMPLE.as_bytes());
        assert_eq!(rows.len(), 20);
        for row in &rows {
            ok(row);
        }
        let lines: Vec<u64> = rows.iter().map(|row| row.line).collect();
        assert_eq!(
            lines,
            [2, 7, 10, 13, 14, 17, 18, 21, 24, 37, 42, 49, 52, 55, 60, 61, 62, 65, 68, 71]
        );
    }

    #[test]
    fn the_first_sample_row_has_the_soda_shape() {
        let rows = rows(SAMPLE.as_bytes());
        let first = ok(&rows[0]);
        assert_eq!(text(first, "id_contrato"), "CO1.PCCNTR.3283378");
        assert_eq!(text(first, "nit_entidad"), "890480184");
        assert_eq!(text(first, "codigo_entidad"), "703301051");
        assert_eq!(text(first, "fecha_de_firma"), "2022-01-19T00:00:00.000");
        assert_eq!(text(first, "fecha_de_inicio_del_contrato"), "2022-01-21T00:00:00.000");
        assert_eq!(text(first, "fecha_de_fin_del_contrato"), "2022-08-20T00:00:00.000");
        assert_eq!(text(first, "ultima_actualizacion"), "2023-08-09T00:00:00.000");
        assert_eq!(text(first, "valor_del_contrato"), "31500000");
        assert_eq!(text(first, "valor_del_contrato_2"), "31500000");
        assert_eq!(text(first, "valor_pagado"), "31500000");
        assert_eq!(text(first, "valor_pendiente_de"), "0");
        assert_eq!(text(first, "saldo_cdp"), "647202577");
        assert_eq!(
            text(first, "recursos_propios_alcald_as_gobernaciones_y_resguardos_ind_genas_"),
            "31500000"
        );
        assert_eq!(text(first, "dias_adicionados"), "0");
        assert_eq!(text(first, "documento_proveedor"), "22399433");
        assert_eq!(text(first, "liquidaci_n"), "No");
        assert_eq!(text(first, "c_digo_bpin"), "No Definido");
        assert_eq!(text(first, "localizaci_n"), "Colombia,  Bolívar ,  Cartagena");
        assert!(text(first, "objeto_del_contrato").contains("SERVICIOS\nPROFESIONALES"));
        // Empty cells are omitted, as the API omits nulls.
        assert!(!first.contains_key("nombre_entidad"));
        assert!(!first.contains_key("fecha_inicio_liquidacion"));
        assert!(!first.contains_key("fecha_fin_liquidacion"));
        let url = first["urlproceso"].as_object().expect("urlproceso is an object");
        assert_eq!(url.len(), 1);
        assert!(
            url["url"]
                .as_str()
                .expect("url is a string")
                .starts_with("https://community.secop.gov.co/Public/Tendering/OpportunityDetail/Index?noticeUID=CO1.NTC.2596689")
        );

        let second = ok(&rows[1]);
        assert_eq!(text(second, "id_contrato"), "CO1.PCCNTR.3997235");
        assert_eq!(text(second, "fecha_de_firma"), "2022-09-07T00:00:00.000");
        assert_eq!(text(second, "valor_del_contrato"), "8360000");
        assert_eq!(text(second, "ultima_actualizacion"), "2022-11-11T00:00:00.000");
        let ninth = ok(&rows[8]);
        assert_eq!(text(ninth, "valor_del_contrato"), "398000000");
        assert_eq!(text(ninth, "recursos_de_credito"), "398000000");
    }

    #[test]
    fn every_sample_value_is_a_string_under_a_dataset_field_except_the_url_object() {
        for row in rows(SAMPLE.as_bytes()) {
            for (field, value) in ok(&row) {
                assert!(
                    JSONL_KEYS.contains(&field.as_str()) || field == "valor_del_contrato_2",
                    "unexpected field {field}"
                );
                if field == "urlproceso" {
                    assert!(value.is_object());
                } else {
                    assert!(value.is_string(), "{field} is {value:?}");
                }
            }
        }
    }

    #[test]
    fn a_corrupt_copy_keeps_the_good_rows_and_names_line_and_reason_of_the_bad_ones() {
        let mut lines: Vec<String> = SAMPLE.split('\n').map(str::to_owned).collect();
        // The record starting on line 13 is one physical line: keep only its first 12 fields.
        let mut parsed =
            csv::ReaderBuilder::new().has_headers(false).from_reader(lines[12].as_bytes());
        let record = parsed.records().next().expect("a record").expect("valid record");
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        writer.write_record(record.iter().take(12)).expect("write record");
        let truncated = String::from_utf8(writer.into_inner().expect("flush")).expect("utf-8");
        lines[12] = truncated.trim_end().to_owned();
        // The record starting on line 14 (lines 14 to 16) gets an impossible signature date.
        let dated = (13..16)
            .find(|&index| lines[index].contains(",6/06/2025,"))
            .expect("the signature date of CO1.PCCNTR.7956640");
        lines[dated] = lines[dated].replacen(",6/06/2025,", ",13/45/2025,", 1);
        let corrupt = lines.join("\n");

        let rows = rows(corrupt.as_bytes());
        assert_eq!(rows.len(), 20, "iteration continues after bad rows");
        let bad: Vec<&CsvRow> = rows.iter().filter(|row| row.result.is_err()).collect();
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].line, 13);
        assert_eq!(bad[0].result.as_ref().unwrap_err(), "line 13: expected 70 fields, found 12");
        assert_eq!(bad[1].line, 14);
        let reason = bad[1].result.as_ref().unwrap_err();
        assert!(reason.starts_with("line 14: "), "{reason}");
        assert!(reason.contains("`Fecha de Firma`"), "{reason}");
        assert!(reason.contains("fecha_de_firma"), "{reason}");
        assert!(reason.contains("13/45/2025"), "{reason}");

        let good: Vec<&str> = rows
            .iter()
            .filter_map(|row| row.result.as_ref().ok())
            .map(|object| text(object, "id_contrato"))
            .collect();
        assert_eq!(good.len(), 18);
        assert_eq!(good[0], "CO1.PCCNTR.3283378");
        assert_eq!(good[3], "CO1.PCCNTR.7297705");
        assert_eq!(good[17], "CO1.PCCNTR.7365724");
    }

    #[test]
    fn every_sample_header_maps_to_a_field_of_the_soda_sample() {
        let headers = sample_headers();
        assert_eq!(headers.len(), 70);
        for header in &headers {
            let field = api_field_name(header);
            if header == "Valor del Contrato 2" {
                assert_eq!(field, "valor_del_contrato_2");
            } else {
                assert!(
                    JSONL_KEYS.contains(&field.as_str()),
                    "{header} → {field} is not a SODA field"
                );
            }
        }
    }

    #[test]
    fn the_alias_table_covers_exactly_the_dataset_fields_and_api_names_map_to_themselves() {
        let mut aliased: Vec<&str> = ALIASES.iter().map(|&(_, api)| api).collect();
        aliased.sort_unstable();
        aliased.dedup();
        let mut expected = JSONL_KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(aliased, expected);
        for key in JSONL_KEYS {
            assert_eq!(api_field_name(key), key);
        }
        for &(human, api) in ALIASES {
            assert_eq!(api_field_name(human), api, "{human}");
            let clashes: Vec<&str> = ALIASES
                .iter()
                .filter(|&&(other, _)| normalise_header(other) == normalise_header(human))
                .map(|&(_, other_api)| other_api)
                .filter(|&other_api| other_api != api)
                .collect();
            assert!(clashes.is_empty(), "{human} clashes with {clashes:?}");
        }
    }

    #[test]
    fn headers_map_to_socrata_names_whatever_their_accents_case_and_spacing() {
        let cases = [
            ("Justificacion Modalidad de Contratacion", "justificacion_modalidad_de"),
            ("Valor Pendiente de Amortizacion", "valor_pendiente_de"),
            ("Liquidación", "liquidaci_n"),
            ("Liquidacion", "liquidaci_n"),
            ("  LIQUIDACIÓN ", "liquidaci_n"),
            ("Código BPIN", "c_digo_bpin"),
            ("Codigo  BPIN", "c_digo_bpin"),
            ("URLProceso", "urlproceso"),
            ("Presupuesto General de la Nacion – PGN", "presupuesto_general_de_la_nacion_pgn"),
            ("Presupuesto General de la Nación - PGN", "presupuesto_general_de_la_nacion_pgn"),
            (
                "Recursos Propios (Alcaldías, Gobernaciones y Resguardos Indígenas)",
                "recursos_propios_alcald_as_gobernaciones_y_resguardos_ind_genas_",
            ),
            ("Género Representante Legal", "g_nero_representante_legal"),
            ("Identificación Representante Legal", "identificaci_n_representante_legal"),
            ("Sistema General de Regalías", "sistema_general_de_regal_as"),
            ("Dias adicionados", "dias_adicionados"),
            ("Días Adicionados", "dias_adicionados"),
            ("EsPostConflicto", "espostconflicto"),
            ("TipoDocProveedor", "tipodocproveedor"),
            ("ID Contrato", "id_contrato"),
            ("\u{feff}ID Contrato", "id_contrato"),
            ("id_contrato", "id_contrato"),
            ("Año BPIN", "anno_bpin"),
            ("Valor del Contrato 2", "valor_del_contrato_2"),
            ("Fecha de Inicio de Ejecución", "fecha_de_inicio_de_ejecuci_n"),
            ("  Otra   Columna (nueva) ", "otra_columna_nueva"),
        ];
        for (header, field) in cases {
            assert_eq!(api_field_name(header), field, "{header:?}");
        }
    }

    #[test]
    fn dates_are_accepted_in_the_spreadsheet_iso_and_spanish_forms() {
        let cases = [
            ("01/19/2022", "2022-01-19T00:00:00.000"),
            ("9/07/2022", "2022-09-07T00:00:00.000"),
            ("1/2/2022", "2022-01-02T00:00:00.000"),
            ("12/31/2024 12:00:00 AM", "2024-12-31T00:00:00.000"),
            ("12/31/2024 12:30:15 PM", "2024-12-31T12:30:15.000"),
            ("12/31/2024 01:05 PM", "2024-12-31T13:05:00.000"),
            ("12/31/2024 11:59:59 p. m.", "2024-12-31T23:59:59.000"),
            ("12/31/2024 17:45:00", "2024-12-31T17:45:00.000"),
            ("2023-09-18", "2023-09-18T00:00:00.000"),
            ("2023-09-18T00:00:00.000", "2023-09-18T00:00:00.000"),
            ("2023-09-18T08:15:30", "2023-09-18T08:15:30.000"),
            ("2023-09-18T08:15:30.5", "2023-09-18T08:15:30.500"),
            ("2023-09-18 08:15:30.123456", "2023-09-18T08:15:30.123"),
            ("2023 ago 09 12:00:00 AM", "2023-08-09T00:00:00.000"),
            ("2024 dic 20 12:00:00 AM", "2024-12-20T00:00:00.000"),
            ("2021 sept 3 03:00:00 PM", "2021-09-03T15:00:00.000"),
            ("2021 Ene. 10", "2021-01-10T00:00:00.000"),
            ("2020 sep 06", "2020-09-06T00:00:00.000"),
            ("  2022 nov 11 12:00:00 AM  ", "2022-11-11T00:00:00.000"),
        ];
        for (input, expected) in cases {
            assert_eq!(convert_date(input).as_deref(), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn impossible_or_unknown_dates_are_rejected() {
        for input in [
            "13/45/2025",
            "02/30/2024",
            "19/01/2022",
            "01/19/22",
            "2023 agt 09",
            "2023-13-01",
            "2023-09-18T25:00:00",
            "12/31/2024 13:00 PM",
            "12/31/2024 00:00 AM",
            "12/31/2024 10:00 XM",
            "No Definido",
            "ayer",
            "2023-09-18T00:00:00 extra",
        ] {
            assert_eq!(convert_date(input), None, "{input:?}");
        }
    }

    #[test]
    fn colombian_and_plain_money_become_plain_digits() {
        let cases = [
            ("$ 31.500.000,00", "31500000"),
            ("$ 0,00", "0"),
            ("$ 6.480.207.207,00", "6480207207"),
            ("31500000", "31500000"),
            ("31500000.00", "31500000"),
            ("31500000.50", "31500000.5"),
            ("-1.000,50", "-1000.5"),
            ("$ -1.000,50", "-1000.5"),
            ("-$ 1.000,50", "-1000.5"),
            ("(1.000,50)", "-1000.5"),
            ("1.500", "1500"),
            ("1.234.567", "1234567"),
            ("0012", "12"),
            ("-0,00", "0"),
            ("1234,5", "1234.5"),
            ("\u{a0}$\u{a0}2.200.000,00\u{a0}", "2200000"),
        ];
        for (input, expected) in cases {
            assert_eq!(convert_money(input).as_deref(), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn broken_or_ambiguous_money_is_rejected() {
        for input in [
            "2,02E+12",
            "1,2,3",
            "1.00.000",
            "1.000,00.5",
            "abc",
            "$",
            "-",
            "12 USD",
            "1.000,",
            "--5",
            "No Definido",
        ] {
            assert_eq!(convert_money(input), None, "{input:?}");
        }
    }

    #[test]
    fn identifiers_formatted_as_numbers_lose_the_formatting_and_others_are_kept() {
        let cases = [
            ("890.480.184,00", "890480184"),
            ("890480184,00", "890480184"),
            ("890.480.184", "890480184"),
            ("22399433", "22399433"),
            ("21870623-7", "21870623-7"),
            ("890.480.184-1", "890.480.184-1"),
            ("35602491/*", "35602491/*"),
            ("123,45", "123,45"),
            ("No Definido", "No Definido"),
        ];
        for (input, expected) in cases {
            assert_eq!(convert_identifier(input), expected, "{input:?}");
        }
    }

    #[test]
    fn whole_numbers_accept_spreadsheet_decimals_but_not_fractions() {
        assert_eq!(convert_integer("12").as_deref(), Some("12"));
        assert_eq!(convert_integer("12,00").as_deref(), Some("12"));
        assert_eq!(convert_integer("12.00").as_deref(), Some("12"));
        assert_eq!(convert_integer("12,5"), None);
        assert_eq!(convert_integer("doce"), None);
    }

    #[test]
    fn a_byte_order_mark_semicolons_and_crlf_are_tolerated() {
        let input = "\u{feff}ID Contrato;Fecha de Firma;Valor del Contrato;Dias adicionados;Objeto del Contrato\r\n\
                     CO1.PCCNTR.1;01/19/2022;\"$ 1.000,50\";3,00;\"Obra\r\nfase 1\"\r\n\
                     \r\n\
                     CO1.PCCNTR.2;;;;\r\n";
        let rows = rows(input.as_bytes());
        assert_eq!(rows.len(), 2);
        let first = ok(&rows[0]);
        assert_eq!(rows[0].line, 2);
        assert_eq!(text(first, "id_contrato"), "CO1.PCCNTR.1");
        assert_eq!(text(first, "fecha_de_firma"), "2022-01-19T00:00:00.000");
        assert_eq!(text(first, "valor_del_contrato"), "1000.5");
        assert_eq!(text(first, "dias_adicionados"), "3");
        assert_eq!(text(first, "objeto_del_contrato"), "Obra\r\nfase 1");
        let second = ok(&rows[1]);
        assert_eq!(second.len(), 1);
        assert_eq!(rows[1].line, 5);
    }

    #[test]
    fn old_mac_files_ending_lines_with_a_lone_cr_are_read_and_numbered_by_record() {
        let input = "ID Contrato,Valor del Contrato\rCO1.PCCNTR.1,\"$ 5,00\"\rCO1.PCCNTR.2\r";
        let rows = rows(input.as_bytes());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(text(ok(&rows[0]), "valor_del_contrato"), "5");
        assert_eq!(rows[1].result, Err("line 3: expected 2 fields, found 1".to_owned()));
    }

    #[test]
    fn windows_1252_cells_are_decoded() {
        let mut input = b"ID Contrato,Localizaci\xf3n,Objeto del Contrato\n".to_vec();
        input
            .extend_from_slice(b"CO1.PCCNTR.9,\"Colombia, Bol\xedvar\",Obra \x96 fase \x93A\x94\n");
        let rows = rows(&input);
        let object = ok(&rows[0]);
        assert_eq!(text(object, "localizaci_n"), "Colombia, Bolívar");
        assert_eq!(text(object, "objeto_del_contrato"), "Obra – fase “A”");
    }

    #[test]
    fn windows_1252_bytes_without_a_character_stay_c1_controls_and_the_rest_is_latin_1() {
        // The byte 0xFF makes the cell invalid UTF-8, so it is read as Windows-1252.
        let undefined = decode(b"\x81\x8d\x8f\x90\x9d\xff");
        assert_eq!(undefined, "\u{81}\u{8d}\u{8f}\u{90}\u{9d}\u{ff}");
        let latin_1: Vec<u8> = (0..=0xFF_u8).filter(|b| !(0x80..=0x9F).contains(b)).collect();
        let expected: String = latin_1.iter().map(|&b| char::from(b)).collect();
        assert_eq!(decode(&latin_1), expected);
        assert_eq!(decode(b"\x80\x9f\xff"), "\u{20AC}\u{0178}\u{ff}");
    }

    #[test]
    fn blank_spreadsheet_rows_are_skipped_and_rows_without_an_id_are_rejected() {
        let input = "ID Contrato,Estado Contrato\nCO1.PCCNTR.1,Cerrado\n,,\n , \n,Modificado\n";
        let rows = rows(input.as_bytes());
        assert_eq!(rows.len(), 2);
        ok(&rows[0]);
        assert_eq!(rows[1].line, 5);
        assert_eq!(
            rows[1].result,
            Err("line 5: column `ID Contrato` (id_contrato) is empty".to_owned())
        );
    }

    #[test]
    fn several_problems_in_one_row_are_all_reported() {
        let input = "ID Contrato,Valor del Contrato,Fecha de Fin del Contrato\n\
                     CO1.PCCNTR.1,2,02E+12,31/12/2024\n\
                     CO1.PCCNTR.2,\"2,02E+12\",31/12/2024\n";
        let rows = rows(input.as_bytes());
        assert_eq!(rows[0].result, Err("line 2: expected 3 fields, found 4".to_owned()));
        assert_eq!(
            rows[1].result,
            Err("line 3: column `Valor del Contrato` (valor_del_contrato): unparseable amount \"2,02E+12\"; \
                 column `Fecha de Fin del Contrato` (fecha_de_fin_del_contrato): unparseable date \"31/12/2024\""
                .to_owned())
        );
    }

    #[test]
    fn a_file_that_is_empty_or_has_no_id_column_or_duplicate_columns_is_refused() {
        assert!(matches!(PortalCsvReader::new(&b""[..]), Err(CsvError::NoHeader)));
        assert!(matches!(PortalCsvReader::new(&b"\xEF\xBB\xBF"[..]), Err(CsvError::NoHeader)));
        match PortalCsvReader::new(&b"Nombre Entidad,Valor del Contrato\nX,1\n"[..]) {
            Err(CsvError::MissingIdColumn { found }) => {
                assert_eq!(found, "Nombre Entidad, Valor del Contrato");
            }
            other => panic!("unexpected {:?}", other.err()),
        }
        match PortalCsvReader::new(&b"ID Contrato,Liquidacion,liquidaci_n\n"[..]) {
            Err(CsvError::DuplicateColumn { first, second, field }) => {
                assert_eq!(
                    (first.as_str(), second.as_str(), field.as_str()),
                    ("Liquidacion", "liquidaci_n", "liquidaci_n")
                );
            }
            other => panic!("unexpected {:?}", other.err()),
        }
    }

    #[test]
    fn a_header_only_file_yields_no_rows_and_api_form_headers_are_accepted() {
        assert!(rows(b"id_contrato,valor_del_contrato\n").is_empty());
        let rows =
            rows(b"id_contrato,valor_del_contrato,urlproceso\nCO1.PCCNTR.1,73451015,https://x\n");
        let object = ok(&rows[0]);
        assert_eq!(text(object, "valor_del_contrato"), "73451015");
        assert_eq!(object["urlproceso"], serde_json::json!({"url": "https://x"}));
    }

    /// Serves `data`, then fails.
    struct FailingAfter {
        data: Cursor<Vec<u8>>,
    }

    impl Read for FailingAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.data.read(buf)? {
                0 => Err(io::Error::other("disk went away")),
                read => Ok(read),
            }
        }
    }

    #[test]
    fn a_read_failure_ends_the_iteration_after_one_error_row() {
        let reader = FailingAfter {
            data: Cursor::new(b"ID Contrato\nCO1.PCCNTR.1\nCO1.PCCNTR.2\nCO1.PCC".to_vec()),
        };
        let rows: Vec<CsvRow> = PortalCsvReader::new(reader).expect("header").collect();
        assert_eq!(rows.len(), 3);
        ok(&rows[0]);
        ok(&rows[1]);
        let reason = rows[2].result.as_ref().unwrap_err();
        assert!(reason.contains("disk went away"), "{reason}");
        assert!(reason.starts_with("line 4: "), "{reason}");
    }

    /// An endless export: proves rows come out before the input ends.
    struct Endless {
        pending: Vec<u8>,
        next_id: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() {
                self.pending = format!(
                    "CO1.PCCNTR.{},\"$ {}.000,00\",01/19/2022\n",
                    self.next_id,
                    self.next_id % 1000
                )
                .into_bytes();
                self.next_id += 1;
            }
            let read = buf.len().min(self.pending.len());
            buf[..read].copy_from_slice(&self.pending[..read]);
            self.pending.drain(..read);
            Ok(read)
        }
    }

    #[test]
    fn rows_are_streamed_without_reading_the_whole_input() {
        let endless = Endless {
            pending: b"ID Contrato,Valor del Contrato,Fecha de Firma\n".to_vec(),
            next_id: 1,
        };
        let reader = PortalCsvReader::new(endless).expect("header");
        let rows: Vec<CsvRow> = reader.skip(999).take(2).collect();
        assert_eq!(rows[0].line, 1001);
        assert_eq!(text(ok(&rows[0]), "valor_del_contrato"), "0");
        assert_eq!(text(ok(&rows[1]), "valor_del_contrato"), "1000");
        assert_eq!(text(ok(&rows[1]), "id_contrato"), "CO1.PCCNTR.1001");
    }
}
