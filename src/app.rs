//! The jobs, wired: an [`App`] holds the validated settings, the store and the clock, and
//! runs each pipeline stage (sync → evaluate → notify → deliver) or all of them once. The
//! CLI and the tests drive the same functions.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::schedule::Job;
use crate::config::{AttachmentFormat, Settings, SourceKind};
use crate::domain::Event;
use crate::findings::{self, Evaluation};
use crate::notify::outbox::{self, Channels, DeliveryReport};
use crate::notify::{self, Build, Built, Digests, NotifyReport};
use crate::source::file::FileSource;
use crate::source::socrata::SocrataSource;
use crate::store::{JobRun, Store};
use crate::sync::{self, LogProgress, Progress, Scope, SyncOptions, SyncReport};

/// Settings, store and clock: everything a job needs.
pub struct App<S: Store> {
    pub settings: Settings,
    pub store: S,
    /// Injected so that `--as-of` runs and tests control time.
    pub clock: Arc<dyn Clock>,
}

/// Opens the store named by `store.url` on backend `S` (picked once, at start-up, by
/// [`crate::store::Backend::of`]) and applies pending migrations.
pub async fn open_store<S: Store>(settings: &Settings) -> anyhow::Result<S> {
    let mut store = S::open(&settings.store_url).await.context("opening the store (store.url)")?;
    store.tune(settings);
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

impl<S: Store> App<S> {
    pub async fn open(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = open_store(&settings).await?;
        Ok(App { settings, store, clock })
    }
}

/// Rows removed per purge transaction: short transactions beside the live outbox.
const PURGE_BATCH: u32 = 5_000;

/// What the purge job removed.
#[derive(Debug, Default, Serialize)]
pub struct PurgeReport {
    /// Sent and dead outbox items moved to the delivery history.
    pub outbox: u64,
    /// Delivery history rows past `retention.history_days`.
    pub history: u64,
    /// Finished job runs past `retention.runs_days`.
    pub runs: u64,
    /// Digest slots past `retention.outbox_days` (each recipient's latest is kept).
    pub digests: u64,
}

/// What `run --once` did, stage by stage.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub as_of: NaiveDate,
    pub sync: SyncReport,
    pub findings: usize,
    pub opened: usize,
    pub escalated: usize,
    pub resolved: usize,
    pub notify: NotifyReport,
    pub delivery: DeliveryReport,
}

impl<S: Store> App<S> {
    /// The evaluation date: `as_of`, or today in the schedule's time zone.
    pub fn as_of(&self, as_of: Option<NaiveDate>) -> NaiveDate {
        as_of.unwrap_or_else(|| self.clock.today(self.settings.schedule.timezone))
    }

    /// How syncs run under these settings: guarded, resuming interrupted passes.
    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            max_vanished_share: self.settings.source.max_vanished_share,
            lookback: self.settings.source.lookback,
            ..SyncOptions::default()
        }
    }

    /// One sync, announced to webhook consumers (`sync.completed` / `sync.failed`), with
    /// progress as log lines.
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        self.sync_with(&LogProgress::default(), self.sync_options()).await
    }

    /// [`App::sync`] telling `progress` of every page.
    pub async fn sync_with(
        &self,
        progress: &dyn Progress,
        options: SyncOptions,
    ) -> anyhow::Result<SyncReport> {
        let started = self.clock.now();
        let result = self.sync_only(progress, options).await;
        if !self.settings.webhooks.is_empty() {
            let now = self.clock.now();
            let identity = format!("{}", started.timestamp_micros());
            let event = match &result {
                Ok(report) => Event::new(
                    "sync.completed",
                    &identity,
                    now,
                    serde_json::json!({ "started_at": started, "datasets": report.datasets }),
                ),
                Err(e) => Event::new(
                    "sync.failed",
                    &identity,
                    now,
                    serde_json::json!({ "started_at": started, "error": format!("{e:#}") }),
                ),
            };
            for item in findings::outbox_items(&event, &self.settings.webhooks) {
                self.store.enqueue(&item, now).await.context("queueing the sync event")?;
            }
        }
        result
    }

    async fn sync_only(
        &self,
        progress: &dyn Progress,
        options: SyncOptions,
    ) -> anyhow::Result<SyncReport> {
        let s = &self.settings.source;
        let scope = Scope { entities: s.entities.clone(), filtered: s.where_.is_some() };
        match s.kind {
            SourceKind::File => {
                let source = FileSource {
                    contracts: s.contracts_path.clone(),
                    documents: s.documents_path.clone(),
                    guarantees: s.guarantees_path.clone(),
                    // Small pages keep memory low; the writer merges them into bigger transactions.
                    page_size: s.page_size.min(1_000) as usize,
                };
                let clock = self.clock.as_ref();
                sync::sync_all(&self.store, &source, &scope, options, clock, progress).await
            }
            SourceKind::Socrata => {
                let source = SocrataSource::from_settings(&self.settings)?;
                let clock = self.clock.as_ref();
                sync::sync_all(&self.store, &source, &scope, options, clock, progress).await
            }
        }
    }

    /// Evaluates as of `as_of` (today when `None`), incrementally when it can.
    pub async fn evaluate(&self, as_of: Option<NaiveDate>) -> anyhow::Result<Evaluation> {
        self.evaluate_with(as_of, false).await
    }

    /// Evaluates as of `as_of`; `full`: every contract, even those an incremental
    /// evaluation would leave alone.
    pub async fn evaluate_with(
        &self,
        as_of: Option<NaiveDate>,
        full: bool,
    ) -> anyhow::Result<Evaluation> {
        let (store, settings, clock) = (&self.store, &self.settings, self.clock.as_ref());
        findings::evaluate(store, settings, self.as_of(as_of), full, clock).await
    }

    pub async fn notify(
        &self,
        as_of: Option<NaiveDate>,
        dry_run: bool,
    ) -> anyhow::Result<NotifyReport> {
        notify::notify(&self.store, &self.settings, self.as_of(as_of), dry_run, self.clock.as_ref())
            .await
    }

    pub async fn deliver(&self) -> anyhow::Result<DeliveryReport> {
        let channels = Channels::from_settings(&self.settings)?;
        outbox::deliver(&self.store, &self.settings, &channels, self.clock.as_ref()).await
    }

    /// Removes finished work past its retention (`[retention]`): outbox items to the
    /// delivery history, then the history and the run history past theirs.
    pub async fn purge(&self) -> anyhow::Result<PurgeReport> {
        let r = &self.settings.retention;
        let now = self.clock.now();
        let before = |days: u32| now - chrono::Duration::days(days.into());
        let mut report = PurgeReport::default();
        loop {
            let n = self.store.purge_outbox(before(r.outbox_days), PURGE_BATCH).await?;
            report.outbox += n;
            if n < u64::from(PURGE_BATCH) {
                break;
            }
        }
        if let Some(days) = r.history_days {
            loop {
                let n = self.store.purge_deliveries(before(days), PURGE_BATCH).await?;
                report.history += n;
                if n < u64::from(PURGE_BATCH) {
                    break;
                }
            }
        }
        report.runs = self.store.purge_runs(before(r.runs_days)).await?;
        let day =
            before(r.outbox_days).with_timezone(&self.settings.schedule.timezone).date_naive();
        report.digests = self.store.purge_digests(day).await?;
        Ok(report)
    }

    /// One recipient's digest for `as_of`, exactly as notify would send it, without
    /// touching the outbox. `whole`: the attachments hold every row whatever the message
    /// size limit (`cierre digest --format xlsx`).
    pub async fn digest(
        &self,
        to: &str,
        as_of: Option<NaiveDate>,
        whole: Option<AttachmentFormat>,
    ) -> anyhow::Result<Option<Built>> {
        let slot = self.as_of(as_of);
        let env = crate::config::templates::environment(&self.settings.email.templates_dir)
            .map_err(|(name, msg)| anyhow::anyhow!("template {name}: {msg}"))?;
        let mut digests = Digests::collect(&self.store, &self.settings, slot, Some(to)).await?;
        let build = match whole {
            Some(attachment) => Build { attachment, limit_size: false },
            None => Build { attachment: self.settings.email.digest.attachment, limit_size: true },
        };
        digests.next(&self.store, &self.settings, &env, build).await
    }

    /// sync → evaluate → notify → deliver, each recorded in the run history.
    pub async fn run_once(&self, as_of: Option<NaiveDate>) -> anyhow::Result<RunReport> {
        let as_of = self.as_of(as_of);
        let sync = self.recorded(Job::Sync, self.sync()).await?;
        let eval = self.recorded(Job::Evaluate, self.evaluate(Some(as_of))).await?;
        let notify = self.recorded(Job::Notify, self.notify(Some(as_of), false)).await?;
        let delivery = self.recorded(Job::Deliver, self.deliver()).await?;
        Ok(RunReport {
            as_of,
            sync,
            findings: eval.total,
            opened: eval.opened,
            escalated: eval.escalated,
            resolved: eval.resolved,
            notify,
            delivery,
        })
    }

    /// Runs a job and records it (outcome, counts, error) in `job_runs`.
    async fn recorded<T: Serialize>(
        &self,
        job: Job,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let started_at = self.clock.now();
        let timer = Instant::now();
        let result = work.await;
        let finished_at = started_at
            + chrono::Duration::from_std(timer.elapsed())
                .unwrap_or_else(|_| chrono::Duration::zero());
        let (outcome, counts, error) = match &result {
            Ok(v) => ("ok", summarize(v), None),
            Err(e) => ("failed", serde_json::Value::Null, Some(format!("{e:#}"))),
        };
        // The slot of a manual run is its start: unique per run.
        let run = JobRun {
            id: None,
            job: job.as_str().to_string(),
            scheduled_for: started_at,
            started_at,
            finished_at,
            outcome: outcome.to_string(),
            counts,
            error,
            owner: Some(crate::replica_id()),
        };
        self.store.record_run(&run).await.context("recording the run")?;
        result.with_context(|| format!("job {job}"))
    }
}

/// A job's result as JSON for the run history, without the per-finding detail.
pub fn summarize<T: Serialize>(v: &T) -> serde_json::Value {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("findings");
            serde_json::Value::Object(m)
        }
        Ok(other) => other,
        Err(_) => serde_json::Value::Null,
    }
}
