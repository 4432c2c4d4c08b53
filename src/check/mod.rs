//! `runbook-exporter check`: validate the configuration, then (unless
//! `--offline`) connect, run every query once and report.
//!
//! The check builds a [`Report`] (data), rendered as text for people or JSON
//! for CI. Every error (an unusable file, no connection, a failing query)
//! counts, so a non-zero exit can gate a deployment; warnings (slow query,
//! many series, naming, privileges, an unreadable file set) do not.
//! Exit codes: 0 no errors, 1 errors (or the configuration does not load),
//! 2 bad flags.

mod render;

use std::time::Instant;

use serde::Serialize;

use crate::catalogue::{Family, MetricKind};
use crate::db;
use crate::engine::{Running, Unit, skip_reason};

pub use render::{json, load_error_json, text};

/// Tables with more estimated rows than this make a sequential scan worth a warning.
pub const LARGE_TABLE_ROWS: f64 = 100_000.0;

/// What the check found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The catalogue file.
    pub catalogue: String,
    /// Its queries.
    pub queries: usize,
    /// Its metric families.
    pub families: usize,
    /// The web config file that was checked, if any.
    pub web_config: Option<String>,
    /// Problems that do not fail the check.
    pub warnings: Vec<String>,
    /// Problems outside any target that fail it (each also counted in `errors`).
    pub problems: Vec<String>,
    /// Each `files:` set as scanned now.
    pub file_sets: Vec<FileSetReport>,
    /// Each target as checked against its database; empty with `--offline`.
    pub targets: Vec<TargetReport>,
    /// Whether the databases were left alone.
    pub offline: bool,
    /// Errors found; the check fails when this is not zero.
    pub errors: usize,
}

/// One `files:` set.
#[derive(Debug, Serialize)]
pub struct FileSetReport {
    /// Its name.
    pub name: String,
    /// Matching files, when the scan succeeded.
    pub files: Option<usize>,
    /// Age of the newest file in seconds.
    pub newest_age_seconds: Option<f64>,
    /// Size of the newest file.
    pub newest_size_bytes: Option<u64>,
}

/// One target.
#[derive(Debug, Serialize)]
pub struct TargetReport {
    /// Its name.
    pub name: String,
    /// Where it is, password masked.
    pub database: String,
    /// `PostgreSQL 17.2 (primary)`, when it answered.
    pub server: Option<String>,
    /// Why it could not be checked.
    pub error: Option<String>,
    /// Warnings about the target as a whole.
    pub warnings: Vec<String>,
    /// Each query that applies to it.
    pub queries: Vec<QueryReport>,
}

/// One query on one target.
#[derive(Debug, Serialize)]
pub struct QueryReport {
    /// Its name.
    pub name: String,
    /// `ok`, `skipped: REASON` or `ERROR kind: message`.
    pub status: String,
    /// Rows returned.
    pub rows: Option<usize>,
    /// Series produced.
    pub series: Option<usize>,
    /// Wall time in milliseconds, when it ran.
    pub duration_ms: Option<f64>,
    /// What looks wrong but does not fail the check.
    pub warnings: Vec<String>,
}

/// Checks `running`: the catalogue, its file sets, and (unless `offline`) every target.
pub async fn run(running: &Running, explain: bool, offline: bool) -> Report {
    let cat = &running.catalogue;
    let mut r = Report {
        catalogue: cat.source.clone(),
        queries: cat.queries.len(),
        families: cat.families.len(),
        offline,
        ..Default::default()
    };
    for family in &cat.families {
        r.warnings.extend(naming_warnings(family).into_iter().map(|w| format!("metric {}: {w}", family.name)));
    }
    for set in &cat.files {
        let report = match crate::files::scan(set) {
            Ok(scan) => {
                if scan.header_match == Some(false) {
                    r.warnings.push(format!("file set {}: the newest file does not start with the header", set.name));
                }
                FileSetReport {
                    name: set.name.clone(),
                    files: Some(scan.files),
                    newest_age_seconds: scan.newest.map(|f| (crate::http::unix_now() - f.modified).max(0.0)),
                    newest_size_bytes: scan.newest.map(|f| f.size),
                }
            }
            Err(reason) => {
                r.warnings.push(format!("file set {}: {reason}", set.name));
                FileSetReport { name: set.name.clone(), files: None, newest_age_seconds: None, newest_size_bytes: None }
            }
        };
        r.file_sets.push(report);
    }
    if !offline {
        for target in &running.targets {
            let mut units = vec![check_unit(running, target.server(), &target.name, &target.masked_dsn, explain).await];
            let deadline = tokio::time::Instant::now() + crate::engine::default_budget(cat);
            for unit in target.databases(deadline).await {
                let name = format!("{}/{}", target.name, unit.datname.as_deref().unwrap_or_default());
                units.push(check_unit(running, &unit, &name, &target.masked_dsn, explain).await);
            }
            for t in units {
                r.errors +=
                    usize::from(t.error.is_some()) + t.queries.iter().filter(|q| q.status.starts_with("ERROR")).count();
                r.targets.push(t);
            }
        }
    }
    r
}

/// Checks one unit: the target's own database, or one database it watches.
async fn check_unit(running: &Running, unit: &Unit, name: &str, masked_dsn: &str, explain: bool) -> TargetReport {
    let cat = &running.catalogue;
    let mut t = TargetReport {
        name: name.to_owned(),
        database: masked_dsn.to_owned(),
        server: None,
        error: None,
        warnings: Vec::new(),
        queries: Vec::new(),
    };
    let facts = match unit.facts().await {
        Ok(f) => f,
        Err(e) => {
            t.error = Some(format!("cannot connect: {}", e.message));
            return t;
        }
    };
    let role = if facts.in_recovery { "replica" } else { "primary" };
    t.server = Some(format!("PostgreSQL {} ({role})", facts.version));
    if !facts.sees_all_sessions {
        t.warnings.push(format!(
            "role {0} cannot see other roles' sessions: connection, transaction and lock metrics undercount \
             and their alerts may never fire; run: GRANT pg_monitor TO {0};",
            quote_ident(&facts.role)
        ));
    }
    for query in cat.queries.iter().enumerate().filter(|(qi, _)| unit.applies(*qi)).map(|(_, q)| q) {
        if let Some(reason) = skip_reason(query, &facts) {
            let status = format!("skipped: {reason}");
            let q = QueryReport {
                name: query.name.clone(),
                status,
                rows: None,
                series: None,
                duration_ms: None,
                warnings: vec![],
            };
            t.queries.push(q);
            continue;
        }
        let start = Instant::now();
        let outcome = db::execute(unit.pool(), cat, query, unit.label.as_deref()).await;
        let took = start.elapsed();
        let mut q = QueryReport {
            name: query.name.clone(),
            status: "ok".to_owned(),
            rows: None,
            series: None,
            duration_ms: Some(took.as_secs_f64() * 1e3),
            warnings: Vec::new(),
        };
        if took > query.timeout / 2 {
            q.warnings.push(format!("slower than half its timeout ({:?})", query.timeout));
        }
        match &outcome {
            Ok(result) => {
                let series = result.series_count();
                if series * 10 >= query.max_series * 8 {
                    q.warnings.push(format!("{series} series is near max_series {}", query.max_series));
                }
                (q.rows, q.series) = (Some(result.rows), Some(series));
            }
            Err(e) => q.status = format!("ERROR {}: {}", e.kind.as_str(), e.message),
        }
        if explain {
            match db::explain(unit.pool(), query, LARGE_TABLE_ROWS).await {
                Ok(plan) => {
                    q.warnings.push(format!("cost {:.0}", plan.total_cost));
                    for (rel, n) in plan.large_seq_scans {
                        q.warnings.push(format!("sequential scan over {rel} (~{n:.0} rows)"));
                    }
                }
                Err(e) => q.warnings.push(format!("EXPLAIN failed: {}", e.message)),
            }
        }
        t.queries.push(q);
    }
    t
}

/// `name` as an SQL identifier, quoted where it must be.
fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_owned() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// Naming problems of one family that Prometheus conventions warn about.
pub fn naming_warnings(f: &Family) -> Vec<String> {
    let mut w = Vec::new();
    let name = f.name.as_str();
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        w.push("use snake_case (lower-case) names".to_owned());
    }
    for (bad, good) in [
        ("_ms", "_seconds"),
        ("_milliseconds", "_seconds"),
        ("_kb", "_bytes"),
        ("_mb", "_bytes"),
        ("_percent", "_ratio"),
        ("_pct", "_ratio"),
    ] {
        if name.ends_with(bad) || name.contains(&format!("{bad}_")) {
            w.push(format!("use base units: {good} instead of {bad}"));
        }
    }
    let reserved = ["_count", "_sum", "_bucket", "_created", "_info"];
    if f.kind == MetricKind::Counter && reserved.iter().any(|s| name.ends_with(s)) {
        w.push("a counter ending in a reserved suffix cannot take _total cleanly".to_owned());
    }
    if f.kind == MetricKind::Gauge && ["_count", "_sum", "_bucket"].iter().any(|s| name.ends_with(s)) {
        w.push("gauge names ending in _count/_sum/_bucket look like histogram parts".to_owned());
    }
    w
}
