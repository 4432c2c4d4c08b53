//! `pg_client_backends{datname,usename,application_name,state}`: who holds the connections, with the series
//! count bounded in SQL (the 50 largest groups, the rest summed per state under the names `other`), against a
//! real PostgreSQL with real sessions.

use std::time::Duration;

use crate::support::cluster::connect_as;
use crate::support::data::read;
use crate::support::{Cluster, Db, Exporter, Metrics, eventually};

/// Connections per group and number of single-connection groups: 10 + 60 = 70 connections in 61 groups.
const BIG_POOL: usize = 10;
const SMALL_APPS: usize = 60;
const KEPT: usize = 50;

fn is_other(labels: &std::collections::BTreeMap<String, String>) -> bool {
    ["datname", "usename", "application_name"].iter().all(|k| labels.get(*k).map(String::as_str) == Some("other"))
}

#[test]
fn seventy_connections_in_sixty_one_groups_give_fifty_series_and_other() {
    let db = Db::on(Cluster::start_with(&["max_connections=100"]), "clients");
    let mut held: Vec<postgres::Client> = (0..BIG_POOL).map(|_| connect_as(&db.url, "big-pool")).collect();
    held.extend((0..SMALL_APPS).map(|i| connect_as(&db.url, &format!("app-{i:02}"))));
    for c in &mut held {
        c.batch_execute("SELECT 1").unwrap();
    }
    let exporter = Exporter::with(&read("queries.yaml")).db(&db.url).start();

    // The exporter's own sessions (at most --database.max-connections, 2) are client backends too, and
    // the two queries run at slightly different moments: poll until one scrape agrees with itself.
    let mut last = Metrics::default();
    let agreed = eventually(Duration::from_secs(20), || {
        last = exporter.metrics();
        let total = last.sum("pg_client_backends", &[]);
        let connections = last.sum("pg_connections", &[]);
        total == connections && (70.0..=72.0).contains(&total)
    });
    let m = last;
    assert!(
        agreed,
        "sum(pg_client_backends) {} and sum(pg_connections) {} never agreed on 70 + the exporter's own: {:?}",
        m.sum("pg_client_backends", &[]),
        m.sum("pg_connections", &[]),
        m.find("pg_client_backends", &[])
    );
    let (other, kept): (Vec<_>, Vec<_>) =
        m.samples.iter().filter(|(n, _, _)| n == "pg_client_backends").partition(|(_, l, _)| is_other(l));
    assert_eq!(kept.len(), KEPT, "the 50 largest groups are kept: {kept:?}");
    // One `other` series per state among the groups cut off; all 70 test connections are idle.
    let mut states: Vec<&str> = other.iter().map(|(_, l, _)| l["state"].as_str()).collect();
    states.sort_unstable();
    let before = states.len();
    states.dedup();
    assert_eq!(states.len(), before, "one other series per state: {other:?}");
    assert!(states.contains(&"idle"), "the idle groups past the 50th are summed: {other:?}");
    // The largest group comes first and is never cut.
    let big = [("datname", db.name.as_str()), ("usename", "postgres"), ("application_name", "big-pool")];
    assert_eq!(m.get("pg_client_backends", &[big[0], big[1], big[2], ("state", "idle")]), BIG_POOL as f64);
    // Counts add up: every test connection is in a kept series or in `other`.
    let kept_small = kept.iter().filter(|(_, l, _)| l["application_name"].starts_with("app-")).count();
    let kept_small_sum: f64 =
        kept.iter().filter(|(_, l, _)| l["application_name"].starts_with("app-")).map(|(_, _, v)| v).sum();
    assert_eq!(kept_small_sum, kept_small as f64, "one connection per small application");
    let other_idle = m.get("pg_client_backends", &[("application_name", "other"), ("state", "idle")]);
    let exporter_idle_cut = m.sum("pg_client_backends", &[("application_name", "runbook-exporter"), ("state", "idle")]);
    assert!(
        other_idle >= (SMALL_APPS - kept_small) as f64,
        "other{{state=idle}} {other_idle} holds the {} small applications cut off (exporter idle kept: {exporter_idle_cut})",
        SMALL_APPS - kept_small
    );
    drop(held);
}
