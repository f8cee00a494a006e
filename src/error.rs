//! Errors at the store's boundary, beneath every stage: the sync stage declares the store
//! it needs ([`crate::sync::SyncStore`]) and the store implements it, so the error both name
//! lives below them.

/// Why a store operation failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL (sqlx).
    #[error("database error: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// SQLite (rusqlite).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no database connection could be had: {0}")]
    Pool(String),
    #[error("cannot open the store at {url}: {message}")]
    Open { url: String, message: String },
    #[error("stored data is not what this version expects: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Postgres(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            ),
            // SQLITE_BUSY / SQLITE_LOCKED: another writer holds the database.
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            StoreError::Pool(_) => true,
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
