//! Silences: matchers keep exactly the findings they match out of the digests of the days
//! they are in force, counted as not shown; they end on time or when expired, and are kept.

use cierre::domain::Kind;
use cierre::domain::silence::{FieldMatcher, NewSilence, SilenceMatchers};
use cierre::store::prelude::*;

use crate::helpers::{Sheet, TestApp, cierre, date, spawn_app_with};

/// The rows (contract, kind label) of `to`'s digest of `day`, and its text.
fn digest_of(t: &TestApp, to: &str, day: &str) -> (Vec<(String, String)>, String) {
    let e = t
        .emails()
        .into_iter()
        .find(|e| e.to == to && e.message_id.contains(day))
        .unwrap_or_else(|| panic!("no digest for {to} on {day}"));
    let sheet = Sheet::read(&e.attachments[0].1);
    let rows = sheet.column("ID del contrato").into_iter().zip(sheet.column("Hallazgo")).collect();
    (rows, e.text)
}

#[tokio::test]
async fn a_silence_hides_exactly_what_it_matches_while_in_force_and_is_counted() {
    let t = spawn_app_with(&crate::helpers::sample_contracts(), "2026-02-16", "").await;
    t.app.sync().await.unwrap();
    let now = t.app.clock.now();
    // SENA's closable findings, Monday 16 and Tuesday 17 February.
    let sena = NewSilence {
        matchers: SilenceMatchers {
            kinds: vec![Kind::Closable],
            fields: vec![FieldMatcher {
                field: "nit_entidad".into(),
                value: "899999034".into(),
                regex: false,
            }],
            ..Default::default()
        },
        starts_on: date("2026-02-16"),
        ends_on: date("2026-02-18"),
        webhooks: false,
        author: "admin".into(),
        comment: "liquidation dispute".into(),
    };
    let id = t.app.store.add_silence(&sena, now).await.unwrap();
    // The fallback's state_outdated findings, expired on the 17th.
    let fallback = NewSilence {
        matchers: SilenceMatchers { kinds: vec![Kind::StateOutdated], ..Default::default() },
        comment: "known".into(),
        ends_on: date("2026-03-01"),
        ..sena.clone()
    };
    let other = t.app.store.add_silence(&fallback, now).await.unwrap();
    assert!(t.app.store.expire_silence(other, date("2026-02-17"), now).await.unwrap());
    assert!(!t.app.store.expire_silence(other, date("2026-02-17"), now).await.unwrap());

    let closable = "Expedientes que deben cerrarse";
    let outdated = "Estado desactualizado en SECOP II";
    for day in ["2026-02-16", "2026-02-17", "2026-02-18"] {
        t.app.evaluate(Some(date(day))).await.unwrap();
        t.app.notify(Some(date(day)), false).await.unwrap();
        t.app.deliver().await.unwrap();
        // What the silences match, from the store: SENA's closable findings at a level
        // mailed that day (daily levels only after Monday), and on the 16th, before the
        // other silence was expired, its state_outdated ones too.
        let mut expected = 0;
        let mut sena_has_other = false;
        for f in t.findings_on(date(day)).await.iter().filter(|f| f.level != "info") {
            let weekly = f.level == "aviso" && day != "2026-02-16";
            let c = t.app.store.contract(&f.contract_id).await.unwrap().unwrap();
            if c.entity_nit.as_deref() == Some("899999034") && !weekly {
                if f.kind == Kind::Closable
                    || (f.kind == Kind::StateOutdated && day == "2026-02-16")
                {
                    expected += 1;
                } else {
                    sena_has_other = true;
                }
            }
        }
        assert!(expected > 0 && sena_has_other, "{day}");
        let (rows, text) = digest_of(&t, "jefa@sena.example", day);
        let shown_closable = rows.iter().filter(|(_, k)| k == closable).count();
        let line = format!("No se muestran: {expected} silenciado(s) por un administrador.");
        if day == "2026-02-18" {
            assert_eq!(shown_closable, expected, "{day}: the silence ended");
            assert!(!text.contains("silenciado"), "{day}");
        } else {
            assert_eq!(shown_closable, 0, "{day}");
            assert!(text.contains(&line), "{day}: {line}\n{text}");
        }
        assert!(rows.iter().any(|(_, k)| k != closable), "{day}: other kinds still shown");
        // The expired silence hid the fallback's state_outdated findings on the 16th only.
        let (rows, _) = digest_of(&t, "central@example.gov.co", day);
        let outdated_shown = rows.iter().any(|(_, k)| k == outdated);
        assert_eq!(outdated_shown, day != "2026-02-16", "{day}");
    }
    // Both are kept: the listing of every silence shows them, the expired one with its day.
    let all = t.app.store.silences(date("2026-03-02"), true, IdPage::ALL).await.unwrap();
    assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), [id, other]);
    assert_eq!(all[1].silence.ends_on, date("2026-02-17"));
    assert!(all[1].expired_at.is_some() && all[0].expired_at.is_none());
    assert!(t.app.store.silences(date("2026-03-02"), false, IdPage::ALL).await.unwrap().is_empty());
}

#[test]
fn the_cli_adds_lists_and_expires_silences_and_refuses_a_bad_one_with_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("daemon.toml"), "[store]\nurl = \"sqlite://c.db\"\n").unwrap();
    let run = |args: &[&str]| cierre(dir.path(), args);
    let bad = run(&[
        "silence",
        "add",
        "--kind",
        "nope",
        "--level",
        "altísimo",
        "--match",
        "color=azul",
        "--match-regex",
        "nit_entidad=(",
        "--from",
        "2026-01-10",
        "--until",
        "2026-01-05",
        "--comment",
        " ",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    for reason in [
        "`nope` is not a finding kind",
        "level `altísimo` is not one of: vencido, urgente, aviso",
        "`color` is not a contract field",
        "is not a regular expression",
        "the comment is empty",
        "the end (2026-01-05) is not after the start (2026-01-10)",
    ] {
        assert!(err.contains(reason), "{reason}: {err}");
    }
    let add = run(&[
        "silence",
        "add",
        "--match",
        "nit_entidad=899999034",
        "--until",
        "2099-01-01",
        "--author",
        "ana",
        "--comment",
        "en liquidación judicial",
    ]);
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let id = String::from_utf8_lossy(&add.stdout).trim().to_string();
    let list = String::from_utf8_lossy(&run(&["silence", "list"]).stdout).into_owned();
    let line = list.lines().next().unwrap();
    assert!(line.starts_with(&format!("{id}\t")) && line.contains("\tactive\tana\t"), "{line}");
    assert!(line.contains("899999034") && line.ends_with("en liquidación judicial"), "{line}");
    assert!(run(&["silence", "expire", &id]).status.success());
    assert!(String::from_utf8_lossy(&run(&["silence", "list"]).stdout).is_empty());
    let all = String::from_utf8_lossy(&run(&["silence", "list", "--all"]).stdout).into_owned();
    assert!(all.contains("\texpired\t"), "{all}");
    assert_eq!(run(&["silence", "expire", &id]).status.code(), Some(2));
}

#[tokio::test]
async fn a_silence_that_says_so_holds_back_the_webhook_events_of_what_it_matches() {
    let mut t = spawn_app_with(&crate::helpers::sample_contracts(), "2026-02-16", "").await;
    t.app.settings.webhooks = vec![cierre::config::Webhook {
        url: "http://127.0.0.1:9/hook".parse().unwrap(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string().into(),
        events: vec!["finding.opened".into()],
    }];
    t.app.sync().await.unwrap();
    let now = t.app.clock.now();
    let silence = |webhooks: bool, nit: &str| NewSilence {
        matchers: SilenceMatchers {
            fields: vec![FieldMatcher {
                field: "nit_entidad".into(),
                value: nit.into(),
                regex: false,
            }],
            ..Default::default()
        },
        starts_on: date("2026-02-16"),
        ends_on: date("2026-02-17"),
        webhooks,
        author: "admin".into(),
        comment: "migración de expedientes".into(),
    };
    // SENA's events held back; ICBF's silenced in digests only.
    t.app.store.add_silence(&silence(true, "899999034"), now).await.unwrap();
    t.app.store.add_silence(&silence(false, "899999239"), now).await.unwrap();
    let eval = t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();

    let mut per_entity: std::collections::HashMap<String, usize> = Default::default();
    for f in t.findings_on(date("2026-02-16")).await {
        let c = t.app.store.contract(&f.contract_id).await.unwrap().unwrap();
        *per_entity.entry(c.entity_nit.unwrap_or_default()).or_default() += 1;
    }
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    let announced: Vec<String> = items
        .iter()
        .filter(|i| i.channel == "webhook")
        .map(|i| {
            let v: serde_json::Value = serde_json::from_str(&i.payload).unwrap();
            v["data"]["contract"]["nit_entidad"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(eval.muted, per_entity["899999034"]);
    assert!(!announced.iter().any(|n| n == "899999034"), "SENA's events held back");
    assert_eq!(announced.iter().filter(|n| *n == "899999239").count(), per_entity["899999239"]);
    assert_eq!(announced.len(), eval.total - eval.muted);
}
