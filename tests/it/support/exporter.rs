//! The exporter binary: started as a child process on a free loopback port through one builder, or run to
//! completion (`check`, `once`, start-up errors). Its environment is cleared (but for `PATH`), so nothing of the
//! caller's (`DATABASE_URL`, `PGPASSWORD`, `RUST_LOG`, ...) reaches it unless a test sets it.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::exposition::Metrics;
use super::http;
use super::process::Guard;

fn exporter_bin() -> &'static str {
    env!("CARGO_BIN_EXE_runbook-exporter")
}

/// How long a plain scrape of a test's exporter may take before the test gives up.
const SCRAPE_BOUND: Duration = Duration::from_secs(30);

/// A running exporter; killed on drop. Everything it logs (stderr and stdout, text or JSON) is kept.
pub struct Exporter {
    pub address: String,
    /// The catalogue file it was started with; tests rewrite it before a reload.
    pub config: PathBuf,
    log: Arc<Mutex<String>>,
    process: Guard,
    _dir: tempfile::TempDir,
}

/// What to start: the catalogue, the environment, the flags and the user.
pub struct Builder {
    catalogue: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    as_nobody: bool,
}

impl Exporter {
    /// An exporter serving `catalogue` (YAML text), with `--log.level debug` and text logs.
    pub fn with(catalogue: &str) -> Builder {
        Builder { catalogue: catalogue.to_owned(), env: Vec::new(), args: Vec::new(), as_nobody: false }
    }

    /// `http://ADDRESS` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// GET `/metrics` in the classic text format; panics unless 200.
    pub fn scrape(&self) -> String {
        let (status, body, _) = http::get_within(&self.url("/metrics"), &[], SCRAPE_BOUND);
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn metrics(&self) -> Metrics {
        Metrics::parse(&self.scrape())
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// A panic anywhere in the exporter (a task's panic only ends that task and its connection, so a scrape may not
/// show it) fails the test that started it.
impl Drop for Exporter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let logs = self.logs();
        if let Some(at) = logs.find("panicked at") {
            let from = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            panic!("the exporter panicked:\n{}", &logs[from..]);
        }
    }
}

impl Builder {
    /// `DATABASE_URL`.
    pub fn db(self, url: &str) -> Builder {
        self.env("DATABASE_URL", url)
    }

    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn args(mut self, args: &[&str]) -> Builder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// `--log.format json`: one JSON object per line.
    pub fn json_logs(self) -> Builder {
        self.args(&["--log.format", "json"])
    }

    /// With `yes` (only possible as root) the exporter runs as uid/gid 65534, so file permissions apply to it.
    pub fn run_as_nobody(mut self, yes: bool) -> Builder {
        self.as_nobody = yes;
        self
    }

    /// Starts the exporter and waits (up to 20 s) until it says where it listens.
    pub fn start(self) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("queries.yaml");
        std::fs::write(&config, &self.catalogue).unwrap();
        let mut cmd = if self.as_nobody {
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
        // PATH only so that `setpriv` is found.
        cmd.args(&self.args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).envs(self.env);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut process = Guard::spawn("the exporter", &mut cmd, "KILL");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let child = process.child();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    {
                        let mut l = log.lock().unwrap();
                        l.push_str(&line);
                        l.push('\n');
                    }
                    if line.contains("listening") {
                        // Text logs say address=HOST:PORT, JSON logs "address":"HOST:PORT".
                        let text = line.split("address=").nth(1).and_then(|r| r.split_whitespace().next());
                        let json = line.split("\"address\":\"").nth(1).and_then(|r| r.split('"').next());
                        if let Some(address) = text.or(json) {
                            let _ = tx.send(address.to_owned());
                        }
                    }
                }
            });
        }
        let Ok(address) = rx.recv_timeout(Duration::from_secs(20)) else {
            process.stop();
            std::thread::sleep(Duration::from_millis(100));
            panic!("exporter did not start listening: {}", log.lock().unwrap());
        };
        Exporter { address, config, log, process, _dir: dir }
    }
}

/// What a run of the exporter to completion gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stderr followed by stdout.
    pub fn output(&self) -> String {
        format!("{}{}", self.stderr, self.stdout)
    }
}

/// How long a run to completion may take; a process still running then (serving, say) fails the test.
const RUN_BOUND: Duration = Duration::from_secs(60);

/// Runs the exporter binary to completion with `args` and only the environment `env`; panics (after killing it)
/// if it has not exited within [`RUN_BOUND`].
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(exporter_bin());
    cmd.args(args).env_clear().envs(env.iter().copied());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut process = Guard::spawn("the exporter", &mut cmd, "KILL");
    let child = process.child();
    let read_all = |mut stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stream.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let status = process.wait_within(RUN_BOUND);
    process.stop();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!("`runbook-exporter {}` was still running after {RUN_BOUND:?}:\n{stderr}{stdout}", args.join(" "));
    };
    Run { code: status.code().unwrap_or(-1), stdout, stderr }
}

/// `n` scrapes of `/metrics` released at the same moment (a barrier), in their order.
pub fn scrape_together(exporter: &Arc<Exporter>, n: usize) -> Vec<Metrics> {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let scrapers: Vec<_> = (0..n)
        .map(|_| {
            let (exporter, barrier) = (exporter.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                exporter.metrics()
            })
        })
        .collect();
    scrapers.into_iter().map(|s| s.join().unwrap()).collect()
}
