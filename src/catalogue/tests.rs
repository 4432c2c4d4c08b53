use std::time::Duration;

use super::load::yaml_options;
use super::*;

fn ok(yaml: &str) -> Catalogue {
    parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn diagnostics(yaml: &str) -> Vec<Diagnostic> {
    match parse(yaml, "test.yaml") {
        Err(Error::Invalid { diagnostics, .. }) => diagnostics,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn defaults_apply_and_queries_override_them() {
    let c = ok(r#"
defaults: {timeout: 3s, ttl: 1m, max_series: 50, lock_timeout: 200ms}
queries:
  a:
    help: "A (runbook: Health Check)."
    sql: SELECT 1 AS v
    metrics: [{name: a, type: gauge, value: v}]
  b:
    help: B.
    ttl: 0s
    timeout: 500ms
    sql: SELECT 1 AS v
    metrics: [{name: b, type: gauge, value: v}]
"#);
    let (a, b) = (&c.queries[0], &c.queries[1]);
    assert_eq!(
        (a.timeout, a.ttl, a.max_series, a.lock_timeout),
        (Duration::from_secs(3), Duration::from_secs(60), 50, Duration::from_millis(200))
    );
    assert_eq!((b.timeout, b.ttl), (Duration::from_millis(500), Duration::ZERO));
}

#[test]
fn built_in_defaults_when_there_is_no_defaults_block() {
    let c = ok("queries: {a: {help: x, sql: SELECT 1 AS v, metrics: [{name: a, type: gauge, value: v}]}}");
    let q = &c.queries[0];
    assert_eq!((q.timeout, q.ttl, q.max_series), (Duration::from_secs(5), Duration::ZERO, 1000));
}

#[test]
fn counter_suffix_is_stripped_and_families_merge_across_queries() {
    let c = ok(r#"
queries:
  old:
    help: Old layout.
    requires: {max_version: 12}
    sql: SELECT 1 AS v, 'x' AS l
    metrics: [{name: calls_total, type: counter, value: v, labels: [l]}]
  new:
    help: New layout.
    requires: {min_version: 13, extensions: [pg_stat_statements], tables: [public.t]}
    sql: SELECT 1 AS v, 'x' AS l
    metrics: [{name: calls, type: counter, value: v, labels: [l], help: Calls.}]
"#);
    assert_eq!(c.families.len(), 1);
    let f = &c.families[0];
    assert_eq!((f.name.as_str(), f.kind, f.help.as_str()), ("calls", MetricKind::Counter, "Old layout."));
    assert_eq!(f.sources, vec![Source { query: 0, metric: 0 }, Source { query: 1, metric: 0 }]);
    assert_eq!(c.queries[1].requires.extensions, vec![ExtensionRequirement::parse("pg_stat_statements").unwrap()]);
    assert_eq!(c.queries[1].requires.min_version, Some(13));
}

#[test]
fn help_whitespace_is_collapsed() {
    let c = ok(
        "queries: {a: {help: \"  two\\n lines  \", sql: SELECT 1 AS v, metrics: [{name: a, type: gauge, value: v}]}}",
    );
    assert_eq!(c.queries[0].help, "two lines");
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let d = diagnostics(
        r#"queries:
  Bad-Name:
    help: ""
    sql: " "
    metrics: []
  b:
    help: x
    requires: {min_version: 15, max_version: 13}
    max_series: 0
    sql: SELECT 1 AS v
    metrics: [{name: b, type: gauge, value: v, labels: [v, __x]}]
"#,
    );
    let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "queries.Bad-Name",
            "queries.Bad-Name.help",
            "queries.Bad-Name.sql",
            "queries.Bad-Name.metrics",
            "queries.b.requires.max_version",
            "queries.b.max_series",
            "queries.b.metrics[0].value",
            "queries.b.metrics[0].labels",
        ]
    );
    assert!(d.iter().all(|d| d.line > 0 && d.column > 0), "{d:?}");
}

#[test]
fn alias_bombs_hit_the_parser_budget() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g"].iter().zip(["b", "c", "d", "e", "f", "g", "h"]) {
        bomb.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 10].join(", ")));
    }
    let r: Result<serde_json::Value, _> = serde_saphyr::from_str_with_options(&bomb, yaml_options());
    assert!(r.is_err(), "a 10^8-node alias bomb was expanded");
}

#[test]
fn name_rules() {
    assert!(is_metric_name("pg_up") && is_metric_name("a:b_c9") && is_metric_name("_x"));
    assert!(!is_metric_name("9a") && !is_metric_name("a-b") && !is_metric_name("") && !is_metric_name("é"));
    assert!(is_label_name("datname") && is_label_name("_a"));
    assert!(!is_label_name("__name__") && !is_label_name("a:b") && !is_label_name("1a"));
}

#[test]
fn extension_version_constraints() {
    let req = |s: &str| ExtensionRequirement::parse(s).unwrap();
    assert!(req("pg_stat_statements").accepts("1.0"));
    assert!(req("pg_stat_statements >= 1.8").accepts("1.8"));
    assert!(req("pg_stat_statements >= 1.8").accepts("1.10"), "1.10 is newer than 1.8, not 1.1");
    assert!(!req("pg_stat_statements >= 1.8").accepts("1.7"));
    assert!(req("x<2").accepts("1.9.9") && !req("x<2").accepts("2.0"));
    assert!(req("x = 1.2").accepts("1.2.0") && !req("x > 1.2").accepts("1.2"));
    assert_eq!(req("pg_stat_statements>=1.8").to_string(), "pg_stat_statements >= 1.8");
    for bad in ["", "a b", "x >= ", "x >= 1.a", "x ~ 1", ">= 1"] {
        assert!(ExtensionRequirement::parse(bad).is_err(), "{bad:?} was accepted");
    }
    let d = diagnostics(
        "queries: {a: {help: x, requires: {extensions: [\"pgss >= one\"]}, sql: SELECT 1 AS v, metrics: [{name: a, type: gauge, value: v}]}}",
    );
    assert_eq!(d[0].field, "queries.a.requires.extensions");
    assert!(d[0].message.contains("invalid version"), "{d:?}");
}

#[test]
fn a_ttl_adds_a_caching_note_to_help() {
    let c = ok(r#"
queries:
  slow:
    help: Slow one
    ttl: 5m
    sql: SELECT 1 AS v
    metrics: [{name: slow, type: gauge, value: v}, {name: slow_b, type: gauge, value: v, help: "Own help."}]
  fast:
    help: Fast one.
    sql: SELECT 1 AS v
    metrics: [{name: fast, type: gauge, value: v}]
"#);
    let help: Vec<&str> = c.families.iter().map(|f| f.help.as_str()).collect();
    assert_eq!(help, ["Slow one. Cached for up to 5 minutes.", "Own help. Cached for up to 5 minutes.", "Fast one."]);
    assert_eq!(c.queries[0].help, "Slow one", "the query's own help is unchanged");
}

#[test]
fn durations_are_spoken_in_the_largest_whole_unit() {
    let spoken = |ms: u64| spoken_duration(Duration::from_millis(ms));
    assert_eq!(
        [spoken(1_000), spoken(30_000), spoken(60_000), spoken(90_000), spoken(7_200_000), spoken(1_500)],
        ["1 second", "30 seconds", "1 minute", "90 seconds", "2 hours", "1.5 seconds"]
    );
}

#[test]
fn file_sets_are_validated_and_resolved_against_the_catalogue() {
    let c = parse(
        r#"
queries: {a: {help: x, sql: SELECT 1 AS v, metrics: [{name: a, type: gauge, value: v}]}}
files:
  pg_backup:
    help: "Backups (runbook: Backup Operations)."
    directory: backups
    pattern: "backup-*.dump*"
    header: PGDMP
    ttl: 2m
"#,
        "/etc/rbx/queries.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let set = &c.files[0];
    assert_eq!(set.directory, std::path::Path::new("/etc/rbx/backups"));
    assert_eq!((set.header.as_deref(), set.ttl), (Some(&b"PGDMP"[..]), Duration::from_secs(120)));
    assert_eq!(set.metric_name(FileMetric::NewestTimestamp), "pg_backup_newest_timestamp_seconds");
    assert!(
        set.metric_help(FileMetric::Files).ends_with("Cached for up to 2 minutes."),
        "{}",
        set.metric_help(FileMetric::Files)
    );

    let d = diagnostics(
        r#"queries: {a: {help: x, sql: SELECT 1 AS v, metrics: [{name: b_files, type: gauge, value: v}]}}
files:
  b:
    help: ""
    directory: /x
    pattern: "a/b*"
    max_entries: 0
  runbook_exporter_x: {help: y, directory: /x, pattern: "*", header: ""}
"#,
    );
    let got: Vec<(&str, &str)> = d.iter().map(|d| (d.field.as_str(), d.message.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("files.b", "metric \"b_files\" of this file set is also defined at line 1"),
            ("files.b.help", "help must not be empty"),
            ("files.b.pattern", "pattern matches file names: no / in it"),
            ("files.b.max_entries", "max_entries must be between 1 and 1000000"),
            (
                "files.runbook_exporter_x",
                "invalid file set name \"runbook_exporter_x\": it prefixes metric names, use [a-zA-Z_][a-zA-Z0-9_]* outside runbook_exporter_"
            ),
            ("files.runbook_exporter_x.header", "header must not be empty; leave it out instead"),
        ]
    );
}

#[test]
fn a_missing_top_level_key_next_to_an_odd_unknown_key_still_names_a_field() {
    // `.queries` and `""` are unknown keys that contain or are nothing but a dot-free path part.
    for yaml in [".queries: {}\n", "\"\": {}\n", "\"\":\n  queries: {}\n"] {
        let found = diagnostics(yaml);
        assert!(!found.is_empty(), "{yaml:?}");
        for d in &found {
            assert!(!d.field.is_empty() && d.line >= 1, "{yaml:?}: {d:?}");
        }
        assert!(found.iter().any(|d| d.message.contains("missing field `queries`")), "{yaml:?}: {found:?}");
    }
}
