//! The real binary, driven as an administrator would: the README's main command, config
//! checking, the calendar, and a sync of a corrupt CSV export.

use std::collections::HashSet;

use crate::helpers::{Email, Sheet, cierre, repo};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_once_on_the_sample_leaves_eml_files_naming_every_closable_contract() {
    let dir = tempfile::tempdir().unwrap();
    let config = repo().join("daemon.toml");
    let contracts = repo().join("examples/secop/contracts.jsonl");
    let documents = repo().join("examples/secop/documents.constructed.jsonl");
    let guarantees = repo().join("examples/secop/guarantees.constructed.jsonl");
    let templates = repo().join("templates");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cierre"))
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            .current_dir(dir.path())
            .env("CIERRE__SOURCE__CONTRACTS_PATH", &contracts)
            .env("CIERRE__SOURCE__DOCUMENTS_PATH", &documents)
            .env("CIERRE__SOURCE__GUARANTEES_PATH", &guarantees)
            .env("CIERRE__EMAIL__TEMPLATES_DIR", &templates)
            .env("CIERRE_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&["run", "--once", "--as-of", "2026-02-16"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("contracts       1000    1000"), "{}", stdout(&out));

    // Every record is kept as the source sent it, and reads back byte for byte as JSON.
    let sample = std::fs::read_to_string(&contracts).unwrap();
    let line = sample.lines().find(|l| l.contains("\"CO1.PCCNTR.1841076\"")).unwrap();
    let out = run(&["record", "contracts", "CO1.PCCNTR.1841076"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim_end(), line);
    let out = run(&["record", "documents", "900000003"]);
    assert!(stdout(&out).contains("Analisis del Sector.pdf"), "{}", stdout(&out));
    let out = run(&["outbox", "requeue", "--channel", "email", "--by", "operadora"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "requeued 0 dead item(s)");
    let out = run(&["record", "contracts", "CO1.PCCNTR.0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no contracts record with key CO1.PCCNTR.0"));

    let emails: Vec<Email> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| Email::parse(&std::fs::read(e.unwrap().path()).unwrap()))
        .collect();
    assert!(!emails.is_empty());
    // The contracts of every row of every digest, from their workbooks.
    let in_digests: HashSet<String> = emails
        .iter()
        .flat_map(|e| Sheet::read(&e.attachments[0].1).column("ID del contrato"))
        .collect();

    // Every closable finding of the evaluation is in some digest (2026-02-16 is a Monday,
    // so even the weekly level goes out)…
    let eval = run(&["evaluate", "--as-of", "2026-02-16", "--format", "jsonl"]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let closable: Vec<String> = stdout(&eval)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["kind"] == "closable")
        .map(|f| f["contract_id"].as_str().unwrap().to_string())
        .collect();
    assert!(closable.len() > 100, "{}", closable.len());
    // A date typed wrong is a usage error that changes nothing.
    for (bad, why) in [
        ("26-02-16", "is not a date in the form YYYY-MM-DD"),
        ("2026-2-16", "is not a date in the form YYYY-MM-DD"),
        ("+10000-01-01", "is not a date in the form YYYY-MM-DD"),
        ("0000-01-01", "outside the accepted dates, 2000-01-01 to"),
    ] {
        let out = run(&["evaluate", "--as-of", bad, "--format", "jsonl"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{bad}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    let again = run(&["evaluate", "--as-of", "2026-02-16", "--format", "jsonl"]);
    assert_eq!(stdout(&again), stdout(&eval), "no finding changed");
    assert!(stderr(&again).contains("0 opened, 0 escalated, 0 resolved"), "{}", stderr(&again));
    // Nothing changed since: no contract was looked at again. `--full` looks at every one,
    // to the same end.
    assert!(stderr(&again).contains("(incremental: 0 contracts"), "{}", stderr(&again));
    let full = run(&["evaluate", "--as-of", "2026-02-16", "--format", "jsonl", "--full"]);
    assert!(stderr(&full).contains("(full evaluation, "), "{}", stderr(&full));
    assert!(stderr(&full).contains("evaluated 1000 contracts"), "{}", stderr(&full));
    assert_eq!(stdout(&full), stdout(&eval));
    for id in &closable {
        assert!(in_digests.contains(id), "{id} is in no digest");
    }
    // …and no contract the data shows as closed or cancelled is.
    let sample = std::fs::read_to_string(&contracts).unwrap();
    let mut closed = HashSet::new();
    for line in sample.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if matches!(v["estado_contrato"].as_str(), Some("Cerrado" | "Cancelado")) {
            closed.insert(v["id_contrato"].as_str().unwrap().to_string());
        }
    }
    assert!(closed.len() > 200);
    for id in &closed {
        assert!(!in_digests.contains(id), "closed contract {id} in a digest");
    }
    // A contract checked by hand: SENA, services, ended 2020-11-24, still "En ejecución".
    let sena = emails.iter().find(|e| e.to == "contratacion@sena-atlantico.example").unwrap();
    let sheet = Sheet::read(&sena.attachments[0].1);
    let reasons: Vec<String> = sheet
        .column("ID del contrato")
        .into_iter()
        .zip(sheet.column("Razones"))
        .filter(|(id, _)| id == "CO1.PCCNTR.1841076")
        .map(|(_, r)| r)
        .collect();
    assert!(reasons.iter().any(|r| r.contains("hasta el 12 de enero de 2021")), "{reasons:?}");
}

#[test]
fn check_config_reports_every_mistake_with_its_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"[[offices]]
id = "a"
name = "Oficina A"
head = { name = "Jefe", email = "no-es-un-correo" }
chain = [{ role = "director", name = "D", email = "d@entidad.gov.co" }, { role = "control_interno", name = "C", email = "c@entidad.gov.co" }]

[[routes]]
office = "inexistente"
match = { nit_entidad = "1" }

[schedule]
sync = "cada mañana"
"#,
    )
    .unwrap();
    let out = cierre(dir.path(), &["--config", path.to_str().unwrap(), "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("3 error(s)"), "{err}");
    assert!(err.contains("bad.toml:4: offices[0].head.email"), "{err}");
    assert!(err.contains("bad.toml:8: routes[0].office: no office has id `inexistente`"), "{err}");
    assert!(err.contains("bad.toml:12: schedule.sync"), "{err}");

    let good = cierre(&repo(), &["--config", "daemon.toml", "check-config"]);
    assert!(good.status.success(), "{}", stderr(&good));
}

#[test]
fn calendar_commands_print_holidays_and_business_days() {
    let dir = tempfile::tempdir().unwrap();
    let out = cierre(dir.path(), &["calendar", "holidays", "2025"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let days: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(days.len(), 17);
    assert_eq!(days[0], "2025-01-01");
    assert!(days.contains(&"2025-04-18".to_string()));
    // Holy Week 2025: Thursday 17 and Friday 18 are holidays → (Apr 14, Apr 21] has 3.
    let out = cierre(dir.path(), &["calendar", "business-days", "2025-04-14", "2025-04-21"]);
    assert_eq!(stdout(&out).trim(), "3");
    let out = cierre(dir.path(), &["calendar", "business-days", "2025-04-21", "2025-04-14"]);
    assert_eq!(stdout(&out).trim(), "-3");
}

#[test]
fn holidays_come_with_their_law_and_the_configuration_adds_and_ends_them() {
    let dir = tempfile::tempdir().unwrap();
    let lines = |dir: &std::path::Path, year: &str| -> Vec<String> {
        let out = cierre(dir, &["calendar", "holidays", year, "--explain"]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().map(str::to_string).collect()
    };
    let national = lines(dir.path(), "2026");
    assert_eq!(national.len(), 19);
    assert!(national.contains(
        &"2026-07-13\tDía de Nuestra Señora del Rosario de Chiquinquirá\tLey 2578 de 2026".into()
    ));
    assert!(national.contains(&"2026-12-25\tNavidad\tLey 51 de 1983, art. 1".into()));
    let september = |dir: &std::path::Path| {
        let out = cierre(dir, &["calendar", "business-days", "2027-08-31", "2027-09-30"]);
        stdout(&out).trim().parse::<i64>().unwrap()
    };
    let before = september(dir.path());

    let configured = tempfile::tempdir().unwrap();
    std::fs::write(
        configured.path().join("daemon.toml"),
        "[[calendar.holidays]]\nname = \"Día de prueba\"\nlaw = \"Ley 9999 de 2027\"\n\
         rule = \"emiliani\"\nmonth = 9\nday = 1\nsince = 2027\n\n\
         [[calendar.removed_holidays]]\nname = \"dia de la raza\"\nfrom = 2028\n\
         law = \"Ley 9998 de 2027\"\n",
    )
    .unwrap();
    let check = cierre(configured.path(), &["check-config"]);
    assert!(check.status.success(), "{}", stderr(&check));
    // Wednesday 1 September 2027, moved to Monday 6 September; not before 2027.
    assert!(
        lines(configured.path(), "2027")
            .contains(&"2027-09-06\tDía de prueba\tLey 9999 de 2027".into())
    );
    assert_eq!(lines(configured.path(), "2026"), national);
    assert_eq!(september(configured.path()), before - 1);
    // Día de la Raza: still in 2027, gone from 2028.
    assert!(lines(configured.path(), "2027").iter().any(|l| l.contains("Día de la Raza")));
    assert!(!lines(configured.path(), "2028").iter().any(|l| l.contains("Día de la Raza")));
    assert!(lines(dir.path(), "2028").iter().any(|l| l.contains("Día de la Raza")));
}

#[test]
fn a_csv_export_with_corrupt_rows_syncs_the_others_and_names_the_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let source = repo().join("examples/secop/contracts.portal-export.20.csv");
    let mut reader = csv::Reader::from_path(&source).unwrap();
    let headers = reader.headers().unwrap().clone();
    let fin = headers.iter().position(|h| h == "Fecha de Fin del Contrato").unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 20);

    // Write the export back with record 5 cut short and record 12's end date mangled,
    // noting the line each record starts on.
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut buf);
        w.write_record(&headers).unwrap();
        w.flush().unwrap();
    }
    for (i, rec) in records.iter().enumerate() {
        lines.push(buf.iter().filter(|b| **b == b'\n').count() + 1);
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(&mut buf);
        match i {
            5 => w.write_record(rec.iter().take(12)).unwrap(),
            12 => {
                let mut fields: Vec<String> = rec.iter().map(str::to_string).collect();
                fields[fin] = "31/31/2023".into();
                w.write_record(&fields).unwrap();
            }
            _ => w.write_record(rec).unwrap(),
        }
        w.flush().unwrap();
    }
    let csv_path = dir.path().join("export.csv");
    std::fs::write(&csv_path, &buf).unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"file\"\ncontracts_path = \"{}\"\n[email]\nfrom = \"c <c@example.gov.co>\"\noutbox_dir = \"outbox\"\ntemplates_dir = \"{}\"\n[delivery]\nmax_attempts = 3\n",
            csv_path.display(),
            repo().join("templates").display()
        ),
    )
    .unwrap();
    let out = cierre(dir.path(), &["--config", config.to_str().unwrap(), "sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("contracts         20      18"), "{text}");
    assert!(text.contains(&format!("rejected contracts line {}: expected", lines[5])), "{text}");
    assert!(text.contains(&format!("rejected contracts line {}:", lines[12])), "{text}");
    assert!(text.contains("31/31/2023"), "{text}");

    let status = cierre(dir.path(), &["--config", config.to_str().unwrap(), "status"]);
    assert!(stdout(&status).contains("contracts   18 stored"), "{}", stdout(&status));
    // Not evaluated yet: the 18 new contracts wait for a full evaluation.
    assert!(
        stdout(&status).contains(
            "evaluation  none complete yet: the next one evaluates every contract (18 change(s) waiting)"
        ),
        "{}",
        stdout(&status)
    );
    let config = config.to_str().unwrap();
    let out = cierre(dir.path(), &["--config", config, "evaluate", "--as-of", "2026-02-16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = cierre(dir.path(), &["--config", config, "status"]);
    assert!(
        stdout(&status).contains(
            "evaluation  last complete as of 2026-02-16; 0 change(s) since, for the next one to look at"
        ),
        "{}",
        stdout(&status)
    );
}

#[test]
fn documents_classify_prints_the_kind_of_each_name_and_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("names.txt");
    std::fs::write(&list, "ESTUDIO PREVIO PRUEBAS DE APTITUD.pdf\nCDP PRUEBAS DE APTITUD.pdf\nActa de liquidación bilateral.pdf\nfoto.jpg\n").unwrap();
    let out = cierre(dir.path(), &["documents", "classify", list.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let kinds: Vec<&str> = text.lines().take(4).map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(kinds, ["estudios_previos", "cdp", "acta_liquidacion", "otro"]);
    // The real export of one entity, read by its nombre_archivo column.
    let csv = repo().join("examples/secop/document-names.feab.csv");
    let out = cierre(dir.path(), &["documents", "classify", csv.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(text.lines().take_while(|l| !l.is_empty()).count(), 2100);
    assert!(text.contains("estudios_previos (Estudios y documentos previos)"), "{text}");
}
