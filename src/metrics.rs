//! Metrics: what the daemon has done and holds, in Prometheus form for `/metrics` — job
//! runs, durations and last successes, contracts synced, open findings (and those answered
//! or silenced), outbox depth and delivery failures.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::notify::outbox::DeliveryReport;
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobOutcome {
    job: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    kind: String,
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

fn duration_histogram() -> Histogram {
    // 0.1 s … ~27 min: from a quick delivery to a national-scale sync.
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

/// The daemon's metrics. The families are cheap handles; the registry encodes them.
pub struct Metrics {
    registry: Registry,
    runs: Family<JobOutcome, Counter>,
    durations: Family<JobLabel, Histogram, fn() -> Histogram>,
    last_success: Family<JobLabel, Gauge<f64, AtomicU64>>,
    /// Contracts read by the last sync.
    pub contracts_synced: Gauge,
    contracts_stored: Gauge,
    findings_open: Family<FindingLabels, Gauge>,
    silences_active: Gauge,
    acknowledged: Family<StateLabel, Gauge>,
    outbox: Family<StateLabel, Gauge>,
    delivery_failures: Family<ChannelLabel, Counter>,
    /// The last scrape's text and when its reading began: one reading at a time.
    last: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cierre");
        let m = Metrics {
            runs: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            last_success: Family::default(),
            contracts_synced: Gauge::default(),
            contracts_stored: Gauge::default(),
            findings_open: Family::default(),
            silences_active: Gauge::default(),
            acknowledged: Family::default(),
            outbox: Family::default(),
            delivery_failures: Family::default(),
            registry: Registry::default(),
            last: tokio::sync::Mutex::new(None),
        };
        registry.register(
            "job_runs",
            "Job runs by outcome (ok, failed, skipped, overlap)",
            m.runs.clone(),
        );
        registry.register("job_duration_seconds", "How long job runs took", m.durations.clone());
        registry.register(
            "job_last_success_timestamp_seconds",
            "When each job last finished successfully (Unix time)",
            m.last_success.clone(),
        );
        registry.register(
            "contracts_synced",
            "Contracts read by the last sync",
            m.contracts_synced.clone(),
        );
        registry.register(
            "contracts_stored",
            "Contracts stored and not vanished",
            m.contracts_stored.clone(),
        );
        registry.register(
            "findings_open",
            "Open findings by kind and level",
            m.findings_open.clone(),
        );
        registry.register("silences_active", "Silences in force today", m.silences_active.clone());
        registry.register(
            "findings_acknowledged",
            "Open findings with an office head's answer in force, by state (en_tramite, \
             no_aplica, documento_publicado)",
            m.acknowledged.clone(),
        );
        registry.register("outbox_items", "Outbox items by state", m.outbox.clone());
        registry.register(
            "delivery_failures",
            "Failed delivery attempts by channel (email, webhook)",
            m.delivery_failures.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts an outcome that is not a run (an overlap refused).
    pub fn record_outcome(&self, job: &str, outcome: &str) {
        self.runs.get_or_create(&JobOutcome { job: job.into(), outcome: outcome.into() }).inc();
    }

    pub fn record_run(&self, job: &str, outcome: &str, took: Duration, finished_at: DateTime<Utc>) {
        self.record_outcome(job, outcome);
        self.durations.get_or_create(&JobLabel { job: job.into() }).observe(took.as_secs_f64());
        if outcome == "ok" {
            let ts = finished_at.timestamp_millis() as f64 / 1000.0;
            self.last_success.get_or_create(&JobLabel { job: job.into() }).set(ts);
        }
    }

    pub fn record_delivery(&self, report: &DeliveryReport) {
        for (channel, n) in &report.failures {
            self.delivery_failures
                .get_or_create(&ChannelLabel { channel: channel.clone() })
                .inc_by(*n);
        }
    }

    /// Reads the store's current state (as of `today`) into the gauges, then encodes
    /// everything. One reading at a time: a scrape that arrives while another reads waits,
    /// and answers with the next reading begun after it arrived, shared with every scrape
    /// waiting then (many scrapes at once cost two readings, never one each, and never
    /// interleave their updates of the gauges).
    pub async fn render<S: Store>(
        &self,
        store: &S,
        today: chrono::NaiveDate,
    ) -> anyhow::Result<String> {
        let arrived = std::time::Instant::now();
        let mut last = self.last.lock().await;
        if let Some((began, text)) = &*last
            && *began >= arrived
        {
            return Ok(text.clone());
        }
        let began = std::time::Instant::now();
        let text = self.read(store, today).await?;
        *last = Some((began, text.clone()));
        Ok(text)
    }

    async fn read<S: Store>(&self, store: &S, today: chrono::NaiveDate) -> anyhow::Result<String> {
        let contracts = store.count_rows(crate::domain::Dataset::Contracts, false).await?;
        self.contracts_stored.set(contracts as i64);
        self.findings_open.clear();
        for (kind, level, n) in store.findings_summary().await? {
            self.findings_open.get_or_create(&FindingLabels { kind, level }).set(n as i64);
        }
        let silences = store.silences(today, false, crate::store::IdPage::ALL).await?;
        self.silences_active.set(silences.iter().filter(|s| s.active_on(today)).count() as i64);
        self.acknowledged.clear();
        for state in crate::domain::ack::AckState::ALL {
            self.acknowledged.get_or_create(&StateLabel { state: state.as_str().into() }).set(0);
        }
        for (state, n) in store.acknowledgement_counts().await? {
            self.acknowledged.get_or_create(&StateLabel { state }).set(n as i64);
        }
        let c = store.outbox_counts().await?;
        for (state, n) in [
            ("pending", c.pending),
            ("retrying", c.retrying),
            ("sending", c.sending),
            ("sent", c.sent),
            ("dead", c.dead),
        ] {
            self.outbox.get_or_create(&StateLabel { state: state.into() }).set(n as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
