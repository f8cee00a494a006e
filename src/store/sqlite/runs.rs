//! Store, SQLite runs: [`RunStore`] on SQLite — the job run history, whose unique
//! `(job, scheduled_for)` makes each scheduled slot run once.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use super::rows::{self, Ts};
use crate::error::StoreResult;
use crate::store::{JobRun, RunStore, RunningRun};

impl RunStore for SqliteStore {
    async fn record_run(&self, run: &JobRun) -> StoreResult<bool> {
        let run = run.clone();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "INSERT INTO job_runs (job, scheduled_for, started_at, finished_at, outcome, counts, \
                 error, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (job, scheduled_for) DO UPDATE SET \
                 started_at = excluded.started_at, finished_at = excluded.finished_at, \
                 outcome = excluded.outcome, counts = excluded.counts, error = excluded.error \
                 WHERE job_runs.owner IS excluded.owner",
                params![
                    run.job,
                    Ts(run.scheduled_for),
                    Ts(run.started_at),
                    Ts(run.finished_at),
                    run.outcome,
                    run.counts.to_string(),
                    run.error,
                    run.owner
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
        owner: &str,
        rerunnable: &[&str],
    ) -> StoreResult<bool> {
        let (job, owner) = (job.to_string(), owner.to_string());
        let rerun = rerunnable.contains(&job.as_str());
        self.with_conn(move |conn| {
            let claimed = conn.execute(
                "INSERT INTO job_runs (job, scheduled_for, started_at, outcome, owner, heartbeat_at) \
                 VALUES (?1, ?2, ?3, 'running', ?4, ?3) ON CONFLICT (job, scheduled_for) DO UPDATE \
                 SET started_at = excluded.started_at, outcome = 'running', owner = excluded.owner, \
                 heartbeat_at = excluded.heartbeat_at, finished_at = NULL, error = NULL \
                 WHERE ?5 AND job_runs.outcome = 'abandoned'",
                params![job, Ts(slot), Ts(at), owner, rerun],
            )?;
            Ok(claimed == 1)
        })
        .await
    }

    async fn heartbeat(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (job, owner) = (job.to_string(), owner.to_string());
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE job_runs SET heartbeat_at = ?1 WHERE job = ?2 AND scheduled_for = ?3 \
                 AND owner = ?4 AND outcome = 'running'",
                params![Ts(at), job, Ts(slot), owner],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn running_runs(&self) -> StoreResult<Vec<RunningRun>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT job, scheduled_for, owner, COALESCE(heartbeat_at, started_at) AS alive_at \
                 FROM job_runs WHERE outcome = 'running' ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(RunningRun {
                    job: r.get("job")?,
                    scheduled_for: r.get::<_, Ts>("scheduled_for")?.0,
                    owner: r.get("owner")?,
                    alive_at: r.get::<_, Ts>("alive_at")?.0,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn abandon_run(&self, run: &RunningRun, at: DateTime<Utc>) -> StoreResult<bool> {
        let run = run.clone();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE job_runs SET outcome = 'abandoned', finished_at = ?1, \
                 error = 'the process running it stopped before it finished' \
                 WHERE job = ?2 AND scheduled_for = ?3 AND outcome = 'running' AND owner IS ?4",
                params![Ts(at), run.job, Ts(run.scheduled_for), run.owner],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn last_slot(&self, job: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let job = job.to_string();
        self.with_conn(move |conn| {
            let slot: Option<Ts> = conn.query_row(
                "SELECT MAX(scheduled_for) FROM job_runs WHERE job = ?1",
                [job],
                |r| r.get(0),
            )?;
            Ok(slot.map(|t| t.0))
        })
        .await
    }

    async fn last_runs(&self) -> StoreResult<Vec<JobRun>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.* FROM job_runs r JOIN (SELECT job, MAX(started_at) AS s FROM job_runs \
                 GROUP BY job) l ON r.job = l.job AND r.started_at = l.s ORDER BY r.job",
            )?;
            Ok(stmt.query_map([], rows::job_run)?.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn runs(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<JobRun>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM job_runs WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
            )?;
            Ok(stmt
                .query_map(params![before, limit], rows::job_run)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn purge_runs(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.with_conn(move |conn| {
            let n = conn.execute(
                "DELETE FROM job_runs WHERE started_at < ?1 AND outcome <> 'running' \
                 AND EXISTS (SELECT 1 FROM job_runs l WHERE l.job = job_runs.job \
                   AND l.scheduled_for > job_runs.scheduled_for \
                   AND l.started_at > job_runs.started_at)",
                params![Ts(before)],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
