//! Notify, digest: one Spanish email per recipient holding all their findings — subject,
//! plain text and HTML rendered from the templates in `templates/` (read at run time so
//! administrators can override them), a CSV attachment of the rows, and a deterministic
//! `Message-ID` per recipient and digest slot.

use std::path::Path;

use chrono::NaiveDate;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::config::Person;
use crate::rules::fecha;

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

/// The rendered parts of a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub csv: String,
}

/// The Spanish name of a finding kind, as a digest heading.
pub fn kind_label(kind: &str) -> &str {
    match kind {
        "closable" => "Expedientes que deben cerrarse",
        "liquidation_due" => "Contratos por liquidar",
        "state_outdated" => "Estado desactualizado en SECOP II",
        "missing_documents" => "Documentos sin publicar",
        other => other,
    }
}

/// The level name with a capital: `vencido` → `Vencido`.
pub fn level_label(level: &str) -> String {
    let mut c = level.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
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

fn sample_digest() -> Digest {
    let row = DigestRow {
        contract_id: "CO1.PCCNTR.1".into(),
        reference: "CD-001-2025".into(),
        entity: "Entidad".into(),
        object: "Objeto".into(),
        supervisor: "Supervisor".into(),
        end_date: "31 de enero de 2025".into(),
        kind: "closable".into(),
        kind_label: kind_label("closable").into(),
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

fn context(d: &Digest) -> minijinja::Value {
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

/// The CSV attachment: one line per row, UTF-8 with a BOM so Excel reads the accents.
pub fn csv(rows: &[DigestRow]) -> Result<String, csv::Error> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record([
        "nivel",
        "tipo",
        "id_contrato",
        "referencia",
        "entidad",
        "objeto",
        "supervisor",
        "fecha_fin",
        "desde",
        "plazo",
        "dias_habiles_restantes",
        "razones",
        "enlace",
    ])?;
    for r in groups(rows).iter().flat_map(|g| &g.rows) {
        w.write_record([
            r.level.as_str(),
            r.kind.as_str(),
            &r.contract_id,
            &r.reference,
            &r.entity,
            &r.object,
            &r.supervisor,
            &r.end_date,
            &r.since,
            &r.deadline,
            &r.business_days_left.to_string(),
            &r.reasons.join(" | "),
            &r.url,
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(format!("\u{feff}{}", String::from_utf8_lossy(&bytes)))
}

/// Renders a digest with the templates.
pub fn render(env: &Environment, d: &Digest) -> anyhow::Result<Rendered> {
    let ctx = context(d);
    let subject = env.get_template("digest.subject.txt")?.render(&ctx)?;
    Ok(Rendered {
        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
        text: env.get_template("digest.txt")?.render(&ctx)?,
        html: env.get_template("digest.html")?.render(&ctx)?,
        csv: csv(&d.rows)?,
    })
}

/// `<digest.2026-11-23.3f2a…@domain>`: the same recipient and slot always give the same id,
/// so a re-send of a slot is recognisable as the same message.
pub fn message_id(from: &Mailbox, to: &Person, slot: NaiveDate) -> String {
    let h = Sha256::digest(to.email.to_string().to_lowercase().as_bytes());
    format!("<digest.{slot}.{}@{}>", &hex::encode(h)[..16], from.email.domain())
}

/// The email: multipart/mixed of (text, HTML) alternatives and the CSV attachment.
pub fn message(from: &Mailbox, d: &Digest, r: &Rendered) -> Result<Message, lettre::error::Error> {
    let to = Mailbox::new(Some(d.to.name.clone()), d.to.email.clone());
    let attachment = Attachment::new(format!("hallazgos-secop-{}.csv", d.slot))
        .body(r.csv.clone(), ContentType::parse("text/csv; charset=utf-8").expect("valid"));
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject.clone())
        .message_id(Some(message_id(from, &d.to, d.slot)))
        .multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(r.text.clone(), r.html.clone()))
                .singlepart(attachment),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_templates_render_a_spanish_digest() {
        let env = environment(Path::new("/nonexistent")).unwrap();
        let d = sample_digest();
        let r = render(&env, &d).unwrap();
        assert_eq!(r.subject, "SECOP II: 1 contrato requiere acción, 1 vencido");
        assert!(r.text.contains("CO1.PCCNTR.1"), "{}", r.text);
        // minijinja escapes `/` in HTML (as &#x2f;), which browsers and mail clients decode.
        assert!(r.html.contains("community.secop.gov.co"), "{}", r.html);
        assert!(r.html.contains("Vencido · Expedientes que deben cerrarse (1)"));
        assert!(r.csv.starts_with('\u{feff}'));
    }

    #[test]
    fn a_broken_template_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("digest.txt"), "ok\n{% for x in %}\n").unwrap();
        let mut errors = Vec::new();
        check_templates(dir.path(), &mut |n, m| errors.push(format!("{n}: {m}")));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("digest.txt: line 2"), "{errors:?}");
    }

    #[test]
    fn message_ids_are_stable_per_recipient_and_slot() {
        let from: Mailbox = "cierre <cierre@example.gov.co>".parse().unwrap();
        let d = sample_digest();
        let a = message_id(&from, &d.to, d.slot);
        assert_eq!(a, message_id(&from, &d.to, d.slot));
        assert_ne!(a, message_id(&from, &d.to, d.slot.succ_opt().unwrap()));
        assert!(a.ends_with("@example.gov.co>"));
    }
}
