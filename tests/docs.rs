//! Generated documentation must match the code: the flag reference in README.md.
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites it.

mod support;

use std::path::Path;
use std::process::Command;

/// Replaces the text between `<!-- NAME:start ... -->` and `<!-- NAME:end -->` in `file`, or checks it.
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
        let updated = format!("{}{}{}", &text[..body_start], wanted, &text[end..]);
        std::fs::write(file, updated).unwrap();
        return;
    }
    panic!("{file:?} section {name} is out of date; run `UPDATE_DOCS=1 cargo test --test docs`");
}

#[test]
fn readme_flag_reference_matches_help() {
    let out = Command::new(support::exporter_bin()).arg("--help").env_clear().output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let block = format!("```text\n{}\n```", help.trim_end().lines().map(str::trim_end).collect::<Vec<_>>().join("\n"));
    check_generated(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"), "flags", &block);
}
