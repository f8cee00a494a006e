//! The daemon: opens the store, serves the admin API, fires the jobs on their schedules,
//! catches up missed slots, reloads `daemon.toml` on request, and stops gracefully. The
//! shutdown future and the reload signal are passed in, so tests drive the same function.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::app::open_store;
use crate::clock::Clock;
use crate::config::{self, Settings};
use crate::scheduler::{self, Daemon};
use crate::store::Store;

/// Runs until `shutdown` completes. Each message on `reloads` re-reads `config_path`: a
/// valid configuration is put in force (schedules, routes, templates, rules); an invalid one
/// is refused with its errors logged, and the running one stays.
pub async fn run<S: Store>(
    settings: Settings,
    config_path: PathBuf,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let store: S = open_store(&settings).await?;
    let listen = settings.http.listen;
    let catch_up = settings.schedule.catch_up;
    let daemon = Daemon::new(settings, store, clock);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (http.listen)"))?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = crate::http::router(daemon.clone());
    let http = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                http_stopped.await.ok();
            })
            .await
    });
    tracing::info!(%listen, "admin API listening");

    let mut cron = scheduler::start(&daemon).await?;
    tracing::info!("scheduler started");
    // Runs a gone process left unfinished are closed (notify and deliver slots run again),
    // then missed slots are caught up: one after the other, as each takes its job's lock.
    let d = daemon.clone();
    tokio::spawn(async move {
        if let Err(e) = d.recover().await {
            tracing::error!(error = %format!("{e:#}"), "recovering abandoned runs failed");
        }
        if catch_up && let Err(e) = d.catch_up().await {
            tracing::error!(error = %format!("{e:#}"), "catch-up failed");
        }
    });

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reloads.recv() => {
                match config::load(&config_path, true) {
                    Ok(new) => {
                        if new.http.listen != daemon.settings().http.listen {
                            tracing::warn!("http.listen changed: it takes effect at the next restart");
                        }
                        if new.store_url != daemon.settings().store_url {
                            tracing::warn!("store.url changed: it takes effect at the next restart");
                        }
                        if new.sqlite_mmap_bytes != daemon.settings().sqlite_mmap_bytes {
                            tracing::warn!("store.sqlite_mmap_mib changed: it takes effect at the next restart");
                        }
                        daemon.reload(new);
                        cron.shutdown().await.ok();
                        match scheduler::start(&daemon).await {
                            Ok(c) => cron = c,
                            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot reschedule the jobs"),
                        }
                        tracing::info!(path = %config_path.display(), "configuration reloaded");
                    }
                    Err(errors) => {
                        for e in &errors.0 {
                            tracing::error!(error = %e, "configuration refused");
                        }
                        tracing::error!(count = errors.0.len(), "the new configuration is invalid; the running one stays");
                    }
                }
            }
        }
    }

    // Stop claiming work, let running jobs finish within the grace period, then leave:
    // every write is a transaction, so a job abandoned here leaves the store consistent and
    // the next run resumes it.
    tracing::info!("stopping");
    daemon.stop_accepting();
    cron.shutdown().await.ok();
    let grace = daemon.settings().schedule.shutdown_grace;
    let started = Instant::now();
    while daemon.busy() && started.elapsed() < grace {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if daemon.busy() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "jobs still running after the grace period: abandoned"
        );
    }
    http_stop.send(()).ok();
    match tokio::time::timeout(std::time::Duration::from_secs(5), http).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the admin API stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the admin API task failed"),
        Ok(Ok(Ok(()))) | Err(_) => {}
    }
    tracing::info!("stopped");
    Ok(())
}
