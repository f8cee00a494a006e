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
use crate::domain::spanish::{fecha, kind_label};

/// The templates a digest is made of, with the copies built into the binary.
pub const TEMPLATES: [(&str, &str); 3] = [
    ("digest.subject.txt", include_str!("../../templates/digest.subject.txt")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    ("digest.html", include_str!("../../templates/digest.html")),
];

/// One line of a digest: a finding with what the office head needs to act on it.
#[derive(Debug, Clone, Serialize)]
pub struct DigestRow {
    pub contract_id: String,
    pub reference: String,
    pub entity: String,
    pub object: String,
    pub supervisor: String,
    pub end_date: String,
    pub kind: String,
    pub kind_label: String,
    pub level: String,
    pub level_label: String,
    pub since: String,
    pub deadline: String,
    pub business_days_left: i64,
    pub reasons: Vec<String>,
    pub url: String,
    #[serde(skip)]
    pub urgency: usize,
}

/// A group of rows with the same level and kind, as the templates show them.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub level: String,
    pub level_label: String,
    pub kind: String,
    pub kind_label: String,
    pub rows: Vec<DigestRow>,
}

/// One recipient's digest for one slot (the digest run's date).
#[derive(Debug, Clone)]
pub struct Digest {
    pub to: Person,
    pub slot: NaiveDate,
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
        contract_id: "CO1.PCCNTR.1".into(),
        reference: "CD-001-2025".into(),
        entity: "Entidad".into(),
        object: "Objeto".into(),
        supervisor: "Supervisor".into(),
        end_date: "31 de enero de 2025".into(),
        kind: "closable".into(),
        kind_label: kind_label(Kind::Closable).into(),
        level: "vencido".into(),
        level_label: "Vencido".into(),
        since: "1 de febrero de 2025".into(),
        deadline: "17 de marzo de 2025".into(),
        business_days_left: -3,
        reasons: vec!["Razón".into()],
        url: "https://community.secop.gov.co/".into(),
        urgency: 0,
    };
    Digest {
        to: Person { name: "Jefe".into(), email: "jefe@example.gov.co".parse().expect("valid") },
        slot: NaiveDate::from_ymd_opt(2025, 3, 20).expect("valid"),
        rows: vec![row],
    }
}

/// Rows grouped by level then kind, most urgent first; rows within by days left.
pub fn groups(rows: &[DigestRow]) -> Vec<Group> {
    let mut sorted: Vec<&DigestRow> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (a.urgency, &a.kind, a.business_days_left, &a.contract_id).cmp(&(
            b.urgency,
            &b.kind,
            b.business_days_left,
            &b.contract_id,
        ))
    });
    let mut out: Vec<Group> = Vec::new();
    for r in sorted {
        match out.last_mut() {
            Some(g) if g.level == r.level && g.kind == r.kind => g.rows.push(r.clone()),
            _ => out.push(Group {
                level: r.level.clone(),
                level_label: r.level_label.clone(),
                kind: r.kind.clone(),
                kind_label: r.kind_label.clone(),
                rows: vec![r.clone()],
            }),
        }
    }
    out
}

/// The variables of the templates for digest `d`.
pub fn context(d: &Digest) -> minijinja::Value {
    let mut contracts: Vec<&str> = d.rows.iter().map(|r| r.contract_id.as_str()).collect();
    contracts.sort_unstable();
    contracts.dedup();
    let mut overdue: Vec<&str> = d
        .rows
        .iter()
        .filter(|r| r.business_days_left < 0)
        .map(|r| r.contract_id.as_str())
        .collect();
    overdue.sort_unstable();
    overdue.dedup();
    minijinja::context! {
        recipient => minijinja::context! { name => d.to.name.clone(), email => d.to.email.to_string() },
        date => fecha(d.slot),
        total_contracts => contracts.len(),
        total_findings => d.rows.len(),
        overdue_contracts => overdue.len(),
        groups => minijinja::Value::from(minijinja::value::Serde(groups(&d.rows))),
    }
}
