//! Admin HTTP API (loopback by default): health, readiness, Prometheus metrics, JSON views
//! of runs, findings and the outbox, a digest preview, and bearer-protected triggers.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::admin::PreviewError;
use crate::config::routing;
use crate::config::schedule::Job;
use crate::domain::Dataset;
use crate::scheduler::Daemon;
use crate::store::{FindingFilter, IdPage, OutboxPage, Store};

/// The routes, on the daemon's state.
pub fn router<S: Store + Clone + 'static>(daemon: Arc<Daemon<S>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/api/status", get(status::<S>))
        .route("/api/runs", get(runs::<S>))
        .route("/api/findings", get(findings::<S>))
        .route("/api/outbox", get(outbox::<S>))
        .route("/api/deliveries", get(deliveries::<S>))
        .route("/api/digest", get(digest_preview::<S>))
        .route("/api/jobs/{job}/run", post(trigger::<S>))
        .route("/api/outbox/requeue", post(requeue::<S>))
        .route("/api/silences", get(silences::<S>).post(add_silence::<S>))
        .route("/api/silences/{id}/expire", post(expire_silence::<S>))
        .route("/api/acknowledgements", get(acknowledgements::<S>).post(acknowledge::<S>))
        .route("/api/findings/{id}/history", get(finding_history::<S>))
        .merge(crate::web::routes::<S>())
        .merge(crate::admin::routes::<S>())
        .layer(axum::middleware::map_response(secure))
        .with_state(daemon)
}

/// Headers on every answer: no sniffing, no framing, no referrer, nothing cached, and a
/// content security policy that lets a page (the digest preview) style itself and nothing
/// else — no script, no request elsewhere, no form.
async fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, axum::http::HeaderValue::from_static(value));
    }
    // The web view's pages set their own, which lets their forms post here.
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(axum::http::HeaderValue::from_static(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ));
    response
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "admin API request failed");
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e.to_string() }))).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz<S: Store + Clone + 'static>(State(d): State<Arc<Daemon<S>>>) -> Response {
    let mut reasons = Vec::new();
    if let Err(e) = d.store.count_rows(Dataset::Contracts, false).await {
        reasons.push(format!("store unreachable: {e}"));
    }
    let max_age = d.settings().http.ready_max_sync_age;
    let last = d.store.last_sync_success().await.ok().flatten();
    match last {
        None => reasons.push("no complete sync yet".to_string()),
        Some(at) => {
            let age = d.clock.now() - at;
            if age.to_std().is_ok_and(|a| a > max_age) {
                reasons.push(format!(
                    "last complete sync at {at} is older than {} h",
                    max_age.as_secs() / 3600
                ));
            }
        }
    }
    // A held sync waits for an operator: the data it would have changed is stale until then.
    let syncs = d.store.last_sync_runs().await.unwrap_or_default();
    for r in syncs.iter().filter(|r| r.status == "held") {
        reasons.push(format!(
            "the sync of {} is held: {}",
            r.dataset,
            r.error.as_deref().unwrap_or("")
        ));
    }
    let body = json!({
        "ready": reasons.is_empty(), "last_sync": last, "syncs": syncs, "reasons": reasons,
    });
    let code = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics<S: Store + Clone + 'static>(State(d): State<Arc<Daemon<S>>>) -> Response {
    let today = d.clock.today(d.settings().schedule.timezone);
    match d.metrics.render(&d.store, today).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

async fn status<S: Store + Clone + 'static>(State(d): State<Arc<Daemon<S>>>) -> Response {
    let jobs = match d.job_status().await {
        Ok(j) => j,
        Err(e) => return internal(e),
    };
    let outbox = match d.store.outbox_counts().await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let endpoints = d.store.endpoints().await.unwrap_or_default();
    let syncs = d.store.last_sync_runs().await.unwrap_or_default();
    Json(json!({
        "jobs": jobs,
        "syncs": syncs,
        "outbox": {
            "pending": outbox.pending, "retrying": outbox.retrying, "sending": outbox.sending,
            "sent": outbox.sent, "dead": outbox.dead,
        },
        "endpoints": endpoints.iter().map(|e| json!({
            "target": e.target,
            "consecutive_failures": e.consecutive_failures,
            "suspended_until": e.suspended_until,
            "last_error": e.last_error,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// The largest page of a list.
const MAX_PAGE: u32 = 1_000;
/// A page's size when none is asked for.
const DEFAULT_PAGE: u32 = 100;

/// A page of a list, newest first: `?limit=` (at most [`MAX_PAGE`]) items with an id below
/// `?before=`; the answer's `next_before` asks for the next page (`null`: the last).
fn page<T: serde::Serialize>(items: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Response {
    let next = (items.len() as u32 == limit).then(|| items.last().map(id)).flatten();
    Json(json!({ "items": items, "next_before": next })).into_response()
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

/// `GET /api/runs?limit=&before=`: the run history, newest first, paginated.
async fn runs<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(q): Query<RunsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    match d.store.runs(q.before, limit).await {
        Ok(r) => page(r, limit, |r| r.id.unwrap_or_default()),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct FindingsQuery {
    kind: Option<String>,
    level: Option<String>,
    /// An office id: findings routed to it.
    office: Option<String>,
    /// A `nit_entidad`.
    entity: Option<String>,
    limit: Option<u32>,
    /// The `next_after` of the previous page.
    after: Option<i64>,
}

/// Findings one request reads at most, matching or not: a filter that matches few of them
/// answers a short page (and where to go on) instead of scanning the whole store.
const FINDINGS_SCAN: usize = 10_000;

/// `GET /api/findings?kind=&level=&office=&entity=&limit=&after=`: open findings in id
/// order with their id, days left counted as of today, in pages of at most `limit` that
/// read at most [`FINDINGS_SCAN`] findings: `{"items": […], "next_after": N}`, `null` once
/// every finding was read.
async fn findings<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(q): Query<FindingsQuery>,
) -> Response {
    let settings = d.settings();
    let office = match &q.office {
        Some(id) => match settings.offices.iter().position(|o| &o.id == id) {
            Some(i) => Some(i),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "error": format!("no office `{id}`") })),
                )
                    .into_response();
            }
        },
        None => None,
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    let _turn = crate::web::scan_turn().await;
    let today = d.clock.today(settings.schedule.timezone);
    let silences = match d.store.silences(today, false, IdPage::ALL).await {
        Ok(s) => crate::findings::silences::in_force(&s, today, &settings),
        Err(e) => return internal(e),
    };
    // Kind, level and entity are kept by the store's query; the office, by routing here.
    let filter =
        FindingFilter { kind: q.kind.clone(), level: q.level.clone(), entity: q.entity.clone() };
    let (mut items, mut after, mut scanned) = (Vec::new(), q.after.unwrap_or(0), 0);
    let mut done = false;
    'pages: while items.len() < limit && scanned < FINDINGS_SCAN {
        let page = match d.store.digest_page(after, &filter, crate::web::READ).await {
            Ok(p) => p,
            Err(e) => return internal(e),
        };
        let whole = page.len() < crate::web::READ as usize;
        for df in page {
            after = df.stored.id;
            scanned += 1;
            let mut f = df.stored.finding;
            f.count_days_from(&settings.calendar, today);
            let c = &df.contract;
            let offices = routing::route(&settings.routes, c);
            if office.is_none_or(|o| offices.contains(&o)) {
                let mut v = serde_json::to_value(&f).unwrap_or_default();
                v["id"] = json!(df.stored.id);
                // The silences in force today that keep it out of digests.
                let by: Vec<i64> =
                    silences.iter().filter(|s| s.matches(&f, c, &offices)).map(|s| s.id).collect();
                v["silenced_by"] = json!(by);
                // The office head's answer in force, if any (and whether it hides it today).
                v["acknowledgement"] = match &df.stored.ack {
                    Some(a) => json!({
                        "id": a.id,
                        "state": a.state,
                        "until": a.until,
                        "level": a.level,
                        "hidden": a.hides_on(today),
                    }),
                    None => serde_json::Value::Null,
                };
                items.push(v);
            }
            if items.len() == limit || scanned == FINDINGS_SCAN {
                continue 'pages;
            }
        }
        if whole {
            done = true;
            break;
        }
    }
    Json(json!({ "items": items, "next_after": (!done).then_some(after) })).into_response()
}

#[derive(Deserialize)]
struct OutboxQuery {
    status: Option<String>,
    channel: Option<String>,
    target: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

impl OutboxQuery {
    fn page(self) -> OutboxPage {
        OutboxPage {
            status: self.status,
            channel: self.channel,
            target: self.target,
            before: self.before,
            limit: self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
            payload: false,
        }
    }
}

/// `GET /api/outbox?status=&channel=&target=&limit=&before=`: outbox items without their
/// payload, newest first, paginated.
async fn outbox<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let p = q.page();
    match d.store.outbox_items(&p).await {
        Ok(items) => {
            let items: Vec<_> = items
                .into_iter()
                .map(|i| {
                    json!({
                        "id": i.id, "key": i.idempotency_key, "channel": i.channel, "target": i.target,
                        "subject": i.subject, "message_id": i.message_id, "status": i.status,
                        "attempts": i.attempts, "next_attempt_at": i.next_attempt_at,
                        "created_at": i.created_at, "finished_at": i.finished_at,
                        "last_error": i.last_error,
                    })
                })
                .collect();
            page(items, p.limit, |i| i["id"].as_i64().unwrap_or_default())
        }
        Err(e) => internal(e),
    }
}

/// `GET /api/deliveries?status=&channel=&target=&limit=&before=`: the delivery history of
/// items purged from the outbox, newest first, paginated.
async fn deliveries<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let p = q.page();
    match d.store.deliveries(&p).await {
        Ok(items) => page(items, p.limit, |i| i.id),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct DigestQuery {
    to: String,
    /// `YYYY-MM-DD`, within the configured window.
    as_of: Option<String>,
}

/// `GET /api/digest?to=&as_of=`: the digest `to` would receive, as HTML, without personal
/// links; one preview is built at a time (503 with `Retry-After` meanwhile).
async fn digest_preview<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(q): Query<DigestQuery>,
) -> Response {
    match crate::admin::digest_preview(&d, &q.to, q.as_of.as_deref()).await {
        Ok(Some(html)) => Html(html).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, format!("no digest for {} that day\n", q.to)).into_response()
        }
        Err(PreviewError::Date(e)) => {
            (StatusCode::BAD_REQUEST, Json(json!({ "error": format!("as_of: {e}") })))
                .into_response()
        }
        Err(PreviewError::Busy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({ "error": "another digest preview is being built; try again" })),
        )
            .into_response(),
        Err(PreviewError::Failed(e)) => internal(format!("{e:#}")),
    }
}

/// Whether the request carries the configured bearer token. Without a configured token,
/// nothing is authorised.
fn authorised(headers: &HeaderMap, token: Option<&secrecy::SecretString>) -> bool {
    let Some(token) = token else { return false };
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else { return false };
    // Compare in constant time: the token is a secret. Slices of different lengths are
    // unequal (only the length can be learnt from the timing).
    bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes()))
}

/// The answer to a request that changes state without the bearer token: 401, or 429 once
/// too many wrong tokens were given this minute.
fn unauthorised() -> Response {
    if !crate::web::bad_token_allowed() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "60")],
            "too many invalid tokens; try again in a minute\n",
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a valid bearer token is required\n",
    )
        .into_response()
}

/// `POST /api/outbox/requeue?channel=…&target=…&id=…`: dead items queued again (audited as
/// the API's), bearer token required.
async fn requeue<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(filter): Query<crate::store::RequeueFilter>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&headers, d.settings().http.token.as_ref()) {
        return unauthorised();
    }
    match d.store.requeue_dead(&filter, "admin API", d.clock.now()).await {
        Ok(n) => Json(json!({ "requeued": n, "filter": filter })).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct TriggerQuery {
    /// For `sync` and `resync`: confirm the drop the guards held.
    #[serde(default)]
    accept_vanishing: bool,
}

#[derive(Deserialize)]
struct SilencesQuery {
    /// Ended silences too.
    #[serde(default)]
    all: bool,
    limit: Option<u32>,
    /// The `next_after` of the previous page.
    after: Option<i64>,
}

/// `GET /api/silences[?all=true][&limit=&after=]`: the silences in force or to come (or
/// every one), oldest first, paginated: `{"items": […], "next_after": N}` (`null`: the last).
async fn silences<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(q): Query<SilencesQuery>,
) -> Response {
    let today = d.clock.today(d.settings().schedule.timezone);
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    match d.store.silences(today, q.all, IdPage { from: q.after, limit }).await {
        Ok(list) => {
            let next = (list.len() == limit as usize).then(|| list.last().map(|s| s.id)).flatten();
            Json(json!({ "items": list, "next_after": next })).into_response()
        }
        Err(e) => internal(e),
    }
}

/// The JSON body of a request that changes state: 401 without the bearer token, 400 (as
/// `{"errors": [..]}`) when it is not the JSON expected.
fn admin_json<T: serde::de::DeserializeOwned>(
    settings: &crate::config::Settings,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Box<Response>> {
    if !authorised(headers, settings.http.token.as_ref()) {
        return Err(Box::new(unauthorised()));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(
            (StatusCode::BAD_REQUEST, Json(json!({ "errors": [e.to_string()] }))).into_response(),
        )
    })
}

/// `POST /api/silences` (bearer token), a JSON silence: `{"matchers": {"kinds": [...],
/// "levels": [...], "offices": [...], "fields": [{"field", "value", "regex"}]}, "starts_on",
/// "ends_on", "webhooks", "author", "comment"}`. 201 with its id, or 400 with every error.
async fn add_silence<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let settings = d.settings();
    let new: crate::domain::silence::NewSilence = match admin_json(&settings, &headers, &body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let today = d.clock.today(settings.schedule.timezone);
    if let Err(errors) = crate::findings::silences::check(&new, &settings, today) {
        return (StatusCode::BAD_REQUEST, Json(json!({ "errors": errors }))).into_response();
    }
    match d.store.add_silence(&new, d.clock.now()).await {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /api/silences/{id}/expire` (bearer token): ends it today; 404 when it is not in
/// force or to come.
async fn expire_silence<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let settings = d.settings();
    if !authorised(&headers, settings.http.token.as_ref()) {
        return unauthorised();
    }
    let today = d.clock.today(settings.schedule.timezone);
    match d.store.expire_silence(id, today, d.clock.now()).await {
        Ok(true) => Json(json!({ "id": id, "ends_on": today })).into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no silence {id} in force or to come") })),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct AcknowledgementsQuery {
    /// Ended answers too.
    #[serde(default)]
    all: bool,
    /// Only the answers of this finding.
    finding: Option<i64>,
    limit: Option<u32>,
    before: Option<i64>,
}

/// `GET /api/acknowledgements[?all=true][&finding=ID][&limit=&before=]`: office heads'
/// answers in force (or every one), newest first, paginated like the run history.
async fn acknowledgements<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Query(q): Query<AcknowledgementsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    match d.store.acknowledgements(q.finding, q.all, IdPage { from: q.before, limit }).await {
        Ok(list) => page(list, limit, |a| a.id),
        Err(e) => internal(e),
    }
}

/// `POST /api/acknowledgements` (bearer token), a JSON answer: `{"contract_id", "kind",
/// "stage"?, "state": "en_tramite"|"no_aplica"|"documento_publicado", "until"?,
/// "document_id"?, "document_kind"?, "reason", "note"?, "author"}`. 201 with the answer as
/// stored; 400 with every error; 404 when the contract or its open finding is not there.
async fn acknowledge<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::findings::acks::AckError;
    let settings = d.settings();
    let ack: crate::domain::ack::NewAck = match admin_json(&settings, &headers, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let today = d.clock.today(settings.schedule.timezone);
    match crate::findings::acks::acknowledge(&d.store, &settings, &ack, today, d.clock.now()).await
    {
        Ok((_, stored)) => (StatusCode::CREATED, Json(stored)).into_response(),
        Err(AckError::Invalid(errors)) => {
            (StatusCode::BAD_REQUEST, Json(json!({ "errors": errors }))).into_response()
        }
        Err(AckError::NotFound(e)) => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": e }))).into_response()
        }
        Err(AckError::Store(e)) => internal(e),
    }
}

/// `GET /api/findings/{id}/history`: what the rules concluded, the answers, reopenings and
/// silences of a finding, oldest first; 404 when there is no such finding.
async fn finding_history<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Path(id): Path<i64>,
) -> Response {
    match crate::findings::acks::history(&d.store, &d.settings(), id).await {
        Ok(list) if list.is_empty() => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no finding {id}") })))
                .into_response()
        }
        Ok(list) => Json(json!({ "items": list })).into_response(),
        Err(e) => internal(e),
    }
}

async fn trigger<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Path(job): Path<String>,
    Query(q): Query<TriggerQuery>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&headers, d.settings().http.token.as_ref()) {
        return unauthorised();
    }
    let Some(job) = Job::SCHEDULED.into_iter().find(|j| j.as_str() == job) else {
        let jobs = Job::SCHEDULED.map(|j| j.as_str());
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no job `{job}`"), "jobs": jobs })),
        )
            .into_response();
    };
    let options = crate::scheduler::RunOptions { accept_vanishing: q.accept_vanishing };
    let slot = crate::admin::start_job(&d, job, options);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "job": job, "slot": slot, "accept_vanishing": q.accept_vanishing })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_configured_token_is_authorised() {
        let token = secrecy::SecretString::from("s3creto");
        assert!(authorised(&with_bearer("Bearer s3creto"), Some(&token)));
        for refused in ["Bearer s3cretO", "Bearer s3cret", "Bearer s3creto2", "Bearer ", "s3creto"]
        {
            assert!(!authorised(&with_bearer(refused), Some(&token)), "{refused}");
        }
        assert!(!authorised(&HeaderMap::new(), Some(&token)));
        assert!(!authorised(&with_bearer("Bearer s3creto"), None), "no token, no access");
    }
}
