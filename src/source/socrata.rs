//! Source, SODA API: pages of a datos.gov.co dataset by keyset on `:id`, scoped by entity
//! and an extra SoQL filter, fetched one page ahead of the sync, with retries (backoff and
//! jitter, `Retry-After` honoured) for every fault a retry can fix.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{Dataset, Page, RawRecord, Source, SourceError};
use crate::config::Settings;

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
    /// documents carry `nit_entidad`), and the administrator's filter (contracts only: it
    /// names contract fields).
    pub fn where_clause(&self, dataset: Dataset, cursor: Option<&str>) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(c) = cursor {
            parts.push(format!(":id > '{}'", c.replace('\'', "''")));
        }
        if !self.entities.is_empty() && dataset != Dataset::Guarantees {
            let list: Vec<String> =
                self.entities.iter().map(|e| format!("'{}'", e.replace('\'', "''"))).collect();
            parts.push(format!("nit_entidad in ({})", list.join(", ")));
        }
        if let (Some(w), Dataset::Contracts) = (&self.where_, dataset) {
            parts.push(format!("({w})"));
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }

    /// The URL of the page after `cursor` (without the token, which goes in a header).
    pub fn page_url(&self, dataset: Dataset, cursor: Option<&str>) -> url::Url {
        let mut url = self.base_url.clone();
        url.set_path(&format!("/resource/{}.json", self.dataset_id(dataset)));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$select", ":*,*");
            q.append_pair("$order", ":id");
            q.append_pair("$limit", &self.page_size.to_string());
            if let Some(w) = self.where_clause(dataset, cursor) {
                q.append_pair("$where", &w);
            }
        }
        url
    }

    /// One page, retried as the policy says. Returns the records' JSON texts and the
    /// retries it took.
    async fn fetch(
        &self,
        dataset: Dataset,
        cursor: Option<&str>,
    ) -> Result<(Vec<Box<RawValue>>, u32), SourceError> {
        let url = self.page_url(dataset, cursor);
        let mut retries = 0;
        loop {
            let attempt = self.fetch_once(&url).await;
            let (message, retry_after) = match attempt {
                Ok(rows) => return Ok((rows, retries)),
                Err(Fault::Fatal(message)) => {
                    return Err(SourceError::Refused {
                        dataset: dataset.name(),
                        query: url.to_string(),
                        message,
                    });
                }
                Err(Fault::Retry { message, after }) => (message, after),
            };
            if retries >= self.retry.max_retries {
                return Err(SourceError::Http {
                    message: format!(
                        "{} after {retries} retries: {message} ({url})",
                        dataset.name()
                    ),
                });
            }
            retries += 1;
            let exp = self
                .retry
                .base_delay
                .saturating_mul(1 << (retries - 1).min(16))
                .min(self.retry.max_delay);
            let jitter = exp.mul_f64(0.8 + fastrand::f64() * 0.4);
            let wait = retry_after.map_or(jitter, |a| a.max(jitter));
            tracing::warn!(dataset = dataset.name(), retry = retries, wait_ms = wait.as_millis() as u64, error = %message, "page request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn fetch_once(&self, url: &url::Url) -> Result<Vec<Box<RawValue>>, Fault> {
        let mut req = self.client.get(url.clone());
        if let Some(token) = &self.app_token {
            req = req.header("X-App-Token", token.expose_secret());
        }
        let response = req.send().await.map_err(|e| Fault::retry(describe(&e)))?;
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
                // 400 (bad SoQL), 401/403 (token), 404 (dataset): retrying cannot help.
                Err(Fault::Fatal(message))
            };
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| Fault::retry(format!("reading the body: {}", describe(&e))))?;
        // A body cut short (a reset mid-transfer) does not parse: retried like any fault.
        serde_json::from_slice::<Vec<Box<RawValue>>>(&body).map_err(|e| {
            Fault::retry(format!(
                "the body is not a complete JSON array ({} bytes): {e}",
                body.len()
            ))
        })
    }
}

enum Fault {
    Retry { message: String, after: Option<Duration> },
    Fatal(String),
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
fn row_id(raw: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = ":id")]
        id: Option<String>,
    }
    serde_json::from_str::<Id>(raw.get()).ok().and_then(|i| i.id)
}

impl Source for SocrataSource {
    fn name(&self) -> &'static str {
        "socrata"
    }

    fn has(&self, _dataset: Dataset) -> bool {
        true
    }

    fn pages(
        &self,
        dataset: Dataset,
        resume_after: Option<String>,
    ) -> mpsc::Receiver<Result<Page, SourceError>> {
        // Two pages in flight: the next is fetched while the sync writes the current one.
        let (tx, rx) = mpsc::channel(2);
        let source = self.clone();
        tokio::spawn(async move {
            let mut cursor = resume_after;
            loop {
                let (rows, retries) = match source.fetch(dataset, cursor.as_deref()).await {
                    Ok(r) => r,
                    Err(e) => {
                        tx.send(Err(e)).await.ok();
                        return;
                    }
                };
                let last = rows.len() < source.page_size as usize;
                let mut records = Vec::with_capacity(rows.len());
                for raw in &rows {
                    let id = row_id(raw);
                    records.push(RawRecord {
                        locator: format!(":id {}", id.as_deref().unwrap_or("?")),
                        text: Ok(raw.get().to_string()),
                    });
                    if let Some(id) = id {
                        cursor = Some(id);
                    }
                }
                if !last && records.last().is_some_and(|_| cursor.is_none()) {
                    let e = SourceError::Http {
                        message: format!(
                            "{}: rows come without :id; keyset paging is impossible",
                            dataset.name()
                        ),
                    };
                    tx.send(Err(e)).await.ok();
                    return;
                }
                let page =
                    Page { records, cursor: cursor.clone().unwrap_or_default(), last, retries };
                if tx.send(Ok(page)).await.is_err() || last {
                    return;
                }
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
        let url = s.page_url(Dataset::Contracts, Some("row-abc"));
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
        assert_eq!(s.where_clause(Dataset::Guarantees, None), None);
        assert_eq!(
            s.where_clause(Dataset::Documents, None).unwrap(),
            "nit_entidad in ('899999034', '899999239')"
        );
    }

    #[test]
    fn quotes_in_cursors_are_escaped() {
        let s = source(&[], None);
        assert_eq!(s.where_clause(Dataset::Contracts, Some("a'b")).unwrap(), ":id > 'a''b'");
    }
}
