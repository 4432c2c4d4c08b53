//! podman, the container engine of the `container` tests: the command with the settings this kind of machine
//! needs, the local Debian base image the Dockerfile's runtime stage gathers its files from, image builds, and
//! guards that remove what a test made.
//!
//! podman runs rootful with `--runtime runc --cgroup-manager cgroupfs` (no systemd here) and a `containers.conf`
//! of our own under `target/tmp` whose `default_ulimits = []` stops podman from setting a `nofile` limit above
//! what this kernel allows. Health checks run only when asked (`podman healthcheck run`): podman's systemd timers
//! are turned off with `DISABLE_HC_SYSTEMD`.
//!
//! No registry is reachable, so the base is made here: `debootstrap --variant=minbase bookworm` into a directory,
//! piped through tar into `podman import`, once per machine (about a minute), under a lock file so that parallel
//! test runs make it once. The tag carries a revision: change [`BASE_REVISION`] to make a new one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::data::root;
use super::process::is_root;
use super::tools;

const INSTALL: &str = "apt-get install -y podman runc debootstrap";
/// Bump to make every machine build a new base on its next run.
const BASE_REVISION: u32 = 1;
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// Where this suite's podman files live (`target/tmp/podman`).
fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("podman");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `containers.conf` every podman command of the tests reads.
fn containers_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let path = dir().join("containers.conf");
        std::fs::write(&path, "# written by tests/it/support/podman.rs\n[containers]\ndefault_ulimits = []\n").unwrap();
        path
    })
}

/// A `podman` command with this machine's settings.
pub fn podman() -> Command {
    let mut c = Command::new(tools::find_or(&["podman"], "PODMAN", INSTALL));
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .env("CONTAINERS_CONF", containers_conf())
        .env("DISABLE_HC_SYSTEMD", "true")
        .stdin(Stdio::null());
    c
}

/// `podman ARGS`, whatever its exit status.
pub fn output(args: &[&str]) -> Output {
    tools::output(podman().args(args))
}

/// `podman ARGS`; panics with its output unless it succeeds; returns stdout.
pub fn run(args: &[&str]) -> String {
    tools::run(podman().args(args))
}

/// Why podman cannot run containers here (not root, or `podman info` fails), or None when it can. The tools
/// must be installed: a missing one panics with the install command.
pub fn unusable() -> Option<String> {
    if !is_root() {
        return Some("podman runs rootful here and the tests are not root".to_owned());
    }
    for tool in ["runc", "debootstrap"] {
        tools::find_or(&[tool], &tool.to_uppercase(), INSTALL);
    }
    let info = output(&["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
    (!info.status.success()).then(|| format!("`podman info` fails: {}", String::from_utf8_lossy(&info.stderr).trim()))
}

/// The local base image (`localhost/runbook-exporter-test-base:bookworm-minbase-N`), made once per machine.
pub fn base_image() -> String {
    let tag = format!("localhost/runbook-exporter-test-base:{SUITE}-minbase-{BASE_REVISION}");
    let exists = || output(&["image", "exists", &tag]).status.success();
    if exists() {
        return tag;
    }
    let lock = std::fs::File::create(dir().join("base.lock")).unwrap();
    lock.lock().unwrap();
    if !exists() {
        let started = std::time::Instant::now();
        let rootfs = tempfile::Builder::new().prefix("base-").tempdir_in(dir()).unwrap();
        let debootstrap = tools::find_or(&["debootstrap"], "DEBOOTSTRAP", INSTALL);
        tools::run(Command::new(debootstrap).args(["--variant=minbase", SUITE]).arg(rootfs.path()).arg(MIRROR));
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar did not start");
        let out = podman()
            .args(["import", "--message", "debootstrap --variant=minbase", "-", &tag])
            .stdin(tar.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(tar.wait().unwrap().success(), "tar of the debootstrapped tree failed");
        assert!(out.status.success(), "podman import failed: {}", String::from_utf8_lossy(&out.stderr));
        println!("made the base image {tag} in {:.0?} (once per machine)", started.elapsed());
    }
    tag
}

/// An image of the tests; removed on drop.
pub struct Image {
    pub tag: String,
}

impl Image {
    /// `podman build` of `dockerfile` in `context` with `args` (`--build-arg` pairs). Docker format: OCI image
    /// configs have no HEALTHCHECK, and buildah drops it from OCI images.
    pub fn build(tag: &str, dockerfile: &Path, context: &Path, args: &[(&str, &str)]) -> Image {
        let image = Image { tag: tag.to_owned() };
        let mut cmd = podman();
        // No network for RUN steps: the Dockerfile needs none, and no CNI plugin is needed then.
        cmd.args([
            "build",
            "--format",
            "docker",
            "--layers=false",
            "--pull=never",
            "--network=none",
            "--quiet",
            "--tag",
            tag,
        ]);
        for (k, v) in args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        cmd.arg("--file").arg(dockerfile).arg(context);
        tools::run(&mut cmd);
        image
    }

    /// `podman image inspect --format FORMAT`.
    pub fn inspect(&self, format: &str) -> String {
        run(&["image", "inspect", "--format", format, &self.tag]).trim().to_owned()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "--force", &self.tag]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// A container of the tests (`podman run --detach`); removed (killed first) on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    /// `podman run --detach --name NAME ARGS`, where ARGS end with the image and the exporter's arguments.
    pub fn run(name: &str, args: &[&str]) -> Container {
        let container = Container { name: name.to_owned() };
        let mut cmd = podman();
        cmd.args(["run", "--detach", "--name", name]).args(args);
        tools::run(&mut cmd);
        container
    }

    /// `podman inspect --format FORMAT` of the container.
    pub fn inspect(&self, format: &str) -> String {
        run(&["container", "inspect", "--format", format, &self.name]).trim().to_owned()
    }

    /// The host PID of the container's main process (0 once it stopped).
    pub fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}").parse().unwrap()
    }

    /// What the container wrote to stdout and stderr.
    pub fn logs(&self) -> String {
        let out = output(&["logs", &self.name]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// `podman exec ARGS NAME COMMAND...`: the exit status and stdout plus stderr.
    pub fn exec(&self, options: &[&str], command: &[&str]) -> (bool, String) {
        let mut cmd = podman();
        cmd.arg("exec").args(options).arg(&self.name).args(command);
        let out = tools::output(&mut cmd);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// `podman healthcheck run`: whether the image's HEALTHCHECK passed, and what podman said.
    pub fn healthcheck(&self) -> (bool, String) {
        let out = output(&["healthcheck", "run", &self.name]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text.trim().to_owned())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A build context for the Dockerfile with `BINARY=prebuilt`: this test run's exporter (hard-linked when it
/// can be) and `queries.yaml`, nothing else. Removed on drop.
pub fn prebuilt_context() -> tempfile::TempDir {
    let context = tempfile::Builder::new().prefix("context-").tempdir_in(dir()).unwrap();
    let binary = context.path().join("runbook-exporter");
    let exporter = env!("CARGO_BIN_EXE_runbook-exporter");
    if std::fs::hard_link(exporter, &binary).is_err() {
        std::fs::copy(exporter, &binary).unwrap();
    }
    std::fs::copy(root().join("queries.yaml"), context.path().join("queries.yaml")).unwrap();
    context
}
