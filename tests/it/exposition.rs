//! What `/metrics` and `/probe` serve (issue 16): the format the `Accept` header asks for, with its weights and
//! Prometheus' own headers; the exporter's own metrics only on `/metrics`; the standard process metrics.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::data::catalogue;
use crate::support::exposition::promtool_check;
use crate::support::http::{self, Client};
use crate::support::openmetrics::{self, Dialect};
use crate::support::process::memory_kib;
use crate::support::{Db, Exporter, Metrics};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `Accept` header Prometheus 2.x sends by default.
const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// The `Accept` header Prometheus 3.x sends by default.
const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                            application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
                            text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

#[test]
fn the_format_follows_the_accept_header_and_its_weights() {
    let db = Db::new("negotiate");
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).start();
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("no Accept header", None, TEXT),
        ("Prometheus 2.x", Some(PROMETHEUS_2), OPENMETRICS),
        ("Prometheus 3.x", Some(PROMETHEUS_3), OPENMETRICS),
        ("OpenMetrics 1.0.0", Some("application/openmetrics-text; version=1.0.0"), OPENMETRICS),
        ("OpenMetrics 0.0.1", Some("application/openmetrics-text;version=0.0.1"), OPENMETRICS),
        ("OpenMetrics without a version", Some("application/openmetrics-text"), OPENMETRICS),
        (
            "text weighted above OpenMetrics",
            Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.1"),
            TEXT,
        ),
        (
            "OpenMetrics weighted above text, listed last",
            Some("text/plain;q=0.2,application/openmetrics-text;q=0.8"),
            OPENMETRICS,
        ),
        ("OpenMetrics refused with q=0", Some("application/openmetrics-text;version=1.0.0;q=0,text/plain;q=0.1"), TEXT),
        ("a wildcard", Some("*/*"), TEXT),
        ("text 1.0.0", Some("text/plain;version=1.0.0;escaping=allow-utf-8"), TEXT),
        ("an OpenMetrics version we do not serve", Some("application/openmetrics-text;version=2.0.0"), TEXT),
        ("nothing we serve", Some("application/json"), TEXT),
        ("a malformed weight", Some("application/openmetrics-text;q=high,text/plain;q=0.5"), TEXT),
    ];
    let client = Client::new(Duration::from_secs(30));
    let mut text_body = String::new();
    for (case, accept, expected) in cases {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let answer = client.fetch(&exporter.url("/metrics"), &headers).unwrap_or_else(|no| panic!("{case}: {no:?}"));
        assert_eq!(answer.status, 200, "{case}");
        assert_eq!(answer.header("content-type"), Some(*expected), "{case}: Accept {accept:?}");
        let dialect = if *expected == OPENMETRICS { Dialect::OpenMetrics } else { Dialect::Text004 };
        if let Err(e) = openmetrics::check(&answer.body, dialect) {
            panic!("{case}: not valid {dialect:?}: {e}\n{}", answer.body);
        }
        if dialect == Dialect::Text004 {
            text_body = answer.body;
        }
    }
    let complaints = promtool_check(&text_body);
    assert!(complaints.trim().is_empty(), "promtool check metrics: {complaints}\n{text_body}");
}

/// The metric names of one exposition in the classic text format.
fn names(text: &str) -> BTreeSet<String> {
    Metrics::parse(text).samples.into_iter().map(|(name, _, _)| name).collect()
}

#[test]
fn probe_serves_the_target_and_metrics_serves_the_exporter_too() {
    let db = Db::new("probescope");
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).start();
    let (status, probe) = http::get(&exporter.url("/probe?target=default"), &[]);
    assert_eq!(status, 200, "{probe}");
    let probed = names(&probe);
    let all = names(&exporter.scrape());
    for per_target in
        ["quick_value", "pg_up", "runbook_exporter_query_success", "runbook_exporter_pool_open_connections"]
    {
        assert!(probed.contains(per_target), "/probe lacks {per_target}:\n{probe}");
    }
    assert!(probed.is_subset(&all), "/probe has what /metrics has not: {:?}", probed.difference(&all));
    let exporter_level: Vec<&str> = all.difference(&probed).map(String::as_str).collect();
    assert_eq!(
        exporter_level,
        [
            "process_cpu_seconds_total",
            "process_max_fds",
            "process_open_fds",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
            "runbook_exporter_build_info",
            "runbook_exporter_config_last_reload_success_timestamp_seconds",
            "runbook_exporter_config_last_reload_successful",
            "runbook_exporter_http_auth_bcrypt_verifications_total",
            "runbook_exporter_http_connections_evicted_total",
            "runbook_exporter_http_connections_idle_closed_total",
            "runbook_exporter_http_connections_refused_total",
            "runbook_exporter_scrape_duration_seconds",
        ],
        "exactly the exporter-level metrics are on /metrics only"
    );
    let (status, body) = http::get(&exporter.url("/probe?target=elsewhere"), &[]);
    assert_eq!((status, body.as_str()), (400, "unknown target; configured targets: default\n"));
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The soft limit on open files of process `pid`, as `/proc` has it.
fn max_open_files(pid: u32) -> f64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line["Max open files".len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn process_metrics_describe_the_exporter_process() {
    let db = Db::new("process");
    let before = unix_now();
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).start();
    let m = exporter.metrics();
    let after = unix_now();
    let started = m.get("process_start_time_seconds", &[]);
    assert!(
        before - 1.0 <= started && started <= after,
        "started at {started}, the test started it between {before} and {after}"
    );
    let (rss_kib, _) = memory_kib(exporter.pid());
    let rss = m.get("process_resident_memory_bytes", &[]);
    let proc_rss = rss_kib as f64 * 1024.0;
    assert!(rss > proc_rss / 2.0 && rss < proc_rss * 2.0, "resident {rss} bytes, /proc says {proc_rss}");
    assert!(m.get("process_virtual_memory_bytes", &[]) >= rss);
    assert_eq!(m.get("process_max_fds", &[]), max_open_files(exporter.pid()));
    let cpu = m.get("process_cpu_seconds_total", &[]);
    assert!(cpu > 0.0, "the exporter has used no CPU time: {cpu}");

    let open = m.get("process_open_fds", &[]);
    let held: Vec<std::net::TcpStream> =
        (0..20).map(|_| std::net::TcpStream::connect(&exporter.address).unwrap()).collect();
    let m = exporter.metrics();
    assert!(
        m.get("process_open_fds", &[]) >= open + 20.0,
        "20 more connections, open fds {open} -> {}",
        m.get("process_open_fds", &[])
    );
    assert!(m.get("process_cpu_seconds_total", &[]) >= cpu, "CPU time went backwards");
    drop(held);
}
