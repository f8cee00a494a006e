//! Digests end to end into the file outbox: routing, escalation cadence, one email per
//! recipient, the parts of each email, and no duplicate however often notify and deliver run.

use crate::helpers::{Sheet, date, spawn_app, spawn_app_with};
use cierre::notify::digest;
use cierre::store::prelude::*;

#[tokio::test]
async fn each_recipient_gets_one_digest_per_slot_however_often_notify_and_deliver_run() {
    let t = spawn_app().await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let first = t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    // SENA and ICBF: head, director and control interno (all overdue); plus the fallback.
    assert_eq!(first.digests.len(), 7, "{:?}", first.digests);
    assert_eq!(first.enqueued, 7);
    let again = t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    assert_eq!((again.enqueued, again.already_queued), (0, 7));

    let d = t.app.deliver().await.unwrap();
    assert_eq!((d.sent, d.retrying, d.dead), (7, 0, 0));
    assert_eq!(t.app.deliver().await.unwrap().sent, 0, "nothing is sent twice");
    let emails = t.emails();
    assert_eq!(emails.len(), 7);
    let counts = t.app.store.outbox_counts().await.unwrap();
    assert_eq!((counts.sent, counts.pending), (7, 0));

    // The fallback holds exactly the findings of entities no route names.
    let routed = ["899999034", "899999239"];
    let ids = |to: &str| {
        let e = emails.iter().find(|e| e.to == to).unwrap();
        Sheet::read(&e.attachments[0].1).column("ID del contrato")
    };
    let (fallback, sena) = (ids("central@example.gov.co"), ids("jefa@sena.example"));
    let mut unrouted = 0;
    // Findings at `info` (no threshold reached yet) are in no digest.
    for f in t.findings().await.iter().filter(|f| f.level != "info") {
        let c = t.app.store.contract(&f.contract_id).await.unwrap().unwrap();
        let is_sena = c.entity_nit.as_deref() == Some("899999034");
        assert_eq!(sena.contains(&f.contract_id), is_sena, "{}", f.contract_id);
        let is_routed = routed.contains(&c.entity_nit.as_deref().unwrap_or(""));
        assert_eq!(fallback.contains(&f.contract_id), !is_routed, "{}", f.contract_id);
        unrouted += usize::from(!is_routed);
    }
    assert_eq!(fallback.len(), unrouted, "one row per unrouted finding");
    assert_eq!(first.unrouted as usize, unrouted);
}

#[tokio::test]
async fn a_digest_email_is_multipart_spanish_with_a_workbook_and_a_stable_message_id() {
    let t = spawn_app().await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    t.app.deliver().await.unwrap();
    let emails = t.emails();
    let e = emails.iter().find(|e| e.to == "jefa@sena.example").unwrap();
    assert_eq!(e.content_type, "multipart/mixed");
    // The body shows the most urgent rows (one "Plazo:" line each), the workbook all of them.
    let shown = e.text.matches("\n  Plazo: ").count();
    assert_eq!(shown, t.app.settings.email.digest.max_rows);
    // Each kind's legal basis once, not on every row.
    assert_eq!(e.text.matches("Circular Externa 002 de 2023").count(), 1);
    assert!(
        e.html.contains("<html lang=\"es\">") && e.html.contains("Expedientes que deben cerrarse")
    );
    let (name, xlsx) = &e.attachments[0];
    assert_eq!(name, "hallazgos-secop-2026-02-16.xlsx");
    let sheet = Sheet::read(xlsx);
    let n = sheet.rows.len() - 1;
    assert!(n > shown, "{n}");
    assert!(e.text.contains(&format!("Y {} hallazgo(s) más en el archivo adjunto", n - shown)));
    assert!(sheet.column("Nivel").iter().all(|l| l == "Vencido"));
    let kinds = sheet.column("Hallazgo");
    assert!(kinds.iter().any(|k| k == "Expedientes que deben cerrarse"));
    assert!(kinds.iter().any(|k| k == "Estado desactualizado en SECOP II"));
    let mut contracts = sheet.column("ID del contrato");
    contracts.sort_unstable();
    contracts.dedup();
    let c = contracts.len();
    assert!(c < n, "some contracts have two findings");
    assert_eq!(e.subject, format!("SECOP II: {c} contratos requieren acción, {c} vencidos"));
    assert!(
        sheet.column("Objeto").iter().any(|r| r.contains("Prestación de servicios profesionales")),
        "accents survive"
    );

    let from = t.app.settings.email.from.clone();
    let to = cierre::config::Person {
        name: "Jefa SENA".into(),
        email: "jefa@sena.example".parse().unwrap(),
    };
    let expected = digest::message_id(&from, &to, date("2026-02-16"));
    assert_eq!(format!("<{}>", e.message_id), expected);
    // Rendering the same slot again gives the same Message-ID.
    let built =
        t.app.digest("jefa@sena.example", Some(date("2026-02-16")), None).await.unwrap().unwrap();
    let again = crate::helpers::Email::parse(&built.formatted);
    assert_eq!(again.message_id, e.message_id);
}

#[tokio::test]
async fn the_weekly_level_waits_for_its_weekday_and_daily_levels_reach_the_director() {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::helpers::one_ended_service(dir.path());
    let t = spawn_app_with(&file, "2026-02-03", "").await;
    t.app.sync().await.unwrap();
    // Tuesday 2026-02-03: the finding is "aviso", whose digest goes out on Mondays.
    t.app.evaluate(Some(date("2026-02-03"))).await.unwrap();
    let r = t.app.notify(Some(date("2026-02-03")), false).await.unwrap();
    assert!(r.digests.is_empty());
    // Monday 2026-02-09: the head alone.
    t.app.evaluate(Some(date("2026-02-09"))).await.unwrap();
    let r = t.app.notify(Some(date("2026-02-09")), false).await.unwrap();
    assert_eq!(r.digests, [("jefa@sena.example".to_string(), 1)]);
    // Ten business days before the deadline, daily, to the head and the director.
    let deadline = cierre::calendar::Calendar::colombia().add_business_days(date("2026-01-31"), 30);
    let day = cierre::calendar::Calendar::colombia().add_business_days(deadline, -5);
    t.app.evaluate(Some(day)).await.unwrap();
    let r = t.app.notify(Some(day), true).await.unwrap();
    let mut to: Vec<&str> = r.digests.iter().map(|(t, _)| t.as_str()).collect();
    to.sort();
    assert_eq!(to, ["director@sena.example", "jefa@sena.example"]);
    assert_eq!(r.enqueued, 0, "a dry run queues nothing");
    // Daily: the next business day again (a Tuesday or any other weekday).
    let next = cierre::calendar::Calendar::colombia().add_business_days(day, 1);
    t.app.evaluate(Some(next)).await.unwrap();
    assert_eq!(t.app.notify(Some(next), true).await.unwrap().digests.len(), 2);
    // Overdue: control interno joins, every day.
    let overdue = cierre::calendar::Calendar::colombia().add_business_days(deadline, 1);
    t.app.evaluate(Some(overdue)).await.unwrap();
    assert_eq!(t.findings().await[0].level, "vencido");
    let r = t.app.notify(Some(overdue), false).await.unwrap();
    let mut to: Vec<&str> = r.digests.iter().map(|(t, _)| t.as_str()).collect();
    to.sort();
    assert_eq!(to, ["ci@sena.example", "director@sena.example", "jefa@sena.example"]);
    assert_eq!(r.enqueued, 3);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_later_and_sent_once() {
    let t = spawn_app().await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    // The outbox folder cannot be written: a file stands where the folder should be.
    std::fs::write(t.outbox(), "not a folder").unwrap();
    let mut settings = t.app.settings.clone();
    settings.email.outbox_dir = t.outbox().join("sub");
    let broken =
        cierre::app::App { settings, store: t.app.store.clone(), clock: t.app.clock.clone() };
    assert!(broken.deliver().await.is_err(), "the folder cannot be created");
    std::fs::remove_file(t.outbox()).unwrap();
    std::fs::create_dir(t.outbox()).unwrap();
    // Writable folder but read-only: every send fails and is retried later, none lost.
    let mut perms = std::fs::metadata(t.outbox()).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(t.outbox(), perms.clone()).unwrap();
    let is_root = std::fs::write(t.outbox().join("probe"), "x").is_ok();
    if !is_root {
        let d = t.app.deliver().await.unwrap();
        assert_eq!((d.sent, d.retrying), (0, 7));
        assert_eq!(t.app.deliver().await.unwrap().sent, 0, "not due yet");
    } else {
        std::fs::remove_file(t.outbox().join("probe")).unwrap();
    }
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(t.outbox(), perms).unwrap();
    // Hours later, the retries go out, once each.
    let later = std::sync::Arc::new(cierre::clock::FixedClock(
        t.app.clock.now() + chrono::Duration::hours(7),
    ));
    let app = cierre::app::App {
        settings: t.app.settings.clone(),
        store: t.app.store.clone(),
        clock: later,
    };
    assert_eq!(app.deliver().await.unwrap().sent, 7);
    assert_eq!(t.emails().len(), 7);
    assert_eq!(app.deliver().await.unwrap().sent, 0);
}

#[tokio::test]
async fn over_2026_a_weekly_finding_is_in_exactly_one_digest_of_each_week_holidays_included() {
    use chrono::{Datelike, Days};
    let mut t =
        crate::helpers::spawn_app_with(&crate::helpers::sample_contracts(), "2026-01-05", "").await;
    // SENA and ICBF keep the year's 250 digest runs quick.
    t.app.settings.source.entities = vec!["899999034".into(), "899999239".into()];
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(crate::helpers::date("2026-01-05"))).await.unwrap();
    let settings = &t.app.settings;
    let cal = &settings.calendar;
    let weekly: Vec<&str> = settings
        .levels
        .iter()
        .filter(|l| matches!(l.cadence, cierre::config::Cadence::Weekly(_)))
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(weekly, ["aviso"]);
    // Per business day: (recipient, contract, kind) of the weekly findings in its digests.
    let mut monday = crate::helpers::date("2025-12-29");
    let (mut weeks_checked, mut holiday_mondays, mut checked_findings) = (0, 0, 0);
    while monday.year() <= 2026 {
        let days: Vec<chrono::NaiveDate> =
            (0..7).map(|i| monday + Days::new(i)).filter(|d| cal.is_business_day(*d)).collect();
        if !cal.is_business_day(monday) && !days.is_empty() {
            holiday_mondays += 1;
        }
        // The days of the week each finding was in a digest at the weekly level.
        let mut sent: std::collections::HashMap<
            (String, String),
            std::collections::BTreeSet<chrono::NaiveDate>,
        > = Default::default();
        // Every row in the body, to see them all.
        let mut settings = settings.clone();
        settings.email.digest.max_rows = 1000;
        let settings = &settings;
        for day in &days {
            let mut digests =
                cierre::notify::Digests::collect(&t.app.store, settings, *day, None).await.unwrap();
            let env =
                cierre::config::templates::environment(&settings.email.templates_dir).unwrap();
            let build = cierre::notify::Build {
                attachment: cierre::config::AttachmentFormat { xlsx: false, csv: false },
                limit_size: false,
            };
            while let Some(b) = digests.next(&t.app.store, settings, &env, build).await.unwrap() {
                let d = b.digest;
                assert!(
                    d.total_findings <= settings.email.digest.max_rows as u64,
                    "all rows shown"
                );
                for r in d.rows.iter().filter(|r| weekly.contains(&r.level.as_str())) {
                    sent.entry((r.contract_id.clone(), r.kind.clone())).or_default().insert(*day);
                }
            }
        }
        // Never on two days of one week…
        assert!(sent.values().all(|d| d.len() == 1), "week of {monday}: {sent:?}");
        // …and every finding at the weekly level on each business day of the week is sent on
        // one of them, whether or not the week's Monday is a holiday.
        let open = t.app.store.open_findings_sorted(None, u32::MAX).await.unwrap();
        for stored in &open {
            let weekly_all_week = days.iter().all(|day| {
                let mut f = stored.finding.clone();
                f.count_days_from(cal, *day);
                weekly.contains(&f.level.as_str())
            });
            let key =
                (stored.finding.contract_id.clone(), stored.finding.kind.as_str().to_string());
            if weekly_all_week && !days.is_empty() {
                assert!(sent.contains_key(&key), "week of {monday}: {key:?} was never sent");
                checked_findings += 1;
            }
        }
        if !days.is_empty() {
            weeks_checked += 1;
        }
        monday = monday + Days::new(7);
    }
    assert!(weeks_checked >= 52);
    assert!(holiday_mondays >= 10, "2026 has {holiday_mondays} holiday Mondays");
    assert!(checked_findings > 0);
}

#[tokio::test]
async fn a_sender_whose_lease_ran_out_changes_nothing_once_another_holds_the_item() {
    let t = spawn_app().await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    let store = &t.app.store;
    let now = t.app.clock.now();
    let lease = chrono::Duration::seconds(5);
    // A claims the first digest; its lease runs out while it is (say) still sending.
    let a = store.claim_due(now, now + lease, 1, "a:1", "").await.unwrap().remove(0);
    let later = now + chrono::Duration::seconds(6);
    assert!(!store.renew_claim(a.id, &a.claim(), later, later + lease).await.unwrap());
    // B takes it over under a claim of its own.
    let b = store.claim_due(later, later + lease, 1, "b:2", "").await.unwrap().remove(0);
    assert_eq!(b.id, a.id);
    assert_ne!(b.claim(), a.claim());
    // A's late results change nothing: not failed back to pending, not released, not sent.
    assert!(!store.mark_failed(a.id, &a.claim(), "timeout", Some(later), later).await.unwrap());
    assert!(!store.release(a.id, &a.claim(), later).await.unwrap());
    assert!(!store.mark_sent(a.id, &a.claim(), later).await.unwrap());
    assert!(!store.renew_claim(a.id, &a.claim(), later, later + lease).await.unwrap());
    // B's claim holds: renewed, then sent; A's failure after that cannot undo it.
    assert!(store.renew_claim(b.id, &b.claim(), later, later + lease).await.unwrap());
    assert!(store.mark_sent(b.id, &b.claim(), later).await.unwrap());
    assert!(!store.mark_failed(a.id, &a.claim(), "late", None, later).await.unwrap());
    let item = store
        .outbox_items(&cierre::store::OutboxPage::all())
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == a.id)
        .unwrap();
    assert_eq!((item.status.as_str(), item.attempts), ("sent", 2));
    // Claimed again later, it is not handed out: sent is final.
    let much_later = later + chrono::Duration::hours(1);
    let again = store.claim_due(much_later, much_later + lease, 100, "c:3", "").await.unwrap();
    assert!(again.iter().all(|i| i.id != a.id));
}

/// The (contract, kind, stage) → level of the rows of a workbook.
fn sheet_rows(
    e: &crate::helpers::Email,
) -> std::collections::HashMap<(String, String, String), String> {
    let sheet = Sheet::read(&e.attachments[0].1);
    let ids = sheet.column("ID del contrato");
    let kinds = sheet.column("Hallazgo");
    let stages = sheet.column("Etapa");
    let levels = sheet.column("Nivel");
    ids.into_iter()
        .zip(kinds)
        .zip(stages)
        .zip(levels)
        .map(|(((id, k), s), l)| ((id, k, s), l))
        .collect()
}

#[tokio::test]
async fn a_digest_counts_what_is_new_escalated_and_resolved_since_the_recipients_previous_one() {
    use cierre::domain::spanish::{kind_label, level_label};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    std::fs::copy(crate::helpers::sample_contracts(), &file).unwrap();
    let t = spawn_app_with(&file, "2026-03-02", "").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    t.app.deliver().await.unwrap();
    let fallback = |emails: &[crate::helpers::Email], day: &str| {
        emails
            .iter()
            .find(|e| e.to == "central@example.gov.co" && e.message_id.contains(day))
            .unwrap()
            .clone()
    };
    let first = fallback(&t.emails(), "2026-02-16");
    assert!(first.text.contains("Este es su primer resumen."));
    let before = sheet_rows(&first);
    let key = |f: &cierre::domain::Finding| {
        (f.contract_id.clone(), kind_label(f.kind).to_string(), f.stage_str().to_string())
    };
    let open_before: std::collections::HashMap<_, _> =
        t.findings_on(date("2026-02-16")).await.iter().map(|f| (key(f), f.level.clone())).collect();

    // Two weeks on, a few of the fallback's contracts are closed in SECOP II.
    let mut closed = 0;
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["id_contrato"].as_str().unwrap_or("").to_string();
            let closable = |(c, k, _): &(String, String, String)| {
                *c == id && k == "Expedientes que deben cerrarse"
            };
            if closed < 8 && before.keys().any(closable) {
                v["estado_contrato"] = "Cerrado".into();
                closed += 1;
            }
            v.to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-03-02"))).await.unwrap();
    let open_after: std::collections::HashSet<_> =
        t.findings_on(date("2026-03-02")).await.iter().map(key).collect();
    t.app.notify(Some(date("2026-03-02")), false).await.unwrap();
    t.app.deliver().await.unwrap();
    let second = fallback(&t.emails(), "2026-03-02");
    let after = sheet_rows(&second);

    let rank =
        |level: &str| t.app.settings.levels.iter().position(|l| level_label(&l.name) == level);
    let new = after.keys().filter(|k| !open_before.contains_key(*k)).count();
    let escalated = after
        .iter()
        .filter(|(k, level)| {
            open_before.get(*k).is_some_and(|was| rank(level) < rank(&level_label(was)))
        })
        .count();
    let resolved = before.keys().filter(|k| !open_after.contains(*k)).count();
    assert!(resolved >= closed, "{resolved} resolved, {closed} closed");
    assert!(new > 0 && escalated > 0, "{new} new, {escalated} escalated");
    let line = format!(
        "Desde el resumen anterior (16 de febrero de 2026): {new} nuevo(s), {escalated} \
         escalado(s), {resolved} resuelto(s)."
    );
    assert!(second.text.contains(&line), "{line}\n{}", second.text);
}

/// The sample with `extra` configuration, its digests of 2026-02-16 delivered to the outbox
/// folder.
async fn sample_delivered(extra: &str) -> crate::helpers::TestApp {
    let t = spawn_app_with(&crate::helpers::sample_contracts(), "2026-02-16", extra).await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    t.app.deliver().await.unwrap();
    t
}

#[tokio::test]
async fn a_digest_over_the_size_limit_attaches_the_most_urgent_rows_and_says_how_to_get_all() {
    let t = sample_delivered("max_message_bytes = 100000\n").await;
    for path in std::fs::read_dir(t.outbox()).unwrap() {
        let size = std::fs::metadata(path.unwrap().path()).unwrap().len();
        assert!(size <= 100_000, "{size}");
    }
    let emails = t.emails();
    let e = emails.iter().find(|e| e.to == "central@example.gov.co").unwrap();
    let sheet = Sheet::read(&e.attachments[0].1);
    let total: usize =
        e.text.split("; ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let note = sheet.rows.last().unwrap()[0].to_string();
    let attached = sheet.rows.len() - 2;
    assert!(attached > 30 && attached < total, "{attached} of {total}");
    assert!(note.contains(&format!("los {attached} hallazgos más urgentes de {total}")), "{note}");
    assert!(
        note.contains("cierre digest --to central@example.gov.co --as-of 2026-02-16 --format xlsx")
    );
    assert!(e.text.contains(&format!("con los {attached} hallazgos más urgentes")));
    // The preview of the workbook holds them all.
    let whole = t
        .app
        .digest(
            "central@example.gov.co",
            Some(date("2026-02-16")),
            Some(cierre::config::AttachmentFormat { xlsx: true, csv: false }),
        )
        .await
        .unwrap()
        .unwrap();
    let all = Sheet::read(whole.files.xlsx.as_deref().unwrap());
    assert_eq!(all.rows.len() - 1, total);
}

#[tokio::test]
async fn a_csv_attachment_uses_the_configured_separator_and_iso_dates() {
    let t = sample_delivered("[email.digest]\nattachment = \"csv\"\n").await;
    let emails = t.emails();
    let e = emails.iter().find(|e| e.to == "jefa@sena.example").unwrap();
    assert_eq!(e.attachments.len(), 1);
    let (name, csv) = &e.attachments[0];
    assert_eq!(name, "hallazgos-secop-2026-02-16.csv");
    let text = String::from_utf8(csv.clone()).unwrap();
    let text = text.strip_prefix('\u{feff}').expect("a BOM for Excel");
    assert!(text.contains("\r\n"));
    let mut r = csv::ReaderBuilder::new().delimiter(b';').from_reader(text.as_bytes());
    let headers = r.headers().unwrap().clone();
    assert_eq!(headers.len(), 18, "{headers:?}");
    let plazo = headers.iter().position(|h| h == "plazo").unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert!(rows.len() > 30);
    for row in &rows {
        assert_eq!(row.len(), 18);
        assert!(chrono::NaiveDate::parse_from_str(&row[plazo], "%Y-%m-%d").is_ok(), "{:?}", row);
    }
}

#[tokio::test]
async fn a_body_that_alone_fills_the_size_limit_goes_out_with_an_empty_workbook_that_says_so() {
    // Every row in the body (max_rows 1000): the fallback's body alone is over 100 KB.
    let t = sample_delivered("max_message_bytes = 100000\n[email.digest]\nmax_rows = 1000\n").await;
    let report = t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let emails = t.emails();
    let e = emails.iter().find(|e| e.to == "central@example.gov.co").unwrap();
    assert!(
        e.text.contains(", sin filas: el tamaño máximo del correo no lo permite"),
        "{}",
        e.text
    );
    let sheet = Sheet::read(&e.attachments[0].1);
    assert_eq!(sheet.rows.len(), 2, "the header and the note");
    assert!(sheet.rows[1][0].to_string().contains("los 0 hallazgos más urgentes"));
    // Every recipient still got their digest, however many rows it had.
    assert_eq!(emails.len(), 7);
}
