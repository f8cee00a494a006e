//! Notify, digest: one Spanish email per recipient — subject, plain text and HTML rendered
//! from the templates (see [`crate::config::templates`]), the attachments holding every row
//! ([`super::attachments`]), and a deterministic `Message-ID` per recipient and digest slot.

use chrono::NaiveDate;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use minijinja::Environment;
use sha2::{Digest as _, Sha256};

use super::attachments::Files;
use crate::config::Person;
use crate::config::templates::{Digest, context};

/// The rendered parts of a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The file names of a digest's attachments.
pub fn xlsx_name(slot: NaiveDate) -> String {
    format!("hallazgos-secop-{slot}.xlsx")
}

pub fn csv_name(slot: NaiveDate) -> String {
    format!("hallazgos-secop-{slot}.csv")
}

/// Renders a digest with the templates.
pub fn render(env: &Environment, d: &Digest) -> anyhow::Result<Rendered> {
    let ctx = context(d);
    let subject = env.get_template("digest.subject.txt")?.render(&ctx)?;
    Ok(Rendered {
        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
        text: env.get_template("digest.txt")?.render(&ctx)?,
        html: env.get_template("digest.html")?.render(&ctx)?,
    })
}

/// `<digest.2026-11-23.3f2a…@domain>`: the same recipient and slot always give the same id,
/// so a re-send of a slot is recognisable as the same message.
pub fn message_id(from: &Mailbox, to: &Person, slot: NaiveDate) -> String {
    let h = Sha256::digest(to.email.to_string().to_lowercase().as_bytes());
    format!("<digest.{slot}.{}@{}>", &hex::encode(h)[..16], from.email.domain())
}

/// Text with CRLF line endings, in one pass: lettre would insert each `\r` into the string
/// (quadratic in the size of the body).
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for line in text.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(l) => {
                out.push_str(l.strip_suffix('\r').unwrap_or(l));
                out.push_str("\r\n");
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The email: multipart/mixed of (text, HTML) alternatives and the attachments.
pub fn message(
    from: &Mailbox,
    d: &Digest,
    r: &Rendered,
    files: &Files,
) -> Result<Message, lettre::error::Error> {
    let to = Mailbox::new(Some(d.to.name.clone()), d.to.email.clone());
    let alternative = MultiPart::alternative()
        .singlepart(
            SinglePart::builder().header(ContentType::TEXT_PLAIN).body(Body::new(crlf(&r.text))),
        )
        .singlepart(
            SinglePart::builder().header(ContentType::TEXT_HTML).body(Body::new(crlf(&r.html))),
        );
    let mut mixed = MultiPart::mixed().multipart(alternative);
    if let Some(xlsx) = &files.xlsx {
        let ct =
            ContentType::parse("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
                .expect("valid");
        mixed =
            mixed.singlepart(Attachment::new(xlsx_name(d.slot)).body(Body::new(xlsx.clone()), ct));
    }
    if let Some(csv) = &files.csv {
        let ct = ContentType::parse("text/csv; charset=utf-8").expect("valid");
        mixed =
            mixed.singlepart(Attachment::new(csv_name(d.slot)).body(Body::new(csv.clone()), ct));
    }
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject.clone())
        .message_id(Some(message_id(from, &d.to, d.slot)))
        .multipart(mixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::config::templates::{check_templates, environment, sample_digest};

    #[test]
    fn the_builtin_templates_render_a_spanish_digest() {
        let env = environment(Path::new("/nonexistent")).unwrap();
        let d = sample_digest();
        let r = render(&env, &d).unwrap();
        assert_eq!(r.subject, "SECOP II: 2 contratos requieren acción, 2 vencidos");
        assert!(r.text.contains("* CD-001-2025 — Expedientes que deben cerrarse"), "{}", r.text);
        assert!(r.text.contains("- Expedientes que deben cerrarse: 2 · Vencido: 2"), "{}", r.text);
        assert!(r.text.contains("1 nuevo(s), 1 escalado(s), 1 resuelto(s)"), "{}", r.text);
        assert!(r.text.contains("Y 1 hallazgo(s) más en el archivo adjunto."), "{}", r.text);
        assert!(r.html.contains("data-row=\"CO1.PCCNTR.1\""), "{}", r.html);
        // minijinja escapes `/` in HTML (as &#x2f;), which browsers and mail clients decode.
        assert!(r.html.contains("community.secop.gov.co"), "{}", r.html);
        assert!(r.html.contains("Expedientes que deben cerrarse"), "{}", r.html);
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
