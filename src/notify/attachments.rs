//! Notify, attachments: every row of a digest as an Excel workbook (rust_xlsxwriter, rows
//! streamed to a temporary file, so memory stays flat) and/or a CSV with a configurable
//! separator and ISO dates. Written on a blocking thread fed with chunks of rows, so a
//! digest of 200,000 rows is never in memory at once.

use anyhow::Context;
use rust_xlsxwriter::{Format, FormatAlign, Url, Workbook};
use tokio::sync::mpsc;

use crate::config::AttachmentFormat;
use crate::config::templates::DigestRow;

/// Excel keeps at most this many hyperlinks in a worksheet; further rows show the address.
const MAX_LINKS: u64 = 65_530;
/// Rows of data an Excel worksheet holds (1,048,576 less the header and the note).
pub const MAX_ROWS: u64 = 1_048_574;
/// Excel refuses longer link addresses.
const MAX_URL: usize = 2_079;
/// Excel holds at most 32,767 UTF-16 units in a cell.
const MAX_CELL: usize = 32_767;

/// `text` cut to what a cell holds, with an ellipsis when cut.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_CELL {
        // UTF-8 bytes ≥ UTF-16 units: short enough.
        return text.into();
    }
    let mut units = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        units += c.len_utf16();
        if units > MAX_CELL - 1 {
            break;
        }
        end = i + c.len_utf8();
    }
    format!("{}…", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_holds_what_excel_holds_and_only_web_addresses_are_links() {
        assert_eq!(cell("corto"), "corto");
        let long = "ñ".repeat(40_000);
        let cut = cell(&long);
        assert_eq!(cut.encode_utf16().count(), MAX_CELL);
        assert!(cut.ends_with('…'));
        assert!(linkable("https://community.secop.gov.co/x"));
        assert!(!linkable("www.secop.gov.co/x"));
        assert!(!linkable(&format!("https://x/{}", "a".repeat(3_000))));
    }
}

/// Whether Excel takes `url` as a link: a web address of a length it holds.
fn linkable(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && url.len() <= MAX_URL
}

const HEADERS: [(&str, f64); 18] = [
    ("Nivel", 10.0),
    ("Hallazgo", 30.0),
    ("Etapa", 16.0),
    ("Contrato", 24.0),
    ("ID del contrato", 20.0),
    ("Entidad", 32.0),
    ("Objeto", 50.0),
    ("Supervisor", 26.0),
    ("Estado en SECOP II", 16.0),
    ("Fecha de fin", 12.0),
    ("Desde", 12.0),
    ("Plazo", 12.0),
    ("Días hábiles restantes", 12.0),
    ("Etapa de liquidación", 22.0),
    ("Documentos faltantes", 40.0),
    ("Valor pendiente de pago", 18.0),
    ("Razones", 80.0),
    ("Enlace SECOP II", 40.0),
];

/// The files of one digest.
#[derive(Debug, Default)]
pub struct Files {
    pub xlsx: Option<Vec<u8>>,
    pub csv: Option<Vec<u8>>,
    /// Rows written to the files (fewer than the digest's when a limit cut them).
    pub rows: u64,
}

/// What to write and how much.
#[derive(Debug, Clone)]
pub struct Plan {
    pub format: AttachmentFormat,
    pub separator: u8,
    /// The digest's rows, all of them.
    pub total: u64,
    /// Write only this many rows (the most urgent), then a note saying how to get the rest.
    pub limit: Option<u64>,
    /// The note's text, when rows are left out.
    pub note: String,
}

/// Rows go in with [`Writer::write`]; [`Writer::finish`] gives the files.
pub struct Writer {
    tx: Option<mpsc::Sender<Vec<DigestRow>>>,
    handle: tokio::task::JoinHandle<anyhow::Result<Files>>,
}

impl Writer {
    pub fn start(plan: Plan) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Vec<DigestRow>>(2);
        let handle = tokio::task::spawn_blocking(move || {
            let mut out = Sinks::new(&plan)?;
            while let Some(rows) = rx.blocking_recv() {
                for r in &rows {
                    out.row(r, &plan)?;
                }
            }
            out.finish(&plan)
        });
        Writer { tx: Some(tx), handle }
    }

    pub async fn write(&mut self, rows: Vec<DigestRow>) -> anyhow::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(rows).await.is_ok(),
            None => false,
        };
        if !sent {
            // The writer stopped: its error is the one to report.
            self.tx = None;
            let handle =
                std::mem::replace(&mut self.handle, tokio::spawn(async { Ok(Files::default()) }));
            handle.await.context("the attachment writer stopped")??;
            anyhow::bail!("the attachment writer stopped");
        }
        Ok(())
    }

    pub async fn finish(mut self) -> anyhow::Result<Files> {
        drop(self.tx.take());
        self.handle.await.context("the attachment writer stopped")?
    }
}

struct Sinks {
    xlsx: Option<(Workbook, Formats)>,
    csv: Option<csv::Writer<Vec<u8>>>,
    written: u64,
    links: u64,
}

struct Formats {
    date: Format,
    money: Format,
    header: Format,
    note: Format,
}

impl Sinks {
    fn new(plan: &Plan) -> anyhow::Result<Sinks> {
        let xlsx = if plan.format.xlsx {
            let mut wb = Workbook::new();
            let formats = Formats {
                date: Format::new().set_num_format("yyyy-mm-dd").set_align(FormatAlign::Left),
                money: Format::new().set_num_format("\"$\" #,##0"),
                header: Format::new().set_bold().set_background_color(0xEEF2F7).set_text_wrap(),
                note: Format::new().set_bold().set_font_color(0xB42318),
            };
            let ws = wb.add_worksheet_with_constant_memory()?;
            ws.set_name("Hallazgos")?;
            for (col, (name, width)) in HEADERS.iter().enumerate() {
                ws.set_column_width(col as u16, *width)?;
                ws.write_string_with_format(0, col as u16, *name, &formats.header)?;
            }
            ws.set_freeze_panes(1, 0)?;
            Some((wb, formats))
        } else {
            None
        };
        let csv = if plan.format.csv {
            let mut w = csv::WriterBuilder::new()
                .delimiter(plan.separator)
                .terminator(csv::Terminator::CRLF)
                .flexible(true)
                // A BOM, so Excel reads the file as UTF-8.
                .from_writer("\u{feff}".as_bytes().to_vec());
            w.write_record(CSV_HEADERS)?;
            Some(w)
        } else {
            None
        };
        Ok(Sinks { xlsx, csv, written: 0, links: 0 })
    }

    fn full(&self, plan: &Plan) -> bool {
        self.written >= plan.limit.unwrap_or(u64::MAX).min(MAX_ROWS)
    }

    fn row(&mut self, r: &DigestRow, plan: &Plan) -> anyhow::Result<()> {
        if self.full(plan) {
            return Ok(());
        }
        let row = (self.written + 1) as u32;
        if let Some((wb, f)) = &mut self.xlsx {
            let ws = wb.worksheet_from_index(0)?;
            ws.write_string(row, 0, cell(&r.level_label))?;
            ws.write_string(row, 1, cell(&r.kind_label))?;
            ws.write_string(row, 2, cell(&r.stage))?;
            if self.links < MAX_LINKS && linkable(&r.url) {
                ws.write_url_with_text(row, 3, Url::new(r.url.as_str()), cell(&r.reference))?;
                self.links += 1;
            } else {
                ws.write_string(row, 3, cell(&r.reference))?;
            }
            ws.write_string(row, 4, cell(r.contract_id.as_str()))?;
            ws.write_string(row, 5, cell(r.entity.as_str()))?;
            ws.write_string(row, 6, cell(r.object.as_str()))?;
            ws.write_string(row, 7, cell(r.supervisor.as_str()))?;
            ws.write_string(row, 8, cell(r.state.as_str()))?;
            for (col, day) in [(9, r.dates.end), (10, r.dates.since), (11, r.dates.deadline)] {
                if let Some(day) = day {
                    ws.write_date_with_format(row, col, day, &f.date)?;
                }
            }
            ws.write_number(row, 12, r.business_days_left as f64)?;
            if let Some(step) = &r.step {
                ws.write_string(row, 13, cell(step))?;
            }
            if !r.missing.is_empty() {
                ws.write_string(row, 14, cell(&r.missing.join("; ")))?;
            }
            if let Some(c) = r.pending_centavos {
                ws.write_number_with_format(row, 15, c as f64 / 100.0, &f.money)?;
            }
            ws.write_string(row, 16, cell(&r.reasons.join(" | ")))?;
            ws.write_string(row, 17, cell(r.url.as_str()))?;
        }
        if let Some(w) = &mut self.csv {
            let iso = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
            w.write_record([
                r.level.as_str(),
                r.kind.as_str(),
                &r.stage,
                &r.reference,
                &r.contract_id,
                &r.entity,
                &r.object,
                &r.supervisor,
                &r.state,
                &iso(r.dates.end),
                &iso(r.dates.since),
                &iso(r.dates.deadline),
                &r.business_days_left.to_string(),
                r.step.as_deref().unwrap_or(""),
                &r.missing.join("; "),
                // Whole pesos, rounded as the workbook shows them.
                &r.pending_centavos
                    .map(|c| ((c + 50).div_euclid(100)).to_string())
                    .unwrap_or_default(),
                &r.reasons.join(" | "),
                &r.url,
            ])?;
        }
        self.written += 1;
        Ok(())
    }

    fn finish(self, plan: &Plan) -> anyhow::Result<Files> {
        let cut = self.written < plan.total;
        let last = self.written as u32;
        let xlsx = match self.xlsx {
            Some((mut wb, f)) => {
                let ws = wb.worksheet_from_index(0)?;
                if cut {
                    ws.write_string_with_format(last + 1, 0, plan.note.as_str(), &f.note)?;
                }
                ws.autofilter(0, 0, last.max(1), HEADERS.len() as u16 - 1)?;
                Some(wb.save_to_buffer()?)
            }
            None => None,
        };
        let csv = match self.csv {
            Some(mut w) => {
                if cut {
                    w.write_record([plan.note.as_str()])?;
                }
                Some(w.into_inner().map_err(|e| e.into_error())?)
            }
            None => None,
        };
        Ok(Files { xlsx, csv, rows: self.written })
    }
}

const CSV_HEADERS: [&str; 18] = [
    "nivel",
    "tipo",
    "etapa",
    "referencia",
    "id_contrato",
    "entidad",
    "objeto",
    "supervisor",
    "estado",
    "fecha_fin",
    "desde",
    "plazo",
    "dias_habiles_restantes",
    "etapa_liquidacion",
    "documentos_faltantes",
    "valor_pendiente_pesos",
    "razones",
    "enlace",
];
