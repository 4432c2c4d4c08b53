//! Scrape engine (issue 6): single-flight, TTL cache, refresh-ahead, deadlines,
//! and the connection bound, counted by the database itself (pg_stat_statements).

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::{Db, Exporter, Metrics, get};

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

fn exporter_connections(db: &Db) -> i64 {
    let mut c = db.client();
    c.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'runbook-exporter'", &[])
        .unwrap()
        .get(0)
}

#[test]
fn concurrent_scrapes_share_one_execution_and_stay_within_the_pool() {
    let db = Db::new("singleflight");
    let catalogue = r#"
queries:
  slow:
    help: Sleeps one second.
    timeout: 10s
    sql: SELECT 1 AS single_flight_marker FROM pg_sleep(1)
    metrics: [{name: slow_value, type: gauge, value: single_flight_marker}]
"#;
    let exporter = Arc::new(Exporter::start(catalogue, &db.url, &["--database.max-connections", "2"]));
    // Let the pool connect first, so the probe is not part of what is measured.
    let (status, _) = get(&exporter.url("/readyz"), &[]);
    assert_eq!(status, 200);
    let before = executions(&db, "single_flight_marker");

    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done, url) = (peak.clone(), done.clone(), db.url.clone());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            while !done.load(Ordering::Relaxed) {
                let n: i64 = c
                    .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'runbook-exporter'", &[])
                    .unwrap()
                    .get(0);
                peak.fetch_max(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let barrier = Arc::new(Barrier::new(20));
    let scrapers: Vec<_> = (0..20)
        .map(|_| {
            let (exporter, barrier) = (exporter.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                exporter.metrics()
            })
        })
        .collect();
    for s in scrapers {
        assert_eq!(s.join().unwrap().get("slow_value", &[]), 1.0);
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(executions(&db, "single_flight_marker") - before, 1, "20 concurrent scrapes must cause one execution");
    assert!(
        peak.load(Ordering::Relaxed) <= 2,
        "exporter held {} connections, pool max is 2",
        peak.load(Ordering::Relaxed)
    );
}

#[test]
fn a_ttl_result_is_reused_until_it_expires() {
    let db = Db::new("ttl");
    let catalogue = r#"
queries:
  cached:
    help: Cached for five seconds.
    ttl: 5s
    sql: SELECT 7 AS ttl_marker
    metrics: [{name: cached_value, type: gauge, value: ttl_marker}]
"#;
    let exporter = Exporter::start(catalogue, &db.url, &[]);
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
    let catalogue = r#"
queries:
  dashboard:
    help: A slow dashboard query whose value changes on every run.
    ttl: 3s
    refresh_ahead: true
    timeout: 10s
    sql: SELECT extract(epoch FROM clock_timestamp()) AS ran_at FROM pg_sleep(1.5)
    metrics: [{name: dashboard_ran_at, type: gauge, value: ran_at}]
"#;
    let exporter = Exporter::start(catalogue, &db.url, &[]);
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
        support::eventually(Duration::from_secs(5), || exporter.metrics().get("dashboard_ran_at", &[]) > first),
        "the background refresh never landed"
    );
}

#[test]
fn a_scrape_answers_by_prometheus_deadline_with_what_it_has() {
    let db = Db::new("deadline");
    let catalogue = r#"
queries:
  slow:
    help: Takes three seconds.
    timeout: 10s
    sql: SELECT 1 AS v FROM pg_sleep(3)
    metrics: [{name: slow_value, type: gauge, value: v}]
  fast:
    help: Answers at once.
    sql: SELECT 2 AS v
    metrics: [{name: fast_value, type: gauge, value: v}]
"#;
    let exporter = Exporter::start(catalogue, &db.url, &[]);
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
