//! Records the git revision for `--version` and `runbook_exporter_build_info`.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RUNBOOK_EXPORTER_REVISION");
    // A build without .git (e.g. a container build) may pass the revision in.
    if let Ok(revision) = std::env::var("RUNBOOK_EXPORTER_REVISION") {
        println!("cargo:rustc-env=RUNBOOK_EXPORTER_REVISION={revision}");
        return;
    }
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RUNBOOK_EXPORTER_REVISION={revision}");
    // Rebuild when HEAD moves. Ask git where its files are: in a worktree `.git` is a file, and a path
    // that does not exist would make cargo rerun this script (and relink) on every build.
    let paths = Command::new("git")
        .args(["rev-parse", "--git-path", "HEAD", "--git-path", "refs/heads", "--git-path", "packed-refs"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    for path in paths.lines().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}
