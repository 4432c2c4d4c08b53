//! A throwaway PostgreSQL cluster per test, and a database in it.
//!
//! Binaries come from `PG_BIN`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`
//! (`scripts/lib/pg.sh` finds them the same way). As root, PostgreSQL runs as the `postgres` user through
//! `setpriv`, which execs in place: the PID the guard holds is the postmaster. initdb runs once per test run
//! into a template that every cluster copies. `TEST_DATABASE_URL` points [`Db::new`] at an existing server
//! instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::free_port;
use super::pki::test_pki;
use super::process::{Guard, is_root, signal};

/// Password of the `postgres` role in every test cluster; TCP connections must use it.
pub const PASSWORD: &str = "Sup3r-Secret-pw";

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

/// psql: PG_BIN's, or (the npm builds ship none) the one on PATH or in `$PSQL`; a newer psql works against
/// older servers.
pub fn psql_bin() -> PathBuf {
    let bundled = pg_bin().join("psql");
    if bundled.is_file() { bundled } else { super::tools::find(&["psql"], "PSQL") }
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

/// Gives `path` (recursively) to the `postgres` user when we are root.
pub fn chown_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown").arg("-R").arg("postgres:postgres").arg(path).status().unwrap().success();
        assert!(ok, "chown {path:?} failed");
    }
}

/// An initdb'd data directory made once per test run and copied for every cluster; with `checksums`, one made
/// with `--data-checksums` (PostgreSQL 18 turns them on by default either way).
fn template(checksums: bool) -> &'static Path {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static CHECKSUMS: OnceLock<PathBuf> = OnceLock::new();
    let cell = if checksums { &CHECKSUMS } else { &PLAIN };
    cell.get_or_init(|| {
        let bin = pg_bin();
        let root = tempfile::Builder::new().prefix("rbx-template-").tempdir().unwrap().keep();
        let data = root.join("data");
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        chown_postgres(&root);
        let out = as_postgres(&bin.join("initdb"))
            .current_dir("/")
            .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"])
            .args(["--no-locale", "-D"])
            .arg(&data)
            .args(checksums.then_some("--data-checksums"))
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        remove_at_exit(root);
        data
    })
}

/// Removes `dir` when the test binary exits normally.
fn remove_at_exit(dir: PathBuf) {
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    DIRS.lock().unwrap().push(dir);
    extern "C" fn cleanup() {
        if let Ok(dirs) = DIRS.lock() {
            for d in dirs.iter() {
                let _ = std::fs::remove_dir_all(d);
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

/// A running throwaway cluster; stopped (immediate shutdown) on drop.
pub struct Cluster {
    pub port: u16,
    pub socket_dir: PathBuf,
    dir: PathBuf,
    extra: Vec<String>,
    server: Option<Guard>,
    _root: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// Starts a cluster with extra `-c name=value` settings.
    pub fn start_with(settings: &[&str]) -> Cluster {
        Cluster::start_from(template(false), settings)
    }

    /// Starts a cluster made with `initdb --data-checksums`, with extra `-c name=value` settings.
    pub fn start_with_checksums(settings: &[&str]) -> Cluster {
        Cluster::start_from(template(true), settings)
    }

    fn start_from(template: &Path, settings: &[&str]) -> Cluster {
        let root = tempfile::Builder::new().prefix("rbx-pg-").tempdir().unwrap();
        let dir = root.path().join("data");
        let status = Command::new("cp").arg("-a").arg(template).arg(&dir).status().unwrap();
        assert!(status.success());
        Cluster::launch_new(root, dir, settings.iter().map(|s| s.to_string()).collect())
    }

    /// Makes the socket directory next to `dir`, then starts the postmaster on a free port (another one if the
    /// port was taken before the server could bind it).
    fn launch_new(root: tempfile::TempDir, dir: PathBuf, extra: Vec<String>) -> Cluster {
        let socket_dir = root.path().join("sock");
        std::fs::create_dir(&socket_dir).unwrap();
        chown_postgres(root.path());
        let mut cluster = Cluster { port: 0, socket_dir, dir, extra, server: None, _root: root };
        for _ in 0..3 {
            cluster.port = free_port();
            match cluster.try_launch() {
                Ok(()) => return cluster,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("postgres did not start: {log}"),
            }
        }
        panic!("postgres found no free port: {}", cluster.server_log());
    }

    /// A streaming standby of this cluster without pg_basebackup (the npm builds have none): stops this server
    /// cleanly, copies its data directory (without its replication slots), restarts it, and starts the copy
    /// with `standby.signal` and a `primary_conninfo` to this server (as `application_name`), with this
    /// server's settings plus `settings`.
    pub fn standby_by_copy(&mut self, application_name: &str, settings: &[&str]) -> Cluster {
        let root = tempfile::Builder::new().prefix("rbx-standby-").tempdir().unwrap();
        let dir = root.path().join("data");
        self.stop();
        let status = Command::new("cp").arg("-a").arg(&self.dir).arg(&dir).status().unwrap();
        assert!(status.success(), "copying {:?} failed", self.dir);
        self.launch();
        for entry in std::fs::read_dir(dir.join("pg_replslot")).unwrap() {
            std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
        }
        let _ = std::fs::remove_file(dir.join("postmaster.pid"));
        std::fs::write(dir.join("standby.signal"), "").unwrap();
        self.follow(&dir, application_name);
        let mut extra = self.extra.clone();
        extra.extend(settings.iter().map(|s| s.to_string()));
        Cluster::launch_new(root, dir, extra)
    }

    /// Points the data directory `dir` at this server as its primary (`primary_conninfo` over the socket).
    fn follow(&self, dir: &Path, application_name: &str) {
        let conninfo = format!(
            "\nprimary_conninfo = 'host={} port={} user=postgres application_name={application_name}'\n",
            self.socket_dir.display(),
            self.port
        );
        let auto = dir.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
        text.push_str(&conninfo);
        std::fs::write(&auto, text).unwrap();
        chown_postgres(dir);
    }

    /// Restarts this server in recovery (a demoted old primary, or one started with a stray `standby.signal`):
    /// stops it, writes `standby.signal` (and a `primary_conninfo` to `primary`, if given), starts it again on
    /// the same port.
    pub fn restart_in_recovery(&mut self, primary: Option<(&Cluster, &str)>) {
        self.stop();
        std::fs::write(self.dir.join("standby.signal"), "").unwrap();
        if let Some((primary, application_name)) = primary {
            primary.follow(&self.dir, application_name);
        }
        chown_postgres(&self.dir);
        self.launch();
    }

    /// Overwrites part of the first data page of `table` (a table of database `db`) on disk while the server
    /// is stopped, then starts it again: with data checksums the next read of that page fails.
    pub fn corrupt_first_page(&mut self, db: &str, table: &str) {
        let file: String =
            self.connect(db).query_one("SELECT pg_relation_filepath($1::text::regclass)", &[&table]).unwrap().get(0);
        self.stop();
        let path = self.dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() >= 8192, "{table} has no full page on disk ({} bytes)", bytes.len());
        // The end of the page holds the first tuples.
        for b in &mut bytes[8192 - 64..8192] {
            *b = !*b;
        }
        std::fs::write(&path, bytes).unwrap();
        self.launch();
    }

    /// Kills one backend with SIGKILL: the postmaster ends every process and reinitializes (a crash restart,
    /// as after the OOM killer) without restarting itself. Returns once a new checkpointer runs and the server
    /// accepts connections again. Test clusters run with `fsync=off`, with which crash recovery was seen to
    /// lose a committed `CREATE EXTENSION` (PostgreSQL 18, one time in three): a test that needs what it
    /// committed after the crash starts its cluster with `fsync=on` and `synchronous_commit=on`.
    pub fn crash_a_backend(&self) {
        let checkpointer = |c: &mut postgres::Client| -> Option<i32> {
            let sql = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'";
            c.query_opt(sql, &[]).ok().flatten().map(|r| r.get(0))
        };
        let mut victim = self.connect("postgres");
        let before = checkpointer(&mut victim).expect("a checkpointer");
        let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        signal(u32::try_from(pid).unwrap(), "KILL");
        let start = Instant::now();
        loop {
            if let Ok(mut c) = self.try_connect("postgres")
                && checkpointer(&mut c).is_some_and(|now| now != before)
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no new checkpointer after the crash:\n{}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the postmaster (again) on the same port and waits until it accepts connections.
    pub fn launch(&mut self) {
        if let Err(log) = self.try_launch() {
            panic!("postgres did not start: {log}");
        }
    }

    /// Starts the postmaster and waits until it accepts connections; the server log when it does not.
    fn try_launch(&mut self) -> Result<(), String> {
        assert!(self.server.is_none(), "already running");
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
        cmd.stdout(Stdio::null()).stderr(log);
        self.server = Some(Guard::spawn("postgres", &mut cmd, "QUIT"));
        let start = Instant::now();
        loop {
            if self.try_connect("postgres").is_ok() {
                return Ok(());
            }
            if self.server.as_mut().is_some_and(Guard::exited) || start.elapsed() > Duration::from_secs(30) {
                self.server = None;
                return Err(self.server_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.with_file_name("server.log")).unwrap_or_default()
    }

    /// The postmaster and every process below it.
    fn processes(&self) -> Vec<u32> {
        let mut all = vec![self.server.as_ref().expect("not running").pid()];
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
        if let Some(mut server) = self.server.take() {
            server.stop_with("QUIT");
        }
    }

    /// Stops the server cleanly (`fast` shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop_with("INT");
        }
    }

    /// A superuser connection over the unix socket (trust) that may fail.
    pub fn try_connect(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
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
        if self.server.is_some() {
            // A stopped (SIGSTOP) server must be resumed to die.
            self.thaw();
        }
    }
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

    /// [`Db::url`] as `user`, a role made with the password [`PASSWORD`].
    pub fn url_as(&self, user: &str) -> String {
        self.url.replacen("://postgres:", &format!("://{user}:"), 1)
    }

    /// A superuser session.
    pub fn client(&self) -> postgres::Client {
        match &self.cluster {
            Some(c) => c.connect(&self.name),
            None => postgres::Client::connect(&self.url, postgres::NoTls).unwrap(),
        }
    }

    pub fn cluster(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("this test needs its own cluster")
    }

    /// The port of the test's own cluster.
    pub fn port(&self) -> u16 {
        self.cluster.as_ref().expect("this test needs its own cluster").port
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

/// A database on a cluster of its own that offers TLS with a certificate for `DNS:localhost` only, signed by
/// the test CA `ca`.
pub struct TlsServer {
    pub db: Db,
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts a [`TlsServer`] with a database for `test`.
pub fn tls_server(test: &str) -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(dir.path(), "DNS:localhost");
    // The server must own its key with 0600.
    use std::os::unix::fs::PermissionsExt;
    for f in [&cert, &key] {
        chown_postgres(f);
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cluster = Cluster::start_with(&[
        "ssl=on",
        &format!("ssl_cert_file={}", cert.display()),
        &format!("ssl_key_file={}", key.display()),
    ]);
    TlsServer { db: Db::on(cluster, test), ca, _dir: dir }
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

/// A session to `url` (TCP, as the exporter connects) with its own `application_name`.
pub fn connect_as(url: &str, application_name: &str) -> postgres::Client {
    let mut config: postgres::Config = url.parse().unwrap();
    config
        .application_name(application_name)
        .connect_timeout(Duration::from_secs(10))
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect as {application_name}: {e}"))
}

/// PIDs of the exporter's backends (`application_name = 'runbook-exporter'`) seen by `client`.
pub fn exporter_backends(client: &mut postgres::Client) -> Vec<i32> {
    client
        .query("SELECT pid FROM pg_stat_activity WHERE application_name = 'runbook-exporter' ORDER BY pid", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The most exporter backends (`application_name = 'runbook-exporter'`) seen at once, sampled every `every` on
/// `client` from [`BackendPeak::start`] until [`BackendPeak::stop`].
pub struct BackendPeak {
    peak: Arc<AtomicI64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackendPeak {
    pub fn start(mut client: postgres::Client, every: Duration) -> BackendPeak {
        let (peak, done) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(exporter_backends(&mut client).len() as i64, Ordering::Relaxed);
                    std::thread::sleep(every);
                }
            })
        };
        BackendPeak { peak, done, thread: Some(thread) }
    }

    /// Stops sampling; the peak.
    pub fn stop(mut self) -> i64 {
        self.done.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}
