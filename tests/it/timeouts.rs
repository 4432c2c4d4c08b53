//! Timeouts to the database (issue 17): reported as `kind="timeout"` with the limit that was hit, and the reason a
//! target is down shown on the landing page and by `/readyz`.

use std::time::Duration;

use crate::support::http::get;
use crate::support::{Cluster, Db, Exporter, Metrics, eventually};

const QUICK: &str = r#"queries:
  quick:
    help: Answers at once.
    sql: SELECT 42 AS v
    metrics: [{name: quick_value, type: gauge, value: v}]
"#;

/// What a probe of a hung server may end with: each message names the limit it hit.
const HUNG: [&str; 2] = [
    "connecting took longer than the 2s connect timeout (--database.connect-timeout",
    "server did not answer the probe within",
];

#[test]
fn a_hung_server_is_a_timeout_that_names_the_limit_on_the_landing_page_and_readyz() {
    let mut db = Db::on(Cluster::start(), "hung");
    let exporter = Exporter::with(QUICK).db(&db.url).args(&["--database.connect-timeout", "2s"]).start();
    assert_eq!(exporter.metrics().get("pg_up", &[]), 1.0);
    db.cluster().freeze();
    let timed_out = eventually(Duration::from_secs(30), || {
        let m = exporter.metrics();
        m.get("pg_up", &[]) == 0.0 && m.get("runbook_exporter_probe_errors_total", &[("kind", "timeout")]) >= 1.0
    });
    let connection_errors = exporter.metrics().get("runbook_exporter_probe_errors_total", &[("kind", "connection")]);
    let (_, landing) = get(&exporter.url("/"), &[]);
    let (status, ready) = get(&exporter.url("/readyz"), &[]);
    db.cluster().thaw();
    assert!(timed_out, "no probe error of kind timeout: {}", exporter.logs());
    assert_eq!(connection_errors, 0.0, "{}", exporter.logs());
    assert!(landing.contains("<span class=\"badge down\">DOWN</span>"), "landing page: {landing}");
    let shown = landing
        .split("<dt>last probe error</dt><dd>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default();
    assert!(shown.starts_with("timeout: ") && HUNG.iter().any(|m| shown.contains(m)), "landing page: {landing}");
    assert_eq!(status, 503, "{ready}");
    assert!(ready.starts_with("not ready: cannot connect to default (timeout: "), "{ready}");
    assert!(HUNG.iter().any(|m| ready.contains(m)), "{ready}");
    assert!(eventually(Duration::from_secs(20), || exporter.metrics().get("pg_up", &[]) == 1.0), "{}", exporter.logs());
    assert_eq!(get(&exporter.url("/readyz"), &[]), (200, "ready\n".to_owned()));
}

#[test]
fn waiting_for_a_busy_pool_is_a_timeout_that_names_the_limit() {
    // One connection, held by a slow query, so the next scrape's probe waits for it past the pool's wait limit
    // (--database.connect-timeout plus 5 s) while the query still runs.
    let catalogue = "queries:\n  slow:\n    help: Holds the only connection.\n    timeout: 30s\n    \
                     sql: SELECT 1 AS v FROM pg_sleep(15)\n    metrics: [{name: slow_value, type: gauge, value: v}]\n";
    let db = Db::new("busypool");
    let exporter = Exporter::with(catalogue)
        .db(&db.url)
        .args(&["--database.max-connections", "1", "--database.connect-timeout", "1s"])
        .start();
    let scrape = || get(&exporter.url("/metrics"), &[("X-Prometheus-Scrape-Timeout-Seconds", "30")]);
    std::thread::scope(|s| {
        let first = s.spawn(scrape);
        // Past the probe's 1 s reuse, so the next scrape probes again and needs the connection.
        let mut admin = db.client();
        let running = eventually(Duration::from_secs(20), || {
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(15)%' \
                     AND pid <> pg_backend_pid() AND now() - query_start > interval '1500 ms'",
                    &[],
                )
                .unwrap()
                .get(0);
            n == 1
        });
        assert!(running, "the slow query never ran: {}", exporter.logs());
        let (status, body) = scrape();
        assert_eq!(status, 200, "{body}");
        let m = Metrics::parse(&body);
        assert_eq!(m.get("pg_up", &[]), 0.0);
        assert_eq!(m.get("runbook_exporter_probe_errors_total", &[("kind", "timeout")]), 1.0, "{}", exporter.logs());
        assert_eq!(m.get("runbook_exporter_probe_errors_total", &[("kind", "connection")]), 0.0);
        let (status, body) = first.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(Metrics::parse(&body).get("slow_value", &[]), 1.0);
    });
    let said =
        "no free connection within the 6s wait (every pooled connection stayed busy; --database.max-connections)";
    assert!(eventually(Duration::from_secs(5), || exporter.logs().contains(said)), "{}", exporter.logs());
}
