//! Configuration, beneath every pipeline stage: layers `daemon.toml` over built-in defaults
//! and under `CIERRE__*` environment variables (phase one, [`raw`]), then checks everything
//! at once and builds the [`Settings`] every stage reads (phase two, [`validate`](mod@validate)), with the
//! compiled parts: routes ([`routing`]), the document classifier ([`classify`]), the job
//! schedules ([`schedule`]) and the digest templates ([`templates`]).

pub mod classify;
pub mod raw;
pub mod routing;
pub mod schedule;
pub mod templates;
pub mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::{NaiveDate, Weekday};
use secrecy::SecretString;

use crate::calendar::Calendar;
use crate::domain::Stage;
use classify::Classifier;
use routing::Router;
use schedule::{Job, Schedule};

use validate::validate;

/// One problem in the configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `environment`/`defaults`) and key path, e.g. `daemon.toml: routes[1].office`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem found; a configuration with any of them is refused as a whole.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration ({} error(s)):\n{}", .0.len(), render(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}

/// The validated configuration: every value here has been checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it came from, when there was one; relative paths in it are relative to the
    /// working directory, as an administrator running `cierre` from that folder expects.
    pub config_path: Option<PathBuf>,
    pub store_url: String,
    /// How much of a SQLite store file the bulk connection maps into memory
    /// (`store.sqlite_mmap_mib`, in bytes; 0: none).
    pub sqlite_mmap_bytes: u64,
    pub source: SourceSettings,
    pub datasets: Datasets,
    pub calendar: Calendar,
    /// The dates a person may give (`--as-of`).
    pub dates: DateWindow,
    pub rules: RuleSettings,
    /// The document classifier (built-in patterns and the administrators' own).
    pub classifier: Classifier,
    pub offices: Vec<Office>,
    pub routes: Router,
    pub fallback: Option<Person>,
    pub levels: Vec<Level>,
    pub email: EmailSettings,
    pub delivery: DeliverySettings,
    pub retention: RetentionSettings,
    pub acknowledgements: AckSettings,
    pub webhooks: Vec<Webhook>,
    pub http: HttpSettings,
    pub log_format: LogFormat,
    pub schedule: ScheduleSettings,
}

/// Dates accepted from a person: from January 1st of `earliest_year` to `years_ahead` years
/// after today. A date outside is a typing mistake (`26-02-16` read as the year 26), and an
/// evaluation as of it would resolve or escalate findings on nonsense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    pub earliest_year: i32,
    pub years_ahead: i32,
}

impl DateWindow {
    pub fn check(&self, date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, String> {
        use chrono::Datelike;
        let first = NaiveDate::from_ymd_opt(self.earliest_year, 1, 1).unwrap_or(NaiveDate::MIN);
        let last = today
            .checked_add_months(chrono::Months::new(12 * self.years_ahead.max(0) as u32))
            .unwrap_or(NaiveDate::MAX);
        if date < first || date > last {
            return Err(format!(
                "{date} is outside the accepted dates, {first} to {last} (calendar.earliest_year, calendar.years_ahead); the year is {}",
                date.year()
            ));
        }
        Ok(date)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Socrata,
    File,
}

#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub kind: SourceKind,
    pub base_url: url::Url,
    pub app_token: Option<SecretString>,
    /// `nit_entidad` values in scope; empty means every entity.
    pub entities: Vec<String>,
    pub where_: Option<String>,
    pub page_size: u32,
    /// Bounds every SODA request.
    pub request_timeout: std::time::Duration,
    /// Retries of one page before a sync gives up (it resumes at the next run).
    pub max_retries: u32,
    /// The first retry delay; each retry doubles it (with jitter).
    pub retry_base_delay: std::time::Duration,
    /// The largest share of the scope's live rows a sync may mark vanished without an
    /// operator's confirmation (`cierre sync --accept-vanishing`).
    pub max_vanished_share: f64,
    /// How far before the last complete pass's start an incremental pass over documents
    /// and guarantees reads again (`source.lookback_hours`).
    pub lookback: chrono::Duration,
    pub contracts_path: Option<PathBuf>,
    pub documents_path: Option<PathBuf>,
    pub guarantees_path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Datasets {
    pub contracts: String,
    pub documents: String,
    pub guarantees: String,
}

#[derive(Debug, Clone)]
pub struct RuleSettings {
    pub closable: ClosableSettings,
    pub liquidation_due: LiquidationSettings,
    pub state_outdated: StateOutdatedSettings,
    pub missing_documents: MissingDocumentsSettings,
}

/// Terms of Ley 1150 de 2007 art. 11, configurable should the law or a contract change them.
#[derive(Debug, Clone)]
pub struct LiquidationSettings {
    pub enabled: bool,
    /// Bilateral liquidation term after the end, when the contract agreed none.
    pub bilateral_months: u32,
    /// Unilateral liquidation term after the bilateral one.
    pub unilateral_months: u32,
    /// Liquidation at any time after that, before competence is lost.
    pub late_years: u32,
}

#[derive(Debug, Clone)]
pub struct MissingDocumentsSettings {
    pub enabled: bool,
    /// Business days after a stage starts for its documents to be published.
    pub publication_business_days: u32,
    /// Contracts signed before this date are not checked (older documents live in other
    /// datasets); `None` checks every contract.
    pub signed_since: Option<NaiveDate>,
    pub checklist: Vec<Requirement>,
}

/// A document kind required in a stage, for the contracts its conditions select. Conditions
/// are folded (lower case, no accents) substrings of `modalidad_de_contratacion` and
/// `tipo_de_contrato`; an empty list selects every contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    pub stage: Stage,
    pub kind: String,
    pub modalities: Vec<String>,
    pub except_modalities: Vec<String>,
    pub types: Vec<String>,
    pub except_types: Vec<String>,
    /// `Some(true)`: only contracts that require liquidation; `Some(false)`: only those that
    /// do not.
    pub liquidation_required: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct StateOutdatedSettings {
    pub enabled: bool,
    /// Business days after the end of the term before an executing state is outdated.
    pub grace_business_days: u32,
    /// Whether `dias_adicionados` extends the published end date.
    pub add_days_added: bool,
}

#[derive(Debug, Clone)]
pub struct ClosableSettings {
    pub enabled: bool,
    pub deadline_business_days: u32,
    pub campaign_deadline: Option<NaiveDate>,
    pub pending_payment_blocks: bool,
    /// Whether a contract whose term ended but that an obligation keeps open is reported
    /// (as a `closable` finding with step `blocked`) rather than left out.
    pub report_blocked: bool,
    /// Folded substrings of `tipopoliza`/`subtipopoliza` naming the guarantees (quality,
    /// stability, maintenance) whose validity keeps the file open.
    pub guarantee_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: lettre::Address,
}

#[derive(Debug, Clone)]
pub struct ChainMember {
    pub role: String,
    pub person: Person,
}

#[derive(Debug, Clone)]
pub struct Office {
    pub id: String,
    pub name: String,
    pub head: Person,
    pub chain: Vec<ChainMember>,
}

impl Office {
    /// The people holding `role` in this office (`head` is the head).
    pub fn holders(&self, role: &str) -> Vec<&Person> {
        if role == "head" {
            return vec![&self.head];
        }
        self.chain.iter().filter(|m| m.role == role).map(|m| &m.person).collect()
    }
}

/// When a level's digest goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    Daily,
    Weekly(Weekday),
}

#[derive(Debug, Clone)]
pub struct Level {
    pub name: String,
    /// The level applies when business days left ≤ this.
    pub max_business_days_left: i64,
    /// Roles notified: `head` or a chain role.
    pub notify: Vec<String>,
    pub cadence: Cadence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Implicit,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub timeout: std::time::Duration,
    /// A private CA certificate (PEM) to trust, read at validation.
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub from: lettre::message::Mailbox,
    pub outbox_dir: PathBuf,
    pub templates_dir: PathBuf,
    /// A digest's whole message (body and attachments, encoded) stays under this size.
    pub max_message_bytes: usize,
    pub digest: DigestSettings,
    pub smtp: Option<SmtpSettings>,
}

/// How digests are laid out.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// Rows in the body; the rest are only in the attachment.
    pub max_rows: usize,
    pub attachment: AttachmentFormat,
    /// The CSV attachment's field separator (`;`, what Excel expects in es-CO).
    pub csv_separator: u8,
}

/// Which files a digest carries with every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentFormat {
    pub xlsx: bool,
    pub csv: bool,
}

/// How the outbox is drained.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Attempts before an item is dead-lettered.
    pub max_attempts: u32,
    /// How long a claim holds before another deliverer may take the item over.
    pub lease: std::time::Duration,
    /// Consecutive failures after which a target is suspended.
    pub suspend_after_failures: u32,
    pub suspend_for: std::time::Duration,
    pub webhook_timeout: std::time::Duration,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// The first retry's delay, doubled at each failure up to `retry_max`.
    pub retry_base: std::time::Duration,
    pub retry_max: std::time::Duration,
}

/// How long finished work is kept (the `purge` job).
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Sent and dead outbox items older than this many days are purged, their delivery
    /// history kept in `deliveries`.
    pub outbox_days: u32,
    /// Finished job runs older than this many days are purged (the latest of each job kept).
    pub runs_days: u32,
    /// The delivery history older than this many days is purged; `None`: kept for ever.
    pub history_days: Option<u32>,
}

/// How office heads' answers hold (`[acknowledgements]`).
#[derive(Debug, Clone)]
pub struct AckSettings {
    /// An `en_tramite` finding comes back before its day when it escalates past the level
    /// it was answered at.
    pub reopen_on_escalation: bool,
    /// How many days ahead an `en_tramite` may last at most.
    pub max_days: u32,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: url::Url,
    pub secret: SecretString,
    pub events: Vec<String>,
}

/// The signing key of a `whsec_…` secret, or `None` when it is not one.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (!key.is_empty()).then_some(key)
}

/// The most of a SQLite file the store's bulk connection can map, in MiB: SQLite, as built
/// here, maps at most 0x7fff0000 bytes (just under 2 GiB) and silently caps anything larger.
/// Bounds `store.sqlite_mmap_mib` and is the store's default.
pub const MAX_MMAP_MIB: u64 = 2048;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Bearer token for the endpoints that change state; without one they answer 401.
    pub token: Option<SecretString>,
    /// `/readyz` fails when the last complete sync is older than this.
    pub ready_max_sync_age: std::time::Duration,
    /// Where office heads reach the web view (the base of the links in digests), with the
    /// secret the links are signed with; `None`: no links, no web view for office heads.
    pub links: Option<LinkSettings>,
}

/// Personal links to "Mis hallazgos" (`http.public_url`, `http.link_secret`).
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The base URL, ending in `/`.
    pub public_url: url::Url,
    pub secret: SecretString,
    /// How long a link in a digest stays valid.
    pub valid_for: chrono::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub timezone: chrono_tz::Tz,
    pub sync: Schedule,
    pub notify: Schedule,
    pub deliver: Schedule,
    /// A periodic fresh pass over the whole scope.
    pub resync: Schedule,
    /// The purge of old outbox items, runs and delivery history.
    pub purge: Schedule,
    /// Run once, at start, each job whose latest slot was missed while down.
    pub catch_up: bool,
    /// How long SIGTERM waits for running jobs before abandoning them.
    pub shutdown_grace: std::time::Duration,
}

impl ScheduleSettings {
    /// The schedule of a job, or `None` for a job that only runs after another
    /// ([`Job::Evaluate`]).
    pub fn of(&self, job: Job) -> Option<&Schedule> {
        match job {
            Job::Sync => Some(&self.sync),
            Job::Notify => Some(&self.notify),
            Job::Deliver => Some(&self.deliver),
            Job::Resync => Some(&self.resync),
            Job::Purge => Some(&self.purge),
            Job::Evaluate => None,
        }
    }
}

impl Settings {
    /// The built-in defaults alone, as with an empty `daemon.toml` and no environment.
    pub fn defaults() -> Settings {
        let at = Locator::new(None, None, &[]);
        let (raw, errors) = parse_layers(&at, Vec::new()).expect("the built-in defaults parse");
        assert!(errors.is_empty(), "the built-in defaults deserialize: {errors:?}");
        validate(raw, &at).expect("the built-in defaults are valid")
    }
}

/// Where a configuration value came from, for error locations: the file (with the line of a
/// key written in it), or the environment variable that set it.
pub(crate) struct Locator<'a> {
    file: Option<&'a Path>,
    origin: String,
    text: Option<&'a str>,
    /// Dotted keys set by `CIERRE__…` variables, with the variable.
    env: Vec<(String, String)>,
}

impl<'a> Locator<'a> {
    fn new(file: Option<&'a Path>, text: Option<&'a str>, env: &[(String, String)]) -> Self {
        let env = env
            .iter()
            .filter_map(|(var, _)| {
                let key = var.strip_prefix("CIERRE__")?.to_lowercase().replace("__", ".");
                Some((key, var.clone()))
            })
            .collect();
        Locator { file, origin: origin_name(file), text, env }
    }

    /// The file the configuration was read from, if any.
    pub(crate) fn file(&self) -> Option<&'a Path> {
        self.file
    }

    /// `CIERRE__SOURCE__PAGE_SIZE: source.page_size` for a value from the environment, else
    /// `file:line: key.path` when the key is written in the file, else `file: key.path`.
    pub(crate) fn locate(&self, key_path: &str) -> String {
        let from_env = self.env.iter().find(|(key, _)| {
            key_path == key
                || key_path.strip_prefix(key.as_str()).is_some_and(|r| r.starts_with(['.', '[']))
        });
        match from_env {
            Some((_, var)) => format!("environment variable {var}: {key_path}"),
            None => locate(&self.origin, self.text, key_path),
        }
    }
}

/// Where a config file value came from, for error locations.
fn origin_name(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_else(|| "defaults".into())
}

/// Loads and validates the configuration: defaults → `path` (if it exists or was asked for
/// explicitly) → environment. Returns every error found.
pub fn load(path: &Path, explicit: bool) -> Result<Settings, ConfigErrors> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(path, explicit, env)
}

/// [`load`] with the environment given, so tests need not touch the process environment.
pub fn load_from(
    path: &Path,
    explicit: bool,
    env: Vec<(String, String)>,
) -> Result<Settings, ConfigErrors> {
    let file_text = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigError {
                location: path.display().to_string(),
                message: format!("cannot read the configuration file: {e}"),
            }]));
        }
    };
    let file_path = file_text.as_ref().map(|_| path);
    let env: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with("CIERRE__")).collect();
    let at = Locator::new(file_path, file_text.as_deref(), &env);
    let (raw, mut errors) = parse_layers(&at, env)?;
    // Values of the wrong type were replaced by their defaults: the rest is still checked,
    // so one run reports type errors, unknown keys and range errors together.
    match validate(raw, &at) {
        Ok(settings) if errors.is_empty() => Ok(settings),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// Phase one: merges the layers and deserializes them. Every unknown key is an error; a
/// value of the wrong type is an error too, and is replaced by its default so that the
/// deserialization goes on to find the others.
fn parse_layers(
    at: &Locator,
    env: Vec<(String, String)>,
) -> Result<(raw::Raw, Vec<ConfigError>), ConfigErrors> {
    use config::{Config, Environment, File, FileFormat};

    let fatal =
        |message: String| ConfigErrors(vec![ConfigError { location: at.origin.clone(), message }]);
    let defaults: config::Value = Config::builder()
        .add_source(File::from_str(raw::DEFAULTS_TOML, FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| fatal(e.to_string()))?;
    let mut builder =
        Config::builder().add_source(File::from_str(raw::DEFAULTS_TOML, FileFormat::Toml));
    if let Some(text) = at.text {
        builder = builder.add_source(File::from_str(text, FileFormat::Toml));
    }
    let env_map: config::Map<String, String> = env.into_iter().collect();
    builder = builder.add_source(
        Environment::with_prefix("CIERRE")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("source.entities")
            .with_list_parse_key("calendar.working_days")
            .with_list_parse_key("calendar.non_working_days")
            .with_list_parse_key("rules.closable.guarantee_types")
            .try_parsing(true)
            .source(Some(env_map)),
    );
    let merged = builder.build().map_err(|e| fatal(e.to_string()))?;
    let mut value: config::Value = merged.try_deserialize().map_err(|e| fatal(e.to_string()))?;
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut repaired: Vec<String> = Vec::new();
    loop {
        let mut unknown = Vec::new();
        let parsed: Result<raw::Raw, config::ConfigError> =
            serde_ignored::deserialize(value.clone(), |path| unknown.push(path.to_string()));
        match parsed {
            Ok(raw) => {
                errors.extend(unknown.into_iter().map(|key| ConfigError {
                    location: at.locate(&key),
                    message: "unknown key (misspelt, or not in this version)".into(),
                }));
                return Ok((raw, errors));
            }
            Err(e) => {
                let (key, message) = match &e {
                    config::ConfigError::Type { key: Some(key), unexpected, expected, .. } => {
                        (key_path(key), format!("{unexpected} is not {expected}"))
                    }
                    config::ConfigError::At { key: Some(key), error, .. } => {
                        (key_path(key), error.to_string())
                    }
                    _ => (String::new(), e.to_string()),
                };
                // An error without a key, or one that a default does not cure, ends here.
                if key.is_empty()
                    || repaired.contains(&key)
                    || !replace(&mut value, &defaults, &key)
                {
                    errors.push(ConfigError {
                        location: if key.is_empty() { at.origin.clone() } else { at.locate(&key) },
                        message,
                    });
                    return Err(ConfigErrors(errors));
                }
                errors.push(ConfigError { location: at.locate(&key), message });
                repaired.push(key);
            }
        }
    }
}

/// The segments of a key path as the `config` crate writes it: `routes[1].office` or
/// `routes.1.office` → `routes`, `1`, `office`.
fn key_segments(key: &str) -> Vec<String> {
    key.replace(['[', ']'], ".").split('.').filter(|s| !s.is_empty()).map(String::from).collect()
}

/// A key path as the rest of the configuration's errors write it: `routes[0].continue`.
fn key_path(key: &str) -> String {
    let mut path = String::new();
    for s in key_segments(key) {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{s}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&s);
        }
    }
    path
}

fn value_at<'v>(
    value: &'v mut config::Value,
    segments: &[String],
) -> Option<&'v mut config::Value> {
    let mut at = value;
    for s in segments {
        at = match &mut at.kind {
            config::ValueKind::Table(t) => t.get_mut(s)?,
            config::ValueKind::Array(a) => a.get_mut(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Replaces the value at `key` by the default one, or removes it when it has no default
/// (an optional key); false when the key is not there.
fn replace(value: &mut config::Value, defaults: &config::Value, key: &str) -> bool {
    let segments = key_segments(key);
    let Some((last, parent)) = segments.split_last() else { return false };
    let default = value_at(&mut defaults.clone(), &segments).cloned();
    let Some(parent) = value_at(value, parent) else { return false };
    match (&mut parent.kind, default) {
        (config::ValueKind::Table(t), Some(d)) if t.contains_key(last) => {
            t.insert(last.clone(), d);
            true
        }
        (config::ValueKind::Table(t), None) => t.remove(last).is_some(),
        (config::ValueKind::Array(a), _) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// `file:line: key.path` when the key can be found in the file text, else `file: key.path`.
pub(crate) fn locate(origin: &str, file_text: Option<&str>, key_path: &str) -> String {
    match file_text.and_then(|text| find_line(text, key_path)) {
        Some(line) => format!("{origin}:{line}: {key_path}"),
        None => format!("{origin}: {key_path}"),
    }
}

/// Finds the line of a dotted key path (`routes[1].office`, `email.smtp.port`) in TOML text
/// from the spans the `toml` parser records: the line of the key, or of the array element
/// it indexes; for a key not written, the line of the deepest enclosing key or element that
/// is (e.g. the `[[routes]]` entry it is missing from). Best effort: locations help, they
/// are not needed for correctness.
fn find_line(text: &str, key_path: &str) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut found = None;
    let mut segments = key_path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((key, mut value)) = table.iter().find(|(key, _)| key.get_ref() == name) else {
            break;
        };
        // A table made only by a longer header or dotted key (`[email.smtp]` makes `email`)
        // carries its key's span: it is not written anywhere of its own.
        if value.span() != key.span() {
            found = Some(key.span().start);
        }
        let array = value.get_ref().as_array();
        if let Some(index) = index {
            let Some(element) = array.and_then(|array| array.get(index)) else {
                break;
            };
            found = Some(element.span().start);
            value = element;
        } else if let Some(array) = array
            && array.first().map(|first| first.span()) == Some(value.span())
            && let Some(last) = array.last()
        {
            // An array of tables (`[[routes]]`) spans its first header, as its first entry
            // does: the array as a whole is placed at its last entry.
            found = Some(last.span().start);
        }
        match value.get_ref().as_table() {
            Some(inner) if segments.peek().is_some() => table = inner,
            _ => break,
        }
    }
    found.map(|offset| text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_inside_the_second_array_table_is_found_on_its_line() {
        let text = "[[routes]]\noffice = \"a\"\n\n[[routes]]\noffice = \"b\"\n";
        assert_eq!(find_line(text, "routes[1].office"), Some(5));
        assert_eq!(find_line(text, "routes[0].office"), Some(2));
    }

    #[test]
    fn a_nested_table_key_is_found() {
        let text = "[email]\nfrom = \"x\"\n[email.smtp]\nport = 25\n";
        assert_eq!(find_line(text, "email.smtp.port"), Some(4));
        assert_eq!(find_line(text, "email.from"), Some(2));
    }

    #[test]
    fn a_key_not_written_is_placed_at_the_entry_or_table_that_lacks_it() {
        let text = "[[escalation.levels]]\nname = \"aviso\"\n\n[email.smtp]\nport = 25\n";
        assert_eq!(find_line(text, "escalation.levels[0].weekday"), Some(1));
        assert_eq!(find_line(text, "email.smtp.host"), Some(4));
        // `email` exists only through `[email.smtp]`: nothing in the file holds `email.from`.
        assert_eq!(find_line(text, "email.from"), None);
        assert_eq!(find_line(text, "store.url"), None);
        // An array of tables as a whole is at its last entry, where another would go.
        let two = "[[documents.kinds]]\nkind = \"a\"\n[[documents.kinds]]\nkind = \"b\"\n";
        assert_eq!(find_line(two, "documents.kinds"), Some(3));
    }

    #[test]
    fn inline_tables_dotted_keys_and_array_elements_are_found() {
        let text = "[[routes]]\nmatch = { ciudad = \"Bogotá\" }\nhead.email = \"x\"\n\
                    [source]\nentities = [\n  \"1\",\n  \"2\",\n]\n";
        assert_eq!(find_line(text, "routes[0].match.ciudad"), Some(2));
        assert_eq!(find_line(text, "routes[0].head.email"), Some(3));
        assert_eq!(find_line(text, "source.entities[1]"), Some(7));
        assert_eq!(find_line(text, "source.entities[5]"), Some(5));
    }
}
