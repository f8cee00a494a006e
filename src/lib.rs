//! cierre: keeps Colombian state entities' SECOP II contract files closed on time.
//!
//! The pipeline, one module per stage; a module imports only the stages before it and the
//! layers beneath (checked by `tests/layers.rs`):
//!
//! ```text
//! source (file export, SODA API) → sync (hash, upsert, quarantine) → store (SQLite | PostgreSQL)
//!    → rules (closable, liquidation, state, documents) → findings (open / escalate / resolve)
//!    → notify (escalate → digest → outbox → deliver)
//!    → app (the jobs) · scheduler · daemon · http · metrics · cli · output
//!
//! beneath them all:  config (daemon.toml → Settings: routes, classifier, schedules, templates)
//!                    calendar (holidays, business days)
//!                    links (signed personal links to the web view)
//!                    domain (contracts, findings, events, Spanish) · error · clock · tls
//! ```

pub mod admin;
pub mod app;
pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod error;
pub mod findings;
pub mod http;
pub mod links;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod rules;
pub mod scheduler;
pub mod source;
pub mod store;
pub mod sync;
pub mod tls;
pub mod web;

/// This process, as replicas sharing a store name each other: `host:pid`.
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

/// Whether the process a [`replica_id`] names is known to be gone: it ran on this host and
/// no process has its pid now. A replica of another host is never taken for gone.
pub fn replica_gone(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else { return false };
    let this = replica_id();
    let this_host = this.rsplit_once(':').map_or("", |(h, _)| h);
    match pid.parse::<u32>() {
        Ok(pid) if host == this_host => {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}
