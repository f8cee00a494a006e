//! Guards on what a sync may conclude: broken downloads (empty, an HTML page, cut short, a
//! CSV without a column the rules read, most of the scope missing) are held or refused and
//! cost no finding; an operator's confirmation lets a real drop through.

use cierre::config::Webhook;
use cierre::domain::Dataset;
use cierre::store::prelude::*;
use cierre::sync::{SyncOptions, SyncStore};

use crate::helpers::{TestApp, date, repo, sample_contracts, spawn_app_with};

const AS_OF: &str = "2026-02-16";

/// An app syncing `file`, with a webhook endpoint for sync events (never delivered here:
/// the outbox shows what was announced).
async fn app_on(file: &std::path::Path) -> TestApp {
    let mut t = spawn_app_with(file, AS_OF, "").await;
    t.app.settings.webhooks = vec![Webhook {
        url: "http://127.0.0.1:9/syncs".parse().unwrap(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string().into(),
        events: vec!["sync.failed".into(), "sync.completed".into()],
    }];
    t
}

/// Syncs and evaluates `file` into a fresh store; returns the app and its open findings.
async fn synced(file: &std::path::Path) -> (TestApp, usize) {
    let t = app_on(file).await;
    t.app.sync().await.unwrap();
    let eval = t.app.evaluate(Some(date(AS_OF))).await.unwrap();
    assert!(eval.total > 0);
    (t, eval.total)
}

async fn sync_failed_events(t: &TestApp) -> usize {
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    items.iter().filter(|i| i.payload.contains("\"sync.failed\"")).count()
}

async fn contracts_run(t: &TestApp) -> (String, String) {
    let runs = t.app.store.last_sync_runs().await.unwrap();
    let r = runs.into_iter().find(|r| r.dataset == "contracts").unwrap();
    (r.status, r.error.unwrap_or_default())
}

/// Replaces the export with `broken`, syncs, and checks that the sync fails saying `why`,
/// that nothing vanished or resolved, and that `sync.failed` was queued.
async fn assert_refused(t: &TestApp, file: &std::path::Path, broken: &[u8], why: &str) {
    let open = t.app.evaluate(Some(date(AS_OF))).await.unwrap().total;
    std::fs::write(file, broken).unwrap();
    let before = sync_failed_events(t).await;
    let err = format!("{:#}", t.app.sync().await.unwrap_err());
    assert!(err.contains(why), "expected `{why}` in: {err}");
    let (status, error) = contracts_run(t).await;
    assert!(status == "held" || status == "failed", "{status}");
    assert!(error.contains(why), "{error}");
    assert_eq!(sync_failed_events(t).await, before + 1, "sync.failed is announced");
    let live = t.app.store.count_rows(Dataset::Contracts, false).await.unwrap();
    let all = t.app.store.count_rows(Dataset::Contracts, true).await.unwrap();
    assert_eq!(live, all, "nothing vanished");
    let eval = t.app.evaluate(Some(date(AS_OF))).await.unwrap();
    assert_eq!((eval.resolved, eval.total), (0, open), "every finding stays open");
}

#[tokio::test]
async fn an_empty_export_is_held_until_the_drop_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    std::fs::copy(sample_contracts(), &file).unwrap();
    let (t, open) = synced(&file).await;
    assert_refused(&t, &file, b"", "the source returned no contracts rows at all").await;
    let (status, error) = contracts_run(&t).await;
    assert_eq!(status, "held");
    assert!(error.contains("--accept-vanishing"), "{error}");

    // The operator says the drop is real: every row vanishes, every finding resolves.
    let confirm = SyncOptions { accept_vanishing: true, ..t.app.sync_options() };
    let r = t.app.sync_with(&cierre::sync::LogProgress::default(), confirm).await.unwrap();
    assert_eq!(r.datasets[0].counts.vanished, 1000);
    assert_eq!(t.app.store.count_rows(Dataset::Contracts, false).await.unwrap(), 0);
    let eval = t.app.evaluate(Some(date(AS_OF))).await.unwrap();
    assert_eq!((eval.resolved, eval.total), (open, 0));
}

#[tokio::test]
async fn an_html_page_saved_as_the_export_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    std::fs::copy(sample_contracts(), &file).unwrap();
    let (t, _) = synced(&file).await;
    let page = b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body>Try again later</body></html>\n";
    assert_refused(&t, &file, page, "an HTML or XML page saved as the export").await;
}

#[tokio::test]
async fn a_json_lines_export_cut_mid_record_is_refused_and_nothing_vanishes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    std::fs::copy(sample_contracts(), &file).unwrap();
    let (t, _) = synced(&file).await;
    let text = std::fs::read_to_string(sample_contracts()).unwrap();
    // Cut in the middle of record 517: the 516 before it are read, the rest are missing.
    let cut = text.lines().take(516).map(|l| l.len() + 1).sum::<usize>() + 40;
    assert_refused(&t, &file, &text.as_bytes()[..cut], "truncated record at line 517").await;
}

#[tokio::test]
async fn a_portal_csv_without_the_end_date_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.csv");
    let csv = std::fs::read(repo().join("examples/secop/contracts.portal-export.20.csv")).unwrap();
    std::fs::write(&file, &csv).unwrap();
    let (t, _) = synced(&file).await;
    // The same export with the column deleted in a spreadsheet.
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(&csv[..]);
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut drop = None;
    for record in reader.records() {
        let record = record.unwrap();
        let drop = *drop.get_or_insert_with(|| {
            record.iter().position(|h| h == "Fecha de Fin del Contrato").unwrap()
        });
        out.write_record(record.iter().enumerate().filter(|(i, _)| *i != drop).map(|(_, v)| v))
            .unwrap();
    }
    let without = out.into_inner().unwrap();
    assert_refused(&t, &file, &without, "`Fecha de Fin del Contrato` (fecha_de_fin_del_contrato)")
        .await;
}

#[tokio::test]
async fn a_drop_beyond_the_allowed_share_is_held_and_a_smaller_one_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    std::fs::copy(sample_contracts(), &file).unwrap();
    let (t, open) = synced(&file).await;
    let lines: Vec<String> =
        std::fs::read_to_string(sample_contracts()).unwrap().lines().map(String::from).collect();

    // 484 of 1,000 contracts missing (a download that stopped at a line boundary).
    let cut = lines[..516].join("\n") + "\n";
    assert_refused(&t, &file, cut.as_bytes(), "484 of the 1000 contracts in scope (48.4 %)").await;
    assert!(t.app.store.sync_state(Dataset::Contracts).await.unwrap().is_none(), "pass closed");
    // Confirmed, the drop goes through.
    let confirm = SyncOptions { accept_vanishing: true, ..t.app.sync_options() };
    let r = t.app.sync_with(&cierre::sync::LogProgress::default(), confirm).await.unwrap();
    assert_eq!(r.datasets[0].counts.vanished, 484);
    let eval = t.app.evaluate(Some(date(AS_OF))).await.unwrap();
    assert!(eval.resolved > 0 && eval.total < open);

    // The whole file back, then 3 % of it gone: within the allowed share, no word needed.
    std::fs::copy(sample_contracts(), &file).unwrap();
    t.app.sync().await.unwrap();
    let kept: Vec<&String> =
        lines.iter().enumerate().filter(|(i, _)| i % 33 != 0).map(|(_, l)| l).collect();
    std::fs::write(&file, kept.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let r = t.app.sync().await.unwrap();
    assert_eq!(r.datasets[0].counts.vanished, 1000 - kept.len() as u64);
    let (status, _) = contracts_run(&t).await;
    assert_eq!(status, "ok");
}

#[tokio::test]
async fn awkward_rows_sync_the_same_on_every_backend_and_the_counts_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    let text = std::fs::read_to_string(sample_contracts()).unwrap();
    let lines: Vec<&str> = text.lines().take(50).collect();
    let mut bytes: Vec<u8> = Vec::new();
    for l in &lines {
        bytes.extend_from_slice(l.as_bytes());
        bytes.push(b'\n');
    }
    // A NUL inside a value (PostgreSQL refuses it in text), a key repeated, a line that is
    // not UTF-8, and a raw NUL byte (not JSON at all).
    let with_nul = r#"{"id_contrato":"CO1.PCCNTR.NUL","nombre_entidad":"SENA\u0000 REGIONAL","nit_entidad":"899999034","estado_contrato":"En ejecución","fecha_de_fin_del_contrato":"2026-01-30T00:00:00.000","liquidaci_n":"No"}"#;
    bytes.extend_from_slice(with_nul.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(lines[3].as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(
        b"{\"id_contrato\":\"CO1.PCCNTR.LATIN\",\"nombre_entidad\":\"Alcald\xeda\"}\n",
    );
    bytes.extend_from_slice(b"{\"id_contrato\":\"CO1.PCCNTR.RAW\0\"}\n");
    std::fs::write(&file, &bytes).unwrap();

    let t = app_on(&file).await;
    let r = t.app.sync().await.unwrap();
    let c = &r.datasets[0].counts;
    assert_eq!((c.read, c.new, c.duplicate, c.rejected), (54, 51, 1, 2));
    assert_eq!(c.read, c.new + c.changed + c.unchanged + c.duplicate + c.rejected + c.skipped);
    let url = &t.app.settings.store_url;
    let sql = "SELECT COUNT(*) FROM contracts WHERE id_contrato = 'CO1.PCCNTR.NUL' \
               AND nombre_entidad = 'SENA REGIONAL'";
    assert_eq!(crate::helpers::scalar(url, sql).await, 1, "the NUL is removed from the text");
    // The record as received keeps it.
    let raw = t.app.store.raw_record(Dataset::Contracts, "CO1.PCCNTR.NUL").await.unwrap().unwrap();
    let raw = cierre::source::raw::decompress(&raw).unwrap();
    assert!(raw.contains(r"SENA\u0000 REGIONAL"), "{raw}");

    let q = t.app.store.quarantined(Dataset::Contracts).await.unwrap();
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(q[0].locator, "line 53");
    assert!(q[0].reason.contains("not UTF-8"), "{}", q[0].reason);
    assert_eq!(
        q[0].raw,
        "{\"id_contrato\":\"CO1.PCCNTR.LATIN\",\"nombre_entidad\":\"Alcald\u{FFFD}a\"}\n"
    );
    assert!(q[0].bytes.as_deref().unwrap().windows(2).any(|w| w == b"d\xed"), "the bytes as read");
    assert_eq!(q[1].locator, "line 54");
    assert!(q[1].raw.contains(r"RAW\u0000"), "{}", q[1].raw);

    // The same file again: unchanged rows, the duplicate counted again, nothing vanished.
    let again = t.app.sync().await.unwrap();
    let c = &again.datasets[0].counts;
    assert_eq!((c.unchanged, c.duplicate, c.vanished), (51, 1, 0));
}

#[tokio::test]
async fn runs_left_running_by_a_gone_process_of_this_host_are_closed_and_other_replicas_kept() {
    let t = app_on(&sample_contracts()).await;
    let store = &t.app.store;
    let now = chrono::Utc::now();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let here = cierre::replica_id();
    let host = here.rsplit_once(':').unwrap().0;
    let dead = store
        .start_sync_run(Dataset::Contracts, "file", &format!("{host}:{gone_pid}"), now)
        .await
        .unwrap();
    let elsewhere =
        store.start_sync_run(Dataset::Contracts, "file", "another-host:1", now).await.unwrap();
    let alive = store.start_sync_run(Dataset::Contracts, "file", &here, now).await.unwrap();

    t.app.sync().await.unwrap();
    let running: Vec<i64> =
        store.running_sync_runs().await.unwrap().into_iter().map(|(id, _)| id).collect();
    assert!(!running.contains(&dead), "the gone process's run is closed");
    assert!(running.contains(&elsewhere), "another host's run is its own to close");
    assert!(running.contains(&alive), "this process is alive");
    let url = &t.app.settings.store_url;
    let sql = format!("SELECT COUNT(*) FROM sync_runs WHERE id = {dead} AND status = 'abandoned'");
    assert_eq!(crate::helpers::scalar(url, &sql).await, 1);
}

#[tokio::test]
async fn a_json_export_whose_end_date_column_is_gone_stores_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    std::fs::copy(sample_contracts(), &file).unwrap();
    let (t, _) = synced(&file).await;
    // The dataset renamed the column: every record lacks it.
    let text = std::fs::read_to_string(sample_contracts()).unwrap();
    let renamed = text.replace("\"fecha_de_fin_del_contrato\"", "\"fecha_fin_contrato\"");
    assert_refused(&t, &file, renamed.as_bytes(), "has fecha_de_fin_del_contrato").await;
    let url = &t.app.settings.store_url;
    let sql = "SELECT COUNT(*) FROM contracts WHERE fecha_de_fin IS NULL";
    let before = crate::helpers::scalar(url, sql).await;
    assert!(before < 100, "no stored contract lost its end date ({before} never had one)");
}

#[tokio::test]
async fn the_share_that_may_vanish_is_of_the_entities_in_scope() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.jsonl");
    std::fs::copy(sample_contracts(), &file).unwrap();
    let mut t = app_on(&file).await;
    // SENA (68 contracts) and ICBF (25): 93 in scope.
    t.app.settings.source.entities = vec!["899999034".into(), "899999239".into()];
    t.app.sync().await.unwrap();
    let lines: Vec<String> =
        std::fs::read_to_string(sample_contracts()).unwrap().lines().map(String::from).collect();
    let icbf = |l: &String| l.contains("\"nit_entidad\": \"899999239\"");
    assert_eq!(lines.iter().filter(|l| icbf(l)).count(), 25);
    // ICBF's 25 contracts missing: 27 % of the scope, though 2.5 % of the file.
    let without: String = lines.iter().filter(|l| !icbf(l)).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, without).unwrap();
    let err = format!("{:#}", t.app.sync().await.unwrap_err());
    assert!(err.contains("25 of the 93 contracts in scope (26.9 %)"), "{err}");
    // Contracts outside the scope are never counted, nor marked.
    let url = &t.app.settings.store_url;
    let vanished = "SELECT COUNT(*) FROM contracts WHERE vanished_at IS NOT NULL";
    assert_eq!(crate::helpers::scalar(url, vanished).await, 0);
    let confirm = SyncOptions { accept_vanishing: true, ..t.app.sync_options() };
    let r = t.app.sync_with(&cierre::sync::LogProgress::default(), confirm).await.unwrap();
    assert_eq!(r.datasets[0].counts.vanished, 25);
    assert_eq!(crate::helpers::scalar(url, vanished).await, 25);
}
