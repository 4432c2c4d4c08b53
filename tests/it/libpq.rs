//! libpq's conventions (issue 17): what the connection string leaves out comes from `PGHOST`, `PGPORT`,
//! `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGAPPNAME`, `PGCONNECT_TIMEOUT` and the
//! password file (`PGPASSFILE`, `~/.pgpass`, used only when private), with libpq's precedence.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::cluster::tls_server;
use crate::support::exporter::{Builder, run};
use crate::support::http::get;
use crate::support::{Db, Exporter, PASSWORD, eventually};

/// One series saying where the exporter is connected and as whom.
const WHOAMI: &str = r#"queries:
  whoami:
    help: Where and as whom the exporter is connected.
    sql: |
      SELECT current_database()::text AS db, current_user::text AS usr, current_setting('application_name') AS app,
             coalesce(inet_server_port()::text, 'socket') AS port,
             (SELECT ssl::int::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl, 1 AS v
    metrics: [{name: whoami, type: gauge, value: v, labels: [db, usr, app, port, ssl]}]
"#;

/// The role these tests log in as, and its password.
const ROLE: &str = "rbx_libpq";
const ROLE_PASSWORD: &str = "Libpq-Role-pw1";

fn with_role(test: &str) -> Db {
    let db = Db::new(test);
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'; GRANT CONNECT ON DATABASE {} TO {ROLE}",
            db.name
        ))
        .unwrap();
    db
}

/// The labels of the exporter's `whoami` series, once it is up; panics with the log if it does not come up.
fn whoami(exporter: &Exporter) -> BTreeMap<String, String> {
    let up = eventually(Duration::from_secs(10), || exporter.metrics().find("pg_up", &[]) == vec![1.0]);
    assert!(up, "not connected: {}", exporter.logs());
    let m = exporter.metrics();
    let series = m.samples.into_iter().find(|(name, _, _)| name == "whoami");
    series.unwrap_or_else(|| panic!("no whoami series: {}", exporter.logs())).1
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `pg_up` of the exporter's first scrape.
fn pg_up(exporter: &Exporter) -> f64 {
    exporter.metrics().get("pg_up", &[])
}

/// A password file in a directory of its own with `lines`, with permissions `mode`.
fn passfile(name: &str, lines: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, lines).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn pg_variables_fill_what_the_connection_string_leaves_out() {
    let db = with_role("libpqenv");
    let port = db.port().to_string();
    let exporter = Exporter::with(WHOAMI)
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", &port)
        .env("PGDATABASE", &db.name)
        .env("PGUSER", ROLE)
        .env("PGPASSWORD", ROLE_PASSWORD)
        .env("PGAPPNAME", "rbx-from-pgappname")
        .env("PGSSLMODE", "disable")
        .start();
    let expected =
        [("db", db.name.as_str()), ("usr", ROLE), ("app", "rbx-from-pgappname"), ("port", &port), ("ssl", "0")];
    assert_eq!(whoami(&exporter), labels(&expected));
    let (_, landing) = get(&exporter.url("/"), &[]);
    assert!(landing.contains(&format!("postgres://{ROLE}:****@127.0.0.1:{port}/{}", db.name)), "{landing}");
    assert!(!landing.contains(ROLE_PASSWORD) && !exporter.logs().contains(ROLE_PASSWORD));

    // PGHOST may name the socket directory; the socket trusts the superuser, who needs no password.
    let socket = path_str(&db.cluster.as_ref().unwrap().socket_dir).to_owned();
    let exporter =
        Exporter::with(WHOAMI).env("PGHOST", &socket).env("PGPORT", &port).env("PGDATABASE", &db.name).start();
    let expected = [("db", db.name.as_str()), ("usr", "postgres"), ("app", "runbook-exporter"), ("port", "socket")];
    let mut seen = whoami(&exporter);
    seen.remove("ssl");
    assert_eq!(seen, labels(&expected));
}

#[test]
fn pgsslmode_and_pgsslrootcert_apply_unless_the_url_says_otherwise() {
    let server = tls_server("libpqssl");
    let (db, ca) = (&server.db, path_str(&server.ca));
    let url =
        |host: &str, params: &str| format!("postgres://postgres:{PASSWORD}@{host}:{}/{}{params}", db.port(), db.name);
    let verify_full = |url: String| -> Builder {
        Exporter::with(WHOAMI).db(&url).env("PGSSLMODE", "verify-full").env("PGSSLROOTCERT", ca)
    };
    let encrypted = verify_full(url("localhost", "")).start();
    assert_eq!(whoami(&encrypted).get("ssl").map(String::as_str), Some("1"), "{}", encrypted.logs());
    let wrong_name = verify_full(url("127.0.0.1", "")).start();
    assert_eq!(pg_up(&wrong_name), 0.0, "verify-full from PGSSLMODE must check the host name");
    let url_wins = verify_full(url("127.0.0.1", "?sslmode=disable")).start();
    assert_eq!(whoami(&url_wins).get("ssl").map(String::as_str), Some("0"), "the URL's sslmode comes first");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("q.yaml");
    std::fs::write(&config, WHOAMI).unwrap();
    let no_root = run(
        &["check", "--offline", "--config.file", path_str(&config)],
        &[("DATABASE_URL", &url("localhost", "")), ("PGSSLMODE", "verify-full")],
    );
    assert_eq!(no_root.code, 1, "{}", no_root.output());
    assert!(no_root.output().contains("sslmode=verify-ca and verify-full need sslrootcert"), "{}", no_root.output());
}

#[test]
fn the_password_file_is_used_only_when_its_owner_alone_may_read_it() {
    let db = with_role("libpqpass");
    let url = format!("postgres://{ROLE}@127.0.0.1:{}/{}", db.port(), db.name);
    let line = format!("# a comment\n127.0.0.1:{}:{}:{ROLE}:{ROLE_PASSWORD}\n", db.port(), db.name);

    let (_private, file) = passfile("pgpass", &line, 0o600);
    let exporter = Exporter::with(WHOAMI).db(&url).env("PGPASSFILE", path_str(&file)).start();
    assert_eq!(whoami(&exporter).get("usr").map(String::as_str), Some(ROLE));

    let (_shared, file) = passfile("pgpass", &line, 0o644);
    let exporter = Exporter::with(WHOAMI).db(&url).env("PGPASSFILE", path_str(&file)).start();
    assert_eq!(pg_up(&exporter), 0.0, "a password file others may read must be ignored");
    let warned = "password file has group or world access and is ignored";
    assert!(eventually(Duration::from_secs(5), || exporter.logs().contains(warned)), "{}", exporter.logs());
    let warning = exporter.logs().lines().find(|l| l.contains(warned)).unwrap_or_default().to_owned();
    assert!(warning.contains(path_str(&file)) && warning.contains("mode=\"644\""), "{warning}");

    // Without PGPASSFILE, ~/.pgpass.
    let (home, file) = passfile(".pgpass", &line, 0o600);
    let exporter = Exporter::with(WHOAMI).db(&url).env("HOME", path_str(home.path())).start();
    assert_eq!(whoami(&exporter).get("usr").map(String::as_str), Some(ROLE), "{file:?} was not read");
}

#[test]
fn the_connection_string_comes_first_then_the_environment_then_the_password_file() {
    let db = with_role("libpqorder");
    let port = db.port().to_string();
    let full = format!("postgres://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:{port}/{}", db.name);
    let exporter = Exporter::with(WHOAMI)
        .db(&full)
        .env("PGHOST", "/nonexistent")
        .env("PGPORT", "1")
        .env("PGDATABASE", "postgres")
        .env("PGUSER", "postgres")
        .env("PGPASSWORD", "wrong")
        .env("PGAPPNAME", "rbx-from-env")
        .start();
    let expected = [("db", db.name.as_str()), ("usr", ROLE), ("app", "rbx-from-env"), ("port", &port), ("ssl", "0")];
    assert_eq!(whoami(&exporter), labels(&expected), "the URL's parts win; the environment fills the rest");

    // The password: the string, then DATABASE_PASSWORD_FILE, then PGPASSWORD, then the password file.
    let no_password = format!("postgres://{ROLE}@127.0.0.1:{port}/{}", db.name);
    let secrets = tempfile::tempdir().unwrap();
    let [right, wrong] = [ROLE_PASSWORD, "wrong"].map(|pw| {
        let f = secrets.path().join(pw);
        std::fs::write(&f, format!("{pw}\n")).unwrap();
        f
    });
    let pass_line = |pw: &str| format!("*:*:*:{ROLE}:{pw}\n");
    let (_a, right_passfile) = passfile("right", &pass_line(ROLE_PASSWORD), 0o600);
    let (_b, wrong_passfile) = passfile("wrong", &pass_line("wrong"), 0o600);
    // What the case shows, the environment, and pg_up.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
    let cases: [Case; 4] = [
        (
            "the string's beats the others",
            &[("PGPASSWORD", "wrong"), ("DATABASE_PASSWORD_FILE", path_str(&wrong))],
            1.0,
        ),
        (
            "DATABASE_PASSWORD_FILE beats PGPASSWORD",
            &[("DATABASE_PASSWORD_FILE", path_str(&right)), ("PGPASSWORD", "wrong")],
            1.0,
        ),
        (
            "PGPASSWORD beats the password file",
            &[("PGPASSWORD", ROLE_PASSWORD), ("PGPASSFILE", path_str(&wrong_passfile))],
            1.0,
        ),
        (
            "PGPASSWORD, even wrong, beats the password file",
            &[("PGPASSWORD", "wrong"), ("PGPASSFILE", path_str(&right_passfile))],
            0.0,
        ),
    ];
    for (i, (case, env, up)) in cases.into_iter().enumerate() {
        let url = if i == 0 { &full } else { &no_password };
        let builder = env.iter().fold(Exporter::with(WHOAMI).db(url), |b, (k, v)| b.env(k, v));
        assert_eq!(pg_up(&builder.start()), up, "{case}");
    }
}

/// A loopback listener whose accept queue is full: the kernel drops new SYNs, so a connect gets no answer.
fn unanswered_port() -> (TcpListener, Vec<TcpStream>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(conn) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
        queued.push(conn);
        assert!(queued.len() < 5000, "the accept queue never filled");
    }
    (listener, queued, address)
}

#[test]
fn pgconnect_timeout_bounds_a_connect_that_gets_no_answer() {
    let (_listener, _queued, address) = unanswered_port();
    let url = format!("postgres://postgres:{PASSWORD}@{address}/postgres");
    // The exporter's own connect timeout is long, so only PGCONNECT_TIMEOUT can end the attempt before /readyz
    // gives up on its own.
    let exporter = Exporter::with(WHOAMI)
        .db(&url)
        .env("PGCONNECT_TIMEOUT", "2")
        .args(&["--database.connect-timeout", "60s"])
        .start();
    let (status, body) = get(&exporter.url("/readyz"), &[]);
    assert_eq!(status, 503, "{body}");
    // The limit PGCONNECT_TIMEOUT set is the one named, as a timeout.
    assert!(body.contains("(timeout: connecting took longer than the 2s connect timeout"), "{body}");
    assert!(!body.contains("no answer by the scrape's deadline"), "{body}");
}
