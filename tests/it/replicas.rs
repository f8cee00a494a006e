//! Three `cierre run` replicas on one PostgreSQL database, schedules firing every few
//! seconds, a real SMTP server: each slot runs once, each digest arrives once, and the
//! items of a replica killed with SIGKILL mid-delivery are delivered by another after the
//! lease.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cierre::store::PgStore;
use cierre::store::prelude::*;

use crate::daemon::Process;
use crate::helpers::{config_text, sample_contracts};
use crate::smtp::{SmtpServer, free_port};

#[test]
fn three_replicas_run_each_slot_once_and_deliver_each_digest_once_despite_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let smtp_port = free_port();
    let smtp = SmtpServer::start(smtp_port, &["--delay-ms", "700"]);
    let db = crate::helpers::fresh_postgres_url();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let url_line = regex::Regex::new(r#"(?m)^url = "[^"]*"$"#).unwrap();
    let mut replicas = Vec::new();
    for i in 0..3 {
        let rdir = dir.path().join(format!("r{i}"));
        std::fs::create_dir(&rdir).unwrap();
        let port = free_port();
        let base = config_text(
            &rdir,
            &sample_contracts(),
            &format!(
                "[email.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\ntimeout_secs = 10\n\n\
             [delivery]\nlease_secs = 15\nconcurrency = 1\n\n\
             [calendar]\nworking_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"t\"\n\n\
             [schedule]\nsync = \"*/4 * * * * *\"\nnotify = \"*/3 * * * * *\"\ndeliver = \"*/2 * * * * *\"\nresync = \"0 0 0 1 1 *\"\nshutdown_grace_secs = 2\n"
            ),
        );
        // Every replica on the same database.
        let text = url_line.replace(&base, format!("url = \"{db}\"").as_str()).into_owned();
        let config = rdir.join("daemon.toml");
        std::fs::write(&config, text).unwrap();
        replicas.push(Process::spawn(&rdir, config, port));
    }
    // A replica claims a digest just before it sends it, and renews the claim while the relay
    // takes its time; a SIGKILLed holder's digest waits for the lease (15 s) to run out.
    let store = rt.block_on(PgStore::open(&db)).unwrap();

    // Wait for the second message to be in transit: the first is stored and recorded.
    let started = Instant::now();
    let receiving = || {
        std::fs::read_dir(smtp.out.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "receiving"))
            .count()
    };
    while receiving() < 2 {
        assert!(started.elapsed() < Duration::from_secs(90), "no delivery started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kill a replica mid-delivery: one holding an item whose message the relay has not
    // stored yet (it holds each for 700 ms). An item whose message was stored but not yet
    // recorded as sent is the one duplicate the design allows, so it is not the victim.
    let (items, holder) = loop {
        let items = rt.block_on(store.outbox_items(&cierre::store::OutboxPage::all())).unwrap();
        // Stored messages, by their To header (the .rcpt file comes a moment later).
        let stored: Vec<String> = std::fs::read_dir(smtp.out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|m| {
                let to = m.lines().find(|l| l.starts_with("To: "))?;
                Some(to.rsplit(['<', ' ']).next()?.trim_end_matches('>').to_string())
            })
            .collect();
        let holder = items
            .iter()
            .find(|i| i.status == "sending" && !stored.contains(&i.target))
            .and_then(|i| i.claimed_by.clone());
        if let Some(holder) = holder {
            break (items, holder);
        }
        assert!(started.elapsed() < Duration::from_secs(90), "no item in transit");
        std::thread::sleep(Duration::from_millis(10));
    };
    let pid: u32 = holder.rsplit(':').next().unwrap().parse().unwrap();
    let victim = replicas
        .iter()
        .position(|p| p.child.id() == pid)
        .expect("the holder is one of the replicas");
    let mut killed = replicas.remove(victim);
    killed.child.kill().unwrap(); // SIGKILL
    killed.child.wait().unwrap();
    let claimed_by_victim = items
        .iter()
        .filter(|i| i.claimed_by.as_deref() == Some(holder.as_str()) && i.status == "sending")
        .count();
    assert!(claimed_by_victim >= 1, "the victim held the item it was sending");

    // Another replica takes them over after the lease and delivers everything.
    let started = Instant::now();
    loop {
        let items = rt.block_on(store.outbox_items(&cierre::store::OutboxPage::all())).unwrap();
        if !items.is_empty() && items.iter().all(|i| i.status == "sent") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not all delivered: {:?}",
            items.iter().map(|i| (&i.target, &i.status)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let items = rt.block_on(store.outbox_items(&cierre::store::OutboxPage::all())).unwrap();
    assert_eq!(items.len(), 7, "three people per routed office, and the fallback");
    assert!(
        items.iter().any(|i| i.claimed_by.as_deref() != Some(holder.as_str())),
        "taken over by another replica"
    );

    // Each digest arrived exactly once.
    let received = smtp.received();
    let mut by_recipient: HashMap<String, usize> = HashMap::new();
    for (rcpt, _, _) in &received {
        *by_recipient.entry(rcpt.clone()).or_default() += 1;
    }
    assert_eq!(by_recipient.len(), 7, "{by_recipient:?}");
    assert!(by_recipient.values().all(|n| *n == 1), "{by_recipient:?}");

    // Each slot ran once, and none was skipped while replicas were up.
    std::thread::sleep(Duration::from_secs(2));
    let runs = rt.block_on(store.runs(None, 1000)).unwrap();
    let mut deliver: Vec<DateTime<Utc>> =
        runs.iter().filter(|r| r.job == "deliver").map(|r| r.scheduled_for).collect();
    deliver.sort();
    let n = deliver.len();
    deliver.dedup();
    assert_eq!(deliver.len(), n, "a slot ran twice");
    assert!(n >= 5, "{n}");
    for pair in deliver.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_seconds(),
            2,
            "a slot was missed between {} and {}",
            pair[0],
            pair[1]
        );
    }
    for p in replicas {
        assert_eq!(p.terminate().0, Some(0));
    }
}
