//! Benchmark of the notification stage: digests rendered per second for 10,000 recipients,
//! and outbox deliveries per second to a real SMTP server (aiosmtpd) and a real webhook
//! receiver (axum, verifying signatures), all on loopback. Run: `cargo bench --bench notify`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use cierre::app::App;
use cierre::clock::FixedClock;
use cierre::config::templates::{self, Digest, DigestRow};
use cierre::config::{self, Person};
use cierre::domain::Kind;
use cierre::domain::spanish::kind_label;
use cierre::notify::digest;
use cierre::source::record::parse_contract;
use cierre::store::{NewOutboxItem, OutboxStore, SqliteStore};

const RECIPIENTS: usize = 10_000;
const ROWS_PER_DIGEST: usize = 10;
const DELIVERIES: usize = 2_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn rows() -> Vec<DigestRow> {
    let sample = include_str!("../examples/secop/contracts.jsonl");
    sample
        .lines()
        .take(200)
        .map(|l| parse_contract(l).unwrap().value)
        .enumerate()
        .map(|(i, c)| DigestRow {
            finding_id: i as i64 + 1,
            contract_id: c.id.clone(),
            reference: c.reference.clone().unwrap_or_default(),
            entity: c.entity_name.clone().unwrap_or_default(),
            object: c.object.clone().unwrap_or_default(),
            supervisor: c.supervisor_name.clone().unwrap_or_default(),
            end_date: "31 de enero de 2025".into(),
            state: c.state.clone().unwrap_or_default(),
            kind: "closable".into(),
            kind_label: kind_label(Kind::Closable).into(),
            stage: "postcontractual".into(),
            level: "vencido".into(),
            level_label: "Vencido".into(),
            since: "1 de febrero de 2025".into(),
            deadline: "17 de marzo de 2025".into(),
            business_days_left: -12,
            days: "vencido hace 12 días hábiles".into(),
            step: None,
            missing: vec![],
            pending: None,
            reasons: vec![
                "Contrato de prestación de servicios profesionales y de apoyo a la gestión.".into(),
                "El plazo de ejecución terminó el 31 de enero de 2025.".into(),
                "Debe cerrarse el expediente electrónico en SECOP II.".into(),
            ],
            url: c.url.clone().unwrap_or_default(),
            dates: Default::default(),
            pending_centavos: None,
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn report(label: &str, n: usize, started: Instant) {
    let s = started.elapsed().as_secs_f64();
    println!("{label:<40} {n:>6} in {s:>6.2} s = {:>8.0} /s", n as f64 / s);
}

#[tokio::main]
async fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();

    // Webhook receiver that verifies every signature.
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let counter = counter.clone();
            async move {
                standardwebhooks::Webhook::new(SECRET)
                    .unwrap()
                    .verify(body.as_bytes(), &headers)
                    .unwrap();
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // SMTP server.
    let port = free_port();
    let out = dir.path().join("mail");
    std::fs::create_dir(&out).unwrap();
    let mut smtp = Command::new("python3")
        .arg(root.join("tests/support/smtp_server.py"))
        .args(["--port", &port.to_string(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with aiosmtpd");
    let mut line = String::new();
    BufReader::new(smtp.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();

    let config_path = dir.path().join("daemon.toml");
    std::fs::write(
        &config_path,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n[source]\nkind = \"file\"\ncontracts_path = \"x\"\n\
             [email]\nfrom = \"cierre <cierre@example.gov.co>\"\ntemplates_dir = \"{}\"\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             [[webhooks]]\nurl = \"{hook_url}\"\nsecret = \"{SECRET}\"\n",
            dir.path().join("bench.db").display(),
            root.join("templates").display()
        ),
    )
    .unwrap();
    let settings = config::load_from(&config_path, true, vec![]).unwrap();
    let slot = NaiveDate::from_ymd_opt(2026, 2, 16).unwrap();

    // 1. Rendering.
    let env = templates::environment(&settings.email.templates_dir).unwrap();
    let rows = rows();
    let started = Instant::now();
    let mut bytes = 0;
    let mut payload = String::new();
    for i in 0..RECIPIENTS {
        let start = (i * 7) % (rows.len() - ROWS_PER_DIGEST);
        let d = Digest {
            to: Person {
                name: format!("Jefe {i}"),
                email: format!("jefe{i}@entidad.example").parse().unwrap(),
            },
            slot,
            rows: rows[start..start + ROWS_PER_DIGEST].to_vec(),
            ..templates::sample_digest()
        };
        let r = digest::render(&env, &d).unwrap();
        let m =
            digest::message(&settings.email.from, &d, &r, &Default::default()).unwrap().formatted();
        bytes += m.len();
        if i == 0 {
            payload = String::from_utf8(m).unwrap();
        }
    }
    report(
        &format!("digests rendered ({ROWS_PER_DIGEST} rows, text+html, no attachment)"),
        RECIPIENTS,
        started,
    );
    println!("  average message size {} KB", bytes / RECIPIENTS / 1024);

    // 2. SMTP deliveries from the outbox.
    let app =
        App::<SqliteStore>::open(settings, Arc::new(FixedClock::at_date(slot))).await.unwrap();
    let now = app.clock.now();
    for i in 0..DELIVERIES {
        let item = NewOutboxItem {
            idempotency_key: format!("bench:mail:{i}"),
            channel: "email".into(),
            target: format!("jefe{i}@entidad.example"),
            subject: None,
            message_id: None,
            payload: payload.clone(),
        };
        app.store.enqueue(&item, now).await.unwrap();
    }
    let started = Instant::now();
    let d = app.deliver().await.unwrap();
    assert_eq!(d.sent as usize, DELIVERIES);
    report("emails delivered to SMTP on loopback", DELIVERIES, started);

    // 3. Webhook deliveries.
    let body = serde_json::json!({"type": "finding.opened", "timestamp": now, "data": {"finding": rows[0].contract_id}}).to_string();
    for i in 0..DELIVERIES {
        let item = NewOutboxItem {
            idempotency_key: format!("bench:hook:{i}"),
            channel: "webhook".into(),
            target: hook_url.clone(),
            subject: Some("finding.opened".into()),
            message_id: Some(format!("msg_bench_{i}")),
            payload: body.clone(),
        };
        app.store.enqueue(&item, now).await.unwrap();
    }
    let started = Instant::now();
    let d = app.deliver().await.unwrap();
    assert_eq!(d.sent as usize, DELIVERIES);
    report("webhooks delivered (signed, verified)", DELIVERIES, started);
    assert_eq!(received.load(std::sync::atomic::Ordering::Relaxed), DELIVERIES);
    smtp.kill().ok();
    smtp.wait().ok();
}
