//! The inputs of the alerts (issue 12): the recording rule `instance_query:runbook_exporter_alert_input:info`,
//! which AlertInputMissing reads, lists exactly the catalogue queries the shipped alerts read, directly or
//! through recording rules; and the table "Inputs of the alerts" in `alerts/README.md` is generated from the
//! same derivation (`UPDATE_DOCS=1` rewrites it). Which skip reasons count is tested with promtool
//! (`alerts/tests/inputs.test.yml`) and end to end (`e2e_inputs`).

use std::collections::{BTreeMap, BTreeSet};

use crate::support::data::{read, root};
use crate::support::generated::check_section;
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::library;
use crate::support::monitoring::{Rule, alerts, metric_names, records};
use crate::support::{Db, Exporter, assert_no_problems};

const INPUT_RECORD: &str = "instance_query:runbook_exporter_alert_input:info";
const ALERTS_README: &str = "alerts/README.md";

/// The metric names `expr` reads, with recording rules replaced by what they read (recursively).
fn leaf_metrics(expr: &str, records: &[Rule], seen: &mut BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in metric_names(expr) {
        match records.iter().find(|r| r.name() == name) {
            Some(record) => {
                if seen.insert(name.clone()) {
                    out.extend(leaf_metrics(&record.expr, records, seen));
                }
            }
            None => {
                out.insert(name);
            }
        }
    }
    out
}

/// One catalogue query that alerts read: the metrics they read from it and the alerts.
#[derive(Default)]
struct Input {
    metrics: BTreeSet<String>,
    alerts: BTreeSet<String>,
}

/// Every catalogue query the shipped alerts read, by name, derived from the rules and the shipped catalogue.
fn derived_inputs() -> BTreeMap<String, Input> {
    let cat = library::shipped();
    let records = records();
    // Exposed name (with `_total` on counters) -> the queries that feed it.
    let mut feeders: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for f in &cat.families {
        let exposed = if f.counter { format!("{}_total", f.name) } else { f.name.clone() };
        for (q, _) in &f.sources {
            feeders.entry(exposed.clone()).or_default().push(&cat.queries[*q].name);
        }
    }
    let mut out: BTreeMap<String, Input> = BTreeMap::new();
    for alert in alerts() {
        let mut seen = BTreeSet::new();
        for metric in leaf_metrics(&alert.expr, &records, &mut seen) {
            for query in feeders.get(&metric).into_iter().flatten() {
                let input = out.entry((*query).to_owned()).or_default();
                input.metrics.insert(metric.clone());
                input.alerts.insert(alert.name().to_owned());
            }
        }
    }
    out
}

/// The queries the recording rule lists: every `"query", "NAME"` of its `label_replace` calls.
fn listed_inputs() -> Vec<String> {
    let record = records().into_iter().find(|r| r.name() == INPUT_RECORD).expect("the alert-input recording rule");
    let mut out = Vec::new();
    let mut rest = record.expr.as_str();
    while let Some(at) = rest.find("\"query\", \"") {
        rest = &rest[at + "\"query\", \"".len()..];
        let end = rest.find('"').expect("a closed query name");
        out.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    out
}

#[test]
fn the_alert_input_rule_lists_exactly_the_queries_the_alerts_read() {
    let derived = derived_inputs();
    let listed = listed_inputs();
    assert!(derived.len() > 10, "too few inputs derived: {:?}", derived.keys());
    let listed_set: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    if listed_set.len() != listed.len() {
        problems.push(format!("{INPUT_RECORD} lists a query twice: {listed:?}"));
    }
    for (query, input) in &derived {
        if !listed_set.contains(query.as_str()) {
            let alerts: Vec<&String> = input.alerts.iter().collect();
            problems.push(format!("{query} (read by {alerts:?}) is missing from {INPUT_RECORD}"));
        }
    }
    for query in &listed_set {
        if !derived.contains_key(*query) {
            problems.push(format!("{query} is listed in {INPUT_RECORD} but no alert reads it"));
        }
    }
    assert_no_problems(&problems, "alert inputs");
}

#[test]
fn the_readme_table_of_alert_inputs_is_generated() {
    let cat = library::shipped();
    let mut table = String::from("| Query | Needs | Metrics the alerts read | Alerts |\n|---|---|---|---|\n");
    for (query, input) in derived_inputs() {
        let q = cat.query(&query);
        let mut needs: Vec<String> = q.requires.tables.iter().map(|t| format!("table `{t}`")).collect();
        needs.extend(q.requires.extensions.iter().map(|e| format!("extension `{e}`")));
        match (q.requires.min_version, q.requires.max_version) {
            (Some(min), Some(max)) => needs.push(format!("PostgreSQL {min} to {max}")),
            (Some(min), None) => needs.push(format!("PostgreSQL {min} or later")),
            (None, Some(max)) => needs.push(format!("PostgreSQL {max} or earlier")),
            (None, None) => {}
        }
        let needs = if needs.is_empty() { "–".to_owned() } else { needs.join(", ") };
        let metrics: Vec<String> = input.metrics.iter().map(|m| format!("`{m}`")).collect();
        let alerts: Vec<&str> = input.alerts.iter().map(String::as_str).collect();
        table.push_str(&format!("| `{query}` | {needs} | {} | {} |\n", metrics.join(", "), alerts.join(", ")));
    }
    check_section(&root().join(ALERTS_README), "alert-inputs", &table);
}

/// `ignition_retention_overdue_seconds` per table and the time of the last migration, by direct SQL.
fn direct_overdue_and_last_migration(c: &mut postgres::Client) -> (BTreeMap<String, f64>, f64) {
    let rows = c
        .query(
            "SELECT 'activity_events', extract(epoch FROM (now() - interval '2 years') - min(created_at))::float8
             FROM activity_events WHERE created_at < now() - interval '2 years'
             UNION ALL
             SELECT 'sessions', extract(epoch FROM (now() - interval '90 days') - min(expires_at))::float8
             FROM sessions WHERE expires_at < now() - interval '90 days'
             UNION ALL
             SELECT 'users', extract(epoch FROM (now() - interval '30 days') - min(deleted_at))::float8
             FROM users WHERE deleted_at < now() - interval '30 days'",
            &[],
        )
        .unwrap();
    let overdue = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, Option<f64>>(1).unwrap_or(0.0))).collect();
    let last: f64 =
        c.query_one("SELECT extract(epoch FROM max(applied_at))::float8 FROM schema_migrations", &[]).unwrap().get(0);
    (overdue, last)
}

#[test]
fn retention_overdue_age_and_last_migration_time_match_the_database() {
    let db = Db::new("overdue");
    load_ignition(&db, small_seed());
    let mut c = db.client();
    // A table whose purge has nothing to do: overdue 0, not missing.
    c.batch_execute("DELETE FROM sessions WHERE expires_at < now() - interval '90 days'").unwrap();
    let (before, last) = direct_overdue_and_last_migration(&mut c);
    let exporter = Exporter::with(&read("queries.yaml")).db(&db.url).start();
    let m = exporter.metrics();
    let (after, _) = direct_overdue_and_last_migration(&mut c);
    for (table, b) in &before {
        let got = m.get("ignition_retention_overdue_seconds", &[("table", table)]);
        // now() moves on between the readings: the exporter's value is between them.
        assert!(*b <= got && got <= after[table], "{table}: exporter {got}, direct {b} then {}", after[table]);
    }
    assert_eq!(m.get("ignition_retention_overdue_seconds", &[("table", "sessions")]), 0.0);
    assert!(before["activity_events"] > 86_400.0, "the seed's oldest events are far past 2 years: {before:?}");
    let got = m.get("ignition_schema_migration_last_applied_timestamp_seconds", &[]);
    assert!((got - last).abs() < 1e-3, "last applied: exporter {got}, direct {last}");
}
