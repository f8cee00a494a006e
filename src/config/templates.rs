//! Configuration, digest templates: the subject, plain-text and HTML templates of a digest,
//! read from `email.templates_dir` (each falling back to the copy built into the binary, so
//! administrators may override any of them) and checked at validation by rendering a sample;
//! and the variables they are rendered with, which is what administrators write templates
//! against. Notify fills those variables and renders.

use std::path::Path;

use chrono::NaiveDate;
use minijinja::Environment;
use serde::Serialize;

use super::Person;
use crate::domain::Kind;
use crate::domain::spanish::{fecha, kind_guide, kind_label};

/// The templates a digest is made of, with the copies built into the binary.
pub const TEMPLATES: [(&str, &str); 3] = [
    ("digest.subject.txt", include_str!("../../templates/digest.subject.txt")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    ("digest.html", include_str!("../../templates/digest.html")),
];

/// One line of a digest: a finding with what the office head needs to act on it. The
/// text fields are what templates show; the typed ones (not in templates) feed the workbook.
#[derive(Debug, Clone, Serialize)]
pub struct DigestRow {
    /// The finding's id (its page in the web view).
    pub finding_id: i64,
    pub contract_id: String,
    pub reference: String,
    pub entity: String,
    pub object: String,
    pub supervisor: String,
    pub end_date: String,
    /// The state SECOP II shows (`estado_contrato`).
    pub state: String,
    pub kind: String,
    pub kind_label: String,
    /// The contract stage the finding is about (`precontractual`…), or empty.
    pub stage: String,
    pub level: String,
    pub level_label: String,
    pub since: String,
    pub deadline: String,
    pub business_days_left: i64,
    /// The business days left, in words: `vencido hace 3 días hábiles`, `vence hoy`…
    pub days: String,
    /// The liquidation step, in Spanish (for `liquidation_due`).
    pub step: Option<String>,
    /// The missing document kinds, by their Spanish names (for `missing_documents`).
    pub missing: Vec<String>,
    /// The amount SECOP II shows as pending payment, when there is one.
    pub pending: Option<String>,
    pub reasons: Vec<String>,
    pub url: String,
    #[serde(skip)]
    pub dates: RowDates,
    /// Centavos pending payment.
    #[serde(skip)]
    pub pending_centavos: Option<i64>,
}

/// A row's dates as dates, for the workbook.
#[derive(Debug, Clone, Copy, Default)]
pub struct RowDates {
    pub end: Option<NaiveDate>,
    pub since: Option<NaiveDate>,
    pub deadline: Option<NaiveDate>,
}

/// One kind present in a digest: what it means, once, and its findings per level.
#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    pub kind: String,
    pub kind_label: String,
    pub meaning: String,
    pub action: String,
    pub basis: String,
    /// Findings of this kind at each of [`Summary::levels`], in that order.
    pub counts: Vec<u64>,
    pub total: u64,
}

/// A level present in a digest.
#[derive(Debug, Clone, Serialize)]
pub struct LevelName {
    pub level: String,
    pub level_label: String,
}

/// The counts at the top of a digest: findings per kind × level.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Most urgent first.
    pub levels: Vec<LevelName>,
    pub kinds: Vec<KindSummary>,
    /// Findings at each level, all kinds.
    pub totals: Vec<u64>,
}

/// What changed since the recipient's previous digest.
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    /// The previous digest's date, in Spanish.
    pub previous: String,
    pub new: u64,
    pub escalated: u64,
    pub resolved: u64,
}

/// One recipient's digest for one slot (the digest run's date): counts of everything, the
/// most urgent rows, and where the rest is.
#[derive(Debug, Clone)]
pub struct Digest {
    pub to: Person,
    pub slot: NaiveDate,
    pub summary: Summary,
    /// `None` for a recipient's first digest.
    pub changes: Option<Changes>,
    /// The rows shown in the body, most urgent first (at most `email.digest.max_rows`).
    pub rows: Vec<DigestRow>,
    pub total_findings: u64,
    pub total_contracts: u64,
    pub overdue_contracts: u64,
    /// The attachments holding every row, by file name.
    pub attachments: Vec<String>,
    /// When the attachments hold only the most urgent rows (the message size limit): how
    /// many they hold.
    pub attached_rows: Option<u64>,
    /// Findings of this recipient a silence keeps out of the digest.
    pub silenced: u64,
    /// Findings of this recipient answered `en_tramite` (until a day still to come).
    pub in_progress: u64,
    /// Findings of this recipient answered `no_aplica` or `documento_publicado`.
    pub dismissed: u64,
    /// The recipient's personal links to the web view, when `http.public_url` is set.
    pub links: Option<DigestLinks>,
}

/// A recipient's personal links: "Mis hallazgos", and each finding's page as
/// `finding_prefix` + id + `query`.
#[derive(Debug, Clone, Serialize)]
pub struct DigestLinks {
    pub list: String,
    pub finding_prefix: String,
    pub query: String,
}

/// A section of the rows shown: those of one level.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub level: String,
    pub level_label: String,
    pub rows: Vec<DigestRow>,
}

/// Loads the templates: each from `dir` when the administrator put one there, else the
/// built-in copy. Fails on the first template that cannot be read or parsed.
pub fn environment(dir: &Path) -> Result<Environment<'static>, (String, String)> {
    let mut first_error = None;
    let env = load(dir, &mut |name, msg| {
        first_error.get_or_insert((name, msg));
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(env),
    }
}

/// Reads and parses every template, reporting each one that cannot be read or parsed.
fn load(dir: &Path, report: &mut dyn FnMut(String, String)) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(syntax());
    for (name, builtin) in TEMPLATES {
        let path = dir.join(name);
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => builtin.to_string(),
            Err(e) => {
                report(name.to_string(), format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        if let Err(e) = env.add_template_owned(name, source) {
            report(name.to_string(), describe(&e));
        }
    }
    env
}

/// Block tags on their own lines leave no blank lines behind (Jinja's trim/lstrip blocks).
fn syntax() -> minijinja::syntax::SyntaxConfig {
    minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .expect("default delimiters are valid")
}

fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("line {line}: {}", e.detail().unwrap_or(&e.to_string())),
        None => e.to_string(),
    }
}

/// Reports every template that is missing, unreadable, or does not parse or render (with a
/// sample digest), for `check-config`.
pub fn check_templates(dir: &Path, report: &mut dyn FnMut(String, String)) {
    let env = load(dir, report);
    let sample = sample_digest();
    for (name, _) in TEMPLATES {
        if let Ok(t) = env.get_template(name)
            && let Err(e) = t.render(context(&sample))
        {
            report(name.to_string(), format!("does not render: {}", describe(&e)));
        }
    }
}

/// A digest of one row, to check templates with.
pub fn sample_digest() -> Digest {
    let row = DigestRow {
        finding_id: 1,
        contract_id: "CO1.PCCNTR.1".into(),
        reference: "CD-001-2025".into(),
        entity: "Entidad".into(),
        object: "Objeto".into(),
        supervisor: "Supervisor".into(),
        end_date: "31 de enero de 2025".into(),
        state: "En ejecución".into(),
        kind: "closable".into(),
        kind_label: kind_label(Kind::Closable).into(),
        stage: "postcontractual".into(),
        level: "vencido".into(),
        level_label: "Vencido".into(),
        since: "1 de febrero de 2025".into(),
        deadline: "17 de marzo de 2025".into(),
        business_days_left: -3,
        days: "vencido hace 3 días hábiles".into(),
        step: Some("liquidación unilateral".into()),
        missing: vec!["Acta de liquidación".into()],
        pending: Some("$ 1.000.000".into()),
        reasons: vec!["Razón".into()],
        url: "https://community.secop.gov.co/".into(),
        dates: RowDates::default(),
        pending_centavos: Some(100_000_000),
    };
    let guide = kind_guide(Kind::Closable);
    Digest {
        to: Person { name: "Jefe".into(), email: "jefe@example.gov.co".parse().expect("valid") },
        slot: NaiveDate::from_ymd_opt(2025, 3, 20).expect("valid"),
        summary: Summary {
            levels: vec![LevelName { level: "vencido".into(), level_label: "Vencido".into() }],
            kinds: vec![KindSummary {
                kind: "closable".into(),
                kind_label: kind_label(Kind::Closable).into(),
                meaning: guide.meaning.into(),
                action: guide.action.into(),
                basis: guide.basis.into(),
                counts: vec![2],
                total: 2,
            }],
            totals: vec![2],
        },
        changes: Some(Changes {
            previous: "19 de marzo de 2025".into(),
            new: 1,
            escalated: 1,
            resolved: 1,
        }),
        rows: vec![row],
        total_findings: 2,
        total_contracts: 2,
        overdue_contracts: 2,
        attachments: vec!["hallazgos-secop-2025-03-20.xlsx".into()],
        attached_rows: None,
        silenced: 1,
        in_progress: 1,
        dismissed: 1,
        links: Some(DigestLinks {
            list: "https://cierre.example.gov.co/mis-hallazgos?t=TOKEN".into(),
            finding_prefix: "https://cierre.example.gov.co/mis-hallazgos/".into(),
            query: "?t=TOKEN".into(),
        }),
    }
}

/// The rows shown, in sections by level (the rows come most urgent first).
pub fn sections(rows: &[DigestRow]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(s) if s.level == r.level => s.rows.push(r.clone()),
            _ => out.push(Section {
                level: r.level.clone(),
                level_label: r.level_label.clone(),
                rows: vec![r.clone()],
            }),
        }
    }
    out
}

/// The variables of the templates for digest `d`.
pub fn context(d: &Digest) -> minijinja::Value {
    use minijinja::value::Serde;
    minijinja::context! {
        recipient => minijinja::context! { name => d.to.name.clone(), email => d.to.email.to_string() },
        date => fecha(d.slot),
        slot => d.slot.to_string(),
        total_contracts => d.total_contracts,
        total_findings => d.total_findings,
        overdue_contracts => d.overdue_contracts,
        summary => minijinja::Value::from(Serde(&d.summary)),
        changes => minijinja::Value::from(Serde(&d.changes)),
        sections => minijinja::Value::from(Serde(sections(&d.rows))),
        shown => d.rows.len(),
        more => d.total_findings.saturating_sub(d.rows.len() as u64),
        attachments => d.attachments.clone(),
        attached_rows => d.attached_rows,
        silenced => d.silenced,
        in_progress => d.in_progress,
        dismissed => d.dismissed,
        links => minijinja::Value::from(Serde(&d.links)),
    }
}
