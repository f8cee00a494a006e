//! Acknowledgements: office heads' answers keep findings out of the digests while they hold
//! — en_tramite until its day or an escalation, no_aplica until the facts change,
//! documento_publicado by classifying the document — counted as not shown, kept in the
//! history, and consistent when answered from two replicas at once.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use cierre::domain::Kind;
use cierre::domain::ack::{AckState, NewAck};
use cierre::findings::acks::{AckError, acknowledge};
use cierre::store::prelude::*;

use crate::helpers::{Sheet, TestApp, TestStore, cierre, date, spawn_app_with};

/// Three SENA services contracts, `terminado`, that ended on 30, 16 and 23 January 2026:
/// closable, at `aviso`, `urgente` and `aviso` on Monday 16 February.
pub(crate) const THREE: &str = r#"{"id_contrato":"CO1.PCCNTR.901","nit_entidad":"899999034","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-30T00:00:00.000","liquidaci_n":"No"}
{"id_contrato":"CO1.PCCNTR.902","nit_entidad":"899999034","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-16T00:00:00.000","liquidaci_n":"No"}
{"id_contrato":"CO1.PCCNTR.903","nit_entidad":"899999034","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-23T00:00:00.000","liquidaci_n":"No"}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// An answer on contract `contract`'s closable finding.
fn answer(contract: &str, state: AckState, until: Option<&str>, reason: &str) -> NewAck {
    NewAck {
        contract_id: contract.into(),
        kind: Kind::Closable,
        stage: None,
        state,
        until: until.map(date),
        document_id: None,
        document_kind: None,
        reason: reason.into(),
        note: Some("radicado 2026-123".into()),
        author: "jefa.sena".into(),
    }
}

async fn ack(t: &TestApp, a: &NewAck, on: &str) -> i64 {
    let now = cierre::clock::FixedClock::at_date(date(on));
    let now = cierre::clock::Clock::now(&now);
    acknowledge(&t.app.store, &t.app.settings, a, date(on), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .1
        .id
}

/// Evaluates, notifies and delivers the slot of `day`; the contracts of the SENA head's
/// digest, and its text (`None`: no digest for her that day).
async fn slot(t: &TestApp, day: &str) -> Option<(Vec<String>, String)> {
    t.app.evaluate(Some(date(day))).await.unwrap();
    send(t, day).await
}

/// Notifies and delivers the slot of `day` (evaluated already), as [`slot`].
async fn send(t: &TestApp, day: &str) -> Option<(Vec<String>, String)> {
    t.app.notify(Some(date(day)), false).await.unwrap();
    t.app.deliver().await.unwrap();
    let e = t
        .emails()
        .into_iter()
        .find(|e| e.to == "jefa@sena.example" && e.message_id.contains(day))?;
    let sheet = Sheet::read(&e.attachments[0].1);
    Some((sheet.column("ID del contrato"), e.text))
}

/// The level of `contract`'s closable finding on `day`, from the rules.
async fn level(t: &TestApp, contract: &str, day: &str) -> String {
    t.findings_on(date(day))
        .await
        .into_iter()
        .find(|f| f.contract_id == contract)
        .map(|f| f.level)
        .unwrap_or_else(|| panic!("no finding of {contract}"))
}

/// Weekdays from `from` to `to`, as text.
fn weekdays(from: &str, to: &str) -> Vec<String> {
    use chrono::Datelike;
    date(from)
        .iter_days()
        .take_while(|d| *d <= date(to))
        .filter(|d| d.weekday().number_from_monday() <= 5)
        .map(|d| d.to_string())
        .collect()
}

#[tokio::test]
async fn en_tramite_hides_a_finding_until_its_day_or_until_it_escalates() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three.jsonl", THREE);
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    // 902 (urgente) until Friday 20; 901 (aviso) until April, but it escalates before.
    let a902 = answer("CO1.PCCNTR.902", AckState::EnTramite, Some("2026-02-20"), "acta en firma");
    let a901 = answer("CO1.PCCNTR.901", AckState::EnTramite, Some("2026-04-01"), "en revisión");
    ack(&t, &a902, "2026-02-16").await;
    ack(&t, &a901, "2026-02-16").await;
    let (mut saw_902_back, mut saw_901_back, mut saw_hidden) = (false, false, false);
    for day in weekdays("2026-02-16", "2026-03-04") {
        let monday = date(&day).format("%u").to_string() == "1";
        t.app.evaluate(Some(date(&day))).await.unwrap();
        // Due that day: daily levels, and aviso on Mondays.
        let mut due = Vec::new();
        for c in ["CO1.PCCNTR.901", "CO1.PCCNTR.902", "CO1.PCCNTR.903"] {
            let l = level(&t, c, &day).await;
            if l != "info" && (l != "aviso" || monday) {
                due.push((c, l));
            }
        }
        let hidden: Vec<&str> = due
            .iter()
            .filter(|(c, l)| match *c {
                "CO1.PCCNTR.902" => day.as_str() < "2026-02-20",
                "CO1.PCCNTR.901" => l == "aviso",
                _ => false,
            })
            .map(|(c, _)| *c)
            .collect();
        let mut shown: Vec<&str> =
            due.iter().map(|(c, _)| *c).filter(|c| !hidden.contains(c)).collect();
        shown.sort();
        let digest = send(&t, &day).await;
        let Some((mut rows, text)) = digest else {
            assert!(shown.is_empty(), "{day}: no digest, but {shown:?} due");
            continue;
        };
        rows.sort();
        assert_eq!(rows, shown, "{day}");
        if hidden.is_empty() {
            assert!(!text.contains("No se muestran"), "{day}: {text}");
        } else {
            saw_hidden = true;
            let line = format!("No se muestran: {} en trámite.", hidden.len());
            assert!(text.contains(&line), "{day}: {line}\n{text}");
        }
        saw_902_back |= shown.contains(&"CO1.PCCNTR.902");
        saw_901_back |= shown.contains(&"CO1.PCCNTR.901");
    }
    assert!(saw_hidden && saw_902_back && saw_901_back);
    // Each answer and why it ended are in the finding's history and on the answer.
    for (contract, why) in [
        ("CO1.PCCNTR.902", "terminó el plazo «en trámite»"),
        ("CO1.PCCNTR.901", "escaló de «aviso» a «urgente»"),
    ] {
        let f = &t.app.store.open_findings_of(contract).await.unwrap()[0];
        assert_eq!(f.ack, None, "{contract}: shown again");
        let h = t.app.store.finding_history(f.id).await.unwrap();
        let events: Vec<&str> = h.iter().map(|e| e.event.as_str()).collect();
        assert!(events.starts_with(&["opened", "acknowledged"]), "{events:?}");
        let reopened = h.iter().find(|e| e.event == "reopened").expect("reopened");
        assert!(reopened.detail.as_deref().unwrap().contains(why), "{reopened:?}");
        let acked = &h[1];
        assert_eq!(acked.author.as_deref(), Some("jefa.sena"));
        assert!(acked.detail.as_deref().unwrap().contains("radicado 2026-123"), "{acked:?}");
        let answers = t.app.store.acknowledgements(Some(f.id), true, IdPage::ALL).await.unwrap();
        assert_eq!(answers.len(), 1);
        assert!(answers[0].ended_reason.as_deref().unwrap().contains(why));
    }
    // With reopen_on_escalation = false, the same escalation keeps 901 hidden.
    let t =
        spawn_app_with(&file, "2026-02-16", "[acknowledgements]\nreopen_on_escalation = false\n")
            .await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    ack(&t, &a901, "2026-02-16").await;
    t.app.evaluate(Some(date("2026-03-02"))).await.unwrap();
    assert_eq!(level(&t, "CO1.PCCNTR.901", "2026-03-02").await, "urgente");
    let (rows, text) = send(&t, "2026-03-02").await.unwrap();
    assert!(!rows.contains(&"CO1.PCCNTR.901".to_string()), "{rows:?}");
    assert!(text.contains("No se muestran: 1 en trámite."), "{text}");
}

#[tokio::test]
async fn no_aplica_holds_while_the_facts_are_the_same_and_reopens_when_the_contract_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three.jsonl", THREE);
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let dismiss = answer(
        "CO1.PCCNTR.902",
        AckState::NoAplica,
        None,
        "el contrato se liquidó en otra entidad",
    );
    let id = ack(&t, &dismiss, "2026-02-16").await;
    // Daily at urgente, then vencido from 2 March: dismissed all along, the same file synced
    // again changing nothing. (903, urgente from the 20th, keeps a digest going.)
    for day in ["2026-02-20", "2026-02-23", "2026-03-02", "2026-03-03"] {
        if day == "2026-02-23" {
            t.app.sync().await.unwrap();
        }
        let (rows, text) = slot(&t, day).await.unwrap();
        assert!(!rows.contains(&"CO1.PCCNTR.902".to_string()), "{day}: {rows:?}");
        let line = "descartado(s) por su oficina (no aplica o documento publicado)";
        assert!(text.contains(&format!("1 {line}")), "{day}\n{text}");
    }
    assert_eq!(level(&t, "CO1.PCCNTR.902", "2026-03-03").await, "vencido");
    // SECOP II changes the contract row: the dismissal ends, the finding is back.
    std::fs::write(
        &file,
        THREE.replace(
            r#""liquidaci_n":"No"}"#,
            r#""liquidaci_n":"No","objeto_del_contrato":"Apoyo"}"#,
        ),
    )
    .unwrap();
    t.app.sync().await.unwrap();
    let (rows, text) = slot(&t, "2026-03-04").await.unwrap();
    assert!(rows.contains(&"CO1.PCCNTR.902".to_string()), "{rows:?}");
    assert!(!text.contains("descartado"), "{text}");
    let f = &t.app.store.open_findings_of("CO1.PCCNTR.902").await.unwrap()[0];
    let h = t.app.store.finding_history(f.id).await.unwrap();
    let dismissed = h.iter().find(|e| e.event == "dismissed").unwrap();
    assert!(dismissed.detail.as_deref().unwrap().contains("se liquidó en otra entidad"));
    let reopened = h.iter().find(|e| e.event == "reopened").unwrap();
    assert_eq!(reopened.on_date, date("2026-03-04"));
    assert_eq!(
        reopened.detail.as_deref(),
        Some("Cambiaron los datos del contrato en SECOP II"),
        "{h:?}"
    );
    let answers = t.app.store.acknowledgements(Some(f.id), true, IdPage::ALL).await.unwrap();
    assert_eq!((answers[0].id, answers[0].ended_on), (id, Some(date("2026-03-04"))));
}

/// A services contract by direct award in execution whose precontractual documents lack
/// only the certificate of suitability — published as "Soporte JP.pdf" (950004), a name
/// the classifier reads as no kind.
const PUBLISHED: (&str, &str) = (
    r#"{"id_contrato":"CO1.PCCNTR.950","proceso_de_compra":"CO1.BDOS.950","nit_entidad":"899999034","estado_contrato":"En ejecución","tipo_de_contrato":"Prestación de servicios","modalidad_de_contratacion":"Contratación directa","justificacion_modalidad_de":"Servicios profesionales y de apoyo a la gestión","fecha_de_firma":"2026-01-20T00:00:00.000","fecha_de_inicio_del_contrato":"2026-01-21T00:00:00.000","fecha_de_fin_del_contrato":"2026-12-30T00:00:00.000","liquidaci_n":"No"}
"#,
    r#"{"id_documento":"950001","n_mero_de_contrato":"CO1.PCCNTR.950","proceso":"CO1.BDOS.950","nombre_archivo":"ESTUDIOS PREVIOS.pdf","descripci_n":"Estudios previos","fecha_carga":"2026-01-15T00:00:00.000","nit_entidad":"899999034"}
{"id_documento":"950002","n_mero_de_contrato":"CO1.PCCNTR.950","proceso":"CO1.BDOS.950","nombre_archivo":"CDP 12.pdf","descripci_n":"No Definido","fecha_carga":"2026-01-15T00:00:00.000","nit_entidad":"899999034"}
{"id_documento":"950003","proceso":"CO1.BDOS.950","nombre_archivo":"Analisis del Sector.pdf","descripci_n":"Análisis del sector","fecha_carga":"2026-01-15T00:00:00.000","nit_entidad":"899999034"}
{"id_documento":"950004","n_mero_de_contrato":"CO1.PCCNTR.950","proceso":"CO1.BDOS.950","nombre_archivo":"Soporte JP.pdf","descripci_n":"No Definido","fecha_carga":"2026-01-16T00:00:00.000","nit_entidad":"899999034"}
{"id_documento":"950005","n_mero_de_contrato":"CO1.PCCNTR.950","proceso":"CO1.BDOS.950","nombre_archivo":"CONTRATO PRESTACION DE SERVICIOS.pdf","descripci_n":"Contrato firmado","fecha_carga":"2026-01-20T00:00:00.000","nit_entidad":"899999034"}
{"id_documento":"950006","n_mero_de_contrato":"CO1.PCCNTR.950","proceso":"CO1.BDOS.950","nombre_archivo":"RP 55.pdf","descripci_n":"Registro presupuestal","fecha_carga":"2026-01-21T00:00:00.000","nit_entidad":"899999034"}
{"id_documento":"990001","n_mero_de_contrato":"CO1.PCCNTR.999","proceso":"CO1.BDOS.999","nombre_archivo":"Otro.pdf","descripci_n":"No Definido","fecha_carga":"2026-01-21T00:00:00.000","nit_entidad":"899999034"}
"#,
);

#[tokio::test]
async fn documento_publicado_classifies_the_document_and_resolves_the_finding() {
    let dir = tempfile::tempdir().unwrap();
    let contracts = write(dir.path(), "c.jsonl", PUBLISHED.0);
    let documents = write(dir.path(), "d.jsonl", PUBLISHED.1);
    let mut t = spawn_app_with(&contracts, "2026-02-16", "").await;
    // The documents file beside the contracts (the helper's [source] has none).
    t.app.settings.source.documents_path = Some(documents.clone());
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let open = t.app.store.open_findings_of("CO1.PCCNTR.950").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].finding.missing, ["certificado_idoneidad"]);
    let classify = |t: &TestApp| {
        let names = write(
            t.dir.path(),
            "names.csv",
            "id_documento,nombre_archivo\n950004,Soporte JP.pdf\n",
        );
        let out = cierre(t.dir.path(), &["documents", "classify", names.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = classify(&t);
    let first = before.lines().next().unwrap();
    assert!(first.ends_with("\tSoporte JP.pdf") && !first.starts_with("certificado"), "{before}");

    let mut published = NewAck {
        kind: Kind::MissingDocuments,
        state: AckState::DocumentoPublicado,
        document_id: Some("990001".into()),
        ..answer("CO1.PCCNTR.950", AckState::DocumentoPublicado, None, "es el certificado")
    };
    // A document of another contract is refused, with why.
    let now = t.app.clock.now();
    let err = acknowledge(&t.app.store, &t.app.settings, &published, date("2026-02-16"), now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AckError::Invalid(e) if e.len() == 1 && e[0].contains("990001")),
        "{err}"
    );
    published.document_id = Some("950004".into());
    ack(&t, &published, "2026-02-16").await;
    // Out of the digests until the next evaluation, which resolves it.
    let hidden = t.app.store.open_findings_of("CO1.PCCNTR.950").await.unwrap();
    assert!(hidden[0].ack.as_ref().is_some_and(|a| a.hides_on(date("2026-02-17"))));
    let e = t.app.evaluate(Some(date("2026-02-17"))).await.unwrap();
    assert_eq!(e.resolved, 1);
    assert!(t.app.store.open_findings_of("CO1.PCCNTR.950").await.unwrap().is_empty());
    let answers = t.app.store.acknowledgements(None, true, IdPage::ALL).await.unwrap();
    assert_eq!(answers[0].document_kind.as_deref(), Some("certificado_idoneidad"));
    assert_eq!(answers[0].ended_reason.as_deref(), Some("el hallazgo se resolvió"));
    // The classifier uses it from then on, and classify says so beside the patterns.
    let after = classify(&t);
    assert!(after.starts_with("certificado_idoneidad\tSoporte JP.pdf\tmanual\n"), "{after}");
    assert!(after.contains("manual\t950004\tcertificado_idoneidad\tjefa.sena\t"), "{after}");
    let again = t.app.evaluate(Some(date("2026-02-18"))).await.unwrap();
    assert_eq!((again.total, again.opened), (0, 0));
}

#[tokio::test]
async fn answers_are_checked_and_every_problem_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three.jsonl", THREE);
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let today = date("2026-02-16");
    let now = t.app.clock.now();
    let try_ack = |a: NewAck| {
        let t = &t;
        async move { acknowledge(&t.app.store, &t.app.settings, &a, today, now).await.unwrap_err() }
    };
    let mut bad = answer("CO1.PCCNTR.902", AckState::EnTramite, Some("2026-02-16"), " ");
    bad.document_id = Some("1".into());
    let AckError::Invalid(errors) = try_ack(bad).await else { panic!("invalid") };
    assert_eq!(
        errors,
        [
            "the reason is empty: say why",
            "until 2026-02-16 is not after today (2026-02-16)",
            "a document is only for documento_publicado, not en_tramite",
        ]
    );
    let far = answer("CO1.PCCNTR.902", AckState::EnTramite, Some("2027-06-01"), "x");
    assert!(matches!(try_ack(far).await, AckError::Invalid(e) if e[0].contains("max_days (365)")));
    let unknown = answer("CO1.PCCNTR.1", AckState::NoAplica, None, "x");
    assert!(
        matches!(try_ack(unknown).await, AckError::NotFound(e) if e == "no contract CO1.PCCNTR.1 is stored")
    );
    let mut none = answer("CO1.PCCNTR.902", AckState::NoAplica, None, "x");
    none.kind = Kind::LiquidationDue;
    assert!(
        matches!(try_ack(none).await, AckError::NotFound(e) if e == "contract CO1.PCCNTR.902 has no open liquidation_due finding")
    );
    // Nothing was recorded.
    assert!(t.app.store.acknowledgements(None, true, IdPage::ALL).await.unwrap().is_empty());

    // The command line: exit 2 with every problem, 1 for what is not there, the id on success.
    let config = t.dir.path().join("daemon.toml");
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        cierre(t.dir.path(), &all)
    };
    let out = run(&["ack", "CO1.PCCNTR.902", "closable", "--until", "2020-01-01", "--reason", ""]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the reason is empty") && err.contains("until 2020-01-01 is not after today"),
        "{err}"
    );
    let out = run(&["dismiss", "CO1.PCCNTR.404", "closable", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        run(&["dismiss", "CO1.PCCNTR.902", "closable", "--reason", "no aplica", "--author", "ana"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let list = String::from_utf8_lossy(&run(&["acks"]).stdout).into_owned();
    assert!(list.starts_with(&format!("{id}\t")) && list.contains("\tno_aplica\t"), "{list}");
    let finding = list.split('\t').nth(1).unwrap().to_string();
    let history = String::from_utf8_lossy(&run(&["history", &finding]).stdout).into_owned();
    assert!(
        history.lines().any(|l| l.contains("\tdismissed\t") && l.contains("\tana\t")),
        "{history}"
    );
    let eval = String::from_utf8_lossy(
        &run(&["evaluate", "--as-of", "2026-02-16", "--format", "jsonl"]).stdout,
    )
    .into_owned();
    let line = eval.lines().find(|l| l.contains("CO1.PCCNTR.902")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["acknowledgement"]["state"], "no_aplica", "{line}");
}

#[tokio::test]
async fn two_replicas_answering_one_finding_at_once_leave_one_answer_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three.jsonl", THREE);
    let t = spawn_app_with(&file, "2026-02-16", "").await;
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let other = TestStore::open(&t.app.settings.store_url).await.unwrap();
    let settings = &t.app.settings;
    let today = date("2026-02-16");
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut total = 0;
    for round in 0..8 {
        let n = rng.usize(2..6);
        let answers: Vec<NewAck> = (0..n)
            .map(|i| {
                let until = NaiveDate::from_ymd_opt(2026, 3, 1 + rng.u32(0..20)).unwrap();
                let mut a = match rng.bool() {
                    true => answer("CO1.PCCNTR.902", AckState::EnTramite, None, "en trámite"),
                    false => answer("CO1.PCCNTR.902", AckState::NoAplica, None, "no aplica"),
                };
                if a.state == AckState::EnTramite {
                    a.until = Some(until);
                }
                a.author = format!("replica-{}-{round}-{i}", i % 2);
                a
            })
            .collect();
        let now = t.app.clock.now() + chrono::Duration::seconds(round);
        // Each answer on its own task, alternating between the two replicas' stores.
        let mut runs = tokio::task::JoinSet::new();
        for (i, a) in answers.into_iter().enumerate() {
            let store = if i % 2 == 0 { t.app.store.clone() } else { other.clone() };
            let settings = settings.clone();
            runs.spawn(async move { acknowledge(&store, &settings, &a, today, now).await });
        }
        while let Some(r) = runs.join_next().await {
            r.unwrap().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            total += 1;
        }
        let f = &t.app.store.open_findings_of("CO1.PCCNTR.902").await.unwrap()[0];
        let in_force = t.app.store.acknowledgements(Some(f.id), false, IdPage::ALL).await.unwrap();
        assert_eq!(in_force.len(), 1, "seed {seed}: one answer in force");
        assert_eq!(f.ack.as_ref().map(|a| a.id), Some(in_force[0].id), "seed {seed}");
        assert_eq!(f.ack.as_ref().map(|a| a.state), Some(in_force[0].state), "seed {seed}");
        let all = t.app.store.acknowledgements(Some(f.id), true, IdPage::ALL).await.unwrap();
        assert_eq!(all.len(), total, "seed {seed}");
        // The newest is in force; every other ended because it was answered again.
        assert_eq!(all[0].id, in_force[0].id, "seed {seed}");
        assert!(
            all[1..]
                .iter()
                .all(|a| a.ended_reason.as_deref() == Some("se registró una nueva respuesta"))
        );
        let history = t.app.store.finding_history(f.id).await.unwrap();
        let answered =
            history.iter().filter(|e| e.event == "acknowledged" || e.event == "dismissed");
        assert_eq!(answered.count(), total, "seed {seed}");
    }
}

#[tokio::test]
async fn answers_and_reopenings_are_announced_to_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three.jsonl", THREE);
    let mut t = spawn_app_with(&file, "2026-02-16", "").await;
    t.app.settings.webhooks = vec![cierre::config::Webhook {
        url: "http://127.0.0.1:9/hook".parse().unwrap(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string().into(),
        events: vec!["finding.acknowledged".into(), "finding.reopened".into()],
    }];
    t.app.sync().await.unwrap();
    t.app.evaluate(Some(date("2026-02-16"))).await.unwrap();
    let a = answer("CO1.PCCNTR.902", AckState::EnTramite, Some("2026-02-18"), "acta en firma");
    ack(&t, &a, "2026-02-16").await;
    t.app.evaluate(Some(date("2026-02-17"))).await.unwrap();
    t.app.evaluate(Some(date("2026-02-18"))).await.unwrap();
    // Evaluated again the same day: nothing more to announce.
    t.app.evaluate(Some(date("2026-02-18"))).await.unwrap();
    let items = t.app.store.outbox_items(&cierre::store::OutboxPage::all()).await.unwrap();
    let events: Vec<serde_json::Value> =
        items.iter().rev().map(|i| serde_json::from_str(&i.payload).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["finding.acknowledged", "finding.reopened"]);
    let acked = &events[0]["data"];
    assert_eq!(acked["finding"]["contract_id"], "CO1.PCCNTR.902");
    assert_eq!(acked["acknowledgement"]["state"], "en_tramite");
    assert_eq!(acked["acknowledgement"]["until"], "2026-02-18");
    assert_eq!(acked["acknowledgement"]["author"], "jefa.sena");
    assert_eq!(acked["contract"]["nit_entidad"], "899999034");
    let reopened = &events[1]["data"];
    assert!(reopened["reason"].as_str().unwrap().contains("terminó el plazo"), "{reopened}");
}
