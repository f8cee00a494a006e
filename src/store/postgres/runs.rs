//! Store, PostgreSQL runs: [`RunStore`] on PostgreSQL — the job run history, whose unique
//! `(job, scheduled_for)` makes each scheduled slot run once across replicas.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PgStore;
use super::rows;
use crate::error::StoreResult;
use crate::store::{JobRun, RunStore, RunningRun};

impl RunStore for PgStore {
    async fn record_run(&self, run: &JobRun) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO job_runs (job, scheduled_for, started_at, finished_at, outcome, counts, \
             error, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (job, scheduled_for) DO UPDATE SET \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             outcome = excluded.outcome, counts = excluded.counts, error = excluded.error \
             WHERE job_runs.owner IS NOT DISTINCT FROM excluded.owner",
        )
        .bind(&run.job)
        .bind(run.scheduled_for)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(&run.outcome)
        .bind(run.counts.to_string())
        .bind(&run.error)
        .bind(&run.owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
        owner: &str,
        rerunnable: &[&str],
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO job_runs (job, scheduled_for, started_at, outcome, owner, heartbeat_at) \
             VALUES ($1, $2, $3, 'running', $4, $3) ON CONFLICT (job, scheduled_for) DO UPDATE \
             SET started_at = excluded.started_at, outcome = 'running', owner = excluded.owner, \
             heartbeat_at = excluded.heartbeat_at, finished_at = NULL, error = NULL \
             WHERE $5 AND job_runs.outcome = 'abandoned'",
        )
        .bind(job)
        .bind(slot)
        .bind(at)
        .bind(owner)
        .bind(rerunnable.contains(&job))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn heartbeat(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE job_runs SET heartbeat_at = $1 WHERE job = $2 AND scheduled_for = $3 \
             AND owner = $4 AND outcome = 'running'",
        )
        .bind(at)
        .bind(job)
        .bind(slot)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn running_runs(&self) -> StoreResult<Vec<RunningRun>> {
        let rows = sqlx::query(
            "SELECT job, scheduled_for, owner, COALESCE(heartbeat_at, started_at) AS alive_at \
             FROM job_runs WHERE outcome = 'running' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| RunningRun {
                job: r.get("job"),
                scheduled_for: r.get("scheduled_for"),
                owner: r.get("owner"),
                alive_at: r.get("alive_at"),
            })
            .collect())
    }

    async fn abandon_run(&self, run: &RunningRun, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE job_runs SET outcome = 'abandoned', finished_at = $1, \
             error = 'the process running it stopped before it finished' \
             WHERE job = $2 AND scheduled_for = $3 AND outcome = 'running' \
             AND owner IS NOT DISTINCT FROM $4",
        )
        .bind(at)
        .bind(&run.job)
        .bind(run.scheduled_for)
        .bind(&run.owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn last_slot(&self, job: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar("SELECT MAX(scheduled_for) FROM job_runs WHERE job = $1")
            .bind(job)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn last_runs(&self) -> StoreResult<Vec<JobRun>> {
        let found = sqlx::query(
            "SELECT r.* FROM job_runs r JOIN (SELECT job, MAX(started_at) AS s FROM job_runs \
             GROUP BY job) l ON r.job = l.job AND r.started_at = l.s ORDER BY r.job",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::job_run).collect())
    }

    async fn runs(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<JobRun>> {
        let found = sqlx::query(
            "SELECT * FROM job_runs WHERE ($1::BIGINT IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.iter().map(rows::job_run).collect())
    }

    async fn purge_runs(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM job_runs r WHERE r.started_at < $1 AND r.outcome <> 'running' \
             AND EXISTS (SELECT 1 FROM job_runs l WHERE l.job = r.job \
               AND l.scheduled_for > r.scheduled_for AND l.started_at > r.started_at)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
