//! Test harness: a throwaway PostgreSQL cluster per test and the exporter binary
//! run as a child process, both stopped on drop (also when the test panics).
//!
//! Binaries come from `PG_BIN`, else `pg_config --bindir`, else the newest
//! `/usr/lib/postgresql/*/bin`. As root, PostgreSQL runs as the `postgres` user
//! through `setpriv`, which execs in place: the PID we hold is the postmaster.
//! `TEST_DATABASE_URL` points [`Db::new`] at an existing server instead.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Password of the `postgres` role in every test cluster; TCP connections must use it.
pub const PASSWORD: &str = "Sup3r-Secret-pw";

pub fn exporter_bin() -> &'static str {
    env!("CARGO_BIN_EXE_runbook-exporter")
}

fn is_root() -> bool {
    // SAFETY-free check: the effective uid of this process via /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

pub fn pg_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(dir) = std::env::var("PG_BIN") {
            return PathBuf::from(dir);
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.join("initdb").exists() {
                return dir;
            }
        }
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
            .collect();
        candidates.sort();
        candidates.pop().map(|(_, p)| p).expect(
            "no PostgreSQL binaries: set PG_BIN, or install them with `apt-get install -y postgresql` \
             or `scripts/pg-binaries.sh 17`",
        )
    })
    .clone()
}

/// Runs `program` as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown").arg("-R").arg("postgres:postgres").arg(path).status().unwrap().success();
        assert!(ok, "chown {path:?} failed");
    }
}

/// An initdb'd data directory made once per binary run and copied for every cluster.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let bin = pg_bin();
        let root = tempfile::Builder::new().prefix("rbx-template-").tempdir().unwrap().keep();
        chown_postgres(&root);
        let data = root.join("data");
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        chown_postgres(&root);
        let out = as_postgres(&bin.join("initdb"))
            .current_dir("/")
            .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"])
            .args(["--no-locale", "-D"])
            .arg(&data)
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        TemplateCleanup::register(root.clone());
        data
    })
}

/// Removes the template when the test binary exits normally.
struct TemplateCleanup;
impl TemplateCleanup {
    fn register(root: PathBuf) {
        static ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        ROOTS.lock().unwrap().push(root);
        extern "C" fn cleanup() {
            if let Ok(roots) = ROOTS.lock() {
                for r in roots.iter() {
                    let _ = std::fs::remove_dir_all(r);
                }
            }
        }
        unsafe extern "C" {
            fn atexit(f: extern "C" fn()) -> i32;
        }
        // SAFETY: registering a plain function with libc's atexit.
        unsafe {
            atexit(cleanup);
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running throwaway cluster.
pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    pub socket_dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    _root: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// Starts a cluster with extra `-c name=value` settings.
    pub fn start_with(settings: &[&str]) -> Cluster {
        let root = tempfile::Builder::new().prefix("rbx-pg-").tempdir().unwrap();
        let dir = root.path().join("data");
        let status = Command::new("cp").arg("-a").arg(template()).arg(&dir).status().unwrap();
        assert!(status.success());
        let socket_dir = root.path().join("sock");
        std::fs::create_dir(&socket_dir).unwrap();
        chown_postgres(root.path());
        let mut cluster = Cluster {
            port: free_port(),
            dir,
            socket_dir,
            extra: settings.iter().map(|s| s.to_string()).collect(),
            child: None,
            _root: root,
        };
        cluster.launch();
        cluster
    }

    /// Starts the postmaster (again) on the same port and waits until it accepts connections.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.with_file_name("server.log")).unwrap();
        let mut cmd = as_postgres(&pg_bin().join("postgres"));
        cmd.current_dir("/").arg("-D").arg(&self.dir).arg("-p").arg(self.port.to_string());
        cmd.arg("-k").arg(&self.socket_dir);
        for s in [
            "listen_addresses=127.0.0.1",
            "shared_preload_libraries=pg_stat_statements",
            "fsync=off",
            "full_page_writes=off",
            "synchronous_commit=off",
            "max_connections=50",
            "pg_stat_statements.track=all",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(self.extra.clone())
        {
            cmd.arg("-c").arg(s);
        }
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if self.try_connect("postgres").is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited with {status}: {}", self.server_log());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "postgres did not start: {}", self.server_log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.with_file_name("server.log")).unwrap_or_default()
    }

    /// PID of the postmaster.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    /// The postmaster and every process below it.
    pub fn processes(&self) -> Vec<u32> {
        let mut all = vec![self.pid()];
        let mut i = 0;
        while i < all.len() {
            let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", all[i])).unwrap_or_default();
            all.extend(children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            i += 1;
        }
        all
    }

    /// Hangs the whole server (postmaster and backends) with SIGSTOP.
    pub fn freeze(&self) {
        for pid in self.processes() {
            signal(pid, "STOP");
        }
    }

    /// Resumes a frozen server.
    pub fn thaw(&self) {
        for pid in self.processes() {
            signal(pid, "CONT");
        }
    }

    /// Stops the server the hard way (`immediate` shutdown) and waits for it.
    pub fn stop_immediate(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "QUIT");
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "INT");
            let _ = child.wait();
        }
    }

    fn try_connect(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect_timeout(Duration::from_secs(2))
            .connect(postgres::NoTls)
    }

    /// A superuser connection over the unix socket (trust).
    pub fn connect(&self, db: &str) -> postgres::Client {
        self.try_connect(db).unwrap()
    }

    /// The URL the exporter uses: TCP with the password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped (SIGSTOP) server must be resumed to die.
            self.thaw();
        }
        self.stop_immediate();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).stderr(Stdio::null()).status();
}

/// A database for one test: on its own cluster, or on `TEST_DATABASE_URL`'s server.
pub struct Db {
    pub name: String,
    pub url: String,
    pub cluster: Option<Cluster>,
    admin_url: Option<String>,
}

impl Db {
    /// A fresh database with `pg_stat_statements` installed.
    pub fn new(test: &str) -> Db {
        let name = format!("t_{test}");
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin) => {
                let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"))
                    .unwrap();
                let url = replace_db(&admin, &name);
                let db = Db { name, url, cluster: None, admin_url: Some(admin) };
                db.client().batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").unwrap();
                db
            }
            Err(_) => Db::on(Cluster::start(), test),
        }
    }

    /// A fresh database on `cluster` (always a cluster of our own).
    pub fn on(cluster: Cluster, test: &str) -> Db {
        let name = format!("t_{test}");
        cluster.connect("postgres").batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        cluster.connect(&name).batch_execute("CREATE EXTENSION pg_stat_statements").unwrap();
        let url = cluster.url(&name);
        Db { name, url, cluster: Some(cluster), admin_url: None }
    }

    pub fn client(&self) -> postgres::Client {
        match &self.cluster {
            Some(c) => c.connect(&self.name),
            None => postgres::Client::connect(&self.url, postgres::NoTls).unwrap(),
        }
    }

    pub fn cluster(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("this test needs its own cluster")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(admin) = &self.admin_url
            && let Ok(mut c) = postgres::Client::connect(admin, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

fn replace_db(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && !url[i..].contains('@') => {
            let query = url[i..].find('?').map(|q| &url[i + q..]).unwrap_or("");
            format!("{}/{db}{query}", &url[..i])
        }
        _ => format!("{url} dbname={db}"),
    }
}

/// A running exporter; killed on drop. Everything it logs is kept for inspection.
pub struct Exporter {
    child: Child,
    pub address: String,
    pub log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Exporter {
    /// Starts the exporter with `catalogue` (YAML text) against `url`.
    pub fn start(catalogue: &str, url: &str, args: &[&str]) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("queries.yaml");
        std::fs::write(&config, catalogue).unwrap();
        let mut cmd = Command::new(exporter_bin());
        cmd.arg("--config.file").arg(&config).args(["--web.listen-address", "127.0.0.1:0", "--log.level", "debug"]);
        cmd.args(args).env("DATABASE_URL", url).env_remove("RUST_LOG");
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
        let address = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("exporter did not start listening: {}", log.lock().unwrap());
            }
        };
        Exporter { child, address, log, _dir: dir, config }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// GET `/metrics` in the classic text format; panics unless 200.
    pub fn scrape(&self) -> String {
        let (status, body) = get(&self.url("/metrics"), &[]);
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
        self.child.id()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns every status as a response and gives up after 60 s.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// GET with headers; returns (status, body). Network errors panic.
pub fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let agent = agent();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// Runs the exporter binary to completion with `args`; returns (exit code, stderr).
pub fn run_exporter(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out =
        Command::new(exporter_bin()).args(args).envs(envs.iter().copied()).env_remove("DATABASE_URL").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Samples of one exposition, parsed from the classic text format.
#[derive(Debug, Default)]
pub struct Metrics {
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n.to_owned(), parse_labels(rest.strip_suffix('}').unwrap())),
                None => (series.to_owned(), BTreeMap::new()),
            };
            samples.push((name, labels, value));
        }
        Metrics { samples }
    }

    /// Values of `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| *v)
            .collect()
    }

    /// The single value of `name` with `labels`; panics if there is not exactly one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(found.len(), 1, "expected one {name}{labels:?}, found {found:?}");
        found[0]
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// Checks exposition text with `promtool check metrics` (the classic format); returns promtool's complaints.
pub fn promtool_check(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: apt-get install -y prometheus");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.code().is_some(), "promtool crashed");
    s
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// POST with an empty body; returns (status, body).
pub fn post(url: &str) -> (u16, String) {
    let agent = agent();
    let mut resp = agent.post(url).send_empty().unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

impl Cluster {
    /// A streaming standby of this cluster (pg_basebackup -R), running on its own port.
    pub fn standby(&self) -> Cluster {
        let root = tempfile::Builder::new().prefix("rbx-standby-").tempdir().unwrap();
        chown_postgres(root.path());
        let dir = root.path().join("data");
        let out = as_postgres(&pg_bin().join("pg_basebackup"))
            .current_dir("/")
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-R", "-X", "stream", "--checkpoint=fast", "-D"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_basebackup failed: {}", String::from_utf8_lossy(&out.stderr));
        let socket_dir = root.path().join("sock");
        std::fs::create_dir(&socket_dir).unwrap();
        chown_postgres(root.path());
        let mut standby =
            Cluster { port: free_port(), dir, socket_dir, extra: self.extra.clone(), child: None, _root: root };
        standby.launch();
        standby
    }
}

/// Runs the exporter binary with `DATABASE_URL` set; returns (exit code, stdout, stderr).
pub fn run_with_db(args: &[&str], url: &str) -> (i32, String, String) {
    let out = Command::new(exporter_bin()).args(args).env("DATABASE_URL", url).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A test PKI made with openssl in `dir`: a CA and a server certificate for `sans`
/// (e.g. `DNS:localhost`); returns (ca.crt, server.crt, server.key).
pub fn test_pki(dir: &Path, sans: &str) -> (PathBuf, PathBuf, PathBuf) {
    let [ca_key, ca, key, csr, cert, ext] =
        ["ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "ext.cnf"].map(|f| dir.join(f));
    std::fs::write(&ext, format!("subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl not found: apt-get install -y openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=runbook-exporter test CA",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
    ]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server", "-keyout", &p(&key), "-out", &p(&csr)]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (ca, cert, key)
}

/// Checks the generated text between `<!-- NAME:start ... -->` and `<!-- NAME:end -->` in `file`;
/// with `UPDATE_DOCS` set in the environment, rewrites it instead.
pub fn check_generated(file: &Path, name: &str, generated: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let start_marker = format!("<!-- {name}:start");
    let end_marker = format!("<!-- {name}:end -->");
    let start = text.find(&start_marker).unwrap_or_else(|| panic!("{file:?} has no {start_marker}"));
    let body_start = start + text[start..].find("-->").unwrap() + 3;
    let end = text.find(&end_marker).unwrap_or_else(|| panic!("{file:?} has no {end_marker}"));
    let wanted = format!("\n{}\n", generated.trim_end());
    if text[body_start..end] == wanted {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(file, format!("{}{}{}", &text[..body_start], wanted, &text[end..])).unwrap();
        return;
    }
    panic!("{file:?} section {name} is out of date; run `UPDATE_DOCS=1 cargo test` and commit the result");
}
