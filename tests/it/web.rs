//! The web view over HTTP (the daemon's router on a loopback port): a digest's personal
//! link opens "Mis hallazgos", scoped to its recipient; tampered, expired and missing tokens
//! are refused; forms need the session's token; an answer posted through the form leaves
//! the finding out of the next digest and shows in its history; lists come in pages.

use std::sync::Arc;

use cierre::clock::FixedClock;
use cierre::scheduler::Daemon;
use cierre::store::prelude::*;

use crate::helpers::{TestApp, date, spawn_app_with};

pub(crate) const SECRET: &str = "0123456789abcdef0123456789abcdef-links";

/// SENA's three closable contracts of the acknowledgement tests, and one of ICBF's.
pub(crate) fn contracts(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        "{}{}\n",
        crate::acks::THREE,
        r#"{"id_contrato":"CO1.PCCNTR.904","nit_entidad":"899999239","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-16T00:00:00.000","liquidaci_n":"No"}"#
    );
    let file = dir.join("four.jsonl");
    std::fs::write(&file, text).unwrap();
    file
}

/// The app and its web view served on a loopback port (the daemon's clock at noon of
/// `today`), with `http.public_url` pointing at it.
async fn serve(contracts: &std::path::Path, today: &str) -> (TestApp, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let extra = format!("[http]\npublic_url = \"{base}/\"\nlink_secret = \"{SECRET}\"\n");
    let t = spawn_app_with(contracts, today, &extra).await;
    let clock = Arc::new(FixedClock::at_date(date(today)));
    let d = Daemon::new(t.app.settings.clone(), t.app.store.clone(), clock);
    let router = cierre::http::router(d);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (t, base)
}

fn client() -> reqwest::Client {
    cierre::tls::install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The personal link in `to`'s digest of `day` (its text part).
fn link_in_digest(t: &TestApp, to: &str, day: &str) -> String {
    let e = t
        .emails()
        .into_iter()
        .find(|e| e.to == to && e.message_id.contains(day))
        .unwrap_or_else(|| panic!("no digest for {to} on {day}"));
    let line = e.text.lines().find(|l| l.contains("/mis-hallazgos?t=")).expect("a link");
    line[line.find("http").unwrap()..].trim().to_string()
}

async fn get(
    c: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut r = c.get(url);
    if let Some(cookie) = cookie {
        r = r.header("cookie", cookie);
    }
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.text().await.unwrap(), headers)
}

async fn post(
    c: &reqwest::Client,
    url: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (u16, String, reqwest::header::HeaderMap) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let r = c
        .post(url)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.text().await.unwrap(), headers)
}

async fn id_of(t: &TestApp, contract: &str) -> i64 {
    t.app.store.open_findings_of(contract).await.unwrap()[0].id
}

/// The hidden form token of a finding page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_link_opens_only_its_recipients_findings_and_an_answer_posted_there_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (t, base) = serve(&contracts(dir.path()), "2026-02-16").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    t.app.deliver().await.unwrap();
    let link = link_in_digest(&t, "jefa@sena.example", "2026-02-16");
    assert!(link.starts_with(&format!("{base}/mis-hallazgos?t=")), "{link}");
    let c = client();

    // The link sets the session cookie and drops the token from the address.
    let (status, _, h) = get(&c, &link, None).await;
    assert_eq!(status, 303);
    assert_eq!(h["location"], "/mis-hallazgos");
    let set = h["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    // Her list: SENA's findings, not ICBF's.
    let (status, list, h) = get(&c, &format!("{base}/mis-hallazgos"), Some(&cookie)).await;
    assert_eq!(status, 200, "{list}");
    assert!(h["content-security-policy"].to_str().unwrap().contains("form-action 'self'"));
    let (sena, icbf) = (id_of(&t, "CO1.PCCNTR.902").await, id_of(&t, "CO1.PCCNTR.904").await);
    for c in ["CO1.PCCNTR.901", "CO1.PCCNTR.902", "CO1.PCCNTR.903"] {
        let id = id_of(&t, c).await;
        assert!(list.contains(&format!("data-finding=\"{id}\"")), "{c}: {list}");
    }
    assert!(!list.contains(&format!("data-finding=\"{icbf}\"")), "{list}");
    // Filters: only the urgent ones (902 alone on the 16th).
    let (_, urgent, _) =
        get(&c, &format!("{base}/mis-hallazgos?level=urgente"), Some(&cookie)).await;
    assert_eq!(urgent.matches("data-finding=").count(), 1, "{urgent}");

    // Another office's finding: not found, to read or to answer.
    let (status, _, _) = get(&c, &format!("{base}/mis-hallazgos/{icbf}"), Some(&cookie)).await;
    assert_eq!(status, 404);
    let (_, page, _) = get(&c, &format!("{base}/mis-hallazgos/{sena}"), Some(&cookie)).await;
    let token = csrf(&page);
    let answer = [
        ("csrf", token.as_str()),
        ("state", "en_tramite"),
        ("until", "2026-02-24"),
        ("reason", "Acta de cierre en firma del ordenador"),
    ];
    let (status, _, _) =
        post(&c, &format!("{base}/mis-hallazgos/{icbf}/respuesta"), &cookie, &answer).await;
    assert_eq!(status, 404);
    // Forms need the session's token: none, or another session's, is refused.
    let no_csrf = &answer[1..];
    let (status, _, _) =
        post(&c, &format!("{base}/mis-hallazgos/{sena}/respuesta"), &cookie, no_csrf).await;
    assert_eq!(status, 403);
    let other = cierre::links::sign(
        SECRET.as_bytes(),
        "jefa@sena.example",
        chrono::Utc::now() + chrono::Duration::days(400),
    );
    let foreign = cierre::links::form_token(SECRET.as_bytes(), &other);
    let mut forged = answer;
    forged[0] = ("csrf", foreign.as_str());
    let (status, _, _) =
        post(&c, &format!("{base}/mis-hallazgos/{sena}/respuesta"), &cookie, &forged).await;
    assert_eq!(status, 403);
    assert!(t.app.store.acknowledgements(None, true, IdPage::ALL).await.unwrap().is_empty());
    // A mistake is said in Spanish, and nothing recorded.
    let mut late = answer;
    late[2] = ("until", "2026-02-10");
    let (status, body, _) =
        post(&c, &format!("{base}/mis-hallazgos/{sena}/respuesta"), &cookie, &late).await;
    assert_eq!(status, 400);
    assert!(body.contains("debe ser posterior a hoy"), "{body}");
    assert!(t.app.store.acknowledgements(None, true, IdPage::ALL).await.unwrap().is_empty());

    // The answer through the form: recorded with her as the author, shown on the page.
    let (status, _, h) =
        post(&c, &format!("{base}/mis-hallazgos/{sena}/respuesta"), &cookie, &answer).await;
    assert_eq!(status, 303);
    assert_eq!(h["location"], format!("/mis-hallazgos/{sena}?hecho=1").as_str());
    let acks = t.app.store.acknowledgements(Some(sena), false, IdPage::ALL).await.unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].author, "jefa@sena.example");
    let (_, page, _) =
        get(&c, &format!("{base}/mis-hallazgos/{sena}?hecho=1"), Some(&cookie)).await;
    assert!(page.contains("Su respuesta quedó registrada."), "{page}");
    assert!(
        page.contains("En trámite hasta el 2026-02-24: Acta de cierre en firma del ordenador"),
        "{page}"
    );

    // The next digest (Friday 20th, when 903 is urgent too) leaves it out and says so.
    t.app.evaluate(Some(date("2026-02-20"))).await.unwrap();
    t.app.notify(Some(date("2026-02-20")), false).await.unwrap();
    t.app.deliver().await.unwrap();
    let e = t
        .emails()
        .into_iter()
        .find(|e| e.to == "jefa@sena.example" && e.message_id.contains("2026-02-20"))
        .expect("her digest of the 20th");
    let id_903 = id_of(&t, "CO1.PCCNTR.903").await;
    assert!(e.text.contains(&format!("/mis-hallazgos/{id_903}?")), "{}", e.text);
    assert!(!e.text.contains(&format!("/mis-hallazgos/{sena}?")), "{}", e.text);
    assert!(e.text.contains("No se muestran: 1 en trámite."), "{}", e.text);

    // Tokens: tampered, expired, missing.
    let tampered = link.replace("?t=", "?t=x");
    assert_eq!(get(&c, &tampered, None).await.0, 403);
    let expired = cierre::links::sign(
        SECRET.as_bytes(),
        "jefa@sena.example",
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    );
    let (status, body, _) = get(&c, &format!("{base}/mis-hallazgos?t={expired}"), None).await;
    assert_eq!(status, 403);
    assert!(body.contains("venció"), "{body}");
    assert_eq!(get(&c, &format!("{base}/mis-hallazgos"), None).await.0, 401);
    // Guessing is slowed down: past 30 refused tokens a minute, 429.
    let mut codes = Vec::new();
    for i in 0..32 {
        codes.push(get(&c, &format!("{base}/mis-hallazgos?t=guess{i}.x"), None).await.0);
    }
    assert_eq!(codes.last(), Some(&429), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mis_hallazgos_comes_in_pages_of_every_finding_that_reaches_its_recipient() {
    let (t, base) = serve(&crate::helpers::sample_contracts(), "2026-02-16").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let to = "central@example.gov.co";
    let mut expected = Vec::new();
    let mut after = None;
    loop {
        let page = t.app.store.urgent_page(after.as_ref(), &Default::default(), 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(cierre::store::FindingCursor::of(&last.stored.finding));
        for df in &page {
            if cierre::notify::reaches(&t.app.settings, &df.stored.finding.level, &df.contract, to)
            {
                expected.push(df.stored.id);
            }
        }
    }
    assert!(expected.len() > 100, "{}", expected.len());
    let token = cierre::links::sign(
        SECRET.as_bytes(),
        to,
        chrono::Utc::now() + chrono::Duration::days(400),
    );
    let c = client();
    let cookie = format!("cierre_enlace={token}");
    let (seen, pages) = walk(&c, &base, "/mis-hallazgos", &cookie).await;
    assert_eq!(seen, expected, "every one once, most urgent first, over {pages} pages");
    assert!(pages > 2);

    // Filtered by kind and level (in the store's query), and by entity: the same list with
    // only those.
    for (query, keep) in [
        (
            "kind=state_outdated",
            &(|df: &cierre::store::DigestFinding| {
                df.stored.finding.kind.as_str() == "state_outdated"
            }) as &dyn Fn(&cierre::store::DigestFinding) -> bool,
        ),
        ("level=urgente", &|df: &cierre::store::DigestFinding| {
            df.stored.finding.level == "urgente"
        }),
        ("entidad=890399011&kind=closable", &|df: &cierre::store::DigestFinding| {
            df.contract.entity_nit.as_deref() == Some("890399011")
                && df.stored.finding.kind.as_str() == "closable"
        }),
    ] {
        let mut expected = Vec::new();
        let mut after = None;
        loop {
            let page =
                t.app.store.urgent_page(after.as_ref(), &Default::default(), 500).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(cierre::store::FindingCursor::of(&last.stored.finding));
            expected.extend(
                page.iter()
                    .filter(|df| {
                        keep(df)
                            && cierre::notify::reaches(
                                &t.app.settings,
                                &df.stored.finding.level,
                                &df.contract,
                                to,
                            )
                    })
                    .map(|df| df.stored.id),
            );
        }
        assert!(!expected.is_empty(), "{query}");
        let (seen, _) = walk(&c, &base, &format!("/mis-hallazgos?{query}"), &cookie).await;
        assert_eq!(seen, expected, "{query}");
    }
}

/// Every row of a list of "Mis hallazgos", following its "next" links: the finding ids in
/// order, and how many pages.
async fn walk(c: &reqwest::Client, base: &str, first: &str, cookie: &str) -> (Vec<i64>, usize) {
    let (mut seen, mut url, mut pages) = (Vec::new(), format!("{base}{first}"), 0);
    loop {
        let (status, body, _) = get(c, &url, Some(cookie)).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let rows: Vec<i64> = body
            .match_indices("data-finding=\"")
            .map(|(i, m)| {
                let s = &body[i + m.len()..];
                s[..s.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert!(rows.len() <= 50);
        seen.extend(rows);
        let next = "rel=\"next\" href=\"";
        match body.find(next) {
            Some(i) => {
                let s = &body[i + next.len()..];
                url = format!(
                    "{base}{}",
                    s[..s.find('"').unwrap()].replace("&#x2f;", "/").replace("&amp;", "&")
                );
            }
            None => break,
        }
    }
    (seen, pages)
}
