use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::catalogue;
use crate::db::{ErrorKind, QueryResult, Series};
use crate::engine::{QuerySnapshot, QueryStats, Snapshot, Status, TargetSnapshot, UnitSnapshot};

fn process() -> Process {
    Process {
        version: "1.2.3",
        revision: "abc",
        last_reload_ok: true,
        last_reload_success: 1.5,
        started_at: 2.5,
        resources: None,
        http: Default::default(),
    }
}

fn served(series: Vec<Vec<Series>>) -> QuerySnapshot {
    let result = Arc::new(QueryResult { series, rows: 1, null_values: 0, truncated_rows: 0 });
    QuerySnapshot {
        status: Status::Served { result, age: Duration::ZERO, cached: false },
        stats: QueryStats::default(),
    }
}

fn series(labels: &str, value: f64) -> Series {
    Series { labels: labels.into(), value }
}

fn snapshot(yaml: &str, queries: Vec<QuerySnapshot>) -> Snapshot {
    let catalogue = Arc::new(catalogue::parse(yaml, "t.yaml").unwrap());
    let target = TargetSnapshot {
        label: None,
        up: true,
        facts: None,
        down_because: None,
        units: vec![UnitSnapshot { datname: None, label: None, queries }],
        pool: crate::db::PoolStats { max: 2, open: 1, idle: 1, waiting: 0 },
        probe_errors: Default::default(),
    };
    Snapshot { catalogue, targets: vec![target], files: Vec::new(), duration: Duration::from_millis(5) }
}

const TWO_SOURCES: &str = r#"
queries:
  a:
    help: 'Help with \ backslash and "quotes".'
    sql: SELECT 1
    metrics:
      - {name: things_total, type: counter, value: v, labels: [l]}
      - {name: level, type: gauge, value: w}
  b:
    help: Second source.
    sql: SELECT 1
    metrics: [{name: things, type: counter, value: v, labels: [l]}]
"#;

#[test]
fn families_merge_sources_and_drop_cross_query_duplicates() {
    let snap = snapshot(
        TWO_SOURCES,
        vec![
            served(vec![vec![series(r#"l="x""#, 1.0)], vec![series("", f64::NEG_INFINITY)]]),
            served(vec![vec![series(r#"l="y""#, 2.0), series(r#"l="x""#, 9.0)]]),
        ],
    );
    let text = encode(&snap, &process(), Format::PrometheusText, Endpoint::Metrics);
    let family: Vec<&str> = text.lines().take_while(|l| !l.starts_with("# HELP level")).collect();
    assert_eq!(
        family,
        vec![
            r#"# HELP things_total Help with \\ backslash and "quotes"."#,
            "# TYPE things_total counter",
            r#"things_total{l="x"} 1"#,
            r#"things_total{l="y"} 2"#,
        ]
    );
    assert!(text.contains("level -Inf\n"));
    assert!(!text.contains("# EOF"));
}

#[test]
fn openmetrics_escapes_help_quotes_and_ends_with_eof() {
    let snap = snapshot(TWO_SOURCES, vec![served(vec![vec![series(r#"l="x""#, 1.5)], vec![]]), served(vec![vec![]])]);
    let text = encode(&snap, &process(), Format::OpenMetrics, Endpoint::Metrics);
    assert!(text.starts_with("# HELP things Help with \\\\ backslash and \\\"quotes\\\".\n# TYPE things counter\nthings_total{l=\"x\"} 1.5\n"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    // A family without series is left out entirely.
    assert!(!text.contains("# HELP level"));
}

#[test]
fn self_metrics_describe_each_status() {
    let yaml = r#"
queries:
  ok: {help: x, sql: SELECT 1, metrics: [{name: m1, type: gauge, value: v}]}
  failed: {help: x, sql: SELECT 1, metrics: [{name: m2, type: gauge, value: v}]}
  skipped: {help: x, sql: SELECT 1, metrics: [{name: m3, type: gauge, value: v}]}
"#;
    let mut stats = QueryStats::default();
    stats.errors.insert(ErrorKind::Timeout, 3);
    let snap = snapshot(
        yaml,
        vec![
            served(vec![vec![series("", 7.0)]]),
            QuerySnapshot { status: Status::Failed(ErrorKind::Timeout), stats },
            QuerySnapshot { status: Status::Skipped("extension x not installed".into()), stats: QueryStats::default() },
        ],
    );
    let text = encode(&snap, &process(), Format::PrometheusText, Endpoint::Metrics);
    for line in [
        "pg_up 1",
        r#"runbook_exporter_query_success{query="ok"} 1"#,
        r#"runbook_exporter_query_success{query="failed"} 0"#,
        r#"runbook_exporter_query_errors_total{query="failed",kind="timeout"} 3"#,
        r#"runbook_exporter_query_errors_total{query="ok",kind="sql"} 0"#,
        r#"runbook_exporter_query_skipped{query="skipped",reason="extension x not installed"} 1"#,
        r#"runbook_exporter_query_series{query="ok"} 1"#,
        r#"runbook_exporter_build_info{version="1.2.3",revision="abc"} 1"#,
        "runbook_exporter_pool_max_connections 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains(r#"runbook_exporter_query_success{query="skipped"}"#));
}

#[test]
fn values_are_spelled_for_both_formats() {
    let mut s = String::new();
    for v in [1.0, 0.5, -2.0, 1e21, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-7] {
        push_value(&mut s, v);
        s.push(' ');
    }
    assert_eq!(s, "1 0.5 -2 1000000000000000000000 NaN +Inf -Inf 0.0000001 ");
}

/// What Prometheus 2.x sends by default.
const PROMETHEUS_2_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// What Prometheus 3.x sends by default.
const PROMETHEUS_3_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

#[test]
fn format_negotiation_follows_the_weights() {
    let om = Format::OpenMetrics;
    let text = Format::PrometheusText;
    for (accept, wanted) in [
        (Some(PROMETHEUS_2_ACCEPT), om),
        (Some(PROMETHEUS_3_ACCEPT), om),
        (Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.1"), text),
        (Some("application/openmetrics-text;version=1.0.0;q=0.1,text/plain;version=0.0.4;q=0.9"), text),
        (Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"), om),
        (Some("application/openmetrics-text"), om),
        (Some("application/openmetrics-text; version=0.0.1"), om),
        (Some("application/openmetrics-text;version=2.0.0"), text),
        (Some("application/openmetrics-text;q=0,text/plain"), text),
        (Some("application/openmetrics-text;q=0"), text),
        (Some("text/plain"), text),
        (Some("*/*"), text),
        (Some("text/html,application/xhtml+xml,*/*;q=0.8"), text),
        (Some("application/json"), text),
        (Some("application/openmetrics-text;q=banana,text/plain;q=0.2"), text),
        (Some("APPLICATION/OpenMetrics-Text ; Version=1.0.0 ; Q=0.7 , text/plain ; q=0.6"), om),
        (Some(""), text),
        (None, text),
    ] {
        assert_eq!(Format::negotiate(accept), wanted, "{accept:?}");
    }
    assert_eq!(
        Format::OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
    );
    assert_eq!(Format::PrometheusText.content_type(), "text/plain; version=0.0.4; charset=utf-8");
}

#[test]
fn file_sets_expose_their_scan_or_why_it_failed() {
    use crate::engine::FileSetSnapshot;
    use crate::files::{FileInfo, Scan};
    let yaml = r#"
queries: {q: {help: x, sql: SELECT 1, metrics: [{name: m, type: gauge, value: v}]}}
files:
  pg_backup: {help: "Backups.", directory: /b, pattern: "backup-*", header: PGDMP}
  other: {help: "Other.", directory: /missing, pattern: "*"}
"#;
    let mut snap = snapshot(yaml, vec![served(vec![vec![]])]);
    let scan = Scan {
        files: 2,
        newest: Some(FileInfo { modified: 1_700_000_000.0, size: 40 }),
        previous: Some(FileInfo { modified: 1_699_900_000.0, size: 4000 }),
        header_match: Some(false),
    };
    snap.files = vec![
        FileSetSnapshot { name: "pg_backup".into(), outcome: Ok(Arc::new(scan)), age: Duration::ZERO },
        FileSetSnapshot {
            name: "other".into(),
            outcome: Err("directory /missing does not exist".into()),
            age: Duration::ZERO,
        },
    ];
    let text = encode(&snap, &process(), Format::PrometheusText, Endpoint::Metrics);
    for line in [
        "# HELP pg_backup_files Number of files, of the files matching backup-* in /b (symlinks not followed): Backups. Cached for up to 1 minute.",
        "pg_backup_files 2",
        "pg_backup_newest_timestamp_seconds 1700000000",
        "pg_backup_newest_size_bytes 40",
        "pg_backup_previous_size_bytes 4000",
        "pg_backup_newest_header_match 0",
        r#"runbook_exporter_file_set_success{set="pg_backup"} 1"#,
        r#"runbook_exporter_file_set_success{set="other"} 0"#,
        r#"runbook_exporter_file_set_error{set="other",reason="directory /missing does not exist"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("other_files"), "a failed scan has no series");
}

#[test]
fn a_probe_carries_only_what_belongs_to_its_target() {
    let snap = snapshot(TWO_SOURCES, vec![served(vec![vec![series(r#"l="x""#, 1.0)], vec![]]), served(vec![vec![]])]);
    let full = encode(&snap, &process(), Format::PrometheusText, Endpoint::Metrics);
    let probe = encode(&snap, &process(), Format::PrometheusText, Endpoint::Probe);
    for name in ["things_total", "pg_up", "runbook_exporter_query_success", "runbook_exporter_pool_open_connections"] {
        assert!(probe.contains(&format!("\n{name}")), "{name} missing from the probe:\n{probe}");
    }
    for name in [
        "runbook_exporter_build_info",
        "runbook_exporter_config_last_reload_successful",
        "runbook_exporter_scrape_duration_seconds",
        "process_start_time_seconds",
    ] {
        assert!(full.contains(&format!("\n{name}")), "{name} missing from /metrics");
        assert!(!probe.contains(name), "{name} in the probe:\n{probe}");
    }
}

#[test]
fn process_metrics_come_from_the_resources_read() {
    let snap = snapshot(TWO_SOURCES, vec![served(vec![vec![], vec![]]), served(vec![vec![]])]);
    let resources = crate::procfs::Resources {
        cpu_seconds: 1.25,
        resident_bytes: 4096.0,
        virtual_bytes: 8192.0,
        open_fds: 7.0,
        max_fds: 1024.0,
    };
    let with = Process { resources: Some(resources), ..process() };
    let text = encode(&snap, &with, Format::PrometheusText, Endpoint::Metrics);
    for line in [
        "process_cpu_seconds_total 1.25",
        "process_resident_memory_bytes 4096",
        "process_virtual_memory_bytes 8192",
        "process_open_fds 7",
        "process_max_fds 1024",
        "process_start_time_seconds 2.5",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let without = encode(&snap, &process(), Format::PrometheusText, Endpoint::Metrics);
    assert!(!without.contains("process_open_fds"), "no made-up values where /proc could not be read");
}
