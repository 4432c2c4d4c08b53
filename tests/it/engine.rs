//! Scrape engine (issue 6): single-flight, TTL cache, refresh-ahead, deadlines,
//! and the connection bound, counted by the database itself (pg_stat_statements).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::cluster::{BackendPeak, exporter_backends};
use crate::support::data::catalogue;
use crate::support::exporter::scrape_together;
use crate::support::http::get;
use crate::support::{Db, Exporter, Metrics, eventually};

/// Executions of statements containing `marker`, from pg_stat_statements.
fn executions(db: &Db, marker: &str) -> i64 {
    let mut c = db.client();
    c.query_one(
        "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements WHERE query LIKE '%' || $1 || '%' AND query NOT LIKE '%pg_stat_statements%'",
        &[&marker],
    )
    .unwrap()
    .get(0)
}

fn exporter_connections(db: &Db) -> usize {
    exporter_backends(&mut db.client()).len()
}

#[test]
fn concurrent_scrapes_share_one_execution_and_stay_within_the_pool() {
    let db = Db::new("singleflight");
    let exporter = Arc::new(
        Exporter::with(&catalogue("single_flight")).db(&db.url).args(&["--database.max-connections", "2"]).start(),
    );
    // Let the pool connect first, so the probe is not part of what is measured.
    let (status, _) = get(&exporter.url("/readyz"), &[]);
    assert_eq!(status, 200);
    let before = executions(&db, "single_flight_marker");

    let sampler = BackendPeak::start(db.client(), Duration::from_millis(20));
    for m in scrape_together(&exporter, 20) {
        assert_eq!(m.get("slow_value", &[]), 1.0);
    }
    let peak = sampler.stop();
    assert_eq!(executions(&db, "single_flight_marker") - before, 1, "20 concurrent scrapes must cause one execution");
    assert!(peak <= 2, "exporter held {peak} connections, pool max is 2");
}

#[test]
fn a_ttl_result_is_reused_until_it_expires() {
    let db = Db::new("ttl");
    let exporter = Exporter::with(&catalogue("ttl")).db(&db.url).start();
    let mut last = exporter.metrics();
    // The window starts when the first execution finishes, which is no later than now.
    let window = Instant::now();
    for _ in 0..9 {
        std::thread::sleep(Duration::from_millis(200));
        last = exporter.metrics();
        assert_eq!(last.get("cached_value", &[]), 7.0);
    }
    assert!(window.elapsed() < Duration::from_secs(5), "the loop must stay inside one ttl window");
    assert_eq!(executions(&db, "ttl_marker"), 1);
    assert_eq!(last.get("runbook_exporter_query_executions_total", &[("query", "cached")]), 1.0);
    assert_eq!(last.get("runbook_exporter_query_cache_hits_total", &[("query", "cached")]), 9.0);
    assert!(last.get("runbook_exporter_query_result_age_seconds", &[("query", "cached")]) >= 1.5);

    std::thread::sleep(Duration::from_secs(5).saturating_sub(window.elapsed()) + Duration::from_millis(300));
    let m = exporter.metrics();
    assert!(
        m.get("runbook_exporter_query_executions_total", &[("query", "cached")]) == 2.0,
        "{:?}",
        m.find("runbook_exporter_query_result_age_seconds", &[])
    );
    assert_eq!(executions(&db, "ttl_marker"), 2);
    assert!(m.get("runbook_exporter_query_result_age_seconds", &[("query", "cached")]) < 1.0);
}

#[test]
fn refresh_ahead_never_makes_a_scrape_wait_for_the_slow_query() {
    let db = Db::new("refresh");
    let exporter = Exporter::with(&catalogue("refresh_ahead")).db(&db.url).start();
    let start = Instant::now();
    let first = exporter.metrics().get("dashboard_ran_at", &[]);
    assert!(start.elapsed() >= Duration::from_millis(1400), "the first scrape has nothing cached and must wait");

    std::thread::sleep(Duration::from_millis(3200));
    let start = Instant::now();
    let m = exporter.metrics();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1000), "scrape after expiry waited {took:?} for the refresh");
    assert_eq!(m.get("dashboard_ran_at", &[]), first, "the last good result is served while refreshing");
    assert!(m.get("runbook_exporter_query_result_age_seconds", &[("query", "dashboard")]) >= 3.0);

    assert!(
        eventually(Duration::from_secs(5), || exporter.metrics().get("dashboard_ran_at", &[]) > first),
        "the background refresh never landed"
    );
}

#[test]
fn a_scrape_answers_by_prometheus_deadline_with_what_it_has() {
    let db = Db::new("deadline");
    let exporter = Exporter::with(&catalogue("slow_and_fast")).db(&db.url).start();
    let start = Instant::now();
    let (status, body) = get(&exporter.url("/metrics"), &[("X-Prometheus-Scrape-Timeout-Seconds", "1")]);
    let took = start.elapsed();
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(1500), "answered after {took:?}");
    let m = Metrics::parse(&body);
    assert_eq!(m.get("fast_value", &[]), 2.0);
    assert!(!m.has("slow_value"));
    assert_eq!(m.get("runbook_exporter_query_success", &[("query", "slow")]), 0.0);
    assert_eq!(m.get("runbook_exporter_query_errors_total", &[("query", "slow"), ("kind", "deadline")]), 1.0);
    assert_eq!(exporter_connections(&db).min(2), exporter_connections(&db));
    // The execution went on in the background; a later scrape without a tight deadline gets it.
    assert_eq!(exporter.metrics().get("slow_value", &[]), 1.0);
}

/// The order in which a scrape starts its queries comes from their last durations, which the executions of
/// concurrent scrapes keep changing: the order must be taken from one reading of them (a sort whose keys change
/// under it panicked a worker, dropping the scrape's connection). Queries of random length, scraped from eight
/// threads at once; the harness fails the test if the exporter logs a panic.
#[test]
fn concurrent_scrapes_whose_query_durations_keep_changing_never_panic() {
    let db = Db::new("costorder");
    let queries: String = (0..24)
        .map(|i| {
            format!(
                "  q{i:02}:\n    help: Sleeps a random moment.\n    sql: SELECT 1 AS v FROM pg_sleep(random() * 0.004)\n    \
                 metrics: [{{name: cost_order_{i:02}, type: gauge, value: v}}]\n"
            )
        })
        .collect();
    let exporter = Arc::new(
        Exporter::with(&format!("queries:\n{queries}")).db(&db.url).args(&["--database.max-connections", "4"]).start(),
    );
    let scrapers: Vec<_> = (0..8)
        .map(|_| {
            let exporter = exporter.clone();
            std::thread::spawn(move || {
                for _ in 0..80 {
                    let (status, _) = get(&exporter.url("/metrics"), &[]);
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for s in scrapers {
        s.join().unwrap();
    }
    assert_eq!(exporter.metrics().find("cost_order_00", &[]), vec![1.0]);
}
