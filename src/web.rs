//! Web view for office heads (top, beside the admin API): "Mis hallazgos", opened from the
//! personal link of a digest (`crate::links`), with each finding's page — reasons, history,
//! the record as published — and the forms to answer it. Server-rendered (templates in
//! `templates/web/`, embedded), no script; every form carries a token tied to the session.
//!
//! A link `…/mis-hallazgos?t=TOKEN` sets an HttpOnly, SameSite=Lax cookie holding the token
//! and redirects to the same page without it (so the token leaves the address bar and the
//! history). A session sees and answers only the findings that reach its recipient.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use minijinja::Environment;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use crate::domain::ack::{AckState, NewAck};
use crate::domain::spanish::{days_left, fecha, kind_label, level_label};
use crate::domain::{Dataset, Kind};
use crate::findings::acks::{self, AckError};
use crate::notify::reaches;
use crate::scheduler::Daemon;
use crate::store::{DigestFinding, FindingCursor, FindingFilter, Store};

/// The session cookie: the link token itself.
const COOKIE: &str = "cierre_enlace";
/// Rows on a page of "Mis hallazgos".
const PAGE_ROWS: usize = 50;
/// Findings one page reads at most, reaching the recipient or not (bounded time and memory
/// whatever the store's size; the page then links to where it stopped).
const SCAN: usize = 10_000;
/// Findings read per query while scanning: what one request holds at a time.
pub(crate) const READ: u32 = 250;
/// Refused link tokens allowed per minute, from anyone (then 429 until the minute ends).
const BAD_TOKENS_PER_MINUTE: u32 = 30;

/// The page policy: like the API's, but forms may post to this server.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, text) in [
        ("style.html", include_str!("../templates/web/style.html")),
        ("base.html", include_str!("../templates/web/base.html")),
        ("findings.html", include_str!("../templates/web/findings.html")),
        ("finding.html", include_str!("../templates/web/finding.html")),
        ("refused.html", include_str!("../templates/web/refused.html")),
        ("admin/base.html", include_str!("../templates/admin/base.html")),
        ("admin/login.html", include_str!("../templates/admin/login.html")),
        ("admin/message.html", include_str!("../templates/admin/message.html")),
        ("admin/overview.html", include_str!("../templates/admin/overview.html")),
        ("admin/runs.html", include_str!("../templates/admin/runs.html")),
        ("admin/outbox.html", include_str!("../templates/admin/outbox.html")),
        ("admin/silences.html", include_str!("../templates/admin/silences.html")),
        ("admin/config.html", include_str!("../templates/admin/config.html")),
        ("admin/preview.html", include_str!("../templates/admin/preview.html")),
    ] {
        env.add_template(name, text).expect("the embedded web templates parse");
    }
    env
});

/// The routes, on the daemon's state.
pub fn routes<S: Store + Clone + 'static>() -> Router<Arc<Daemon<S>>> {
    Router::new()
        .route("/mis-hallazgos", get(list::<S>))
        .route("/mis-hallazgos/{id}", get(page::<S>))
        .route("/mis-hallazgos/{id}/respuesta", post(answer::<S>))
}

/// A page of the web view or the admin console, with the pages' security policy.
pub(crate) fn render(status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
    let body = TEMPLATES.get_template(name).and_then(|t| t.render(ctx)).unwrap_or_else(|e| {
        tracing::error!(error = %e, template = name, "a web page could not be rendered");
        "<!doctype html><title>Error</title><p>Error interno.</p>".into()
    });
    let mut r = (status, Html(body)).into_response();
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r
}

fn refused(status: StatusCode, message: &str) -> Response {
    render(status, "refused.html", minijinja::context! { message => message })
}

/// Requests that read findings (the lists of the web view and of the API, a finding's page)
/// at once; the others wait their turn holding nothing, so memory stays bounded (a page of
/// findings each) however many arrive, and the store's pool is not swamped.
const SCANS_AT_ONCE: usize = 4;

/// A turn to scan findings (see [`SCANS_AT_ONCE`]), held for the whole request.
pub(crate) async fn scan_turn() -> tokio::sync::SemaphorePermit<'static> {
    static SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SCANS_AT_ONCE);
    SCANS.acquire().await.expect("the semaphore is never closed")
}

/// Counts a refused token (a link, an admin session or sign-in, a bearer token); false once
/// too many were refused this minute, from anyone: guessing is slowed for everyone alike.
pub(crate) fn bad_token_allowed() -> bool {
    static WINDOW: Mutex<Option<(Instant, u32)>> = Mutex::new(None);
    let mut w = WINDOW.lock().expect("not poisoned");
    let now = Instant::now();
    match w.as_mut() {
        Some((start, n)) if now.duration_since(*start) < Duration::from_secs(60) => {
            *n += 1;
            *n <= BAD_TOKENS_PER_MINUTE
        }
        _ => {
            *w = Some((now, 1));
            true
        }
    }
}

/// Who a request is for: the recipient and the session's token.
struct Session {
    email: String,
    token: String,
}

/// The value of cookie `name` in a request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').find_map(|c| {
            let (n, value) = c.trim().split_once('=')?;
            (n == name).then(|| value.to_string())
        })
    })
}

/// The session of a request: from the link token `t` (then a redirect that sets the cookie
/// and drops the token from the address), or from the cookie.
fn session<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    headers: &HeaderMap,
    link: Option<&str>,
    path: &str,
) -> Result<Session, Box<Response>> {
    let settings = d.settings();
    let Some(links) = &settings.http.links else {
        return Err(Box::new(refused(
            StatusCode::NOT_FOUND,
            "La vista web no está habilitada (http.public_url).",
        )));
    };
    let secret = links.secret.expose_secret().as_bytes();
    let from_link = link.is_some();
    let Some(token) = link.map(str::to_string).or_else(|| cookie(headers, COOKIE)) else {
        return Err(Box::new(refused(
            StatusCode::UNAUTHORIZED,
            "Abra esta página desde el enlace de su último resumen de hallazgos.",
        )));
    };
    match crate::links::verify(secret, &token, d.clock.now()) {
        Ok(_) if from_link => {
            let secure = if links.public_url.scheme() == "https" { "; Secure" } else { "" };
            let max_age = links.valid_for.num_seconds();
            let cookie = format!(
                "{COOKIE}={token}; Path=/mis-hallazgos; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
            );
            let mut r = StatusCode::SEE_OTHER.into_response();
            let h = r.headers_mut();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(path).unwrap_or(HeaderValue::from_static("/mis-hallazgos")),
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                h.insert(header::SET_COOKIE, v);
            }
            Err(Box::new(r))
        }
        Ok(email) => Ok(Session { email, token }),
        Err(e) => {
            if !bad_token_allowed() {
                return Err(Box::new(refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Demasiados enlaces no válidos. Intente de nuevo en un minuto.",
                )));
            }
            let message = match e {
                crate::links::LinkError::Expired => {
                    "El enlace venció. Use el enlace de su último resumen de hallazgos."
                }
                _ => "El enlace no es válido. Use el enlace de su último resumen de hallazgos.",
            };
            Err(Box::new(refused(StatusCode::FORBIDDEN, message)))
        }
    }
}

#[derive(Deserialize, Default)]
struct ListQuery {
    t: Option<String>,
    kind: Option<String>,
    level: Option<String>,
    /// A `nit_entidad`.
    entidad: Option<String>,
    /// Where the previous page stopped: `deadline|contract|kind|stage`.
    desde: Option<String>,
}

fn cursor_text(c: &FindingCursor) -> String {
    format!("{}|{}|{}|{}", c.deadline, c.contract_id, c.kind, c.stage)
}

fn parse_cursor(s: &str) -> Option<FindingCursor> {
    let mut p = s.splitn(4, '|');
    Some(FindingCursor {
        deadline: NaiveDate::parse_from_str(p.next()?, "%Y-%m-%d").ok()?,
        contract_id: p.next()?.to_string(),
        kind: p.next()?.to_string(),
        stage: p.next()?.to_string(),
    })
}

/// An answer as the pages show it: "en trámite hasta el 18 de diciembre de 2026".
fn answer_label(a: &crate::domain::ack::AckInForce) -> String {
    match a.until {
        Some(u) => format!("{} hasta el {}", a.state.label(), fecha(u)),
        None => a.state.label().to_string(),
    }
}

/// A finding as a row of the list.
fn row_json(
    df: &DigestFinding,
    today: NaiveDate,
    settings: &crate::config::Settings,
) -> serde_json::Value {
    let mut f = df.stored.finding.clone();
    f.count_days_from(&settings.calendar, today);
    let c = &df.contract;
    json!({
        "id": df.stored.id,
        "contract_id": c.id,
        "reference": c.reference.clone().unwrap_or_else(|| c.id.clone()),
        "entity": c.entity_name,
        "kind_label": kind_label(f.kind),
        "level": f.level,
        "level_label": level_label(&f.level),
        "days": days_left(f.business_days_left),
        "overdue": f.business_days_left < 0,
        "deadline": fecha(f.deadline),
        "answer": df.stored.ack.as_ref().filter(|a| a.hides_on(today)).map(answer_label),
    })
}

/// `GET /mis-hallazgos`: the recipient's open findings, most urgent first, filtered.
async fn list<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let s = match session(&d, &headers, q.t.as_deref(), "/mis-hallazgos") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let _turn = scan_turn().await;
    let settings = d.settings();
    let today = d.clock.today(settings.schedule.timezone);
    let empty = |v: &Option<String>| v.clone().filter(|x| !x.trim().is_empty());
    let (kind, level, entity) = (empty(&q.kind), empty(&q.level), empty(&q.entidad));
    let filter = FindingFilter { kind: kind.clone(), level: level.clone(), entity: entity.clone() };
    let mut after = q.desde.as_deref().and_then(parse_cursor);
    let (mut rows, mut scanned, mut done) = (Vec::new(), 0, false);
    'scan: while rows.len() < PAGE_ROWS && scanned < SCAN {
        let page = match d.store.urgent_page(after.as_ref(), &filter, READ).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading findings for the web view");
                return refused(StatusCode::INTERNAL_SERVER_ERROR, "Error al leer los hallazgos.");
            }
        };
        let whole = page.len() < READ as usize;
        for df in &page {
            after = Some(FindingCursor::of(&df.stored.finding));
            scanned += 1;
            if reaches(&settings, &df.stored.finding.level, &df.contract, &s.email) {
                rows.push(row_json(df, today, &settings));
            }
            if rows.len() == PAGE_ROWS || scanned == SCAN {
                break 'scan;
            }
        }
        if whole {
            done = true;
            break;
        }
    }
    let next = (!done).then(|| after.as_ref().map(cursor_text)).flatten();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("kind", &kind), ("level", &level), ("entidad", &entity)] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    let filters = query.finish();
    let next_url = next.map(|n| {
        let mut q = url::form_urlencoded::Serializer::new(filters.clone());
        q.append_pair("desde", &n);
        format!("/mis-hallazgos?{}", q.finish())
    });
    let kinds: Vec<_> = Kind::ALL
        .iter()
        .map(|k| json!({ "value": k.as_str(), "label": kind_label(*k), "selected": kind.as_deref() == Some(k.as_str()) }))
        .collect();
    let levels: Vec<_> = settings
        .levels
        .iter()
        .map(|l| json!({ "value": l.name, "label": level_label(&l.name), "selected": level.as_deref() == Some(l.name.as_str()) }))
        .collect();
    render(
        StatusCode::OK,
        "findings.html",
        minijinja::context! {
            recipient => s.email,
            date => fecha(today),
            rows => minijinja::Value::from(minijinja::value::Serde(&rows)),
            kinds => minijinja::Value::from(minijinja::value::Serde(&kinds)),
            levels => minijinja::Value::from(minijinja::value::Serde(&levels)),
            entity => entity,
            next_url => next_url,
            first_page => q.desde.is_none(),
        },
    )
}

#[derive(Deserialize, Default)]
struct PageQuery {
    t: Option<String>,
    /// Set after an answer was recorded.
    hecho: Option<String>,
}

/// The finding `id` if it reaches the session's recipient (404 otherwise, saying no more).
async fn finding_for<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    s: &Session,
    id: i64,
) -> Result<(crate::domain::StoredFinding, crate::domain::Contract), Box<Response>> {
    let not_found =
        || Box::new(refused(StatusCode::NOT_FOUND, "No hay un hallazgo suyo con ese número."));
    let settings = d.settings();
    let stored = match d.store.finding(id).await {
        Ok(Some(f)) => f,
        Ok(None) => return Err(not_found()),
        Err(e) => {
            tracing::error!(error = %e, "reading a finding for the web view");
            return Err(Box::new(refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error al leer el hallazgo.",
            )));
        }
    };
    let contract = match d.store.contract(&stored.finding.contract_id).await {
        Ok(Some(c)) => c,
        _ => return Err(not_found()),
    };
    if !reaches(&settings, &stored.finding.level, &contract, &s.email) {
        return Err(not_found());
    }
    Ok((stored, contract))
}

/// The finding page's variables, with `errors` of a refused answer and what was typed.
async fn page_context<S: Store + Clone + 'static>(
    d: &Daemon<S>,
    s: &Session,
    stored: &crate::domain::StoredFinding,
    contract: &crate::domain::Contract,
    done: bool,
    errors: Vec<String>,
    typed: serde_json::Value,
) -> minijinja::Value {
    let settings = d.settings();
    let today = d.clock.today(settings.schedule.timezone);
    let mut f = stored.finding.clone();
    f.count_days_from(&settings.calendar, today);
    let history = acks::history(&d.store, &settings, stored.id).await.unwrap_or_default();
    let history: Vec<_> = history
        .iter()
        .map(|h| {
            json!({
                "date": fecha(h.on_date),
                "event": event_label(&h.event),
                "level": level_label(&h.level),
                "author": h.author,
                "detail": h.detail,
            })
        })
        .collect();
    let record = match d.store.raw_record(Dataset::Contracts, &contract.id).await {
        Ok(Some(frame)) => crate::source::raw::decompress(&frame)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| serde_json::to_string_pretty(&v).ok()),
        _ => None,
    };
    let secret = settings.http.links.as_ref().map(|l| l.secret.expose_secret().to_string());
    let csrf = secret.map(|k| crate::links::form_token(k.as_bytes(), &s.token)).unwrap_or_default();
    let answer = stored.ack.as_ref().map(answer_label);
    let missing: Vec<_> = f
        .missing
        .iter()
        .map(|k| json!({ "value": k, "label": settings.classifier.label(k).unwrap_or(k) }))
        .collect();
    let open = d
        .store
        .open_findings_of(&contract.id)
        .await
        .map(|o| o.iter().any(|x| x.id == stored.id))
        .unwrap_or(false);
    minijinja::context! {
        recipient => s.email.clone(),
        id => stored.id,
        open => open,
        reference => contract.reference.clone().unwrap_or_else(|| contract.id.clone()),
        contract_id => contract.id.clone(),
        entity => contract.entity_name.clone(),
        supervisor => contract.supervisor_name.clone(),
        state => contract.state.clone(),
        end_date => contract.ends_on.map(fecha),
        url => contract.url.clone(),
        kind => f.kind.as_str(),
        kind_label => kind_label(f.kind),
        level => f.level.clone(),
        level_label => level_label(&f.level),
        days => days_left(f.business_days_left),
        overdue => f.business_days_left < 0,
        deadline => fecha(f.deadline),
        reasons => f.reasons.clone(),
        missing => minijinja::Value::from(minijinja::value::Serde(&missing)),
        answer => answer,
        history => minijinja::Value::from(minijinja::value::Serde(&history)),
        record => record,
        csrf => csrf,
        min_until => (today + chrono::Days::new(1)).to_string(),
        max_until => (today + chrono::Days::new(settings.acknowledgements.max_days.into())).to_string(),
        done => done,
        errors => errors,
        typed => minijinja::Value::from(minijinja::value::Serde(&typed)),
    }
}

fn event_label(event: &str) -> &str {
    match event {
        "opened" => "Abierto",
        "escalated" => "Escaló",
        "deescalated" => "Bajó de nivel",
        "resolved" => "Resuelto",
        "acknowledged" => "En trámite",
        "dismissed" => "No aplica",
        "document_published" => "Documento publicado",
        "reopened" => "Reabierto",
        "silenced" => "Silenciado",
        other => other,
    }
}

/// `GET /mis-hallazgos/{id}`: a finding's page.
async fn page<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let s = match session(&d, &headers, q.t.as_deref(), &format!("/mis-hallazgos/{id}")) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let _turn = scan_turn().await;
    let (stored, contract) = match finding_for(&d, &s, id).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let ctx = page_context(&d, &s, &stored, &contract, q.hecho.is_some(), vec![], json!({})).await;
    render(StatusCode::OK, "finding.html", ctx)
}

/// `POST /mis-hallazgos/{id}/respuesta`: records the answer of a form (the session's cookie
/// and the form's token required), then back to the finding's page.
async fn answer<S: Store + Clone + 'static>(
    State(d): State<Arc<Daemon<S>>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let s = match session(&d, &headers, None, &format!("/mis-hallazgos/{id}")) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let settings = d.settings();
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let secret = settings.http.links.as_ref().map(|l| l.secret.expose_secret().to_string());
    let csrf_ok = match (&secret, field("csrf")) {
        (Some(k), Some(given)) => crate::links::check_form_token(k.as_bytes(), &s.token, &given),
        _ => false,
    };
    if !csrf_ok {
        return refused(
            StatusCode::FORBIDDEN,
            "El formulario no es válido o venció. Vuelva a abrir la página del hallazgo.",
        );
    }
    let (stored, contract) = match finding_for(&d, &s, id).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let today = d.clock.today(settings.schedule.timezone);
    let mut errors = Vec::new();
    let state = match field("state").as_deref().map(str::parse::<AckState>) {
        Some(Ok(state)) => Some(state),
        _ => {
            errors.push("Elija una respuesta.".to_string());
            None
        }
    };
    let reason = field("reason");
    if reason.is_none() {
        errors.push("Escriba el motivo.".into());
    }
    let until = match (state, field("until")) {
        (Some(AckState::EnTramite), None) => {
            errors.push("Indique hasta qué fecha está en trámite.".into());
            None
        }
        (Some(AckState::EnTramite), Some(u)) => match NaiveDate::parse_from_str(&u, "%Y-%m-%d") {
            Ok(u) if u > today => Some(u),
            Ok(_) => {
                errors.push("La fecha de «en trámite» debe ser posterior a hoy.".into());
                None
            }
            Err(_) => {
                errors.push("La fecha no es válida (AAAA-MM-DD).".into());
                None
            }
        },
        _ => None,
    };
    if state == Some(AckState::DocumentoPublicado) && field("document_id").is_none() {
        errors.push("Escriba el número (id_documento) del documento publicado.".into());
    }
    let typed = json!({ "state": field("state"), "until": field("until"), "reason": field("reason"), "note": field("note"), "document_id": field("document_id") });
    if errors.is_empty()
        && let (Some(state), Some(reason)) = (state, reason)
    {
        let ack = NewAck {
            contract_id: contract.id.clone(),
            kind: stored.finding.kind,
            stage: stored.finding.stage,
            state,
            until,
            document_id: (state == AckState::DocumentoPublicado)
                .then(|| field("document_id"))
                .flatten(),
            document_kind: (state == AckState::DocumentoPublicado)
                .then(|| field("document_kind"))
                .flatten(),
            reason,
            note: field("note"),
            author: s.email.clone(),
        };
        match acks::acknowledge(&d.store, &settings, &ack, today, d.clock.now()).await {
            Ok(_) => {
                let mut r = StatusCode::SEE_OTHER.into_response();
                let location = format!("/mis-hallazgos/{id}?hecho=1");
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return r;
            }
            Err(AckError::Invalid(e)) => {
                errors.extend(e.into_iter().map(|m| format!("No se pudo registrar: {m}")))
            }
            Err(AckError::NotFound(e)) => errors.push(format!("No se pudo registrar: {e}")),
            Err(AckError::Store(e)) => {
                tracing::error!(error = %e, "recording an answer from the web view");
                errors.push("Error al registrar la respuesta; intente de nuevo.".into());
            }
        }
    }
    let ctx = page_context(&d, &s, &stored, &contract, false, errors, typed).await;
    render(StatusCode::BAD_REQUEST, "finding.html", ctx)
}
