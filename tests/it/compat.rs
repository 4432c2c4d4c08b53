//! Coming from postgres_exporter: `deploy/compat/postgres_exporter.rules.yml` and the mapping table of
//! `docs/migrating-from-postgres_exporter.md`.
//!
//! The table and the rule file agree (every name the table says a rule records is recorded, and nothing else),
//! the rules read only metrics the exporter exposes and never record a name it exposes itself, `promtool check
//! rules` passes, and real Prometheus, scraping a live exporter with the shipped catalogue against a test
//! PostgreSQL and evaluating the rule file, returns data for every postgres_exporter name the table maps ("rule"
//! and "same name"). The PostgreSQL has what those names describe: a logical subscriber (a WAL sender and an
//! active slot), WAL archiving that has archived a segment, a table with an index, and pg_stat_statements.
//!
//! Prometheus is started with the e2e test's launcher; needs `prometheus` and `promtool` on PATH.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::alerting::start_daemon;
use crate::support::data::{read, root, template};
use crate::support::http::{Client, Reply};
use crate::support::monitoring::{known_metrics, metric_names, rules_in};
use crate::support::tools::{self, run};
use crate::support::{Cluster, Db, Exporter, eventually};

const RULES: &str = "deploy/compat/postgres_exporter.rules.yml";
const DOC: &str = "docs/migrating-from-postgres_exporter.md";

/// How the migration table maps one postgres_exporter name.
#[derive(Debug, PartialEq)]
enum How {
    Same,
    Rule,
    None,
}

/// The rows of the migration document's metric tables: postgres_exporter's name and how it maps. Rows whose first
/// cell is not a single backticked name (`every other pg_settings_*`) are left out.
fn table() -> Vec<(String, How)> {
    let doc = read(DOC);
    let mut rows = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`');
        if cells.len() < 4 || name.contains(['`', '*', ' ']) || !name.starts_with("pg_") {
            continue;
        }
        let how = match cells[2] {
            "same name" => How::Same,
            "rule" => How::Rule,
            "no equivalent" => How::None,
            other => panic!("{DOC}: {name}: unknown mapping {other:?}"),
        };
        rows.push((name.to_owned(), how));
    }
    rows
}

#[test]
fn the_table_and_the_rule_file_agree_and_the_rules_read_only_what_the_exporter_exposes() {
    let rows = table();
    let names: BTreeSet<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), rows.len(), "{DOC}: a postgres_exporter name is in the table twice");
    let rules = rules_in(RULES, &read(RULES));
    let recorded: BTreeSet<&str> = rules.iter().map(|r| r.name()).collect();
    assert_eq!(recorded.len(), rules.len(), "{RULES}: a name is recorded twice");
    let by_rule: BTreeSet<&str> = rows.iter().filter(|(_, h)| *h == How::Rule).map(|(n, _)| n.as_str()).collect();
    assert_eq!(recorded, by_rule, "{RULES} records exactly the names {DOC} marks \"rule\"");

    let ours = known_metrics();
    for (name, how) in &rows {
        match how {
            How::Same => assert!(ours.contains(name), "{DOC}: {name} is marked \"same name\" but not exposed"),
            How::Rule => assert!(!ours.contains(name), "{RULES}: {name} would shadow a metric the exporter exposes"),
            How::None => assert!(!ours.contains(name), "{DOC}: {name} is exposed, it is not \"no equivalent\""),
        }
    }
    for rule in &rules {
        let unknown: Vec<String> = metric_names(rule.expr()).into_iter().filter(|m| !ours.contains(m)).collect();
        assert!(unknown.is_empty(), "{RULES}: {} reads metrics the exporter does not expose: {unknown:?}", rule.name());
    }
    let out = run(tools::promtool().args(["check", "rules", RULES]));
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The names among `names` that Prometheus has data for now, in one instant query (`query` runs it).
fn present(names: &[&str], query: &impl Fn(&str) -> Vec<Value>) -> BTreeSet<String> {
    let expr = format!("group by (__name__) ({{__name__=~\"{}\"}})", names.join("|"));
    query(&expr).iter().filter_map(|s| s["metric"]["__name__"].as_str().map(String::from)).collect()
}

#[test]
fn prometheus_records_every_mapped_postgres_exporter_name_from_a_live_scrape() {
    // A primary that has a WAL sender (a logical subscriber in another database of the same cluster), an active
    // slot with a WAL budget, and archiving.
    let cluster = Cluster::start_with(&[
        "wal_level=logical",
        "max_slot_wal_keep_size=1GB",
        "archive_mode=on",
        "archive_command=true",
    ]);
    let socket = cluster.socket_dir.display().to_string();
    let port = cluster.port;
    let db = Db::on(cluster, "compat");
    let mut publisher = db.client();
    publisher
        .batch_execute(
            "CREATE TABLE compat_items (id int PRIMARY KEY, note text);
             INSERT INTO compat_items SELECT g, 'note ' || g FROM generate_series(1, 1000) AS g;
             ANALYZE compat_items;
             SELECT note FROM compat_items WHERE id = 42;
             CREATE PUBLICATION compat_pub FOR TABLE compat_items;",
        )
        .unwrap();
    // A logical slot cannot be made in a transaction that wrote: a statement of its own.
    publisher.batch_execute("SELECT pg_create_logical_replication_slot('compat_sub', 'pgoutput')").unwrap();
    let admin = db.cluster.as_ref().unwrap();
    admin.connect("postgres").batch_execute("CREATE DATABASE compat_sub").unwrap();
    let mut subscriber = admin.connect("compat_sub");
    subscriber.batch_execute("CREATE TABLE compat_items (id int PRIMARY KEY, note text)").unwrap();
    // The slot exists already: a subscription in the same cluster must not create it (it would wait for itself).
    subscriber
        .batch_execute(&format!(
            "CREATE SUBSCRIPTION compat_sub CONNECTION 'host={socket} port={port} user=postgres dbname={}' \
             PUBLICATION compat_pub WITH (create_slot = false, slot_name = 'compat_sub')",
            db.name
        ))
        .unwrap();
    let streaming = eventually(Duration::from_secs(60), || {
        let rows = publisher.query("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'", &[]).unwrap();
        !rows.is_empty()
    });
    assert!(streaming, "the subscriber's WAL sender never streamed");
    // A finished segment for the archiver (archive_command = true archives it at once).
    publisher.batch_execute("INSERT INTO compat_items VALUES (1001, 'switch'); SELECT pg_switch_wal()").unwrap();

    let exporter = Exporter::with(&read("queries.yaml")).db(&db.url).start();
    let scratch = tempfile::Builder::new().prefix("rbx-compat-").tempdir().unwrap();
    let rules = scratch.path().join("postgres_exporter.rules.yml");
    std::fs::copy(root().join(RULES), &rules).unwrap();
    let config =
        template("compat/prometheus.yml", &[("RULES", &rules.display().to_string()), ("EXPORTER", &exporter.address)]);
    let prometheus_bin = tools::find(&["prometheus"], "PROMETHEUS");
    let (_prometheus, prom_port) =
        start_daemon("prometheus", &prometheus_bin, scratch.path(), &config, "--storage.tsdb.path", &[]);

    let client = Client::new(Duration::from_secs(30));
    let url = format!("http://127.0.0.1:{prom_port}/api/v1/query");
    let query = |expr: &str| -> Vec<Value> {
        match client.post_form(&url, &[("query", expr)]) {
            Reply::Answer(200, body) => {
                let json: Value = serde_json::from_str(&body).unwrap();
                json["data"]["result"].as_array().cloned().unwrap_or_default()
            }
            other => panic!("{expr}: {other:?}"),
        }
    };
    let rows = table();
    let mapped: Vec<&str> = rows.iter().filter(|(_, h)| *h != How::None).map(|(n, _)| n.as_str()).collect();
    assert!(mapped.len() > 40, "the table maps {} names", mapped.len());
    let mut seen = BTreeSet::new();
    eventually(Duration::from_secs(90), || {
        seen = present(&mapped, &query);
        seen.len() == mapped.len()
    });
    let missing: Vec<&str> = mapped.iter().copied().filter(|n| !seen.contains(*n)).collect();
    assert!(missing.is_empty(), "Prometheus has no data for {missing:?}\nexporter logs:\n{}", exporter.logs());

    // The recorded series carry the exporter's values (spot checks across the kinds of rule).
    let value = |expr: &str| -> f64 {
        let result = query(expr);
        assert_eq!(result.len(), 1, "{expr}: {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    let datname = format!("datname=\"{}\"", db.name);
    assert_eq!(value("pg_replication_is_replica"), 0.0);
    assert_eq!(value("pg_replication_lag_seconds"), 0.0, "0 on a primary, as postgres_exporter reports it");
    assert_eq!(value(&format!("pg_stat_database_conflicts_confl_lock{{{datname}}}")), 0.0);
    assert_eq!(value("pg_replication_slots_active{slot_name=\"compat_sub\"}"), 1.0);
    // The insert reaches the statistics when the backend flushes them: wait for it.
    let live = "pg_stat_user_tables_n_live_tup{relname=\"compat_items\"}";
    assert!(eventually(Duration::from_secs(60), || value(live) >= 1000.0), "{live}: {}", value(live));
    assert!(value("pg_stat_user_tables_index_size_bytes{relname=\"compat_items\"}") > 0.0);
    assert!(value("pg_stat_user_tables_table_size_bytes{relname=\"compat_items\"}") > 0.0);
    assert!(value("pg_stat_archiver_archived_count") >= 1.0);
    assert!(value("pg_stat_archiver_last_archive_age") >= 0.0);
    assert_eq!(
        value("pg_scrape_collector_success{collector=\"databases\"}"),
        value("runbook_exporter_query_success{query=\"databases\"}")
    );
}
