//! The shipped backup watch (`files:` set `ignition_backup` of `queries.yaml`) against real files: a real
//! `pg_dump --format=custom` of the Ignition database, then the same directory made old, truncated, not a dump
//! and empty; a missing and an unreadable directory with the exporter running as `nobody` (when the tests run as
//! root), reported with a reason while everything else is still served; and the runbook's backup file names
//! against the shipped pattern. The alerts on these metrics are tested with promtool (`alerts/tests/backups.test.yml`).
//!
//! The real dump needs `pg_dump` of the server's major in `PG_BIN` (`scripts/test.sh` skips that test for the
//! npm builds, which ship none).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::cluster::pg_bin;
use crate::support::data::{read, replace_once};
use crate::support::ignition::{load_ignition, small_seed};
use crate::support::process::is_root;
use crate::support::tools::run;
use crate::support::{Db, Exporter, Metrics, eventually};

const SET: &str = "ignition_backup";

/// The shipped catalogue watching `dir` instead of /var/backups/ignition, rescanned at every scrape.
fn catalogue_watching(dir: &Path) -> String {
    let shipped = read("queries.yaml");
    let moved = replace_once(
        &shipped,
        "directory: /var/backups/ignition",
        &format!("directory: {}", dir.display()),
        "queries.yaml",
    );
    replace_once(&moved, "header: PGDMP\n    ttl: 60s", "header: PGDMP\n    ttl: 0s", "queries.yaml")
}

/// Polls the exporter until `check` holds for its metrics (30 s at most); the last metrics either way.
fn until(exporter: &Exporter, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
    let ok = eventually(Duration::from_secs(30), || check(&exporter.metrics()));
    let m = exporter.metrics();
    let mine: Vec<_> = m.samples.iter().filter(|(n, _, _)| n.starts_with(SET) || n.contains("file_set")).collect();
    assert!(ok, "{what}: {mine:?}");
    m
}

fn metric(m: &Metrics, suffix: &str) -> Vec<f64> {
    m.find(&format!("{SET}_{suffix}"), &[])
}

fn set_mtime(path: &Path, time: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(time).unwrap();
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn a_real_dump_then_old_truncated_not_a_dump_and_empty() {
    let db = Db::new("backups");
    load_ignition(&db, small_seed());
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::with(&catalogue_watching(dir.path())).db(&db.url).start();
    let m = until(&exporter, "an empty directory", |m| metric(m, "files") == [0.0]);
    assert!(metric(&m, "newest_timestamp_seconds").is_empty(), "no newest file in an empty directory");

    // Fresh: the runbook's command, into the watched directory.
    let first = dir.path().join("backup-20260108-120000.dump");
    let pg_dump = pg_bin().join("pg_dump");
    assert!(pg_dump.is_file(), "{} is missing: this test needs pg_dump of the server's major", pg_dump.display());
    run(Command::new(&pg_dump).arg(format!("--dbname={}", db.url)).arg("--format=custom").arg("--file").arg(&first));
    let size = std::fs::metadata(&first).unwrap().len() as f64;
    assert!(size > 10_000.0, "a dump of the seeded database is larger than {size} bytes");
    let m = until(&exporter, "a fresh dump", |m| metric(m, "files") == [1.0]);
    assert_eq!(metric(&m, "newest_size_bytes"), [size]);
    assert_eq!(metric(&m, "newest_header_match"), [1.0], "pg_dump --format=custom starts with PGDMP");
    let age = epoch(SystemTime::now()) - metric(&m, "newest_timestamp_seconds")[0];
    assert!((0.0..3600.0).contains(&age), "the fresh dump is {age} s old");
    assert!(metric(&m, "previous_size_bytes").is_empty(), "one file has no previous one");
    assert_eq!(m.get("runbook_exporter_file_set_success", &[("set", SET)]), 1.0);

    // Old: the same file, written 30 hours ago.
    let thirty_hours_ago = SystemTime::now() - Duration::from_secs(30 * 3600);
    set_mtime(&first, thirty_hours_ago);
    let m = until(&exporter, "an old dump", |m| {
        metric(m, "newest_timestamp_seconds").first().is_some_and(|t| (t - epoch(thirty_hours_ago)).abs() < 1.0)
    });
    assert_eq!(metric(&m, "files"), [1.0]);

    // Truncated: a newer dump cut at a tenth (what a full disk leaves). It still starts with PGDMP.
    let bytes = std::fs::read(&first).unwrap();
    let second = dir.path().join("backup-20260109-120000.dump");
    std::fs::write(&second, &bytes[..bytes.len() / 10]).unwrap();
    let m = until(&exporter, "a truncated dump", |m| metric(m, "files") == [2.0]);
    assert_eq!(metric(&m, "newest_size_bytes"), [(bytes.len() / 10) as f64]);
    assert_eq!(metric(&m, "previous_size_bytes"), [size], "the previous file is the full dump");
    assert_eq!(metric(&m, "newest_header_match"), [1.0]);

    // A symlink such as backup-latest.dump does not count again.
    std::os::unix::fs::symlink(&first, dir.path().join("backup-latest.dump")).unwrap();
    // Not a dump: the newest file is gzip (compressed outside pg_dump), under the runbook's .dump.gz name.
    let third = dir.path().join("backup-20260110-120000.dump.gz");
    std::fs::write(&third, b"\x1f\x8b\x08\x00not a custom-format dump").unwrap();
    let m = until(&exporter, "not a dump", |m| metric(m, "newest_header_match") == [0.0]);
    assert_eq!(metric(&m, "files"), [3.0], "three regular files; the symlink is not followed");

    // Empty again: no backup at all, and no newest file.
    for f in [&first, &second, &third] {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::remove_file(dir.path().join("backup-latest.dump")).unwrap();
    let m = until(&exporter, "emptied", |m| metric(m, "files") == [0.0]);
    for suffix in ["newest_timestamp_seconds", "newest_size_bytes", "previous_size_bytes", "newest_header_match"] {
        assert!(metric(&m, suffix).is_empty(), "{suffix} without any file");
    }
}

#[test]
fn missing_and_unreadable_directories_are_reported_with_a_reason() {
    let db = Db::new("backups_unreadable");
    // The exporter runs as nobody when we are root (root reads every directory): the parent must be open to it.
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let missing = parent.path().join("no-such-directory");
    let exporter = Exporter::with(&catalogue_watching(&missing)).db(&db.url).run_as_nobody(is_root()).start();
    let reason = |m: &Metrics| {
        m.samples
            .iter()
            .find(|(n, l, v)| n == "runbook_exporter_file_set_error" && l["set"] == SET && *v == 1.0)
            .map(|(_, l, _)| l["reason"].clone())
            .unwrap_or_default()
    };
    let m = until(&exporter, "a missing directory", |m| reason(m).contains("does not exist"));
    assert_eq!(m.get("runbook_exporter_file_set_success", &[("set", SET)]), 0.0);
    assert!(metric(&m, "files").is_empty(), "no file count for a directory that cannot be read");
    assert_eq!(m.get("pg_up", &[]), 1.0, "the database is still watched");

    // The directory appears with a dump in it, then becomes unreadable to the exporter's user.
    std::fs::create_dir(&missing).unwrap();
    std::fs::write(missing.join("backup-20260108-120000.dump"), b"PGDMP\x01\x0e\x00").unwrap();
    until(&exporter, "the directory appeared", |m| metric(m, "files") == [1.0]);
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o000)).unwrap();
    let m = until(&exporter, "an unreadable directory", |m| {
        let r = reason(m).to_lowercase();
        r.contains("permission") || r.contains("denied")
    });
    assert_eq!(m.get("runbook_exporter_file_set_success", &[("set", SET)]), 0.0);
    assert!(metric(&m, "files").is_empty(), "no stale file count once the directory cannot be read");
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o755)).unwrap();
    until(&exporter, "readable again", |m| metric(m, "files") == [1.0]);
}

/// `*` any run of characters, `?` one character: the glob of a `files:` pattern.
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => glob_matches(rest, name) || (!name.is_empty() && glob_matches(pattern, &name[1..])),
        (Some((b'?', rest)), Some((_, tail))) => glob_matches(rest, tail),
        (Some((p, rest)), Some((c, tail))) => p == c && glob_matches(rest, tail),
        _ => false,
    }
}

#[test]
fn the_runbooks_backup_file_names_match_the_shipped_pattern() {
    let catalogue = read("queries.yaml");
    let pattern = catalogue
        .lines()
        .skip_while(|l| !l.starts_with(&format!("  {SET}:")))
        .find_map(|l| l.trim().strip_prefix("pattern: "))
        .expect("the ignition_backup set has a pattern")
        .trim_matches('"');
    // Every backup file name the runbook writes or restores, with `$(date ...)` as a real date.
    let runbook = read("docs/runbook-database-operations.md").replace("$(date +%Y%m%d-%H%M%S)", "20260108-120000");
    let names: Vec<String> = runbook
        .split(|c: char| c.is_whitespace() || c == '"' || c == '=')
        .filter(|w| w.starts_with("backup-") && w.contains(".dump"))
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 4, "the runbook's backup file names: {names:?}");
    assert!(names.iter().any(|n| n.ends_with(".dump.gz")) && names.contains(&"backup-latest.dump".to_owned()));
    let unmatched: Vec<&String> = names.iter().filter(|n| !glob_matches(pattern.as_bytes(), n.as_bytes())).collect();
    assert!(unmatched.is_empty(), "runbook names the pattern {pattern:?} misses: {unmatched:?}");
    for other in ["backup-20260108.sql", "ignition-20260108.dump", "backup-20260108-120000.tar"] {
        assert!(!glob_matches(pattern.as_bytes(), other.as_bytes()), "{pattern:?} matches {other:?}");
    }
}
