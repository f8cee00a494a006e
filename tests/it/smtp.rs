//! Digests over a real SMTP server on loopback (aiosmtpd, started by the test): STARTTLS
//! with authentication and a private CA, implicit TLS, an outage, a crash between send and
//! record, and a refused recipient.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use chrono::Duration;
use cierre::app::App;
use cierre::clock::FixedClock;
use cierre::notify::digest;
use cierre::notify::outbox::{self, Channels};
use cierre::store::prelude::*;

use crate::helpers::TestStore;

use crate::helpers::{Email, Sheet, date, repo, spawn_app_with};

/// An aiosmtpd server in a child process, killed on drop.
pub struct SmtpServer {
    child: Child,
    pub out: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start(port: u16, args: &[&str]) -> SmtpServer {
        let out = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg(repo().join("tests/support/smtp_server.py"))
            .args(["--port", &port.to_string(), "--out", out.path().to_str().unwrap()])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        SmtpServer { child, out }
    }

    /// Messages received, in order, with their envelope recipients.
    pub fn received(&self) -> Vec<(String, Email, Vec<u8>)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let raw = std::fs::read(p).unwrap();
                let rcpt = std::fs::read_to_string(p.with_extension("rcpt")).unwrap();
                (rcpt, Email::parse(&raw), raw)
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Already gone is fine: either way the server is stopped.
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A private CA and a certificate it signed for localhost: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn smtp_section(port: u16, tls: &str, ca: Option<&Path>, auth: bool) -> String {
    let mut s = format!(
        "[email.smtp]\nhost = \"localhost\"\nport = {port}\ntls = \"{tls}\"\ntimeout_secs = 5\n"
    );
    if let Some(ca) = ca {
        s.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    if auth {
        s.push_str("username = \"cierre\"\npassword = \"clave-secreta\"\n");
    }
    s
}

/// The app on the real sample, with digests prepared for 2026-02-16 and not yet sent.
async fn app_with_digests(extra: &str) -> crate::helpers::TestApp {
    let t = spawn_app_with(&crate::helpers::sample_contracts(), "2026-02-16", extra).await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let r = t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    assert_eq!(r.enqueued, 7);
    t
}

fn later(app: &App<TestStore>, by: Duration) -> App<TestStore> {
    App {
        settings: app.settings.clone(),
        store: app.store.clone(),
        clock: Arc::new(FixedClock(app.clock.now() + by)),
    }
}

#[tokio::test]
async fn digests_arrive_over_starttls_with_authentication_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let port = free_port();
    let server = SmtpServer::start(
        port,
        &[
            "--starttls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "cierre:clave-secreta",
        ],
    );
    let t = app_with_digests(&smtp_section(port, "starttls", Some(&ca), true)).await;
    let d = t.app.deliver().await.unwrap();
    assert_eq!((d.sent, d.retrying, d.dead), (7, 0, 0));

    let received = server.received();
    assert_eq!(received.len(), 7);
    let mut rcpts: Vec<&str> = received.iter().map(|(r, _, _)| r.as_str()).collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts.len(), 7, "one digest per recipient");
    let (_, sena, raw) = received.iter().find(|(r, _, _)| r == "jefa@sena.example").unwrap();
    assert_eq!(sena.content_type, "multipart/mixed");
    assert!(String::from_utf8_lossy(raw).contains("multipart/alternative"));
    assert!(sena.subject.contains("requieren acción"), "{}", sena.subject);
    assert!(sena.text.contains("QUÉ SIGNIFICA CADA HALLAZGO"), "accents intact");
    assert!(sena.text.contains("días hábiles"));
    assert!(sena.html.contains("Expedientes que deben cerrarse"));
    assert_eq!(sena.attachments.len(), 1);
    assert!(crate::helpers::Sheet::read(&sena.attachments[0].1).rows.len() > 1);
    let to = cierre::config::Person {
        name: "Jefa SENA".into(),
        email: "jefa@sena.example".parse().unwrap(),
    };
    assert_eq!(
        format!("<{}>", sena.message_id),
        digest::message_id(&t.app.settings.email.from, &to, date("2026-02-16"))
    );
    // Nothing left to send.
    assert_eq!(t.app.deliver().await.unwrap().sent, 0);
    assert_eq!(server.received().len(), 7);
}

#[tokio::test]
async fn digests_arrive_over_implicit_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let port = free_port();
    let server =
        SmtpServer::start(port, &["--implicit", cert.to_str().unwrap(), key.to_str().unwrap()]);
    let t = app_with_digests(&smtp_section(port, "implicit", Some(&ca), false)).await;
    let d = t.app.deliver().await.unwrap();
    assert_eq!((d.sent, d.dead), (7, 0));
    assert_eq!(server.received().len(), 7);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_and_retried_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    let port = free_port();
    let server =
        SmtpServer::start(port, &["--starttls", cert.to_str().unwrap(), key.to_str().unwrap()]);
    // No ca_file: the private CA is not trusted.
    let t = app_with_digests(&smtp_section(port, "starttls", None, false)).await;
    let d = t.app.deliver().await.unwrap();
    // A failure of the channel: every digest waits, no recipient is charged with it.
    assert_eq!((d.sent, d.retrying, d.deferred), (0, 0, 7));
    assert!(server.received().is_empty());
    let health = t.app.store.endpoints().await.unwrap();
    assert_eq!(health.len(), 1, "{health:?}");
    assert_eq!(health[0].target, "channel:email");
}

#[tokio::test]
async fn an_smtp_outage_delays_the_digests_and_each_arrives_once() {
    let port = free_port();
    let t = app_with_digests(&smtp_section(port, "none", None, false)).await;
    // Nobody listens: the channel is down. Every digest waits for it without spending an
    // attempt, and no recipient is charged or suspended: the failure is the relay's.
    let d = t.app.deliver().await.unwrap();
    assert_eq!((d.sent, d.retrying, d.dead, d.deferred), (0, 0, 0, 7));
    assert!(d.suspended.is_empty());
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    assert!(items.iter().all(|i| i.status == "pending" && i.next_attempt_at > t.app.clock.now()));
    assert!(items.iter().all(|i| i.attempts == 0));
    let health = t.app.store.endpoints().await.unwrap();
    assert_eq!(health.len(), 1, "only the channel is failing: {health:?}");
    assert_eq!((health[0].target.as_str(), health[0].consecutive_failures), ("channel:email", 1));
    assert!(health[0].last_error.as_deref().unwrap_or("").contains("onnect"), "{health:?}");
    // Down for hours: each drain once it is due again counts one failure of the channel,
    // never one per digest, and nothing is dead-lettered however long it lasts.
    for hours in [1, 3, 8, 20] {
        let d = later(&t.app, Duration::hours(hours)).deliver().await.unwrap();
        assert_eq!((d.sent, d.dead), (0, 0));
    }
    assert!(
        t.app
            .store
            .outbox_items(&cierre::store::OutboxPage::all())
            .await
            .unwrap()
            .iter()
            .all(|i| i.attempts == 0)
    );

    let server = SmtpServer::start(port, &[]);
    // Not due yet: nothing is sent before the channel's backoff ends.
    assert_eq!(later(&t.app, Duration::hours(20)).deliver().await.unwrap().sent, 0);
    let app = later(&t.app, Duration::hours(30));
    assert_eq!(app.deliver().await.unwrap().sent, 7);
    assert_eq!(app.deliver().await.unwrap().sent, 0);
    let received = server.received();
    assert_eq!(received.len(), 7);
    let mut ids: Vec<&str> = received.iter().map(|(_, e, _)| e.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);
}

#[tokio::test]
async fn a_crash_between_send_and_record_resends_that_digest_only_with_the_same_message_id() {
    let port = free_port();
    let server = SmtpServer::start(port, &[]);
    let t = app_with_digests(&smtp_section(port, "none", None, false)).await;
    // A deliverer claims everything, sends one digest, and dies before recording it.
    let now = t.app.clock.now();
    let claimed = t
        .app
        .store
        .claim_due(now, now + Duration::minutes(5), 100, "dead-replica", "")
        .await
        .unwrap();
    assert_eq!(claimed.len(), 7);
    let channels = Channels::from_settings(&t.app.settings).unwrap();
    outbox::send_item(&channels, &t.app.settings, &claimed[0]).await.unwrap();
    assert_eq!(server.received().len(), 1);

    // While the lease holds, nobody else takes the items.
    assert_eq!(t.app.deliver().await.unwrap().sent, 0);
    // After it, the next deliverer sends all seven: one of them a second time.
    let app = later(&t.app, Duration::minutes(6));
    assert_eq!(app.deliver().await.unwrap().sent, 7);
    assert_eq!(app.deliver().await.unwrap().sent, 0, "recorded as sent: never again");
    let received = server.received();
    assert_eq!(received.len(), 8);
    let first = &received[0].1;
    let again: Vec<_> =
        received[1..].iter().filter(|(_, e, _)| e.message_id == first.message_id).collect();
    assert_eq!(again.len(), 1, "the re-sent digest carries the same Message-ID");
    assert_eq!(again[0].1.text, first.text);
}

#[tokio::test]
async fn a_refused_recipient_is_dead_lettered_and_the_others_arrive() {
    let port = free_port();
    let server = SmtpServer::start(port, &["--reject-rcpt", "ci@icbf.example"]);
    let t = app_with_digests(&smtp_section(port, "none", None, false)).await;
    let d = t.app.deliver().await.unwrap();
    assert_eq!((d.sent, d.retrying, d.dead), (6, 0, 1));
    assert_eq!(server.received().len(), 6);
    let dead: Vec<_> = t
        .app
        .store
        .outbox_items(&cierre::store::OutboxPage::all())
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.status == "dead")
        .collect();
    assert_eq!(dead[0].target, "ci@icbf.example");
    assert!(dead[0].last_error.as_deref().unwrap().contains("550"), "{:?}", dead[0].last_error);

    // The relay's rule is fixed: an operator queues the dead digest again, and it arrives
    // once; the others are not sent again.
    drop(server);
    let server = SmtpServer::start(port, &[]);
    let other =
        cierre::store::RequeueFilter { target: Some("nadie@x.co".into()), ..Default::default() };
    assert_eq!(t.app.store.requeue_dead(&other, "ana", t.app.clock.now()).await.unwrap(), 0);
    let filter = cierre::store::RequeueFilter {
        target: Some("ci@icbf.example".into()),
        ..Default::default()
    };
    assert_eq!(t.app.store.requeue_dead(&filter, "ana", t.app.clock.now()).await.unwrap(), 1);
    let d = t.app.deliver().await.unwrap();
    assert_eq!((d.sent, d.dead), (1, 0));
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].0.contains("ci@icbf.example"));
    assert_eq!(t.app.deliver().await.unwrap().sent, 0);
    let url = &t.app.settings.store_url;
    let audit = "SELECT COUNT(*) FROM outbox_audit WHERE actor = 'ana' AND action = 'requeue'";
    assert_eq!(crate::helpers::scalar(url, audit).await, 2, "both requests are in the audit");
}

#[tokio::test]
async fn two_deliverers_with_a_lease_shorter_than_the_batch_send_each_digest_once() {
    let port = free_port();
    // Each message takes the relay 400 ms; a claim lasts 1 s unless renewed: sending the 7
    // digests one by one outlives the lease many times over.
    let server = SmtpServer::start(port, &["--delay-ms", "400"]);
    let mut t = app_with_digests(&smtp_section(port, "none", None, false)).await;
    t.app.settings.delivery.lease = std::time::Duration::from_secs(1);
    t.app.settings.delivery.concurrency = 1;
    let replica = |app: &App<TestStore>| App {
        settings: app.settings.clone(),
        store: app.store.clone(),
        clock: Arc::new(cierre::clock::SystemClock),
    };
    // Both drain whatever is claimable (a lease run out included) until everything is sent.
    let drain = |app: App<TestStore>| async move {
        let mut total = cierre::notify::outbox::DeliveryReport::default();
        for _ in 0..200 {
            let d = app.deliver().await.unwrap();
            total.sent += d.sent;
            total.lost_claims += d.lost_claims;
            if app.store.outbox_counts().await.unwrap().sent == 7 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        total
    };
    let (first, second) = tokio::join!(drain(replica(&t.app)), drain(replica(&t.app)));
    assert_eq!(first.sent + second.sent, 7, "{first:?} {second:?}");
    assert_eq!(first.lost_claims + second.lost_claims, 0, "claims are renewed while sending");
    let received = server.received();
    let mut ids: Vec<&str> = received.iter().map(|(_, e, _)| e.message_id.as_str()).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (7, 7), "every digest arrived, none twice");
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    assert!(items.iter().all(|i| i.status == "sent"), "{items:?}");
}

/// The sample's fallback digest, received over SMTP and parsed back: its summary counts the
/// findings routed to it, its body shows exactly `max_rows` of them and says how many more,
/// and its workbook holds every one, with typed dates and hyperlinks.
#[tokio::test]
async fn the_fallback_digest_shows_its_counts_the_capped_rows_and_a_workbook_of_every_row() {
    let port = free_port();
    let server = SmtpServer::start(port, &[]);
    let t = app_with_digests(&smtp_section(port, "none", None, false)).await;
    t.app.deliver().await.unwrap();
    let received = server.received();
    let (_, e, _) = received.iter().find(|(r, _, _)| r == "central@example.gov.co").unwrap();

    // The findings routed to the fallback: those of entities no route names, at a level
    // that is mailed.
    let routed = ["899999034", "899999239"];
    let mut expected: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for f in t.findings_on(date("2026-02-16")).await.iter().filter(|f| f.level != "info") {
        let c = t.app.store.contract(&f.contract_id).await.unwrap().unwrap();
        if !routed.contains(&c.entity_nit.as_deref().unwrap_or("")) {
            let kind = cierre::domain::spanish::kind_label(f.kind).to_string();
            *expected.entry((kind, cierre::domain::spanish::level_label(&f.level))).or_default() +=
                1;
        }
    }
    let total: u64 = expected.values().sum();
    assert!(total > 100, "{total}");

    // The summary, as the text part writes it: "- Kind: total · Level: n · Level: n".
    let mut summary: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for line in e.text.lines().filter_map(|l| l.strip_prefix("- ")) {
        let mut parts = line.split(" · ");
        let (kind, kind_total) = parts.next().unwrap().rsplit_once(": ").unwrap();
        let mut sum = 0;
        for p in parts {
            let (level, n) = p.rsplit_once(": ").unwrap();
            summary.insert((kind.to_string(), level.to_string()), n.parse().unwrap());
            sum += n.parse::<u64>().unwrap();
        }
        assert_eq!(kind_total.parse::<u64>().unwrap(), sum, "{line}");
    }
    assert_eq!(summary, expected);
    assert!(e.text.contains(&format!("; {total} hallazgo(s).")), "{}", e.text);

    // Exactly max_rows rows in the body, and the right "y N más".
    let max_rows = t.app.settings.email.digest.max_rows;
    assert_eq!(e.html.matches("data-row=").count(), max_rows);
    assert_eq!(e.text.matches("\n  Plazo: ").count(), max_rows);
    let more = format!("Y {} hallazgo(s) más en el archivo adjunto", total - max_rows as u64);
    assert!(e.text.contains(&more) && e.html.contains(&more), "{more}");

    // The workbook: every row, most urgent first like the body, typed and linked.
    assert_eq!(e.attachments.len(), 1);
    let sheet = Sheet::read(&e.attachments[0].1);
    assert_eq!(sheet.rows.len() as u64 - 1, total);
    let mut in_sheet: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for (kind, level) in sheet.column("Hallazgo").into_iter().zip(sheet.column("Nivel")) {
        *in_sheet.entry((kind, level)).or_default() += 1;
    }
    assert_eq!(in_sheet, expected);
    let first = e.html.split("data-row=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(sheet.column("ID del contrato")[0], first);
    let at = |h: &str| sheet.rows[0].iter().position(|c| *c == h).unwrap();
    for row in &sheet.rows[1..] {
        assert!(matches!(row[at("Plazo")], calamine::Data::DateTime(_)), "{:?}", row[at("Plazo")]);
        assert!(matches!(row[at("Días hábiles restantes")], calamine::Data::Float(_)));
    }
    assert_eq!(sheet.links.len() as u64, total);
    assert!(sheet.links.iter().all(|(row, url)| *row >= 1 && url.starts_with("https://")));
    assert_eq!(sheet.column("Enlace SECOP II"), {
        let mut links = sheet.links.clone();
        links.sort();
        links.into_iter().map(|(_, url)| url).collect::<Vec<_>>()
    });
}
