//! Scaling with the fleet (issue 14): one target watching its server's databases (`databases:`), server-scope
//! queries once per server, the connection bound shared fairly by databases, budgets that truncate, warm pools
//! and the pg_stat_statements ranking. Executions are counted by the database itself (pg_stat_statements), the
//! connections by sampling pg_stat_activity.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::support::cluster::{BackendPeak, exporter_backends};
use crate::support::data::read;
use crate::support::exporter::{run, scrape_together};
use crate::support::http::get;
use crate::support::{Cluster, Exporter, Metrics, PASSWORD, eventually};

const GENEROUS: Duration = Duration::from_secs(30);

/// Every `tenant_*` database (not `postgres`, where the target connects).
const TENANTS: &str = r#"{include: ["tenant_*"]}"#;

/// The smallest catalogue: one query.
const ONE_QUERY: &str = "queries:\n  one:\n    help: One.\n    sql: SELECT 1 AS v\n    metrics: [{name: fleet_one, type: gauge, value: v}]\n";

/// `--scrape.timeout` for a round of every database: each turn opens a connection, and password authentication
/// (SCRAM) in a debug build takes a good part of a second on a busy machine.
const ROUND: [&str; 2] = ["--scrape.timeout", "25s"];

/// A catalogue with one target `pg` (its URL from `DATABASE_URL`) watching `databases` within `max_connections`.
fn fleet(databases: &str, max_connections: u16, queries: &str) -> String {
    format!("targets:\n  pg:\n    max_connections: {max_connections}\n    databases: {databases}\nqueries:\n{queries}")
}

/// A database-scope query `name` whose one gauge `fleet_NAME` is 1, after `sleep` seconds, labelled with the
/// database it ran in (`db`).
fn in_database(name: &str, sleep: f64) -> String {
    format!(
        "  {name}:\n    help: Runs in each database.\n    sql: SELECT current_database() AS db, 1 AS v, pg_sleep({sleep}) IS NULL AS {name}_marker\n    metrics: [{{name: fleet_{name}, type: gauge, value: v, labels: [db]}}]\n"
    )
}

fn create_databases(cluster: &Cluster, names: &[&str]) {
    let mut c = cluster.connect("postgres");
    for name in names {
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    }
}

/// A cluster with pg_stat_statements in `postgres` and `n` databases `tenant_01`, ...; their names.
fn cluster_with_tenants(n: usize) -> (Cluster, Vec<String>) {
    let cluster = Cluster::start();
    cluster.connect("postgres").batch_execute("CREATE EXTENSION pg_stat_statements").unwrap();
    let names: Vec<String> = (1..=n).map(|i| format!("tenant_{i:02}")).collect();
    create_databases(&cluster, &names.iter().map(String::as_str).collect::<Vec<_>>());
    (cluster, names)
}

/// Calls of statements containing `marker`, in every database of `cluster` (pg_stat_statements is in `postgres`).
fn calls(cluster: &Cluster, marker: &str) -> i64 {
    cluster
        .connect("postgres")
        .query_one(
            "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements WHERE query LIKE '%' || $1 || '%' AND query NOT LIKE '%pg_stat_statements%'",
            &[&marker],
        )
        .unwrap()
        .get(0)
}

/// The `datname` of every sample of `name`.
fn datnames(m: &Metrics, name: &str) -> BTreeSet<String> {
    m.samples.iter().filter(|(n, _, _)| n == name).filter_map(|(_, l, _)| l.get("datname").cloned()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A login role `monitor` (pg_monitor, the test password) and its URL for `db`.
fn monitor(cluster: &Cluster, db: &str, extra: &str) -> String {
    cluster
        .connect("postgres")
        .batch_execute(&format!("CREATE ROLE monitor LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor {extra}"))
        .unwrap();
    cluster.url(db).replacen("postgres://postgres:", "postgres://monitor:", 1)
}

/// Lets `role` connect over TCP without a password (first line of pg_hba.conf, reloaded).
fn trust(cluster: &Cluster, role: &str) {
    let mut c = cluster.connect("postgres");
    let hba: String = c.query_one("SHOW hba_file", &[]).unwrap().get(0);
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all {role} 127.0.0.1/32 trust\n{rules}")).unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
}

#[test]
fn databases_come_and_go_without_a_reload() {
    let cluster = Cluster::start();
    create_databases(&cluster, &["tenant_a", "tenant_b", "tenant_skip_1", "other", "tenant_closed", "tenant_tmpl"]);
    create_databases(&cluster, &["tenant_later"]);
    let url = monitor(&cluster, "postgres", "");
    {
        let mut c = cluster.connect("postgres");
        c.batch_execute(
            "REVOKE CONNECT ON DATABASE tenant_later FROM PUBLIC; \
             ALTER DATABASE tenant_closed ALLOW_CONNECTIONS false; ALTER DATABASE tenant_tmpl IS_TEMPLATE true",
        )
        .unwrap();
    }
    let queries = format!(
        "{}  server_q:\n    help: Once per server.\n    scope: server\n    sql: SELECT 1 AS v\n    metrics: [{{name: fleet_server, type: gauge, value: v}}]\n",
        in_database("whoami", 0.0)
    );
    let catalogue = fleet(r#"{include: ["tenant_*"], exclude: ["tenant_skip_*"], refresh: 1s}"#, 4, &queries);
    let exporter = Exporter::with(&catalogue).db(&url).args(&ROUND).start();

    let m = exporter.metrics();
    assert_eq!(datnames(&m, "fleet_whoami"), set(&["tenant_a", "tenant_b"]));
    for (_, labels, _) in m.samples.iter().filter(|(n, _, _)| n == "fleet_whoami") {
        assert_eq!(labels.get("db"), labels.get("datname"), "datname is the database the query ran in");
    }
    assert_eq!(m.get("fleet_server", &[("target", "pg")]), 1.0);
    assert!(m.samples.iter().filter(|(n, _, _)| n == "fleet_server").all(|(_, l, _)| !l.contains_key("datname")));
    let executions = "runbook_exporter_query_executions_total";
    assert_eq!(m.find(executions, &[("query", "whoami"), ("datname", "tenant_a")]).len(), 1);
    let server_series: Vec<_> = m
        .samples
        .iter()
        .filter(|(n, l, _)| n == executions && l.get("query").is_some_and(|q| q == "server_q"))
        .collect();
    assert_eq!(server_series.len(), 1);
    assert!(!server_series[0].1.contains_key("datname"), "server-scope self-metrics carry no datname");

    // A plain DROP DATABASE works: the exporter keeps no idle connection to a watched database.
    let mut admin = cluster.connect("postgres");
    admin.batch_execute("CREATE DATABASE tenant_c").unwrap();
    admin.batch_execute("DROP DATABASE tenant_b").unwrap();
    admin.batch_execute("CREATE DATABASE tenant_skip_2").unwrap();
    let watched_becomes = |names: &[&str]| {
        let watched = || datnames(&exporter.metrics(), "fleet_whoami");
        assert!(eventually(GENEROUS, || watched() == set(names)), "{:?} instead of {names:?}", watched());
    };
    watched_becomes(&["tenant_a", "tenant_c"]);
    admin.batch_execute("DROP DATABASE tenant_c").unwrap();
    admin.batch_execute("GRANT CONNECT ON DATABASE tenant_later TO monitor").unwrap();
    watched_becomes(&["tenant_a", "tenant_later"]);
}

#[test]
fn a_server_scope_query_runs_once_per_scrape_whatever_the_number_of_databases() {
    let (cluster, _) = cluster_with_tenants(8);
    let queries = format!(
        "{}  server_q:\n    help: Once per server.\n    scope: server\n    sql: SELECT 1 AS fleet_server_marker\n    metrics: [{{name: fleet_server, type: gauge, value: fleet_server_marker}}]\n",
        in_database("per_db", 0.0)
    );
    let exporter = Exporter::with(&fleet(TENANTS, 4, &queries)).db(&cluster.url("postgres")).args(&ROUND).start();
    for _ in 0..5 {
        let m = exporter.metrics();
        assert_eq!(datnames(&m, "fleet_per_db").len(), 8);
    }
    assert_eq!(calls(&cluster, "fleet_server_marker"), 5);
    assert_eq!(calls(&cluster, "per_db_marker"), 40);
}

#[test]
fn concurrent_scrapes_share_the_databases_turns_and_stay_within_the_bound() {
    let (cluster, _) = cluster_with_tenants(4);
    let exporter = Arc::new(
        Exporter::with(&fleet(TENANTS, 4, &in_database("shared", 1.0)))
            .db(&cluster.url("postgres"))
            .args(&ROUND)
            .start(),
    );
    assert_eq!(get(&exporter.url("/readyz"), &[]).0, 200);
    let sampler = BackendPeak::start(cluster.connect("postgres"), Duration::from_millis(1));
    for m in scrape_together(&exporter, 5) {
        assert_eq!(datnames(&m, "fleet_shared").len(), 4, "every scrape gets every database");
    }
    let peak = sampler.stop();
    assert_eq!(calls(&cluster, "shared_marker"), 4, "5 concurrent scrapes of 4 databases run the query once each");
    assert!(peak <= 4, "the exporter held {peak} connections, the bound is 4");
}

#[test]
fn connections_stay_within_the_bound_under_concurrent_scrapes_of_many_databases() {
    let (cluster, _) = cluster_with_tenants(12);
    // The role's own limit is the bound: a backend still counted when the next opens would be refused. Without
    // password authentication a connection opens in a few milliseconds, as fast as a closed one's backend exits.
    let url = monitor(&cluster, "postgres", "CONNECTION LIMIT 4");
    trust(&cluster, "monitor");
    let exporter =
        Arc::new(Exporter::with(&fleet(TENANTS, 4, &in_database("bounded", 0.02))).db(&url).args(&ROUND).start());
    let sampler = BackendPeak::start(cluster.connect("postgres"), Duration::from_millis(1));
    let scrapers: Vec<_> = (0..3)
        .map(|_| {
            let exporter = exporter.clone();
            std::thread::spawn(move || {
                for _ in 0..4 {
                    assert_eq!(datnames(&exporter.metrics(), "fleet_bounded").len(), 12);
                }
            })
        })
        .collect();
    for s in scrapers {
        s.join().unwrap();
    }
    let peak = sampler.stop();
    assert!(peak <= 4, "the exporter held {peak} connections, the bound is 4");
    assert!(!exporter.logs().contains("too many connections"), "{}", exporter.logs());
}

#[test]
fn databases_take_turns_least_recently_served_first_when_a_round_misses_the_deadline() {
    let (cluster, names) = cluster_with_tenants(8);
    // One connection for the databases, 8 × 0.3 s of work, 2 s per scrape: a round never fits one scrape.
    let exporter = Exporter::with(&fleet(TENANTS, 2, &in_database("slow", 0.3))).db(&cluster.url("postgres")).start();
    let all: BTreeSet<String> = names.into_iter().collect();
    let mut served = BTreeSet::new();
    for _ in 0..8 {
        let (status, body) = get(&exporter.url("/metrics"), &[("X-Prometheus-Scrape-Timeout-Seconds", "2")]);
        assert_eq!(status, 200, "{body}");
        served.extend(datnames(&Metrics::parse(&body), "fleet_slow"));
        if served == all {
            break;
        }
    }
    assert_eq!(served, all, "every database is served in turn");
}

#[test]
fn probe_serves_the_server_and_every_database_and_refuses_a_database_name() {
    let cluster = Cluster::start();
    create_databases(&cluster, &["tenant_a", "tenant_b"]);
    let queries = format!(
        "{}  server_q:\n    help: Once per server.\n    scope: server\n    sql: SELECT 1 AS v\n    metrics: [{{name: fleet_server, type: gauge, value: v}}]\n",
        in_database("probed", 0.0)
    );
    let catalogue = fleet(r#"{include: ["tenant_*"]}"#, 4, &queries);
    let exporter = Exporter::with(&catalogue).db(&cluster.url("postgres")).start();
    let (status, body) = get(&exporter.url("/probe?target=pg"), &[]);
    assert_eq!(status, 200, "{body}");
    let m = Metrics::parse(&body);
    assert_eq!(m.find("fleet_server", &[]).len(), 1);
    assert_eq!(datnames(&m, "fleet_probed"), set(&["tenant_a", "tenant_b"]));
    let (status, _) = get(&exporter.url("/probe?target=tenant_a"), &[]);
    assert_eq!(status, 400);
}

/// `check --offline` of `catalogue`: its exit code and output.
fn check_offline(catalogue: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queries.yaml");
    std::fs::write(&path, catalogue).unwrap();
    let out = run(
        &["check", "--offline", "--config.file", path.to_str().unwrap()],
        &[("DATABASE_URL", "postgres://u@127.0.0.1:1/d")],
    );
    (out.code, out.output())
}

#[test]
fn discovery_and_truncate_settings_that_cannot_work_are_refused() {
    let (code, out) = check_offline(&fleet(TENANTS, 1, &in_database("q", 0.0)));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("targets.pg.max_connections") && out.contains("at least 2"), "{out}");

    let own_datname = "  q:\n    help: Has its own datname.\n    sql: SELECT current_database() AS datname, 1 AS v\n    metrics: [{name: fleet_q, type: gauge, value: v, labels: [datname]}]\n";
    let (code, out) = check_offline(&fleet(TENANTS, 4, own_datname));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("label \"datname\" is added by the exporter"), "{out}");

    for sql in [
        "SELECT relname, 1 AS v FROM pg_class",
        "SELECT relname, row_number() OVER (ORDER BY relpages) AS v FROM pg_class",
        "SELECT relname, 1 AS v FROM (SELECT relname FROM pg_class ORDER BY relpages) s",
    ] {
        let q = format!(
            "queries:\n  q:\n    help: Truncated.\n    over_budget: truncate\n    sql: {sql}\n    metrics: [{{name: fleet_q, type: gauge, value: v, labels: [relname]}}]\n"
        );
        let (code, out) = check_offline(&q);
        assert_ne!(code, 0, "{sql}: {out}");
        assert!(out.contains("queries.q.over_budget") && out.contains("ORDER BY"), "{sql}: {out}");
    }
    let ordered = "queries:\n  q:\n    help: Truncated.\n    over_budget: truncate\n    sql: SELECT relname, 1 AS v FROM pg_class ORDER BY relpages DESC\n    metrics: [{name: fleet_q, type: gauge, value: v, labels: [relname]}]\n";
    let (code, out) = check_offline(ordered);
    assert_eq!(code, 0, "{out}");
}

/// The shipped query `name`'s block of `queries.yaml` (up to the next line indented as a query's name or less),
/// with `edit` applied to its text.
fn shipped_query(name: &str, edit: impl Fn(String) -> String) -> String {
    let text = read("queries.yaml");
    let start = text.find(&format!("\n  {name}:\n")).unwrap_or_else(|| panic!("no query {name}")) + 1;
    let mut block = String::new();
    for (i, line) in text[start..].split_inclusive('\n').enumerate() {
        let indent = line.len() - line.trim_start().len();
        if i > 0 && !line.trim().is_empty() && indent <= 2 {
            break;
        }
        block.push_str(line);
    }
    edit(block)
}

#[test]
fn past_its_budget_the_shipped_tables_query_keeps_the_largest_tables() {
    // No vacuum ever ran: 8 series per table (no last-vacuum sample), so a budget of 80 holds 10 tables.
    let cluster = Cluster::start_with(&["autovacuum=off"]);
    let mut c = cluster.connect("postgres");
    for i in 1..=15 {
        // CREATE TABLE AS extends by many pages at once from PostgreSQL 17, which gives tables of different rows
        // the same size; INSERT extends a page at a time, so every table's size is its own.
        let rows = i * 2000;
        c.batch_execute(&format!(
            "CREATE TABLE t{i:02} (g int); INSERT INTO t{i:02} SELECT generate_series(1, {rows})"
        ))
        .unwrap();
    }
    c.batch_execute("ANALYZE").unwrap();
    let sizes: Vec<i64> = c
        .query("SELECT pg_total_relation_size(relid) FROM pg_stat_user_tables ORDER BY relname", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "every table is larger than the one before: {sizes:?}");
    let tables = shipped_query("tables", |q| q.replace("max_series: 10000", "max_series: 80"));
    assert!(tables.contains("max_series: 80"), "{tables}");
    let exporter = Exporter::with(&format!("queries:\n{tables}")).db(&cluster.url("postgres")).start();
    let m = exporter.metrics();
    let kept: BTreeSet<String> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "pg_table_total_size_bytes")
        .filter_map(|(_, l, _)| l.get("relname").cloned())
        .collect();
    let largest: BTreeSet<String> = (6..=15).map(|i| format!("t{i:02}")).collect();
    assert_eq!(kept, largest, "the 10 largest tables");
    assert_eq!(m.get("runbook_exporter_query_truncated_rows", &[("query", "tables")]), 5.0);
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "tables")]), 1.0);
}

#[test]
fn over_budget_fail_keeps_failing_while_truncate_keeps_serving() {
    let cluster = Cluster::start();
    let queries = |name: &str, mode: &str| {
        format!(
            "  {name}:\n    help: Ten rows, budget five.\n    max_series: 5\n    over_budget: {mode}\n    sql: SELECT g::text AS n, g AS v FROM generate_series(1, 10) g ORDER BY g DESC\n    metrics: [{{name: fleet_{name}, type: gauge, value: v, labels: [n]}}]\n"
        )
    };
    let catalogue = format!("queries:\n{}{}", queries("failing", "fail"), queries("truncating", "truncate"));
    let exporter = Exporter::with(&catalogue).db(&cluster.url("postgres")).start();
    for i in 1..=3 {
        let m = exporter.metrics();
        assert_eq!(
            m.get("runbook_exporter_query_errors_total", &[("query", "failing"), ("kind", "cardinality")]),
            i as f64
        );
        assert!(!m.has("fleet_failing"));
        assert_eq!(m.find("fleet_truncating", &[]).len(), 5);
        assert_eq!(m.get("fleet_truncating", &[("n", "10")]), 10.0, "the first rows in the query's order are kept");
        assert_eq!(m.get("runbook_exporter_query_truncated_rows", &[("query", "truncating")]), 5.0);
    }
}

#[test]
fn pools_are_warm_before_the_first_scrape_and_after_an_outage_or_a_late_start() {
    let mut cluster = Cluster::start();
    let url = cluster.url("postgres");
    let backends = |cluster: &Cluster| exporter_backends(&mut cluster.connect("postgres")).len();
    let exporter = Exporter::with(ONE_QUERY).db(&url).args(&["--database.max-connections", "3"]).start();
    assert!(eventually(GENEROUS, || backends(&cluster) == 3), "warm at start-up: {}", backends(&cluster));

    cluster.stop_immediate();
    // Within a second of the start-up probe /readyz may still answer from it.
    assert!(eventually(GENEROUS, || get(&exporter.url("/readyz"), &[]).0 != 200));
    cluster.launch();
    assert!(eventually(GENEROUS, || get(&exporter.url("/readyz"), &[]).0 == 200));
    assert!(eventually(GENEROUS, || backends(&cluster) == 3), "warm after an outage: {}", backends(&cluster));
    drop(exporter);

    // The server comes up after the exporter, and nothing asked before: the first probe to answer warms the pool.
    cluster.stop();
    let exporter = Exporter::with(ONE_QUERY).db(&url).args(&["--database.max-connections", "3"]).start();
    cluster.launch();
    assert!(eventually(GENEROUS, || get(&exporter.url("/readyz"), &[]).0 == 200));
    assert!(eventually(GENEROUS, || backends(&cluster) == 3), "warm after a late start: {}", backends(&cluster));
}

#[test]
fn pg_stat_statements_ranks_without_text_and_the_text_covers_the_ranked_statements() {
    let cluster = Cluster::start();
    let mut admin = cluster.connect("postgres");
    admin.batch_execute("CREATE EXTENSION pg_stat_statements").unwrap();
    create_databases(&cluster, &["app_a", "app_b"]);
    // The same statement (one queryid) slow in app_a and fast but frequent in app_b: by mean per database it
    // ranks first, by mean over both databases last; twelve other statements fill the ranking in between.
    let mut a = cluster.connect("app_a");
    let mut b = cluster.connect("app_b");
    a.batch_execute("SELECT pg_sleep(0.2)").unwrap();
    for _ in 0..200 {
        b.batch_execute("SELECT pg_sleep(0.0)").unwrap();
    }
    for i in 1..=12 {
        // Statements of different shapes (constants and aliases do not make a queryid).
        let sql = format!("SELECT pg_sleep(0.0{i:02}){}", ", 1".repeat(i));
        a.batch_execute(&sql).unwrap();
    }
    let ranking = shipped_query("pg_stat_statements", |q| q.replace("ttl: 30s", "ttl: 1s"));
    let text = shipped_query("pg_stat_statements_text", |q| q);
    assert!(ranking.contains("pg_stat_statements(false)") && !ranking.contains("pg_stat_statements(true)"));
    // As a role of its own, so the exporter's own statements stay out of what it ranks.
    let url = monitor(&cluster, "postgres", "");
    let exporter = Exporter::with(&format!("queries:\n{ranking}{text}")).db(&url).start();

    let queryids = |m: &Metrics, name: &str| -> BTreeSet<String> {
        m.samples.iter().filter(|(n, _, _)| n == name).filter_map(|(_, l, _)| l.get("queryid").cloned()).collect()
    };
    let first = exporter.metrics();
    let ranked = queryids(&first, "pg_stat_statements_mean_exec_seconds");
    assert!(!ranked.is_empty());
    assert_eq!(queryids(&first, "pg_stat_statements_query_info"), ranked, "text for exactly the ranked statements");

    // The ranking re-runs once its ttl is over; the text is served from its cache meanwhile.
    let executions = |m: &Metrics, q: &str| m.get("runbook_exporter_query_executions_total", &[("query", q)]);
    assert!(eventually(GENEROUS, || executions(&exporter.metrics(), "pg_stat_statements") >= 2.0));
    let m = exporter.metrics();
    assert_eq!(executions(&m, "pg_stat_statements_text"), 1.0);
    assert!(m.get("runbook_exporter_query_cache_hits_total", &[("query", "pg_stat_statements_text")]) >= 1.0);
    assert!(!m.find("pg_stat_statements_query_info", &[]).is_empty());
}

#[test]
fn a_turn_that_misses_the_scrape_deadline_still_closes_its_connection_within_the_bound() {
    let (cluster, _) = cluster_with_tenants(8);
    // Scrapes with a deadline shorter than a connection attempt end turns while their probe may still be
    // connecting: the connection it opens belongs to the turn all the same.
    let exporter = Exporter::with(&fleet(TENANTS, 4, &in_database("late", 0.0))).db(&cluster.url("postgres")).start();
    let sampler = BackendPeak::start(cluster.connect("postgres"), Duration::from_millis(1));
    for _ in 0..8 {
        let (status, _) = get(&exporter.url("/metrics"), &[("X-Prometheus-Scrape-Timeout-Seconds", "0.03")]);
        assert_eq!(status, 200);
    }
    // Once the turns still going have ended, no watched database keeps a connection (it would block an
    // operator's DROP DATABASE): only the target's own pool, on `postgres`, stays.
    let mut c = cluster.connect("postgres");
    let watched = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'runbook-exporter' AND datname LIKE 'tenant%'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let closed = eventually(Duration::from_secs(30), || watched(&mut c) == 0);
    assert!(closed, "{} connections to watched databases stayed open after their turns", watched(&mut c));
    let peak = sampler.stop();
    assert!(peak <= 4, "the exporter held {peak} connections, the bound is 4");
}
