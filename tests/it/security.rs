//! Hardening of what faces the network and the database (issues 16 and 17): basic auth that does not tell
//! which user names exist and never makes a good scrape wait behind bcrypt, idle keep-alive connections that
//! cannot lock Prometheus out, the side-effect guard, and a role that cannot see other sessions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::data::catalogue;
use crate::support::exporter::run;
use crate::support::http::{self, Client, basic_auth};
use crate::support::{Db, Exporter, Metrics, PASSWORD, eventually};

/// bcrypt checks the exporter ran against a configured user's hash (`user`) or the dummy hash (`dummy`).
fn bcrypt_checks(m: &Metrics, hash: &str) -> f64 {
    m.get("runbook_exporter_http_auth_bcrypt_verifications_total", &[("hash", hash)])
}

/// A web config in a temporary directory with these users (name, password, bcrypt cost).
fn web_config(users: &[(&str, &str, u32)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    let mut text = String::from("basic_auth_users:\n");
    for (user, password, cost) in users {
        text.push_str(&format!("  {user}: '{}'\n", bcrypt::hash(password, *cost).unwrap()));
    }
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

/// GET `/metrics` with basic auth; panics unless the server answers.
fn scrape_as(exporter: &Exporter, user: &str, password: &str) -> (u16, String) {
    http::get(&exporter.url("/metrics"), &[("Authorization", &basic_auth(user, password))])
}

#[test]
fn an_unknown_user_is_checked_against_the_dummy_hash() {
    let db = Db::new("dummyhash");
    let (_dir, web) = web_config(&[("alice", "right", 4)]);
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).args(&["--web.config.file", &web]).start();
    assert_eq!(scrape_as(&exporter, "mallory", "right").0, 401, "an unknown user");
    let wrong = http::fetch(&exporter.url("/metrics"), &[("Authorization", &basic_auth("alice", "wrong"))]);
    assert_eq!(wrong.status, 401, "a known user with a wrong password");
    assert_eq!(wrong.header("www-authenticate"), Some("Basic realm=\"runbook-exporter\""));
    assert_eq!(http::get(&exporter.url("/metrics"), &[]).0, 401, "no credentials: no bcrypt at all");
    let (status, body) = scrape_as(&exporter, "alice", "right");
    assert_eq!(status, 200);
    let m = Metrics::parse(&body);
    assert_eq!((bcrypt_checks(&m, "dummy"), bcrypt_checks(&m, "user")), (1.0, 2.0), "the unknown user ran the dummy");

    assert_eq!(scrape_as(&exporter, "", "").0, 401, "an empty user name is an unknown user");
    let (_, body) = scrape_as(&exporter, "alice", "right");
    let m = Metrics::parse(&body);
    assert_eq!(bcrypt_checks(&m, "dummy"), 2.0);
    assert_eq!(bcrypt_checks(&m, "user"), 2.0, "good credentials are cached: no bcrypt the second time");
}

#[test]
fn cached_good_credentials_answer_while_a_bcrypt_check_runs() {
    // `slow` has a costly hash, so checking a wrong password for it keeps the bcrypt lock for a while;
    // `prom` scrapes with credentials that were checked once and are cached since.
    let db = Db::new("authcache");
    let (_dir, web) = web_config(&[("prom", "good", 4), ("slow", "secret", 12)]);
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).args(&["--web.config.file", &web]).start();
    assert_eq!(scrape_as(&exporter, "prom", "good").0, 200);

    let (events, seen) = mpsc::channel();
    let wrong = {
        let (url, events) = (exporter.url("/metrics"), events.clone());
        std::thread::spawn(move || {
            let (status, _) = http::get(&url, &[("Authorization", &basic_auth("slow", "wrong"))]);
            events.send(format!("wrong password answered {status}")).unwrap();
        })
    };
    // The counter moves when the wrong password's bcrypt has taken the lock; a cached scrape that sees it
    // moved was answered while that check held the lock.
    let answered_during_bcrypt = eventually(Duration::from_secs(60), || {
        let (status, body) = scrape_as(&exporter, "prom", "good");
        let started = status == 200 && bcrypt_checks(&Metrics::parse(&body), "user") == 2.0;
        if started {
            events.send("cached scrape answered during the bcrypt check".to_owned()).unwrap();
        }
        started
    });
    assert!(answered_during_bcrypt, "the wrong password's bcrypt check never started: {}", exporter.logs());
    wrong.join().unwrap();
    let order: Vec<String> = seen.try_iter().collect();
    assert_eq!(
        order,
        ["cached scrape answered during the bcrypt check", "wrong password answered 401"],
        "a scrape with cached credentials must not wait behind another request's bcrypt"
    );
    let (_, body) = scrape_as(&exporter, "prom", "good");
    assert_eq!(bcrypt_checks(&Metrics::parse(&body), "user"), 2.0, "the failed attempt was not cached");
}

/// Connections the exporter keeps open at most (`MAX_HTTP_CONNECTIONS`).
const CONNECTION_CAP: usize = 512;

/// A keep-alive connection that has had one request answered and is now idle.
fn idle_keep_alive(address: &str) -> TcpStream {
    let mut conn = TcpStream::connect(address).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert!(request(&mut conn), "no answer on a fresh connection");
    conn
}

/// Sends `GET /healthz` on `conn` and reads the answer; false if the connection was closed.
fn request(conn: &mut TcpStream) -> bool {
    if conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: exporter\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"\r\n\r\nok\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    answer.starts_with(b"HTTP/1.1 200")
}

/// Whether the server closed `conn` (end of stream, or a reset) before the read timeout; what the read gave
/// otherwise.
fn closed_by_server(conn: &mut TcpStream) -> Result<(), String> {
    match conn.read(&mut [0u8; 64]) {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Ok(n) => Err(format!("{n} unexpected bytes")),
        Err(e) => Err(format!("read: {e} ({:?})", e.kind())),
    }
}

#[test]
fn idle_keep_alive_connections_at_the_cap_do_not_lock_out_a_scrape() {
    let db = Db::new("conncap");
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).start();
    let mut idle: Vec<TcpStream> = (0..CONNECTION_CAP).map(|_| idle_keep_alive(&exporter.address)).collect();

    // A new connection at the cap: the longest idle one makes room for it.
    let answer = Client::new(Duration::from_secs(30)).fetch(&exporter.url("/metrics"), &[]);
    let answer = answer.unwrap_or_else(|no| panic!("no scrape at the connection cap: {no:?}"));
    assert_eq!(answer.status, 200);
    let m = Metrics::parse(&answer.body);
    assert_eq!(m.get("quick_value", &[]), 42.0);
    assert!(m.get("runbook_exporter_http_connections_evicted_total", &[]) >= 1.0);
    assert_eq!(m.get("runbook_exporter_http_connections_refused_total", &[]), 0.0);
    let closed = closed_by_server(&mut idle[0]);
    assert!(closed.is_ok(), "the connection idle the longest was not closed: {closed:?}");
    assert!(request(idle.last_mut().unwrap()), "the connection idle the shortest was closed");
}

#[test]
fn idle_and_silent_connections_are_closed() {
    let db = Db::new("idleclose");
    let exporter = Exporter::with(&catalogue("quick")).db(&db.url).start();
    let mut keep_alive = idle_keep_alive(&exporter.address);
    let mut silent = TcpStream::connect(&exporter.address).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (keep_alive, silent) = (closed_by_server(&mut keep_alive), closed_by_server(&mut silent));
    assert!(keep_alive.is_ok(), "an idle keep-alive connection stayed open: {keep_alive:?}");
    assert!(silent.is_ok(), "a connection that never sent a byte stayed open: {silent:?}");
    let m = exporter.metrics();
    // The silent connection is always counted. The keep-alive one normally is too (the exporter's idle timer, 5 s,
    // ends before hyper's header-read timeout, 10 s), but which of the two closed it is not what this test is about.
    assert!(m.get("runbook_exporter_http_connections_idle_closed_total", &[]) >= 1.0);
    assert_eq!(m.get("runbook_exporter_http_connections_evicted_total", &[]), 0.0);
}

#[test]
fn names_of_side_effect_functions_in_strings_and_comments_load() {
    // The refused spellings are tests/config/bad-side-effect-spellings.yaml (config_errors::).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mentions.yaml");
    std::fs::write(
        &file,
        r#"queries:
  mentions:
    help: Names a side-effect function only in a literal, a dollar-quoted string and comments.
    sql: |
      SELECT count(*) AS n /* pg_terminate_backend(pid) */
      FROM pg_stat_activity -- then pg_cancel_backend(pid)
      WHERE query NOT LIKE '%pg_terminate_backend(%' AND query <> $$pg_reload_conf()$$
    metrics: [{name: mentions, type: gauge, value: n}]
"#,
    )
    .unwrap();
    let checked = run(&["check", "--offline", "--config.file", file.to_str().unwrap()], &[]);
    assert_eq!(checked.code, 0, "{}", checked.output());
}

#[test]
fn a_role_without_pg_monitor_is_reported_and_check_says_what_to_grant() {
    let db = Db::new("nomonitor");
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"Rbx_Plain\" LOGIN PASSWORD '{PASSWORD}'; GRANT CONNECT ON DATABASE {} TO \"Rbx_Plain\"",
            db.name
        ))
        .unwrap();
    let url = db.url_as("Rbx_Plain");
    let exporter = Exporter::with(&catalogue("quick")).db(&url).start();
    let m = exporter.metrics();
    assert_eq!(m.get("pg_up", &[]), 1.0, "{}", exporter.logs());
    assert_eq!(m.get("runbook_exporter_role_sees_all_sessions", &[]), 0.0);

    let config = exporter.config.to_str().unwrap();
    let checked = run(&["check", "--config.file", config], &[("DATABASE_URL", &url)]);
    assert_eq!(checked.code, 0, "a warning does not fail the check: {}", checked.output());
    assert!(checked.stdout.contains("run: GRANT pg_monitor TO \"Rbx_Plain\";"), "{}", checked.output());

    admin.batch_execute("GRANT pg_monitor TO \"Rbx_Plain\"").unwrap();
    let sees = eventually(Duration::from_secs(10), || {
        exporter.metrics().find("runbook_exporter_role_sees_all_sessions", &[]) == vec![1.0]
    });
    assert!(sees, "the grant was not noticed without a restart");
    let checked = run(&["check", "--config.file", config], &[("DATABASE_URL", &url)]);
    assert!(!checked.stdout.contains("GRANT"), "{}", checked.output());
}
