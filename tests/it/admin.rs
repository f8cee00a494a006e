//! The admin console over HTTP (the daemon's router on a loopback port): every page needs a
//! session from the sign-in form (`http.token`), every form the session's token; the outbox
//! shows why an item died and queues it again; silences are created and expired from their
//! page; the configuration file is checked as it is now; lists come in pages; a digest
//! preview carries no working personal link.

use std::sync::Arc;

use chrono::Utc;
use cierre::clock::FixedClock;
use cierre::scheduler::Daemon;
use cierre::store::NewOutboxItem;
use cierre::store::prelude::*;

use crate::helpers::{TestApp, TestStore, date, scalar, spawn_app_with};

const TOKEN: &str = "a-token-for-the-console-0123456789";
/// Who signs in: recorded with what the session does.
const ADMIN: &str = "ana.torres@entidad.gov.co";

async fn serve(today: &str) -> (TestApp, String, Arc<Daemon<TestStore>>) {
    let dir = tempfile::tempdir().unwrap();
    let contracts = crate::web::contracts(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let extra = format!(
        "[http]\ntoken = \"{TOKEN}\"\npublic_url = \"{base}/\"\nlink_secret = \"{}\"\n",
        crate::web::SECRET
    );
    let t = spawn_app_with(&contracts, today, &extra).await;
    std::mem::forget(dir);
    let clock = Arc::new(FixedClock::at_date(date(today)));
    let d = Daemon::new(t.app.settings.clone(), t.app.store.clone(), clock);
    let router = cierre::http::router(d.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (t, base, d)
}

fn client() -> reqwest::Client {
    cierre::tls::install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

struct Answer {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

async fn get(c: &reqwest::Client, url: &str, cookie: Option<&str>) -> Answer {
    let mut r = c.get(url);
    if let Some(cookie) = cookie {
        r = r.header("cookie", cookie);
    }
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    Answer { status, body: unescape(&r.text().await.unwrap()), headers }
}

async fn post(
    c: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut r = c.post(url).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some(cookie) = cookie {
        r = r.header("cookie", cookie);
    }
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    Answer { status, body: unescape(&r.text().await.unwrap()), headers }
}

/// A page's text with the escapes of `/` and `&` in attributes undone (minijinja escapes
/// both), so addresses read as typed.
fn unescape(page: &str) -> String {
    page.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// The value of the hidden field `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = page.find(&key).unwrap_or_else(|| panic!("no {name} in {page}")) + key.len();
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

/// Signs in through the form; the session cookie.
async fn sign_in(c: &reqwest::Client, base: &str) -> String {
    let form = get(c, &format!("{base}/admin/entrar"), None).await;
    assert_eq!(form.status, 200);
    let csrf = hidden(&form.body, "csrf");
    let r = post(
        c,
        &format!("{base}/admin/entrar"),
        None,
        &[("csrf", &csrf), ("siguiente", "/admin/envios"), ("nombre", ADMIN), ("token", TOKEN)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.headers["location"], "/admin/envios");
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http on loopback: {set}");
    set.split(';').next().unwrap().to_string()
}

/// A webhook item queued, claimed and given up on: dead, with its error.
async fn dead_item(t: &TestApp, key: &str, target: &str) -> i64 {
    let now = Utc::now();
    let item = NewOutboxItem {
        idempotency_key: key.into(),
        channel: "webhook".into(),
        target: target.into(),
        subject: None,
        message_id: Some(key.into()),
        payload: "{}".into(),
    };
    assert!(t.app.store.enqueue(&item, now).await.unwrap());
    let claimed = t
        .app
        .store
        .claim_due(now, now + chrono::Duration::minutes(5), 10, "test", "")
        .await
        .unwrap();
    let it = claimed.iter().find(|i| i.idempotency_key == key).expect("claimed");
    let refused = "HTTP 410 Gone: the endpoint was removed";
    assert!(t.app.store.mark_failed(it.id, &it.claim(), refused, None, now).await.unwrap());
    t.app.store.record_endpoint(target, Some(refused), now).await.unwrap();
    it.id
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_needs_a_session_and_every_form_its_token() {
    let (t, base, _) = serve("2026-02-16").await;
    let c = client();

    // Without a session every page is the sign-in form, answered 401; forms change nothing.
    for page in [
        "/admin",
        "/admin/ejecuciones",
        "/admin/envios",
        "/admin/silencios",
        "/admin/configuracion",
        "/admin/resumen",
        "/admin/resumen/ver?para=x@y.co",
    ] {
        let r = get(&c, &format!("{base}{page}"), None).await;
        assert_eq!(r.status, 401, "{page}");
        assert!(r.body.contains("name=\"token\""), "{page}: a sign-in form");
        assert!(
            r.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
    let r = post(&c, &format!("{base}/admin/silencios/1/vencer"), None, &[("csrf", "x")]).await;
    assert_eq!(r.status, 401);
    // Nothing changes state on GET.
    let r = get(&c, &format!("{base}/admin/envios/reencolar"), None).await;
    assert_eq!(r.status, 405);

    // A wrong token, and a sign-in form that was not ours, are refused.
    let form = get(&c, &format!("{base}/admin/entrar"), None).await;
    let csrf = hidden(&form.body, "csrf");
    let r = post(
        &c,
        &format!("{base}/admin/entrar"),
        None,
        &[("csrf", &csrf), ("nombre", ADMIN), ("token", "guess")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("La clave no es correcta"));
    assert!(r.headers.get("set-cookie").is_none());
    let r = post(
        &c,
        &format!("{base}/admin/entrar"),
        None,
        &[("csrf", "forged"), ("nombre", ADMIN), ("token", TOKEN)],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("set-cookie").is_none());
    // Without a name (recorded with what the session does), no session.
    let r =
        post(&c, &format!("{base}/admin/entrar"), None, &[("csrf", &csrf), ("token", TOKEN)]).await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("set-cookie").is_none());
    // The way back after signing in stays on the console.
    let r = post(
        &c,
        &format!("{base}/admin/entrar"),
        None,
        &[
            ("csrf", &csrf),
            ("nombre", ADMIN),
            ("token", TOKEN),
            ("siguiente", "https://elsewhere.example/"),
        ],
    )
    .await;
    assert_eq!((r.status, r.headers["location"].to_str().unwrap()), (303, "/admin"));

    let session = sign_in(&c, &base).await;
    let r = get(&c, &format!("{base}/admin"), Some(&session)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<h1>Resumen</h1>"));
    assert!(r.body.contains(ADMIN), "the session names its administrator");
    // A session cookie altered by one character is refused.
    let mut forged = session.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let r = get(&c, &format!("{base}/admin"), Some(&forged)).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Su sesión venció o no es válida"));
    // A personal link's token is not an admin session, even under the same cookie name.
    let link = cierre::links::sign(
        TOKEN.as_bytes(),
        "jefa@sena.example",
        Utc::now() + chrono::Duration::days(1),
    );
    let r = get(&c, &format!("{base}/admin"), Some(&format!("cierre_admin={link}"))).await;
    assert_eq!(r.status, 401);

    // A form without the session's token is refused and changes nothing.
    let silence = [
        ("kind", "closable"),
        ("starts_on", "2026-02-16"),
        ("ends_on", "2026-03-02"),
        ("author", "admin@entidad.gov.co"),
        ("comment", "Auditoría en curso"),
    ];
    let r = post(&c, &format!("{base}/admin/silencios"), Some(&session), &silence).await;
    assert_eq!(r.status, 403);
    let mut with_token = silence.to_vec();
    let page = get(&c, &format!("{base}/admin/silencios"), Some(&session)).await;
    let csrf = hidden(&page.body, "csrf");
    with_token.push(("csrf", &csrf));
    assert!(t.app.store.silences(date("2026-02-16"), true, IdPage::ALL).await.unwrap().is_empty());

    // Created from the form: stored as typed, listed, then expired today from its button.
    let r = post(&c, &format!("{base}/admin/silencios"), Some(&session), &with_token).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let stored = t.app.store.silences(date("2026-02-16"), true, IdPage::ALL).await.unwrap();
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!(s.silence.matchers.kinds, vec![cierre::domain::Kind::Closable]);
    assert_eq!((s.silence.starts_on, s.silence.ends_on), (date("2026-02-16"), date("2026-03-02")));
    assert_eq!(s.silence.author, "admin@entidad.gov.co");
    let location = r.headers["location"].to_str().unwrap().to_string();
    let page = get(&c, &format!("{base}{location}"), Some(&session)).await;
    assert!(page.body.contains(&format!("Silencio {} creado.", s.id)));
    assert!(page.body.contains(&format!("data-silence=\"{}\"", s.id)));
    assert!(page.body.contains("vigente"));
    // An invalid one is refused with the reasons, keeping what was typed.
    let mut bad = with_token.clone();
    bad.retain(|(k, _)| *k != "ends_on" && *k != "kind");
    bad.push(("ends_on", "2026-02-10"));
    let r = post(&c, &format!("{base}/admin/silencios"), Some(&session), &bad).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("role=\"alert\""), "{}", r.body);
    assert!(r.body.contains("Auditoría en curso"));
    assert_eq!(t.app.store.silences(date("2026-02-16"), true, IdPage::ALL).await.unwrap().len(), 1);
    let expire = format!("{base}/admin/silencios/{}/vencer", s.id);
    let r = post(&c, &expire, Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(t.app.store.silences(date("2026-02-16"), false, IdPage::ALL).await.unwrap().is_empty());
    let r = post(&c, &expire, Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 404, "already ended");

    // Signing out drops the cookie.
    let r = post(&c, &format!("{base}/admin/salir"), Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(r.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_shows_why_an_item_died_and_queues_it_again() {
    let (t, base, _) = serve("2026-02-16").await;
    let c = client();
    let session = sign_in(&c, &base).await;
    let gone = "http://127.0.0.1:9/gone";
    let first = dead_item(&t, "k-1", gone).await;
    let second = dead_item(&t, "k-2", "http://127.0.0.1:9/other").await;

    // The overview names the failing endpoint; the outbox filtered by state shows the error.
    let r = get(&c, &format!("{base}/admin"), Some(&session)).await;
    assert!(r.body.contains(gone), "{}", r.body);
    assert!(r.body.contains("HTTP 410 Gone"));
    let r = get(&c, &format!("{base}/admin/envios?estado=dead"), Some(&session)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&format!("data-item=\"{first}\"")));
    assert!(r.body.contains(&format!("data-item=\"{second}\"")));
    assert!(r.body.contains("HTTP 410 Gone: the endpoint was removed"));
    let csrf = hidden(&r.body, "csrf");

    // One item queued again from its button; the other stays dead.
    let id = first.to_string();
    let r = post(
        &c,
        &format!("{base}/admin/envios/reencolar"),
        Some(&session),
        &[("csrf", &csrf), ("id", &id)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Se reencoló 1 envío"));
    let audit = format!(
        "SELECT COUNT(*) FROM outbox_audit WHERE actor = 'admin console: {ADMIN}' \
         AND action = 'requeue' AND items = 1"
    );
    assert_eq!(scalar(&t.app.settings.store_url, &audit).await, 1, "audited with who did it");
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    let status = |id: i64| items.iter().find(|i| i.id == id).unwrap().status.clone();
    assert_eq!((status(first).as_str(), status(second).as_str()), ("pending", "dead"));
    // Again: nothing left to queue for that item.
    let r = post(
        &c,
        &format!("{base}/admin/envios/reencolar"),
        Some(&session),
        &[("csrf", &csrf), ("id", &id)],
    )
    .await;
    assert!(r.body.contains("No había envíos muertos"));
    // Without the form token nothing is queued.
    let other = second.to_string();
    let r = post(&c, &format!("{base}/admin/envios/reencolar"), Some(&session), &[("id", &other)])
        .await;
    assert_eq!(r.status, 403);
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    assert_eq!(items.iter().find(|i| i.id == second).unwrap().status, "dead");
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_come_in_pages_and_the_configuration_is_checked_as_it_is_now() {
    let (t, base, d) = serve("2026-02-16").await;
    let c = client();
    let session = sign_in(&c, &base).await;
    for i in 0..60 {
        let new = cierre::domain::silence::NewSilence {
            matchers: cierre::domain::silence::SilenceMatchers {
                levels: vec!["vencido".into()],
                ..Default::default()
            },
            starts_on: date("2026-02-16"),
            ends_on: date("2026-03-16"),
            webhooks: false,
            author: format!("admin{i}@entidad.gov.co"),
            comment: "carga".into(),
        };
        t.app.store.add_silence(&new, Utc::now()).await.unwrap();
    }
    // The console: 50, then the 10 others from the "next" link.
    let r = get(&c, &format!("{base}/admin/silencios"), Some(&session)).await;
    assert_eq!(r.body.matches("data-silence=").count(), 50);
    let at = r.body.find("rel=\"next\" href=\"").unwrap() + 17;
    let next = r.body[at..at + r.body[at..].find('"').unwrap()].to_string();
    let r = get(&c, &format!("{base}{next}"), Some(&session)).await;
    assert_eq!(r.body.matches("data-silence=").count(), 10);
    assert!(!r.body.contains("rel=\"next\""));
    // The API: pages of `limit` until `next_after` is null, every silence once.
    let mut seen = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let url = match after {
            Some(a) => format!("{base}/api/silences?limit=25&after={a}"),
            None => format!("{base}/api/silences?limit=25"),
        };
        let v: serde_json::Value = serde_json::from_str(&get(&c, &url, None).await.body).unwrap();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 25);
        seen.extend(items.iter().map(|s| s["id"].as_i64().unwrap()));
        match v["next_after"].as_i64() {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (60, 60));
    let v: serde_json::Value =
        serde_json::from_str(&get(&c, &format!("{base}/api/silences?limit=5000"), None).await.body)
            .unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 60, "at most 1,000 a page, 60 here");

    // Runs recorded by jobs are listed with their outcome.
    d.run_job(cierre::config::schedule::Job::Sync, Utc::now()).await;
    let r = get(&c, &format!("{base}/admin/ejecuciones"), Some(&session)).await;
    assert!(r.body.contains("<strong>sync</strong>"), "{}", r.body);

    // The configuration file as it is now: valid, then broken on disk (the one in force stays).
    let r = get(&c, &format!("{base}/admin/configuracion"), Some(&session)).await;
    assert!(r.body.contains("El archivo es válido"), "{}", r.body);
    let path = t.app.settings.config_path.clone().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}\n[[routes]]\noffice = \"nadie\"\nmatch = {{ nit_entidad = \"1\" }}\n"),
    )
    .unwrap();
    let r = get(&c, &format!("{base}/admin/configuracion"), Some(&session)).await;
    assert!(r.body.contains("error(es)"), "{}", r.body);
    assert!(r.body.contains("routes"), "{}", r.body);
    assert!(r.body.contains("daemon.toml"), "the location of each error: {}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_shows_the_digest_without_working_personal_links() {
    let (t, base, _) = serve("2026-02-16").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let c = client();
    let session = sign_in(&c, &base).await;
    let r = get(&c, &format!("{base}/admin/resumen?buscar=sena"), Some(&session)).await;
    assert!(
        r.body.contains("jefa@sena.example")
            || r.body.contains("resumen/ver?para=jefa%40sena.example"),
        "{}",
        r.body
    );
    let r = get(
        &c,
        &format!("{base}/admin/resumen/ver?para=jefa%40sena.example&fecha=2026-02-16"),
        Some(&session),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("CO1.PCCNTR"), "the digest's rows");
    assert!(!r.body.contains("mis-hallazgos"), "no personal link in a preview");
    // The API's preview alike.
    let r =
        get(&c, &format!("{base}/api/digest?to=jefa@sena.example&as_of=2026-02-16"), None).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("mis-hallazgos"));
    let r = get(&c, &format!("{base}/admin/resumen/ver?para=nadie%40sena.example"), Some(&session))
        .await;
    assert_eq!(r.status, 404);
}
