//! Sync into a real SQLite file: change detection, vanished rows, quarantine, scope, and a
//! pass interrupted mid-file that resumes after its last committed page.

use std::path::Path;

use crate::helpers::{sample_contracts, scalar, spawn_app_with};
use cierre::domain::Dataset;
use cierre::store::prelude::*;

fn sample_lines() -> Vec<String> {
    std::fs::read_to_string(sample_contracts()).unwrap().lines().map(str::to_string).collect()
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn a_second_sync_of_unchanged_data_changes_nothing_and_a_change_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    let mut lines = sample_lines();
    write(&file, &lines);
    let t = spawn_app_with(&file, "2026-02-16", "").await;

    let first = t.app.sync().await.unwrap();
    let c = &first.datasets[0].counts;
    assert_eq!((c.read, c.new, c.changed, c.unchanged, c.rejected), (1000, 1000, 0, 0, 0));
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, false).await.unwrap(), 1000);

    let second = t.app.sync().await.unwrap();
    let c = &second.datasets[0].counts;
    assert_eq!((c.new, c.changed, c.unchanged, c.vanished), (0, 0, 1000, 0));
    // Nothing was rewritten: every row is still the version the first pass stored, and the
    // keys the pass found unchanged are gone with it.
    let url = &t.app.settings.store_url;
    assert_eq!(scalar(url, "SELECT COUNT(*) FROM contracts WHERE seen_pass <> 1").await, 0);
    assert_eq!(scalar(url, "SELECT COUNT(*) FROM sync_seen").await, 0);

    // One contract gets closed at the source; another disappears from it.
    let mut v: serde_json::Value = serde_json::from_str(&lines[10]).unwrap();
    let changed_id = v["id_contrato"].as_str().unwrap().to_string();
    v["estado_contrato"] = "Cerrado".into();
    lines[10] = v.to_string();
    let gone: serde_json::Value = serde_json::from_str(&lines.remove(20)).unwrap();
    write(&file, &lines);
    let third = t.app.sync().await.unwrap();
    let c = &third.datasets[0].counts;
    assert_eq!((c.new, c.changed, c.unchanged, c.vanished), (0, 1, 998, 1));
    assert_eq!(scalar(url, "SELECT COUNT(*) FROM contracts WHERE seen_pass = 3").await, 1);
    let stored = t.app.store.contract(&changed_id).await.unwrap().unwrap();
    assert_eq!(stored.state.as_deref(), Some("Cerrado"));
    // Vanished rows are marked, never deleted.
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, false).await.unwrap(), 999);
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 1000);

    let fourth = t.app.sync().await.unwrap();
    let c = &fourth.datasets[0].counts;
    assert_eq!((c.new, c.changed, c.vanished), (0, 0, 0), "the change is reported once");

    // The vanished row coming back is a change, and it is live again.
    lines.push(gone.to_string());
    write(&file, &lines);
    let fifth = t.app.sync().await.unwrap();
    assert_eq!(fifth.datasets[0].counts.changed, 1);
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, false).await.unwrap(), 1000);
}

#[tokio::test]
async fn malformed_rows_are_quarantined_with_reason_and_raw_text_and_the_rest_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    let mut lines: Vec<String> = sample_lines().into_iter().take(50).collect();
    lines.insert(7, "{\"id_contrato\": \"CO1.PCCNTR.X\", \"fecha_de_firma\": \"ayer\"}".into());
    lines.insert(30, "{esto no es json".into());
    lines.insert(40, "{\"estado_contrato\": \"Cerrado\"}".into());
    write(&file, &lines);
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.new, c.rejected), (53, 50, 3));
    let q = t.app.store.quarantined(Dataset::Contracts).await.unwrap();
    assert_eq!(q.len(), 3);
    assert_eq!(q[0].locator, "line 8");
    assert!(q[0].reason.contains("fecha_de_firma: `ayer` is not a date"), "{}", q[0].reason);
    assert!(q[0].raw.contains("CO1.PCCNTR.X"));
    assert_eq!(q[1].locator, "line 31");
    assert!(q[1].reason.starts_with("not a JSON object"));
    assert_eq!(q[2].locator, "line 41");
    assert!(q[2].reason.contains("id_contrato is missing"));
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, false).await.unwrap(), 50);
}

#[tokio::test]
async fn rows_outside_the_configured_entities_are_skipped() {
    let t = spawn_app_with(&sample_contracts(), "2026-02-16", "").await;
    let mut settings = t.app.settings.clone();
    settings.source.entities = vec!["899999034".into(), "899999239".into()];
    let app = cierre::app::App { settings, store: t.app.store.clone(), clock: t.app.clock.clone() };
    let r = app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!(c.new, 68 + 25);
    assert_eq!(c.skipped, 1000 - 93);
}

#[tokio::test]
async fn a_pass_ended_or_replaced_meanwhile_marks_no_row_vanished() {
    use cierre::sync::PassEnd::{self, NotOpen};
    let all = cierre::sync::Vouches::Rows { entities: vec![] };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    write(&file, &sample_lines());
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    t.app.sync().await.unwrap();
    let second = t.app.sync().await.unwrap();
    assert_eq!(second.datasets[0].counts.unchanged, 1000);
    let store = &t.app.store;
    let at = chrono::Utc::now();

    // A second sync that had resumed pass 2 ends after the first did: its keys are gone,
    // and ending the pass again would take every unchanged row for vanished.
    assert_eq!(store.finish_pass(Dataset::Contracts, 2, &all, None, at).await.unwrap(), NotOpen);
    assert_eq!(store.count_rows(Dataset::Contracts, false).await.unwrap(), 1000);

    // A pass replaced by a newer one (begun meanwhile) ends nothing either; the newer one,
    // having seen nothing, would: held by the guard, then confirmed.
    let third = store.begin_pass(Dataset::Contracts, at, "f").await.unwrap();
    let end = store.finish_pass(Dataset::Contracts, third - 1, &all, None, at).await.unwrap();
    assert_eq!(end, NotOpen);
    assert_eq!(store.count_rows(Dataset::Contracts, false).await.unwrap(), 1000);
    let end = store.finish_pass(Dataset::Contracts, third, &all, Some(0.05), at).await.unwrap();
    assert_eq!(end, PassEnd::Held { would_vanish: 1000, live: 1000 });
    assert_eq!(store.count_rows(Dataset::Contracts, false).await.unwrap(), 1000);
    assert_eq!(
        store.sync_state(Dataset::Contracts).await.unwrap(),
        None,
        "the held pass is closed"
    );
    let fourth = store.begin_pass(Dataset::Contracts, at, "f").await.unwrap();
    let end = store.finish_pass(Dataset::Contracts, fourth, &all, None, at).await.unwrap();
    assert_eq!(end, PassEnd::Ended { vanished: 1000 });
}

#[tokio::test]
async fn an_interrupted_pass_over_an_unchanged_file_resumes_after_its_last_committed_page() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.json");
    let lines = sample_lines();
    std::fs::write(&file, format!("[{}]", lines.join(",\n"))).unwrap();
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    let url = t.app.settings.store_url.clone();
    // The store fails on the 601st record (page size 250): the pages committed before the
    // failing batch stay, with the cursor after them.
    let row: serde_json::Value = serde_json::from_str(&lines[600]).unwrap();
    crate::helpers::refuse_contract(&url, row["id_contrato"].as_str()).await;
    let err = t.app.sync().await.unwrap_err();
    assert!(format!("{err:#}").contains("injected failure"), "{err:#}");
    let stored = t.app.store.count_rows(Dataset::Contracts, true).await.unwrap();
    let state = t.app.store.sync_state(Dataset::Contracts).await.unwrap().unwrap();
    let cursor: u64 = state.cursor.as_deref().unwrap_or("0").parse().unwrap();
    assert_eq!(stored, cursor, "the cursor says what is stored");
    assert!(stored <= 500);

    // The file has not changed: the next sync reads only what follows the cursor.
    crate::helpers::refuse_contract(&url, None).await;
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.new, c.vanished), (1000 - cursor, 1000 - cursor, 0));
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, true).await.unwrap(), 1000);
    assert!(t.app.store.sync_state(Dataset::Contracts).await.unwrap().is_none(), "pass finished");

    // And a fresh pass over the same data finds every row unchanged.
    let again = t.app.sync().await.unwrap();
    assert_eq!(again.datasets[0].counts.unchanged, 1000);
}

#[tokio::test]
async fn a_pass_interrupted_over_a_file_that_then_changed_starts_over_and_ends_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.json");
    let lines = sample_lines();
    std::fs::write(&file, format!("[{}]", lines.join(",\n"))).unwrap();
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    t.app.sync().await.unwrap();

    // A download cut off after 600 records: two pages committed, the pass left open.
    std::fs::write(&file, format!("[{}, {{\"id_contrato\": \"CO1", lines[..600].join(",\n")))
        .unwrap();
    let err = t.app.sync().await.unwrap_err();
    assert!(format!("{err:#}").contains("not a valid JSON file"), "{err:#}");
    let state = t.app.store.sync_state(Dataset::Contracts).await.unwrap().unwrap();
    assert_eq!(state.cursor.as_deref(), Some("500"));

    // Then the source loses its first 40 records. Resuming by cursor would skip 500 rows of
    // the new file (and take 40 of them for gone) while keeping the 40 removed ones: the
    // interrupted pass is discarded instead and the new file read whole.
    std::fs::write(&file, format!("[{}]", lines[40..].join(",\n"))).unwrap();
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.unchanged, c.vanished), (960, 960, 40));
    let url = &t.app.settings.store_url;
    let live = scalar(url, "SELECT COUNT(*) FROM contracts WHERE vanished_at IS NULL").await;
    assert_eq!(live, 960);
    for line in &lines[..40] {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let sql = format!(
            "SELECT COUNT(*) FROM contracts WHERE vanished_at IS NOT NULL AND id_contrato = '{}'",
            row["id_contrato"].as_str().unwrap()
        );
        assert_eq!(scalar(url, &sql).await, 1, "{line}");
    }
}

#[tokio::test]
async fn documents_and_guarantees_sync_from_soda_json_deduplicated_by_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("documents.json");
    std::fs::write(
        &docs,
        r#"[
 {"id_documento": "1001", "n_mero_de_contrato": "CO1.PCCNTR.1841076", "proceso": "CO1.BDOS.1", "nombre_archivo": "ACTA DE INICIO.pdf", "extensi_n": ".pdf", "descripci_n": "Acta de inicio", "fecha_carga": "2020-03-02T10:00:00.000", "nit_entidad": "899999034"},
 {"id_documento": "1002", "n_mero_de_contrato": "CO1.PCCNTR.1841076", "nombre_archivo": "ESTUDIOS PREVIOS.pdf", "fecha_carga": "2020-02-20T08:00:00.000", "nit_entidad": "899999034"},
 {"id_documento": "1001", "proceso": "CO1.BDOS.1", "nombre_archivo": "ACTA DE INICIO.pdf", "fecha_carga": "2020-03-02T10:00:00.000", "nit_entidad": "899999034"}
]"#,
    )
    .unwrap();
    let guarantees = dir.path().join("guarantees.jsonl");
    std::fs::write(
        &guarantees,
        "{\"id_contrato\": \"CO1.PCCNTR.1841076\", \"numeropoliza\": \"45-44-101\", \"tipopoliza\": \"Cumplimiento\", \"subtipopoliza\": \"Calidad del servicio\", \"fechafinpoliza\": \"2021-05-24T00:00:00.000\", \"estado\": \"Aprobada\", \"valor\": \"4603167\"}\n{\"numeropoliza\": \"sin contrato\"}\n",
    )
    .unwrap();
    let t = spawn_app_with(&sample_contracts(), "2026-02-16", "").await;
    let mut settings = t.app.settings.clone();
    settings.source.documents_path = Some(docs);
    settings.source.guarantees_path = Some(guarantees);
    let app = cierre::app::App { settings, store: t.app.store.clone(), clock: t.app.clock.clone() };
    let r = app.sync().await.unwrap();
    let names: Vec<&str> = r.datasets.iter().map(|d| d.dataset).collect();
    assert_eq!(names, ["contracts", "documents", "guarantees"]);
    assert_eq!(r.datasets[1].counts.read, 3);
    assert_eq!(app.store.count_rows(Dataset::Documents, false).await.unwrap(), 2);
    assert_eq!(r.datasets[2].counts.new, 1);
    assert_eq!(r.datasets[2].counts.rejected, 1);
    assert_eq!(app.store.count_rows(Dataset::Guarantees, false).await.unwrap(), 1);
}

#[tokio::test]
async fn progress_is_reported_after_every_committed_write_and_at_the_end() {
    struct Recorder(std::sync::Mutex<Vec<(u64, u64, bool)>>);
    impl cierre::sync::Progress for Recorder {
        // The contracts only: the sample also comes with documents and guarantees.
        fn page(&self, d: Dataset, c: &cierre::sync::SyncCounts) {
            if d == Dataset::Contracts {
                self.0.lock().unwrap().push((c.pages, c.read, false));
            }
        }
        fn finished(&self, d: Dataset, c: &cierre::sync::SyncCounts) {
            if d == Dataset::Contracts {
                self.0.lock().unwrap().push((c.pages, c.read, true));
            }
        }
    }
    let t = spawn_app_with(&sample_contracts(), "2026-02-16", "").await;
    let recorder = Recorder(Default::default());
    t.app.sync_with(&recorder, t.app.sync_options()).await.unwrap();
    let seen = recorder.0.into_inner().unwrap();
    // Page size 250: four pages of the 1,000 rows and a last empty one. Pages already parsed
    // when the writer is free join its next transaction, so a report may cover several.
    let (end, writes) = seen.split_last().unwrap();
    assert_eq!(*end, (5, 1000, true));
    assert!(!writes.is_empty() && writes.iter().all(|(_, _, e)| !e));
    for w in writes.windows(2) {
        assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{writes:?}");
    }
    for (pages, read, _) in writes {
        assert_eq!(*read, (*pages).min(4) * 250, "{writes:?}");
    }
    assert_eq!(writes.last().map(|w| (w.0, w.1)), Some((5, 1000)));
}

#[tokio::test]
async fn a_failed_write_rolls_back_its_transaction_and_only_committed_pages_are_reported() {
    use cierre::source::record::parse_contract;
    use cierre::store::prelude::*;
    use cierre::sync::{Committed, PageRecords, PageWrite, SyncStore};

    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_store_url(dir.path());
    let store = crate::helpers::TestStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    // A real failure from the database: inserting the contract `BAD` aborts its statement.
    crate::helpers::refuse_contract(&url, Some("BAD")).await;
    let now = chrono::Utc::now();
    let pass = store.begin_pass(Dataset::Contracts, now, "test").await.unwrap();
    let run = store.start_sync_run(Dataset::Contracts, "test", "test:1", now).await.unwrap();
    let lines = sample_lines();
    let page = |n: usize, texts: Vec<String>| PageWrite {
        dataset: Dataset::Contracts,
        sync_run_id: run,
        records: PageRecords::Contracts(texts.iter().map(|t| parse_contract(t).unwrap()).collect()),
        rejected: vec![],
        pass,
        seen_at: now,
        cursor: n.to_string(),
    };
    let (pages_tx, pages_rx) = tokio::sync::mpsc::channel(8);
    let (committed_tx, mut committed_rx) = tokio::sync::mpsc::unbounded_channel();
    // Two pages already waiting when the writer starts.
    pages_tx.send(page(1, lines[..10].to_vec())).await.unwrap();
    pages_tx.send(page(2, lines[10..20].to_vec())).await.unwrap();
    let writer = tokio::spawn({
        let store = store.clone();
        async move { store.apply_pages(pages_rx, committed_tx).await }
    });
    let mut reports: Vec<Committed> = Vec::new();
    while reports.iter().map(|c| c.pages).sum::<u64>() < 2 {
        reports.push(committed_rx.recv().await.unwrap());
    }
    // Then a good page and one whose last row the database refuses, sent together: on
    // SQLite they share a transaction, and both are rolled back.
    let bad = lines[30].replacen(&parse_contract(&lines[30]).unwrap().value.id, "BAD", 1);
    pages_tx.send(page(3, lines[20..30].to_vec())).await.unwrap();
    pages_tx.send(page(4, vec![lines[31].clone(), bad])).await.unwrap();
    drop(pages_tx);
    let err = writer.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    while let Some(c) = committed_rx.recv().await {
        reports.push(c);
    }
    // Whatever the backend batched, what was reported is exactly what is stored.
    let pages: u64 = reports.iter().map(|c| c.pages).sum();
    let new: u64 = reports.iter().map(|c| c.counts.new).sum();
    assert_eq!(new, pages * 10);
    assert_eq!(store.count_rows(Dataset::Contracts, true).await.unwrap(), new);
    let state = store.sync_state(Dataset::Contracts).await.unwrap().unwrap();
    assert_eq!(state.cursor, Some(pages.to_string()));
    if url.starts_with("sqlite") {
        // The two waiting pages were one commit; the good page went down with the bad one.
        assert_eq!(reports, [Committed { pages: 2, counts: reports[0].counts }]);
        assert_eq!(new, 20);
    } else {
        assert_eq!(new, 30, "one transaction per page: page 3 stays");
    }

    // The writer is usable again: the next page is applied and reported.
    let (pages_tx, pages_rx) = tokio::sync::mpsc::channel(1);
    let (committed_tx, mut committed_rx) = tokio::sync::mpsc::unbounded_channel();
    pages_tx.send(page(5, lines[40..50].to_vec())).await.unwrap();
    drop(pages_tx);
    store.apply_pages(pages_rx, committed_tx).await.unwrap();
    assert_eq!(committed_rx.recv().await.map(|c| (c.pages, c.counts.new)), Some((1, 10)));
    assert_eq!(store.count_rows(Dataset::Contracts, true).await.unwrap(), new + 10);
    let state = store.sync_state(Dataset::Contracts).await.unwrap().unwrap();
    assert_eq!(state.cursor.as_deref(), Some("5"));
}
