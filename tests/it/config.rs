//! Configuration: every bad fixture is refused with the error it names, good ones load,
//! the environment overrides the file, and secrets never show.

use std::path::PathBuf;

use crate::helpers::{load, repo};
use cierre::config::{self, SmtpTls, SourceKind};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/config").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn every_bad_fixture_is_refused_with_the_error_it_expects() {
    let bad = fixtures("bad");
    assert!(bad.len() >= 8);
    for path in bad {
        let text = std::fs::read_to_string(&path).unwrap();
        // Each `# expect:` line at the top names one error the report must hold.
        let expected: Vec<&str> =
            text.lines().map_while(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expected.is_empty(), "{} names no error", path.display());
        let result = load(&path);
        let errors = result.expect_err(&format!("{} should be refused", path.display()));
        // Errors name the file as given; compare relative to the fixtures folder.
        let base = format!("{}/", repo().join("tests/fixtures/config").display());
        let all = errors.to_string().replace(&base, "");
        for expected in expected {
            assert!(all.contains(expected), "{}:\nexpected {expected}\ngot {all}", path.display());
        }
    }
}

#[test]
fn a_checklist_in_the_file_replaces_the_default_one_and_custom_kinds_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.toml");
    std::fs::write(
        &path,
        r#"
[[documents.kinds]]
kind = "paz_y_salvo"
label = "Paz y salvo"
patterns = ['\bpaz y salvo\b']

[[rules.missing_documents.checklist]]
stage = "postcontractual"
kind = "paz_y_salvo"
types = ["Obra"]
"#,
    )
    .unwrap();
    let s = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let list = &s.rules.missing_documents.checklist;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].kind.as_str(), list[0].types.as_slice()),
        ("paz_y_salvo", &["obra".to_string()][..])
    );
    assert_eq!(s.classifier.classify(Some("Paz y Salvo final.pdf"), None), "paz_y_salvo");
    // The built-in kinds are still there, after the custom ones.
    assert_eq!(s.classifier.classify(Some("CDP 12.pdf"), None), "cdp");
    // Without a checklist in the file, the built-in one applies.
    let defaults = cierre::config::Settings::defaults();
    assert!(defaults.rules.missing_documents.checklist.len() >= 8);
}

#[test]
fn good_fixtures_load_with_their_values() {
    for path in fixtures("good") {
        load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let s = load(&repo().join("tests/fixtures/config/good/full.toml")).unwrap();
    assert_eq!(s.source.kind, SourceKind::Socrata);
    assert_eq!(s.source.entities, ["899999034", "899999239"]);
    assert_eq!(s.source.page_size, 50_000);
    assert_eq!(s.sqlite_mmap_bytes, 0, "mapping turned off");
    assert!(s.calendar.is_business_day(crate::helpers::date("2026-11-21")), "a Saturday");
    assert!(!s.calendar.is_business_day(crate::helpers::date("2026-12-24")));
    let smtp = s.email.smtp.as_ref().unwrap();
    assert_eq!((smtp.tls, smtp.port), (SmtpTls::Implicit, 465));
    assert_eq!(s.routes[0].matchers.len(), 2);
    assert!(s.routes[0].continue_);
    assert_eq!(
        s.levels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["vencido", "urgente", "aviso"]
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let s = load(&repo().join("tests/fixtures/config/good/full.toml")).unwrap();
    let debug = format!("{s:?}");
    for secret in [
        "token-de-prueba",
        "s3creta-smtp",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "token-http-secreto",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }
}

#[test]
fn the_environment_overrides_the_file_and_lists_are_comma_separated() {
    let path = repo().join("tests/fixtures/config/good/full.toml");
    let env = vec![
        ("CIERRE__SOURCE__ENTITIES".to_string(), "800100200,900300400".to_string()),
        ("CIERRE__SOURCE__PAGE_SIZE".to_string(), "1000".to_string()),
        ("CIERRE__EMAIL__SMTP__PORT".to_string(), "2525".to_string()),
        ("CIERRE__HTTP__TOKEN".to_string(), "12345".to_string()),
        ("OTHER_VARIABLE".to_string(), "ignored".to_string()),
    ];
    let s = config::load_from(&path, true, env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.source.entities, ["800100200", "900300400"]);
    assert_eq!(s.source.page_size, 1000);
    assert_eq!(s.email.smtp.unwrap().port, 2525);
    use secrecy::ExposeSecret;
    assert_eq!(s.http.token.unwrap().expose_secret(), "12345");

    let bad = vec![("CIERRE__SCHEDULE__NOTIFY".to_string(), "nunca".to_string())];
    let e = config::load_from(&path, true, bad).unwrap_err().to_string();
    assert!(e.contains("schedule.notify: `nunca`"), "{e}");
}

#[test]
fn without_a_file_the_built_in_defaults_are_valid() {
    let s = config::load_from(&PathBuf::from("/nonexistent/daemon.toml"), false, vec![]).unwrap();
    assert_eq!(s.store_url, "sqlite://cierre.db");
    assert_eq!(s.sqlite_mmap_bytes, cierre::store::sqlite::DEFAULT_MMAP_BYTES);
    assert_eq!(s.source.base_url.as_str(), "https://www.datos.gov.co/");
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(s.schedule.timezone, chrono_tz::America::Bogota);
    // Asked for explicitly, a missing file is an error.
    assert!(config::load_from(&PathBuf::from("/nonexistent/daemon.toml"), true, vec![]).is_err());
}

#[test]
fn type_errors_unknown_keys_and_range_errors_are_reported_together_each_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.toml");
    std::fs::write(
        &path,
        r#"[source]
page_size = "mil"
max_retries = -1
retries = 3

[[routes]]
office = "nadie"
match = { nit_entidad = "1" }
continue = "si"

[http]
listen = 5
"#,
    )
    .unwrap();
    let env = vec![
        ("CIERRE__SOURCE__REQUEST_TIMEOUT_SECS".to_string(), "pronto".to_string()),
        ("CIERRE__SOURCE__MAX_VANISHED_SHARE".to_string(), "2".to_string()),
    ];
    let errors = config::load_from(&path, true, env).unwrap_err();
    let all = errors.to_string();
    let file = path.display().to_string();
    for expected in [
        format!("{file}:2: source.page_size: string \"mil\" is not an integer"),
        format!("{file}:3: source.max_retries: -1 is not between 0 and 100"),
        format!("{file}:4: source.retries: unknown key"),
        format!("{file}:9: routes[0].continue: string \"si\" is not a boolean"),
        format!("{file}:7: routes[0].office: no office has id `nadie`"),
        format!("{file}:12: http.listen: `5` is not an address"),
        "environment variable CIERRE__SOURCE__REQUEST_TIMEOUT_SECS: source.request_timeout_secs: string \"pronto\" is not an integer".to_string(),
        "environment variable CIERRE__SOURCE__MAX_VANISHED_SHARE: source.max_vanished_share: 2 is not a share".to_string(),
    ] {
        assert!(all.contains(&expected), "expected `{expected}` in:\n{all}");
    }
    assert_eq!(errors.0.len(), 8, "{all}");
}
