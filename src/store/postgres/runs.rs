//! Store, PostgreSQL runs: [`RunStore`] on PostgreSQL — the job run history, whose unique
//! `(job, scheduled_for)` makes each scheduled slot run once across replicas.

use chrono::{DateTime, Utc};

use super::PgStore;
use super::rows;
use crate::error::StoreResult;
use crate::store::{JobRun, RunStore};

impl RunStore for PgStore {
    async fn record_run(&self, run: &JobRun) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO job_runs (job, scheduled_for, started_at, finished_at, outcome, counts, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job, scheduled_for) DO UPDATE SET \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             outcome = excluded.outcome, counts = excluded.counts, error = excluded.error",
        )
        .bind(&run.job)
        .bind(run.scheduled_for)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(&run.outcome)
        .bind(run.counts.to_string())
        .bind(&run.error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_run(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO job_runs (job, scheduled_for, started_at, outcome) \
             VALUES ($1, $2, $3, 'running') ON CONFLICT (job, scheduled_for) DO NOTHING",
        )
        .bind(job)
        .bind(slot)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn abandon_running(&self, at: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE job_runs SET outcome = 'abandoned', finished_at = $1, \
             error = 'the process stopped before the run finished' WHERE outcome = 'running'",
        )
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
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

    async fn runs(&self, limit: u32) -> StoreResult<Vec<JobRun>> {
        let found =
            sqlx::query("SELECT * FROM job_runs ORDER BY started_at DESC, id DESC LIMIT $1")
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
        Ok(found.iter().map(rows::job_run).collect())
    }
}
