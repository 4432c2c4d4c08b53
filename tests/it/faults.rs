//! Fault injection against a real PostgreSQL (reliability issue): for each
//! fault, `/metrics` keeps answering within its deadline, the self-metrics say
//! what happened, and the exporter recovers without a restart. Plus the
//! security checks: least-privilege role, read-only execution, side-effect
//! denylist, and no password in anything the exporter prints or serves.
//!
//! Every test prints one `RELIABILITY|test|fault|asserts|numbers` line, which
//! `scripts/reliability-report.sh` turns into the table of docs/reliability.md.
//! The tests run one at a time (they measure time and memory).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::cluster::exporter_backends;
use crate::support::data::{catalogue, root};
use crate::support::exporter::run;
use crate::support::http::{Client, Reply, basic_auth, get_within};
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::openmetrics::{self, Dialect};
use crate::support::process::{is_root, memory_kib};
use crate::support::{Cluster, Db, Exporter, Metrics, PASSWORD, eventually};

/// Passwords of the roles these tests create; none may ever show up in output.
const MONITOR_PASSWORD: &str = "Mon1tor-Only-pw";
const OLD_PASSWORD: &str = "Old-Rotating-pw1";
const NEW_PASSWORD: &str = "New-Rotating-pw2";
const SECRETS: &[&str] = &[PASSWORD, MONITOR_PASSWORD, OLD_PASSWORD, NEW_PASSWORD];

/// One fault test at a time: they measure timings and memory and must not disturb each other.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Prints the line `scripts/reliability-report.sh` collects: test, fault, what is asserted, measurements.
fn record(test: &str, fault: &str, asserts: &str, numbers: &str) {
    let clean = |s: &str| s.replace(['|', '\n'], " ");
    println!("RELIABILITY|{}|{}|{}|{}", clean(test), clean(fault), clean(asserts), clean(numbers));
}

/// The start of most fault tests: this test's turn, a database `test` on a cluster of its own, and an exporter
/// serving `catalogue` (from `tests/data/catalogues/`) for it with `args`.
fn setup(test: &str, catalogue: &str, args: &[&str]) -> (MutexGuard<'static, ()>, Db, Exporter) {
    let (one, db) = serial_db(test, &[]);
    let exporter = start(catalogue, &db.url, args);
    (one, db, exporter)
}

/// This test's turn and a database `test` on a cluster of its own, started with `settings`.
fn serial_db(test: &str, settings: &[&str]) -> (MutexGuard<'static, ()>, Db) {
    let one = serial();
    (one, Db::on(Cluster::start_with(settings), test))
}

/// An exporter serving `catalogue` from `tests/data/catalogues/` for `url`, with `args`.
fn start(catalogue_name: &str, url: &str, args: &[&str]) -> Exporter {
    Exporter::with(&catalogue(catalogue_name)).db(url).args(args).start()
}

/// A scrape as Prometheus sends it with the scrape timeout header; returns status, parsed metrics, body, time
/// taken.
fn prom_scrape(exporter: &Exporter, timeout_header: &str) -> (u16, Metrics, String, Duration) {
    let (status, body, took) = get_within(
        &exporter.url("/metrics"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", timeout_header)],
        Duration::from_secs(30),
    );
    let metrics = if status == 200 { Metrics::parse(&body) } else { Metrics::default() };
    (status, metrics, body, took)
}

fn success(m: &Metrics, query: &str) -> f64 {
    m.value_or_nan("runbook_exporter_query_success", &[("query", query)])
}

fn error_count(m: &Metrics, query: &str, kind: &str) -> f64 {
    m.value_or_nan("runbook_exporter_query_errors_total", &[("query", query), ("kind", kind)])
}

/// Sum of `runbook_exporter_query_errors_total` for `query` over every kind.
fn errors_of(m: &Metrics, query: &str) -> f64 {
    m.sum("runbook_exporter_query_errors_total", &[("query", query)])
}

/// Scans the exporter's logs and public pages (the landing page, `/metrics` in both formats, `/readyz`) and
/// `extra` for every password; panics naming the line a password is in.
fn scan_exporter(exporter: &Exporter, extra: &[(&str, &str)]) {
    let logs = exporter.logs();
    let client = Client::new(Duration::from_secs(30));
    let mut pages = Vec::new();
    for (path, accept) in [
        ("/", "text/html"),
        ("/metrics", "text/plain"),
        ("/metrics", "application/openmetrics-text; version=1.0.0"),
        ("/readyz", "text/plain"),
    ] {
        if let (Reply::Answer(_, body), _) = client.get(&exporter.url(path), &[("Accept", accept)]) {
            pages.push((format!("{path} ({accept})"), body));
        }
    }
    let mut texts: Vec<(&str, &str)> = pages.iter().map(|(w, t)| (w.as_str(), t.as_str())).collect();
    texts.push(("exporter log", &logs));
    texts.extend_from_slice(extra);
    for (what, text) in texts {
        for secret in SECRETS {
            if let Some(line) = text.lines().find(|l| l.contains(secret)) {
                panic!("a password ({secret:?}) leaked into {what}, in this line:\n{line}");
            }
        }
    }
}

/// Waits (up to 10 s) until a statement containing `marker` runs on the server, so that a fault hits it in flight:
/// a fixed pause missed it on a loaded machine.
fn wait_until_running(client: &mut postgres::Client, marker: &str) {
    let start = Instant::now();
    loop {
        let running: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0",
                &[&marker],
            )
            .unwrap()
            .get(0);
        if running > 0 {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no statement with {marker} started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Terminates every backend of the exporter, as an operator would, and waits until they are gone.
fn terminate_exporter_backends(client: &mut postgres::Client) -> usize {
    let n: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'runbook-exporter'",
            &[],
        )
        .unwrap()
        .get(0);
    let start = Instant::now();
    while !exporter_backends(client).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "terminated backends did not go away");
        std::thread::sleep(Duration::from_millis(50));
    }
    n as usize
}

/// A login role with `pg_monitor` and nothing else (no superuser), password authenticated over TCP.
fn monitor_role(db: &Db, role: &str, password: &str) -> String {
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE pg_monitor; GRANT CONNECT ON DATABASE {} TO {role}",
            db.name
        ))
        .unwrap();
    format!("postgres://{role}:{password}@127.0.0.1:{}/{}", db.port(), db.name)
}

// ---------------------------------------------------------------------------
// 1. PostgreSQL killed in the middle of a scrape, restarted on the same port.

#[test]
fn fault_01_postgres_killed_mid_scrape() {
    let (_one, mut db, exporter) = setup("killed", "quick_and_sleepy", &[]);
    let (status, m, _, _) = prom_scrape(&exporter, "5");
    assert_eq!(status, 200);
    assert_eq!(success(&m, "sleepy"), 1.0);

    let mut watch = db.client();
    let (status, m, _, during) = std::thread::scope(|s| {
        let in_flight = s.spawn(|| prom_scrape(&exporter, "5"));
        wait_until_running(&mut watch, "pg_sleep(2)");
        db.cluster().stop_immediate();
        in_flight.join().unwrap()
    });
    let kind_connection = error_count(&m, "sleepy", "connection");

    std::thread::sleep(Duration::from_millis(1100));
    let (down_status, down, _, down_took) = prom_scrape(&exporter, "3");

    db.cluster().launch();
    std::thread::sleep(Duration::from_millis(1100));
    let restarted = Instant::now();
    let mut scrapes = 0;
    let mut first_after_restart = None;
    let recovered = loop {
        scrapes += 1;
        let (_, m, _, _) = prom_scrape(&exporter, "5");
        let ok = m.value_or_nan("pg_up", &[]) == 1.0 && success(&m, "quick") == 1.0 && success(&m, "sleepy") == 1.0;
        first_after_restart.get_or_insert(ok);
        if ok || restarted.elapsed() > Duration::from_secs(15) {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let recovery = restarted.elapsed();
    record(
        "fault_01_postgres_killed_mid_scrape",
        "PostgreSQL killed (immediate shutdown) during a scrape, restarted on the same port",
        "in-flight scrape answers 200 before its 5 s deadline with query_success{sleepy} 0 and errors{kind=connection}; \
         scrapes while down answer at once with pg_up 0; metrics come back after the restart without restarting the exporter",
        &format!(
            "in-flight scrape {:.2} s; errors{{sleepy,connection}} {kind_connection}; scrape while down {:.3} s (pg_up {}); \
             recovered: {recovered} after {scrapes} scrape(s), {:.1} s; first scrape after restart ok: {}",
            during.as_secs_f64(),
            down_took.as_secs_f64(),
            down.value_or_nan("pg_up", &[]),
            recovery.as_secs_f64(),
            first_after_restart.unwrap_or(false)
        ),
    );
    assert_eq!(status, 200);
    assert!(during < Duration::from_secs(5), "in-flight scrape took {during:?}");
    assert_eq!(success(&m, "sleepy"), 0.0, "the killed query must not be reported as a success");
    assert!(kind_connection >= 1.0, "the killed query must count as kind=connection: {}", exporter.logs());
    assert_eq!(down_status, 200);
    assert!(down_took < Duration::from_secs(2), "scrape with the server down took {down_took:?}");
    assert_eq!(down.value_or_nan("pg_up", &[]), 0.0);
    assert_eq!(success(&down, "quick"), 0.0);
    assert!(recovered, "no recovery within 15 s of the restart: {}", exporter.logs());
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 2. The exporter's backends terminated by an operator.

#[test]
fn fault_02_backend_terminated_by_operator() {
    let (_one, db, exporter) = setup("terminated", "quick_and_activity", &[]);
    for _ in 0..2 {
        let (_, m, _, _) = prom_scrape(&exporter, "3");
        assert_eq!(success(&m, "quick"), 1.0);
    }
    let mut admin = db.client();
    let before = exporter_backends(&mut admin);
    assert!(!before.is_empty(), "the pool holds no connection to terminate");
    let terminated = terminate_exporter_backends(&mut admin);
    // Past the probe's 1 s reuse, so the next scrape really checks a connection out of the pool.
    std::thread::sleep(Duration::from_millis(1100));
    let (status, next, _, took) = prom_scrape(&exporter, "3");
    let (_, after_next, _, _) = prom_scrape(&exporter, "3");
    let after = exporter_backends(&mut admin);
    let reused: Vec<&i32> = after.iter().filter(|p| before.contains(p)).collect();
    record(
        "fault_02_backend_terminated_by_operator",
        "the exporter's backends terminated with pg_terminate_backend",
        "the very next scrape has pg_up 1, every query_success 1 and no new error: no stale pooled connection is reused",
        &format!(
            "terminated {terminated} backend(s); next scrape {:.3} s: pg_up {}, quick {}, activity {}, errors {}; \
             scrape after: pg_up {}; backends before {before:?}, after {after:?}",
            took.as_secs_f64(),
            next.value_or_nan("pg_up", &[]),
            success(&next, "quick"),
            success(&next, "activity"),
            errors_of(&next, "quick") + errors_of(&next, "activity"),
            after_next.value_or_nan("pg_up", &[]),
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(next.value_or_nan("pg_up", &[]), 1.0, "very next scrape after termination: {}", exporter.logs());
    assert_eq!(success(&next, "quick"), 1.0, "{}", exporter.logs());
    assert_eq!(success(&next, "activity"), 1.0, "{}", exporter.logs());
    assert_eq!(errors_of(&next, "quick") + errors_of(&next, "activity"), 0.0, "{}", exporter.logs());
    assert!(reused.is_empty(), "terminated backends still listed: {reused:?}");
    assert!(!after.is_empty(), "no fresh connection was opened");
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 3. A hung server: postmaster and backends stopped with SIGSTOP.

#[test]
fn fault_03_hung_server_sigstop() {
    let (_one, mut db, exporter) = setup("frozen", "quick_and_slowish", &["--database.connect-timeout", "2s"]);
    let (_, m, _, _) = prom_scrape(&exporter, "3");
    assert_eq!(success(&m, "slowish"), 1.0);
    let max = m.value_or_nan("runbook_exporter_pool_max_connections", &[]);

    std::thread::sleep(Duration::from_millis(1100));
    let mut watch = db.client();
    let (frozen_at, (status, first, _, first_took)) = std::thread::scope(|s| {
        let in_flight = s.spawn(|| prom_scrape(&exporter, "3"));
        wait_until_running(&mut watch, "pg_sleep(0.5)");
        db.cluster().freeze();
        (Instant::now(), in_flight.join().unwrap())
    });

    let mut times = vec![first_took];
    let mut statuses = vec![status];
    let mut open_seen = vec![first.value_or_nan("runbook_exporter_pool_open_connections", &[])];
    let mut last = first;
    while frozen_at.elapsed() < Duration::from_secs(9) {
        std::thread::sleep(Duration::from_millis(1000));
        let (status, m, _, took) = prom_scrape(&exporter, "3");
        times.push(took);
        statuses.push(status);
        open_seen.push(m.value_or_nan("runbook_exporter_pool_open_connections", &[]));
        last = m;
    }
    let logs_frozen = exporter.logs();
    db.cluster().thaw();
    let thawed = Instant::now();
    let recovered = eventually(Duration::from_secs(20), || {
        let (_, m, _, _) = prom_scrape(&exporter, "3");
        m.value_or_nan("pg_up", &[]) == 1.0 && success(&m, "quick") == 1.0 && success(&m, "slowish") == 1.0
    });
    let recovery = thawed.elapsed();
    let (_, after, _, _) = prom_scrape(&exporter, "3");
    let open_after = after.value_or_nan("runbook_exporter_pool_open_connections", &[]);
    let mut admin = db.client();
    let mut backends = exporter_backends(&mut admin).len();
    eventually(Duration::from_secs(10), || {
        backends = exporter_backends(&mut admin).len();
        backends as f64 <= max
    });
    let slowest = times.iter().max().copied().unwrap_or_default();
    let probe_errors = last.sum("runbook_exporter_probe_errors_total", &[]);
    let unreachable = logs_frozen.lines().rfind(|l| l.contains("database unreachable")).unwrap_or("").to_owned();
    record(
        "fault_03_hung_server_sigstop",
        "server hung: postmaster and backends stopped with SIGSTOP for 9 s, then resumed",
        "every scrape with X-Prometheus-Scrape-Timeout-Seconds 3 answers 200 in < 3 s with pg_up 0; the in-flight query is cut \
         client-side (kind=deadline for the scrape, kind=timeout for the execution); the probe gives up client-side; \
         after SIGCONT metrics recover and pool_open_connections <= max",
        &format!(
            "{} scrapes while hung, slowest {:.2} s; errors{{slowish}} deadline {} timeout {}; pool open while hung {:?} (max {max}); \
             recovered {recovered} in {:.1} s; pool open after {open_after}, exporter backends after {backends}; \
             probe errors counted while hung {probe_errors}; probe error logged: {}",
            times.len(),
            slowest.as_secs_f64(),
            error_count(&last, "slowish", "deadline"),
            error_count(&last, "slowish", "timeout"),
            open_seen,
            recovery.as_secs_f64(),
            unreachable.split("error=").nth(1).unwrap_or("none logged")
        ),
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(slowest < Duration::from_secs(3), "a scrape took {slowest:?}: {times:?}");
    assert_eq!(last.value_or_nan("pg_up", &[]), 0.0);
    assert!(error_count(&last, "slowish", "deadline") >= 1.0, "the in-flight query must miss the scrape's deadline");
    assert!(
        error_count(&last, "slowish", "timeout") >= 1.0,
        "the hung query must be cut by the client-side bound: {logs_frozen}"
    );
    assert!(!unreachable.is_empty(), "the probe never gave up while the server was hung: {logs_frozen}");
    assert!(probe_errors >= 1.0, "runbook_exporter_probe_errors_total did not count the hung server's probes");
    assert!(open_seen.iter().all(|o| *o <= max), "{open_seen:?} > {max}");
    assert!(recovered, "no recovery within 20 s of SIGCONT: {}", exporter.logs());
    assert!(open_after <= max);
    assert!(backends as f64 <= max, "{backends} exporter backends after recovery, max {max}");
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 4. max_connections exhausted by other clients.

#[test]
fn fault_04_max_connections_exhausted() {
    let (_one, db) = serial_db("full", &["max_connections=5", "superuser_reserved_connections=0"]);
    let url = monitor_role(&db, "rbx_monitor", MONITOR_PASSWORD);
    let exporter = start("quick", &url, &["--database.connect-timeout", "2s"]);
    let (_, m, _, _) = prom_scrape(&exporter, "3");
    assert_eq!(m.value_or_nan("pg_up", &[]), 1.0, "{}", exporter.logs());

    let cluster = db.cluster.as_ref().unwrap();
    {
        let mut admin = db.client();
        terminate_exporter_backends(&mut admin);
    }
    let mut held = Vec::new();
    let mut refusal = String::new();
    for _ in 0..10 {
        match cluster.try_connect("postgres") {
            Ok(c) => held.push(c),
            Err(e) => {
                refusal =
                    e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or(e.to_string());
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1100));
    let (status, full, _, took) = prom_scrape(&exporter, "3");
    let says_why = |logs: &str| {
        logs.contains("53300") || logs.contains("too many clients") || logs.contains("remaining connection slots")
    };
    // The log line travels through a pipe to the test's reader thread: wait for it.
    let logged_why = eventually(Duration::from_secs(5), || says_why(&exporter.logs()));
    let logs_full = exporter.logs();
    let kind_connection = error_count(&full, "quick", "connection");
    let probe_connection = full.value_or_nan("runbook_exporter_probe_errors_total", &[("kind", "connection")]);
    let probe_before = m.value_or_nan("runbook_exporter_probe_errors_total", &[("kind", "connection")]);
    let held_count = held.len();
    drop(held);
    let freed = Instant::now();
    let recovered = eventually(Duration::from_secs(10), || {
        let (_, m, _, _) = prom_scrape(&exporter, "3");
        m.value_or_nan("pg_up", &[]) == 1.0 && success(&m, "quick") == 1.0
    });
    let recovery = freed.elapsed();
    record(
        "fault_04_max_connections_exhausted",
        "max_connections (5, none reserved) filled by other clients; exporter role has pg_monitor only",
        "scrape answers at once with pg_up 0, query_success 0 and runbook_exporter_probe_errors_total{kind=connection} \
         counting the refusal; the log names SQLSTATE 53300; recovery once slots free up",
        &format!(
            "held {held_count} connections, next refused with \"{refusal}\"; scrape {:.3} s: pg_up {}, quick {}; \
             probe_errors{{kind=connection}} {probe_before} -> {probe_connection}; errors{{quick,connection}} \
             {kind_connection} (the query did not run: it is not a query error); recovered {recovered} in {:.1} s",
            took.as_secs_f64(),
            full.value_or_nan("pg_up", &[]),
            success(&full, "quick"),
            recovery.as_secs_f64()
        ),
    );
    assert!(refusal.contains("53300"), "the cluster was not full: {refusal}");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(full.value_or_nan("pg_up", &[]), 0.0);
    assert_eq!(success(&full, "quick"), 0.0);
    assert!(
        probe_connection > probe_before,
        "no kind=connection signal for the refused connection: runbook_exporter_probe_errors_total{{kind=\"connection\"}} \
         {probe_before} -> {probe_connection}"
    );
    assert!(logged_why, "the log does not say why: {logs_full}");
    assert!(recovered, "no recovery after the slots were freed: {}", exporter.logs());
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 5. A catalogue query blocked by a lock another session holds.

#[test]
fn fault_05_query_blocked_by_a_lock() {
    let (_one, db) = serial_db("locked", &[]);
    let mut holder = db.client();
    holder.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)").unwrap();
    let exporter = start("quick_and_locked", &db.url, &[]);
    let (_, m, _, _) = prom_scrape(&exporter, "3");
    assert_eq!(m.value_or_nan("t_rows", &[]), 2.0);

    holder.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").unwrap();
    let (status, blocked, _, took) = prom_scrape(&exporter, "3");
    holder.batch_execute("COMMIT").unwrap();
    let (_, freed, _, _) = prom_scrape(&exporter, "3");
    record(
        "fault_05_query_blocked_by_a_lock",
        "a catalogue query blocked by LOCK TABLE ... ACCESS EXCLUSIVE held in an open transaction",
        "lock_timeout (500 ms) cuts it: query_success 0, errors{kind=lock_timeout} 1, its series gone; the other query is served; \
         the next scrape after COMMIT succeeds",
        &format!(
            "scrape under lock {:.3} s; locked: success {}, lock_timeout errors {}; quick {}; after COMMIT: locked success {}",
            took.as_secs_f64(),
            success(&blocked, "locked"),
            error_count(&blocked, "locked", "lock_timeout"),
            success(&blocked, "quick"),
            success(&freed, "locked")
        ),
    );
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(success(&blocked, "locked"), 0.0);
    assert_eq!(error_count(&blocked, "locked", "lock_timeout"), 1.0, "{}", exporter.logs());
    assert!(blocked.find("t_rows", &[]).is_empty());
    assert_eq!(blocked.value_or_nan("quick_value", &[]), 42.0);
    assert_eq!(success(&blocked, "quick"), 1.0);
    assert_eq!(success(&freed, "locked"), 1.0);
    assert_eq!(freed.value_or_nan("t_rows", &[]), 2.0);
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 6. A query that returns 1,000,000 rows, with the default series budget.

/// Most the exporter's resident memory may grow while refusing runaway results or serving a flood.
const MEMORY_BOUND_KIB: u64 = 50 * 1024;

#[test]
fn fault_06_million_row_query() {
    let (_one, db, exporter) = setup("million", "quick_and_million_rows", &[]);
    let _ = get_within(&exporter.url("/healthz"), &[], Duration::from_secs(5));
    let (rss_before, _) = memory_kib(exporter.pid());
    let mut took = Vec::new();
    let mut last = Metrics::default();
    for _ in 0..5 {
        let (status, m, _, t) = prom_scrape(&exporter, "10");
        assert_eq!(status, 200);
        took.push(t.as_secs_f64());
        last = m;
    }
    let (rss_after, peak) = memory_kib(exporter.pid());
    let mut admin = db.client();
    let mut still_running = 1i64;
    eventually(Duration::from_secs(5), || {
        still_running = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%generate_series(1, 1000000)%' \
                 AND pid <> pg_backend_pid() AND state = 'active'",
                &[],
            )
            .unwrap()
            .get(0);
        still_running == 0
    });
    record(
        "fault_06_million_row_query",
        "a catalogue query returning 1,000,000 rows, max_series at its default (1000)",
        "the series budget cuts it (errors{kind=cardinality}, no huge_value series, success 0), the other query is served, \
         RSS peak stays within +50 MiB of the idle process, the server-side query does not keep running",
        &format!(
            "5 scrapes {took:.2?} s; cardinality errors {}; RSS before {} MiB, after {} MiB, peak {} MiB (+{} MiB, bound +{} MiB); \
             server backends still running it: {still_running}",
            error_count(&last, "huge", "cardinality"),
            rss_before / 1024,
            rss_after / 1024,
            peak / 1024,
            peak.saturating_sub(rss_before) / 1024,
            MEMORY_BOUND_KIB / 1024
        ),
    );
    assert_eq!(error_count(&last, "huge", "cardinality"), 5.0, "{}", exporter.logs());
    assert_eq!(success(&last, "huge"), 0.0);
    assert!(last.find("huge_value", &[]).is_empty());
    assert_eq!(success(&last, "quick"), 1.0);
    assert!(
        peak.saturating_sub(rss_before) < MEMORY_BOUND_KIB,
        "RSS grew from {rss_before} KiB to a peak of {peak} KiB"
    );
    assert_eq!(still_running, 0, "the cut-off query keeps running on the server");
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 7. A scrape flood: 200 concurrent connections for 30 s.

#[test]
fn fault_07_scrape_flood() {
    let (_one, db, exporter) = setup("flood", "flood", &[]);
    let (_, m, _, _) = prom_scrape(&exporter, "3");
    let pool_max = m.value_or_nan("runbook_exporter_pool_max_connections", &[]);
    let (rss_before, _) = memory_kib(exporter.pid());

    const CLIENTS: usize = 200;
    const DURATION: Duration = Duration::from_secs(30);
    let stop = Arc::new(AtomicBool::new(false));
    let full = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let invalid = Arc::new(AtomicU64::new(0));
    let hangs = Arc::new(AtomicU64::new(0));
    let broken = Arc::new(AtomicU64::new(0));
    let slowest_reject_ms = Arc::new(AtomicU64::new(0));
    let slowest_full_ms = Arc::new(AtomicU64::new(0));
    let first_problem = Arc::new(std::sync::Mutex::new(String::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, full, rejected, invalid, hangs, broken, slowest_reject_ms, slowest_full_ms, first_problem) = (
            stop.clone(),
            full.clone(),
            rejected.clone(),
            invalid.clone(),
            hangs.clone(),
            broken.clone(),
            slowest_reject_ms.clone(),
            slowest_full_ms.clone(),
            first_problem.clone(),
        );
        let url = exporter.url("/metrics");
        workers.push(std::thread::spawn(move || {
            let client = Client::new(Duration::from_secs(10));
            let note = |what: String| {
                let mut p = first_problem.lock().unwrap();
                if p.is_empty() {
                    *p = what;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let (reply, took) = client.get(
                    &url,
                    &[
                        ("Accept", "application/openmetrics-text; version=1.0.0"),
                        ("X-Prometheus-Scrape-Timeout-Seconds", "10"),
                    ],
                );
                let ms = took.as_millis() as u64;
                match reply {
                    Reply::Answer(200, body) => match openmetrics::check(&body, Dialect::OpenMetrics) {
                        Ok(_) => {
                            full.fetch_add(1, Ordering::Relaxed);
                            slowest_full_ms.fetch_max(ms, Ordering::Relaxed);
                        }
                        Err(e) => {
                            invalid.fetch_add(1, Ordering::Relaxed);
                            note(format!("invalid body: {e}"));
                        }
                    },
                    Reply::Answer(503 | 429, _) => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        slowest_reject_ms.fetch_max(ms, Ordering::Relaxed);
                    }
                    Reply::Answer(other, body) => {
                        invalid.fetch_add(1, Ordering::Relaxed);
                        note(format!("status {other}: {body}"));
                    }
                    Reply::Hang => {
                        hangs.fetch_add(1, Ordering::Relaxed);
                        note(format!("no answer within 10 s (after {took:?})"));
                    }
                    Reply::Broken(e) => {
                        broken.fetch_add(1, Ordering::Relaxed);
                        note(format!("broken: {e}"));
                    }
                }
            }
        }));
    }
    let mut admin = db.client();
    let mut max_db = 0usize;
    let mut max_rss = 0u64;
    while start.elapsed() < DURATION {
        max_db = max_db.max(exporter_backends(&mut admin).len());
        max_rss = max_rss.max(memory_kib(exporter.pid()).0);
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = start.elapsed();
    let (rss_after, peak) = memory_kib(exporter.pid());
    let (status, after, _, after_took) = prom_scrape(&exporter, "3");
    let total = full.load(Ordering::Relaxed)
        + rejected.load(Ordering::Relaxed)
        + invalid.load(Ordering::Relaxed)
        + hangs.load(Ordering::Relaxed)
        + broken.load(Ordering::Relaxed);
    let problem = first_problem.lock().unwrap().clone();
    record(
        "fault_07_scrape_flood",
        "scrape flood: 200 concurrent keep-alive clients for 30 s on loopback",
        "every response is a complete, strictly valid OpenMetrics body or a fast 503/429; 0 hangs (10 s client bound), \
         0 broken connections; exporter backends never above the pool size; RSS peak within +50 MiB; a normal scrape works after",
        &format!(
            "{total} requests in {:.1} s ({:.0}/s): {} full (slowest {} ms), {} rejected 503/429 (slowest {} ms), \
             {} invalid, {} hangs, {} broken{}; exporter backends max {max_db} (pool {pool_max}); \
             RSS before {} MiB, max sampled {} MiB, peak {} MiB (+{} MiB), after {} MiB; scrape after {:.3} s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            full.load(Ordering::Relaxed),
            slowest_full_ms.load(Ordering::Relaxed),
            rejected.load(Ordering::Relaxed),
            slowest_reject_ms.load(Ordering::Relaxed),
            invalid.load(Ordering::Relaxed),
            hangs.load(Ordering::Relaxed),
            broken.load(Ordering::Relaxed),
            if problem.is_empty() { String::new() } else { format!(" (first problem: {problem})") },
            rss_before / 1024,
            max_rss / 1024,
            peak / 1024,
            peak.saturating_sub(rss_before) / 1024,
            rss_after / 1024,
            after_took.as_secs_f64()
        ),
    );
    assert_eq!(hangs.load(Ordering::Relaxed), 0, "{problem}");
    assert_eq!(invalid.load(Ordering::Relaxed), 0, "{problem}");
    assert_eq!(broken.load(Ordering::Relaxed), 0, "{problem}");
    assert!(full.load(Ordering::Relaxed) > 0);
    assert!(
        slowest_reject_ms.load(Ordering::Relaxed) < 2000,
        "a rejection took {} ms",
        slowest_reject_ms.load(Ordering::Relaxed)
    );
    assert!(max_db as f64 <= pool_max, "{max_db} backends > pool {pool_max}");
    assert!(peak.saturating_sub(rss_before) < MEMORY_BOUND_KIB, "RSS {rss_before} KiB -> peak {peak} KiB");
    assert_eq!(status, 200);
    assert_eq!(success(&after, "quick"), 1.0);
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 8. Slow clients (slowloris).

/// Slow connections of the plain slowloris attack.
const SLOW_CONNECTIONS: usize = 100;

/// Slow connections past the server's connection cap (more than it keeps open at once).
const PAST_THE_CAP: usize = 600;

/// How long the server may keep a connection that has not sent a complete request head.
const HEADER_READ_BOUND: Duration = Duration::from_secs(31);

/// How an attacking connection misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request line and a header, never the blank line that ends the head.
    Http1Head,
    /// Sends the first bytes of the HTTP/2 connection preface and stops.
    Http2Preface,
}

const STALLS: [Stall; 3] = [Stall::Silent, Stall::Http1Head, Stall::Http2Preface];

/// One attacking connection.
struct Slow {
    stream: TcpStream,
    stall: Stall,
    closed_at: Option<Duration>,
}

/// Opens `n` slow connections to `address`, cycling through the kinds of stall; stops early if connecting fails.
fn open_slow(address: &str, n: usize) -> Vec<Slow> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let Ok(mut stream) = TcpStream::connect(address) else { break };
        let stall = STALLS[i % STALLS.len()];
        let _ = match stall {
            Stall::Silent => Ok(()),
            Stall::Http1Head => stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: "),
            Stall::Http2Preface => stream.write_all(b"PRI * HTTP/2.0\r\n"),
        };
        stream.set_nonblocking(true).unwrap();
        out.push(Slow { stream, stall, closed_at: None });
    }
    out
}

/// Notes every connection the server has closed since the last call (EOF or reset; an answer such as 408 is read past).
fn poll_closed(conns: &mut [Slow], since: Instant) {
    let mut buf = [0u8; 4096];
    for c in conns.iter_mut().filter(|c| c.closed_at.is_none()) {
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    c.closed_at = Some(since.elapsed());
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    c.closed_at = Some(since.elapsed());
                    break;
                }
            }
        }
    }
}

/// Connections of one kind: closed within the bound, total, slowest close.
type Closed = (usize, usize, Option<Duration>);

fn closed_summary(conns: &[Slow], stall: Stall) -> Closed {
    let group: Vec<&Slow> = conns.iter().filter(|c| c.stall == stall).collect();
    let closed: Vec<Duration> = group.iter().filter_map(|c| c.closed_at).filter(|d| *d <= HEADER_READ_BOUND).collect();
    (closed.len(), group.len(), closed.iter().max().copied())
}

#[test]
fn fault_08_slowloris() {
    let (_one, _db, exporter) = setup("slowloris", "quick", &[]);
    let start = Instant::now();
    let mut conns = open_slow(&exporter.address, SLOW_CONNECTIONS);
    assert_eq!(conns.len(), SLOW_CONNECTIONS);
    // Normal scrapes keep working while the slow connections are open.
    let mut scrape_times = Vec::new();
    let mut scrape_ok = true;
    while start.elapsed() < HEADER_READ_BOUND {
        if scrape_times.len() < 10 {
            let (status, m, _, took) = prom_scrape(&exporter, "3");
            scrape_ok &= status == 200 && success(&m, "quick") == 1.0;
            scrape_times.push(took);
        }
        poll_closed(&mut conns, start);
        if conns.iter().all(|c| c.closed_at.is_some()) && scrape_times.len() >= 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    poll_closed(&mut conns, start);
    let groups: Vec<(Stall, Closed)> = STALLS.iter().map(|s| (*s, closed_summary(&conns, *s))).collect();
    let slowest_scrape = scrape_times.iter().max().copied().unwrap_or_default();
    let described: Vec<String> = groups
        .iter()
        .map(|(stall, (closed, total, last))| {
            let last = last.map(|d| format!(", the last after {:.1} s", d.as_secs_f64())).unwrap_or_default();
            format!("{stall:?} {closed}/{total}{last}")
        })
        .collect();
    record(
        "fault_08_slowloris",
        "slowloris: 100 connections that send nothing, half an HTTP/1 request head, or the start of the HTTP/2 preface",
        "the server closes every such connection within 31 s; normal scrapes keep working meanwhile",
        &format!(
            "closed by the server within {} s: {}; {} scrapes during the attack: all ok {scrape_ok}, slowest {:.3} s",
            HEADER_READ_BOUND.as_secs(),
            described.join(", "),
            scrape_times.len(),
            slowest_scrape.as_secs_f64()
        ),
    );
    assert!(scrape_ok, "a scrape failed during the attack");
    assert!(slowest_scrape < Duration::from_secs(3), "{scrape_times:?}");
    for (stall, (closed, total, _)) in &groups {
        assert_eq!(
            closed,
            total,
            "{stall:?}: {} of {total} connections stayed open past {HEADER_READ_BOUND:?} without a complete request head",
            total - closed
        );
    }
    scan_exporter(&exporter, &[]);
}

#[test]
fn fault_08b_slowloris_past_the_connection_cap() {
    let (_one, _db, exporter) = setup("slowcap", "quick", &[]);
    let start = Instant::now();
    let mut conns = open_slow(&exporter.address, PAST_THE_CAP);
    let opened = conns.len();
    let client = Client::new(Duration::from_secs(3));
    let mut attempts = 0;
    let mut failed = 0;
    let mut first_ok = None;
    let mut first_failure = String::new();
    while start.elapsed() < HEADER_READ_BOUND && first_ok.is_none() {
        attempts += 1;
        match client.get(&exporter.url("/metrics"), &[("X-Prometheus-Scrape-Timeout-Seconds", "3")]) {
            (Reply::Answer(200, _), _) => first_ok = Some(start.elapsed()),
            (other, _) => {
                failed += 1;
                if first_failure.is_empty() {
                    first_failure = format!("{other:?}");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        poll_closed(&mut conns, start);
    }
    poll_closed(&mut conns, start);
    let closed = conns.iter().filter(|c| c.closed_at.is_some()).count();
    record(
        "fault_08b_slowloris_past_the_connection_cap",
        "slowloris with 600 connections (silent, partial HTTP/1 head, partial HTTP/2 preface), more than the server keeps open at once",
        "Prometheus gets a scrape through within 31 s of the attack's start (the slow connections time out and free their slots)",
        &format!(
            "{opened} slow connections accepted by the kernel, {closed} closed by the server; scrape attempts {attempts}, \
             failed {failed}{}; first successful scrape {}",
            if first_failure.is_empty() { String::new() } else { format!(" (first failure: {first_failure})") },
            first_ok.map(|d| format!("after {:.1} s", d.as_secs_f64())).unwrap_or_else(|| "never".into())
        ),
    );
    assert!(first_ok.is_some(), "no scrape got through for {HEADER_READ_BOUND:?}: {first_failure}");
    drop(conns);
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 9. The config file deleted, unreadable, huge or hostile before a reload.

/// A billion-laughs document: nine levels of ten aliases each.
fn alias_bomb() -> String {
    let mut s =
        String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!("a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"));
    }
    s.push_str(&catalogue("quick"));
    s
}

/// The same, inside a field the loader must read (a query's requires.extensions).
fn nested_alias_bomb() -> String {
    let mut s = String::from("queries:\n  quick:\n    help: x\n    sql: SELECT 42 AS v\n    requires:\n");
    s.push_str("      tables: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    s.push_str("      extensions: [");
    // Anchors can be defined inside the value that uses them.
    let mut inner = String::from("*a0");
    for i in 1..9 {
        inner = format!("&a{i} [{inner}, {}]", vec![format!("*a{}", i - 1); 9].join(", "));
    }
    s.push_str(&inner);
    s.push_str(", *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8]\n");
    s.push_str("    metrics: [{name: quick_value, type: gauge, value: v}]\n");
    s
}

#[test]
fn fault_09_config_file_broken_before_reload() {
    let (_one, db) = serial_db("reloadfaults", &[]);
    let as_nobody = is_root();
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).run_as_nobody(as_nobody).start();
    let client = Client::new(Duration::from_secs(10));
    assert_eq!(exporter.metrics().get("quick_value", &[]), 42.0);
    let config = exporter.config.clone();
    let restore = || {
        let _ = std::fs::remove_file(&config);
        let _ = std::fs::remove_dir_all(&config);
        std::fs::write(&config, catalogue("quick")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (reply, _) = client.post(&exporter.url("/-/reload"));
        assert!(matches!(reply, Reply::Answer(200, _)), "restoring the good file: {reply:?}");
    };
    type Breaker = Box<dyn Fn(&std::path::Path)>;
    let mut cases: Vec<(&str, Breaker, &[&str])> = vec![
        ("deleted", Box::new(|p| std::fs::remove_file(p).unwrap()), &["cannot read catalogue", "No such file"]),
        (
            "replaced by a directory",
            Box::new(|p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap();
            }),
            &["cannot read catalogue", "directory"],
        ),
        (
            "dangling symlink",
            Box::new(|p| {
                std::fs::remove_file(p).unwrap();
                std::os::unix::fs::symlink("/nonexistent/queries.yaml", p).unwrap();
            }),
            &["cannot read catalogue", "No such file"],
        ),
        (
            "100 MB file",
            Box::new(|p| std::fs::File::create(p).unwrap().set_len(100 * 1024 * 1024).unwrap()),
            &["catalogue is larger than"],
        ),
        ("YAML alias bomb (top level)", Box::new(|p| std::fs::write(p, alias_bomb()).unwrap()), &["queries.yaml:"]),
        (
            "YAML alias bomb (inside requires)",
            Box::new(|p| std::fs::write(p, nested_alias_bomb()).unwrap()),
            &["queries.yaml:"],
        ),
    ];
    if as_nobody {
        cases.push((
            "chmod 000 (exporter runs as nobody)",
            Box::new(|p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).unwrap();
            }),
            &["cannot read catalogue", "Permission denied"],
        ));
    }
    let (rss_before, _) = memory_kib(exporter.pid());
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut bodies = Vec::new();
    for (name, breaker, expected) in &cases {
        breaker(&config);
        let (reply, took) = client.post(&exporter.url("/-/reload"));
        let m = exporter.metrics();
        let served = m.value_or_nan("quick_value", &[]) == 42.0;
        let flag = m.value_or_nan("runbook_exporter_config_last_reload_successful", &[]);
        let (status, body) = match &reply {
            Reply::Answer(s, b) => (*s, b.clone()),
            other => (0, format!("{other:?}")),
        };
        let first_line = body.lines().nth(1).or(body.lines().next()).unwrap_or("").to_owned();
        results.push(format!("{name}: HTTP {status} in {:.3} s (\"{first_line}\")", took.as_secs_f64()));
        if status != 500 || took >= Duration::from_secs(2) || !served || flag != 0.0 {
            failures.push(format!("{name}: status {status}, {took:?}, served {served}, reload flag {flag}: {body}"));
        }
        if let Some(missing) = expected.iter().find(|e| !body.contains(*e)) {
            failures.push(format!("{name}: error does not say {missing:?}: {body}"));
        }
        let parts: Vec<&str> = first_line.split(": ").collect();
        if parts.windows(2).any(|w| w[0] == w[1]) {
            failures.push(format!("{name}: the error repeats its cause: {first_line:?}"));
        }
        bodies.push(body);
        restore();
    }
    let (_, peak) = memory_kib(exporter.pid());
    record(
        "fault_09_config_file_broken_before_reload",
        "catalogue deleted / replaced by a directory / dangling symlink / chmod 000 (exporter as nobody) / 100 MB / YAML alias bombs, then POST /-/reload",
        "each reload is refused with HTTP 500 in < 2 s and an error naming the file and the cause (once); the running configuration is \
         still served and runbook_exporter_config_last_reload_successful is 0; a good file reloads afterwards",
        &format!("{}; RSS before {} MiB, peak {} MiB", results.join("; "), rss_before / 1024, peak / 1024),
    );
    assert!(failures.is_empty(), "{failures:#?}");
    let texts: Vec<(&str, &str)> = bodies.iter().map(|b| ("reload error", b.as_str())).collect();
    scan_exporter(&exporter, &texts);
}

#[test]
fn fault_09b_config_replaced_by_a_fifo() {
    let (_one, _db, exporter) = setup("fifo", "quick", &[]);
    assert_eq!(exporter.metrics().get("quick_value", &[]), 42.0);
    std::fs::remove_file(&exporter.config).unwrap();
    let ok = std::process::Command::new("mkfifo").arg(&exporter.config).status().unwrap().success();
    assert!(ok, "mkfifo failed");
    let url = exporter.url("/-/reload");
    let reload = std::thread::spawn(move || Client::new(Duration::from_secs(5)).post(&url));
    std::thread::sleep(Duration::from_millis(500));
    // While the reload is pending, scrapes must still be served.
    let (scrape_status, m, _, scrape_took) = prom_scrape(&exporter, "3");
    let (reply, took) = reload.join().unwrap();
    let hung = matches!(reply, Reply::Hang);
    let mut unblocked = None;
    if hung {
        // Unblock the loader: open the FIFO's write end (the loader is blocked opening the read end) and close it.
        let start = Instant::now();
        drop(std::fs::OpenOptions::new().write(true).open(&exporter.config));
        unblocked = Some(start.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(&exporter.config);
    std::fs::write(&exporter.config, catalogue("quick")).unwrap();
    let (after, _) = Client::new(Duration::from_secs(10)).post(&exporter.url("/-/reload"));
    record(
        "fault_09b_config_replaced_by_a_fifo",
        "catalogue replaced by a FIFO (named pipe) nobody writes to, then POST /-/reload",
        "the reload is refused in < 2 s (not left waiting for a writer); scrapes are served meanwhile",
        &format!(
            "reload: {} after {:.1} s; scrape meanwhile HTTP {scrape_status} in {:.3} s (quick_value {}); {}; good file afterwards: {}",
            if hung { "no answer (client gave up)".to_owned() } else { format!("{reply:?}") },
            took.as_secs_f64(),
            scrape_took.as_secs_f64(),
            m.value_or_nan("quick_value", &[]),
            match unblocked {
                Some(d) => format!("unblocked by opening the FIFO for writing ({:.3} s)", d.as_secs_f64()),
                None => "no unblocking needed".into(),
            },
            matches!(after, Reply::Answer(200, _))
        ),
    );
    assert_eq!(scrape_status, 200);
    assert!(
        !hung && took < Duration::from_secs(2),
        "POST /-/reload with the catalogue replaced by a FIFO did not answer within {took:?}: \
         the loader opens the FIFO for reading and blocks until a writer appears"
    );
    assert!(matches!(reply, Reply::Answer(500, _)), "{reply:?}");
    if let Reply::Answer(_, body) = &reply {
        let cause = body.lines().nth(1).unwrap_or_default();
        let parts: Vec<&str> = cause.split(": ").collect();
        assert!(!parts.windows(2).any(|w| w[0] == w[1]), "the error repeats its cause: {cause:?}");
        assert!(cause.contains("cannot read catalogue"), "{body}");
    }
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// 10. The database password changed while running, password file updated, reload.

#[test]
fn fault_10_password_rotated() {
    let (_one, db) = serial_db("rotate", &[]);
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE rbx_rotate LOGIN PASSWORD '{OLD_PASSWORD}' IN ROLE pg_monitor; \
             GRANT CONNECT ON DATABASE {} TO rbx_rotate",
            db.name
        ))
        .unwrap();
    let url = format!("postgres://rbx_rotate@127.0.0.1:{}/{}", db.port(), db.name);
    let secrets = tempfile::tempdir().unwrap();
    let pwfile = secrets.path().join("password");
    std::fs::write(&pwfile, format!("{OLD_PASSWORD}\n")).unwrap();
    let exporter =
        Exporter::with(&catalogue("quick")).db(&url).env("DATABASE_PASSWORD_FILE", pwfile.to_str().unwrap()).start();
    let (_, m, _, _) = prom_scrape(&exporter, "3");
    assert_eq!(m.value_or_nan("pg_up", &[]), 1.0, "{}", exporter.logs());
    let mut admin = db.client();
    let old_backends = exporter_backends(&mut admin);

    admin.batch_execute(&format!("ALTER ROLE rbx_rotate PASSWORD '{NEW_PASSWORD}'")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (_, pooled, _, _) = prom_scrape(&exporter, "3");
    let pooled_up = pooled.value_or_nan("pg_up", &[]);

    terminate_exporter_backends(&mut admin);
    std::thread::sleep(Duration::from_millis(1100));
    let (_, stale, _, stale_took) = prom_scrape(&exporter, "3");
    let stale_up = stale.value_or_nan("pg_up", &[]);
    // The log line travels through a pipe to the test's reader thread: wait for it.
    let auth_logged = eventually(Duration::from_secs(5), || exporter.logs().contains("28P01"));

    std::fs::write(&pwfile, format!("{NEW_PASSWORD}\n")).unwrap();
    let (reply, reload_took) = Client::new(Duration::from_secs(10)).post(&exporter.url("/-/reload"));
    let (_, fresh, _, _) = prom_scrape(&exporter, "3");
    let fresh_up = fresh.value_or_nan("pg_up", &[]);
    let new_backends = exporter_backends(&mut admin);
    record(
        "fault_10_password_rotated",
        "role password changed with ALTER ROLE while running; DATABASE_PASSWORD_FILE updated; POST /-/reload",
        "before the reload, pooled connections keep working (pg_up 1); once they are gone, new connections fail \
         (pg_up 0, 28P01 in the log); after the reload the new password is used: pg_up 1, query_success 1, fresh backends",
        &format!(
            "pooled connection after ALTER ROLE: pg_up {pooled_up}; after terminating it: pg_up {stale_up} in {:.3} s \
             (28P01 logged: {auth_logged}); reload {} in {:.3} s; after reload: pg_up {fresh_up}, quick {}; \
             backends {old_backends:?} -> {new_backends:?}",
            stale_took.as_secs_f64(),
            match &reply {
                Reply::Answer(s, _) => format!("HTTP {s}"),
                other => format!("{other:?}"),
            },
            reload_took.as_secs_f64(),
            success(&fresh, "quick")
        ),
    );
    assert_eq!(pooled_up, 1.0, "an authenticated pooled connection must keep working after ALTER ROLE");
    assert_eq!(stale_up, 0.0, "with the old password no new connection can be made");
    assert!(auth_logged, "the log does not say authentication failed: {}", exporter.logs());
    assert!(matches!(reply, Reply::Answer(200, _)), "{reply:?}");
    assert_eq!(fresh_up, 1.0, "the reload did not pick up the new password: {}", exporter.logs());
    assert_eq!(success(&fresh, "quick"), 1.0);
    assert!(!new_backends.is_empty() && new_backends.iter().all(|p| !old_backends.contains(p)));
    scan_exporter(&exporter, &[]);
}

// ---------------------------------------------------------------------------
// Security: least privilege, read-only, side-effect denylist, no secrets anywhere.

#[test]
fn security_01_shipped_catalogue_with_pg_monitor_only() {
    let (_one, db) = serial_db("ignition", &[]);
    load_ignition(&db, small_seed());
    let mut c = db.client();
    c.batch_execute("ANALYZE").unwrap();
    // Forget the seeding statements, so the role's creation (a statement that holds its password) ranks among the
    // slowest statements pg_stat_statements reports, as it would on a quiet production server.
    c.batch_execute("SELECT pg_stat_statements_reset()").unwrap();
    let url = monitor_role(&db, "rbx_monitor", MONITOR_PASSWORD);
    let superuser: bool =
        c.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = 'rbx_monitor'", &[]).unwrap().get(0);
    assert!(!superuser);
    let shipped = root().join("queries.yaml");
    let exporter = Exporter::with(&std::fs::read_to_string(&shipped).unwrap()).db(&url).start();
    exporter.scrape();
    let m = exporter.metrics();
    let queries: Vec<String> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "runbook_exporter_query_executions_total")
        .map(|(_, l, _)| l["query"].clone())
        .collect();
    let skipped: Vec<String> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "runbook_exporter_query_skipped")
        .map(|(_, l, _)| format!("{} ({})", l["query"], l["reason"]))
        .collect();
    let failing: Vec<String> = queries
        .iter()
        .filter(|q| success(&m, q) == 0.0 || errors_of(&m, q) != 0.0)
        .map(|q| {
            let kinds: Vec<String> = m
                .samples
                .iter()
                .filter(|(n, l, v)| n == "runbook_exporter_query_errors_total" && l["query"] == **q && *v > 0.0)
                .map(|(_, l, v)| format!("{}={v}", l["kind"]))
                .collect();
            let logs = exporter.logs();
            let why = logs
                .lines()
                .find(|l| l.contains("query failed") && l.contains(&format!("query={q} ")))
                .and_then(|l| l.split("error=").nth(1))
                .unwrap_or("")
                .to_owned();
            format!("{q} [{}] {why}", kinds.join(","))
        })
        .collect();
    let served = queries.iter().filter(|q| success(&m, q) == 1.0).count();
    let create_role_label = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "pg_stat_statements_query_info")
        .filter_map(|(_, l, _)| l.get("query"))
        .find(|q| q.contains("CREATE ROLE rbx_monitor"))
        .cloned();

    let check = run(&["check", "--config.file", shipped.to_str().unwrap()], &[("DATABASE_URL", &url)]);
    let (code, out, err) = (check.code, check.stdout, check.stderr);
    record(
        "security_01_shipped_catalogue_with_pg_monitor_only",
        "shipped queries.yaml on the Ignition demo schema + seed-small, role with pg_monitor only (no superuser, no grants)",
        "every query that is not skipped succeeds with 0 errors of any kind; `check` passes; no password in /metrics \
         (pg_stat_statements query labels), the landing page, the log or check output",
        &format!(
            "{} queries, {served} served, skipped: {skipped:?}, failing: {failing:?}; check exit {code}; \
             the role's CREATE ROLE ... PASSWORD statement as a pg_stat_statements label: {}",
            queries.len(),
            create_role_label.as_deref().unwrap_or("not among the 10 slowest this run")
        ),
    );
    assert!(queries.len() >= 10, "{queries:?}");
    assert!(failing.is_empty(), "queries failing as a pg_monitor-only role: {failing:?}\n{}", exporter.logs());
    assert_eq!(code, 0, "check failed:\n{out}\n{err}");
    scan_exporter(&exporter, &[("check stdout", &out), ("check stderr", &err)]);
}

#[test]
fn security_02_read_only_and_side_effect_denylist() {
    // Run as the superuser on purpose: read-only must hold even for a role that could write.
    let (_one, db, exporter) = setup("sideeffects", "side_effects", &[]);
    let mut c = db.client();
    // Writes a query states plainly are refused when the catalogue loads (config::bad-write.yaml);
    // inside functions the load-time checks cannot see them, and the read-only transaction must stop them.
    c.batch_execute(
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3);
         CREATE FUNCTION sneaky_delete() RETURNS SETOF int LANGUAGE sql AS 'DELETE FROM t RETURNING id';
         CREATE FUNCTION sneaky_update() RETURNS bigint LANGUAGE sql AS
           'WITH u AS (UPDATE t SET id = id + 100 RETURNING id) SELECT count(*) FROM u'",
    )
    .unwrap();
    let m = exporter.metrics();
    // The log lines travel through a pipe to the test's reader thread: wait for both.
    eventually(Duration::from_secs(5), || exporter.logs().matches("25006").count() >= 2);
    let logs = exporter.logs();
    let rows: i64 = c.query_one("SELECT count(*) FROM t WHERE id < 100", &[]).unwrap().get(0);

    // The fixture tests/config/bad-side-effect.yaml calls pg_terminate_backend without allow_functions.
    let fixture = root().join("tests/config/bad-side-effect.yaml");
    let refused = run(&["--config.file", fixture.to_str().unwrap()], &[]);
    let (code, refusal) = (refused.code, refused.output());
    record(
        "security_02_read_only_and_side_effect_denylist",
        "catalogue queries that write through functions (DELETE, UPDATE) as a superuser; pg_terminate_backend without and with allow_functions",
        "writes fail with SQLSTATE 25006 (read-only transaction) and change nothing; tests/config/bad-side-effect.yaml is refused \
         at load time; with allow_functions: [pg_terminate_backend] the query loads and runs",
        &format!(
            "sneaky_delete sql errors {}, sneaky_update sql errors {}, 25006 in log: {}, rows left {rows}/3; \
             bad-side-effect.yaml exit {code}; allowed_terminate success {}",
            error_count(&m, "sneaky_delete", "sql"),
            error_count(&m, "sneaky_update", "sql"),
            logs.contains("25006"),
            success(&m, "allowed_terminate")
        ),
    );
    assert_eq!(error_count(&m, "sneaky_delete", "sql"), 1.0);
    assert_eq!(error_count(&m, "sneaky_update", "sql"), 1.0);
    assert_eq!(logs.matches("25006").count(), 2, "{logs}");
    assert_eq!(rows, 3);
    assert_ne!(code, 0);
    assert!(refusal.contains("calls pg_terminate_backend(), which has side effects"), "{refusal}");
    assert_eq!(success(&m, "allowed_terminate"), 1.0, "{logs}");
    scan_exporter(&exporter, &[("bad-side-effect refusal", &refusal)]);
}

/// Requests per series in the basic-auth timing.
const AUTH_REQUESTS: usize = 50;
/// bcrypt cost of the configured user's hash in the timing (the dummy hash takes the same).
const AUTH_COST: u32 = 8;

/// The median, 10th and 90th percentiles of `times`, in milliseconds.
fn percentiles_ms(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.1), at(0.9))
}

#[test]
fn security_03_basic_auth_timing_unknown_user_vs_wrong_password() {
    let (_one, db) = serial_db("authtiming", &[]);
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("right-password", AUTH_COST).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let exporter = start("quick", &db.url, &["--web.config.file", web.to_str().unwrap()]);
    let client = Client::new(Duration::from_secs(60));
    let url = exporter.url("/metrics");
    let (unknown, known) = (basic_auth("mallory", "right-password"), basic_auth("prometheus", "wrong-password"));
    let (mut unknown_times, mut known_times, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so that both series see the same machine.
    for _ in 0..AUTH_REQUESTS {
        for (header, times) in [(&unknown, &mut unknown_times), (&known, &mut known_times)] {
            let (reply, took) = client.get(&url, &[("Authorization", header)]);
            statuses.push(match reply {
                Reply::Answer(status, _) => status,
                _ => 0,
            });
            times.push(took);
        }
    }
    let (_, m, _, _) = {
        let good = basic_auth("prometheus", "right-password");
        let (status, body, took) = get_within(&url, &[("Authorization", &good)], Duration::from_secs(60));
        (status, Metrics::parse(&body), body, took)
    };
    let checks =
        |hash: &str| m.value_or_nan("runbook_exporter_http_auth_bcrypt_verifications_total", &[("hash", hash)]);
    let (u, u10, u90) = percentiles_ms(&mut unknown_times);
    let (k, k10, k90) = percentiles_ms(&mut known_times);
    record(
        "security_03_basic_auth_timing_unknown_user_vs_wrong_password",
        &format!(
            "basic auth (bcrypt cost {AUTH_COST}): {AUTH_REQUESTS} requests with an unknown user name and {AUTH_REQUESTS} \
             with a known user and a wrong password, interleaved, one keep-alive connection"
        ),
        "every request is refused with 401; the unknown user is checked against the dummy hash \
         (bcrypt_verifications_total{hash=\"dummy\"} counts each one) and the known user against its own hash; \
         the timing is measured, not asserted",
        &format!(
            "median unknown user {u:.1} ms (p10 {u10:.1}, p90 {u90:.1}), known user with a wrong password {k:.1} ms \
             (p10 {k10:.1}, p90 {k90:.1}), ratio {:.2}; bcrypt checks: dummy {}, user {} (the last good scrape included)",
            u / k,
            checks("dummy"),
            checks("user"),
        ),
    );
    println!(
        "AUTH_TIMING|{AUTH_COST}|{AUTH_REQUESTS}|{u:.1}|{u10:.1}|{u90:.1}|{k:.1}|{k10:.1}|{k90:.1}|{}|{}",
        checks("dummy"),
        checks("user") - 1.0
    );
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(checks("dummy"), AUTH_REQUESTS as f64, "each unknown user ran the dummy hash");
    assert_eq!(
        checks("user"),
        AUTH_REQUESTS as f64 + 1.0,
        "each wrong password (and the good scrape) ran the user's hash"
    );
}

#[test]
fn security_04_least_privilege_role_cannot_terminate_backends() {
    let (_one, db) = serial_db("leastprivilege", &[]);
    let url = monitor_role(&db, "rbx_monitor", MONITOR_PASSWORD);
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE rbx_app LOGIN PASSWORD '{PASSWORD}'; GRANT CONNECT ON DATABASE {} TO rbx_app",
            db.name
        ))
        .unwrap();
    let app_url = format!("postgres://rbx_app:{PASSWORD}@127.0.0.1:{}/{}", db.port(), db.name);
    let mut victim = crate::support::cluster::connect_as(&app_url, "rbx-victim");
    // The guard is told to let pg_terminate_backend through: only the role stands between the query and the
    // application's session.
    let exporter = start("terminator", &url, &[]);
    let m = exporter.metrics();
    let refused = eventually(Duration::from_secs(5), || exporter.logs().contains("42501"));
    let logs = exporter.logs();
    let why =
        logs.lines().find(|l| l.contains("42501")).and_then(|l| l.split("error=").nth(1)).unwrap_or("").to_owned();
    let victim_alive = victim.simple_query("SELECT 1").is_ok();

    db.client().batch_execute("GRANT pg_signal_backend TO rbx_monitor").unwrap();
    let granted = exporter.metrics();
    let victim_after_grant = victim.simple_query("SELECT 1").is_ok();
    record(
        "security_04_least_privilege_role_cannot_terminate_backends",
        "a catalogue query that calls pg_terminate_backend on an application session, let through the side-effect guard \
         with allow_functions, run by a role with pg_monitor only; then with pg_signal_backend granted",
        "as pg_monitor only the query fails with SQLSTATE 42501 and the application's session survives; once the role \
         has pg_signal_backend the same query terminates it: the role, not the guard, is the security boundary",
        &format!(
            "pg_monitor only: terminator sql errors {}, success {}, error \"{why}\", application session alive {victim_alive}; \
             with pg_signal_backend: terminated {}, application session alive {victim_after_grant}",
            error_count(&m, "terminator", "sql"),
            success(&m, "terminator"),
            granted.value_or_nan("terminated_sessions", &[]),
        ),
    );
    assert!(refused, "{logs}");
    assert_eq!(error_count(&m, "terminator", "sql"), 1.0);
    assert!(victim_alive, "a pg_monitor role terminated another role's session");
    assert_eq!(granted.value_or_nan("terminated_sessions", &[]), 1.0, "{}", exporter.logs());
    assert!(!victim_after_grant, "the application session survived pg_signal_backend");
    scan_exporter(&exporter, &[]);
}
