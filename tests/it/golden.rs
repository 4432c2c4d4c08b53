//! Golden outputs: what the exporter writes, compared byte for byte with the files in `tests/golden/`.
//! A change to the encoder, `check` or the landing page shows as a diff of the lines that differ;
//! the exposition and the landing page are of a fixed scrape built in `support/library.rs`.
//! `UPDATE_DOCS=1 cargo test --test it golden::` rewrites the files when the change is intended.
//! Where the output holds what changes from run to run (durations, ports, the server's version), those
//! parts are replaced by a placeholder first, and only those.

use crate::support::cluster::Db;
use crate::support::data::root;
use crate::support::exporter::run;
use crate::support::exposition::promtool_check;
use crate::support::generated::check_file;
use crate::support::library::{golden_exposition, golden_landing};
use crate::support::openmetrics::{Dialect, check};

#[test]
fn the_exposition_of_a_fixed_scrape_in_both_formats() {
    let [text, openmetrics] = golden_exposition();
    check_file(&root().join("tests/golden/exposition.prom"), &text);
    check_file(&root().join("tests/golden/exposition.openmetrics"), &openmetrics);
    assert_eq!(promtool_check(&text), "", "promtool check metrics complains");
    check(&text, Dialect::Text004).unwrap_or_else(|e| panic!("text 0.0.4 grammar: {e}"));
    check(&openmetrics, Dialect::OpenMetrics).unwrap_or_else(|e| panic!("OpenMetrics grammar: {e}"));
}

/// A database for the check and landing-page goldens: a table big enough for `check --explain` to flag.
fn golden_db(name: &str) -> Db {
    let db = Db::new(name);
    db.client()
        .batch_execute("CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 200000) g; ANALYZE big")
        .unwrap();
    db
}

#[test]
fn the_check_report() {
    let db = golden_db("golden_check");
    let catalogue = root().join("tests/data/catalogues/golden_check.yaml");
    let checked =
        run(&["check", "--explain", "--config.file", catalogue.to_str().unwrap()], &[("DATABASE_URL", &db.url)]);
    assert_eq!(checked.code, 1, "one query fails: {}", checked.output());
    let report = stable(&checked.stdout.replace(catalogue.to_str().unwrap(), "CATALOGUE"));
    // Planner costs differ between PostgreSQL versions, and the table's columns are as wide as their cells.
    let report: Vec<String> =
        report.lines().map(|l| collapse_spaces(&replace_numbers_after(l, "cost ", "N"))).collect();
    check_file(&root().join("tests/golden/check.txt"), &(report.join("\n") + "\n"));
}

#[test]
fn the_landing_page() {
    check_file(&root().join("tests/golden/landing.html"), &golden_landing());
}

/// `text` with what differs between runs replaced: durations (`12.3 ms`), the database's port, the server's
/// version and the revision the binary was built from.
fn stable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let line = if let Some(i) = line.find("server: PostgreSQL ") {
            let role = line.rfind(" (").map_or("", |j| &line[j..]);
            format!("{}server: PostgreSQL VERSION{role}", &line[..i])
        } else {
            line.to_owned()
        };
        out.push_str(&replace_numbers_before(&replace_port(&line), " ms", "N.N"));
    }
    out.replace(runbook_exporter::REVISION, "REVISION").replace(env!("CARGO_PKG_VERSION"), "VERSION")
}

/// `127.0.0.1:PORT` for any port.
fn replace_port(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + 10]);
        rest = rest[i + 10..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push_str("PORT");
    }
    out.push_str(rest);
    out
}

/// Every number directly after `prefix` replaced by `placeholder`.
fn replace_numbers_after(line: &str, prefix: &str, placeholder: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i + prefix.len()]);
        let tail = &rest[i + prefix.len()..];
        let number = tail.trim_start_matches(|c: char| c.is_ascii_digit());
        if number.len() < tail.len() {
            out.push_str(placeholder);
        }
        rest = number;
    }
    out.push_str(rest);
    out
}

/// Runs of spaces (column padding) as two spaces.
fn collapse_spaces(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split("  ").filter(|p| !p.is_empty()).enumerate() {
        if i > 0 {
            out.push_str("  ");
        }
        out.push_str(part.trim_start());
    }
    out
}

/// Every number directly before `unit` replaced by `placeholder`.
fn replace_numbers_before(line: &str, unit: &str, placeholder: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(unit) {
        let head = &rest[..i];
        let number = head.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        out.push_str(number);
        if number.len() < head.len() {
            out.push_str(placeholder);
        }
        out.push_str(unit);
        rest = &rest[i + unit.len()..];
    }
    out.push_str(rest);
    out
}
