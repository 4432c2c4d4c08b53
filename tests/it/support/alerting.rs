//! The alerting chain of the end-to-end tests (`e2e`, `e2e_inputs`, `e2e_replication`): Prometheus and
//! Alertmanager started as real processes on loopback ([`start_daemon`]), the webhook receiver Alertmanager
//! notifies ([`Webhook`]), all three together scraping one exporter ([`Stack`]), and the test copy of the rules
//! with every `for:` shortened ([`shorten_for`]).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::data::template;
use super::exporter::Exporter;
use super::free_port;
use super::http::{Client, Reply};
use super::monitoring::{Rule, arr, rules_in, s};
use super::process::Guard;
use super::tools;

/// Longest wait for one alert to reach the webhook.
pub const ALERT_WAIT: Duration = Duration::from_secs(60);

/// `rules_text` (a rules file) with every `for:` set to `hold`; checked to change every rule with a `for:`.
pub fn shorten_for(rules_text: &str, hold: &str) -> String {
    let mut out = String::new();
    let mut replaced = 0;
    for line in rules_text.split_inclusive('\n') {
        let value = line.trim().strip_prefix("for: ");
        if let Some(v) = value
            && v.len() >= 2
            && v.chars().all(|c| c.is_ascii_alphanumeric())
        {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}for: {hold}\n"));
            replaced += 1;
        } else {
            out.push_str(line);
        }
    }
    let with_for = rules_in("rules", rules_text).iter().filter(|r| r.hold.is_some()).count();
    assert_eq!(replaced, with_for, "for: lines replaced");
    out
}

// ---------------------------------------------------------------- processes

/// Prometheus or Alertmanager, stopped (SIGTERM) on drop; its output goes to `log`.
pub struct Daemon {
    pub name: String,
    pub process: Guard,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// GET bounded by 10 s; None on a network error.
pub fn try_get(url: &str) -> Option<(u16, String)> {
    match Client::new(Duration::from_secs(10)).get(url, &[]) {
        (Reply::Answer(status, body), _) => Some((status, body)),
        _ => None,
    }
}

/// Starts `bin` (Prometheus or Alertmanager) in `dir` with `config` written to `dir/NAME.yml`, its storage in
/// `dir/NAME-data` (`storage_flag`), `extra` flags, on a free loopback port, and waits (up to 30 s) until
/// `GET /-/ready` answers 200. Tries another port if the process dies first (the free port was taken meanwhile).
pub fn start_daemon(
    name: &str,
    bin: &Path,
    dir: &Path,
    config: &str,
    storage_flag: &str,
    extra: &[&str],
) -> (Daemon, u16) {
    let config_file = dir.join(format!("{name}.yml"));
    std::fs::write(&config_file, config).unwrap();
    let storage = dir.join(format!("{name}-data"));
    let mut last_log = String::new();
    for attempt in 0..3 {
        let port = free_port();
        let log = dir.join(format!("{name}-{attempt}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!("{storage_flag}={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra);
        cmd.current_dir(dir).stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
        let mut daemon = Daemon { name: name.to_owned(), process: Guard::spawn(name, &mut cmd, "TERM"), log };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if daemon.process.exited() {
                break;
            }
            if try_get(&format!("http://127.0.0.1:{port}/-/ready")).is_some_and(|(status, _)| status == 200) {
                return (daemon, port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last_log = daemon.log_tail(30);
        daemon.process.stop();
        if !last_log.contains("address already in use") {
            break;
        }
    }
    panic!("{name} did not become ready:\n{last_log}");
}

// ---------------------------------------------------------------- webhook

/// An Alertmanager webhook receiver on loopback: records every alert of every POST.
pub struct Webhook {
    pub url: String,
    pub alerts: Arc<Mutex<Vec<Value>>>,
    pub problems: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (alerts, problems, stop) = (alerts.clone(), problems.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => match handle_webhook(stream) {
                            Ok(payload) => {
                                alerts.lock().unwrap().extend(arr(&payload["alerts"]).iter().cloned());
                            }
                            Err(e) => problems.lock().unwrap().push(e),
                        },
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => problems.lock().unwrap().push(format!("accept: {e}")),
                    }
                }
            })
        };
        Webhook { url, alerts, problems, stop, thread: Some(thread) }
    }

    /// The first firing alert named `name`, waiting up to [`ALERT_WAIT`].
    pub fn wait_firing(&self, name: &str) -> Option<Value> {
        self.wait_for(|a| s(&a["labels"]["alertname"]) == name && s(&a["status"]) == "firing")
    }

    /// The first alert received that satisfies `wanted`, waiting up to [`ALERT_WAIT`].
    pub fn wait_for(&self, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        self.wait_for_since(0, wanted)
    }

    /// How many alerts have been received so far: a mark for [`Webhook::wait_for_since`].
    pub fn mark(&self) -> usize {
        self.alerts.lock().unwrap().len()
    }

    /// The first alert received after the first `mark` alerts that satisfies `wanted`, waiting up to
    /// [`ALERT_WAIT`].
    pub fn wait_for_since(&self, mark: usize, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let start = Instant::now();
        loop {
            let found = self.alerts.lock().unwrap().iter().skip(mark).find(|a| wanted(a)).cloned();
            if found.is_some() || start.elapsed() > ALERT_WAIT {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether an alert named `name` has been received at all (firing or resolved).
    pub fn received(&self, name: &str) -> bool {
        self.alerts.lock().unwrap().iter().any(|a| s(&a["labels"]["alertname"]) == name)
    }

    /// `alertname/severity (status)` of everything received, in order.
    pub fn summary(&self) -> Vec<String> {
        self.alerts
            .lock()
            .unwrap()
            .iter()
            .map(|a| format!("{}/{} ({})", s(&a["labels"]["alertname"]), s(&a["labels"]["severity"]), s(&a["status"])))
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP POST with a Content-Length body, answers 200, returns the body as JSON.
fn handle_webhook(mut stream: TcpStream) -> Result<Value, String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).map_err(|e| format!("reading request head: {e}"))?;
        if n == 0 || buf.len() > 1 << 20 {
            return Err(format!("incomplete request head: {:?}", String::from_utf8_lossy(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    if !head.starts_with("POST ") {
        return Err(format!("not a POST: {head:?}"));
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| format!("no Content-Length: {head:?}"))?;
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).map_err(|e| format!("reading body: {e}"))?;
        if n == 0 {
            return Err("body cut short".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    serde_json::from_slice(&buf[header_end..header_end + length]).map_err(|e| format!("body is not JSON: {e}"))
}

/// The e2e Prometheus configuration (`tests/data/e2e/prometheus.yml`): the records and rules files, Alertmanager
/// on `alertmanager`, scraping `exporter` as job `job` with the target labels `labels` (a YAML flow map).
fn prometheus_config(
    records: &Path,
    rules: &Path,
    alertmanager: u16,
    job: &str,
    labels: &str,
    exporter: &str,
) -> String {
    template(
        "e2e/prometheus.yml",
        &[
            ("RECORDS", &records.display().to_string()),
            ("RULES", &rules.display().to_string()),
            ("ALERTMANAGER", &format!("127.0.0.1:{alertmanager}")),
            ("JOB", job),
            ("LABELS", labels),
            ("EXPORTER", exporter),
        ],
    )
}

// ---------------------------------------------------------------- the chain

/// The exporter under test, Alertmanager notifying a [`Webhook`] of the test about every alert after a second,
/// and Prometheus scraping the exporter every second, evaluating a records and a rules file and sending its
/// alerts to that Alertmanager. Fields drop in order: Prometheus, Alertmanager, the webhook, the exporter.
pub struct Stack {
    pub prometheus: Daemon,
    pub alertmanager: Daemon,
    pub webhook: Webhook,
    pub exporter: Exporter,
    /// `http://127.0.0.1:PORT` of Prometheus.
    pub url: String,
    /// The scrape job, the one the rules select.
    pub job: String,
}

impl Stack {
    /// Starts the chain in `dir` (configurations, storage, logs) for `exporter`, scraped as job `job` with the
    /// target labels `labels` (a YAML flow map). `prometheus` and `alertmanager` come from `PATH` or
    /// `PROMETHEUS` / `ALERTMANAGER`; a missing one fails the test with the install command.
    pub fn start(dir: &Path, records: &Path, rules: &Path, job: &str, labels: &str, exporter: Exporter) -> Stack {
        let prometheus_bin = tools::find(&["prometheus"], "PROMETHEUS");
        let alertmanager_bin = tools::find(&["alertmanager", "prometheus-alertmanager"], "ALERTMANAGER");
        let webhook = Webhook::start();
        let am_config = template("e2e/alertmanager.yml", &[("WEBHOOK", &webhook.url)]);
        let am_flags = ["--cluster.listen-address=", "--log.level=debug"];
        let (alertmanager, am_port) =
            start_daemon("alertmanager", &alertmanager_bin, dir, &am_config, "--storage.path", &am_flags);
        let prom_config = prometheus_config(records, rules, am_port, job, labels, &exporter.address);
        let (prometheus, prom_port) =
            start_daemon("prometheus", &prometheus_bin, dir, &prom_config, "--storage.tsdb.path", &[]);
        Stack {
            prometheus,
            alertmanager,
            webhook,
            exporter,
            url: format!("http://127.0.0.1:{prom_port}"),
            job: job.to_owned(),
        }
    }

    /// The exporter's address: the `instance` label of everything it serves.
    pub fn instance(&self) -> &str {
        &self.exporter.address
    }

    /// `/api/v1/query` at now: Ok(data) or Err(the error Prometheus gave).
    pub fn query(&self, expr: &str) -> Result<Value, String> {
        self.api("query", &[("query", expr)])
    }

    /// `/api/v1/query_range` from `start` to `end` (Unix times) every `step` seconds: Ok(data) or Err(the error
    /// Prometheus gave).
    pub fn query_range(&self, expr: &str, start: f64, end: f64, step: u32) -> Result<Value, String> {
        let (start, end, step) = (format!("{start:.3}"), format!("{end:.3}"), step.to_string());
        self.api("query_range", &[("query", expr), ("start", &start), ("end", &end), ("step", &step)])
    }

    fn api(&self, endpoint: &str, form: &[(&str, &str)]) -> Result<Value, String> {
        let url = format!("{}/api/v1/{endpoint}", self.url);
        let body = match Client::new(Duration::from_secs(30)).post_form(&url, form) {
            Reply::Answer(_, body) => body,
            other => return Err(format!("POST {url}: {other:?}")),
        };
        let json: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if s(&json["status"]) == "success" {
            Ok(json["data"].clone())
        } else {
            Err(format!("{}: {}", s(&json["errorType"]), s(&json["error"])))
        }
    }

    /// The series (or scalar) an expression returns now; panics if Prometheus refuses it.
    pub fn series(&self, expr: &str) -> Vec<Value> {
        match self.query(expr) {
            Ok(data) => match s(&data["resultType"]) {
                "vector" | "matrix" => arr(&data["result"]).to_vec(),
                _ => vec![data["result"].clone()],
            },
            Err(e) => panic!("{expr}: {e}\n{}", self.diagnostics()),
        }
    }

    /// Waits up to `timeout` for `expr` to return data.
    pub fn wait_for(&self, what: &str, expr: &str, timeout: Duration) {
        let start = Instant::now();
        while self.series(expr).is_empty() {
            assert!(
                start.elapsed() < timeout,
                "{what}: {expr} returned nothing for {timeout:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// GET `path` of Prometheus' API as JSON; panics unless 200.
    pub fn get_json(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.url);
        let (status, body) = try_get(&url).unwrap_or_else(|| panic!("GET {url} failed"));
        assert_eq!(status, 200, "GET {url}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Every loaded rule whose last evaluation failed, as `rule NAME is HEALTH: ERROR`.
    pub fn unhealthy_rules(&self) -> Vec<String> {
        let loaded = self.get_json("/api/v1/rules");
        let rules = arr(&loaded["data"]["groups"]).iter().flat_map(|g| arr(&g["rules"]).iter());
        rules
            .filter(|r| s(&r["health"]) != "ok")
            .map(|r| format!("rule {} is {:?}: {}", s(&r["name"]), s(&r["health"]), s(&r["lastError"])))
            .collect()
    }

    /// Waits for a firing alert `name` with severity `severity` and the labels `labels` to reach the webhook after
    /// its first `mark` alerts ([`Webhook::mark`]), and checks that it comes from this exporter with the
    /// `runbook_url` of its rule in `rules` and a rendered summary and description. Returns the alert.
    pub fn expect_alert(
        &self,
        mark: usize,
        name: &str,
        severity: &str,
        labels: &[(&str, &str)],
        rules: &[Rule],
    ) -> Value {
        let alert = self
            .webhook
            .wait_for_since(mark, |a| {
                s(&a["labels"]["alertname"]) == name
                    && s(&a["status"]) == "firing"
                    && s(&a["labels"]["severity"]) == severity
                    && labels.iter().all(|(k, v)| s(&a["labels"][*k]) == *v)
            })
            .unwrap_or_else(|| {
                panic!(
                    "{name}/{severity} {labels:?} did not reach the webhook within {ALERT_WAIT:?}\n{}",
                    self.diagnostics()
                )
            });
        assert_eq!(s(&alert["labels"]["instance"]), self.instance(), "{name}: {alert}");
        let rule = rules.iter().find(|r| r.id() == format!("alert {name}/{severity}")).unwrap();
        let url = s(&alert["annotations"]["runbook_url"]);
        assert_eq!(url, rule.annotations["runbook_url"], "{name}: runbook_url differs from the rules file");
        for key in ["summary", "description"] {
            let text = s(&alert["annotations"][key]);
            assert!(!text.trim().is_empty(), "{name}: no {key}: {alert}");
            assert!(!text.contains("<no value>") && !text.contains("{{"), "{name}: {key} not rendered: {text:?}");
        }
        alert
    }

    /// What helps to understand a failure: the alerts received, Prometheus' targets and alerts, the last lines of
    /// the logs of Prometheus, Alertmanager and the exporter.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "--- webhook received: {:?}", self.webhook.summary());
        let _ = writeln!(out, "--- webhook problems: {:?}", self.webhook.problems.lock().unwrap());
        let alerts = try_get(&format!("{}/api/v1/alerts", self.url)).map(|r| r.1).unwrap_or_default();
        let _ = writeln!(out, "--- prometheus /api/v1/alerts: {alerts}");
        let targets = try_get(&format!("{}/api/v1/targets", self.url)).map(|r| r.1).unwrap_or_default();
        let _ = writeln!(out, "--- prometheus /api/v1/targets: {targets}");
        for d in [&self.prometheus, &self.alertmanager] {
            let _ = writeln!(out, "--- {} (pid {}) log:\n{}", d.name, d.process.pid(), d.log_tail(40));
        }
        let logs = self.exporter.logs();
        let tail: Vec<&str> = logs.lines().rev().take(40).collect();
        let _ = writeln!(out, "--- exporter log (last 40 lines):");
        for l in tail.iter().rev() {
            let _ = writeln!(out, "{l}");
        }
        out
    }
}
