//! Scheduler: drives the jobs (sync → evaluate, notify → deliver, deliver, resync) on the
//! cron schedules of `daemon.toml`. tokio-cron-scheduler is only the clock: every firing is
//! turned into a slot (the cron instant it belongs to), claimed in the run history so that
//! one slot runs once, refused while the same job is still running, and recorded with its
//! outcome. Slots missed while the daemon was down are caught up once at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::Serialize;

use crate::app::App;
use crate::clock::Clock;
use crate::config::Settings;
use crate::config::schedule::Job;
use crate::metrics::Metrics;
use crate::store::{JobRun, Store};
use crate::sync;

/// The slot a firing at `now` belongs to: the latest cron instant at or before `now`.
pub fn slot_at(cron: &Cron, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Cron instants are whole seconds: a firing a few milliseconds late is still that slot.
    let now = DateTime::from_timestamp(now.timestamp(), 0)?;
    cron.find_previous_occurrence(&now.with_timezone(&tz), true).ok().map(|t| t.with_timezone(&Utc))
}

/// The first cron instant strictly after `t`.
pub fn next_after(cron: &Cron, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let t = DateTime::from_timestamp(t.timestamp(), 0)?;
    cron.find_next_occurrence(&t.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc))
}

/// The most recent slot in (`last`, `now`]: the one catch-up run owed after downtime, or
/// `None` when nothing was missed.
pub fn missed_slot(
    cron: &Cron,
    tz: Tz,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    slot_at(cron, tz, now).filter(|slot| *slot > last)
}

/// How often a running job says it is still going.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// A run whose last heartbeat is older than this is taken for abandoned by a starting replica.
pub const HEARTBEAT_STALE: std::time::Duration = std::time::Duration::from_secs(180);
/// Jobs whose abandoned slot is run again: repeating them is safe, as the outbox
/// deduplicates by idempotency key. A sync resumes at its next slot instead.
pub const RERUNNABLE: [Job; 2] = [Job::Notify, Job::Deliver];

/// What an operator asks of one manual run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// A sync confirms the drop its guards held (`cierre sync --accept-vanishing`).
    pub accept_vanishing: bool,
}

/// What asking for a slot to run came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The job ran: `ok` or `failed`.
    Ran {
        outcome: String,
    },
    /// The slot had already run (here or, with a shared store, on another replica).
    AlreadyRan,
    /// The same job was still running: this firing is refused.
    Overlap,
    /// The daemon is shutting down and takes no new work.
    Stopping,
    /// Not a day this job runs on (digests go out on business days only).
    Skipped {
        reason: String,
    },
    UnknownJob,
}

/// The daemon's state: what every firing, HTTP request and signal works on.
pub struct Daemon<S: Store + Clone + 'static> {
    /// Replaced whole on SIGHUP: readers take a snapshot, so a reload never changes the
    /// settings under a running job. A std lock: never held across an await.
    settings: RwLock<Arc<Settings>>,
    pub store: S,
    pub clock: Arc<dyn Clock>,
    /// One lock per job: a job never runs twice at once in this process.
    locks: HashMap<Job, tokio::sync::Mutex<()>>,
    pub metrics: Metrics,
    /// Cleared when shutdown begins: no new work is claimed after that.
    accepting: AtomicBool,
}

impl<S: Store + Clone + 'static> Daemon<S> {
    pub fn new(settings: Settings, store: S, clock: Arc<dyn Clock>) -> Arc<Daemon<S>> {
        Arc::new(Daemon {
            settings: RwLock::new(Arc::new(settings)),
            store,
            clock,
            locks: Job::SCHEDULED.iter().map(|j| (*j, tokio::sync::Mutex::new(()))).collect(),
            metrics: Metrics::new(),
            accepting: AtomicBool::new(true),
        })
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().expect("not poisoned").clone()
    }

    /// Puts validated settings in force: later firings and requests use them.
    pub fn reload(&self, settings: Settings) {
        *self.settings.write().expect("not poisoned") = Arc::new(settings);
    }

    /// Stops claiming work.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// True while any job runs.
    pub fn busy(&self) -> bool {
        self.locks.values().any(|l| l.try_lock().is_err())
    }

    /// Runs the job named `job` for `slot` (see [`Daemon::run_job`]); `UnknownJob` when no
    /// scheduled job has that name.
    pub async fn run_slot(&self, job: &str, slot: DateTime<Utc>) -> RunOutcome {
        match job.parse() {
            Ok(job) => self.run_job(job, slot).await,
            Err(_) => RunOutcome::UnknownJob,
        }
    }

    /// Runs `job` for `slot` unless the slot already ran, the job is running, or the daemon
    /// is stopping; records the run.
    pub async fn run_job(&self, job: Job, slot: DateTime<Utc>) -> RunOutcome {
        self.run_job_with(job, slot, RunOptions::default()).await
    }

    /// [`Daemon::run_job`] with an operator's options (a manual run from the admin API).
    pub async fn run_job_with(
        &self,
        job: Job,
        slot: DateTime<Utc>,
        options: RunOptions,
    ) -> RunOutcome {
        let Some(lock) = self.locks.get(&job) else { return RunOutcome::UnknownJob };
        let (typed, job) = (job, job.as_str());
        if !self.is_accepting() {
            return RunOutcome::Stopping;
        }
        let Ok(_guard) = lock.try_lock() else {
            tracing::warn!(job, %slot, "the previous run is still going: this slot is refused");
            self.metrics.record_outcome(job, "overlap");
            return RunOutcome::Overlap;
        };
        let started_at = self.clock.now();
        let owner = crate::replica_id();
        let rerunnable = RERUNNABLE.map(|j| j.as_str());
        match self.store.claim_run(job, slot, started_at, &owner, &rerunnable).await {
            Ok(true) => {}
            Ok(false) => return RunOutcome::AlreadyRan,
            Err(e) => {
                tracing::error!(job, %slot, error = %e, "cannot claim the run");
                return RunOutcome::Ran { outcome: "failed".into() };
            }
        }
        let settings = self.settings();
        let timer = Instant::now();
        let span = tracing::info_span!("job", job, %slot);
        tracing::info!(parent: &span, "job started");
        let result = self.beating(job, slot, &owner, self.execute(typed, settings, options)).await;
        let elapsed = timer.elapsed();
        let finished_at = started_at
            + chrono::Duration::from_std(elapsed).unwrap_or_else(|_| chrono::Duration::zero());
        let (outcome, counts, error) = match &result {
            Ok(Some(counts)) => ("ok", counts.clone(), None),
            Ok(None) => ("skipped", serde_json::Value::Null, None),
            Err(e) => ("failed", serde_json::Value::Null, Some(format!("{e:#}"))),
        };
        match &error {
            Some(e) => tracing::error!(parent: &span, error = %e, "job failed"),
            None => {
                tracing::info!(parent: &span, outcome, seconds = elapsed.as_secs_f64(), "job finished")
            }
        }
        self.metrics.record_run(job, outcome, elapsed, finished_at);
        let run = JobRun {
            id: None,
            job: job.to_string(),
            scheduled_for: slot,
            started_at,
            finished_at,
            outcome: outcome.to_string(),
            counts,
            error,
            owner: Some(owner),
        };
        match self.store.record_run(&run).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job, %slot, "the slot was taken over while this run went on; its record is the other run's")
            }
            Err(e) => tracing::error!(job, %slot, error = %e, "cannot record the run"),
        }
        match result {
            Ok(None) => RunOutcome::Skipped { reason: "not a business day".into() },
            _ => RunOutcome::Ran { outcome: outcome.to_string() },
        }
    }

    /// Runs `work`, saying every [`HEARTBEAT_EVERY`] that the run of `owner` is still going,
    /// so that a starting replica never takes it for abandoned.
    async fn beating<T>(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        owner: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        beat.tick().await;
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = beat.tick() => match self.store.heartbeat(job, slot, owner, self.clock.now()).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(job, %slot, "this run's claim was taken over"),
                    Err(e) => tracing::warn!(job, %slot, error = %e, "cannot record the run's heartbeat"),
                },
            }
        }
    }

    /// At start-up: runs left `running` by a process that is gone (of this host, by its pid;
    /// of any host, by a heartbeat older than [`HEARTBEAT_STALE`]) are closed as abandoned —
    /// never a live replica's — and the abandoned slots of jobs safe to repeat (notify and
    /// deliver: the outbox deduplicates) are run again.
    pub async fn recover(&self) -> anyhow::Result<Vec<(String, DateTime<Utc>, RunOutcome)>> {
        let now = self.clock.now();
        let stale =
            chrono::Duration::from_std(HEARTBEAT_STALE).unwrap_or(chrono::Duration::minutes(3));
        let mut rerun = Vec::new();
        for run in self.store.running_runs().await? {
            let gone =
                run.owner.as_deref().is_none_or(crate::replica_gone) || now - run.alive_at > stale;
            if !gone || !self.store.abandon_run(&run, now).await? {
                continue;
            }
            tracing::warn!(job = %run.job, slot = %run.scheduled_for, owner = run.owner.as_deref().unwrap_or("unknown"),
                "a run left unfinished by a process that is gone was marked abandoned");
            if let Ok(job) = run.job.parse::<Job>()
                && RERUNNABLE.contains(&job)
            {
                rerun.push((job, run.scheduled_for));
            }
        }
        let mut done = Vec::new();
        for (job, slot) in rerun {
            tracing::info!(%job, %slot, "running an abandoned slot again");
            let outcome = self.run_job(job, slot).await;
            done.push((job.to_string(), slot, outcome));
        }
        Ok(done)
    }

    /// The work of each job. `Ok(None)`: skipped on purpose.
    async fn execute(
        &self,
        job: Job,
        settings: Arc<Settings>,
        run: RunOptions,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let app = App {
            settings: (*settings).clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
        };
        match job {
            Job::Sync | Job::Resync => {
                // The periodic resync is a fresh pass: any interrupted pass is forgotten.
                let options = sync::SyncOptions {
                    fresh: job == Job::Resync,
                    accept_vanishing: run.accept_vanishing,
                    ..app.sync_options()
                };
                let sync = app.sync_with(&sync::LogProgress::default(), options).await?;
                let contracts: u64 = sync
                    .datasets
                    .iter()
                    .filter(|d| d.dataset == "contracts")
                    .map(|d| d.counts.read)
                    .sum();
                self.metrics.contracts_synced.set(contracts as i64);
                // The weekly resync also evaluates every contract: what an incremental
                // evaluation relies on is checked against the whole store once a week.
                let full = job == Job::Resync;
                let eval =
                    app.evaluate_with(None, full).await.context("evaluating after the sync")?;
                Ok(Some(serde_json::json!({
                    "sync": to_json(&sync),
                    "findings": eval.total,
                    "opened": eval.opened,
                    "escalated": eval.escalated,
                    "resolved": eval.resolved,
                    "full": eval.full,
                    "evaluated": eval.evaluated,
                })))
            }
            Job::Notify => {
                let today = app.as_of(None);
                if !settings.calendar.is_business_day(today) {
                    tracing::info!(%today, "not a business day: no digests");
                    return Ok(None);
                }
                let notify = app.notify(Some(today), false).await?;
                let delivery = app.deliver().await?;
                self.metrics.record_delivery(&delivery);
                Ok(Some(
                    serde_json::json!({ "notify": to_json(&notify), "delivery": to_json(&delivery) }),
                ))
            }
            Job::Deliver => {
                let delivery = app.deliver().await?;
                self.metrics.record_delivery(&delivery);
                Ok(Some(to_json(&delivery)))
            }
            Job::Purge => Ok(Some(to_json(&app.purge().await?))),
            Job::Evaluate => anyhow::bail!("no job `{job}`: evaluations follow each sync"),
        }
    }

    /// Runs each job once whose latest slot was missed while the daemon was down (not once
    /// per missed slot). A job that never ran has missed nothing.
    pub async fn catch_up(&self) -> anyhow::Result<Vec<(String, DateTime<Utc>, RunOutcome)>> {
        let settings = self.settings();
        let now = self.clock.now();
        let mut done = Vec::new();
        for job in Job::SCHEDULED {
            let Some(schedule) = settings.schedule.of(job) else { continue };
            let Some(last) = self.store.last_slot(job.as_str()).await? else { continue };
            if let Some(slot) = missed_slot(&schedule.cron, settings.schedule.timezone, last, now) {
                tracing::info!(%job, %slot, %last, "catching up a slot missed while down");
                let outcome = self.run_job(job, slot).await;
                done.push((job.to_string(), slot, outcome));
            }
        }
        Ok(done)
    }

    /// Each job's schedule, next run and last run, for `cierre status` and the HTTP API.
    pub async fn job_status(&self) -> anyhow::Result<Vec<JobStatus>> {
        let settings = self.settings();
        let now = self.clock.now();
        let last = self.store.last_runs().await?;
        Ok(Job::SCHEDULED
            .into_iter()
            .filter_map(|job| Some((job, settings.schedule.of(job)?)))
            .map(|(job, schedule)| JobStatus {
                job: job.to_string(),
                schedule: schedule.expr.clone(),
                timezone: settings.schedule.timezone.to_string(),
                next_run: next_after(&schedule.cron, settings.schedule.timezone, now),
                last_run: last.iter().find(|r| r.job == job.as_str()).cloned(),
            })
            .collect())
    }
}

/// One job as `cierre status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub schedule: String,
    pub timezone: String,
    pub next_run: Option<DateTime<Utc>>,
    pub last_run: Option<JobRun>,
}

/// A job report for the run history, without per-finding detail.
fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    crate::app::summarize(v)
}

/// Registers every job with tokio-cron-scheduler in the configured time zone, handing it the
/// cron expression validation parsed; each firing runs its slot on the daemon. Returns the
/// started scheduler.
pub async fn start<S: Store + Clone + 'static>(
    daemon: &Arc<Daemon<S>>,
) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    let settings = daemon.settings();
    let tz = settings.schedule.timezone;
    let scheduler =
        tokio_cron_scheduler::JobScheduler::new().await.context("starting the scheduler")?;
    for job in Job::SCHEDULED {
        let Some(schedule) = settings.schedule.of(job) else { continue };
        let cron = schedule.cron.clone();
        let daemon = daemon.clone();
        let fire: Box<tokio_cron_scheduler::JobToRunAsync> = Box::new(move |_, _| {
            let daemon = daemon.clone();
            let cron = cron.clone();
            Box::pin(async move {
                let now = daemon.clock.now();
                if let Some(slot) = slot_at(&cron, tz, now) {
                    // The job runs on its own task: a long sync never delays other firings.
                    tokio::spawn(async move { daemon.run_job(job, slot).await });
                }
            })
        });
        // The builder takes the parsed expression as it is (its `with_schedule` would parse
        // the text again, and without `dom_and_dow`).
        let mut builder = tokio_cron_scheduler::JobBuilder::new()
            .with_timezone(tz)
            .with_cron_job_type()
            .with_run_async(fire);
        builder.schedule = Some(schedule.cron.clone());
        let cron_job =
            builder.build().with_context(|| format!("schedule.{job} = {}", schedule.expr))?;
        scheduler.add(cron_job).await.with_context(|| format!("scheduling {job}"))?;
    }
    scheduler.start().await.context("starting the scheduler")?;
    Ok(scheduler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schedule::parse_cron;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn six_in_the_morning_in_bogota_is_eleven_utc() {
        let cron = parse_cron("0 0 6 * * *").unwrap();
        let tz = chrono_tz::America::Bogota;
        assert_eq!(
            next_after(&cron, tz, utc("2026-11-21T10:00:00Z")),
            Some(utc("2026-11-21T11:00:00Z"))
        );
        assert_eq!(
            next_after(&cron, tz, utc("2026-11-21T11:00:00Z")),
            Some(utc("2026-11-22T11:00:00Z"))
        );
        assert_eq!(
            slot_at(&cron, tz, utc("2026-11-21T11:00:00.400Z")),
            Some(utc("2026-11-21T11:00:00Z"))
        );
    }

    #[test]
    fn weekday_schedules_skip_the_weekend() {
        let cron = parse_cron("0 0 7 * * Mon-Fri").unwrap();
        let tz = chrono_tz::America::Bogota;
        // Friday 2026-11-20 07:00 Bogotá → next is Monday the 23rd.
        assert_eq!(
            next_after(&cron, tz, utc("2026-11-20T12:00:00Z")),
            Some(utc("2026-11-23T12:00:00Z"))
        );
    }

    #[test]
    fn three_days_down_owe_one_catch_up_for_the_latest_slot() {
        let cron = parse_cron("0 0 6 * * *").unwrap();
        let tz = chrono_tz::America::Bogota;
        let last = utc("2026-11-18T11:00:00Z");
        assert_eq!(
            missed_slot(&cron, tz, last, utc("2026-11-21T15:00:00Z")),
            Some(utc("2026-11-21T11:00:00Z"))
        );
        // Nothing missed when the last run is the latest slot.
        assert_eq!(
            missed_slot(&cron, tz, utc("2026-11-21T11:00:00Z"), utc("2026-11-21T15:00:00Z")),
            None
        );
    }
}
