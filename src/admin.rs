//! Admin console (top, beside the admin API and the web view): runs with their outcomes,
//! the outbox (why an item failed, requeue it), failing endpoints, silences (create,
//! expire), the configuration file's check and a digest preview for any recipient, as
//! server-rendered pages (`templates/admin/`, embedded with the web view's), no script.
//!
//! Signed in with `http.token` on a form: the session is a cookie signed with the token
//! (HttpOnly, SameSite=Strict, Path=/admin, Secure when `http.public_url` is https), valid
//! for [`SESSION_HOURS`]; changing the token ends every session. Every form carries a token
//! derived from the session (CSRF); nothing changes state on GET.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::config::schedule::Job;
use crate::domain::Kind;
use crate::domain::silence::{FieldMatcher, NewSilence, SilenceMatchers};
use crate::domain::spanish::{kind_label, level_label};
use crate::scheduler::Daemon;
use crate::store::{IdPage, OutboxPage, RequeueFilter, Store};
use crate::web::{bad_token_allowed, cookie, render};

/// The session cookie.
const COOKIE: &str = "cierre_admin";
/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;
/// Rows on a page of the console's lists.
const ROWS: u32 = 50;
/// Offices listed at most by the preview's search.
const OFFICES_SHOWN: usize = 50;

/// The routes, on the daemon's state.
pub fn routes<S: Store + Clone + 'static>() -> Router<Arc<Daemon<S>>> {
    Router::new()
        .route("/admin", get(overview::<S>))
        .route("/admin/entrar", get(login_page::<S>).post(login::<S>))
        .route("/admin/salir", post(logout::<S>))
        .route("/admin/tareas/{job}", post(run_job::<S>))
        .route("/admin/ejecuciones", get(runs::<S>))
        .route("/admin/envios", get(outbox::<S>))
        .route("/admin/envios/reencolar", post(requeue::<S>))
        .route("/admin/silencios", get(silences::<S>).post(add_silence::<S>))
        .route("/admin/silencios/{id}/vencer", post(expire_silence::<S>))
        .route("/admin/configuracion", get(config::<S>))
        .route("/admin/resumen", get(preview_page::<S>))
        .route("/admin/resumen/ver", get(preview::<S>))
}

/// A signed-in administrator: who they said they are (recorded with what they do), and
/// the session cookie, from which form tokens derive.
struct Admin {
    name: String,
    session: String,
    csrf: String,
}

/// The console's secret: `http.token` (no token, no console).
fn secret<S: Store + Clone + 'static>(d: &Daemon<S>) -> Option<String> {
    d.settings().http.token.as_ref().map(|t| t.expose_secret().to_string())
}

fn message(status: StatusCode, title: &str, text: &str, back: Option<&str>) -> Response {
    render(
        status,
        "admin/message.html",
        minijinja::context! { title => title, message => text, back => back },
    )
}

fn disabled() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Administración no habilitada",
        "La consola de administración necesita http.token en la configuración.",
        None,
    )
}

/// The sign-in form (401: the page asked for needs a session), going back to `next`.
fn login_form<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    key: &str,
    next: &str,
    why: Option<&str>,
) -> Response {
    let expires = d.clock.now() + chrono::Duration::hours(1);
    let login_csrf = crate::links::sign_as(key.as_bytes(), "admin-login", "", expires);
    let next = if next.starts_with("/admin") { next } else { "/admin" };
    render(
        StatusCode::UNAUTHORIZED,
        "admin/login.html",
        minijinja::context! {
            login_csrf => login_csrf, next => next, message => why, hours => SESSION_HOURS,
        },
    )
}

/// The administrator of a request, or the answer to give instead: 404 without `http.token`,
/// the sign-in form (401) without a valid session, 429 past too many refused sessions.
fn admin<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    headers: &HeaderMap,
    path: &str,
) -> Result<Admin, Box<Response>> {
    let Some(key) = secret(d) else { return Err(Box::new(disabled())) };
    let Some(session) = cookie(headers, COOKIE) else {
        return Err(Box::new(login_form(d, &key, path, None)));
    };
    match crate::links::verify_as(key.as_bytes(), "admin", &session, d.clock.now()) {
        Ok(name) => {
            let csrf = crate::links::form_token(key.as_bytes(), &session);
            Ok(Admin { name, session, csrf })
        }
        Err(_) if !bad_token_allowed() => Err(Box::new(too_many())),
        Err(_) => Err(Box::new(login_form(
            d,
            &key,
            path,
            Some("Su sesión venció o no es válida. Entre de nuevo."),
        ))),
    }
}

/// Every page of the console but the sign-in takes its administrator this way: the
/// rejection is the answer [`admin`] gives (the sign-in form, 404, 429).
impl<S: Store + Clone + 'static> FromRequestParts<Arc<Daemon<S>>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, d: &Arc<Daemon<S>>) -> Result<Admin, Response> {
        // A form sent without a session signs in to the console's first page.
        let back = match parts.method {
            Method::GET => parts.uri.path_and_query().map_or("/admin", |p| p.as_str()),
            _ => "/admin",
        };
        admin(d, &parts.headers, back).map_err(|r| *r)
    }
}

fn too_many() -> Response {
    message(
        StatusCode::TOO_MANY_REQUESTS,
        "Demasiados intentos",
        "Demasiadas claves o sesiones no válidas. Intente de nuevo en un minuto.",
        None,
    )
}

/// The fields of a form.
fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

/// Whether a form's CSRF token is the session's (403 if not).
fn checked<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    a: &Admin,
    fields: &[(String, String)],
) -> Result<(), Box<Response>> {
    let key = secret(d).unwrap_or_default();
    let given = field(fields, "csrf").unwrap_or_default();
    if !crate::links::check_form_token(key.as_bytes(), &a.session, given) {
        return Err(Box::new(message(
            StatusCode::FORBIDDEN,
            "Formulario no válido",
            "El formulario no es válido o venció. Vuelva a abrir la página.",
            Some("/admin"),
        )));
    }
    Ok(())
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A time as the console shows it, in the schedule's time zone.
fn hora(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

fn value<T: serde::Serialize>(v: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

fn query_url(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { path.to_string() } else { format!("{path}?{q}") }
}

/// Where the next page of a list starts: the last row's id when the page is full (`None`:
/// this was the last page).
fn next_from<T>(rows: &[T], id: impl Fn(&T) -> Option<i64>) -> Option<i64> {
    rows.last().filter(|_| rows.len() == ROWS as usize).and_then(id)
}

fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "an admin console page failed");
    message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "Error al leer el almacén.", None)
}

/// `GET /admin/entrar`: the sign-in form.
async fn login_page<S: Store + Clone + 'static>(State(d): State<Arc<Daemon<S>>>) -> Response {
    match secret(&d) {
        Some(key) => {
            let mut r = login_form(&d, &key, "/admin", None);
            *r.status_mut() = StatusCode::OK;
            r
        }
        None => disabled(),
    }
}

/// `POST /admin/entrar`: the token typed in (compared in constant time), then the session.
async fn login<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    body: axum::body::Bytes,
) -> Response {
    let Some(key) = secret(&d) else { return disabled() };
    let fields = form(&body);
    let next = field(&fields, "siguiente").unwrap_or("/admin").to_string();
    let now = d.clock.now();
    let csrf = field(&fields, "csrf").unwrap_or_default();
    if crate::links::verify_as(key.as_bytes(), "admin-login", csrf, now).is_err() {
        return login_form(
            &d,
            &key,
            &next,
            Some("El formulario venció. Escriba la clave de nuevo."),
        );
    }
    // Who signs in: recorded with each requeue, silence and job run of the session.
    let Some(name) = field(&fields, "nombre").map(|n| n.chars().take(80).collect::<String>())
    else {
        return login_form(
            &d,
            &key,
            &next,
            Some("Escriba su nombre o correo: queda registrado con lo que haga."),
        );
    };
    let given = field(&fields, "token").unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
        if !bad_token_allowed() {
            return too_many();
        }
        tracing::warn!("admin console: a sign-in with a wrong token was refused");
        return login_form(&d, &key, &next, Some("La clave no es correcta."));
    }
    tracing::info!(admin = name, "admin console: signed in");
    let session = crate::links::sign_as(
        key.as_bytes(),
        "admin",
        &name,
        now + chrono::Duration::hours(SESSION_HOURS),
    );
    let secure = match &d.settings().http.links {
        Some(l) if l.public_url.scheme() == "https" => "; Secure",
        _ => "",
    };
    let cookie = format!(
        "{COOKIE}={session}; Path=/admin; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        SESSION_HOURS * 3600
    );
    let next = if next.starts_with("/admin") && !next.starts_with("/admin/entrar") {
        next
    } else {
        "/admin".to_string()
    };
    let mut r = see_other(&next);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /admin/salir`: the cookie is dropped (the session itself ends when it expires or
/// the token changes).
async fn logout<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = checked(&d, &a, &form(&body)) {
        return *r;
    }
    let mut r = see_other("/admin/entrar");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "cierre_admin=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict",
        ),
    );
    r
}

/// `GET /admin`: the outbox by state, failing endpoints, the jobs and the last syncs.
async fn overview<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
) -> Response {
    let tz = d.settings().schedule.timezone;
    let (jobs, counts, endpoints, syncs) = match (
        d.job_status().await,
        d.store.outbox_counts().await,
        d.store.endpoints().await,
        d.store.last_sync_runs().await,
    ) {
        (Ok(j), Ok(c), Ok(e), Ok(s)) => (j, c, e, s),
        (Err(e), ..) => return store_error(format!("{e:#}")),
        (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return store_error(e),
    };
    let outbox = [
        ("pending", "pendientes", counts.pending),
        ("retrying", "reintentando", counts.retrying),
        ("sending", "enviándose", counts.sending),
        ("sent", "enviados", counts.sent),
        ("dead", "muertos", counts.dead),
    ]
    .map(|(status, label, n)| json!({ "status": status, "label": label, "n": n }));
    let endpoints: Vec<_> = endpoints
        .iter()
        .filter(|e| e.consecutive_failures > 0 || e.suspended_until.is_some())
        .map(|e| {
            json!({
                "target": e.target,
                "url": query_url("/admin/envios", &[("destino", Some(e.target.clone()))]),
                "failures": e.consecutive_failures,
                "suspended_until": e.suspended_until.map(|t| hora(t, tz)),
                "last_error": e.last_error,
            })
        })
        .collect();
    let jobs: Vec<_> = jobs
        .iter()
        .map(|j| {
            json!({
                "job": j.job,
                "schedule": j.schedule,
                "next_run": j.next_run.map(|t| hora(t, tz)),
                "last": j.last_run.as_ref().map(|r| json!({
                    "outcome": r.outcome, "finished": hora(r.finished_at, tz), "error": r.error,
                })),
            })
        })
        .collect();
    let held = syncs.iter().any(|s| s.status == "held");
    let syncs: Vec<_> = syncs
        .iter()
        .map(|s| {
            json!({
                "dataset": s.dataset, "status": s.status,
                "finished": s.finished_at.map(|t| hora(t, tz)), "error": s.error,
            })
        })
        .collect();
    render(
        StatusCode::OK,
        "admin/overview.html",
        minijinja::context! {
            section => "resumen", csrf => a.csrf.clone(), admin => a.name.clone(), now => hora(d.clock.now(), tz),
            timezone => tz.name(), outbox => value(&outbox), endpoints => value(&endpoints),
            jobs => value(&jobs), syncs => value(&syncs), held => held,
        },
    )
}

/// `POST /admin/tareas/{job}`: runs a scheduled job now, as `POST /api/jobs/{job}/run` does.
async fn run_job<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Path(job): Path<String>,
    a: Admin,
    body: axum::body::Bytes,
) -> Response {
    let fields = form(&body);
    if let Err(r) = checked(&d, &a, &fields) {
        return *r;
    }
    let Some(job) = Job::SCHEDULED.into_iter().find(|j| j.as_str() == job) else {
        return message(
            StatusCode::NOT_FOUND,
            "Tarea desconocida",
            &format!("No hay una tarea «{job}»."),
            Some("/admin"),
        );
    };
    let options = crate::scheduler::RunOptions {
        accept_vanishing: field(&fields, "accept_vanishing").is_some(),
    };
    let slot = start_job(&d, job, options);
    tracing::info!(job = job.as_str(), %slot, admin = a.name, "admin console: job started by hand");
    message(
        StatusCode::ACCEPTED,
        "Tarea en curso",
        &format!(
            "La tarea {} empezó ({}). Su resultado aparecerá en Ejecuciones.",
            job.as_str(),
            hora(slot, d.settings().schedule.timezone)
        ),
        Some("/admin/ejecuciones"),
    )
}

/// Starts `job` in the background for a slot of its own: the millisecond it was asked for
/// (an operator who confirms a held sync right after it failed asks again within a second).
pub(crate) fn start_job<S: Store + Clone + 'static>(
    d: &Arc<Daemon<S>>,
    job: Job,
    options: crate::scheduler::RunOptions,
) -> DateTime<Utc> {
    let now = d.clock.now();
    let slot = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let daemon = d.clone();
    tokio::spawn(async move { daemon.run_job_with(job, slot, options).await });
    slot
}

#[derive(Deserialize, Default)]
struct RunsQuery {
    antes: Option<i64>,
}

/// `GET /admin/ejecuciones?antes=`: the run history, newest first.
async fn runs<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
    Query(q): Query<RunsQuery>,
) -> Response {
    let tz = d.settings().schedule.timezone;
    let list = match d.store.runs(q.antes, ROWS).await {
        Ok(l) => l,
        Err(e) => return store_error(e),
    };
    let next = next_from(&list, |r| r.id).map(|id| format!("/admin/ejecuciones?antes={id}"));
    let list: Vec<_> = list
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "job": r.job, "slot": hora(r.scheduled_for, tz),
                "seconds": format!("{:.1}", (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0),
                "outcome": r.outcome, "error": r.error,
                "counts": if r.counts.is_null() { String::new() } else { r.counts.to_string() },
            })
        })
        .collect();
    render(
        StatusCode::OK,
        "admin/runs.html",
        minijinja::context! {
            section => "ejecuciones", csrf => a.csrf.clone(), admin => a.name.clone(), runs => value(&list), next_url => next,
            first_page => q.antes.is_none(), rows_per_page => ROWS, timezone => tz.name(),
        },
    )
}

#[derive(Deserialize, Default)]
struct OutboxQuery {
    estado: Option<String>,
    canal: Option<String>,
    destino: Option<String>,
    antes: Option<i64>,
}

fn status_label(status: &str) -> &str {
    match status {
        "pending" => "pendiente",
        "retrying" => "reintentando",
        "sending" => "enviándose",
        "sent" => "enviado",
        "dead" => "muerto",
        other => other,
    }
}

/// `GET /admin/envios?estado=&canal=&destino=&antes=`: outbox items newest first, with why
/// they failed; dead ones can be queued again.
async fn outbox<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
    Query(q): Query<OutboxQuery>,
) -> Response {
    let tz = d.settings().schedule.timezone;
    let some = |v: &Option<String>| v.clone().filter(|x| !x.trim().is_empty());
    let (status, channel, target) = (some(&q.estado), some(&q.canal), some(&q.destino));
    let page = OutboxPage {
        status: status.clone(),
        channel: channel.clone(),
        target: target.clone(),
        before: q.antes,
        limit: ROWS,
        payload: false,
    };
    let items = match d.store.outbox_items(&page).await {
        Ok(i) => i,
        Err(e) => return store_error(e),
    };
    let next = next_from(&items, |i| Some(i.id)).map(|id| {
        query_url(
            "/admin/envios",
            &[
                ("estado", status.clone()),
                ("canal", channel.clone()),
                ("destino", target.clone()),
                ("antes", Some(id.to_string())),
            ],
        )
    });
    let items: Vec<_> = items
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "channel": i.channel, "target": i.target, "subject": i.subject,
                "status": i.status, "status_label": status_label(&i.status),
                "attempts": i.attempts, "created": hora(i.created_at, tz),
                "finished": i.finished_at.map(|t| hora(t, tz)),
                "next_attempt": hora(i.next_attempt_at, tz), "last_error": i.last_error,
            })
        })
        .collect();
    let statuses: Vec<_> = ["pending", "retrying", "sending", "sent", "dead"]
        .iter()
        .map(|s| json!({ "value": s, "label": status_label(s), "selected": status.as_deref() == Some(*s) }))
        .collect();
    let channels: Vec<_> = ["email", "webhook"]
        .iter()
        .map(|c| json!({ "value": c, "selected": channel.as_deref() == Some(*c) }))
        .collect();
    render(
        StatusCode::OK,
        "admin/outbox.html",
        minijinja::context! {
            section => "envios", csrf => a.csrf.clone(), admin => a.name.clone(), items => value(&items), next_url => next,
            first_page => q.antes.is_none(), statuses => value(&statuses),
            channels => value(&channels), channel => channel, target => target,
            dead_filter => status.as_deref() == Some("dead"),
        },
    )
}

/// `POST /admin/envios/reencolar`: queues again the dead item `id`, or every dead item of
/// the channel and target given; audited as the console's.
async fn requeue<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
    body: axum::body::Bytes,
) -> Response {
    let fields = form(&body);
    if let Err(r) = checked(&d, &a, &fields) {
        return *r;
    }
    let id = match field(&fields, "id").map(str::parse::<i64>) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Envío no válido",
                "El número de envío no es válido.",
                Some("/admin/envios"),
            );
        }
        None => None,
    };
    let filter = RequeueFilter {
        channel: field(&fields, "canal").map(str::to_string),
        target: field(&fields, "destino").map(str::to_string),
        id,
    };
    let by = format!("admin console: {}", a.name);
    match d.store.requeue_dead(&filter, &by, d.clock.now()).await {
        Ok(n) => {
            tracing::info!(
                requeued = n,
                ?filter,
                admin = a.name,
                "admin console: dead items queued again"
            );
            let text = match n {
                0 => "No había envíos muertos que reencolar (quizá otro administrador ya lo hizo)."
                    .to_string(),
                1 => "Se reencoló 1 envío: saldrá en la próxima entrega.".to_string(),
                n => format!("Se reencolaron {n} envíos: saldrán en las próximas entregas."),
            };
            message(
                StatusCode::OK,
                "Envíos reencolados",
                &text,
                Some("/admin/envios?estado=pending"),
            )
        }
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize, Default)]
struct SilencesQuery {
    todos: Option<String>,
    desde: Option<i64>,
    /// Set after a silence was created: its id.
    creado: Option<i64>,
}

/// The silences page, with `errors` of a refused form and what was typed.
async fn silences_page<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    a: &Admin,
    q: &SilencesQuery,
    status: StatusCode,
    errors: Vec<String>,
    typed: serde_json::Value,
) -> Response {
    let settings = d.settings();
    let today = d.clock.today(settings.schedule.timezone);
    let all = q.todos.is_some();
    let list = match d.store.silences(today, all, IdPage { from: q.desde, limit: ROWS }).await {
        Ok(l) => l,
        Err(e) => return store_error(e),
    };
    let next = next_from(&list, |s| Some(s.id)).map(|id| {
        query_url(
            "/admin/silencios",
            &[("todos", all.then(|| "1".into())), ("desde", Some(id.to_string()))],
        )
    });
    let list: Vec<_> = list
        .iter()
        .map(|s| {
            let m = &s.silence.matchers;
            let mut parts: Vec<String> = Vec::new();
            if !m.kinds.is_empty() {
                parts.push(m.kinds.iter().map(|k| kind_label(*k)).collect::<Vec<_>>().join(", "));
            }
            if !m.levels.is_empty() {
                parts.push(format!(
                    "nivel {}",
                    m.levels.iter().map(|l| level_label(l)).collect::<Vec<_>>().join(", ")
                ));
            }
            if !m.offices.is_empty() {
                parts.push(format!("oficina {}", m.offices.join(", ")));
            }
            for f in &m.fields {
                parts.push(format!(
                    "{} {} «{}»",
                    f.field,
                    if f.regex { "~" } else { "=" },
                    f.value
                ));
            }
            json!({
                "id": s.id, "matchers": parts.join(" · "), "webhooks": s.silence.webhooks,
                "starts_on": s.silence.starts_on, "ends_on": s.silence.ends_on,
                "active": s.active_on(today), "ended": s.silence.ends_on <= today,
                "author": s.silence.author, "comment": s.silence.comment,
            })
        })
        .collect();
    let chosen = |key: &str, v: &str| {
        typed[key].as_array().is_some_and(|a| a.iter().any(|x| x.as_str() == Some(v)))
    };
    let kinds: Vec<_> = Kind::ALL
        .iter()
        .map(|k| json!({ "value": k.as_str(), "label": kind_label(*k), "checked": chosen("kinds", k.as_str()) }))
        .collect();
    let levels: Vec<_> = settings
        .levels
        .iter()
        .map(|l| json!({ "value": l.name, "label": level_label(&l.name), "checked": chosen("levels", &l.name) }))
        .collect();
    render(
        status,
        "admin/silences.html",
        minijinja::context! {
            section => "silencios", csrf => a.csrf.clone(), admin => a.name.clone(), silences => value(&list),
            next_url => next, all => all, kinds => value(&kinds), levels => value(&levels),
            today => today.to_string(), errors => errors, typed => value(&typed),
            flash => q.creado.map(|id| format!("Silencio {id} creado.")),
        },
    )
}

/// `GET /admin/silencios[?todos=1]`: silences in force or to come (or every one), and the
/// form to create one.
async fn silences<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
    Query(q): Query<SilencesQuery>,
) -> Response {
    silences_page(&d, &a, &q, StatusCode::OK, vec![], json!({})).await
}

/// `POST /admin/silencios`: creates a silence from the form, checked as the API checks one.
async fn add_silence<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
    body: axum::body::Bytes,
) -> Response {
    let fields = form(&body);
    if let Err(r) = checked(&d, &a, &fields) {
        return *r;
    }
    let settings = d.settings();
    let today = d.clock.today(settings.schedule.timezone);
    let all = |name: &str| -> Vec<String> {
        fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    };
    let mut errors = Vec::new();
    let kinds: Vec<Kind> = all("kind")
        .iter()
        .filter_map(|k| match k.parse::<Kind>() {
            Ok(k) => Some(k),
            Err(_) => {
                errors.push(format!("Hallazgo desconocido: {k}"));
                None
            }
        })
        .collect();
    let date = |name: &str, label: &str, errors: &mut Vec<String>| match field(&fields, name) {
        None => {
            errors.push(format!("Indique la fecha «{label}»."));
            None
        }
        Some(v) => match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                errors.push(format!("La fecha «{label}» no es válida (AAAA-MM-DD)."));
                None
            }
        },
    };
    let starts_on = date("starts_on", "Desde", &mut errors);
    let ends_on = date("ends_on", "Hasta", &mut errors);
    let author = field(&fields, "author").map(str::to_string);
    if author.is_none() {
        errors.push("Escriba el autor.".into());
    }
    let comment = field(&fields, "comment").map(str::to_string);
    if comment.is_none() {
        errors.push("Escriba el motivo.".into());
    }
    let fields_matcher = match (field(&fields, "field"), field(&fields, "value")) {
        (Some(f), Some(v)) => vec![FieldMatcher {
            field: f.to_string(),
            value: v.to_string(),
            regex: field(&fields, "regex").is_some(),
        }],
        (None, None) => vec![],
        _ => {
            errors.push("Un campo del contrato necesita nombre y valor.".into());
            vec![]
        }
    };
    let typed = json!({
        "kinds": all("kind"), "levels": all("level"), "office": field(&fields, "office"),
        "field": field(&fields, "field"), "value": field(&fields, "value"),
        "regex": field(&fields, "regex").is_some(), "starts_on": field(&fields, "starts_on"),
        "ends_on": field(&fields, "ends_on"), "webhooks": field(&fields, "webhooks").is_some(),
        "author": author, "comment": comment,
    });
    let q = SilencesQuery::default();
    let (Some(starts_on), Some(ends_on), Some(author), Some(comment), true) =
        (starts_on, ends_on, author, comment, errors.is_empty())
    else {
        return silences_page(&d, &a, &q, StatusCode::BAD_REQUEST, errors, typed).await;
    };
    let new = NewSilence {
        matchers: SilenceMatchers {
            kinds,
            levels: all("level"),
            offices: field(&fields, "office").map(|o| vec![o.to_string()]).unwrap_or_default(),
            fields: fields_matcher,
        },
        starts_on,
        ends_on,
        webhooks: field(&fields, "webhooks").is_some(),
        author,
        comment,
    };
    if let Err(errors) = crate::findings::silences::check(&new, &settings, today) {
        return silences_page(&d, &a, &q, StatusCode::BAD_REQUEST, errors, typed).await;
    }
    match d.store.add_silence(&new, d.clock.now()).await {
        Ok(id) => {
            tracing::info!(id, author = new.author, "admin console: silence created");
            see_other(&format!("/admin/silencios?creado={id}"))
        }
        Err(e) => store_error(e),
    }
}

/// `POST /admin/silencios/{id}/vencer`: ends the silence today.
async fn expire_silence<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Path(id): Path<i64>,
    a: Admin,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = checked(&d, &a, &form(&body)) {
        return *r;
    }
    let today = d.clock.today(d.settings().schedule.timezone);
    match d.store.expire_silence(id, today, d.clock.now()).await {
        Ok(true) => {
            tracing::info!(id, admin = a.name, "admin console: silence expired");
            see_other("/admin/silencios")
        }
        Ok(false) => message(
            StatusCode::NOT_FOUND,
            "Silencio no encontrado",
            &format!("El silencio {id} no está vigente ni por venir."),
            Some("/admin/silencios"),
        ),
        Err(e) => store_error(e),
    }
}

/// `GET /admin/configuracion`: the configuration file checked now (with the environment),
/// every error with its location, and the main settings in force.
async fn config<S: Store + Clone + 'static>(State(d): State<Arc<Daemon<S>>>, a: Admin) -> Response {
    let settings = d.settings();
    let path = settings.config_path.clone();
    let errors = match path.clone() {
        Some(p) => tokio::task::spawn_blocking(move || crate::config::load(&p, true))
            .await
            .map(|r| r.err().map(|e| e.0).unwrap_or_default())
            .unwrap_or_default(),
        None => vec![],
    };
    let errors: Vec<_> =
        errors.iter().map(|e| json!({ "location": e.location, "message": e.message })).collect();
    let in_force = [
        ("Almacén", crate::store::Backend::of(&settings.store_url).name().to_string()),
        ("Zona horaria", settings.schedule.timezone.name().to_string()),
        ("Oficinas", settings.offices.len().to_string()),
        ("Webhooks", settings.webhooks.len().to_string()),
        (
            "Niveles",
            settings.levels.iter().map(|l| level_label(&l.name)).collect::<Vec<_>>().join(", "),
        ),
        ("Escucha", settings.http.listen.to_string()),
        (
            "Vista web",
            settings
                .http
                .links
                .as_ref()
                .map(|l| l.public_url.to_string())
                .unwrap_or("no habilitada".into()),
        ),
    ];
    render(
        StatusCode::OK,
        "admin/config.html",
        minijinja::context! {
            section => "configuracion", csrf => a.csrf.clone(), admin => a.name.clone(),
            path => path.map(|p| p.display().to_string()),
            errors_found => value(&errors), in_force => value(&in_force),
        },
    )
}

#[derive(Deserialize, Default)]
struct PreviewQuery {
    buscar: Option<String>,
    para: Option<String>,
    fecha: Option<String>,
}

/// `GET /admin/resumen[?buscar=]`: the preview form, and offices found by name or id with
/// the people who receive their digests.
async fn preview_page<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    a: Admin,
    Query(q): Query<PreviewQuery>,
) -> Response {
    let settings = d.settings();
    let today = d.clock.today(settings.schedule.timezone).to_string();
    let search = q.buscar.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let link = |email: &str| {
        query_url(
            "/admin/resumen/ver",
            &[("para", Some(email.to_string())), ("fecha", Some(today.clone()))],
        )
    };
    let mut offices = Vec::new();
    let mut more = false;
    if let Some(s) = search {
        let s = s.to_lowercase();
        for o in settings
            .offices
            .iter()
            .filter(|o| o.id.to_lowercase().contains(&s) || o.name.to_lowercase().contains(&s))
        {
            if offices.len() == OFFICES_SHOWN {
                more = true;
                break;
            }
            let mut people = vec![
                json!({ "name": o.head.name, "role": "jefe", "url": link(o.head.email.as_ref()) }),
            ];
            people.extend(o.chain.iter().map(|m| {
                json!({ "name": m.person.name, "role": m.role, "url": link(m.person.email.as_ref()) })
            }));
            offices.push(json!({ "id": o.id, "name": o.name, "people": people }));
        }
    }
    let fallback = settings
        .fallback
        .as_ref()
        .map(|p| json!({ "email": p.email.to_string(), "url": link(p.email.as_ref()) }));
    render(
        StatusCode::OK,
        "admin/preview.html",
        minijinja::context! {
            section => "vista", csrf => a.csrf.clone(), admin => a.name.clone(), today => today, search => search,
            offices => value(&offices), more => more, fallback => value(&fallback), to => q.para,
        },
    )
}

/// Why a preview was not built.
pub(crate) enum PreviewError {
    /// The date is outside the accepted window.
    Date(String),
    /// Another preview is being built: one at a time bounds the memory and the store's load.
    Busy,
    Failed(anyhow::Error),
}

/// The digest `to` would receive on `as_of` (today when `None`), as HTML, built as the
/// notify job builds it but without personal links; `None` when there is none that day.
/// One at a time in the process.
pub(crate) async fn digest_preview<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    to: &str,
    as_of: Option<&str>,
) -> Result<Option<String>, PreviewError> {
    static BUILDING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let mut settings = (*d.settings()).clone();
    let today = d.clock.today(settings.schedule.timezone);
    let as_of = match as_of {
        None => None,
        Some(s) => Some(
            crate::domain::parse_iso_date(s)
                .and_then(|day| settings.dates.check(day, today))
                .map_err(PreviewError::Date)?,
        ),
    };
    let _one = BUILDING.try_acquire().map_err(|_| PreviewError::Busy)?;
    // A preview is read by someone else than its recipient: no working personal link in it.
    settings.http.links = None;
    let app = App { settings, store: d.store.clone(), clock: d.clock.clone() };
    match app.digest(to, as_of, None).await {
        Ok(built) => Ok(built.map(|b| b.rendered.html)),
        Err(e) => Err(PreviewError::Failed(e)),
    }
}

/// `GET /admin/resumen/ver?para=&fecha=`: the digest itself, as its recipient would see it.
async fn preview<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    _: Admin,
    Query(q): Query<PreviewQuery>,
) -> Response {
    let Some(to) = q.para.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return see_other("/admin/resumen");
    };
    let fecha = q.fecha.as_deref().filter(|s| !s.is_empty());
    match digest_preview(&d, to, fecha).await {
        Ok(Some(html)) => Html(html).into_response(),
        Ok(None) => message(
            StatusCode::NOT_FOUND,
            "Sin resumen",
            &format!("{to} no recibiría un resumen ese día: no tiene hallazgos que mostrar."),
            Some("/admin/resumen"),
        ),
        Err(PreviewError::Date(e)) => {
            message(StatusCode::BAD_REQUEST, "Fecha no válida", &e, Some("/admin/resumen"))
        }
        Err(PreviewError::Busy) => busy(),
        Err(PreviewError::Failed(e)) => store_error(format!("{e:#}")),
    }
}

fn busy() -> Response {
    let mut r = message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Vista previa ocupada",
        "Se está construyendo otra vista previa. Intente de nuevo en unos segundos.",
        Some("/admin/resumen"),
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}
