//! Incremental evaluation: randomized histories, day by day, where one store is evaluated
//! incrementally and a twin store, fed the same data and answers, is evaluated in full every
//! day. Findings, levels, events, history and the report's counts must be the same on every
//! day.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use cierre::domain::Kind;
use cierre::domain::ack::{AckState, NewAck};
use cierre::findings::Evaluation;
use cierre::findings::acks::acknowledge;
use cierre::store::OutboxPage;
use cierre::store::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestApp, config_text, date, load};

const SENA: &str = "899999034";
const ICBF: &str = "899999239";
/// An entity no route names: its findings go to the fallback.
const OTHER: &str = "800000001";

const STATES: &[&str] =
    &["En ejecución", "En ejecución", "terminado", "Modificado", "Suspendido", "Cerrado"];
const TYPES: &[&str] = &["Prestación de servicios", "Obra", "Suministros"];
const MODALITIES: &[&str] = &["Contratación directa", "Licitación pública", "Mínima cuantía"];
const LIQUIDATION: &[&str] = &["Si", "No", "No Definido"];
const DOCUMENT_NAMES: &[&str] = &[
    "Acta de liquidación.pdf",
    "CDP 12.pdf",
    "Estudios previos.pdf",
    "Informe final de supervisión.pdf",
    "Contrato firmado.pdf",
    "Registro presupuestal.pdf",
    "Análisis del sector.pdf",
    "foto.jpg",
];
const POLICIES: &[&str] =
    &["Calidad del servicio", "Estabilidad y calidad de la obra", "Cumplimiento del contrato"];

struct Contract {
    id: String,
    nit: &'static str,
    state: &'static str,
    kind: &'static str,
    modality: &'static str,
    process: String,
    signed: NaiveDate,
    starts: NaiveDate,
    ends: Option<NaiveDate>,
    liquidation: &'static str,
    environmental: &'static str,
    liquidation_ends: Option<NaiveDate>,
    days_added: i64,
    last_update: Option<NaiveDate>,
    pending: i64,
}

struct Document {
    id: String,
    contract: Option<String>,
    process: String,
    name: &'static str,
    uploaded: NaiveDate,
}

struct Policy {
    contract: String,
    number: String,
    subtype: &'static str,
    ends: Option<NaiveDate>,
}

/// What SECOP II publishes, as it changes from day to day.
struct World {
    rng: fastrand::Rng,
    contracts: Vec<Contract>,
    documents: Vec<Document>,
    policies: Vec<Policy>,
    next_id: usize,
}

fn iso(d: NaiveDate) -> String {
    format!("{d}T00:00:00.000")
}

impl World {
    fn new(seed: u64, start: NaiveDate, contracts: usize) -> World {
        let mut w = World {
            rng: fastrand::Rng::with_seed(seed),
            contracts: Vec::new(),
            documents: Vec::new(),
            policies: Vec::new(),
            next_id: 0,
        };
        for _ in 0..contracts {
            w.add_contract(start);
        }
        w
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.rng.usize(..from.len())]
    }

    fn days(&mut self, d: NaiveDate, range: std::ops::Range<i64>) -> NaiveDate {
        d + Duration::days(self.rng.i64(range))
    }

    fn add_contract(&mut self, today: NaiveDate) {
        self.next_id += 1;
        let n = self.next_id;
        let signed = self.days(today, -500..-5);
        let c = Contract {
            id: format!("CO1.PCCNTR.{}", 7000 + n),
            nit: self.pick(&[SENA, SENA, ICBF, OTHER]),
            state: self.pick(STATES),
            kind: self.pick(TYPES),
            modality: self.pick(MODALITIES),
            // Two contracts share each process, so that process documents count twice.
            process: format!("CO1.BDOS.{}", 7000 + n / 2),
            signed,
            starts: signed + Duration::days(self.rng.i64(0..10)),
            ends: (self.rng.u8(..10) > 0).then(|| self.days(today, -300..40)),
            liquidation: self.pick(LIQUIDATION),
            environmental: if self.rng.u8(..8) == 0 { "Si" } else { "No" },
            liquidation_ends: (self.rng.u8(..5) == 0).then(|| self.days(today, -60..60)),
            days_added: if self.rng.bool() { 0 } else { self.rng.i64(0..40) },
            last_update: (self.rng.u8(..3) == 0).then(|| self.days(today, -90..5)),
            pending: if self.rng.u8(..4) == 0 { 1_000_000 } else { 0 },
        };
        let id = c.id.clone();
        let process = c.process.clone();
        self.contracts.push(c);
        for _ in 0..self.rng.usize(0..3) {
            let on_process = self.rng.u8(..4) == 0;
            self.add_document(today, if on_process { None } else { Some(id.clone()) }, &process);
        }
        if self.rng.bool() {
            self.add_policy(today, &id);
        }
    }

    fn add_document(&mut self, today: NaiveDate, contract: Option<String>, process: &str) {
        self.next_id += 1;
        // Mostly published today or before; some carry a later upload date.
        let uploaded = match self.rng.u8(..6) {
            0 => self.days(today, 1..6),
            1 => today,
            _ => self.days(today, -200..0),
        };
        let name = self.pick(DOCUMENT_NAMES);
        self.documents.push(Document {
            id: format!("{}", 800_000 + self.next_id),
            contract,
            process: process.to_string(),
            name,
            uploaded,
        });
    }

    fn add_policy(&mut self, today: NaiveDate, contract: &str) {
        self.next_id += 1;
        let subtype = self.pick(POLICIES);
        let ends = (self.rng.u8(..6) > 0).then(|| self.days(today, -60..60));
        self.policies.push(Policy {
            contract: contract.to_string(),
            number: format!("P-{}", self.next_id),
            subtype,
            ends,
        });
    }

    /// A day's changes: states, dates, documents and guarantees appearing or going,
    /// contracts appearing or going.
    fn change(&mut self, today: NaiveDate) {
        for _ in 0..self.rng.usize(0..5) {
            let i = self.rng.usize(..self.contracts.len());
            match self.rng.u8(..10) {
                0 | 1 => {
                    let next = match self.contracts[i].state {
                        "En ejecución" | "Modificado" => self.pick(&["terminado", "Suspendido"]),
                        "terminado" => "Cerrado",
                        "Suspendido" => "En ejecución",
                        _ => "En ejecución",
                    };
                    let c = &mut self.contracts[i];
                    c.state = next;
                    c.last_update = Some(today);
                }
                2 => {
                    let shift = self.rng.i64(-20..30);
                    let c = &mut self.contracts[i];
                    c.ends = Some(c.ends.unwrap_or(today) + Duration::days(shift));
                }
                3 => self.contracts[i].days_added += self.rng.i64(1..20),
                4 | 5 => {
                    let (id, process) =
                        (self.contracts[i].id.clone(), self.contracts[i].process.clone());
                    let on_process = self.rng.u8(..4) == 0;
                    self.add_document(today, if on_process { None } else { Some(id) }, &process);
                }
                6 if !self.documents.is_empty() => {
                    let d = self.rng.usize(..self.documents.len());
                    self.documents.remove(d);
                }
                7 => {
                    let id = self.contracts[i].id.clone();
                    match self.policies.iter().position(|p| p.contract == id) {
                        Some(p) if self.rng.bool() => {
                            let ends = self.days(today, -10..40);
                            self.policies[p].ends = Some(ends);
                        }
                        _ => self.add_policy(today, &id),
                    }
                }
                8 if self.rng.u8(..3) == 0 => {
                    self.contracts.remove(i);
                }
                _ => self.add_contract(today),
            }
        }
    }

    fn write(&self, dir: &Path) {
        let lines = |rows: Vec<Value>| -> String {
            rows.iter().map(|r| format!("{r}\n")).collect::<String>()
        };
        let contracts = self
            .contracts
            .iter()
            .map(|c| {
                json!({
                    "id_contrato": c.id,
                    "proceso_de_compra": c.process,
                    "nit_entidad": c.nit,
                    "estado_contrato": c.state,
                    "tipo_de_contrato": c.kind,
                    "modalidad_de_contratacion": c.modality,
                    "fecha_de_firma": iso(c.signed),
                    "fecha_de_inicio_del_contrato": iso(c.starts),
                    "fecha_de_fin_del_contrato": c.ends.map(iso),
                    "liquidaci_n": c.liquidation,
                    "obligaci_n_ambiental": c.environmental,
                    "obligaciones_postconsumo": "No",
                    "fecha_fin_liquidacion": c.liquidation_ends.map(iso),
                    "dias_adicionados": c.days_added.to_string(),
                    "ultima_actualizacion": c.last_update.map(iso),
                    "valor_del_contrato": "50000000",
                    "valor_pendiente_de_pago": c.pending.to_string(),
                })
            })
            .collect();
        std::fs::write(dir.join("contracts.jsonl"), lines(contracts)).unwrap();
        let documents = self
            .documents
            .iter()
            .map(|d| {
                json!({
                    "id_documento": d.id,
                    "n_mero_de_contrato": d.contract,
                    "proceso": d.process,
                    "nombre_archivo": d.name,
                    "fecha_carga": iso(d.uploaded),
                })
            })
            .collect();
        std::fs::write(dir.join("documents.jsonl"), lines(documents)).unwrap();
        let policies = self
            .policies
            .iter()
            .map(|p| {
                json!({
                    "id_contrato": p.contract,
                    "numeropoliza": p.number,
                    "tipopoliza": "Cumplimiento",
                    "subtipopoliza": p.subtype,
                    "fechafinpoliza": p.ends.map(iso),
                    "estado": "Aceptada",
                })
            })
            .collect();
        std::fs::write(dir.join("guarantees.jsonl"), lines(policies)).unwrap();
    }
}

/// An app on the files of `data`, with a webhook whose events stay in the outbox.
async fn app_on(data: &Path, today: NaiveDate) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &data.join("contracts.jsonl"), "").replace(
        "page_size = 250",
        &format!(
            "page_size = 250\ndocuments_path = \"{}\"\nguarantees_path = \"{}\"",
            data.join("documents.jsonl").display(),
            data.join("guarantees.jsonl").display()
        ),
    );
    let path = dir.path().join("daemon.toml");
    std::fs::write(&path, text).unwrap();
    let mut settings = load(&path).unwrap_or_else(|e| panic!("{e}"));
    // A small world: a few rows gone in a day is a large share of it.
    settings.source.max_vanished_share = 1.0;
    settings.webhooks = vec![cierre::config::Webhook {
        url: "http://127.0.0.1:9/hook".parse().unwrap(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string().into(),
        events: vec![],
    }];
    let app = at(settings, today).await;
    TestApp { dir, app }
}

async fn at(
    settings: cierre::config::Settings,
    today: NaiveDate,
) -> cierre::app::App<crate::helpers::TestStore> {
    let clock = std::sync::Arc::new(cierre::clock::FixedClock::at_date(today));
    cierre::app::App::open(settings, clock).await.unwrap()
}

/// What must be equal between the two evaluations' reports.
fn report(e: &Evaluation) -> Value {
    json!({
        "total": e.total,
        "counts": e.counts.iter().map(|((k, l), n)| format!("{k}:{l}:{n}")).collect::<Vec<_>>(),
        "opened": e.opened,
        "escalated": e.escalated,
        "resolved": e.resolved,
        "unrouted": e.unrouted,
        "muted": e.muted,
        "data_quality": serde_json::to_value(&e.data_quality).unwrap(),
    })
}

/// The findings' webhook events queued, by idempotency key, with their bodies.
async fn events(t: &TestApp) -> BTreeMap<String, String> {
    let items = t.app.store.outbox_items(&OutboxPage::all()).await.unwrap();
    // Only the findings' events: a sync's carry its timings.
    items
        .into_iter()
        .filter(|i| i.payload.starts_with(r#"{"type":"finding."#))
        .map(|i| (i.idempotency_key, i.payload))
        .collect()
}

/// The two outboxes hold the same events; otherwise says which differ, briefly.
fn same_events(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, ctx: &str) {
    let only_a: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    let differ: Vec<(&String, &String, &String)> =
        a.iter().filter_map(|(k, v)| b.get(k).filter(|w| *w != v).map(|w| (k, v, w))).collect();
    let brief = |v: &str| v.chars().take(600).collect::<String>();
    assert!(
        only_a.is_empty() && only_b.is_empty() && differ.is_empty(),
        "{ctx}: events differ: {} only incremental, e.g. {:?}; {} only full, e.g. {:?}; {} differ, e.g. {:?}",
        only_a.len(),
        only_a.first().map(|k| brief(&a[*k])),
        only_b.len(),
        only_b.first().map(|k| brief(&b[*k])),
        differ.len(),
        differ.first().map(|(_, v, w)| (brief(v), brief(w)))
    );
}

/// Every finding's history (open or resolved), by contract, kind and stage.
async fn histories(t: &TestApp, contracts: &[String]) -> Vec<String> {
    let mut all = Vec::new();
    for id in contracts {
        for f in t.app.store.open_findings_of(id).await.unwrap() {
            for e in t.app.store.finding_history(f.id).await.unwrap() {
                let key = format!("{}|{}|{}", id, f.finding.kind, f.finding.stage_str());
                all.push(format!("{key} {} {} {} {:?}", e.on_date, e.event, e.level, e.detail));
            }
        }
    }
    all
}

/// The same answer given on both stores: recorded on both, or refused by both.
async fn answer_both(inc: &TestApp, full: &TestApp, answer: &NewAck, day: NaiveDate, ctx: &str) {
    let now = cierre::clock::Clock::now(&cierre::clock::FixedClock::at_date(day));
    let x = acknowledge(&inc.app.store, &inc.app.settings, answer, day, now).await;
    let y = acknowledge(&full.app.store, &full.app.settings, answer, day, now).await;
    assert_eq!(x.is_ok(), y.is_ok(), "{ctx}: answer {answer:?}");
}

/// One randomized history of `days` days from `start`; panics naming the seed and the day.
async fn one_history(seed: u64, start: NaiveDate, days: i64) -> (usize, u64, u64) {
    let data = tempfile::tempdir().unwrap();
    let mut world = World::new(seed, start, 30);
    world.write(data.path());
    let mut inc = app_on(data.path(), start).await;
    let mut full = app_on(data.path(), start).await;
    let (mut incremental_days, mut evaluated, mut contracts) = (0, 0, 0);
    let ctx = |day: NaiveDate| format!("seed {seed}, {day}");
    for n in 0..days {
        let day = start + Duration::days(n);
        if n > 0 {
            world.change(day);
            world.write(data.path());
        }
        // The clock moves with the days: events carry the time they were made.
        let (si, sf) = (inc.app.settings.clone(), full.app.settings.clone());
        inc.app = at(si, day).await;
        full.app = at(sf, day).await;
        if n == days / 2 {
            // The settings change once: a grace period and a level threshold.
            for t in [&mut inc, &mut full] {
                let mut s = t.app.settings.clone();
                s.rules.state_outdated.grace_business_days += 3;
                s.levels[1].max_business_days_left += 2;
                t.app = at(s, day).await;
            }
        }
        inc.app.sync().await.unwrap_or_else(|e| panic!("{}: {e:#}", ctx(day)));
        full.app.sync().await.unwrap_or_else(|e| panic!("{}: {e:#}", ctx(day)));
        let a = inc.app.evaluate(Some(day)).await.unwrap_or_else(|e| panic!("{}: {e:#}", ctx(day)));
        let b = full.app.evaluate_with(Some(day), true).await.unwrap();
        assert!(b.full);
        // Full only on the first day and when the settings changed.
        assert_eq!(a.full, n == 0 || n == days / 2, "{}: full", ctx(day));
        if !a.full {
            incremental_days += 1;
            evaluated += a.evaluated;
            contracts += a.data_quality.contracts;
        }
        assert_eq!(report(&a), report(&b), "{}: reports", ctx(day));
        let (fa, fb) = (inc.findings_on(day).await, full.findings_on(day).await);
        assert_eq!(fa, fb, "{}: findings", ctx(day));
        same_events(&events(&inc).await, &events(&full).await, &ctx(day));

        // Office heads answer some findings, the same way on both.
        for _ in 0..world.rng.usize(0..3) {
            if fa.is_empty() {
                break;
            }
            let f = &fa[world.rng.usize(..fa.len())];
            let state = match world.rng.u8(..3) {
                0 => AckState::NoAplica,
                _ => AckState::EnTramite,
            };
            let until =
                (state == AckState::EnTramite).then(|| day + Duration::days(world.rng.i64(1..8)));
            let answer = NewAck {
                contract_id: f.contract_id.clone(),
                kind: f.kind,
                stage: f.stage,
                state,
                until,
                document_id: None,
                document_kind: None,
                reason: "en revisión".into(),
                note: None,
                author: "jefa.sena".into(),
            };
            answer_both(&inc, &full, &answer, day, &ctx(day)).await;
        }
        // A missing document published under a name the classifier does not know.
        if world.rng.u8(..4) == 0
            && let Some(f) = fa.iter().find(|f| f.kind == Kind::MissingDocuments)
            && let Some(doc) = world.documents.iter().find(|d| {
                d.contract.as_deref() == Some(f.contract_id.as_str()) && d.uploaded <= day
            })
        {
            let answer = NewAck {
                contract_id: f.contract_id.clone(),
                kind: f.kind,
                stage: f.stage,
                state: AckState::DocumentoPublicado,
                until: None,
                document_id: Some(doc.id.clone()),
                document_kind: f.missing.first().cloned(),
                reason: "publicado con otro nombre".into(),
                note: None,
                author: "jefa.sena".into(),
            };
            answer_both(&inc, &full, &answer, day, &ctx(day)).await;
        }
    }
    let ids: Vec<String> =
        (1..=world.next_id).map(|n| format!("CO1.PCCNTR.{}", 7000 + n)).collect();
    assert_eq!(histories(&inc, &ids).await, histories(&full, &ids).await, "seed {seed}: histories");
    (incremental_days, evaluated, contracts)
}

#[tokio::test]
async fn an_incremental_evaluation_equals_a_full_one_every_day_of_random_histories() {
    // Across the new Rosario de Chiquinquirá holiday (13 July 2026) and the next ones.
    let start = date("2026-06-15");
    let seeds: Vec<u64> = match std::env::var("CIERRE_TEST_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (0..2).map(|_| fastrand::u64(..)).collect(),
    };
    for seed in seeds {
        let (incremental_days, evaluated, contracts) = one_history(seed, start, 62).await;
        // The histories exercised what they claim: most days incremental, and those days
        // looked at a fraction of the contracts.
        assert!(incremental_days >= 55, "seed {seed}: {incremental_days} incremental days");
        assert!(evaluated < contracts, "seed {seed}: {evaluated} of {contracts} evaluated");
    }
}

/// Runs `sqlite` or `postgres` (several statements) on the store at `url`.
async fn execute(url: &str, sqlite: &str, postgres: &str) {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_string())).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        crate::helpers::sqlite(url).execute_batch(sqlite).unwrap();
    }
}

#[tokio::test]
async fn an_incremental_evaluation_cut_short_leaves_its_marks_and_the_next_one_finishes() {
    let seed = fastrand::u64(..);
    let start = date("2026-06-15");
    let data = tempfile::tempdir().unwrap();
    let mut world = World::new(seed, start, 40);
    world.write(data.path());
    let mut inc = app_on(data.path(), start).await;
    let mut full = app_on(data.path(), start).await;
    for t in [&inc, &full] {
        t.app.sync().await.unwrap();
        t.app.evaluate(Some(start)).await.unwrap();
    }
    let day = start + Duration::days(1);
    // A day with many changes: every contract changes state or end date.
    for c in &mut world.contracts {
        c.ends = Some(c.ends.unwrap_or(day) - Duration::days(3));
    }
    world.write(data.path());
    for t in [&mut inc, &mut full] {
        t.app = at(t.app.settings.clone(), day).await;
        t.app.sync().await.unwrap();
    }
    // The store refuses what the evaluation keeps: it fails after reading and ruling, before
    // anything of its page is recorded.
    let url = inc.app.settings.store_url.clone();
    execute(
        &url,
        "CREATE TRIGGER refuse_keep BEFORE INSERT ON contract_evaluations \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        "CREATE FUNCTION refuse_keep() RETURNS trigger AS $$ BEGIN \
           RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_keep BEFORE INSERT OR UPDATE ON contract_evaluations \
           FOR EACH ROW EXECUTE FUNCTION refuse_keep();",
    )
    .await;
    let failed = inc.app.evaluate(Some(day)).await.expect_err("the store refused");
    assert!(format!("{failed:#}").contains("injected failure"), "{failed:#}");
    let marks = crate::helpers::scalar(&url, "SELECT COUNT(*) FROM evaluation_marks").await;
    assert!(marks >= 40, "seed {seed}: the marks stay ({marks})");
    execute(
        &url,
        "DROP TRIGGER refuse_keep;",
        "DROP TRIGGER refuse_keep ON contract_evaluations; DROP FUNCTION refuse_keep();",
    )
    .await;
    let a = inc.app.evaluate(Some(day)).await.unwrap();
    assert!(!a.full, "seed {seed}: still incremental");
    let b = full.app.evaluate_with(Some(day), true).await.unwrap();
    assert_eq!(report(&a), report(&b), "seed {seed}: reports");
    assert_eq!(inc.findings_on(day).await, full.findings_on(day).await, "seed {seed}");
    same_events(&events(&inc).await, &events(&full).await, &format!("seed {seed}"));
    let marks = crate::helpers::scalar(&url, "SELECT COUNT(*) FROM evaluation_marks").await;
    assert_eq!(marks, 0, "seed {seed}: every mark accounted for");
}
