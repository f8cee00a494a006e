//! cierre: keeps Colombian state entities' SECOP II contract files closed on time.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! source (file export, SODA API) → sync (hash, upsert, quarantine) → store (SQLite)
//!    → rules (calendar, closable…) → findings (open / escalate / resolve)
//!    → notify (route → escalate → digest → outbox → deliver)
//! ```
//!
//! [`config`] turns `daemon.toml` into validated [`config::Settings`]; [`app`] wires the
//! stages into jobs; [`clock`] is injected everywhere time matters.

pub mod app;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod error;
pub mod findings;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod rules;
pub mod scheduler;
pub mod source;
pub mod store;
pub mod sync;
pub mod tls;

/// This process, as replicas sharing a store name each other: `host:pid`.
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}
