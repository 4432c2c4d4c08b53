//! What the exporter logs (issue 17): at `--log.level debug` one line per query execution and per cache hit and
//! nothing of the database driver's or the HTTP stack's internals, which only `trace` shows; JSON logs carry the
//! database a line is about in `target`.

use std::time::Duration;

use crate::support::{Db, Exporter, eventually};

/// A query run on every scrape and one served from its cache after the first.
const CATALOGUE: &str = r#"queries:
  quick:
    help: Runs on every scrape.
    sql: SELECT 42 AS v
    metrics: [{name: quick_value, type: gauge, value: v}]
  cached:
    help: Runs once an hour.
    ttl: 1h
    sql: SELECT 7 AS v
    metrics: [{name: cached_value, type: gauge, value: v}]
"#;

const SCRAPES: usize = 3;

/// The exporter's log lines of `level` (text format).
fn lines_of(logs: &str, level: &str) -> Vec<String> {
    logs.lines().filter(|l| l.split_whitespace().nth(1) == Some(level)).map(str::to_owned).collect()
}

#[test]
fn debug_says_one_line_per_execution_and_cache_hit_and_nothing_of_the_driver() {
    let db = Db::new("debuglogs");
    let exporter = Exporter::with(CATALOGUE).db(&db.url).args(&["--log.level", "debug"]).start();
    for _ in 0..SCRAPES {
        exporter.scrape();
    }
    let m = exporter.metrics();
    let count = |name: &str, query: &str| m.get(name, &[("query", query)]) as usize;
    let executions = [
        count("runbook_exporter_query_executions_total", "quick"),
        count("runbook_exporter_query_executions_total", "cached"),
    ];
    let hits = count("runbook_exporter_query_cache_hits_total", "cached");
    assert_eq!((executions, hits), ([SCRAPES + 1, 1], SCRAPES));
    // The log lines travel through a pipe to the test's reader thread: wait for the last ones.
    let expected = SCRAPES + 1 + 1 + SCRAPES;
    eventually(Duration::from_secs(5), || lines_of(&exporter.logs(), "DEBUG").len() >= expected);
    let debug = lines_of(&exporter.logs(), "DEBUG");
    let executed = |query: &str| {
        debug.iter().filter(|l| l.contains(" query executed ") && l.contains(&format!(" query={query} "))).count()
    };
    assert_eq!(executed("quick"), SCRAPES + 1, "{debug:#?}");
    assert_eq!(executed("cached"), 1, "{debug:#?}");
    let cache_hits = debug.iter().filter(|l| l.contains(" served from cache ") && l.contains(" query=cached ")).count();
    assert_eq!(cache_hits, SCRAPES, "{debug:#?}");
    assert_eq!(debug.len(), expected, "debug lines other than the exporter's own: {debug:#?}");
    let line = debug.iter().find(|l| l.contains(" query executed ")).unwrap();
    for field in ["target=default", "query=", "rows=1", "series=1", "duration_ms="] {
        assert!(line.contains(field), "{field} missing: {line}");
    }

    let traced = Exporter::with(CATALOGUE).db(&db.url).args(&["--log.level", "trace"]).start();
    traced.scrape();
    let driver = eventually(Duration::from_secs(5), || traced.logs().contains("executing statement"));
    assert!(driver, "trace shows the driver's work: {}", traced.logs());
}

#[test]
fn json_logs_name_the_database_in_target() {
    let db = Db::new("jsonlogs");
    let named = format!("targets:\n  primary: {{}}\n{CATALOGUE}");
    let exporter = Exporter::with(&named).db(&db.url).json_logs().start();
    exporter.scrape();
    let logged = eventually(Duration::from_secs(5), || exporter.logs().contains("query executed"));
    assert!(logged, "{}", exporter.logs());
    let logs = exporter.logs();
    let line = logs.lines().find(|l| l.contains("query executed")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["target"].as_str(), Some("primary"), "{line}");
    assert_eq!(v["level"].as_str(), Some("DEBUG"), "{line}");
    assert_eq!((v["rows"].as_u64(), v["series"].as_u64()), (Some(1), Some(1)), "{line}");
    assert!(v["query"].is_string() && v["duration_ms"].is_u64(), "{line}");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        let target = v.get("target").and_then(|t| t.as_str());
        assert!(target.is_none_or(|t| t == "primary"), "`target` holds something other than the database: {line}");
    }
}

#[test]
fn at_start_up_the_exporter_connects_and_says_to_what_before_any_scrape() {
    let db = Db::new("startlog");
    let mut c = db.client();
    let version: String = c.query_one("SELECT current_setting('server_version')", &[]).unwrap().get(0);
    let exporter = Exporter::with(CATALOGUE).db(&db.url).start();
    let connected = |logs: &str| logs.lines().find(|l| l.contains(" INFO connected ")).map(str::to_owned);
    assert!(
        eventually(Duration::from_secs(10), || connected(&exporter.logs()).is_some()),
        "no \"connected\" line without a scrape: {}",
        exporter.logs()
    );
    let line = connected(&exporter.logs()).unwrap();
    for field in [format!("server_version={version}"), "role=postgres".to_owned(), "in_recovery=false".to_owned()] {
        assert!(line.contains(&field), "{field} missing: {line}");
    }
    assert!(!exporter.logs().contains(" query executed "), "no query ran before a scrape: {}", exporter.logs());
    // The pool was opened too: both connections are there before the first scrape.
    let mut open = || -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'runbook-exporter' AND datname = $1",
            &[&db.name],
        )
        .unwrap()
        .get(0)
    };
    let mut n = 0;
    assert!(
        eventually(Duration::from_secs(10), || {
            n = open();
            n == 2
        }),
        "{n} connections open before the first scrape"
    );
}
