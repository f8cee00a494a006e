//! Notify, digest: one Spanish email per recipient holding all their findings — subject,
//! plain text and HTML rendered from the templates (see [`crate::config::templates`]), a
//! CSV attachment of the rows, and a deterministic `Message-ID` per recipient and digest
//! slot.

use chrono::NaiveDate;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use minijinja::Environment;
use sha2::{Digest as _, Sha256};

use crate::config::Person;
use crate::config::templates::{Digest, DigestRow, context, groups};

/// The rendered parts of a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub csv: String,
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
    use std::path::Path;

    use crate::config::templates::{check_templates, environment, sample_digest};

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
