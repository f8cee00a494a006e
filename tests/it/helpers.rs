//! `TestApp`: a fresh SQLite store, outbox folder and configuration in a temp dir, with a
//! fixed clock, driving the same library functions as the CLI.

use std::path::{Path, PathBuf};

use mail_parser::MimeHeaders;
use std::sync::Arc;

use chrono::NaiveDate;
use cierre::app::App;
use cierre::clock::FixedClock;
use cierre::config::{self, Settings};

/// The backend the integration tests run on: SQLite, or PostgreSQL with the
/// `test-postgres` feature (`scripts/test` runs them both ways).
#[cfg(not(feature = "test-postgres"))]
pub type TestStore = cierre::store::SqliteStore;
#[cfg(feature = "test-postgres")]
pub type TestStore = cierre::store::PgStore;

/// The repository root, where `examples/` and `templates/` are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real SECOP II sample of 1,000 contracts shipped in the repository.
pub fn sample_contracts() -> PathBuf {
    repo().join("examples/secop/contracts.jsonl")
}

/// A contracts file in `dir` with one SENA services contract that ended on Friday 30 January
/// 2026, state `terminado`, no liquidation: closable within 30 business days.
pub fn one_ended_service(dir: &Path) -> PathBuf {
    let file = dir.join("one.jsonl");
    std::fs::write(
        &file,
        r#"{"id_contrato":"CO1.PCCNTR.900","nit_entidad":"899999034","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-30T00:00:00.000","liquidaci_n":"No"}
"#,
    )
    .unwrap();
    file
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub app: App<TestStore>,
}

impl TestApp {
    /// The open findings, most urgent first, as of the app's today: what `cierre evaluate`
    /// lists after evaluating.
    pub async fn findings(&self) -> Vec<cierre::domain::Finding> {
        self.findings_on(self.app.as_of(None)).await
    }

    /// The open findings, most urgent first, with business days left as of `day`.
    pub async fn findings_on(&self, day: NaiveDate) -> Vec<cierre::domain::Finding> {
        let calendar = &self.app.settings.calendar;
        cierre::findings::open_sorted(&self.app.store, calendar, day).await.unwrap()
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// The `.eml` files written so far, parsed back.
    pub fn emails(&self) -> Vec<Email> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else { return vec![] };
        let mut out: Vec<Email> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| Email::parse(&std::fs::read(e.path()).unwrap()))
            .collect();
        out.sort_by(|a, b| a.to.cmp(&b.to));
        out
    }
}

/// What a test needs of an email.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<(String, Vec<u8>)>,
    pub content_type: String,
}

/// A digest workbook read back with calamine: its rows (header first) and its hyperlinks
/// as (row, target).
pub struct Sheet {
    pub rows: Vec<Vec<calamine::Data>>,
    pub links: Vec<(u32, String)>,
}

impl Sheet {
    pub fn read(xlsx: &[u8]) -> Sheet {
        use calamine::{Reader, Xlsx};
        let mut wb = Xlsx::new(std::io::Cursor::new(xlsx.to_vec())).expect("an .xlsx workbook");
        let range = wb.worksheet_range("Hallazgos").expect("the Hallazgos sheet");
        let rows = range.rows().map(|r| r.to_vec()).collect();
        let links = wb
            .hyperlinks_by_sheet_name("Hallazgos")
            .unwrap()
            .into_iter()
            .map(|h| (h.range.start.0, h.target.unwrap_or_default()))
            .collect();
        Sheet { rows, links }
    }

    /// The text of column `header` in each data row.
    pub fn column(&self, header: &str) -> Vec<String> {
        let at = self.rows[0]
            .iter()
            .position(|h| *h == header)
            .unwrap_or_else(|| panic!("no column {header}"));
        self.rows[1..]
            .iter()
            .map(|r| r.get(at).map(|d| d.to_string()).unwrap_or_default())
            .collect()
    }
}

impl Email {
    pub fn parse(raw: &[u8]) -> Email {
        let m = mail_parser::MessageParser::default().parse(raw).expect("a parsable email");
        let to = m.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or("").to_string();
        let attachments = m
            .attachments()
            .map(|a| (a.attachment_name().unwrap_or("").to_string(), a.contents().to_vec()))
            .collect();
        let ct = m
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default();
        Email {
            to,
            subject: m.subject().unwrap_or("").to_string(),
            message_id: m.message_id().unwrap_or("").to_string(),
            text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
            html: m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            attachments,
            content_type: ct,
        }
    }
}

/// The store URL of a fresh store for one test: a SQLite file in `dir`, or, with the
/// `test-postgres` feature, a new database on the PostgreSQL server of the machine
/// (127.0.0.1:5432, user postgres; `CIERRE_TEST_PG` overrides the server URL). A missing
/// server fails the test: it is never skipped.
pub fn fresh_store_url(dir: &Path) -> String {
    if cfg!(feature = "test-postgres") {
        fresh_postgres_url()
    } else {
        format!("sqlite://{}", dir.join("cierre.db").display())
    }
}

/// A new, empty database on the machine's PostgreSQL server.
pub fn fresh_postgres_url() -> String {
    {
        {
            let server = std::env::var("CIERRE_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string());
            let name = format!(
                "cierre_t_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            );
            let admin = format!("{server}/test");
            std::thread::spawn(move || {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut c = sqlx::PgConnection::connect(&admin)
                        .await
                        .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&mut c)
                        .await
                        .unwrap();
                });
                format!("{server}/{name}")
            })
            .join()
            .unwrap()
        }
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The configuration every test starts from: the file source on `contracts`, offices for
/// two real entities of the sample, a fallback, the store and outbox in the temp dir.
pub fn config_text(dir: &Path, contracts: &Path, extra: &str) -> String {
    format!(
        r#"
[store]
url = "{db}"

[source]
kind = "file"
contracts_path = "{contracts}"
page_size = 250
{siblings}

[[offices]]
id = "sena"
name = "Contratación SENA"
head = {{ name = "Jefa SENA", email = "jefa@sena.example" }}
chain = [
  {{ role = "director", name = "Director SENA", email = "director@sena.example" }},
  {{ role = "control_interno", name = "Control Interno SENA", email = "ci@sena.example" }},
]

[[offices]]
id = "icbf"
name = "Contratación ICBF"
head = {{ name = "Jefe ICBF", email = "jefe@icbf.example" }}
chain = [
  {{ role = "director", name = "Director ICBF", email = "director@icbf.example" }},
  {{ role = "control_interno", name = "Control Interno ICBF", email = "ci@icbf.example" }},
]

[[routes]]
office = "sena"
match = {{ nit_entidad = "899999034" }}

[[routes]]
office = "icbf"
match = {{ nit_entidad = "899999239" }}

[routing]
fallback = {{ name = "Mesa central", email = "central@example.gov.co" }}

[email]
from = "cierre <cierre@example.gov.co>"
outbox_dir = "{outbox}"
templates_dir = "{templates}"
{extra}
"#,
        db = fresh_store_url(dir),
        contracts = contracts.display(),
        // The sample comes with constructed documents and guarantees of some of its contracts.
        siblings = if contracts == sample_contracts() {
            format!(
                "documents_path = \"{}\"\nguarantees_path = \"{}\"",
                repo().join("examples/secop/documents.constructed.jsonl").display(),
                repo().join("examples/secop/guarantees.constructed.jsonl").display()
            )
        } else {
            String::new()
        },
        outbox = dir.join("outbox").display(),
        templates = repo().join("templates").display(),
    )
}

/// Loads a configuration file as the CLI does, with no environment.
pub fn load(path: &Path) -> Result<Settings, config::ConfigErrors> {
    config::load_from(path, true, vec![])
}

/// A fresh app on `contracts` with the clock at noon of `today`.
pub async fn spawn_app_with(contracts: &Path, today: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("daemon.toml");
    std::fs::write(&config_path, config_text(dir.path(), contracts, extra)).unwrap();
    let settings = load(&config_path).unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(FixedClock::at_date(date(today)));
    let app = App::open(settings, clock).await.unwrap();
    TestApp { dir, app }
}

/// A fresh app on the real sample, as of the day after it was downloaded.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&sample_contracts(), "2026-02-16", "").await
}

/// Runs the real `cierre` binary in `dir`.
pub fn cierre(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cierre"))
        .args(args)
        .current_dir(dir)
        .env_remove("CIERRE_CONFIG")
        .env("CIERRE_LOG", "warn")
        .output()
        .expect("the cierre binary runs")
}

/// Makes the store at `url` refuse to store the contract `id` (a real error of the database,
/// raised by a trigger), or, with `None`, store every contract again.
pub async fn refuse_contract(url: &str, id: Option<&str>) {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let sql = match id {
            Some(id) => format!(
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN \
                   IF NEW.id_contrato = '{id}' THEN RAISE EXCEPTION 'injected failure'; END IF; \
                   RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_one BEFORE INSERT OR UPDATE ON contracts \
                   FOR EACH ROW EXECUTE FUNCTION refuse_one();"
            ),
            None => "DROP TRIGGER refuse_one ON contracts; DROP FUNCTION refuse_one();".into(),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let sql = match id {
            Some(id) => format!(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON contracts WHEN NEW.id_contrato = '{id}' \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ),
            None => "DROP TRIGGER refuse_one".into(),
        };
        sqlite(url).execute_batch(&sql).unwrap();
    }
}

/// One integer from `sql` on the store at `url`, SQLite or PostgreSQL: for assertions on
/// what the store holds that the `Store` trait does not expose.
pub async fn scalar(url: &str, sql: &str) -> i64 {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    } else {
        sqlite(url).query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// A connection to the SQLite store at `url`.
pub fn sqlite(url: &str) -> rusqlite::Connection {
    rusqlite::Connection::open(url.trim_start_matches("sqlite://")).unwrap()
}

/// A finished `ok` run of `job` for its slot at `at`, as a test writes the run history.
pub fn finished_run(job: &str, at: chrono::DateTime<chrono::Utc>) -> cierre::store::JobRun {
    cierre::store::JobRun {
        id: None,
        job: job.into(),
        scheduled_for: at,
        started_at: at,
        finished_at: at,
        outcome: "ok".into(),
        counts: serde_json::Value::Null,
        error: None,
        owner: None,
    }
}
