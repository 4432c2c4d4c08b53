//! The container image, built from the repository's `Dockerfile` with real podman and run against a test
//! PostgreSQL the way `deploy/kubernetes/` runs it: unprivileged user, no capabilities, read-only root file
//! system, the password from a file only that user can read, and the Deployment's memory limit.
//!
//! The runtime stages are built exactly as shipped; only the binary comes from this test run (`BINARY=prebuilt`,
//! see the Dockerfile's header) and the runtime base is a local debootstrapped Debian 12
//! (`support::podman::base_image`), since no registry is reachable here. The container shares the host's network
//! so that it reaches the test PostgreSQL on loopback and the test reaches it.
//!
//! Skipped, with the reason printed, only where podman cannot run containers (not root, `podman info` fails); a
//! missing podman, runc or debootstrap fails with the install command.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::data::{read, root};
use crate::support::http::{Client, Reply};
use crate::support::kubernetes;
use crate::support::podman::{self, Container, Image};
use crate::support::process::{Guard, memory_kib};
use crate::support::{Cluster, Db, Metrics, PASSWORD, eventually, free_port};

/// The image's user (the Dockerfile's `USER`, the Deployment's `runAsUser`).
const UID: u32 = 10001;
const PASSWORD_FILE: &str = "/run/secrets/db-password";

/// Every regular file of the image and why it is there: the exporter, its catalogue, its libraries and loader,
/// bash and its libtinfo for the HEALTHCHECK, the names of uid 10001, the resolver's order. Library paths are
/// Debian's multiarch ones for this machine's architecture.
fn image_files() -> BTreeSet<String> {
    let arch = std::env::consts::ARCH;
    let loader = match arch {
        "x86_64" => "/lib64/ld-linux-x86-64.so.2",
        "aarch64" => "/lib/ld-linux-aarch64.so.1",
        other => panic!("the loader's name on {other} is not known to this test"),
    };
    let libs =
        ["libc.so.6", "libm.so.6", "libgcc_s.so.1", "libtinfo.so.6"].map(|l| format!("/lib/{arch}-linux-gnu/{l}"));
    let fixed = [
        "/usr/local/bin/runbook-exporter",
        "/etc/runbook-exporter/queries.yaml",
        "/bin/bash",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        loader,
    ];
    fixed.into_iter().map(String::from).chain(libs).collect()
}

/// Every path below `dir` (relative, with a leading `/`), split into regular files and anything else that is
/// not a directory; with the owner and mode of each file.
fn tree(dir: &Path) -> (Vec<(String, u32, u32)>, Vec<String>) {
    let (mut files, mut other) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let meta = entry.path().symlink_metadata().unwrap();
            let name = format!("/{}", entry.path().strip_prefix(dir).unwrap().display());
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                files.push((name, meta.uid(), meta.mode() & 0o7777));
            } else {
                other.push(name);
            }
        }
    }
    files.sort();
    (files, other)
}

/// The image's files (see [`tree`]) and its catalogue, read from the image mounted with `podman image mount`.
fn image_tree(image: &Image) -> (Vec<(String, u32, u32)>, Vec<String>, String) {
    let mountpoint = podman::run(&["image", "mount", &image.tag]).trim().to_owned();
    let (files, other) = tree(Path::new(&mountpoint));
    let catalogue = std::fs::read_to_string(Path::new(&mountpoint).join("etc/runbook-exporter/queries.yaml"));
    podman::run(&["image", "unmount", &image.tag]);
    (files, other, catalogue.unwrap_or_default())
}

/// A field (`Uid:`, `CapEff:`, ...) of /proc/PID/status.
fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix(field)).unwrap_or_default().trim().to_owned()
}

/// `/metrics` of the exporter at `base`, or None while it does not answer 200.
fn metrics(client: &Client, base: &str) -> Option<Metrics> {
    match client.get(&format!("{base}/metrics"), &[]) {
        (Reply::Answer(200, body), _) => Some(Metrics::parse(&body)),
        _ => None,
    }
}

fn status(client: &Client, url: &str) -> Option<u16> {
    match client.get(url, &[]) {
        (Reply::Answer(status, _), _) => Some(status),
        _ => None,
    }
}

#[test]
fn image_runs_unprivileged_read_only_healthy_and_stops_cleanly() {
    if let Some(reason) = podman::unusable() {
        println!("skipped: {reason}");
        return;
    }
    let pid = std::process::id();
    let base = podman::base_image();

    // ---- the image, from the shipped Dockerfile
    let context = podman::prebuilt_context();
    let image = Image::build(
        &format!("localhost/runbook-exporter-test:{pid}"),
        &root().join("Dockerfile"),
        context.path(),
        &[("BINARY", "prebuilt"), ("RUNTIME_BASE", &base)],
    );
    let size: u64 = image.inspect("{{.Size}}").parse().unwrap();
    println!("image size: {:.1} MB (debug build of the exporter; a release build is smaller)", size as f64 / 1e6);
    assert_eq!(image.inspect("{{.Config.User}}"), format!("{UID}:{UID}"));
    let healthcheck = image.inspect("{{json .Config.Healthcheck.Test}}");
    assert!(healthcheck.contains("/dev/tcp/127.0.0.1/") && healthcheck.contains("/healthz"), "{healthcheck}");

    let (files, other, catalogue) = image_tree(&image);
    let names: BTreeSet<String> = files.iter().map(|(n, _, _)| n.clone()).collect();
    assert_eq!(names, image_files(), "the image's files");
    assert_eq!(other, Vec::<String>::new(), "the image has only directories and regular files");
    for (name, owner, mode) in &files {
        assert!(*owner == 0 && mode & 0o022 == 0, "{name} is owned by {owner} with mode {mode:o}: root, not writable");
    }
    assert!(catalogue == read("queries.yaml"), "the image's catalogue is not the shipped queries.yaml");
    drop(context);

    // ---- a PostgreSQL and a password file only uid 10001 can read
    let mut db = Db::on(Cluster::start(), "container");
    let secrets = tempfile::Builder::new().prefix("secrets-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let password = secrets.path().join("db-password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    std::os::unix::fs::chown(&password, Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::set_permissions(secrets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // ---- run it as the Deployment does
    let limit = kubernetes::memory_limit_bytes();
    let port = free_port();
    let name = format!("runbook-exporter-test-{pid}");
    let url = format!("postgres://postgres@127.0.0.1:{}/{}?sslmode=disable", db.port(), db.name);
    let volume = format!("{}:{PASSWORD_FILE}:ro", password.display());
    let listen = format!("RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:{port}");
    let (database_url, memory) = (format!("DATABASE_URL={url}"), format!("--memory={limit}"));
    let container = Container::run(
        &name,
        &[
            "--network=host",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "--read-only",
            "--read-only-tmpfs=false",
            &memory,
            "--env",
            &database_url,
            "--env",
            &format!("DATABASE_PASSWORD_FILE={PASSWORD_FILE}"),
            "--env",
            &listen,
            "--volume",
            &volume,
            &image.tag,
        ],
    );
    let base_url = format!("http://127.0.0.1:{port}");
    let client = Client::new(Duration::from_secs(10));
    let mut up = None;
    let answered = eventually(Duration::from_secs(60), || {
        up = metrics(&client, &base_url).map(|m| m.get("pg_up", &[]));
        up == Some(1.0)
    });
    assert!(answered, "no pg_up 1 from the container (last pg_up: {up:?}):\n{}", container.logs());
    assert_eq!(status(&client, &format!("{base_url}/readyz")), Some(200), "{}", container.logs());

    // The process: uid/gid 10001, no capabilities at all, no way to gain privileges.
    let process = container.pid();
    let ids = format!("{UID}\t{UID}\t{UID}\t{UID}");
    assert_eq!(
        (proc_status(process, "Uid:"), proc_status(process, "Gid:")),
        (ids.clone(), ids),
        "real, effective, saved, fs"
    );
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(proc_status(process, set), "0000000000000000", "{set} of the exporter");
    }
    assert_eq!(proc_status(process, "NoNewPrivs:"), "1");

    // The root file system is read-only, even for root in the container; the password file is the user's alone
    // (root in the container has no capabilities, so no CAP_DAC_OVERRIDE either).
    for (user, path) in [("10001", "/etc/runbook-exporter/x"), ("0", "/x"), ("0", "/etc/runbook-exporter/queries.yaml")]
    {
        let (ok, text) = container.exec(&["--user", user], &["/bin/bash", "-c", &format!("echo x >> {path}")]);
        assert!(!ok && text.contains("Read-only file system"), "user {user} writing {path}: {text}");
    }
    let read_password = ["/bin/bash", "-c", &format!("read -r pw < {PASSWORD_FILE}")];
    let (ok, text) = container.exec(&[], &read_password);
    assert!(ok, "uid 10001 reads the password file: {text}");
    let (ok, text) = container.exec(&["--user", "0"], &read_password);
    assert!(!ok && text.contains("Permission denied"), "root without capabilities reads the password file: {text}");

    // The HEALTHCHECK passes, and fails where nothing listens: a second container told by the flag to listen
    // elsewhere than RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS says (the caveat the Dockerfile documents).
    let (healthy, said) = container.healthcheck();
    assert!(healthy, "the HEALTHCHECK fails on a serving exporter: {said}\n{}", container.logs());
    let elsewhere = free_port();
    let astray = Container::run(
        &format!("runbook-exporter-test-astray-{pid}"),
        &[
            "--network=host",
            "--read-only",
            "--env",
            &database_url,
            "--env",
            &format!("RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:{}", free_port()),
            &image.tag,
            "--web.listen-address",
            &format!("127.0.0.1:{elsewhere}"),
        ],
    );
    let serving = eventually(Duration::from_secs(60), || {
        status(&client, &format!("http://127.0.0.1:{elsewhere}/healthz")) == Some(200)
    });
    assert!(serving, "the second container does not serve:\n{}", astray.logs());
    let (healthy, said) = astray.healthcheck();
    assert!(!healthy, "the HEALTHCHECK passes although nothing listens on its port: {said}");
    drop(astray);

    // PostgreSQL down: pg_up 0 and not ready, but alive (a restart would not bring the database back).
    db.cluster().stop();
    let down =
        eventually(Duration::from_secs(60), || metrics(&client, &base_url).is_some_and(|m| m.get("pg_up", &[]) == 0.0));
    assert!(down, "pg_up does not turn 0 with PostgreSQL stopped:\n{}", container.logs());
    assert_eq!(status(&client, &format!("{base_url}/readyz")), Some(503));
    let (healthy, said) = container.healthcheck();
    assert!(healthy, "the HEALTHCHECK fails because the database is down: {said}");

    // Within the Deployment's memory limit, which the container ran under.
    let (_, peak_kib) = memory_kib(process);
    println!("exporter peak RSS in the container: {} KiB (limit {limit} bytes)", peak_kib);
    assert!(peak_kib * 1024 < limit, "peak RSS {peak_kib} KiB is over the Deployment's limit of {limit} bytes");
    assert_eq!(container.inspect("{{.HostConfig.Memory}}"), limit.to_string(), "the container's memory limit");
    assert_eq!(container.inspect("{{.State.OOMKilled}}"), "false");

    // SIGTERM: a clean exit, said in the log, within a bound (a hang fails instead of blocking the suite).
    podman::run(&["kill", "--signal", "TERM", &name]);
    let mut wait = Guard::spawn("podman wait", podman::podman().args(["wait", &name]).stdout(Stdio::null()), "KILL");
    let exited = wait.wait_within(Duration::from_secs(30));
    assert!(exited.is_some_and(|s| s.success()), "the container did not stop on SIGTERM:\n{}", container.logs());
    assert_eq!(container.inspect("{{.State.ExitCode}}"), "0", "{}", container.logs());
    assert!(container.logs().contains("shutting down"), "{}", container.logs());
}
