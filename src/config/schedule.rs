//! Configuration, schedule: the jobs the daemon runs and their cron expressions, parsed once
//! at validation; the scheduler computes slots and drives tokio-cron-scheduler with the
//! parsed [`Cron`].

use std::fmt;
use std::str::FromStr;

use croner::Cron;

/// A job of the daemon, by the names used in `schedule.*`, the run history and the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// A sync followed by an evaluation (scheduled) or a sync alone (`run --once`).
    Sync,
    /// The evaluation of `run --once` (scheduled only after each sync).
    Evaluate,
    /// Digests, then a delivery.
    Notify,
    /// A drain of the outbox.
    Deliver,
    /// A fresh pass over the whole scope, then an evaluation.
    Resync,
    /// The purge of finished outbox items and runs past their retention.
    Purge,
}

impl Job {
    /// The jobs with a schedule of their own, in `schedule.*` order.
    pub const SCHEDULED: [Job; 5] = [Job::Sync, Job::Notify, Job::Deliver, Job::Resync, Job::Purge];

    const ALL: [Job; 6] =
        [Job::Sync, Job::Evaluate, Job::Notify, Job::Deliver, Job::Resync, Job::Purge];

    pub fn as_str(&self) -> &'static str {
        match self {
            Job::Sync => "sync",
            Job::Evaluate => "evaluate",
            Job::Notify => "notify",
            Job::Deliver => "deliver",
            Job::Resync => "resync",
            Job::Purge => "purge",
        }
    }
}

/// A job name that is not one of [`Job`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no job `{0}`")]
pub struct UnknownJob(pub String);

impl FromStr for Job {
    type Err = UnknownJob;

    fn from_str(s: &str) -> Result<Job, UnknownJob> {
        Job::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| UnknownJob(s.to_string()))
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cron expression as written in `daemon.toml`, and its one parse.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expr: String,
    pub cron: Cron,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        Ok(Schedule { expr: expr.to_string(), cron: parse_cron(expr)? })
    }
}

/// Parses a cron expression exactly as tokio-cron-scheduler does (seconds required, day of
/// month and day of week both required when both are given), so what `check-config`
/// accepts is what runs.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(format!(
            "expected 6 or 7 fields (sec min hour day month weekday [year]), found {fields}"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_without_seconds_are_refused() {
        assert!(parse_cron("0 6 * * *").is_err());
        assert!(parse_cron("0 0 6 * * Lun").is_err());
        assert!(parse_cron("*/5 * * * * *").is_ok());
    }

    #[test]
    fn jobs_read_back_from_their_names() {
        for job in Job::ALL {
            assert_eq!(job.as_str().parse::<Job>(), Ok(job));
        }
        assert!("nope".parse::<Job>().is_err());
    }
}
