//! Exporter core against a real PostgreSQL (issue 2): values, vanishing series,
//! failing queries, timeouts, read-only execution, late database, output validity.

use std::time::{Duration, Instant};

use crate::support::data::catalogue;
use crate::support::exposition::promtool_check;
use crate::support::http::get;
use crate::support::{Cluster, Db, Exporter, Metrics, PASSWORD, eventually};

#[test]
fn every_value_type_and_null_from_a_multi_row_query() {
    let db = Db::new("types");
    db.client()
        .batch_execute(
            "CREATE TABLE typed (k text, k2 int, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, num numeric, flag bool,
                                 ts timestamp, tstz timestamptz, iv interval, nul int4, big numeric);
             INSERT INTO typed VALUES
               ('a', 1, -2, 40000, 9000000000, 1.5, 2.25, 12345.678, true, '2024-01-01 00:00:00', '2024-01-01 00:00:00+00',
                '1 day 02:00:03.5', NULL, 'NaN'),
               ('b \"quoted\"', NULL, 7, 0, 0, -0.5, 1e300, -0.001, false, 'infinity', '2000-01-01 00:00:01+00',
                '1 mon', 5, 'Infinity');",
        )
        .unwrap();
    let exporter = Exporter::with(&catalogue("types")).db(&db.url).start();
    let m = exporter.metrics();
    let a = [("k", "a"), ("k2", "1")];
    let b = [("k", "b \"quoted\""), ("k2", "")];
    assert_eq!(m.get("t_int2", &a), -2.0);
    assert_eq!(m.get("t_int4", &a), 40000.0);
    assert_eq!(m.get("t_int8_total", &a), 9_000_000_000.0);
    assert_eq!(m.get("t_float4", &a), 1.5);
    assert_eq!(m.get("t_float8_total", &b), 1e300);
    assert_eq!(m.get("t_numeric", &a), 12345.678);
    assert_eq!(m.get("t_numeric", &b), -0.001);
    assert_eq!(m.get("t_bool", &a), 1.0);
    assert_eq!(m.get("t_bool", &b), 0.0);
    assert_eq!(m.get("t_ts_seconds", &a), 1_704_067_200.0);
    assert_eq!(m.get("t_ts_seconds", &b), f64::INFINITY);
    assert_eq!(m.get("t_tstz_seconds", &b), 946_684_801.0);
    assert_eq!(m.get("t_interval_seconds", &a), 86_400.0 + 7_203.5);
    assert_eq!(m.get("t_interval_seconds", &b), 30.0 * 86_400.0);
    // A NULL value gives no sample and is counted; a NULL label is the empty string.
    assert!(m.find("t_null", &a).is_empty());
    assert_eq!(m.get("t_null", &b), 5.0);
    assert_eq!(m.get("runbook_exporter_query_null_values_total", &[("query", "typed")]), 1.0);
    assert!(m.get("t_big", &[("k", "a"), ("source", "test")]).is_nan());
    assert_eq!(m.get("t_big", &[("k", "b \"quoted\"")]), f64::INFINITY);
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "typed")]), 1.0);
    assert_eq!(m.get("runbook_exporter_query_series", &[("query", "typed")]), 23.0);
}

#[test]
fn a_deleted_row_disappears_from_the_next_scrape() {
    let db = Db::new("vanish");
    let mut c = db.client();
    c.batch_execute("CREATE TABLE items (name text, qty int); INSERT INTO items VALUES ('x', 1), ('y', 2)").unwrap();
    let exporter = Exporter::with(&catalogue("items")).db(&db.url).start();
    let m = exporter.metrics();
    assert_eq!(m.get("item_qty", &[("name", "y")]), 2.0);
    c.batch_execute("DELETE FROM items WHERE name = 'y'; UPDATE items SET qty = 10").unwrap();
    let m = exporter.metrics();
    assert!(m.find("item_qty", &[("name", "y")]).is_empty(), "stale series survived");
    assert_eq!(m.get("item_qty", &[("name", "x")]), 10.0);
}

#[test]
fn failing_queries_only_lose_their_own_metrics() {
    let db = Db::new("failing");
    db.client().batch_execute("CREATE TABLE items (name text, qty int); INSERT INTO items VALUES ('x', 1)").unwrap();
    let exporter = Exporter::with(&catalogue("items_and_failing")).db(&db.url).start();
    exporter.scrape();
    let m = exporter.metrics();
    assert_eq!(m.get("item_qty", &[("name", "x")]), 1.0);
    assert_eq!(m.get("pg_up", &[]), 1.0);
    for (query, kind) in [("syntax", "sql"), ("missing", "sql"), ("wrongcol", "conversion")] {
        assert_eq!(m.get("runbook_exporter_query_success", &[("query", query)]), 0.0, "{query}");
        assert_eq!(m.get("runbook_exporter_query_errors_total", &[("query", query), ("kind", kind)]), 2.0, "{query}");
    }
    assert!(!m.has("broken_syntax") && !m.has("broken_missing") && !m.has("broken_column"));
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "items")]), 1.0);
    assert!(eventually(Duration::from_secs(5), || exporter.logs().contains("is not in the result")));
    let logs = exporter.logs();
    assert!(logs.contains("query=missing") && logs.contains("no_such_table"), "{logs}");
    assert!(logs.contains("is not in the result"), "{logs}");
}

#[test]
fn a_slow_query_is_cut_by_its_timeout_and_leaves_no_backend() {
    let db = Db::new("timeout");
    let exporter = Exporter::with(&catalogue("sleepy_and_quick")).db(&db.url).start();
    let start = Instant::now();
    let m = exporter.metrics();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "scrape took {took:?}");
    assert!(took >= Duration::from_millis(900), "scrape took {took:?}: the query cannot have run");
    assert_eq!(m.get("quick_value", &[]), 42.0);
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "sleepy")]), 0.0);
    assert_eq!(m.get("runbook_exporter_query_errors_total", &[("query", "sleepy"), ("kind", "timeout")]), 1.0);
    let mut c = db.client();
    let still_running: i64 = c
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid() AND state = 'active'", &[])
        .unwrap()
        .get(0);
    assert_eq!(still_running, 0);
}

#[test]
fn a_query_that_writes_fails_read_only_and_changes_nothing() {
    let db = Db::new("readonly");
    let exporter = Exporter::with(&catalogue("destructive")).db(&db.url).start();
    let mut c = db.client();
    // A plain DELETE is refused when the catalogue loads (config::bad-write.yaml); one inside a
    // function is not visible to those checks, and the read-only transaction must stop it.
    c.batch_execute(
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3);
         CREATE FUNCTION delete_rows() RETURNS SETOF int LANGUAGE sql AS 'DELETE FROM t RETURNING id'",
    )
    .unwrap();
    let m = exporter.metrics();
    assert_eq!(m.get("runbook_exporter_query_errors_total", &[("query", "destructive"), ("kind", "sql")]), 1.0);
    // The log line travels through a pipe to the test's reader thread: wait for it.
    assert!(
        eventually(Duration::from_secs(5), || exporter.logs().contains("25006")),
        "expected read_only_sql_transaction: {}",
        exporter.logs()
    );
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 3);
}

#[test]
fn the_exporter_starts_without_the_database_and_connects_when_it_comes_up() {
    let mut db = Db::on(Cluster::start(), "late");
    db.cluster().stop();
    let exporter = Exporter::with(&catalogue("items")).db(&db.url).args(&["--database.connect-timeout", "1s"]).start();
    let start = Instant::now();
    let m = exporter.metrics();
    assert!(start.elapsed() < Duration::from_secs(4), "scrape with the database down took {:?}", start.elapsed());
    assert_eq!(m.get("pg_up", &[]), 0.0);
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "items")]), 0.0);
    assert!(m.has("runbook_exporter_build_info"));

    db.cluster().launch();
    db.client().batch_execute("CREATE TABLE items (name text, qty int); INSERT INTO items VALUES ('z', 3)").unwrap();
    assert!(
        eventually(Duration::from_secs(15), || exporter.metrics().find("pg_up", &[]) == vec![1.0]),
        "pg_up never became 1: {}",
        exporter.logs()
    );
    assert_eq!(exporter.metrics().get("item_qty", &[("name", "z")]), 3.0);
}

#[test]
fn output_is_valid_in_both_formats_and_never_shows_the_password() {
    let db = Db::new("valid");
    db.client()
        .batch_execute(
            "CREATE TABLE items (name text, qty int); INSERT INTO items VALUES (E'line\\nbreak \\\\ \"q\"', 1)",
        )
        .unwrap();
    let exporter = Exporter::with(&catalogue("items_and_escapes")).db(&db.url).start();
    let text = exporter.scrape();
    let complaints = promtool_check(&text);
    // promtool lints names too; only parse errors matter here, naming is checked by `check`.
    assert!(
        !complaints.contains("error while linting") && !complaints.contains("text format parsing error"),
        "{complaints}\n{text}"
    );
    let m = Metrics::parse(&text);
    assert_eq!(m.get("item_qty", &[("name", "line\nbreak \\ \"q\"")]), 1.0);
    assert_eq!(m.get("some_events_total", &[]), 3.0);
    assert!(text.contains("# TYPE some_events_total counter"));

    let (status, om) = get(&exporter.url("/metrics"), &[("Accept", "application/openmetrics-text; version=1.0.0")]);
    assert_eq!(status, 200);
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE some_events counter\nsome_events_total 3\n"), "{om}");
    assert!(om.contains("weird_value +Inf"));
    assert!(om.contains(r#"HELP weird_value HELP with a backslash \\ and \"quotes\""#), "{om}");

    let (_, landing) = get(&exporter.url("/"), &[]);
    assert!(landing.contains("****"), "{landing}");
    for (what, text) in
        [("metrics", &text), ("openmetrics", &om), ("landing page", &landing), ("logs", &exporter.logs())]
    {
        assert!(!text.contains(PASSWORD), "password leaked into {what}");
    }
}

#[test]
fn unmet_requirements_skip_queries_with_a_reason() {
    let db = Db::new("requires");
    db.client()
        .batch_execute("DROP EXTENSION pg_stat_statements; CREATE EXTENSION pg_stat_statements VERSION '1.7'")
        .unwrap();
    let exporter = Exporter::with(&catalogue("requires")).db(&db.url).start();
    let m = exporter.metrics();
    assert!(m.get("statements_old", &[]) >= 0.0);
    let skipped =
        |query: &str, reason: &str| m.get("runbook_exporter_query_skipped", &[("query", query), ("reason", reason)]);
    assert_eq!(
        skipped("new_statements", "extension pg_stat_statements 1.7 installed, pg_stat_statements >= 1.8 needed"),
        1.0
    );
    assert!(m.find("runbook_exporter_query_skipped", &[("query", "future")]).len() == 1);
    assert_eq!(skipped("ignition", "table activity_events not found"), 1.0);
    assert!(m.find("runbook_exporter_query_success", &[("query", "ignition")]).is_empty(), "skipped is not failed");
    assert!(m.samples.iter().filter(|(n, _, _)| n == "runbook_exporter_query_errors_total").all(|(_, _, v)| *v == 0.0));

    // Requirements are re-checked: once the table exists the query runs, without a restart.
    db.client()
        .batch_execute("CREATE TABLE activity_events (id int); INSERT INTO activity_events VALUES (1), (2)")
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || exporter.metrics().find("events", &[]) == vec![2.0]));
}

#[test]
fn duplicate_label_sets_and_the_series_budget_fail_only_their_query() {
    let db = Db::new("budget");
    let exporter = Exporter::with(&catalogue("budget")).db(&db.url).json_logs().start();
    let m = exporter.metrics();
    assert_eq!(m.get("runbook_exporter_query_errors_total", &[("query", "dupes"), ("kind", "duplicate")]), 1.0);
    assert_eq!(m.get("runbook_exporter_query_errors_total", &[("query", "runaway"), ("kind", "cardinality")]), 1.0);
    assert!(!m.has("dupe_value") && !m.has("runaway_value"));
    assert_eq!(m.find("within_value", &[]).len(), 100);
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "within")]), 1.0);
    // One JSON object per line, with the target and query named.
    assert!(eventually(Duration::from_secs(5), || exporter.logs().contains("\"query\":\"runaway\"")));
    let failure = exporter.logs().lines().find(|l| l.contains("\"query\":\"runaway\"")).map(str::to_owned);
    let failure = failure.unwrap_or_else(|| panic!("no JSON failure line: {}", exporter.logs()));
    let v: serde_json::Value = serde_json::from_str(&failure).unwrap();
    assert_eq!(
        (v["level"].as_str(), v["target"].as_str(), v["kind"].as_str()),
        (Some("WARN"), Some("default"), Some("cardinality"))
    );
}

#[test]
fn a_table_the_role_may_not_read_is_skipped_not_failed() {
    let db = Db::new("privilege");
    db.client()
        .batch_execute(&format!(
            "CREATE TABLE secret (v int); INSERT INTO secret VALUES (1);
             CREATE ROLE monitor LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor;"
        ))
        .unwrap();
    let url = db.url_as("monitor");
    let exporter = Exporter::with(&catalogue("secret_table")).db(&url).start();
    let m = exporter.metrics();
    assert_eq!(
        m.get(
            "runbook_exporter_query_skipped",
            &[("query", "secret"), ("reason", "no SELECT privilege on table secret")]
        ),
        1.0
    );
    assert!(m.find("runbook_exporter_query_success", &[("query", "secret")]).is_empty());
    db.client().batch_execute("GRANT SELECT ON secret TO monitor").unwrap();
    assert!(eventually(Duration::from_secs(5), || exporter.metrics().find("secret_rows", &[]) == vec![1.0]));
}

#[test]
fn the_exporters_queries_run_read_only_and_never_start_parallel_workers() {
    // Parallel workers are extra server processes beyond the connection bound, taken from the slots
    // (max_parallel_workers) the application's own queries need: the exporter's sessions use none, whatever
    // the database's default.
    let db = Db::new("noparallel");
    db.client().batch_execute(&format!("ALTER DATABASE {} SET max_parallel_workers_per_gather = 4", db.name)).unwrap();
    let mut c = db.client();
    let default: String = c.query_one("SHOW max_parallel_workers_per_gather", &[]).unwrap().get(0);
    assert_eq!(default, "4", "a new session of the database gets its default");
    let exporter = Exporter::with(&catalogue("session_settings")).db(&db.url).start();
    let m = exporter.metrics();
    assert_eq!(m.get("session_parallel_workers_per_gather", &[]), 0.0);
    assert_eq!(m.get("session_read_only", &[]), 1.0);
}

#[test]
fn the_exporter_is_not_seen_idle_in_transaction() {
    // BEGIN, the query and ROLLBACK are pipelined; before that, a connections query running on one
    // pooled connection saw the other between round trips in 44 of 100 scrapes. What is left is the
    // instant between the query's Sync and the already-queued ROLLBACK (measured: a few in 100).
    let db = Db::new("idletx");
    let exporter = Exporter::with(&catalogue("own_sessions")).db(&db.url).start();
    let seen = (0..100)
        .filter(|_| !exporter.metrics().find("own_sessions", &[("state", "idle in transaction")]).is_empty())
        .count();
    assert!(seen <= 10, "seen idle in transaction in {seen} of 100 scrapes");
}
