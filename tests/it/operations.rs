//! Operating it (issue 5): reload, several targets, /probe, readiness, `check` and `once`.

use std::time::{Duration, Instant};

use crate::support::cluster::exporter_backends;
use crate::support::data::{catalogue, root, template};
use crate::support::exporter::run;
use crate::support::http::{get, post};
use crate::support::process::signal;
use crate::support::{Cluster, Db, Exporter, Metrics, PASSWORD, eventually};

/// One query whose value (1) is the metric `name`.
fn one(name: &str) -> String {
    template("catalogues/one.yaml", &[("METRIC", name)])
}

#[test]
fn reload_applies_a_good_file_and_keeps_the_running_one_on_a_bad_file() {
    let db = Db::new("reload");
    let exporter = Exporter::with(&one("first_metric")).db(&db.url).start();
    let m = exporter.metrics();
    assert_eq!(m.get("first_metric", &[]), 1.0);
    let loaded_at = m.get("runbook_exporter_config_last_reload_success_timestamp_seconds", &[]);
    let backends = exporter_backends(&mut db.client());
    assert!(!backends.is_empty());

    std::fs::write(&exporter.config, one("second_metric")).unwrap();
    let (status, body) = post(&exporter.url("/-/reload"));
    assert_eq!(status, 200, "{body}");
    let m = exporter.metrics();
    assert!(!m.has("first_metric"));
    assert_eq!(m.get("second_metric", &[]), 1.0);
    assert_eq!(m.get("runbook_exporter_config_last_reload_successful", &[]), 1.0);
    assert!(m.get("runbook_exporter_config_last_reload_success_timestamp_seconds", &[]) > loaded_at);
    // Connection settings did not change: the pool and its connections are kept.
    assert_eq!(exporter_backends(&mut db.client()), backends);

    std::fs::write(&exporter.config, catalogue("bad_name")).unwrap();
    let (status, body) = post(&exporter.url("/-/reload"));
    assert_eq!(status, 500);
    assert!(body.contains("queries.yaml:5:22: queries.broken.metrics[0].name: invalid metric name"), "{body}");
    let m = exporter.metrics();
    assert_eq!(m.get("second_metric", &[]), 1.0, "the running configuration must stay");
    assert_eq!(m.get("runbook_exporter_config_last_reload_successful", &[]), 0.0);
    assert!(eventually(Duration::from_secs(5), || exporter
        .logs()
        .contains("reload failed; keeping the running configuration")));

    std::fs::write(&exporter.config, one("third_metric")).unwrap();
    signal(exporter.pid(), "HUP");
    assert!(eventually(Duration::from_secs(10), || exporter.metrics().find("third_metric", &[]) == vec![1.0]));
    assert_eq!(exporter.metrics().get("runbook_exporter_config_last_reload_successful", &[]), 1.0);

    std::fs::remove_file(&exporter.config).unwrap();
    let (status, body) = post(&exporter.url("/-/reload"));
    assert_eq!(status, 500);
    assert!(body.contains("cannot read catalogue"), "{body}");
    assert_eq!(exporter.metrics().get("third_metric", &[]), 1.0);
}

#[test]
fn several_targets_with_roles_and_probe() {
    let mut primary = Db::on(Cluster::start(), "roles");
    primary.client().batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (7)").unwrap();
    let standby = primary.cluster().standby_by_copy("standby", &[]);
    let standby_url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/t_roles", standby.port);
    let catalogue = template("catalogues/roles.yaml", &[("MAIN_URL", &primary.url), ("STANDBY_URL", &standby_url)]);
    let exporter = Exporter::with(&catalogue).db("postgres://unused@127.0.0.1:1/x").start();
    let m = exporter.metrics();
    assert_eq!(m.get("pg_up", &[("target", "main")]), 1.0);
    assert_eq!(m.get("pg_up", &[("target", "standby")]), 1.0);
    assert_eq!(m.get("table_value", &[("target", "main")]), 7.0);
    assert_eq!(m.get("table_value", &[("target", "standby")]), 7.0);
    assert_eq!(m.find("primary_only", &[]).len(), 1);
    assert_eq!(m.get("primary_only", &[("target", "main")]), 1.0);
    assert_eq!(m.get("replica_only", &[("target", "standby")]), 1.0);
    assert_eq!(m.find("replica_only", &[]).len(), 1);
    assert_eq!(
        m.get(
            "runbook_exporter_query_skipped",
            &[("target", "standby"), ("query", "writer_only"), ("reason", "server is a replica")]
        ),
        1.0
    );
    assert_eq!(m.find("main_only", &[]).len(), 1);
    assert!(m.find("runbook_exporter_query_success", &[("target", "standby"), ("query", "main_only")]).is_empty());

    let (status, body) = get(&exporter.url("/probe?target=standby"), &[]);
    assert_eq!(status, 200);
    let probe = Metrics::parse(&body);
    assert_eq!(probe.get("table_value", &[]), 7.0);
    assert!(probe.find("table_value", &[("target", "main")]).is_empty());
    for bad in
        ["/probe?target=postgres://evil.example/db", "/probe?target=nosuch", "/probe?target=127.0.0.1:5432", "/probe"]
    {
        let (status, body) = get(&exporter.url(bad), &[]);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, landing) = get(&exporter.url("/"), &[]);
    assert!(landing.contains("standby") && !landing.contains(PASSWORD), "{landing}");
}

#[test]
fn a_hung_target_neither_delays_nor_hides_the_others() {
    let healthy = Db::new("healthy");
    let mut hung = Db::on(Cluster::start(), "hung");
    let catalogue =
        template("catalogues/healthy_and_hung.yaml", &[("HEALTHY_URL", &healthy.url), ("HUNG_URL", &hung.url)]);
    let exporter = Exporter::with(&catalogue).db("postgres://unused@127.0.0.1:1/x").start();
    assert_eq!(exporter.metrics().find("pg_up", &[]), vec![1.0, 1.0]);
    hung.cluster().freeze();
    // Give the probe cache time to expire so the next scrape really talks to the hung server.
    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    let (status, body) = get(&exporter.url("/metrics"), &[("X-Prometheus-Scrape-Timeout-Seconds", "2")]);
    let took = start.elapsed();
    hung.cluster().thaw();
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(2500), "scrape took {took:?}");
    let m = Metrics::parse(&body);
    assert_eq!(m.get("answer", &[("target", "healthy")]), 1.0);
    assert_eq!(m.get("pg_up", &[("target", "healthy")]), 1.0);
    assert_eq!(m.get("pg_up", &[("target", "hung")]), 0.0);
    let (ready, _) = get(&exporter.url("/readyz"), &[]);
    assert_eq!(ready, 200, "the hung server was resumed, so readiness must come back");
}

#[test]
fn readiness_follows_the_database() {
    let mut db = Db::on(Cluster::start(), "ready");
    let exporter = Exporter::with(&one("x")).db(&db.url).args(&["--database.connect-timeout", "1s"]).start();
    assert_eq!(get(&exporter.url("/readyz"), &[]).0, 200);
    assert_eq!(get(&exporter.url("/healthz"), &[]).0, 200);
    db.cluster().stop();
    assert!(eventually(Duration::from_secs(10), || get(&exporter.url("/readyz"), &[]).0 == 503));
    assert_eq!(get(&exporter.url("/healthz"), &[]).0, 200);
}

#[test]
fn check_reports_every_query_and_fails_on_errors() {
    let db = Db::new("check");
    db.client()
        .batch_execute("CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 200000) g; ANALYZE big")
        .unwrap();
    let data = root().join("tests/data/catalogues");
    let (good, bad) = (data.join("check_good.yaml"), data.join("check_bad.yaml"));
    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());
    let db_env = [("DATABASE_URL", db.url.as_str())];
    let check = run(&["check", "--explain", "--config.file", good], &db_env);
    let out = &check.stdout;
    assert_eq!(check.code, 0, "{}", check.output());
    assert!(out.contains("server: PostgreSQL"), "{out}");
    let scan = out.lines().find(|l| l.starts_with("scan ")).unwrap_or_else(|| panic!("{out}"));
    assert!(scan.contains(" ok ") && scan.contains("sequential scan over big"), "{scan}");
    assert!(
        out.lines().any(|l| l.starts_with("needs_ext") && l.contains("skipped: extension postgis not installed")),
        "{out}"
    );
    assert!(!check.output().contains(PASSWORD));

    let check = run(&["check", "--config.file", bad], &db_env);
    assert_ne!(check.code, 0);
    assert!(check.stdout.lines().any(|l| l.starts_with("broken") && l.contains("ERROR sql")), "{}", check.stdout);
    assert!(check.stderr.contains("check found 1 error(s)"), "{}", check.stderr);

    let check = run(&["check", "--config.file", good], &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")]);
    assert_ne!(check.code, 0);
    assert!(check.stdout.contains("cannot connect"), "{}", check.stdout);

    let once = run(&["once", "--config.file", good], &db_env);
    assert_eq!(once.code, 0);
    assert_eq!(Metrics::parse(&once.stdout).get("big_rows", &[]), 200000.0);
}
