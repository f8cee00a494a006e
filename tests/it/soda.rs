//! Sync over the SODA API from a real HTTP server on loopback that implements the paging
//! semantics cierre relies on (`$select`, `$where` with `:id >` and `in (…)`, `$order`,
//! `$limit`, `$offset`, `X-App-Token`) over the real sample rows, with fault injection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cierre::domain::Dataset;
use cierre::store::prelude::*;

use crate::helpers::{sample_contracts, spawn_app_with};

#[derive(Debug, Clone)]
enum Fault {
    Status(u16),
    TooMany,
    Truncated,
    Reset,
    Slow,
}

struct Soda {
    /// (`:id`, row) sorted by `:id`.
    rows: Vec<(String, serde_json::Value)>,
    token: String,
    faults: Mutex<VecDeque<Option<Fault>>>,
    queries: Mutex<Vec<String>>,
    /// Bumped to simulate the nightly rebuild: `:updated_at` changes on every row.
    rebuild: Mutex<u32>,
}

type Shared = Arc<Soda>;

async fn resource(
    State(s): State<Shared>,
    Path(file): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    s.queries
        .lock()
        .unwrap()
        .push(format!("{file}?{}", q.get("$where").cloned().unwrap_or_default()));
    if headers.get("x-app-token").and_then(|v| v.to_str().ok()) != Some(s.token.as_str()) {
        return (StatusCode::FORBIDDEN, "invalid app token").into_response();
    }
    let fault = s.faults.lock().unwrap().pop_front().flatten();
    match fault {
        Some(Fault::Status(code)) => {
            return (StatusCode::from_u16(code).unwrap(), "injected").into_response();
        }
        Some(Fault::TooMany) => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "slow down")
                .into_response();
        }
        Some(Fault::Slow) => tokio::time::sleep(std::time::Duration::from_secs(3)).await,
        _ => {}
    }
    let rows: &[(String, serde_json::Value)] = match file.as_str() {
        "jbjy-vk9h.json" => &s.rows,
        // Documents and guarantees: served, with no rows.
        "dmgg-8hin.json" | "gjp9-cutm.json" => &[],
        _ => return (StatusCode::NOT_FOUND, "no such dataset").into_response(),
    };
    if q.get("$order").map(String::as_str) != Some(":id")
        || q.get("$select").map(String::as_str) != Some(":*,*")
    {
        return (StatusCode::BAD_REQUEST, "this server pages only by :id with :* selected")
            .into_response();
    }
    let limit: usize = q.get("$limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
    let offset: usize = q.get("$offset").and_then(|l| l.parse().ok()).unwrap_or(0);
    let (mut after, mut nits) = (None, None::<Vec<String>>);
    if let Some(w) = q.get("$where") {
        for clause in w.split(" AND ") {
            if let Some(v) = clause.strip_prefix(":id > '") {
                after = Some(v.trim_end_matches('\'').to_string());
            } else if let Some(list) = clause.strip_prefix("nit_entidad in (") {
                nits = Some(
                    list.trim_end_matches(')')
                        .split(", ")
                        .map(|n| n.trim_matches('\'').to_string())
                        .collect(),
                );
            } else {
                return (StatusCode::BAD_REQUEST, format!("unsupported clause {clause}"))
                    .into_response();
            }
        }
    }
    let rebuild = *s.rebuild.lock().unwrap();
    let page: Vec<serde_json::Value> = rows
        .iter()
        .filter(|(id, _)| after.as_ref().is_none_or(|a| id > a))
        .filter(|(_, r)| {
            nits.as_ref().is_none_or(|n| n.iter().any(|n| r["nit_entidad"] == *n.as_str()))
        })
        .skip(offset)
        .take(limit)
        .map(|(id, r)| {
            let mut r = r.clone();
            r[":id"] = id.clone().into();
            r[":updated_at"] = format!("2026-11-{:02}T04:30:00.000Z", 1 + rebuild).into();
            r
        })
        .collect();
    let body = serde_json::to_string(&page).unwrap();
    match fault {
        Some(Fault::Truncated) => body[..body.len() / 2].to_string().into_response(),
        Some(Fault::Reset) => {
            // Headers announce the whole body; the connection dies half way.
            let half = body.as_bytes()[..body.len() / 2].to_vec();
            let stream = futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(axum::body::Bytes::from(half)),
                Err(std::io::Error::other("reset")),
            ]);
            Response::builder()
                .header("content-length", body.len().to_string())
                .body(axum::body::Body::from_stream(stream))
                .unwrap()
        }
        _ => ([("content-type", "application/json")], body).into_response(),
    }
}

/// The dataset's metadata, as `/api/views/{id}.json` serves it: `rowsUpdatedAt` moves with
/// each nightly rebuild.
async fn view(State(s): State<Shared>, Path(file): Path<String>) -> Response {
    let id = file.trim_end_matches(".json");
    let rebuilt = 1_764_216_000 + 86_400 * i64::from(*s.rebuild.lock().unwrap());
    axum::Json(serde_json::json!({ "id": id, "rowsUpdatedAt": rebuilt })).into_response()
}

async fn soda(faults: Vec<Option<Fault>>) -> (String, Shared) {
    let rows = std::fs::read_to_string(sample_contracts())
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| (format!("row-{i:06}"), serde_json::from_str(l).unwrap()))
        .collect();
    let s = Arc::new(Soda {
        rows,
        token: "app-token-de-prueba".into(),
        faults: Mutex::new(faults.into()),
        queries: Mutex::default(),
        rebuild: Mutex::new(0),
    });
    let app = axum::Router::new()
        .route("/resource/{file}", axum::routing::get(resource))
        .route("/api/views/{file}", axum::routing::get(view))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, s)
}

fn source_config(base: &str, page_size: u32, entities: &str, extra: &str) -> String {
    format!(
        "[source]\nkind = \"socrata\"\nbase_url = \"{base}\"\napp_token = \"app-token-de-prueba\"\npage_size = {page_size}\n\
         entities = [{entities}]\nrequest_timeout_secs = 1\nretry_base_ms = 1\n{extra}"
    )
}

/// The helpers' configuration with the file source swapped for the SODA API.
async fn app(base: &str, page_size: u32, entities: &str, extra: &str) -> crate::helpers::TestApp {
    let t = spawn_app_with(&sample_contracts(), "2026-02-16", "").await;
    let mut settings = t.app.settings.clone();
    let extra_cfg = source_config(base, page_size, entities, extra);
    let path = t.dir.path().join("soda.toml");
    std::fs::write(&path, extra_cfg).unwrap();
    let soda = crate::helpers::load(&path).unwrap();
    settings.source = soda.source;
    crate::helpers::TestApp {
        app: cierre::app::App { settings, store: t.app.store.clone(), clock: t.app.clock.clone() },
        dir: t.dir,
    }
}

#[tokio::test]
async fn a_sync_over_the_api_stores_exactly_the_scoped_rows_and_the_nightly_rebuild_changes_nothing()
 {
    let (base, soda) = soda(vec![]).await;
    let t = app(&base, 10, "\"899999034\", \"899999239\"", "").await;
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.new, c.rejected, c.retries), (93, 93, 0, 0));
    assert_eq!(c.pages, 10);
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, false).await.unwrap(), 93);
    let queries = soda.queries.lock().unwrap().clone();
    assert!(queries[0].ends_with("?nit_entidad in ('899999034', '899999239')"), "{queries:?}");
    assert!(queries[1].contains(":id > 'row-"), "{queries:?}");

    *soda.rebuild.lock().unwrap() += 1;
    let again = t.app.sync().await.unwrap();
    let c = &again.datasets[0].counts;
    assert_eq!((c.new, c.changed, c.unchanged, c.vanished), (0, 0, 93, 0));
}

#[tokio::test]
async fn every_fault_mid_sync_is_retried_and_the_store_ends_with_exactly_the_source_rows() {
    use Fault::*;
    let faults = vec![
        None,
        Some(TooMany),
        None,
        Some(Status(500)),
        Some(Status(503)),
        None,
        Some(Truncated),
        Some(Reset),
        None,
        Some(Slow),
        None,
    ];
    let (base, _soda) = soda(faults).await;
    let t = app(&base, 100, "", "").await;
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.new, c.rejected), (1000, 1000, 0));
    assert_eq!(c.retries, 6, "429, 500, 503, truncated body, reset, timeout");
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 1000);
    let sample = std::fs::read_to_string(sample_contracts()).unwrap();
    for line in sample.lines().step_by(97) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id_contrato"].as_str().unwrap();
        let c = t.app.store.contract(id).await.unwrap().expect("every source row is stored");
        assert_eq!(c.state.as_deref(), v["estado_contrato"].as_str());
    }
}

#[tokio::test]
async fn a_refused_query_stops_the_sync_with_the_dataset_and_the_query() {
    let (base, soda) = soda(vec![None, Some(Fault::Status(400))]).await;
    let t = app(&base, 100, "", "").await;
    let err = format!("{:#}", t.app.sync().await.unwrap_err());
    assert!(err.contains("refused the contracts query"), "{err}");
    assert!(err.contains("/resource/jbjy-vk9h.json?"), "{err}");
    assert!(err.contains("HTTP 400"), "{err}");
    // The other datasets are still synced: a refused query stops only its own.
    let queries = soda.queries.lock().unwrap().clone();
    let contracts = queries.iter().filter(|q| q.starts_with("jbjy-vk9h")).count();
    assert_eq!(contracts, 2, "a 400 is not retried: {queries:?}");
    assert!(queries.iter().any(|q| q.starts_with("gjp9-cutm")), "{queries:?}");
    assert!(!err.contains("app-token-de-prueba"), "the token is never in messages");
    // The first page is kept; the pass is left to resume.
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 100);
}

#[tokio::test]
async fn a_sync_that_runs_out_of_retries_fails_and_the_next_one_resumes_after_the_last_page() {
    let s500 = Some(Fault::Status(500));
    let (base, soda) = soda(vec![None, None, s500.clone(), s500.clone(), s500]).await;
    let t = app(&base, 100, "", "max_retries = 2\n").await;
    let err = format!("{:#}", t.app.sync().await.unwrap_err());
    assert!(err.contains("after 2 retries"), "{err}");
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 200);
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.new, c.vanished), (800, 800, 0));
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 1000);
    let queries = soda.queries.lock().unwrap().clone();
    let contracts: Vec<&String> = queries.iter().filter(|q| q.starts_with("jbjy-vk9h")).collect();
    assert!(
        contracts[5].contains(":id > 'row-000199'"),
        "resumed after the last committed page: {queries:?}"
    );
}

#[tokio::test]
async fn a_pass_cut_short_before_the_nightly_rebuild_starts_over_after_it() {
    let s500 = Some(Fault::Status(500));
    let (base, soda) = soda(vec![None, None, s500.clone(), s500.clone(), s500]).await;
    let t = app(&base, 100, "", "max_retries = 2\n").await;
    t.app.sync().await.unwrap_err();
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 200);
    // The dataset is rebuilt overnight (`:id`s may all change): the cursor means nothing in
    // the new data, so the next sync reads the whole dataset again.
    *soda.rebuild.lock().unwrap() += 1;
    soda.queries.lock().unwrap().clear();
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.new, c.unchanged, c.vanished), (1000, 800, 200, 0));
    let queries = soda.queries.lock().unwrap().clone();
    assert_eq!(queries[0], "jbjy-vk9h.json?", "a new pass from the start: {queries:?}");
}

#[tokio::test]
async fn a_sync_killed_with_sigkill_between_pages_resumes_and_ends_with_exactly_the_source_rows() {
    // The fourth request is slow: the real `cierre sync` is killed while it waits for it,
    // with three pages of 100 rows committed.
    let (base, soda) = soda(vec![None, None, None, Some(Fault::Slow)]).await;
    let t = app(&base, 100, "", "").await;
    let config = t.dir.path().join("kill.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{}\"\n{}",
            t.app.settings.store_url,
            // Long enough for the slow page to still be in flight when the kill comes.
            source_config(&base, 100, "", "")
                .replace("request_timeout_secs = 1", "request_timeout_secs = 30")
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cierre"))
        .args(["--config", config.to_str().unwrap(), "sync"])
        .current_dir(t.dir.path())
        .env("CIERRE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Waits (on the subprocess, not on a clock the code reads) until the slow request is in
    // flight and the pages before it are committed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let asked = soda.queries.lock().unwrap().len();
        let stored = t.app.store.count_rows(Dataset::Contracts, true).await.unwrap_or(0);
        if asked >= 4 && stored >= 300 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the sync never reached the slow page");
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the sync ended before the slow page: {err}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 300);

    // The next sync picks up after the last committed page and ends with every row once.
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.new, c.changed, c.vanished), (700, 0, 0));
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 1000);
    let queries = soda.queries.lock().unwrap().clone();
    let resumed = &queries[4..];
    assert!(
        resumed.first().is_some_and(|q| q.contains(":id > 'row-000299'")),
        "resumed after the last committed page: {queries:?}"
    );
    let source = std::fs::read_to_string(sample_contracts()).unwrap();
    for line in source.lines().step_by(97) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id_contrato"].as_str().unwrap();
        let stored = t.app.store.raw_record(Dataset::Contracts, id).await.unwrap().unwrap();
        let text = cierre::source::raw::decompress(&stored).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["id_contrato"], v["id_contrato"]);
        assert_eq!(back["estado_contrato"], v["estado_contrato"]);
    }
}
