//! Findings over the real sample and over a contract walked across its deadline: opened
//! once, escalated as the deadline nears, resolved when the contract gets closed.

use std::path::Path;

use crate::helpers::{date, scalar, spawn_app, spawn_app_with};
use cierre::calendar::Calendar;
use cierre::domain::Finding;
use cierre::store::prelude::*;

fn find<'a>(findings: &'a [Finding], id: &str) -> Option<&'a Finding> {
    findings.iter().find(|f| f.contract_id == id && f.kind.as_str() == "closable")
}

/// These tests follow the `closable` lifecycle alone.
const ONLY_CLOSABLE: &str =
    "[rules.state_outdated]\nenabled = false\n[rules.missing_documents]\nenabled = false\n";

#[tokio::test]
async fn the_sample_gives_the_findings_checked_by_hand() {
    let t = spawn_app().await;
    t.app.sync().await.unwrap();
    let eval = t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let findings = t.findings().await;

    // SENA, Prestación de servicios, liquidación No, "En ejecución" with its term ended on
    // 2020-11-24: closable since the 25th; 30 business days (Dec 8, Dec 25, Jan 1 and the
    // Reyes holiday moved to Jan 11 excluded) end on 2021-01-12.
    let f = find(&findings, "CO1.PCCNTR.1841076").expect("closable");
    assert_eq!(f.kind.as_str(), "closable");
    assert_eq!((f.since, f.deadline), (date("2020-11-25"), date("2021-01-12")));
    assert_eq!(f.level, "vencido");
    assert!(f.business_days_left < 0);
    assert!(f.reasons.iter().any(|r| r.contains("$ 4.603.167")), "pending payment warning");

    // JEP-119-2020 is Cancelado; the Borrador school contract of the one-row fixture is
    // not in this file; every Cerrado contract stays out.
    assert!(find(&findings, "CO1.PCCNTR.1370606").is_none());
    let sample = std::fs::read_to_string(crate::helpers::sample_contracts()).unwrap();
    for line in sample.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id_contrato"].as_str().unwrap();
        let state = v["estado_contrato"].as_str().unwrap_or("");
        let liquidation = v["liquidaci_n"].as_str().unwrap_or("");
        if let Some(f) = find(&findings, id) {
            assert!(!matches!(state, "Cerrado" | "Cancelado" | "Borrador"), "{id} is {state}");
            // Liquidation required: closable only once an acta de liquidación is published.
            assert!(
                liquidation != "Si"
                    || f.reasons.iter().any(|r| r.contains("La liquidación consta")),
                "{id} requires liquidation"
            );
            assert!(f.deadline > f.since);
        }
        // An outdated state is only ever an executing one.
        if findings.iter().any(|f| f.contract_id == id && f.kind.as_str() == "state_outdated") {
            assert!(
                matches!(state, "En ejecución" | "Modificado" | "cedido" | "Prorrogado"),
                "{id} is {state}"
            );
        }
    }
    assert_eq!(eval.opened, findings.len());
    assert_eq!(eval.total, findings.len());
    assert_eq!(eval.data_quality.contracts, 1000);
    // The same SENA contract, "En ejecución" five years after its end: its state is outdated.
    let outdated = findings
        .iter()
        .find(|f| f.contract_id == "CO1.PCCNTR.1841076" && f.kind.as_str() == "state_outdated")
        .unwrap();
    assert_eq!(outdated.stage.map(|s| s.as_str()), Some("contractual"));
    assert!(outdated.reasons[0].contains("24 de noviembre de 2020"), "{:?}", outdated.reasons);

    // Re-evaluating the same data on the same date changes nothing.
    let again = t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    assert_eq!((again.opened, again.escalated, again.resolved), (0, 0, 0));
    assert_eq!(t.findings().await, findings);
}

fn of<'a>(findings: &'a [Finding], id: &str, kind: &str, stage: &str) -> Option<&'a Finding> {
    findings.iter().find(|f| {
        f.contract_id == id && f.kind.as_str() == kind && f.stage.map(|s| s.as_str()) == Some(stage)
    })
}

/// The sample's real contracts with the constructed documents and guarantees of
/// `examples/secop/*.constructed.jsonl`, as of 2026-02-16, each date worked out by hand with
/// the Colombian calendar.
#[tokio::test]
async fn the_sample_with_documents_and_guarantees_gives_the_findings_checked_by_hand() {
    let t = spawn_app().await;
    let sync = t.app.sync().await.unwrap();
    let read: Vec<(String, u64)> =
        sync.datasets.iter().map(|d| (d.dataset.to_string(), d.counts.read)).collect();
    assert!(read.contains(&("documents".to_string(), 7)), "{read:?}");
    let eval = t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let findings = t.findings().await;

    // SENA, suministro by subasta inversa, liquidación Sí, ended 2021-12-29 with the agreed
    // liquidation term 2022-04-29 (a Friday); unilateral until 2022-06-29 (a Wednesday: San
    // Pedro was moved to July 4 that year); 2 years later is Saturday 2024-06-29, and Monday
    // July 1 is the San Pedro holiday: competence was lost after Tuesday 2024-07-02.
    let f = of(&findings, "CO1.PCCNTR.2663935", "liquidation_due", "postcontractual").unwrap();
    assert_eq!(f.step.as_deref(), Some("competence_lost"));
    assert_eq!((f.since, f.deadline), (date("2021-12-30"), date("2024-07-02")));
    assert_eq!(f.level, "vencido");
    // Its environmental obligation would block the closing, but liquidation comes first.
    assert!(of(&findings, "CO1.PCCNTR.2663935", "closable", "postcontractual").is_none());

    // En ejecución, suministro, agreed liquidation 2025-04-30; unilateral 2 months later is
    // 2025-06-30, the San Pedro holiday → 2025-07-01; the late step runs to 2027-07-01.
    let f = of(&findings, "CO1.PCCNTR.7017586", "liquidation_due", "postcontractual").unwrap();
    assert_eq!((f.step.as_deref(), f.deadline), (Some("late"), date("2027-07-01")));
    assert!(f.reasons.iter().any(|r| r.contains("1 de julio de 2025")), "{:?}", f.reasons);
    // A supervision report is not an acta de liquidación.
    assert_eq!(f.level, "info");

    // Compraventa with liquidación Sí and the acta published 2025-05-20: no longer due, and
    // closable from the acta on — but its environmental obligation (Sí) blocks it.
    assert!(of(&findings, "CO1.PCCNTR.6863177", "liquidation_due", "postcontractual").is_none());
    let f = of(&findings, "CO1.PCCNTR.6863177", "closable", "postcontractual").unwrap();
    assert_eq!((f.step.as_deref(), f.since), (Some("blocked"), date("2025-05-20")));
    assert!(f.reasons.iter().any(|r| r.contains("ACTA DE LIQUIDACION BILATERAL.pdf")));
    assert!(f.reasons.iter().any(|r| r.starts_with("Bloqueado") && r.contains("ambientales")));

    // Obra ended 2022-12-30 whose stability guarantee runs to 2027-12-30: not closable yet.
    assert!(of(&findings, "CO1.PCCNTR.4254253", "closable", "postcontractual").is_none());
    // Compraventa ended 2025-01-31, quality guarantee expired 2025-07-31: closable from
    // 2025-08-01; 30 business days after it (August 7 and 18 are holidays) → 2025-09-16.
    let f = of(&findings, "CO1.PCCNTR.6588771", "closable", "postcontractual").unwrap();
    assert_eq!(
        (f.since, f.deadline, f.step.as_deref()),
        (date("2025-08-01"), date("2025-09-16"), None)
    );
    assert!(
        f.reasons.iter().any(|r| r.contains("31 de julio de 2025") && r.contains("2.2.1.1.2.4.3"))
    );

    // SENA services contract signed 2026-01-28, started 2026-02-09: estudios previos, CDP and
    // contract published with it, the análisis del sector on its process (and again on the
    // contract: counted once). Missing: the certificado de idoneidad (due 2026-02-02, three
    // business days after signing) and the registro presupuestal (due 2026-02-12).
    let f = of(&findings, "CO1.PCCNTR.9202043", "missing_documents", "precontractual").unwrap();
    assert_eq!(f.missing, ["certificado_idoneidad"]);
    assert_eq!((f.since, f.deadline), (date("2026-01-28"), date("2026-02-02")));
    assert!(f.reasons.iter().any(|r| r.contains("Se revisaron 4 documentos")), "{:?}", f.reasons);
    let f = of(&findings, "CO1.PCCNTR.9202043", "missing_documents", "contractual").unwrap();
    assert_eq!(f.missing, ["registro_presupuestal"]);
    assert_eq!((f.since, f.deadline), (date("2026-02-09"), date("2026-02-12")));
    assert!(of(&findings, "CO1.PCCNTR.9202043", "missing_documents", "postcontractual").is_none());

    // As of the day before the acta was uploaded, the liquidation was still due (unilateral
    // step: the agreed 2025-04-30 plus 2 months is the San Pedro holiday, 2025-06-30).
    t.app.evaluate(Some(date("2025-05-19"))).await.unwrap();
    let before = t.findings().await;
    let f = of(&before, "CO1.PCCNTR.6863177", "liquidation_due", "postcontractual").unwrap();
    assert_eq!((f.step.as_deref(), f.deadline), (Some("unilateral"), date("2025-07-01")));
    assert!(of(&before, "CO1.PCCNTR.6863177", "closable", "postcontractual").is_none());

    // Every kind is counted in the summary, and every finding reason cites a rule.
    for kind in ["closable", "liquidation_due", "state_outdated", "missing_documents"] {
        assert!(eval.counts.keys().any(|(k, _)| k == kind), "{kind}");
    }
    for f in &findings {
        assert!(
            f.reasons
                .iter()
                .any(|r| r.contains("Ley ") || r.contains("Decreto") || r.contains("Circular")),
            "{f:?}"
        );
    }
}

const ONE: &str = r#"{"id_contrato":"CO1.PCCNTR.900","referencia_del_contrato":"CPS-900-2026","nit_entidad":"899999034","nombre_entidad":"SENA","estado_contrato":"En ejecución","tipo_de_contrato":"Prestación de servicios","fecha_de_firma":"2026-01-05T00:00:00.000","fecha_de_fin_del_contrato":"2026-01-30T00:00:00.000","liquidaci_n":"No","obligaci_n_ambiental":"No","obligaciones_postconsumo":"No"}"#;

async fn walk(file: &Path) -> crate::helpers::TestApp {
    std::fs::write(file, format!("{ONE}\n")).unwrap();
    let t = spawn_app_with(file, "2026-02-02", ONLY_CLOSABLE).await;
    t.app.sync().await.unwrap();
    t
}

#[tokio::test]
async fn a_finding_is_escalated_as_its_deadline_nears_and_resolved_when_closed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    let t = walk(&file).await;
    // Term ended 2026-01-30 → since 2026-01-31; 30 business days later.
    let deadline = cierre::calendar::Calendar::colombia().add_business_days(date("2026-01-31"), 30);

    let e = t.app.evaluate(Some(date("2026-02-02"))).await.unwrap();
    assert_eq!(t.findings().await.len(), 1);
    assert_eq!(t.findings().await[0].deadline, deadline);
    assert_eq!(t.findings().await[0].level, "aviso");
    assert_eq!(e.opened, 1);

    // The next business day the count moves but the level does not: the stored finding is
    // not rewritten, and the listing counts from the day it is read for.
    let url = &t.app.settings.store_url;
    let next = cierre::calendar::Calendar::colombia().add_business_days(date("2026-02-02"), 1);
    let written = "SELECT COUNT(*) FROM findings WHERE evaluated_on = '2026-02-02'";
    assert_eq!(scalar(url, written).await, 1);
    let e = t.app.evaluate(Some(next)).await.unwrap();
    assert_eq!((e.opened, e.escalated, e.resolved), (0, 0, 0));
    assert_eq!(scalar(url, written).await, 1, "the finding was rewritten");
    let left_next = t.findings_on(next).await[0].business_days_left;
    let left_before = t.findings_on(date("2026-02-02")).await[0].business_days_left;
    assert_eq!(left_next, Calendar::colombia().business_days_between(next, deadline));
    assert_eq!(left_next + 1, left_before);

    let ten_left = cierre::calendar::Calendar::colombia().add_business_days(deadline, -10);
    let e = t.app.evaluate(Some(ten_left)).await.unwrap();
    let f = &t.findings_on(ten_left).await[0];
    assert_eq!((f.business_days_left, f.level.as_str()), (10, "urgente"));
    assert_eq!(e.escalated, 1);

    let e = t.app.evaluate(Some(deadline)).await.unwrap();
    let f = &t.findings_on(deadline).await[0];
    assert_eq!((f.business_days_left, f.level.as_str()), (0, "urgente"));
    assert_eq!(e.escalated, 0);

    // Overdue from the next business day on.
    let after = cierre::calendar::Calendar::colombia().add_business_days(deadline, 1);
    let e = t.app.evaluate(Some(after)).await.unwrap();
    assert_eq!(t.findings().await[0].level, "vencido");
    assert_eq!(e.escalated, 1);

    // The contract gets closed in SECOP II: the finding is resolved, with its history.
    std::fs::write(&file, format!("{}\n", ONE.replace("En ejecución", "Cerrado"))).unwrap();
    t.app.sync().await.unwrap();
    let e = t.app.evaluate(Some(after)).await.unwrap();
    assert!(t.findings().await.is_empty());
    assert_eq!(e.resolved, 1);
    assert!(t.app.store.open_findings_sorted(None, u32::MAX).await.unwrap().is_empty());
    let history = t.app.store.finding_history(1).await.unwrap();
    let events: Vec<(&str, &str)> =
        history.iter().map(|h| (h.event.as_str(), h.level.as_str())).collect();
    assert_eq!(
        events,
        [
            ("opened", "aviso"),
            ("escalated", "urgente"),
            ("escalated", "vencido"),
            ("resolved", "vencido")
        ]
    );
    assert_eq!(history[3].on_date, after);
}

#[tokio::test]
async fn unknown_states_are_counted_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, format!("{}\n", ONE.replace("En ejecución", "En revisión jurídica")))
        .unwrap();
    let t = spawn_app_with(&file, "2026-03-02", "").await;
    t.app.sync().await.unwrap();
    let e = t.app.evaluate(None).await.unwrap();
    assert!(t.findings().await.is_empty());
    assert_eq!(e.data_quality.unknown_states.get("En revisión jurídica"), Some(&1));
    assert_eq!(e.as_of, Some(date("2026-03-02")), "today from the injected clock");
}

#[tokio::test]
async fn two_evaluations_racing_open_each_finding_once() {
    // As when two replicas evaluate at once (a manual trigger during a scheduled run).
    let t = spawn_app().await;
    t.app.sync().await.unwrap();
    let day = date("2026-02-16");
    let (a, b) = tokio::join!(t.app.evaluate(Some(day)), t.app.evaluate(Some(day)));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.total, a.opened + b.opened), (b.total, a.total));
    let open = t.app.store.open_findings_sorted(None, u32::MAX).await.unwrap();
    assert_eq!(open.len(), a.total);
    for f in open.iter().take(50) {
        let history = t.app.store.finding_history(f.id).await.unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0].event, "opened");
    }
    // And the next evaluation finds nothing to change.
    let again = t.app.evaluate(Some(day)).await.unwrap();
    assert_eq!((again.opened, again.resolved), (0, 0));
}

#[tokio::test]
async fn a_holiday_added_in_the_configuration_moves_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::helpers::one_ended_service(dir.path());
    let deadline = |extra: &'static str| {
        let file = file.clone();
        async move {
            let t = spawn_app_with(&file, "2026-02-03", extra).await;
            t.app.sync().await.unwrap();
            t.app.evaluate(Some(date("2026-02-03"))).await.unwrap();
            let f = t.findings().await.into_iter().find(|f| f.kind.as_str() == "closable");
            (f.expect("a closable finding").deadline, t.app.settings.calendar.clone())
        }
    };
    let (plain, national) = deadline("").await;
    // Tuesday 10 February 2026, a holiday by a law the release does not know.
    let (moved, calendar) = deadline(
        "[[calendar.holidays]]\nname = \"Día de prueba\"\nlaw = \"Ley 9999 de 2026\"\n\
         rule = \"fixed\"\nmonth = 2\nday = 10\nsince = 2026\n",
    )
    .await;
    assert!(calendar.is_holiday(date("2026-02-10")) && !national.is_holiday(date("2026-02-10")));
    assert_eq!(moved, national.add_business_days(plain, 1), "one business day later");
    assert_eq!(national.business_days_between(date("2026-01-30"), plain), 30);
    assert_eq!(calendar.business_days_between(date("2026-01-30"), moved), 30);
}
