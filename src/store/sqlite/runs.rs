//! Store, SQLite runs: [`RunStore`] on SQLite — the job run history, whose unique
//! `(job, scheduled_for)` makes each scheduled slot run once.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use super::rows::{self, Ts};
use crate::error::StoreResult;
use crate::store::{JobRun, RunStore};

impl RunStore for SqliteStore {
    async fn record_run(&self, run: &JobRun) -> StoreResult<()> {
        let run = run.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO job_runs (job, scheduled_for, started_at, finished_at, outcome, counts, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (job, scheduled_for) DO UPDATE SET \
                 started_at = excluded.started_at, finished_at = excluded.finished_at, \
                 outcome = excluded.outcome, counts = excluded.counts, error = excluded.error",
                params![
                    run.job,
                    Ts(run.scheduled_for),
                    Ts(run.started_at),
                    Ts(run.finished_at),
                    run.outcome,
                    run.counts.to_string(),
                    run.error
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let job = job.to_string();
        self.with_conn(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO job_runs (job, scheduled_for, started_at, outcome) \
                 VALUES (?1, ?2, ?3, 'running') ON CONFLICT (job, scheduled_for) DO NOTHING",
                params![job, Ts(slot), Ts(at)],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn abandon_running(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE job_runs SET outcome = 'abandoned', finished_at = ?1, \
                 error = 'the process stopped before the run finished' WHERE outcome = 'running'",
                [Ts(at)],
            )?;
            Ok(n as u64)
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

    async fn runs(&self, limit: u32) -> StoreResult<Vec<JobRun>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM job_runs ORDER BY started_at DESC, id DESC LIMIT ?1",
            )?;
            Ok(stmt.query_map([limit], rows::job_run)?.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
