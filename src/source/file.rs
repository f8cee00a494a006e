//! Source, file form: SECOP II exports on disk — SODA JSON (an array, or JSON Lines) and the
//! portal's human-header CSV — read on a blocking thread, streamed in pages.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::portal_csv::PortalCsvReader;
use super::{Page, PassPlan, RawRecord, Source, SourceError};
use crate::domain::Dataset;

/// Reads exports from the paths in `source.*_path`.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub contracts: Option<PathBuf>,
    pub documents: Option<PathBuf>,
    pub guarantees: Option<PathBuf>,
    pub page_size: usize,
}

impl FileSource {
    fn path(&self, dataset: Dataset) -> Option<&PathBuf> {
        match dataset {
            Dataset::Contracts => self.contracts.as_ref(),
            Dataset::Documents => self.documents.as_ref(),
            Dataset::Guarantees => self.guarantees.as_ref(),
        }
    }
}

impl Source for FileSource {
    fn name(&self) -> &'static str {
        "file"
    }

    fn has(&self, dataset: Dataset) -> bool {
        self.path(dataset).is_some()
    }

    /// An export is read whole: every pass is a full one.
    fn selective(&self) -> bool {
        false
    }

    async fn fingerprint(&self, dataset: Dataset, _plan: &PassPlan) -> Result<String, SourceError> {
        let Some(path) = self.path(dataset).cloned() else {
            return Err(SourceError::NotConfigured { dataset: dataset.name() });
        };
        tokio::task::spawn_blocking(move || file_fingerprint(&path)).await.map_err(|e| {
            SourceError::Io { path: String::new(), source: std::io::Error::other(e) }
        })?
    }

    fn pages(
        &self,
        dataset: Dataset,
        _plan: &PassPlan,
        resume_after: Option<String>,
    ) -> mpsc::Receiver<Result<Page, SourceError>> {
        // Two pages in flight: one being written, one read ahead.
        let (tx, rx) = mpsc::channel(2);
        let Some(path) = self.path(dataset).cloned() else {
            let error = SourceError::NotConfigured { dataset: dataset.name() };
            if tx.try_send(Err(error)).is_err() {
                tracing::debug!("the sync stopped before reading the error");
            }
            return rx;
        };
        let skip = resume_after.and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
        let page_size = self.page_size.max(1);
        tokio::task::spawn_blocking(move || {
            let mut pager =
                Pager { tx: &tx, page: Vec::with_capacity(page_size), page_size, seen: 0, skip };
            if let Err(e) = read_file(&path, &mut pager) {
                if tx.blocking_send(Err(e)).is_err() {
                    tracing::debug!("the sync stopped before reading the error");
                }
                return;
            }
            pager.finish();
        });
        rx
    }
}

/// Collects records into pages and sends them; the cursor is the number of records read.
struct Pager<'a> {
    tx: &'a mpsc::Sender<Result<Page, SourceError>>,
    page: Vec<RawRecord>,
    page_size: usize,
    seen: u64,
    /// Records already applied by an interrupted pass.
    skip: u64,
}

impl Pager<'_> {
    /// Adds a record; false when the receiver is gone and reading should stop.
    fn push(&mut self, record: RawRecord) -> bool {
        self.seen += 1;
        if self.seen <= self.skip {
            return true;
        }
        self.page.push(record);
        if self.page.len() >= self.page_size { self.flush() } else { true }
    }

    fn flush(&mut self) -> bool {
        if self.page.is_empty() {
            return true;
        }
        self.send(false)
    }

    /// Sends the last page (possibly empty), which marks the pass complete.
    fn finish(&mut self) {
        self.send(true);
    }

    fn send(&mut self, last: bool) -> bool {
        let records = std::mem::replace(&mut self.page, Vec::with_capacity(self.page_size));
        self.tx
            .blocking_send(Ok(Page { records, cursor: self.seen.to_string(), last, retries: 0 }))
            .is_ok()
    }
}

/// Size, modification time, and a hash of the first and last MiB: a file replaced, cut,
/// grown or edited has another one, and it costs two reads however large the file.
fn file_fingerprint(path: &Path) -> Result<String, SourceError> {
    use std::io::{Seek, SeekFrom};
    const SPAN: u64 = 1 << 20;
    let mut file = File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    let size = meta.len();
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = Vec::with_capacity(SPAN as usize);
    (&mut file).take(SPAN).read_to_end(&mut buf).map_err(io_err(path))?;
    hasher.update(&buf);
    if size > SPAN {
        buf.clear();
        file.seek(SeekFrom::Start(size.saturating_sub(SPAN).max(SPAN))).map_err(io_err(path))?;
        file.take(SPAN).read_to_end(&mut buf).map_err(io_err(path))?;
        hasher.update(&buf);
    }
    Ok(format!("file size={size} modified={modified} xxh3={:016x}", hasher.digest()))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io { path: path.display().to_string(), source }
}

fn read_file(path: &Path, pager: &mut Pager) -> Result<(), SourceError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let csv = PortalCsvReader::new(reader)
            .and_then(|csv| csv.require_rule_columns().map(|()| csv))
            .map_err(|e| SourceError::Format {
                path: path.display().to_string(),
                format: "CSV",
                message: e.to_string(),
            })?;
        for row in csv {
            let prefix = format!("line {}: ", row.line);
            let text = row.result.map(|map| serde_json::Value::Object(map).to_string()).map_err(
                |reason| reason.strip_prefix(&prefix).map(str::to_string).unwrap_or(reason),
            );
            if !pager.push(RawRecord { locator: format!("line {}", row.line), text, bytes: None }) {
                break;
            }
        }
        return Ok(());
    }
    // JSON: an array if the first significant byte is `[`, else one object per line.
    let first = loop {
        let buf = reader.fill_buf().map_err(io_err(path))?;
        match buf
            .iter()
            .position(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF)
        {
            Some(i) => {
                let b = buf[i];
                reader.consume(i);
                break Some(b);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => read_json_array(path, reader, pager),
        Some(b'{') => read_json_lines(path, reader, pager),
        // An HTML error page, a spreadsheet, a compressed file saved under the export's name:
        // reading it as records would only quarantine its lines and find every row gone.
        Some(b) => Err(SourceError::Format {
            path: path.display().to_string(),
            format: "JSON",
            message: format!(
                "it starts with {}, not with a record (`{{`) or an array of them (`[`){}",
                describe_byte(b),
                if b == b'<' { ": an HTML or XML page saved as the export?" } else { "" }
            ),
        }),
    }
}

fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() { format!("`{}`", b as char) } else { format!("the byte 0x{b:02x}") }
}

fn read_json_lines(
    path: &Path,
    mut reader: impl BufRead,
    pager: &mut Pager,
) -> Result<(), SourceError> {
    // Each line is read into a buffer sized like the previous one: one allocation per
    // record instead of a string grown byte by byte.
    let mut capacity = 4096;
    for n in 1.. {
        let mut buf = Vec::with_capacity(capacity);
        if reader.read_until(b'\n', &mut buf).map_err(io_err(path))? == 0 {
            break;
        }
        capacity = buf.len().next_power_of_two().max(256);
        // The last line of a complete file ends with a newline or is a whole record: one
        // cut short is a download that stopped, not a row to quarantine.
        if buf.last() != Some(&b'\n') && !is_whole_record(&buf) {
            return Err(SourceError::Format {
                path: path.display().to_string(),
                format: "JSON Lines",
                message: format!(
                    "it ends in a truncated record at line {n} ({} bytes without a newline)",
                    buf.len()
                ),
            });
        }
        let line = match String::from_utf8(buf) {
            Ok(line) => line,
            Err(e) => {
                let record = RawRecord {
                    locator: format!("line {n}"),
                    text: Err(format!("not UTF-8 text: {}", e.utf8_error())),
                    bytes: Some(e.into_bytes()),
                };
                if !pager.push(record) {
                    break;
                }
                continue;
            }
        };
        let trimmed = line.trim().trim_end_matches(',');
        if trimmed.is_empty() {
            continue;
        }
        // Most lines are clean but for the newline: hand them over without a copy.
        let text = if trimmed.len() + 1 == line.len() && line.ends_with('\n') {
            let mut line = line;
            line.pop();
            line
        } else {
            trimmed.to_string()
        };
        if !pager.push(RawRecord { locator: format!("line {n}"), text: Ok(text), bytes: None }) {
            break;
        }
    }
    Ok(())
}

/// Whether a line without a newline is still a whole record (or blank): a file whose last
/// line simply lacks the newline is complete.
fn is_whole_record(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    let text = text.strip_suffix(b",").unwrap_or(text);
    text.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
}

/// Streams the elements of a top-level JSON array without holding the array.
fn read_json_array(path: &Path, reader: impl Read, pager: &mut Pager) -> Result<(), SourceError> {
    struct Elements<'p, 'a> {
        pager: &'p mut Pager<'a>,
    }
    impl<'de> Visitor<'de> for Elements<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of SODA records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0u64;
            while let Some(element) = seq.next_element::<Box<RawValue>>()? {
                n += 1;
                let record = RawRecord {
                    locator: format!("element {n}"),
                    text: Ok(element.get().to_string()),
                    bytes: None,
                };
                if !self.pager.push(record) {
                    break;
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.deserialize_seq(Elements { pager }).map_err(|e| SourceError::Format {
        path: path.display().to_string(),
        format: "JSON",
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(source: &FileSource, resume: Option<String>) -> Vec<Page> {
        let mut rx = source.pages(Dataset::Contracts, &PassPlan::full(), resume);
        let mut pages = Vec::new();
        while let Some(p) = rx.recv().await {
            pages.push(p.unwrap());
        }
        pages
    }

    fn source(path: PathBuf, page_size: usize) -> FileSource {
        FileSource { contracts: Some(path), documents: None, guarantees: None, page_size }
    }

    #[tokio::test]
    async fn json_lines_come_in_pages_with_line_locators() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        std::fs::write(&p, "{\"id_contrato\":\"A\"}\n\n{\"id_contrato\":\"B\"}\n{bad\n").unwrap();
        let pages = collect(&source(p, 2), None).await;
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].cursor, "2");
        assert!(!pages[0].last && pages[1].last);
        assert_eq!(pages[1].records[0].locator, "line 4");
        assert_eq!(pages[1].records[0].text.as_deref().unwrap(), "{bad");
    }

    #[tokio::test]
    async fn a_json_array_is_streamed_element_by_element_and_resumes_after_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, " [ {\"id_contrato\":\"A\"}, {\"id_contrato\":\"B\",\"urlproceso\":{\"url\":\"u\"}}, {\"id_contrato\":\"C\"} ]").unwrap();
        let pages = collect(&source(p.clone(), 10), None).await;
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].records.len(), 3);
        assert!(pages[0].records[1].text.as_deref().unwrap().contains("\"url\":\"u\""));
        let resumed = collect(&source(p, 10), Some("2".into())).await;
        assert_eq!(resumed[0].records.len(), 1);
        assert_eq!(resumed[0].records[0].locator, "element 3");
        assert_eq!(resumed[0].cursor, "3");
    }
}
