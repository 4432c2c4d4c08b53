//! Flags that take a path, an address or a duration (issue 17): a bad value stops the exporter before it
//! listens, with an error naming the flag or the file, a non-zero exit code and no panic; good values work.

use std::net::{TcpListener, TcpStream};

use crate::support::data::catalogue;
use crate::support::exporter::{Run, run};
use crate::support::http::get;
use crate::support::{Db, Exporter, free_port};

/// Runs the exporter with a good catalogue on a free loopback port, then `args` (which win over those), and
/// `env`; checks that it stopped with `code` before listening and without a panic, and that everything `expected`
/// is in what it printed.
fn refused(args: &[&str], env: &[(&str, &str)], code: i32, expected: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("queries.yaml");
    std::fs::write(&config, catalogue("quick")).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--config.file", config.to_str().unwrap()];
    // A flag would win over the environment variable a case may set.
    if !env.iter().any(|(k, _)| *k == "RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS") {
        all.extend(["--web.listen-address", &address]);
    }
    all.extend_from_slice(args);
    let stopped = run(&all, env);
    let out = stopped.output();
    assert_eq!(stopped.code, code, "{args:?} {env:?}: {out}");
    for e in expected {
        assert!(out.contains(e), "{args:?} {env:?}: expected {e:?} in:\n{out}");
    }
    assert!(!out.contains("panicked") && !out.contains("listening"), "{args:?} {env:?}: {out}");
    assert!(TcpStream::connect(&address).is_err(), "{args:?}: something listens on {address}");
    stopped
}

/// clap's exit code for a bad flag value.
const BAD_FLAG: i32 = 2;
/// The exit code of a start-up error.
const START_UP_ERROR: i32 = 1;

/// Each of `cases` (a value and why it is wrong) given to `flag` is refused with clap's exit code, naming the
/// flag, the value and the reason; the first value is refused from `env_var` too.
fn bad_values(flag: &str, env_var: &str, cases: &[(&str, &str)]) {
    for (value, why) in cases {
        refused(&[flag, value], &[], BAD_FLAG, &[&format!("'{value}' for '{flag}"), why]);
    }
    refused(&[], &[(env_var, cases[0].0)], BAD_FLAG, &[&format!("'{}' for '{flag}", cases[0].0)]);
}

#[test]
fn a_bad_telemetry_path_is_refused_naming_the_flag() {
    let cases = [
        ("metrics", "must start with / (e.g. /metrics)"),
        ("/probe", "/probe is already served by the exporter"),
        ("/-/reload", "/-/reload is already served by the exporter"),
        ("/a b", "must be a plain path: no spaces, ? or #"),
        ("/m?x=1", "must be a plain path: no spaces, ? or #"),
        ("//m", "must be a plain path: no empty segments"),
        ("/:param", "must be a plain path: no empty segments and no : * { segments"),
    ];
    bad_values("--web.telemetry-path", "RUNBOOK_EXPORTER_WEB_TELEMETRY_PATH", &cases);
}

#[test]
fn a_good_telemetry_path_serves_the_metrics_there() {
    let db = Db::new("telemetrypath");
    let exporter =
        Exporter::with(&catalogue("quick")).db(&db.url).args(&["--web.telemetry-path", "/internal/metrics"]).start();
    let (status, body) = get(&exporter.url("/internal/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(body.contains("quick_value 42"), "{body}");
    assert_ne!(get(&exporter.url("/metrics"), &[]).0, 200, "/metrics is not the telemetry path any more");
    let (_, landing) = get(&exporter.url("/"), &[]);
    assert!(landing.contains("href=\"/internal/metrics\""), "{landing}");
}

#[test]
fn a_bad_listen_address_is_refused_naming_the_flag() {
    let cases = [
        ("9432", "must be HOST:PORT or :PORT"),
        ("127.0.0.1", "must be HOST:PORT or :PORT"),
        (":70000", "\"70000\" is not a port number (0-65535)"),
        (":http", "\"http\" is not a port number"),
        ("::1:9432", "an IPv6 address needs brackets, e.g. [::1]:9432"),
        ("local host:9432", "the host must not contain spaces"),
    ];
    bad_values("--web.listen-address", "RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS", &cases);
}

#[test]
fn an_address_in_use_stops_start_up_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("queries.yaml");
    std::fs::write(&config, catalogue("quick")).unwrap();
    let stopped = run(&["--config.file", config.to_str().unwrap(), "--web.listen-address", &address], &[]);
    assert_eq!(stopped.code, START_UP_ERROR, "{}", stopped.output());
    let expected = format!("cannot listen on {address}: Address already in use");
    assert!(stopped.output().contains(&expected), "{}", stopped.output());
    assert!(!stopped.output().contains("panicked"));
}

#[test]
fn a_bad_duration_is_refused_naming_the_flag() {
    let cases = [("5", "time unit needed"), ("soon", "expected number"), ("5 parsecs", "unknown time unit")];
    bad_values("--database.connect-timeout", "RUNBOOK_EXPORTER_DATABASE_CONNECT_TIMEOUT", &cases);
    bad_values("--scrape.timeout", "RUNBOOK_EXPORTER_SCRAPE_TIMEOUT", &cases);
}

#[test]
fn a_path_that_cannot_be_read_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let (missing, directory) = (missing.to_str().unwrap(), dir.path().to_str().unwrap());
    for (flag, env_var, says) in [
        ("--config.file", "RUNBOOK_EXPORTER_CONFIG_FILE", "{}: cannot read catalogue"),
        ("--web.config.file", "RUNBOOK_EXPORTER_WEB_CONFIG_FILE", "{}: cannot read web config"),
        ("--database.password-file", "DATABASE_PASSWORD_FILE", "cannot read password file {}"),
    ] {
        for path in [missing, directory] {
            refused(&[flag, path], &[], START_UP_ERROR, &[&says.replace("{}", path)]);
        }
        if env_var != "RUNBOOK_EXPORTER_CONFIG_FILE" {
            refused(&[], &[(env_var, missing)], START_UP_ERROR, &[&says.replace("{}", missing)]);
        }
    }
}
