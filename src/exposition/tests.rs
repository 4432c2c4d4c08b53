use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::catalogue;
use crate::db::{QueryResult, Series};
use crate::engine::{QuerySnapshot, QueryStats, TargetSnapshot};

fn process() -> Process {
    Process { version: "1.2.3", revision: "abc", last_reload_ok: true, last_reload_success: 1.5 }
}

fn served(series: Vec<Vec<Series>>) -> QuerySnapshot {
    let result = Arc::new(QueryResult { series, rows: 1, null_values: 0 });
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
        queries,
        pool: (2, 1, 1, 0),
        probe_errors: Default::default(),
    };
    Snapshot { catalogue, targets: vec![target], duration: Duration::from_millis(5) }
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
    let text = encode(&snap, &process(), Format::PrometheusText);
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
    let text = encode(&snap, &process(), Format::OpenMetrics);
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
    let text = encode(&snap, &process(), Format::PrometheusText);
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

#[test]
fn format_negotiation() {
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
        Format::OpenMetrics
    );
    assert_eq!(Format::negotiate(Some("text/plain")), Format::PrometheusText);
    assert_eq!(Format::negotiate(None), Format::PrometheusText);
}
