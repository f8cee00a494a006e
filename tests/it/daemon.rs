//! The daemon: slots claimed once, overlaps refused, missed slots caught up once, business
//! days respected (controlled clock); and the real binary — health, readiness, metrics, the
//! token check, SIGHUP reloads, and SIGTERM in the middle of a sync.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cierre::clock::FixedClock;
use cierre::domain::Dataset;
use cierre::scheduler::{Daemon, RunOutcome};
use cierre::store::JobRun;
use cierre::store::prelude::*;

use crate::helpers::TestStore;

use crate::helpers::{cierre, config_text, sample_contracts, spawn_app_with};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A JSON Lines file of `n` contracts shaped like the real ones (distinct ids).
fn big_file(dir: &Path, n: usize) -> PathBuf {
    let sample: Vec<serde_json::Value> = std::fs::read_to_string(sample_contracts())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut out = String::new();
    for i in 0..n {
        let mut v = sample[i % sample.len()].clone();
        v["id_contrato"] =
            format!("{}-{}", v["id_contrato"].as_str().unwrap(), i / sample.len()).into();
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let path = dir.join(format!("big-{n}.jsonl"));
    std::fs::write(&path, out).unwrap();
    path
}

async fn daemon_at(now: &str) -> (crate::helpers::TestApp, Arc<Daemon<TestStore>>) {
    let t = spawn_app_with(&sample_contracts(), "2026-11-21", "").await;
    let clock = Arc::new(FixedClock(utc(now)));
    let d = Daemon::new(t.app.settings.clone(), t.app.store.clone(), clock);
    (t, d)
}

fn ran(outcome: &str) -> RunOutcome {
    RunOutcome::Ran { outcome: outcome.into() }
}

#[tokio::test]
async fn a_slot_runs_once_and_is_recorded_with_its_counts() {
    let (t, d) = daemon_at("2026-11-21T11:00:00.300Z").await;
    let slot = utc("2026-11-21T11:00:00Z");
    assert_eq!(d.run_slot("sync", slot).await, ran("ok"));
    assert_eq!(d.run_slot("sync", slot).await, RunOutcome::AlreadyRan);
    let runs = t.app.store.runs(None, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].job.as_str(), runs[0].outcome.as_str(), runs[0].scheduled_for),
        ("sync", "ok", slot)
    );
    assert_eq!(runs[0].counts["sync"]["datasets"][0]["read"], 1000);
    assert!(runs[0].counts["findings"].as_u64().unwrap() > 100);
    // The first evaluation looks at every contract; the next sync's only at what changed or
    // came due; the weekly resync's at every one again, to the same findings.
    assert_eq!(runs[0].counts["full"], true);
    let next = utc("2026-11-22T11:00:00Z");
    assert_eq!(d.run_slot("sync", next).await, ran("ok"));
    assert_eq!(d.run_slot("resync", next).await, ran("ok"));
    let runs = t.app.store.runs(None, 10).await.unwrap();
    let (resync, sync) = (&runs[0].counts, &runs[1].counts);
    assert_eq!((sync["full"].as_bool(), resync["full"].as_bool()), (Some(false), Some(true)));
    assert_eq!(resync["evaluated"], 1000);
    assert!(sync["evaluated"].as_u64().unwrap() < 1000, "{sync}");
    assert_eq!(sync["findings"], runs[2].counts["findings"]);
    assert_eq!(resync["findings"], sync["findings"]);
    assert_eq!(d.run_slot("nope", slot).await, RunOutcome::UnknownJob);
}

#[tokio::test]
async fn a_failing_job_is_recorded_with_its_error_and_the_daemon_goes_on() {
    let (t, d) = daemon_at("2026-11-21T11:00:00Z").await;
    let mut broken = t.app.settings.clone();
    broken.source.contracts_path = Some("/nonexistent/contracts.jsonl".into());
    d.reload(broken);
    assert_eq!(d.run_slot("sync", utc("2026-11-21T11:00:00Z")).await, ran("failed"));
    let run = &t.app.store.runs(None, 1).await.unwrap()[0];
    assert_eq!(run.outcome, "failed");
    assert!(
        run.error.as_deref().unwrap().contains("/nonexistent/contracts.jsonl"),
        "{:?}",
        run.error
    );
    // The next slot, with the file back, runs normally.
    d.reload(t.app.settings.clone());
    assert_eq!(d.run_slot("sync", utc("2026-11-22T11:00:00Z")).await, ran("ok"));
}

#[tokio::test]
async fn a_job_still_running_refuses_the_next_slot() {
    let dir = tempfile::tempdir().unwrap();
    let file = big_file(dir.path(), 20_000);
    let t = spawn_app_with(&file, "2026-11-21", "").await;
    let d = Daemon::new(t.app.settings.clone(), t.app.store.clone(), t.app.clock.clone());
    let first = tokio::spawn({
        let d = d.clone();
        async move { d.run_slot("sync", utc("2026-11-21T11:00:00Z")).await }
    });
    let started = Instant::now();
    while !d.busy() {
        assert!(started.elapsed() < Duration::from_secs(10), "the first run never started");
        tokio::task::yield_now().await;
    }
    assert_eq!(d.run_slot("sync", utc("2026-11-22T11:00:00Z")).await, RunOutcome::Overlap);
    // Other jobs are not blocked by a running sync.
    assert_eq!(d.run_slot("deliver", utc("2026-11-21T11:05:00Z")).await, ran("ok"));
    assert_eq!(first.await.unwrap(), ran("ok"));
    let metrics = d.metrics.render(&t.app.store, crate::helpers::date("2026-11-22")).await.unwrap();
    assert!(
        metrics.contains(r#"cierre_job_runs_total{job="sync",outcome="overlap"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn slots_missed_while_down_are_caught_up_once_each_job() {
    let (t, d) = daemon_at("2026-11-21T15:02:00Z").await;
    // The daemon last ran three days ago; `notify` has never run.
    for (job, slot) in [("sync", "2026-11-18T11:00:00Z"), ("deliver", "2026-11-18T15:00:00Z")] {
        let run = crate::helpers::finished_run(job, utc(slot));
        t.app.store.record_run(&run).await.unwrap();
    }
    let done = d.catch_up().await.unwrap();
    let done: Vec<(String, DateTime<Utc>, RunOutcome)> = done;
    assert_eq!(
        done,
        [
            ("sync".to_string(), utc("2026-11-21T11:00:00Z"), ran("ok")),
            ("deliver".to_string(), utc("2026-11-21T15:00:00Z"), ran("ok")),
        ]
    );
    assert!(d.catch_up().await.unwrap().is_empty(), "nothing is owed any more");
    let runs = t.app.store.runs(None, 100).await.unwrap();
    assert_eq!(runs.iter().filter(|r| r.job == "sync").count(), 2);
    assert_eq!(runs.iter().filter(|r| r.job == "notify").count(), 0);
}

#[tokio::test]
async fn a_starting_replica_closes_only_runs_whose_process_is_gone_and_reruns_notify() {
    let (t, d) = daemon_at("2026-11-23T12:10:00Z").await;
    let store = &t.app.store;
    t.app.sync().await.unwrap();
    t.app.evaluate(None).await.unwrap();
    let here = cierre::replica_id();
    let host = here.rsplit_once(':').unwrap().0.to_string();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = format!("{host}:{}", gone.id());
    gone.wait().unwrap();
    let now = utc("2026-11-23T12:10:00Z");
    let claim = |job: &'static str, slot: &'static str, owner: String, at: &'static str| {
        let store = store.clone();
        async move {
            let rerunnable = ["notify", "deliver"];
            assert!(store.claim_run(job, utc(slot), utc(at), &owner, &rerunnable).await.unwrap());
        }
    };
    // A notify killed mid-run on this host; a sync of this host's dead process; another
    // host's deliver that is alive (a fresh heartbeat) and one whose heartbeat stopped.
    claim("notify", "2026-11-23T12:00:00Z", dead.clone(), "2026-11-23T12:00:00Z").await;
    claim("sync", "2026-11-23T11:00:00Z", dead.clone(), "2026-11-23T11:00:00Z").await;
    claim("deliver", "2026-11-23T12:05:00Z", "other-host:7".into(), "2026-11-23T12:05:00Z").await;
    assert!(
        store.heartbeat("deliver", utc("2026-11-23T12:05:00Z"), "other-host:7", now).await.unwrap()
    );
    claim("deliver", "2026-11-23T11:05:00Z", "lost-host:9".into(), "2026-11-23T11:05:00Z").await;

    let done = d.recover().await.unwrap();
    assert_eq!(
        done,
        [
            ("notify".to_string(), utc("2026-11-23T12:00:00Z"), ran("ok")),
            ("deliver".to_string(), utc("2026-11-23T11:05:00Z"), ran("ok")),
        ],
        "notify and deliver are safe to run again"
    );
    let running: Vec<String> =
        store.running_runs().await.unwrap().into_iter().map(|r| r.owner.unwrap()).collect();
    assert_eq!(running, ["other-host:7"], "the live replica's run is left alone");
    let runs = store.runs(None, 100).await.unwrap();
    let outcome = |job: &str, slot: &str| {
        runs.iter().find(|r| r.job == job && r.scheduled_for == utc(slot)).unwrap().outcome.clone()
    };
    assert_eq!(outcome("notify", "2026-11-23T12:00:00Z"), "ok", "run again, by this process");
    assert_eq!(outcome("sync", "2026-11-23T11:00:00Z"), "abandoned", "a sync resumes instead");
    assert_eq!(outcome("deliver", "2026-11-23T11:05:00Z"), "ok", "its heartbeat had stopped");
    let rerun = runs.iter().find(|r| r.job == "notify").unwrap();
    assert_eq!(rerun.error, None);
    assert_eq!(rerun.owner.as_deref(), Some(here.as_str()));
    // The digests of that day were queued, and the re-run deliver sent them.
    let counts = store.outbox_counts().await.unwrap();
    assert!(counts.sent > 0 && counts.pending == 0, "{counts:?}");
    // The dead process's late record of its run no longer lands: the slot is another's.
    let late = JobRun {
        id: None,
        job: "notify".into(),
        scheduled_for: utc("2026-11-23T12:00:00Z"),
        started_at: utc("2026-11-23T12:00:00Z"),
        finished_at: now,
        outcome: "failed".into(),
        counts: serde_json::Value::Null,
        error: Some("late".into()),
        owner: Some(dead),
    };
    assert!(!store.record_run(&late).await.unwrap());
    assert!(d.recover().await.unwrap().is_empty(), "nothing left to recover");
}

#[tokio::test]
async fn digests_go_out_on_business_days_only() {
    // Monday 2026-12-07 is a business day; Tuesday 2026-12-08 is a holiday.
    let (_t, d) = daemon_at("2026-12-08T12:00:30Z").await;
    let out = d.run_slot("notify", utc("2026-12-08T12:00:00Z")).await;
    assert_eq!(out, RunOutcome::Skipped { reason: "not a business day".into() });
    let (_t, d) = daemon_at("2026-12-07T12:00:30Z").await;
    assert_eq!(d.run_slot("notify", utc("2026-12-07T12:00:00Z")).await, ran("ok"));
}

/// The real `cierre run`, killed on drop, with its log lines collected.
pub struct Process {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    base: String,
    pub config: PathBuf,
}

impl Process {
    /// `cierre run` on the configuration at `config`, whose admin API is on `port`.
    pub fn spawn(dir: &Path, config: PathBuf, port: u16) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cierre"))
            .args(["--config", config.to_str().unwrap(), "run"])
            .current_dir(dir)
            .env("CIERRE_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let p = Process { child, log, base: format!("http://127.0.0.1:{port}"), config };
        p.wait_for(|| p.get("/healthz").is_some_and(|(s, _)| s == 200), "the admin API to come up");
        p
    }

    fn start(dir: &Path, contracts: &Path, extra: &str) -> Process {
        let port = crate::smtp::free_port();
        let config = dir.join("daemon.toml");
        let text = config_text(dir, contracts, extra)
            + &format!(
                "\n[http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"s3creto\"\n\n[schedule]\nsync = \"0 0 6 1 1 *\"\nnotify = \"0 0 7 1 1 *\"\ndeliver = \"0 0 8 1 1 *\"\npurge = \"0 0 9 1 1 *\"\nshutdown_grace_secs = 1\n"
            );
        std::fs::write(&config, text).unwrap();
        Process::spawn(dir, config, port)
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_client::get(&format!("{}{path}", self.base))
    }

    fn post(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http_client::post(&format!("{}{path}", self.base), token).expect("the daemon answers")
    }

    fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    pub fn wait_for(&self, mut ok: impl FnMut() -> bool, what: &str) {
        let started = Instant::now();
        while !ok() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and how long it took.
    pub fn terminate(mut self) -> (Option<i32>, Duration) {
        self.signal("TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}

/// A blocking HTTP client for the daemon's admin API on loopback. It keeps no idle
/// connection, so a stopping or restarted daemon never meets a pooled one.
mod http_client {
    use std::sync::OnceLock;

    use reqwest::Method;
    use reqwest::blocking::Client;

    fn client() -> &'static Client {
        static CLIENT: OnceLock<Client> = OnceLock::new();
        CLIENT.get_or_init(|| {
            cierre::tls::install_crypto_provider();
            Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .expect("the test HTTP client builds")
        })
    }

    fn request(method: Method, url: &str, token: Option<&str>) -> Option<(u16, String)> {
        let mut request = client().request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().ok()?;
        let code = response.status().as_u16();
        Some((code, response.text().ok()?))
    }

    pub fn get(url: &str) -> Option<(u16, String)> {
        request(Method::GET, url, None)
    }

    /// The headers of the answer to a GET.
    pub fn headers(url: &str) -> reqwest::header::HeaderMap {
        client().get(url).send().expect("the daemon answers").headers().clone()
    }

    pub fn post(url: &str, token: Option<&str>) -> Option<(u16, String)> {
        request(Method::POST, url, token)
    }

    /// A POST with a JSON body.
    pub fn post_json(url: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut request =
            client().post(url).header("content-type", "application/json").body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().expect("the daemon answers");
        (response.status().as_u16(), response.text().unwrap_or_default())
    }
}

#[test]
fn the_daemon_serves_health_readiness_metrics_and_guards_its_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let contracts = dir.path().join("contracts.jsonl");
    std::fs::copy(sample_contracts(), &contracts).unwrap();
    let p = Process::start(dir.path(), &contracts, "");
    let (code, body) = p.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no complete sync yet"));

    assert_eq!(p.post("/api/jobs/sync/run", None).0, 401);
    assert_eq!(p.post("/api/jobs/sync/run", Some("otro")).0, 401);
    assert_eq!(p.post("/api/jobs/nope/run", Some("s3creto")).0, 404);
    assert_eq!(p.post("/api/outbox/requeue?channel=email", None).0, 401);
    let (code, body) = p.post("/api/outbox/requeue?channel=email", Some("s3creto"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""requeued":0"#), "{body}");
    let runs = |p: &Process| p.get("/api/runs").unwrap().1;
    assert_eq!(
        runs(&p).trim(),
        r#"{"items":[],"next_before":null}"#,
        "a refused trigger changes nothing"
    );
    assert_eq!(p.post("/api/jobs/sync/run", Some("s3creto")).0, 202);
    p.wait_for(|| runs(&p).contains(r#""outcome":"ok""#), "the triggered sync to finish");
    assert_eq!(p.get("/readyz").unwrap().0, 200);

    let metrics = p.get("/metrics").unwrap().1;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{metrics}"))
    };
    assert_eq!(value(r#"cierre_job_runs_total{job="sync",outcome="ok"}"#), 1.0);
    assert_eq!(value("cierre_contracts_stored "), 1000.0);
    assert_eq!(value("cierre_contracts_synced "), 1000.0);
    assert!(value(r#"cierre_findings_open{kind="closable",level="vencido"}"#) > 100.0);
    assert!(value(r#"cierre_job_last_success_timestamp_seconds{job="sync"}"#) > 1.7e9);
    assert_eq!(value(r#"cierre_outbox_items{state="dead"}"#), 0.0);
    assert!(metrics.contains("# TYPE cierre_job_duration_seconds histogram"));

    // Findings come in pages: every one once, in id order, whatever the page size.
    let pages = |query: &str, limit: u32| -> Vec<serde_json::Value> {
        let (mut items, mut after) = (Vec::new(), None::<i64>);
        loop {
            let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
            let url = format!("/api/findings?{query}&limit={limit}{cursor}");
            let body = p
                .get(&url)
                .unwrap_or_else(|| {
                    let log = p.log.lock().unwrap();
                    panic!(
                        "{url}: no answer; log:\n{}",
                        log[log.len().saturating_sub(15)..].join("\n")
                    )
                })
                .1;
            let page: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(page["items"].is_array(), "{query}: {body}");
            let got = page["items"].as_array().unwrap();
            assert!(got.len() <= limit as usize, "{body}");
            items.extend(got.iter().cloned());
            match page["next_after"].as_i64() {
                Some(next) => after = Some(next),
                None => return items,
            }
        }
    };
    let sena = pages("office=sena", 1000);
    assert!(!sena.is_empty());
    assert!(sena.iter().all(|f| f["contract_id"].is_string() && f["id"].is_i64()));
    let all = pages("kind=closable", 1000);
    assert!(all.len() > sena.len());
    assert!(all.iter().all(|f| f["kind"] == "closable"));
    let small = pages("kind=closable", 7);
    assert_eq!(small, all);
    let ids: Vec<i64> = small.iter().map(|f| f["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order, none twice");
    let (code, html) = p.get("/api/digest?to=jefa@sena.example").unwrap();
    assert_eq!(code, 200);
    assert!(html.contains("Expedientes que deben cerrarse"));
    // Silences over the API: the token, every mistake at once, then kept and expired.
    let silences = format!("{}/api/silences", p.base);
    let good = r#"{"matchers": {"kinds": ["closable"], "fields": [{"field": "nit_entidad",
        "value": "899999034"}]}, "starts_on": "2026-01-01", "ends_on": "2099-01-01",
        "author": "ana", "comment": "en liquidación judicial"}"#;
    assert_eq!(http_client::post_json(&silences, None, good).0, 401);
    let bad = r#"{"matchers": {}, "starts_on": "2026-01-01", "ends_on": "2026-01-02",
        "author": "ana", "comment": " "}"#;
    let (code, body) = http_client::post_json(&silences, Some("s3creto"), bad);
    assert_eq!(code, 400, "{body}");
    let errors: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(errors["errors"].as_array().unwrap().len(), 3, "{body}");
    let (code, body) = http_client::post_json(&silences, Some("s3creto"), good);
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].as_i64().unwrap();
    let listed = p.get("/api/silences").unwrap().1;
    assert!(listed.contains(&format!("\"id\":{id}")) && listed.contains("899999034"), "{listed}");
    // In force today: counted, and named on the findings it keeps out of digests only.
    assert!(p.get("/metrics").unwrap().1.contains("cierre_silences_active 1\n"));
    let sena = pages("office=sena", 1000);
    for f in &sena {
        let silenced = f["silenced_by"].as_array().unwrap();
        assert_eq!(!silenced.is_empty(), f["kind"] == "closable", "{f}");
    }
    assert!(sena.iter().any(|f| f["silenced_by"] == serde_json::json!([id])));
    // Answers over the API: the token, every mistake at once, what is not there, then
    // shown on the finding, counted, listed and in its history beside the silence.
    let acks = format!("{}/api/acknowledgements", p.base);
    let target = sena.iter().find(|f| f["kind"] == "closable").unwrap();
    let (fid, contract) = (target["id"].as_i64().unwrap(), target["contract_id"].as_str().unwrap());
    let until = (chrono::Utc::now().date_naive() + chrono::Days::new(30)).to_string();
    let good = format!(
        r#"{{"contract_id": "{contract}", "kind": "closable", "state": "en_tramite",
        "until": "{until}", "reason": "acta en revisión jurídica", "author": "jefa"}}"#
    );
    assert_eq!(http_client::post_json(&acks, None, &good).0, 401);
    let bad = format!(
        r#"{{"contract_id": "{contract}", "kind": "closable", "state": "en_tramite", "reason": " ", "author": "jefa"}}"#
    );
    let (code, body) = http_client::post_json(&acks, Some("s3creto"), &bad);
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["errors"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{body}"
    );
    let missing = good.replace(contract, "CO1.PCCNTR.0");
    assert_eq!(http_client::post_json(&acks, Some("s3creto"), &missing).0, 404);
    let (code, body) = http_client::post_json(&acks, Some("s3creto"), &good);
    assert_eq!(code, 201, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer["finding_id"].as_i64(), answer["state"].as_str()),
        (Some(fid), Some("en_tramite"))
    );
    let listed: serde_json::Value =
        serde_json::from_str(&p.get("/api/acknowledgements").unwrap().1).unwrap();
    assert_eq!(listed["items"][0]["id"], answer["id"]);
    let shown = pages("office=sena", 1000).into_iter().find(|f| f["id"] == fid).unwrap();
    assert_eq!(shown["acknowledgement"]["state"], "en_tramite", "{shown}");
    assert_eq!(shown["acknowledgement"]["hidden"], true, "{shown}");
    assert!(
        p.get("/metrics")
            .unwrap()
            .1
            .contains("cierre_findings_acknowledged{state=\"en_tramite\"} 1\n")
    );
    let history: serde_json::Value =
        serde_json::from_str(&p.get(&format!("/api/findings/{fid}/history")).unwrap().1).unwrap();
    let events: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    for event in ["opened", "acknowledged", "silenced"] {
        assert!(events.contains(&event), "{event}: {history}");
    }
    assert_eq!(p.get("/api/findings/999999999/history").unwrap().0, 404);
    let expire = format!("/api/silences/{id}/expire");
    assert_eq!(p.post(&expire, None).0, 401);
    assert_eq!(p.post(&expire, Some("s3creto")).0, 200);
    assert_eq!(p.post(&expire, Some("s3creto")).0, 404);
    assert!(!p.get("/api/silences").unwrap().1.contains("899999034"));
    assert!(p.get("/metrics").unwrap().1.contains("cierre_silences_active 0\n"));
    assert!(p.get("/api/silences?all=true").unwrap().1.contains("\"expired_at\":\""));

    // Every answer, the HTML preview included, forbids scripts, framing and sniffing.
    for path in ["/api/digest?to=jefa@sena.example", "/api/findings", "/healthz"] {
        let h = http_client::headers(&format!("{}{path}", p.base));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("script-src"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    let status = p.get("/api/status").unwrap().1;
    assert!(status.contains(r#""schedule":"0 0 6 1 1 *""#), "{status}");

    // A download that lost 90 % of the contracts: the sync is held, and the daemon is not
    // ready until an operator confirms the drop.
    let text = std::fs::read_to_string(&contracts).unwrap();
    let tenth: String = text.lines().take(100).map(|l| format!("{l}\n")).collect();
    std::fs::write(&contracts, tenth).unwrap();
    assert_eq!(p.post("/api/jobs/sync/run", Some("s3creto")).0, 202);
    p.wait_for(|| runs(&p).contains(r#""outcome":"failed""#), "the held sync to be recorded");
    let (code, body) = p.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(
            "the sync of contracts is held: held, nothing marked vanished: 900 of the 1000"
        ),
        "{body}"
    );
    assert!(p.get("/api/status").unwrap().1.contains(r#""status":"held""#));
    assert_eq!(value("cierre_contracts_stored "), 1000.0);
    assert_eq!(p.post("/api/jobs/sync/run?accept_vanishing=true", Some("s3creto")).0, 202);
    p.wait_for(
        || runs(&p).matches(r#""outcome":"ok""#).count() == 2,
        "the confirmed sync to finish",
    );
    assert_eq!(p.get("/readyz").unwrap().0, 200);
    let metrics = p.get("/metrics").unwrap().1;
    assert!(metrics.contains("cierre_contracts_stored 100\n"), "{metrics}");

    let (code, took) = p.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn sighup_puts_a_good_configuration_in_force_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), &sample_contracts(), "");
    let original = std::fs::read_to_string(&p.config).unwrap();

    std::fs::write(&p.config, original.replace("[schedule]", "[schedule]\nnonsense = 1")).unwrap();
    p.signal("HUP");
    p.wait_for(
        || p.logged("the new configuration is invalid"),
        "the bad configuration to be refused",
    );
    assert!(p.logged("schedule.nonsense"));
    let status = p.get("/api/status").unwrap().1;
    assert!(status.contains(r#""schedule":"0 0 8 1 1 *""#), "the old one still runs: {status}");

    std::fs::write(
        &p.config,
        original.replace("deliver = \"0 0 8 1 1 *\"", "deliver = \"0 30 9 * * Mon-Fri\""),
    )
    .unwrap();
    p.signal("HUP");
    p.wait_for(
        || p.get("/api/status").unwrap().1.contains(r#""schedule":"0 30 9 * * Mon-Fri""#),
        "the new schedule",
    );
    p.wait_for(|| p.logged("configuration reloaded"), "the reload to finish");
    assert_eq!(p.get("/healthz").unwrap().0, 200);
    assert_eq!(p.terminate().0, Some(0));
}

#[test]
fn sigterm_during_a_sync_leaves_the_store_consistent_and_the_next_sync_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = big_file(dir.path(), 60_000);
    let p = Process::start(dir.path(), &file, "");
    assert_eq!(p.post("/api/jobs/sync/run", Some("s3creto")).0, 202);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = crate::helpers::load(&p.config).unwrap();
    let store = rt.block_on(TestStore::open(&settings.store_url)).unwrap();
    // Wait until some pages are committed, then stop the daemon mid-sync.
    p.wait_for(
        || {
            rt.block_on(store.sync_state(Dataset::Contracts))
                .unwrap()
                .is_some_and(|s| s.cursor.is_some())
        },
        "the first committed page",
    );
    let config = p.config.clone();
    let (code, took) = p.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Every committed page is whole: the rows stored are exactly those before the cursor.
    let state =
        rt.block_on(store.sync_state(Dataset::Contracts)).unwrap().expect("pass interrupted");
    let cursor: u64 = state.cursor.unwrap().parse().unwrap();
    let stored = rt.block_on(store.count_rows(Dataset::Contracts, true)).unwrap();
    assert!(stored > 0 && stored < 60_000, "{stored}");
    assert_eq!(stored, cursor);
    let runs = rt.block_on(store.runs(None, 10)).unwrap();
    assert_eq!(runs[0].outcome, "running", "the interrupted run is still marked running");

    // The next sync resumes after the cursor and completes the pass.
    let out = Command::new(env!("CARGO_BIN_EXE_cierre"))
        .args(["--config", config.to_str().unwrap(), "sync"])
        .current_dir(dir.path())
        .env("CIERRE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!("contracts {:>10} {:>7}", 60_000 - cursor, 60_000 - cursor);
    assert!(text.contains(&expected), "{text}\nexpected {expected}");
    assert_eq!(rt.block_on(store.count_rows(Dataset::Contracts, true)).unwrap(), 60_000);
}

#[test]
fn jobs_fire_on_their_cron_slots_and_logs_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), &sample_contracts(), "[log]\nformat = \"json\"\n");
    // Every two seconds, on even seconds.
    let text = std::fs::read_to_string(&p.config)
        .unwrap()
        .replace("deliver = \"0 0 8 1 1 *\"", "deliver = \"*/2 * * * * *\"");
    std::fs::write(&p.config, text).unwrap();
    p.signal("HUP");
    let deliveries = |p: &Process| -> Vec<serde_json::Value> {
        let page: serde_json::Value = serde_json::from_str(&p.get("/api/runs").unwrap().1).unwrap();
        let runs = page["items"].as_array().unwrap().clone();
        runs.into_iter().filter(|r| r["job"] == "deliver" && r["outcome"] == "ok").collect()
    };
    p.wait_for(|| deliveries(&p).len() >= 3, "three scheduled deliveries");
    let runs = deliveries(&p);
    let mut slots: Vec<DateTime<Utc>> =
        runs.iter().map(|r| r["scheduled_for"].as_str().unwrap().parse().unwrap()).collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), runs.len(), "each slot ran once");
    for s in &slots {
        assert_eq!(s.timestamp() % 2, 0, "{s} is not on an even second");
        assert_eq!(s.timestamp_subsec_nanos(), 0);
    }
    // Every log line is a JSON object.
    let log = p.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains("job finished")));
    for line in &log {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string());
    }
    assert_eq!(p.terminate().0, Some(0));
}

#[test]
fn the_outbox_runs_and_history_of_the_admin_api_come_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), &sample_contracts(), "");
    let config = p.config.to_str().unwrap().to_string();
    let out = cierre(dir.path(), &["--config", &config, "run", "--once", "--as-of", "2026-02-16"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Follows `next_before` from the first page to the last; returns every item's id.
    let walk = |path: &str, limit: usize| -> Vec<i64> {
        let mut ids = Vec::new();
        let mut url = format!("{path}?limit={limit}");
        loop {
            let (code, body) = p.get(&url).unwrap();
            assert_eq!(code, 200, "{body}");
            let page: serde_json::Value = serde_json::from_str(&body).unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= limit, "{body}");
            ids.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
            match page["next_before"].as_i64() {
                Some(before) => url = format!("{path}?limit={limit}&before={before}"),
                None => return ids,
            }
        }
    };
    let outbox = walk("/api/outbox", 3);
    assert_eq!(outbox.len(), 7, "{outbox:?}");
    assert!(outbox.windows(2).all(|w| w[0] > w[1]), "newest first, no overlap: {outbox:?}");
    let runs = walk("/api/runs", 1);
    assert_eq!(runs.len(), 4, "sync, evaluate, notify, deliver: {runs:?}");
    assert!(runs.windows(2).all(|w| w[0] > w[1]), "{runs:?}");
    // Filters apply before the page is cut; a page is never larger than the maximum.
    let sent = p.get("/api/outbox?status=sent&target=jefa@sena.example").unwrap().1;
    let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent["items"].as_array().unwrap().len(), 1, "{sent}");
    assert!(sent["items"][0]["payload"].is_null(), "no payload in lists");
    let big: serde_json::Value =
        serde_json::from_str(&p.get("/api/runs?limit=100000").unwrap().1).unwrap();
    assert_eq!(big["items"].as_array().unwrap().len(), 4);

    // Sent long ago and purged, the sends are in the history, in pages too.
    assert!(walk("/api/deliveries", 2).is_empty());
    let url = crate::helpers::load(&p.config).unwrap().store_url;
    let backdate = if url.starts_with("postgres") {
        "WITH u AS (UPDATE outbox SET finished_at = '2026-01-01T00:00:00Z' RETURNING 1) \
         SELECT COUNT(*) FROM u"
    } else {
        "UPDATE outbox SET finished_at = '2026-01-01T00:00:00+00:00' RETURNING 1"
    };
    tokio::runtime::Runtime::new().unwrap().block_on(crate::helpers::scalar(&url, backdate));
    let text = std::fs::read_to_string(&p.config).unwrap() + "\n[retention]\noutbox_days = 1\n";
    std::fs::write(&p.config, text).unwrap();
    let out = cierre(dir.path(), &["--config", &config, "purge"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("purged 7 outbox item(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let history = walk("/api/deliveries", 2);
    let mut expected = outbox.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(history, expected, "the history keeps the outbox ids");
    assert!(walk("/api/outbox", 3).is_empty());
}
