//! The tools the tests run for real: promtool, amtool, prometheus, alertmanager, and Chromium for the status
//! page. A missing one fails the test with the install command; it is never skipped.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::data::root;

const INSTALL: &str = "apt-get install -y prometheus prometheus-alertmanager";

/// The first of `names` found on `PATH`, or `$env_var` when it is set; panics with the install command.
pub fn find(names: &[&str], env_var: &str) -> PathBuf {
    find_or(names, env_var, INSTALL)
}

/// [`find`] with another install command.
pub fn find_or(names: &[&str], env_var: &str, install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |dir| dir.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{} is not on PATH (or set {env_var}); install it with: {install}", names.join(" or "))
        })
}

/// `promtool` (or `$PROMTOOL`), run in the repository root.
pub fn promtool() -> Command {
    let mut c = Command::new(find(&["promtool"], "PROMTOOL"));
    c.current_dir(root());
    c
}

/// `amtool` (or `$AMTOOL`), run in the repository root.
pub fn amtool() -> Command {
    let mut c = Command::new(find(&["amtool"], "AMTOOL"));
    c.current_dir(root());
    c
}

/// `python3` (or `$PYTHON3`), run in the repository root: alerts/render.py needs only its standard library.
pub fn python3() -> Command {
    let mut c = Command::new(find_or(&["python3"], "PYTHON3", "apt-get install -y python3"));
    c.current_dir(root());
    c
}

/// Headless Chromium (or `$CHROMIUM`) with a fresh profile in `profile`, and the flags a closed network and
/// a root user need (no sandbox, no background connections, no first-run UI).
pub fn chromium(profile: &std::path::Path) -> Command {
    let mut c = Command::new(find_or(&["chromium", "chromium-browser"], "CHROMIUM", "apt-get install -y chromium"));
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd`, panics with its output unless it succeeds, returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}
