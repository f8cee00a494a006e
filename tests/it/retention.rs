//! Retention: the purge job moves finished outbox items past their age to the delivery
//! history (whose keys still keep them from being queued again), trims the run history to
//! its age but for each job's latest run, and forgets the history past its own age.

use std::sync::Arc;

use chrono::Duration;
use cierre::app::App;
use cierre::clock::FixedClock;
use cierre::store::prelude::*;
use cierre::store::{JobRun, OutboxPage};

use crate::helpers::{TestStore, cierre, date, spawn_app_with};

fn at(app: &App<TestStore>, day: &str) -> App<TestStore> {
    App {
        settings: app.settings.clone(),
        store: app.store.clone(),
        clock: Arc::new(FixedClock::at_date(date(day))),
    }
}

fn run(job: &str, day: &str) -> JobRun {
    crate::helpers::finished_run(job, FixedClock::at_date(date(day)).0)
}

#[tokio::test]
async fn finished_items_past_their_age_move_to_the_delivery_history_and_are_never_queued_again() {
    let t = spawn_app_with(
        &crate::helpers::sample_contracts(),
        "2026-02-16",
        "[retention]\noutbox_days = 90\nruns_days = 30\nhistory_days = 365\n",
    )
    .await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    t.app.notify(Some(date("2026-02-16")), false).await.unwrap();
    assert_eq!(t.app.deliver().await.unwrap().sent, 7);
    let sent_ids: Vec<String> =
        t.emails().into_iter().map(|e| e.message_id.trim_matches(['<', '>']).to_string()).collect();
    // The next day's digests: one dead-lettered, the others still pending.
    let next = at(&t.app, "2026-02-17");
    let queued = next.notify(Some(date("2026-02-17")), false).await.unwrap().enqueued;
    assert!(queued > 1, "{queued}");
    let now = next.clock.now();
    let claimed =
        t.app.store.claim_due(now, now + Duration::minutes(5), 1, "test", "").await.unwrap();
    let claim = claimed[0].claim();
    assert!(t.app.store.mark_failed(claimed[0].id, &claim, "550 no", None, now).await.unwrap());

    // Not yet 90 days after the sends: nothing moves.
    assert_eq!(at(&t.app, "2026-05-16").purge().await.unwrap().outbox, 0);
    // 90 days and a day after the sends, 90 days after the dead letter: the sent items go.
    let p = at(&t.app, "2026-05-18").purge().await.unwrap();
    assert_eq!(p.outbox, 7);
    let p = at(&t.app, "2026-05-19").purge().await.unwrap();
    assert_eq!(p.outbox, 1, "the dead letter, a day later");
    let left = t.app.store.outbox_items(&OutboxPage::all()).await.unwrap();
    assert_eq!(left.len() as u64, queued - 1);
    assert!(left.iter().all(|i| i.status == "pending"), "pending items are never purged");

    // The history says what went to whom, with which Message-ID, without the payload.
    let history = t.app.store.deliveries(&OutboxPage::all()).await.unwrap();
    assert_eq!(history.len(), 8);
    let sent: Vec<_> = history.iter().filter(|d| d.status == "sent").collect();
    let mut history_ids: Vec<String> = sent
        .iter()
        .map(|d| d.message_id.clone().unwrap().trim_matches(['<', '>']).to_string())
        .collect();
    let mut sent_ids = sent_ids;
    history_ids.sort();
    sent_ids.sort();
    assert_eq!(history_ids, sent_ids);
    assert!(sent.iter().all(|d| d.finished_at == FixedClock::at_date(date("2026-02-16")).0));
    let dead = history.iter().find(|d| d.status == "dead").unwrap();
    assert_eq!((dead.last_error.as_deref(), dead.attempts), (Some("550 no"), 1));
    let page = OutboxPage { target: Some("jefa@sena.example".into()), ..OutboxPage::all() };
    assert_eq!(t.app.store.deliveries(&page).await.unwrap().len(), 1);

    // The same slot's digests again: their keys are in the history, nothing is queued.
    let again = at(&t.app, "2026-05-19").notify(Some(date("2026-02-16")), false).await.unwrap();
    assert_eq!((again.enqueued, again.already_queued), (0, 7));

    // The command line shows the history, newest first.
    let config = t.dir.path().join("daemon.toml");
    let out = cierre(t.dir.path(), &["--config", config.to_str().unwrap(), "outbox", "history"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 8, "{text}");
    assert!(text.lines().next().unwrap().contains("\tdead\temail\t"), "{text}");
    for id in &history_ids {
        assert!(text.contains(id.as_str()), "{id} in\n{text}");
    }

    // A year after: the history of those sends is forgotten too.
    assert_eq!(at(&t.app, "2027-02-17").purge().await.unwrap().history, 7);
    assert_eq!(t.app.store.deliveries(&OutboxPage::all()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn old_runs_are_purged_but_the_latest_of_each_job() {
    let t = spawn_app_with(&crate::helpers::sample_contracts(), "2026-02-16", "").await;
    for (job, day) in [
        ("deliver", "2026-01-01"),
        ("deliver", "2026-01-02"),
        ("deliver", "2026-05-01"),
        ("sync", "2026-01-01"),
    ] {
        assert!(t.app.store.record_run(&run(job, day)).await.unwrap());
    }
    // Ninety days (the default) before 2026-05-02 is 2026-02-01.
    assert_eq!(at(&t.app, "2026-05-02").purge().await.unwrap().runs, 2);
    let mut left: Vec<(String, String)> = t
        .app
        .store
        .runs(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.job, r.started_at.date_naive().to_string()))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [("deliver".into(), "2026-05-01".into()), ("sync".into(), "2026-01-01".into())],
        "the latest of each job stays, however old"
    );
}

#[tokio::test]
async fn old_digest_slots_are_purged_but_each_recipients_latest() {
    let t = spawn_app_with(&crate::helpers::sample_contracts(), "2026-02-16", "").await;
    let now = t.app.clock.now();
    for (to, day) in [
        ("a@example.gov.co", "2026-01-02"),
        ("a@example.gov.co", "2026-01-05"),
        ("a@example.gov.co", "2026-05-04"),
        ("b@example.gov.co", "2026-01-05"),
    ] {
        t.app.store.record_digest(to, date(day), 3, now).await.unwrap();
        // Recorded twice (a re-run of the slot): one row.
        t.app.store.record_digest(to, date(day), 3, now).await.unwrap();
    }
    // Ninety days (outbox_days) before 2026-05-10 is 2026-02-09.
    assert_eq!(at(&t.app, "2026-05-10").purge().await.unwrap().digests, 2);
    let mut left = t.app.store.previous_digests(date("2026-12-31")).await.unwrap();
    left.sort();
    assert_eq!(
        left,
        [
            ("a@example.gov.co".into(), date("2026-05-04")),
            ("b@example.gov.co".into(), date("2026-01-05"))
        ]
    );
    // What a digest of 2026-05-04 counts from: b's only slot, and a's before that day, gone.
    let mut before = t.app.store.previous_digests(date("2026-05-04")).await.unwrap();
    before.sort();
    assert_eq!(before, [("b@example.gov.co".into(), date("2026-01-05"))]);
}
