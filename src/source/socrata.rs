//! Source, SODA API: pages of a datos.gov.co dataset by keyset on `:id`, scoped by entity
//! and an extra SoQL filter, fetched one page ahead of the sync, with retries (backoff and
//! jitter, `Retry-After` honoured) for every fault a retry can fix.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

use super::{Page, PassPlan, RawRecord, Source, SourceError};
use crate::config::Settings;
use crate::domain::Dataset;

/// How a failed request is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries of one page before the sync gives up (it resumes at the next run).
    pub max_retries: u32,
    /// The first delay; each retry doubles it, with ±20 % jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// Reads the datasets of `datasets.*` from the SODA API at `source.base_url`.
#[derive(Debug, Clone)]
pub struct SocrataSource {
    client: reqwest::Client,
    base_url: url::Url,
    app_token: Option<SecretString>,
    ids: [(Dataset, String); 3],
    entities: Vec<String>,
    where_: Option<String>,
    page_size: u32,
    retry: RetryPolicy,
}

impl SocrataSource {
    pub fn from_settings(settings: &Settings) -> Result<SocrataSource, SourceError> {
        let s = &settings.source;
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(s.request_timeout)
            .connect_timeout(s.request_timeout)
            .user_agent(concat!("cierre/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Http {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let d = &settings.datasets;
        Ok(SocrataSource {
            client,
            base_url: s.base_url.clone(),
            app_token: s.app_token.clone(),
            ids: [
                (Dataset::Contracts, d.contracts.clone()),
                (Dataset::Documents, d.documents.clone()),
                (Dataset::Guarantees, d.guarantees.clone()),
            ],
            entities: s.entities.clone(),
            where_: s.where_.clone(),
            page_size: s.page_size,
            retry: RetryPolicy {
                max_retries: s.max_retries,
                base_delay: s.retry_base_delay,
                max_delay: Duration::from_secs(300),
            },
        })
    }

    fn dataset_id(&self, dataset: Dataset) -> &str {
        &self.ids.iter().find(|(d, _)| *d == dataset).expect("all three datasets").1
    }

    /// The `$where` of a page after `cursor`: keyset, entity scope (contracts and
    /// documents carry `nit_entidad`), the administrator's filter (contracts only: it names
    /// contract fields), and what `plan` asks of documents and guarantees — rows updated
    /// since a moment, the guarantees of a chunk of contracts.
    pub fn where_clause(
        &self,
        dataset: Dataset,
        plan: &PassPlan,
        chunk: Option<&[String]>,
        cursor: Option<&str>,
    ) -> Option<String> {
        let quoted = |v: &str| format!("'{}'", v.replace('\'', "''"));
        let mut parts = Vec::new();
        if let Some(c) = cursor {
            parts.push(format!(":id > {}", quoted(c)));
        }
        if !self.entities.is_empty() && dataset != Dataset::Guarantees {
            let list: Vec<String> = self.entities.iter().map(|e| quoted(e)).collect();
            parts.push(format!("nit_entidad in ({})", list.join(", ")));
        }
        if let (Some(w), Dataset::Contracts) = (&self.where_, dataset) {
            parts.push(format!("({w})"));
        }
        if let (Some(since), false) = (plan.since, dataset == Dataset::Contracts) {
            let at = since.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            parts.push(format!(":updated_at > {}", quoted(&at)));
        }
        if let (Some(ids), Dataset::Guarantees) = (chunk, dataset) {
            let list: Vec<String> = ids.iter().map(|i| quoted(i)).collect();
            parts.push(format!("id_contrato in ({})", list.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }

    /// The URL of the page after `cursor` (without the token, which goes in a header).
    pub fn page_url(
        &self,
        dataset: Dataset,
        plan: &PassPlan,
        chunk: Option<&[String]>,
        cursor: Option<&str>,
    ) -> url::Url {
        let mut url = self.base_url.clone();
        url.set_path(&format!("/resource/{}.json", self.dataset_id(dataset)));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$select", ":*,*");
            q.append_pair("$order", ":id");
            q.append_pair("$limit", &self.page_size.to_string());
            if let Some(w) = self.where_clause(dataset, plan, chunk, cursor) {
                q.append_pair("$where", &w);
            }
        }
        url
    }

    /// `rowsUpdatedAt` from the dataset's metadata (`/api/views/{id}.json`), if the API
    /// answers it; a fingerprint without it still names the query.
    async fn rows_updated_at(&self, dataset: Dataset) -> Option<i64> {
        let mut url = self.base_url.clone();
        url.set_path(&format!("/api/views/{}.json", self.dataset_id(dataset)));
        let mut request = self.client.get(url);
        if let Some(token) = &self.app_token {
            request = request.header("X-App-Token", token.expose_secret());
        }
        let response = request.send().await.ok()?.error_for_status().ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        meta.get("rowsUpdatedAt")?.as_i64()
    }

    /// Reads a pass (or the rest of one, after `resume`) into `tx`. The guarantees of a
    /// list of contracts are asked for [`CONTRACTS_PER_QUERY`] contracts at a time, and the
    /// cursor then names the chunk too (`chunk|:id`).
    async fn read_pass(
        &self,
        dataset: Dataset,
        plan: &PassPlan,
        resume: Option<String>,
        tx: &mpsc::Sender<Result<Page, SourceError>>,
    ) -> Result<(), SourceError> {
        let Some(contracts) = plan.contracts.as_ref().filter(|_| dataset == Dataset::Guarantees)
        else {
            let part = Part { chunk: None, prefix: String::new(), final_part: true };
            return self.read_part(dataset, plan, &part, resume, tx).await.map(|_| ());
        };
        let chunks: Vec<&[String]> = contracts.chunks(CONTRACTS_PER_QUERY).collect();
        let (first, mut cursor) = match resume.as_deref().and_then(|r| r.split_once('|')) {
            Some((n, id)) => {
                (n.parse::<usize>().unwrap_or(0), (!id.is_empty()).then(|| id.to_string()))
            }
            None => (0, None),
        };
        if chunks.is_empty() {
            // No contract in scope: the pass is complete at once, with nothing read.
            let page = Page { records: vec![], cursor: String::new(), last: true, retries: 0 };
            tx.send(Ok(page)).await.ok();
            return Ok(());
        }
        for (n, chunk) in chunks.iter().enumerate().skip(first) {
            let part = Part {
                chunk: Some(chunk),
                prefix: format!("{n}|"),
                final_part: n + 1 == chunks.len(),
            };
            if !self.read_part(dataset, plan, &part, cursor.take(), tx).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads one query's rows (or the rest of them, after `cursor`) into `tx`: one request
    /// per API page, each body streamed and cut into batches of [`BATCH_ROWS`] as it
    /// arrives. A fault a retry can fix is retried from the last batch handed over. False
    /// when the sync stopped taking pages.
    async fn read_part(
        &self,
        dataset: Dataset,
        plan: &PassPlan,
        part: &Part<'_>,
        mut cursor: Option<String>,
        tx: &mpsc::Sender<Result<Page, SourceError>>,
    ) -> Result<bool, SourceError> {
        let mut failures = 0u32;
        let mut retries = 0u32;
        loop {
            let url = self.page_url(dataset, plan, part.chunk, cursor.as_deref());
            let mut stream = PageStream {
                dataset,
                cursor: &mut cursor,
                retries: &mut retries,
                sent: 0,
                tx,
                prefix: &part.prefix,
                final_part: part.final_part,
            };
            let (message, retry_after) = match self.stream_page(&url, &mut stream).await {
                Ok(Streamed::Last) => return Ok(true),
                Ok(Streamed::Stopped) => return Ok(false),
                Ok(Streamed::More) => {
                    failures = 0;
                    continue;
                }
                Err(Fault::Fatal(message)) => {
                    return Err(SourceError::Refused {
                        dataset: dataset.name(),
                        query: url.to_string(),
                        message,
                    });
                }
                Err(Fault::Missing(message)) => return Err(SourceError::Http { message }),
                Err(Fault::Retry { message, after }) => {
                    if stream.sent > 0 {
                        // Part of the page got through: the budget is for faults in a row.
                        failures = 0;
                    }
                    (message, after)
                }
            };
            if failures >= self.retry.max_retries {
                return Err(SourceError::Http {
                    message: format!(
                        "{} after {failures} retries: {message} ({url})",
                        dataset.name()
                    ),
                });
            }
            failures += 1;
            retries += 1;
            let exp = self
                .retry
                .base_delay
                .saturating_mul(1 << (failures - 1).min(16))
                .min(self.retry.max_delay);
            let jitter = exp.mul_f64(0.8 + fastrand::f64() * 0.4);
            let wait = retry_after.map_or(jitter, |a| a.max(jitter));
            tracing::warn!(dataset = dataset.name(), retry = failures, wait_ms = wait.as_millis() as u64, error = %message, "page request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One request: its rows handed over in batches as the body arrives.
    async fn stream_page(
        &self,
        url: &url::Url,
        out: &mut PageStream<'_>,
    ) -> Result<Streamed, Fault> {
        let mut req = self.client.get(url.clone());
        if let Some(token) = &self.app_token {
            req = req.header("X-App-Token", token.expose_secret());
        }
        let mut response = req.send().await.map_err(|e| Fault::retry(describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response.text().await.unwrap_or_default();
            let detail: String = body.chars().take(300).collect();
            let message = format!("HTTP {status}: {detail}");
            return if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
                || status.is_server_error()
            {
                Err(Fault::Retry { message, after })
            } else {
                Err(Fault::Fatal(message))
            };
        }
        let mut splitter = ArraySplitter::default();
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut rows = 0usize;
        let mut bytes = 0usize;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    return Err(Fault::retry(format!(
                        "reading the body after {bytes} bytes: {}",
                        describe(&e)
                    )));
                }
            };
            bytes += chunk.len();
            splitter
                .feed(&chunk, |element| {
                    rows += 1;
                    batch.push(record(element));
                })
                .map_err(|e| Fault::retry(format!("the body is not a JSON array: {e}")))?;
            while batch.len() >= BATCH_ROWS {
                let rest = batch.split_off(BATCH_ROWS);
                let full = std::mem::replace(&mut batch, rest);
                if !out.send(full, false).await? {
                    return Ok(Streamed::Stopped);
                }
            }
        }
        splitter.finish().map_err(|e| {
            Fault::retry(format!("the body is not a complete JSON array ({bytes} bytes): {e}"))
        })?;
        let last = rows < self.page_size as usize;
        if !out.send(batch, last).await? {
            return Ok(Streamed::Stopped);
        }
        Ok(if last { Streamed::Last } else { Streamed::More })
    }
}

/// Contracts whose guarantees one query asks for (`id_contrato in (…)`): ~2 KB of query.
pub const CONTRACTS_PER_QUERY: usize = 100;

/// One query of a pass: the whole pass, or the guarantees of one chunk of contracts.
struct Part<'a> {
    chunk: Option<&'a [String]>,
    /// Put before each page's cursor (`chunk|`), so a resumed pass finds its chunk.
    prefix: String,
    /// The pass ends with this query.
    final_part: bool,
}

/// Rows per page handed to the sync. An API page of up to 50,000 rows (~200 MB of JSON) is
/// cut into batches of this many as its body streams in: memory holds a few batches, never
/// a whole response.
const BATCH_ROWS: usize = 1_000;

/// How a request ended.
enum Streamed {
    /// The last page of the pass was handed over.
    Last,
    /// A full page: the pass goes on after it.
    More,
    /// The sync stopped taking pages.
    Stopped,
}

/// Where a pass's batches go, and the cursor after the last one handed over.
struct PageStream<'a> {
    dataset: Dataset,
    cursor: &'a mut Option<String>,
    /// Retries since the last batch handed over, reported with the next one.
    retries: &'a mut u32,
    /// Batches handed over by the current request.
    sent: usize,
    tx: &'a mpsc::Sender<Result<Page, SourceError>>,
    prefix: &'a str,
    /// The pass ends with this query's last page.
    final_part: bool,
}

impl PageStream<'_> {
    /// Hands a batch over; false when the sync stopped taking pages.
    async fn send(&mut self, records: Vec<RawRecord>, last: bool) -> Result<bool, Fault> {
        let cursor = records.iter().rev().find_map(|r| row_id(r.text.as_deref().ok()?));
        match cursor {
            Some(c) => *self.cursor = Some(c),
            None if !last && !records.is_empty() => {
                return Err(Fault::Missing(format!(
                    "{}: rows come without :id; keyset paging is impossible",
                    self.dataset.name()
                )));
            }
            None => {}
        }
        let page = Page {
            records,
            cursor: format!("{}{}", self.prefix, self.cursor.as_deref().unwrap_or_default()),
            last: last && self.final_part,
            retries: std::mem::take(self.retries),
        };
        self.sent += 1;
        Ok(self.tx.send(Ok(page)).await.is_ok())
    }
}

fn record(element: Result<String, String>) -> RawRecord {
    let locator = match &element {
        Ok(text) => format!(":id {}", row_id(text).as_deref().unwrap_or("?")),
        Err(_) => ":id ?".to_string(),
    };
    RawRecord { locator, text: element, bytes: None }
}

/// Splits a JSON array arriving in chunks into its elements' texts, without parsing them
/// (the parse workers do, and quarantine what is not a valid record). Tracks strings and
/// nesting only, so it runs at memory speed.
#[derive(Debug, Default)]
pub struct ArraySplitter {
    /// Bytes of the element in progress.
    partial: Vec<u8>,
    opened: bool,
    closed: bool,
    in_element: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl ArraySplitter {
    /// Takes the next chunk; calls `element` with each element completed in it (its text,
    /// or why it is not text).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut element: impl FnMut(Result<String, String>),
    ) -> Result<(), String> {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if !self.in_element {
                if b.is_ascii_whitespace() {
                    continue;
                }
                if self.closed {
                    return Err("data after the end of the array".into());
                }
                if !self.opened {
                    if b != b'[' {
                        return Err(format!("it starts with `{}`", b as char));
                    }
                    self.opened = true;
                    continue;
                }
                match b {
                    b',' => continue,
                    b']' => {
                        self.closed = true;
                        continue;
                    }
                    _ => {
                        self.in_element = true;
                        self.depth = 0;
                        start = i;
                    }
                }
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            let end = match b {
                b'"' => {
                    self.in_string = true;
                    None
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    None
                }
                b'}' | b']' if self.depth > 1 => {
                    self.depth -= 1;
                    None
                }
                b'}' | b']' if self.depth == 1 => {
                    self.depth = 0;
                    Some(i + 1)
                }
                // A scalar element ends at the next comma or at the end of the array.
                b',' | b']' if self.depth == 0 => {
                    self.closed = b == b']';
                    Some(i)
                }
                _ => None,
            };
            if let Some(end) = end {
                self.partial.extend_from_slice(&chunk[start..end]);
                let bytes = std::mem::take(&mut self.partial);
                let text = String::from_utf8(bytes)
                    .map(|t| {
                        if t.ends_with(char::is_whitespace) { t.trim_end().to_string() } else { t }
                    })
                    .map_err(|e| format!("not UTF-8 text: {}", e.utf8_error()));
                element(text);
                self.in_element = false;
            }
        }
        if self.in_element {
            self.partial.extend_from_slice(&chunk[start..]);
        }
        Ok(())
    }

    /// Whether the array was complete: a body cut short is a fault to retry.
    pub fn finish(&self) -> Result<(), String> {
        if self.closed {
            Ok(())
        } else if !self.opened {
            Err("the body is empty".into())
        } else {
            Err("the body ends before the end of the array".into())
        }
    }
}

enum Fault {
    Retry {
        message: String,
        after: Option<Duration>,
    },
    Fatal(String),
    /// The data cannot be paged (rows without `:id`).
    Missing(String),
}

impl Fault {
    fn retry(message: String) -> Fault {
        Fault::Retry { message, after: None }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        format!("{e}")
    }
}

/// The `:id` of a record, the keyset cursor.
/// The record's `:id` (keyset cursor), found without parsing the record: `":id"` cannot
/// occur inside a JSON string, where quotes are escaped.
fn row_id(text: &str) -> Option<String> {
    let at = text.find("\":id\"")?;
    let rest = text[at + 5..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    Some(rest[..end].to_string())
}

impl Source for SocrataSource {
    fn name(&self) -> &'static str {
        "socrata"
    }

    fn has(&self, _dataset: Dataset) -> bool {
        true
    }

    fn selective(&self) -> bool {
        true
    }

    /// The query (dataset, scope and filter) and, when the dataset's metadata says it, when
    /// its rows were last rebuilt: the nightly rebuild renumbers `:id`, so a pass cut before
    /// it cannot be resumed after it.
    async fn fingerprint(&self, dataset: Dataset, plan: &PassPlan) -> Result<String, SourceError> {
        let id = self.dataset_id(dataset);
        let query = self.where_clause(dataset, plan, None, None).unwrap_or_default();
        // The contracts whose guarantees are asked for: a pass resumes over the same ones.
        let contracts = plan.contracts.as_ref().map_or_else(String::new, |c| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for id in c.iter() {
                h.update(id.as_bytes());
                h.update(b"\n");
            }
            format!(" contracts={}:{:016x}", c.len(), h.digest())
        });
        let rebuilt = self.rows_updated_at(dataset).await;
        Ok(format!(
            "socrata {}resource/{id} where={query}{contracts} rebuilt={}",
            self.base_url,
            rebuilt.map_or_else(|| "unknown".to_string(), |t| t.to_string())
        ))
    }

    fn pages(
        &self,
        dataset: Dataset,
        plan: &PassPlan,
        resume_after: Option<String>,
    ) -> mpsc::Receiver<Result<Page, SourceError>> {
        // Two pages in flight: the next is fetched while the sync writes the current one.
        let (tx, rx) = mpsc::channel(2);
        let source = self.clone();
        let plan = plan.clone();
        tokio::spawn(async move {
            if let Err(e) = source.read_pass(dataset, &plan, resume_after, &tx).await {
                tx.send(Err(e)).await.ok();
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(entities: &[&str], where_: Option<&str>) -> SocrataSource {
        crate::tls::install_crypto_provider();
        SocrataSource {
            client: reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap(),
            base_url: "https://www.datos.gov.co".parse().unwrap(),
            app_token: None,
            ids: [
                (Dataset::Contracts, "jbjy-vk9h".into()),
                (Dataset::Documents, "dmgg-8hin".into()),
                (Dataset::Guarantees, "gjp9-cutm".into()),
            ],
            entities: entities.iter().map(|e| e.to_string()).collect(),
            where_: where_.map(str::to_string),
            page_size: 1000,
            retry: RetryPolicy {
                max_retries: 1,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(1),
            },
        }
    }

    #[test]
    fn pages_are_keyset_on_id_scoped_by_entity_and_filtered() {
        let s = source(
            &["899999034", "899999239"],
            Some("fecha_de_firma >= '2023-01-01T00:00:00.000'"),
        );
        let full = PassPlan::full();
        let url = s.page_url(Dataset::Contracts, &full, None, Some("row-abc"));
        assert_eq!(url.path(), "/resource/jbjy-vk9h.json");
        let q: std::collections::HashMap<_, _> = url.query_pairs().collect();
        assert_eq!(q["$select"], ":*,*");
        assert_eq!(q["$order"], ":id");
        assert_eq!(q["$limit"], "1000");
        assert_eq!(
            q["$where"],
            ":id > 'row-abc' AND nit_entidad in ('899999034', '899999239') AND (fecha_de_firma >= '2023-01-01T00:00:00.000')"
        );
        // Guarantees carry no entity; the extra filter names contract fields.
        assert_eq!(s.where_clause(Dataset::Guarantees, &full, None, None), None);
        assert_eq!(
            s.where_clause(Dataset::Documents, &full, None, None).unwrap(),
            "nit_entidad in ('899999034', '899999239')"
        );
    }

    #[test]
    fn an_incremental_pass_asks_for_rows_updated_since_and_guarantees_by_contract() {
        let s = source(&["899999034"], None);
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-20T04:30:00Z").unwrap().to_utc();
        let plan = PassPlan { since: Some(since), contracts: None };
        assert_eq!(
            s.where_clause(Dataset::Documents, &plan, None, Some("row-9")).unwrap(),
            ":id > 'row-9' AND nit_entidad in ('899999034') AND :updated_at > '2026-11-20T04:30:00.000Z'"
        );
        // Contracts are rebuilt every night: always read whole.
        assert_eq!(
            s.where_clause(Dataset::Contracts, &plan, None, None).unwrap(),
            "nit_entidad in ('899999034')"
        );
        let ids = vec!["CO1.PCCNTR.1".to_string(), "CO1.PCCNTR.'2".to_string()];
        assert_eq!(
            s.where_clause(Dataset::Guarantees, &plan, Some(&ids), None).unwrap(),
            ":updated_at > '2026-11-20T04:30:00.000Z' AND id_contrato in ('CO1.PCCNTR.1', 'CO1.PCCNTR.''2')"
        );
    }

    fn split(chunks: &[&[u8]]) -> (Vec<Result<String, String>>, Result<(), String>) {
        let mut s = ArraySplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = s.feed(c, |e| out.push(e)) {
                return (out, Err(e));
            }
        }
        let end = s.finish();
        (out, end)
    }

    #[test]
    fn an_array_is_split_into_its_elements_wherever_the_chunks_break() {
        let body = br#" [ {"a":"x]}\"{","b":{"c":[1,2]}}, {":id":"row-2"} ,7,"s]"] "#;
        let want: Vec<Result<String, String>> = vec![
            Ok(r#"{"a":"x]}\"{","b":{"c":[1,2]}}"#.into()),
            Ok(r#"{":id":"row-2"}"#.into()),
            Ok("7".into()),
            Ok(r#""s]""#.into()),
        ];
        for cut in 0..body.len() {
            let (got, end) = split(&[&body[..cut], &body[cut..]]);
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(end, Ok(()));
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(split(&bytes).0, want);
    }

    #[test]
    fn a_truncated_or_foreign_body_is_an_error() {
        let (got, end) = split(&[br#"[{"a":1},{"b":"#]);
        assert_eq!(got.len(), 1);
        assert!(end.unwrap_err().contains("ends before the end"));
        assert!(split(&[b"{\"error\":true}"]).1.unwrap_err().contains("starts with `{`"));
        assert!(split(&[b""]).1.unwrap_err().contains("empty"));
        assert!(split(&[b"[] x"]).1.unwrap_err().contains("after the end"));
    }

    #[test]
    fn the_row_id_is_read_without_parsing_the_record() {
        assert_eq!(
            row_id(r#"{":id":"row-ab_c","x":"\":id\":\"no\""}"#).as_deref(),
            Some("row-ab_c")
        );
        assert_eq!(row_id(r#"{"x":"\":id\": \"no\"", ":id" : "row-9"}"#).as_deref(), Some("row-9"));
        assert_eq!(row_id(r#"{"x":1}"#), None);
    }

    #[test]
    fn quotes_in_cursors_are_escaped() {
        let s = source(&[], None);
        assert_eq!(
            s.where_clause(Dataset::Contracts, &PassPlan::full(), None, Some("a'b")).unwrap(),
            ":id > 'a''b'"
        );
    }
}
