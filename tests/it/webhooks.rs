//! Webhooks to a real HTTP receiver on loopback (axum) that verifies every signature with
//! the official `standardwebhooks` crate; faults: 500, 429 with Retry-After, 410, a slow
//! endpoint, a redirect, and an endpoint that keeps failing until it is suspended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use cierre::app::App;
use cierre::clock::FixedClock;
use cierre::config::Webhook;
use cierre::store::prelude::*;

use crate::helpers::TestStore;

use crate::helpers::{date, spawn_app_with};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw: per path, the verified events and how many requests arrived.
#[derive(Default)]
struct Seen {
    events: HashMap<String, Vec<serde_json::Value>>,
    hits: HashMap<String, usize>,
    bad_signatures: usize,
}

type Shared = Arc<Mutex<Seen>>;

async fn receive(
    State(seen): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let hits = {
        let mut s = seen.lock().unwrap();
        let n = s.hits.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    match path.as_str() {
        "slow" => tokio::time::sleep(std::time::Duration::from_secs(3)).await,
        "flaky" if hits <= 2 => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "limited" if hits == 1 => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")]).into_response();
        }
        "gone" => return StatusCode::GONE.into_response(),
        // Chaos: a few milliseconds late, and one request in five refused.
        p if p.starts_with("chaos") => {
            tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(0..6))).await;
            if fastrand::u8(0..5) == 0 {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
        "down" => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "moved" => {
            return (StatusCode::TEMPORARY_REDIRECT, [("location", "/hook/ok")]).into_response();
        }
        _ => {}
    }
    let wh = standardwebhooks::Webhook::new(SECRET).unwrap();
    let mut s = seen.lock().unwrap();
    match wh.verify(body.as_bytes(), &headers) {
        Ok(()) => {
            let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["webhook-id"] = headers["webhook-id"].to_str().unwrap().into();
            s.events.entry(path).or_default().push(v);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => {
            s.bad_signatures += 1;
            StatusCode::UNAUTHORIZED.into_response()
        }
    }
}

/// Starts the receiver on a loopback port; returns its base URL and what it sees.
async fn receiver() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/hook/{path}", axum::routing::post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn hook(base: &str, path: &str, events: &[&str]) -> Webhook {
    Webhook {
        url: format!("{base}/{path}").parse().unwrap(),
        secret: SECRET.to_string().into(),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

const ONE: &str = r#"{"id_contrato":"CO1.PCCNTR.900","referencia_del_contrato":"CPS-900-2026","nit_entidad":"899999034","nombre_entidad":"SENA","estado_contrato":"En ejecución","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-30T00:00:00.000","liquidaci_n":"No"}"#;

/// An app on one contract whose configuration has `hooks`, at noon of `today`.
async fn app_with(
    hooks: Vec<Webhook>,
    today: &str,
    extra: &str,
) -> (crate::helpers::TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, format!("{ONE}\n")).unwrap();
    let mut t = spawn_app_with(&file, today, extra).await;
    t.app.settings.webhooks = hooks;
    (t, dir)
}

fn at(app: &App<TestStore>, day: &str) -> App<TestStore> {
    App {
        settings: app.settings.clone(),
        store: app.store.clone(),
        clock: Arc::new(FixedClock::at_date(date(day))),
    }
}

#[tokio::test]
async fn finding_and_sync_events_arrive_signed_to_the_endpoints_subscribed() {
    let (base, seen) = receiver().await;
    let hooks =
        vec![hook(&base, "all", &[]), hook(&base, "syncs", &["sync.completed", "sync.failed"])];
    let (t, _dir) = app_with(hooks, "2026-02-02", "").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-02"))).await.unwrap();
    let d = t.app.deliver().await.unwrap();
    assert_eq!((d.sent, d.retrying, d.dead), (3, 0, 0));

    let s = seen.lock().unwrap();
    assert_eq!(s.bad_signatures, 0);
    let all = &s.events["all"];
    let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["sync.completed", "finding.opened"]);
    let opened = &all[1];
    assert_eq!(opened["data"]["finding"]["contract_id"], "CO1.PCCNTR.900");
    assert_eq!(opened["data"]["finding"]["kind"], "closable");
    assert_eq!(opened["data"]["finding"]["level"], "aviso");
    assert_eq!(opened["data"]["contract"]["referencia_del_contrato"], "CPS-900-2026");
    assert!(opened["timestamp"].as_str().unwrap().starts_with("2026-02-02T17:00:00"));
    assert_eq!(all[0]["data"]["datasets"][0]["new"], 1);
    let syncs = &s.events["syncs"];
    assert_eq!(syncs.len(), 1);
    assert_eq!(syncs[0]["type"], "sync.completed");
}

#[tokio::test]
async fn escalation_and_resolution_are_announced_once_each() {
    let (base, seen) = receiver().await;
    // The closable lifecycle alone.
    let only_closable = "[rules.state_outdated]\nenabled = false\n";
    let (t, dir) = app_with(
        vec![hook(&base, "ok", &["finding.opened", "finding.escalated", "finding.resolved"])],
        "2026-02-02",
        only_closable,
    )
    .await;
    t.app.sync().await.unwrap();
    let cal = cierre::calendar::Calendar::colombia();
    let deadline = cal.add_business_days(date("2026-01-31"), 30);
    let days = [
        date("2026-02-02"),
        cal.add_business_days(deadline, -10),
        cal.add_business_days(deadline, 1),
    ];
    for day in days {
        t.app.evaluate(Some(day)).await.unwrap();
        // Evaluating the same day again announces nothing new.
        t.app.evaluate(Some(day)).await.unwrap();
    }
    std::fs::write(
        dir.path().join("one.jsonl"),
        format!("{}\n", ONE.replace("En ejecución", "Cerrado")),
    )
    .unwrap();
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(days[2])).await.unwrap();
    at(&t.app, "2026-06-01").deliver().await.unwrap();

    let s = seen.lock().unwrap();
    let events: Vec<(String, String)> = s.events["ok"]
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["data"]["finding"]["level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("finding.opened".to_string(), "aviso".to_string()),
            ("finding.escalated".to_string(), "urgente".to_string()),
            ("finding.escalated".to_string(), "vencido".to_string()),
            ("finding.resolved".to_string(), "vencido".to_string()),
        ]
    );
    assert_eq!(s.events["ok"][1]["data"]["previous_level"], "aviso");
    let mut ids: Vec<&str> =
        s.events["ok"].iter().map(|e| e["webhook-id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn failures_are_retried_honouring_retry_after_and_refusals_are_dead_lettered() {
    let (base, seen) = receiver().await;
    let opened = ["finding.opened"];
    let hooks = vec![
        hook(&base, "flaky", &opened),
        hook(&base, "limited", &opened),
        hook(&base, "gone", &opened),
        hook(&base, "moved", &opened),
        hook(&base, "slow", &opened),
    ];
    let (t, _dir) = app_with(hooks, "2026-02-02", "[delivery]\nwebhook_timeout_secs = 1\n").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-02"))).await.unwrap();
    let d = t.app.deliver().await.unwrap();
    // flaky (500), limited (429) and slow (timeout) wait; gone (410) and moved (a
    // redirect, never followed) are refused for good.
    assert_eq!((d.sent, d.retrying, d.dead), (0, 3, 2));
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    let by = |p: &str| items.iter().find(|i| i.target.ends_with(p)).unwrap().clone();
    let now = t.app.clock.now();
    assert!(by("/limited").next_attempt_at - now >= Duration::seconds(120), "Retry-After honoured");
    assert!(by("/flaky").next_attempt_at - now < Duration::seconds(120));
    assert!(by("/slow").last_error.as_deref().unwrap().contains("timed out"));
    assert_eq!(by("/gone").status, "dead");
    assert!(by("/moved").last_error.as_deref().unwrap().contains("307"));

    // Later: flaky fails once more then succeeds; limited and slow... slow never answers
    // in time, so it keeps waiting.
    let mut total_sent = 0;
    for hours in [1, 3, 8] {
        total_sent += at(&t.app, "2026-02-02").deliver().await.map(|d| d.sent).unwrap_or(0);
        let later = App {
            settings: t.app.settings.clone(),
            store: t.app.store.clone(),
            clock: Arc::new(FixedClock(now + Duration::hours(hours))),
        };
        total_sent += later.deliver().await.unwrap().sent;
    }
    assert_eq!(total_sent, 2);
    let s = seen.lock().unwrap();
    assert_eq!(s.events["flaky"].len(), 1);
    assert_eq!(s.events["limited"].len(), 1);
    assert!(!s.events.contains_key("ok"), "the redirect was not followed");
    assert_eq!(s.hits["gone"], 1, "a refused item is not retried");
}

#[tokio::test]
async fn an_endpoint_failing_persistently_is_suspended_and_its_items_wait() {
    let (base, seen) = receiver().await;
    let hooks = vec![hook(&base, "down", &[])];
    let (t, dir) = app_with(
        hooks,
        "2026-02-02",
        "[delivery]\nsuspend_after_failures = 2\nsuspend_minutes = 120\nconcurrency = 1\n",
    )
    .await;
    // Three events: two syncs and the opening.
    t.app.sync().await.unwrap();
    std::fs::write(dir.path().join("one.jsonl"), format!("{ONE}\n")).unwrap();
    let later = App {
        settings: t.app.settings.clone(),
        store: t.app.store.clone(),
        clock: Arc::new(FixedClock(t.app.clock.now() + Duration::seconds(1))),
    };
    later.sync().await.unwrap();
    later.evaluate(Some(date("2026-02-02"))).await.unwrap();
    // The endpoint receives its items in order: the first fails, and the others wait
    // behind it rather than overtake it.
    let d = later.deliver().await.unwrap();
    assert_eq!((d.sent, d.retrying, d.dead, d.suspended.len()), (0, 1, 0, 0));
    assert_eq!(seen.lock().unwrap().hits["down"], 1, "the later items were not tried");
    // Its retry fails too: a second consecutive failure suspends the endpoint.
    let retry = App {
        settings: t.app.settings.clone(),
        store: t.app.store.clone(),
        clock: Arc::new(FixedClock(later.clock.now() + Duration::minutes(2))),
    };
    let d = retry.deliver().await.unwrap();
    assert_eq!(d.suspended.len(), 1);
    assert_eq!((d.sent, d.retrying, d.dead), (0, 1, 0));
    assert_eq!(seen.lock().unwrap().hits["down"], 2);
    let health = t.app.store.endpoints().await.unwrap();
    assert_eq!(health[0].consecutive_failures, 2);
    let until = health[0].suspended_until.unwrap();
    assert_eq!(until, retry.clock.now() + Duration::minutes(120));
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    assert!(items.iter().all(|i| i.status == "pending"));
    let attempts: Vec<i64> = items.iter().rev().map(|i| i.attempts).collect();
    assert_eq!(attempts, [2, 0, 0], "the waiting items spent no attempt");
    // Still suspended an hour later: nothing is tried.
    let hour = App {
        settings: t.app.settings.clone(),
        store: t.app.store.clone(),
        clock: Arc::new(FixedClock(retry.clock.now() + Duration::hours(1))),
    };
    assert_eq!(hour.deliver().await.unwrap().retrying, 0);
    assert_eq!(seen.lock().unwrap().hits["down"], 2);
}

#[tokio::test]
async fn each_endpoint_receives_its_events_in_queue_order_despite_delays_and_failures() {
    let (base, seen) = receiver().await;
    let mut t = spawn_app_with(
        &crate::helpers::sample_contracts(),
        "2026-02-02",
        "[delivery]\nconcurrency = 8\nsuspend_after_failures = 1000\n",
    )
    .await;
    t.app.settings.webhooks = vec![
        hook(&base, "chaos-all", &[]),
        hook(&base, "chaos-findings", &["finding.opened", "finding.escalated", "finding.resolved"]),
    ];
    // SENA and ICBF: a few hundred events, opened and then escalated.
    t.app.settings.source.entities = vec!["899999034".into(), "899999239".into()];
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-02"))).await.unwrap();
    t.app.evaluate(Some(date("2026-03-16"))).await.unwrap();
    let mut items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    items.sort_by_key(|i| i.id);
    assert!(items.len() > 100, "{}", items.len());
    // Deliver until everything is sent, each drain hours after the last so retries are due.
    let mut rounds = 0;
    let mut app = at(&t.app, "2026-03-16");
    while t
        .app
        .store
        .outbox_items(&cierre::store::OutboxPage::all())
        .await
        .unwrap()
        .iter()
        .any(|i| i.status != "sent")
    {
        rounds += 1;
        assert!(rounds < 5_000, "delivery does not finish");
        app.deliver().await.unwrap();
        app = App {
            settings: app.settings.clone(),
            store: app.store.clone(),
            clock: Arc::new(FixedClock(app.clock.now() + Duration::hours(7))),
        };
    }
    let s = seen.lock().unwrap();
    assert_eq!(s.bad_signatures, 0);
    for path in ["chaos-all", "chaos-findings"] {
        let target = format!("{base}/{path}");
        let queued: Vec<String> = items
            .iter()
            .filter(|i| i.target == target)
            .map(|i| i.message_id.clone().unwrap_or_else(|| i.idempotency_key.clone()))
            .collect();
        let received: Vec<String> =
            s.events[path].iter().map(|e| e["webhook-id"].as_str().unwrap().to_string()).collect();
        assert_eq!(received.len(), queued.len(), "{path}: each event once");
        assert!(received == queued, "{path}: events arrived out of queue order");
        assert!(s.hits[path] > received.len(), "{path}: the receiver did refuse some");
    }
}
