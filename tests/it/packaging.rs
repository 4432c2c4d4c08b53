//! The Debian package (`[package.metadata.deb]` in Cargo.toml, `deploy/deb/`), built by `cargo deb` and installed
//! on this machine with `dpkg -i`: its files, conffiles and system user; the installed binary run as that user the
//! way its systemd unit would run it, against a test PostgreSQL; an upgrade, a removal and a purge.
//!
//! Why the real system and not `dpkg --root` or a chroot: the maintainer scripts are what needs proving (`adduser
//! --system`, the credential file, deb-systemd-helper), and they run against the system's own `/etc/passwd` and
//! dpkg database; a chroot would need a debootstrapped Debian per machine for the same proof. The tests run as root
//! on a throwaway machine (CI's, a developer's container); the test refuses to start when the package or its user
//! is already there, so it never touches an installation it did not make, and it purges the package and deletes
//! the user when it ends, also when it fails.
//!
//! systemd does not run here, so the test runs the unit's `ExecStart=` itself, as the unit's `User=`, with the
//! unit's `Environment=` and `EnvironmentFile=` and a copy of the `LoadCredential=` file where `%d` points; the
//! unit's sandbox directives are checked as text against `deploy/runbook-exporter.service` instead.
//!
//! Needs root, dpkg, adduser and `cargo-deb` (`cargo install --locked cargo-deb`; scripts/test.sh installs it). The
//! package is built from this test binary's exporter (`cargo deb --no-build`), so no release build is needed.
//!
//! Also `scripts/release.sh --dry-run`: every step of a release shown, nothing changed, bad versions refused.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::data::{read, root};
use crate::support::http::{Client, Reply};
use crate::support::process::{Guard, is_root};
use crate::support::tools::{output, run};
use crate::support::{Cluster, Db, Metrics, PASSWORD, eventually, free_port};

const PACKAGE: &str = "runbook-exporter";
const USER: &str = "runbook-exporter";
const CARGO_DEB: &str = "cargo install --locked cargo-deb --version 3.8.0";
const ENV_FILE: &str = "/etc/default/runbook-exporter";
const CATALOGUE: &str = "/etc/runbook-exporter/queries.yaml";
const PASSWORD_FILE: &str = "/etc/runbook-exporter/db-password";
const CONFFILES: [&str; 2] = [CATALOGUE, ENV_FILE];
/// Where deb-systemd-helper keeps what it enabled or masked while systemd is not running.
const SYSTEMD_STATE: [&str; 3] = [
    "/etc/systemd/system",
    "/var/lib/systemd/deb-systemd-helper-enabled",
    "/var/lib/systemd/deb-systemd-helper-masked",
];

/// The packages of this run: Debian revision 1 and 2 of the crate's version, built once per test run into
/// `target/packaging/` from the test binary's exporter.
fn packages() -> &'static [PathBuf; 2] {
    static DEBS: OnceLock<[PathBuf; 2]> = OnceLock::new();
    DEBS.get_or_init(|| {
        let dir = root().join("target/packaging");
        // cargo deb --no-build takes target/release/runbook-exporter from the target directory it is given.
        let stage = dir.join("stage");
        std::fs::create_dir_all(stage.join("release")).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_runbook-exporter"), stage.join("release/runbook-exporter")).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        ["1", "2"].map(|revision| {
            let deb = dir.join(format!("{PACKAGE}_{version}-{revision}_test.deb"));
            // cargo sets CARGO for the tests it runs; `cargo deb` finds cargo-deb on PATH.
            let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cmd.args(["deb", "--no-build", "--strip", "--fast", "--deb-revision", revision, "--output"])
                .arg(&deb)
                .current_dir(root())
                .env("CARGO_TARGET_DIR", &stage);
            let out = output(&mut cmd);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "cargo deb failed ({}); is cargo-deb installed? ({CARGO_DEB})\n{stderr}",
                out.status
            );
            deb
        })
    })
}

/// `dpkg-query`'s status abbreviation and version of the package (`ii 0.1.0-1`), or None when dpkg does not know it.
fn status() -> Option<String> {
    let out = output(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}${Version}", PACKAGE]));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.starts_with("un")).then_some(text)
}

fn dpkg(args: &[&str]) -> String {
    let mut cmd = Command::new("dpkg");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut cmd)
}

/// The user's passwd entry (name:x:uid:gid:gecos:home:shell), if it exists.
fn passwd(user: &str) -> Option<Vec<String>> {
    let out = output(Command::new("getent").args(["passwd", user]));
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().split(':').map(String::from).collect())
}

fn group_exists(group: &str) -> bool {
    output(Command::new("getent").args(["group", group])).status.success()
}

/// Removes what the test installed, also when it fails: the package (purged) and the system user and group, which
/// Debian practice leaves behind on purge.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if status().is_some() {
            let _ = Command::new("dpkg").args(["--purge", PACKAGE]).stdout(Stdio::null()).status();
        }
        if passwd(USER).is_some() {
            let _ = Command::new("deluser").args(["--system", "--quiet", USER]).stderr(Stdio::null()).status();
        }
        if group_exists(USER) {
            let _ = Command::new("delgroup").args(["--system", "--quiet", USER]).stderr(Stdio::null()).status();
        }
    }
}

/// The directives (`Key=value` lines, comments and blank lines left out) of a unit file, in order.
fn directives(unit: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .map(String::from)
        .collect()
}

/// The values of `key` among a unit's directives.
fn values<'a>(directives: &'a [String], key: &str) -> Vec<&'a str> {
    directives.iter().filter_map(|d| d.strip_prefix(key)?.strip_prefix('=')).collect()
}

/// `KEY=value` lines of an environment file as systemd reads them: comments and blank lines skipped, quotes around
/// the value removed.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned()))
        .collect()
}

fn mode(path: &str) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.mode() & 0o7777, m.uid())
}

/// The files of the installed package, from dpkg's list.
fn package_files() -> Vec<String> {
    dpkg(&["-L", PACKAGE]).lines().map(String::from).collect()
}

/// Anything deb-systemd-helper left that names the unit.
fn systemd_leftovers() -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs: Vec<PathBuf> = SYSTEMD_STATE.iter().map(PathBuf::from).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if path.to_string_lossy().contains(PACKAGE) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Starts the unit's ExecStart as the unit's user, with the unit's environment, `%d` pointing at a copy of the
/// credential the unit loads (as systemd would hand it over); returns the process and its output file.
fn start_as_the_unit_would(unit: &[String], scratch: &Path) -> (Guard, PathBuf) {
    let user = values(unit, "User")[0];
    let exec: Vec<&str> = values(unit, "ExecStart")[0].split_whitespace().collect();
    let credentials = scratch.join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    for credential in values(unit, "LoadCredential") {
        let (id, source) = credential.split_once(':').unwrap();
        let copy = credentials.join(id);
        std::fs::copy(source, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    run(Command::new("chown").args(["-R", &format!("{user}:{user}")]).arg(&credentials));
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o500)).unwrap();
    std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for assignment in values(unit, "Environment") {
        let (k, v) = assignment.split_once('=').unwrap();
        env.insert(k.to_owned(), v.replace("%d", &credentials.display().to_string()));
    }
    for file in values(unit, "EnvironmentFile") {
        let path = file.trim_start_matches('-');
        env.extend(environment_file(&std::fs::read_to_string(path).unwrap()));
    }
    let log = scratch.join("exporter.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={user}"), &format!("--regid={user}"), "--init-groups", "--"])
        .args(&exec)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    (Guard::spawn("the installed exporter", &mut cmd, "TERM"), log)
}

/// The uid a process runs as (the real uid of /proc/PID/status).
fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

#[test]
fn deb_installs_runs_as_its_system_user_upgrades_and_purges_as_debian_expects() {
    assert!(is_root(), "the packaging test installs a .deb with dpkg -i: run it as root (scripts/test.sh does)");
    assert_eq!(status(), None, "{PACKAGE} is installed on this machine; the test would purge it: remove it first");
    assert!(passwd(USER).is_none(), "a user {USER} exists on this machine; the test creates and deletes it");
    let [first, second] = packages();
    let installed = Installed;

    // ---- install
    dpkg(&["-i", &first.display().to_string()]);
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    assert_eq!(status().as_deref(), Some(format!("ii {version}").as_str()));
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]));
    let conffiles: BTreeSet<&str> = conffiles.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(conffiles, CONFFILES.into_iter().collect(), "the package's conffiles");

    let user = passwd(USER).expect("postinst creates the system user");
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid < 1000, "a system uid: {user:?}");
    assert_eq!((user[5].as_str(), user[6].as_str()), ("/nonexistent", "/usr/sbin/nologin"), "{user:?}");
    assert!(group_exists(USER), "adduser --group makes the user's group");

    let files = package_files();
    for expected in [
        "/usr/bin/runbook-exporter",
        CATALOGUE,
        ENV_FILE,
        "/usr/share/doc/runbook-exporter/copyright",
        "/usr/share/doc/runbook-exporter/README.md",
        "/usr/share/doc/runbook-exporter/CHANGELOG.md",
        "/usr/share/doc/runbook-exporter/docs/migrating-from-postgres_exporter.md",
        "/usr/share/runbook-exporter/compat/postgres_exporter.rules.yml",
    ] {
        assert!(files.iter().any(|f| f == expected), "{expected} is not in the package:\n{}", files.join("\n"));
    }
    assert_eq!(std::fs::read_to_string(CATALOGUE).unwrap(), read("queries.yaml"), "the shipped catalogue");
    assert_eq!(std::fs::read_to_string(ENV_FILE).unwrap(), read("deploy/runbook-exporter.env.example"));
    assert_eq!(mode(ENV_FILE), (0o600, 0), "the environment file may hold secrets: root only");
    assert_eq!(mode(PASSWORD_FILE), (0o600, 0), "postinst creates the credential file empty and root-only");
    assert_eq!(std::fs::read_to_string(PASSWORD_FILE).unwrap(), "");
    assert!(
        read("LICENSE")
            .lines()
            .all(|l| std::fs::read_to_string("/usr/share/doc/runbook-exporter/copyright").unwrap().contains(l.trim()))
    );
    let version_line = run(Command::new("/usr/bin/runbook-exporter").arg("--version"));
    assert!(version_line.contains(env!("CARGO_PKG_VERSION")), "{version_line}");

    // The unit: the package's paths and user, and the sandbox of deploy/runbook-exporter.service line for line.
    let unit_path = files.iter().find(|f| f.ends_with("/runbook-exporter.service")).expect("the unit is packaged");
    let unit = directives(&std::fs::read_to_string(unit_path).unwrap());
    let mut expected = directives(&read("deploy/runbook-exporter.service"));
    expected.retain(|d| d != "DynamicUser=yes" && !d.starts_with("ExecStart="));
    expected.extend(
        ["ExecStart=/usr/bin/runbook-exporter", "User=runbook-exporter", "Group=runbook-exporter"].map(String::from),
    );
    assert_eq!(
        unit.iter().collect::<BTreeSet<_>>(),
        expected.iter().collect::<BTreeSet<_>>(),
        "{unit_path} must be deploy/runbook-exporter.service with the package's ExecStart and User/Group"
    );
    assert_eq!(values(&unit, "EnvironmentFile"), [format!("-{ENV_FILE}")]);
    assert!(values(&unit, "Environment").contains(&format!("RUNBOOK_EXPORTER_CONFIG_FILE={CATALOGUE}").as_str()));

    // ---- configure as an operator would, then run the unit's ExecStart as its user
    let mut db = Db::on(Cluster::start(), "packaging");
    std::fs::write(PASSWORD_FILE, format!("{PASSWORD}\n")).unwrap();
    let port = free_port();
    let env_file = std::fs::read_to_string(ENV_FILE).unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/{}?sslmode=disable", db.port(), db.name);
    let edited: String = env_file
        .lines()
        .map(|l| if l.starts_with("DATABASE_URL=") { format!("DATABASE_URL={url}\n") } else { format!("{l}\n") })
        .chain([format!("RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:{port}\n")])
        .collect();
    assert_ne!(edited, env_file, "the example environment file sets DATABASE_URL");
    std::fs::write(ENV_FILE, &edited).unwrap();

    let scratch = tempfile::Builder::new().prefix("rbx-deb-").tempdir().unwrap();
    let (mut exporter, log) = start_as_the_unit_would(&unit, scratch.path());
    let client = Client::new(Duration::from_secs(10));
    let mut body = String::new();
    let answered = eventually(Duration::from_secs(30), || {
        if let (Reply::Answer(200, text), _) = client.get(&format!("http://127.0.0.1:{port}/metrics"), &[]) {
            body = text;
            return true;
        }
        exporter.exited()
    });
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(answered && !body.is_empty(), "the installed exporter did not answer on :{port}:\n{}", logs());
    assert_eq!(process_uid(exporter.pid()), Some(uid), "the exporter runs as {USER}");
    let metrics = Metrics::parse(&body);
    assert_eq!(metrics.get("pg_up", &[]), 1.0, "with the password from the credential:\n{}", logs());
    assert_eq!(metrics.get("runbook_exporter_query_success", &[("query", "databases")]), 1.0, "the shipped catalogue");
    exporter.stop();
    db.cluster().stop();

    // ---- upgrade: the user and the operator's files stay
    dpkg(&["-i", &second.display().to_string()]);
    assert_eq!(status().as_deref(), Some(format!("ii {}-2", env!("CARGO_PKG_VERSION")).as_str()));
    assert_eq!(passwd(USER).map(|u| u[2].clone()), Some(uid.to_string()), "an upgrade keeps the user and its uid");
    assert_eq!(std::fs::read_to_string(ENV_FILE).unwrap(), edited, "an upgrade keeps the edited conffile");
    assert_eq!(std::fs::read_to_string(PASSWORD_FILE).unwrap(), format!("{PASSWORD}\n"));
    for conffile in CONFFILES {
        for suffix in [".dpkg-dist", ".dpkg-new", ".dpkg-old"] {
            assert!(!Path::new(&format!("{conffile}{suffix}")).exists(), "{conffile}{suffix} after the upgrade");
        }
    }

    // ---- remove: the program goes, the configuration and the user stay
    dpkg(&["-r", PACKAGE]);
    assert_eq!(status().as_deref(), Some(format!("rc {}-2", env!("CARGO_PKG_VERSION")).as_str()));
    assert!(!Path::new("/usr/bin/runbook-exporter").exists());
    assert!(!Path::new(unit_path).exists());
    assert_eq!(std::fs::read_to_string(ENV_FILE).unwrap(), edited, "dpkg -r keeps conffiles");
    assert!(Path::new(CATALOGUE).exists(), "dpkg -r keeps conffiles");
    assert!(passwd(USER).is_some());

    // ---- purge: the configuration goes; the user stays (Debian practice), then the test deletes it
    dpkg(&["--purge", PACKAGE]);
    assert_eq!(status(), None, "dpkg forgets a purged package");
    for gone in [ENV_FILE, CATALOGUE, PASSWORD_FILE, "/etc/runbook-exporter"] {
        assert!(!Path::new(gone).exists(), "{gone} is left after the purge");
    }
    assert_eq!(systemd_leftovers(), Vec::<String>::new(), "deb-systemd-helper's links and state are purged");
    assert_eq!(passwd(USER).map(|u| u[2].clone()), Some(uid.to_string()), "the purge leaves the system user");
    drop(installed);
    assert!(passwd(USER).is_none() && !group_exists(USER), "the test deletes the user and group it caused");
}

/// Runs `scripts/release.sh` with `args` in the repository; exit code, stdout and stderr.
fn release(args: &[&str]) -> (i32, String, String) {
    let out = output(Command::new("scripts/release.sh").args(args).current_dir(root()));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn release_script_dry_run_shows_every_step_and_changes_nothing() {
    let version = env!("CARGO_PKG_VERSION");
    let git_state = || {
        let status = run(Command::new("git").args(["status", "--porcelain"]).current_dir(root()));
        let tags = run(Command::new("git").args(["tag", "--list"]).current_dir(root()));
        (status, tags, read("CHANGELOG.md"), read("Cargo.toml"))
    };
    let before = git_state();
    let (code, stdout, stderr) = release(&["--dry-run", version]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for expected in [
        format!("release {version} (Cargo.toml has {version};"),
        format!("> ## [{version}] - "),
        "cargo update --workspace --offline".to_owned(),
        "would set the image tag of deploy/kubernetes/deployment.yaml".to_owned(),
        format!("*image: runbook-exporter:\\).*$|\\1{version}| deploy/kubernetes/deployment.yaml"),
        format!("git tag -a v{version}"),
        "cargo build --release --locked".to_owned(),
        "cargo deb --no-build --locked --output target/dist/".to_owned(),
        format!("runbook-exporter-{version}-"),
        "SHA256SUMS".to_owned(),
        "dry run: nothing was changed, built or tagged".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "the dry run does not say {expected:?}:\n{stdout}");
    }
    assert!(before == git_state(), "the dry run changed the repository");

    let (code, _, stderr) = release(&["--dry-run", "1.2"]);
    assert_eq!((code, stderr.contains("is not a release version")), (1, true), "{stderr}");
    let (code, _, stderr) = release(&["--dry-run", "0.0.1"]);
    assert_eq!((code, stderr.contains("is older than Cargo.toml's")), (1, true), "{stderr}");
    let (code, _, stderr) = release(&["--dry-run"]);
    assert_eq!((code, stderr.contains("usage:")), (2, true), "{stderr}");
}
