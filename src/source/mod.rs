//! Source: where SECOP II records come from (the SODA API of datos.gov.co, or a file
//! export), handed to the sync stage page by page so memory never holds more than a couple
//! of pages.

pub mod file;
pub mod portal_csv;
pub mod raw;
pub mod record;
pub mod socrata;

use tokio::sync::mpsc;

use crate::domain::Dataset;

/// One record as read, before parsing: where it was, and its SODA-shaped JSON text (or why
/// it could not even be read as a record, e.g. a CSV row with missing fields).
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Where the record is, for the quarantine: `line 17`, `element 3`, `:id row-abc`.
    pub locator: String,
    pub text: Result<String, String>,
    /// The bytes as read, when they could not be decoded as text: kept in the quarantine.
    pub bytes: Option<Vec<u8>>,
}

/// A batch of records and the cursor that resumes right after it.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<RawRecord>,
    pub cursor: String,
    /// True on the last page of a pass: only then is the pass complete (a channel that just
    /// closes means the source failed, and vanished rows must not be marked).
    pub last: bool,
    /// Requests retried to get this page.
    pub retries: u32,
}

/// Why a source stopped. `retryable` says whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid {format} file: {message}")]
    Format { path: String, format: &'static str, message: String },
    #[error("the {dataset} dataset has no configured location")]
    NotConfigured { dataset: &'static str },
    /// The API kept failing (network, 5xx, 429, truncated bodies) beyond the retry budget.
    #[error("SODA API: {message}")]
    Http { message: String },
    /// The API refused the query (400, 401, 403, 404): retrying cannot help.
    #[error("the SODA API refused the {dataset} query {query}: {message}")]
    Refused { dataset: &'static str, query: String, message: String },
}

impl SourceError {
    pub fn retryable(&self) -> bool {
        matches!(self, SourceError::Io { .. } | SourceError::Http { .. })
    }
}

/// What one pass reads: everything in scope (a full pass), or only what changed; for
/// guarantees, only those of some contracts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassPlan {
    /// Only rows updated after this moment (SODA's `:updated_at`): an incremental pass, which
    /// says nothing of rows it does not read. `None`: every row.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only the guarantees of these contracts (sorted), asked for in chunks. `None`: every
    /// guarantee of the dataset.
    pub contracts: Option<std::sync::Arc<Vec<String>>>,
}

impl PassPlan {
    /// A full pass: every row in scope.
    pub fn full() -> PassPlan {
        PassPlan::default()
    }
}

/// A source of SECOP II records. Pages arrive on a bounded channel: the source reads ahead
/// while the sync writes, and stops reading when the sync stops taking pages.
pub trait Source: Send + Sync {
    /// A short name for logs and the run history (`file`, `socrata`).
    fn name(&self) -> &'static str;

    /// Whether this source has the dataset at all (a file source may have no guarantees).
    fn has(&self, dataset: Dataset) -> bool;

    /// Whether it can read only what changed and only some contracts' guarantees
    /// ([`PassPlan`]); a source that cannot reads every row on every pass.
    fn selective(&self) -> bool;

    /// What a pass over `dataset` would read now (a file's size, modification time and
    /// content; a query and the dataset's last rebuild): an interrupted pass resumes only
    /// while this is unchanged, so a resumed pass never mixes two versions of the data.
    fn fingerprint(
        &self,
        dataset: Dataset,
        plan: &PassPlan,
    ) -> impl std::future::Future<Output = Result<String, SourceError>> + Send;

    /// Starts a pass over `dataset` as `plan` says, or resumes one after `resume_after`.
    fn pages(
        &self,
        dataset: Dataset,
        plan: &PassPlan,
        resume_after: Option<String>,
    ) -> mpsc::Receiver<Result<Page, SourceError>>;
}
