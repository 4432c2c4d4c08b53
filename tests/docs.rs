//! Generated documentation must match the code: the flag reference in README.md.
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites it.

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn readme_flag_reference_matches_help() {
    let out = Command::new(support::exporter_bin()).arg("--help").env_clear().output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let block = format!("```text\n{}\n```", help.trim_end().lines().map(str::trim_end).collect::<Vec<_>>().join("\n"));
    support::check_generated(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"), "flags", &block);
}
