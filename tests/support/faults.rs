//! Helpers for the fault-injection tests (`tests/faults.rs`), kept apart from
//! the shared harness in `mod.rs`: an exporter launcher that takes extra
//! environment variables and can drop to `nobody`, HTTP with a client-side
//! bound, memory readings from `/proc`, and the `RELIABILITY|...` lines that
//! `scripts/reliability-report.sh` turns into `docs/reliability.md`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::{Metrics, exporter_bin};

/// One fault test at a time: they measure timings and memory and must not disturb each other.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Prints the line `scripts/reliability-report.sh` collects: test, fault, what is asserted, measurements.
pub fn record(test: &str, fault: &str, asserts: &str, numbers: &str) {
    let clean = |s: &str| s.replace(['|', '\n'], " ");
    println!("RELIABILITY|{}|{}|{}|{}", clean(test), clean(fault), clean(asserts), clean(numbers));
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Outcome of one HTTP request with a client-side bound.
#[derive(Debug)]
pub enum Reply {
    /// Status and body.
    Answer(u16, String),
    /// The client gave up: the server did not answer within the bound.
    Hang,
    /// Connection refused, reset, truncated body, ...
    Broken(String),
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}

/// A reusable client (keep-alive connection) whose every request is bounded by `timeout`.
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new(timeout: Duration) -> Client {
        Client { agent: agent(timeout) }
    }

    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> (Reply, Duration) {
        let start = Instant::now();
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        (reply(req.call(), 64 * 1024 * 1024), start.elapsed())
    }

    pub fn post(&self, url: &str) -> (Reply, Duration) {
        let start = Instant::now();
        // ureq's default body limit for reload answers (10 MiB).
        (reply(self.agent.post(url).send_empty(), 10 * 1024 * 1024), start.elapsed())
    }
}

/// A response read to the end (up to `limit` bytes), a hang (client timeout) or a broken connection.
fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, limit: u64) -> Reply {
    match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            match resp.body_mut().with_config().limit(limit).read_to_string() {
                Ok(body) => Reply::Answer(status, body),
                Err(ureq::Error::Timeout(_)) => Reply::Hang,
                Err(e) => Reply::Broken(e.to_string()),
            }
        }
        Err(ureq::Error::Timeout(_)) => Reply::Hang,
        Err(e) => Reply::Broken(e.to_string()),
    }
}

/// GET bounded by `timeout`; panics unless the server answers.
pub fn get_within(url: &str, headers: &[(&str, &str)], timeout: Duration) -> (u16, String, Duration) {
    match Client::new(timeout).get(url, headers) {
        (Reply::Answer(status, body), took) => (status, body, took),
        (other, took) => panic!("GET {url}: no answer after {took:?}: {other:?}"),
    }
}

/// A scrape as Prometheus sends it with a 3 s scrape timeout; returns status, parsed metrics, time taken.
pub fn prom_scrape(base: &str, timeout_header: &str) -> (u16, Metrics, String, Duration) {
    let (status, body, took) = get_within(
        &format!("{base}/metrics"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", timeout_header)],
        Duration::from_secs(30),
    );
    let metrics = if status == 200 { Metrics::parse(&body) } else { Metrics::default() };
    (status, metrics, body, took)
}

/// An exporter started by this module: like `support::Exporter`, plus environment variables and an optional drop to `nobody`.
pub struct Spawned {
    child: Child,
    pub address: String,
    pub log: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Spawned {
    /// Starts the exporter with `catalogue`, the given environment (nothing else of the database's is inherited) and `args`.
    /// With `as_nobody` (only when we are root) it runs as uid/gid 65534, so file permissions apply to it.
    pub fn start(catalogue: &str, env: &[(&str, &str)], args: &[&str], as_nobody: bool) -> Spawned {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("queries.yaml");
        std::fs::write(&config, catalogue).unwrap();
        let mut cmd = if as_nobody {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(exporter_bin());
            c
        } else {
            Command::new(exporter_bin())
        };
        cmd.arg("--config.file").arg(&config).args(["--web.listen-address", "127.0.0.1:0", "--log.level", "debug"]);
        cmd.args(args);
        for var in ["DATABASE_URL", "DATABASE_PASSWORD_FILE", "RUST_LOG", "PGPASSWORD", "PGUSER"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("address=").nth(1).filter(|_| line.contains("listening")) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let address = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("exporter did not start listening: {}", log.lock().unwrap());
            }
        };
        Spawned { child, address, log, dir, config }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body, _) = get_within(&self.url("/metrics"), &[], Duration::from_secs(30));
        assert_eq!(status, 200, "{body}");
        Metrics::parse(&body)
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panics if any text contains any secret; returns how many texts were scanned.
pub fn assert_no_secret(secrets: &[&str], texts: &[(&str, &str)]) -> usize {
    for (what, text) in texts {
        for secret in secrets {
            if let Some(line) = text.lines().find(|l| l.contains(secret)) {
                panic!("a password ({secret:?}) leaked into {what}, in this line:\n{line}");
            }
        }
    }
    texts.len()
}

/// The landing page, `/metrics` in both formats and `/readyz` of the exporter at `base`, for secret scans.
pub fn public_pages(base: &str) -> Vec<(String, String)> {
    let client = Client::new(Duration::from_secs(30));
    let mut out = Vec::new();
    for (path, accept) in [
        ("/", "text/html"),
        ("/metrics", "text/plain"),
        ("/metrics", "application/openmetrics-text; version=1.0.0"),
        ("/readyz", "text/plain"),
    ] {
        if let (Reply::Answer(_, body), _) = client.get(&format!("{base}{path}"), &[("Accept", accept)]) {
            out.push((format!("{path} ({accept})"), body));
        }
    }
    out
}

/// PIDs of the exporter's backends (application_name = 'runbook-exporter') seen by `client`.
pub fn exporter_backends(client: &mut postgres::Client) -> Vec<i32> {
    client
        .query("SELECT pid FROM pg_stat_activity WHERE application_name = 'runbook-exporter' ORDER BY pid", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Terminates every backend of the exporter, as an operator would, and waits until they are gone.
pub fn terminate_exporter_backends(client: &mut postgres::Client) -> usize {
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

/// Sum of `runbook_exporter_query_errors_total` for `query` over every kind.
pub fn errors_of(m: &Metrics, query: &str) -> f64 {
    m.find("runbook_exporter_query_errors_total", &[("query", query)]).iter().sum()
}

/// The value of `name{labels}` or NaN when absent (for reporting, never for asserting presence).
pub fn value_or_nan(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.find(name, labels).first().copied().unwrap_or(f64::NAN)
}
