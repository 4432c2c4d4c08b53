//! `runbook-exporter check` for CI (issue 17): `--offline` contacts no database, `--output json` is JSON in
//! both modes and for a configuration that does not load, and the exit codes are 0 (no errors), 1 (errors, or
//! the configuration does not load) and 2 (bad flags).

use std::net::TcpListener;
use std::path::Path;

use serde_json::Value;

use crate::support::data::{catalogue, root};
use crate::support::exporter::{Run, run};
use crate::support::{Db, free_port};

/// A catalogue with one query that works and, with `failing`, one that fails on the server.
fn catalogue_file(dir: &Path, failing: bool) -> String {
    let path = dir.join("queries.yaml");
    let mut text = catalogue("quick");
    if failing {
        text.push_str(
            "  missing:\n    help: Reads a table that does not exist.\n    sql: SELECT count(*) AS n FROM no_such_table\n    \
             metrics: [{name: missing_rows, type: gauge, value: n}]\n",
        );
    }
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn json(checked: &Run) -> Value {
    serde_json::from_str(&checked.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", checked.output()))
}

#[test]
fn offline_check_contacts_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = catalogue_file(dir.path(), false);
    let closed = format!("postgres://postgres:pw@127.0.0.1:{}/postgres", free_port());
    let online = run(&["check", "--config.file", &config], &[("DATABASE_URL", &closed)]);
    assert_eq!(online.code, 1, "a closed port is an error when checking online: {}", online.output());
    let offline = run(&["check", "--offline", "--config.file", &config], &[("DATABASE_URL", &closed)]);
    assert_eq!(offline.code, 0, "{}", offline.output());
    assert!(offline.stdout.contains("offline: no database contacted"), "{}", offline.output());
    assert!(offline.stdout.contains("0 error(s)"), "{}", offline.output());

    // A port that listens: an offline check must not even connect to it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("postgres://postgres:pw@{}/postgres", listener.local_addr().unwrap());
    let offline = run(&["check", "--offline", "--config.file", &config], &[("DATABASE_URL", &url)]);
    assert_eq!(offline.code, 0, "{}", offline.output());
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the offline check connected: {accepted:?}"
    );
}

#[test]
fn json_output_in_both_modes() {
    let db = Db::new("checkjson");
    let dir = tempfile::tempdir().unwrap();
    let good = catalogue_file(dir.path(), false);
    let online = run(&["check", "--config.file", &good, "--output", "json"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(online.code, 0, "{}", online.output());
    let report = json(&online);
    assert_eq!((report["offline"].as_bool(), report["errors"].as_u64()), (Some(false), Some(0)));
    let query = &report["targets"][0]["queries"][0];
    assert_eq!(
        (query["name"].as_str(), query["status"].as_str(), query["rows"].as_u64()),
        (Some("quick"), Some("ok"), Some(1))
    );
    assert!(query["duration_ms"].as_f64().is_some(), "{query}");

    let offline =
        run(&["check", "--offline", "--config.file", &good, "--output", "json"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(offline.code, 0, "{}", offline.output());
    let report = json(&offline);
    assert_eq!((report["offline"].as_bool(), report["errors"].as_u64()), (Some(true), Some(0)));
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(0));
    assert_eq!(report["queries"].as_u64(), Some(1));

    let failing = catalogue_file(dir.path(), true);
    let online = run(&["check", "--config.file", &failing, "--output", "json"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(online.code, 1, "a failing query fails the check: {}", online.output());
    let report = json(&online);
    assert_eq!(report["errors"].as_u64(), Some(1));
    let statuses: Vec<&str> =
        report["targets"][0]["queries"].as_array().unwrap().iter().filter_map(|q| q["status"].as_str()).collect();
    assert_eq!(statuses.len(), 2, "{report}");
    assert_eq!(statuses[0], "ok");
    assert!(statuses[1].starts_with("ERROR sql: 42P01"), "{statuses:?}");
}

#[test]
fn a_configuration_that_does_not_load_is_reported_as_json() {
    let fixture = root().join("tests/config/bad-unknown-keys-everywhere.yaml");
    let file = fixture.to_str().unwrap();
    for mode in [&["check", "--offline"][..], &["check"]] {
        let args: Vec<&str> = mode.iter().copied().chain(["--config.file", file, "--output", "json"]).collect();
        let checked = run(&args, &[]);
        assert_eq!(checked.code, 1, "{}", checked.output());
        let report = json(&checked);
        let errors = report["errors"].as_array().expect("an errors array");
        assert_eq!(report["error_count"].as_u64(), Some(errors.len() as u64));
        // Every unknown key at once, each with its place and a suggestion.
        let fields: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(
            fields,
            [
                "defualts",
                "targets.main.max_conections",
                "queries.a.requries",
                "queries.b.requires.min_verison",
                "queries.b.metrics[0].const_label",
                "files.backups.hedaer"
            ]
        );
        for e in errors {
            assert_eq!(e["file"].as_str(), Some(file));
            assert!(e["line"].as_u64().is_some_and(|l| l > 0) && e["column"].as_u64().is_some_and(|c| c > 0), "{e}");
            assert!(e["message"].as_str().is_some_and(|m| m.contains("; did you mean `")), "{e}");
        }
    }
    let missing = run(&["check", "--offline", "--config.file", "/nonexistent/q.yaml", "--output", "json"], &[]);
    assert_eq!(missing.code, 1);
    let report = json(&missing);
    assert_eq!(report["error_count"].as_u64(), Some(1));
    assert_eq!(report["errors"][0]["file"].as_str(), Some("/nonexistent/q.yaml"));
    assert!(report["errors"][0]["message"].as_str().is_some_and(|m| m.contains("cannot read catalogue")), "{report}");
}

#[test]
fn exit_codes_are_0_for_no_errors_1_for_errors_and_2_for_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let good = catalogue_file(dir.path(), false);
    let bad = root().join("tests/config/bad-several.yaml");
    let bad = bad.to_str().unwrap();
    let cases: [(&[&str], i32); 7] = [
        (&["check", "--offline", "--config.file", &good], 0),
        (&["check", "--offline", "--config.file", bad], 1),
        (&["check", "--offline", "--config.file", bad, "--output", "json"], 1),
        (&["check", "--offline", "--config.file", &good, "--output", "yaml"], 2),
        (&["check", "--offline", "--explain", "--config.file", &good], 2),
        (&["check", "--offline", "--config.file", &good, "--database.connect-timeout", "5"], 2),
        (&["check", "--no-such-flag"], 2),
    ];
    for (args, code) in cases {
        let checked = run(args, &[]);
        assert_eq!(checked.code, code, "{args:?}: {}", checked.output());
        assert!(!checked.output().contains("panicked"), "{}", checked.output());
    }
}
