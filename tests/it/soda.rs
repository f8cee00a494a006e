//! Sync over the SODA API from a real HTTP server on loopback that implements the paging
//! semantics cierre relies on (`$select`, `$where` with `:id >`, `:updated_at >` and
//! `in (…)`, `$order`, `$limit`, `$offset`, `X-App-Token`) over the real sample rows, with
//! fault injection; documents and guarantees as each test sets them.

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
    /// Documents and guarantees by file (`dmgg-8hin.json`, `gjp9-cutm.json`): (`:id`, row
    /// with its own `:updated_at`), sorted by `:id`. Written incrementally, not rebuilt.
    written: Mutex<std::collections::HashMap<String, Vec<(String, serde_json::Value)>>>,
    /// Every row served: (file, its `id_contrato`).
    served: Mutex<Vec<(String, String)>>,
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
    let written;
    let rows: &[(String, serde_json::Value)] = match file.as_str() {
        "jbjy-vk9h.json" => &s.rows,
        "dmgg-8hin.json" | "gjp9-cutm.json" => {
            written = s.written.lock().unwrap().get(&file).cloned().unwrap_or_default();
            &written
        }
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
    let (mut after, mut nits, mut since, mut contracts) =
        (None, None::<Vec<String>>, None::<String>, None::<Vec<String>>);
    let list = |l: &str| -> Vec<String> {
        l.trim_end_matches(')').split(", ").map(|n| n.trim_matches('\'').to_string()).collect()
    };
    if let Some(w) = q.get("$where") {
        for clause in w.split(" AND ") {
            if let Some(v) = clause.strip_prefix(":id > '") {
                after = Some(v.trim_end_matches('\'').to_string());
            } else if let Some(l) = clause.strip_prefix("nit_entidad in (") {
                nits = Some(list(l));
            } else if let Some(v) = clause.strip_prefix(":updated_at > '") {
                since = Some(v.trim_end_matches('\'').to_string());
            } else if let Some(l) = clause.strip_prefix("id_contrato in (") {
                contracts = Some(list(l));
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
        .filter(|(_, r)| {
            contracts.as_ref().is_none_or(|c| c.iter().any(|c| r["id_contrato"] == *c.as_str()))
        })
        .map(|(id, r)| {
            let mut r = r.clone();
            r[":id"] = id.clone().into();
            if r.get(":updated_at").is_none() {
                r[":updated_at"] = format!("2026-11-{:02}T04:30:00.000Z", 1 + rebuild).into();
            }
            r
        })
        .filter(|r| since.as_ref().is_none_or(|s| r[":updated_at"].as_str() > Some(s.as_str())))
        .skip(offset)
        .take(limit)
        .collect();
    s.served.lock().unwrap().extend(page.iter().map(|r| {
        let contract = r["id_contrato"].as_str().or(r["n_mero_de_contrato"].as_str());
        (file.clone(), contract.unwrap_or_default().to_string())
    }));
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
        written: Mutex::default(),
        served: Mutex::default(),
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

/// A guarantee of `contract` (policy `n`) as the dataset serves it, last written `at`.
fn guarantee(contract: &str, n: usize, status: &str, at: &str) -> serde_json::Value {
    serde_json::json!({
        "id_contrato": contract, "numeropoliza": format!("P-{n}"), "tipopoliza": "Cumplimiento",
        "fechafinpoliza": "2027-01-31T00:00:00.000", "estado": status, "valor": "1000000",
        ":updated_at": at,
    })
}

/// The contract ids a guarantees query asked for (`id_contrato in (…)`), if it did.
fn asked_contracts(query: &str) -> Option<Vec<String>> {
    let list = &query[query.find("id_contrato in (")? + 16..];
    let list = &list[..list.find(')')?];
    Some(list.split(", ").map(|c| c.trim_matches('\'').to_string()).collect())
}

#[tokio::test]
async fn an_entity_scoped_sync_asks_only_for_its_contracts_guarantees_then_only_what_changed() {
    let (base, soda) = soda(vec![]).await;
    let sample: Vec<serde_json::Value> = std::fs::read_to_string(sample_contracts())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |keep: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
        let mut ids: Vec<String> = sample
            .iter()
            .filter(|c| keep(c))
            .map(|c| c["id_contrato"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let sena = of(&|c| c["nit_entidad"] == "899999034");
    let others = of(&|c| c["nit_entidad"] != "899999034");
    assert!(sena.len() > 50 && others.len() > 500);
    // Every contract of the sample has a guarantee, written before the first sync.
    let old = "2026-02-01T10:00:00.000Z";
    let mut written: Vec<(String, serde_json::Value)> = sena
        .iter()
        .chain(&others)
        .enumerate()
        .map(|(i, c)| (format!("row-{i:06}"), guarantee(c, i, "Aprobada", old)))
        .collect();
    written.sort_by(|a, b| a.0.cmp(&b.0));
    soda.written.lock().unwrap().insert("gjp9-cutm.json".into(), written.clone());
    let guarantee_queries = || -> Vec<String> {
        let q = soda.queries.lock().unwrap().clone();
        q.into_iter().filter(|q| q.starts_with("gjp9-cutm.json?")).collect()
    };

    // Day one, a full pass: only SENA's contracts are asked for, every one of them, and no
    // guarantee of another entity is served.
    let t = app(&base, 25, "\"899999034\"", "").await;
    let r = t.app.sync().await.unwrap();
    let queries = guarantee_queries();
    let mut asked: Vec<String> = Vec::new();
    for q in &queries {
        assert!(!q.contains(":updated_at"), "a first pass reads everything: {q}");
        asked.extend(asked_contracts(q).unwrap_or_else(|| panic!("not by contract: {q}")));
    }
    asked.sort();
    asked.dedup();
    assert_eq!(asked, sena);
    let served = soda.served.lock().unwrap().clone();
    let served: Vec<&String> =
        served.iter().filter(|(f, _)| f == "gjp9-cutm.json").map(|(_, c)| c).collect();
    assert_eq!(served.len(), sena.len());
    assert!(served.iter().all(|c| sena.contains(c)), "only SENA's guarantees travel");
    let g = &r.datasets[2].counts;
    assert_eq!((r.datasets[2].dataset, g.new, g.vanished), ("guarantees", sena.len() as u64, 0));
    let watermark = t.app.store.watermark(Dataset::Guarantees).await.unwrap();
    assert_eq!(watermark, Some(t.app.clock.now()), "the watermark is the pass's start");

    // SECOP II writes: one of SENA's guarantees changes, one is added, one is taken away,
    // and one is written again unchanged inside the look-back window.
    let since = watermark.unwrap() - chrono::Duration::hours(48);
    let later = (t.app.clock.now() + chrono::Duration::hours(3))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let inside = (since + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let position = |w: &[(String, serde_json::Value)], c: &str| {
        w.iter().position(|(_, g)| g["id_contrato"] == c).unwrap()
    };
    let changed = position(&written, &sena[0]);
    written[changed].1 = guarantee(&sena[0], changed, "Vencida", &later);
    let rewritten = position(&written, &sena[1]);
    written[rewritten].1[":updated_at"] = inside.clone().into();
    let gone = position(&written, &sena[2]);
    written.remove(gone);
    written.push(("row-999999".into(), guarantee(&sena[3], 999_999, "Aprobada", &later)));
    soda.written.lock().unwrap().insert("gjp9-cutm.json".into(), written.clone());
    soda.queries.lock().unwrap().clear();

    // Day two: only what was written since the last pass began (less 48 h) is asked for,
    // and what is not read does not vanish.
    let r = t.app.sync().await.unwrap();
    let cutoff = format!(":updated_at > '{}'", since.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
    let queries = guarantee_queries();
    assert!(!queries.is_empty());
    for q in &queries {
        assert!(q.contains(&cutoff) && asked_contracts(q).is_some(), "{q}");
    }
    let g = &r.datasets[2].counts;
    assert_eq!((g.read, g.new, g.changed, g.unchanged, g.vanished), (3, 1, 1, 1, 0));
    let docs = soda.queries.lock().unwrap().clone();
    assert!(docs.iter().any(|q| q.starts_with("dmgg-8hin.json?") && q.contains(&cutoff)));
    assert!(
        docs.iter()
            .filter(|q| q.starts_with("jbjy-vk9h.json?"))
            .all(|q| !q.contains(":updated_at")),
        "contracts are rebuilt every night: always read whole"
    );
    assert_eq!(
        t.app.store.count_rows(Dataset::Guarantees, false).await.unwrap(),
        sena.len() as u64 + 1
    );

    // The weekly resync reads everything again, and only it finds the one taken away.
    soda.queries.lock().unwrap().clear();
    let options = cierre::sync::SyncOptions { fresh: true, ..t.app.sync_options() };
    let r = t.app.sync_with(&cierre::sync::LogProgress::default(), options).await.unwrap();
    assert!(guarantee_queries().iter().all(|q| !q.contains(":updated_at")));
    let g = &r.datasets[2].counts;
    assert_eq!((g.read, g.vanished), (sena.len() as u64, 1));
    assert_eq!(
        t.app.store.count_rows(Dataset::Guarantees, false).await.unwrap(),
        sena.len() as u64
    );
}

#[tokio::test]
async fn a_guarantees_pass_cut_between_chunks_of_contracts_resumes_in_the_next_chunk() {
    let entities = ["899999034", "890399011", "899999061"];
    let sample: Vec<serde_json::Value> = std::fs::read_to_string(sample_contracts())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut scoped: Vec<String> = sample
        .iter()
        .filter(|c| entities.iter().any(|e| c["nit_entidad"] == *e))
        .map(|c| c["id_contrato"].as_str().unwrap().to_string())
        .collect();
    scoped.sort();
    scoped.dedup();
    let per_query = cierre::source::socrata::CONTRACTS_PER_QUERY;
    assert!(scoped.len() > per_query && scoped.len() < 2 * per_query, "{}", scoped.len());
    // Requests before the second chunk's first: contracts, documents (none), then the first
    // chunk's guarantees (a page of 25 asks once more than it has full pages).
    let page = 25;
    let before = scoped.len() / page + 1 + 1 + per_query / page + 1;
    let mut faults = vec![None; before];
    faults.push(Some(Fault::Status(500)));
    let (base, soda) = soda(faults).await;
    let written: Vec<(String, serde_json::Value)> = scoped
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (format!("row-{i:06}"), guarantee(c, i, "Aprobada", "2026-02-01T10:00:00.000Z"))
        })
        .collect();
    soda.written.lock().unwrap().insert("gjp9-cutm.json".into(), written);
    let list = entities.map(|e| format!("\"{e}\"")).join(", ");
    let t = app(&base, page as u32, &list, "max_retries = 0\n").await;
    let err = t.app.sync().await.unwrap_err();
    assert!(format!("{err:#}").contains("guarantees"), "{err:#}");
    assert_eq!(
        t.app.store.count_rows(Dataset::Guarantees, false).await.unwrap(),
        per_query as u64,
        "the first chunk's guarantees are stored"
    );
    let state = t.app.store.sync_state(Dataset::Guarantees).await.unwrap().expect("a pass is open");
    assert!(state.cursor.as_deref().unwrap().starts_with("0|row-"), "{state:?}");

    // The next sync resumes: the first chunk after its last row (nothing more), then the
    // second chunk from its start; the pass completes with every guarantee once.
    soda.queries.lock().unwrap().clear();
    let r = t.app.sync().await.unwrap();
    let queries: Vec<String> = soda
        .queries
        .lock()
        .unwrap()
        .iter()
        .filter(|q| q.starts_with("gjp9-cutm.json?"))
        .cloned()
        .collect();
    assert!(queries[0].starts_with("gjp9-cutm.json?:id > 'row-"), "{queries:?}");
    assert_eq!(asked_contracts(&queries[0]).unwrap(), scoped[..per_query]);
    assert_eq!(asked_contracts(&queries[1]).unwrap(), scoped[per_query..]);
    assert!(!queries[1].contains(":id >"), "{queries:?}");
    let g = &r.datasets[2].counts;
    assert_eq!(
        (g.read, g.new, g.vanished),
        ((scoped.len() - per_query) as u64, (scoped.len() - per_query) as u64, 0)
    );
    assert_eq!(
        t.app.store.count_rows(Dataset::Guarantees, false).await.unwrap(),
        scoped.len() as u64
    );
}
