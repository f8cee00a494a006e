//! Configuration, phase one: `daemon.toml` (over built-in defaults, under `CIERRE__*`
//! environment variables) deserialized as written, before any check.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// The built-in defaults, the first layer under the file and the environment.
pub const DEFAULTS_TOML: &str = r#"
[store]
url = "sqlite://cierre.db"
sqlite_mmap_mib = 2048

[source]
kind = "socrata"
base_url = "https://www.datos.gov.co"
entities = []
page_size = 10000
request_timeout_secs = 60
max_retries = 8
retry_base_ms = 1000
max_vanished_share = 0.05
lookback_hours = 48

[datasets]
contracts = "jbjy-vk9h"
documents = "dmgg-8hin"
guarantees = "gjp9-cutm"

[calendar]
working_days = ["mon", "tue", "wed", "thu", "fri"]
non_working_days = []
# Dates given to cierre (--as-of, dates in this file) are refused outside this window.
earliest_year = 2000
years_ahead = 5

[rules.closable]
enabled = true
deadline_business_days = 30
pending_payment_blocks = false
report_blocked = true
guarantee_types = ["calidad", "estabilidad", "mantenimiento"]

[rules.liquidation_due]
enabled = true
bilateral_months = 4
unilateral_months = 2
late_years = 2

[rules.state_outdated]
enabled = true
grace_business_days = 10
add_days_added = true

[rules.missing_documents]
enabled = true
publication_business_days = 3
signed_since = "2025-01-01"

[[rules.missing_documents.checklist]]
stage = "precontractual"
kind = "estudios_previos"

[[rules.missing_documents.checklist]]
stage = "precontractual"
kind = "analisis_sector"

[[rules.missing_documents.checklist]]
stage = "precontractual"
kind = "cdp"

[[rules.missing_documents.checklist]]
stage = "precontractual"
kind = "acto_justificacion"
modalities = ["contratacion directa"]
except_types = ["prestacion de servicios"]

[[rules.missing_documents.checklist]]
stage = "precontractual"
kind = "certificado_idoneidad"
modalities = ["contratacion directa"]
types = ["prestacion de servicios"]

[[rules.missing_documents.checklist]]
stage = "precontractual"
kind = "pliego"
modalities = ["licitacion", "seleccion abreviada", "concurso de meritos", "minima cuantia"]

[[rules.missing_documents.checklist]]
stage = "contractual"
kind = "contrato"

[[rules.missing_documents.checklist]]
stage = "contractual"
kind = "registro_presupuestal"

[[rules.missing_documents.checklist]]
stage = "postcontractual"
kind = "informe_final"

[documents]
replace_default_kinds = false

[routing]

[escalation]
[[escalation.levels]]
name = "aviso"
max_business_days_left = 30
notify = ["head"]
every = "weekly"
weekday = "mon"

[[escalation.levels]]
name = "urgente"
max_business_days_left = 10
notify = ["head", "director"]
every = "daily"

[[escalation.levels]]
name = "vencido"
max_business_days_left = -1
notify = ["head", "director", "control_interno"]
every = "daily"

[email]
from = "cierre <cierre@localhost>"
outbox_dir = "outbox"
templates_dir = "templates"
max_message_bytes = 10000000

[email.digest]
max_rows = 30
attachment = "xlsx"
csv_separator = ";"

[delivery]
max_attempts = 8
lease_secs = 300
suspend_after_failures = 10
suspend_minutes = 60
webhook_timeout_secs = 10
concurrency = 8
retry_base_secs = 60
retry_max_secs = 21600

[acknowledgements]
reopen_on_escalation = true
max_days = 365

[retention]
outbox_days = 90
runs_days = 90
history_days = 0

[http]
listen = "127.0.0.1:9464"
ready_max_sync_age_hours = 36
link_days = 45

[log]
format = "text"

[schedule]
timezone = "America/Bogota"
sync = "0 0 6 * * *"
notify = "0 0 7 * * Mon-Fri"
deliver = "0 */5 * * * *"
resync = "0 0 3 * * Sun"
purge = "0 30 4 * * *"
catch_up = true
shutdown_grace_secs = 30
"#;

/// The whole file as written.
#[derive(Debug, Deserialize)]
pub struct Raw {
    pub store: RawStore,
    pub source: RawSource,
    pub datasets: RawDatasets,
    pub calendar: RawCalendar,
    pub rules: RawRules,
    pub documents: RawDocuments,
    #[serde(default)]
    pub offices: Vec<RawOffice>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub routing: RawRouting,
    pub escalation: RawEscalation,
    pub email: RawEmail,
    pub delivery: RawDelivery,
    pub retention: RawRetention,
    pub acknowledgements: RawAcknowledgements,
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    pub http: RawHttp,
    pub log: RawLog,
    pub schedule: RawSchedule,
}

#[derive(Debug, Deserialize)]
pub struct RawLog {
    pub format: String,
}

#[derive(Debug, Deserialize)]
pub struct RawStore {
    pub url: String,
    pub sqlite_mmap_mib: i64,
}

#[derive(Debug, Deserialize)]
pub struct RawSource {
    pub kind: String,
    pub base_url: String,
    pub app_token: Option<SecretString>,
    #[serde(default)]
    pub entities: Vec<String>,
    #[serde(rename = "where")]
    pub where_: Option<String>,
    pub page_size: i64,
    pub request_timeout_secs: i64,
    pub max_retries: i64,
    pub retry_base_ms: i64,
    pub max_vanished_share: f64,
    pub lookback_hours: i64,
    pub contracts_path: Option<PathBuf>,
    pub documents_path: Option<PathBuf>,
    pub guarantees_path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
pub struct RawDatasets {
    pub contracts: String,
    pub documents: String,
    pub guarantees: String,
}

#[derive(Debug, Deserialize)]
pub struct RawCalendar {
    pub working_days: Vec<String>,
    #[serde(default)]
    pub non_working_days: Vec<String>,
    pub earliest_year: i32,
    pub years_ahead: i32,
    /// National holidays a law created after this release.
    #[serde(default)]
    pub holidays: Vec<RawHoliday>,
    /// National holidays a law ended.
    #[serde(default)]
    pub removed_holidays: Vec<RawRemovedHoliday>,
}

#[derive(Debug, Deserialize)]
pub struct RawHoliday {
    pub name: String,
    pub law: String,
    /// `fixed`, `emiliani`, `easter` or `easter_emiliani`.
    pub rule: String,
    pub month: Option<i64>,
    pub day: Option<i64>,
    pub offset: Option<i64>,
    pub since: i64,
    pub until: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct RawRemovedHoliday {
    pub name: String,
    /// The first year without the holiday.
    pub from: i64,
    pub law: String,
}

#[derive(Debug, Deserialize)]
pub struct RawRules {
    pub closable: RawClosable,
    pub liquidation_due: RawLiquidationDue,
    pub state_outdated: RawStateOutdated,
    pub missing_documents: RawMissingDocuments,
}

#[derive(Debug, Deserialize)]
pub struct RawLiquidationDue {
    pub enabled: bool,
    pub bilateral_months: i64,
    pub unilateral_months: i64,
    pub late_years: i64,
}

#[derive(Debug, Deserialize)]
pub struct RawMissingDocuments {
    pub enabled: bool,
    pub publication_business_days: i64,
    pub signed_since: Option<String>,
    #[serde(default)]
    pub checklist: Vec<RawRequirement>,
}

/// One required document kind of `rules.missing_documents.checklist`.
#[derive(Debug, Deserialize)]
pub struct RawRequirement {
    pub stage: String,
    pub kind: String,
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default)]
    pub except_modalities: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub except_types: Vec<String>,
    pub liquidation_required: Option<bool>,
}

/// `[documents]`: the classifier's patterns.
#[derive(Debug, Deserialize)]
pub struct RawDocuments {
    /// Entries tried before the built-in ones (or instead of them).
    #[serde(default)]
    pub kinds: Vec<super::classify::KindPattern>,
    pub replace_default_kinds: bool,
}

#[derive(Debug, Deserialize)]
pub struct RawStateOutdated {
    pub enabled: bool,
    pub grace_business_days: i64,
    pub add_days_added: bool,
}

#[derive(Debug, Deserialize)]
pub struct RawClosable {
    pub enabled: bool,
    pub deadline_business_days: i64,
    pub campaign_deadline: Option<String>,
    pub pending_payment_blocks: bool,
    pub report_blocked: bool,
    pub guarantee_types: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawPerson {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Deserialize)]
pub struct RawChainMember {
    pub role: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Deserialize)]
pub struct RawOffice {
    pub id: String,
    pub name: String,
    pub head: RawPerson,
    #[serde(default)]
    pub chain: Vec<RawChainMember>,
}

#[derive(Debug, Deserialize)]
pub struct RawRoute {
    pub office: String,
    /// field = value: equality, after trimming, case-insensitive.
    #[serde(default, rename = "match")]
    pub match_equals: BTreeMap<String, String>,
    /// field = [values]: any of them.
    #[serde(default)]
    pub match_one_of: BTreeMap<String, Vec<String>>,
    /// field = regular expression.
    #[serde(default)]
    pub match_regex: BTreeMap<String, String>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
}

#[derive(Debug, Deserialize)]
pub struct RawRouting {
    pub fallback: Option<RawPerson>,
}

#[derive(Debug, Deserialize)]
pub struct RawEscalation {
    pub levels: Vec<RawLevel>,
}

#[derive(Debug, Deserialize)]
pub struct RawLevel {
    pub name: String,
    pub max_business_days_left: i64,
    pub notify: Vec<String>,
    pub every: String,
    pub weekday: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawEmail {
    pub from: String,
    pub outbox_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub max_message_bytes: i64,
    pub digest: RawDigest,
    pub smtp: Option<RawSmtp>,
}

#[derive(Debug, Deserialize)]
pub struct RawDigest {
    pub max_rows: i64,
    pub attachment: String,
    pub csv_separator: String,
}

#[derive(Debug, Deserialize)]
pub struct RawDelivery {
    pub max_attempts: i64,
    pub lease_secs: i64,
    pub suspend_after_failures: i64,
    pub suspend_minutes: i64,
    pub webhook_timeout_secs: i64,
    pub concurrency: i64,
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
}

#[derive(Debug, Deserialize)]
pub struct RawAcknowledgements {
    pub reopen_on_escalation: bool,
    pub max_days: i64,
}

#[derive(Debug, Deserialize)]
pub struct RawRetention {
    pub outbox_days: i64,
    pub runs_days: i64,
    pub history_days: i64,
}

#[derive(Debug, Deserialize)]
pub struct RawSmtp {
    pub host: String,
    pub port: Option<i64>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub timeout_secs: Option<i64>,
    /// PEM file of a private certificate authority to trust (besides the public ones).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
pub struct RawWebhook {
    pub url: String,
    pub secret: SecretString,
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawHttp {
    pub listen: String,
    pub token: Option<SecretString>,
    pub ready_max_sync_age_hours: i64,
    pub public_url: Option<String>,
    pub link_secret: Option<SecretString>,
    pub link_days: i64,
}

#[derive(Debug, Deserialize)]
pub struct RawSchedule {
    pub timezone: String,
    pub sync: String,
    pub notify: String,
    pub deliver: String,
    pub resync: String,
    pub purge: String,
    pub catch_up: bool,
    pub shutdown_grace_secs: i64,
}
