//! `runbook-exporter check`: validate, connect, run every query once and report.
//!
//! The report is a plain-text table per target; every error (no connection, a
//! failing query) counts, so a non-zero exit can gate a catalogue deployment.
//! Warnings (slow query, many series, naming) do not fail the check.

use std::fmt::Write;
use std::time::Instant;

use crate::catalogue::{Family, MetricKind};
use crate::db;
use crate::engine::skip_reason;
use crate::targets::Running;

/// Tables with more estimated rows than this make a sequential scan worth a warning.
pub const LARGE_TABLE_ROWS: f64 = 100_000.0;

/// The outcome of a check.
#[derive(Debug, Default)]
pub struct Report {
    /// The printable report.
    pub text: String,
    /// Errors found; the check fails when this is not zero.
    pub errors: usize,
}

/// Runs the check against every target of `running`.
pub async fn run(running: &Running, explain: bool) -> Report {
    let mut r = Report::default();
    let cat = &running.catalogue;
    let _ = writeln!(
        r.text,
        "catalogue {}: {} queries, {} metric families: valid",
        cat.source,
        cat.queries.len(),
        cat.families.len()
    );
    for family in &cat.families {
        for w in naming_warnings(family) {
            let _ = writeln!(r.text, "warning: metric {}: {w}", family.name);
        }
    }
    for target in &running.targets {
        let _ = writeln!(r.text, "\ntarget {} ({})", target.name, target.masked_dsn);
        let facts = match target.facts().await {
            Ok(f) => f,
            Err(e) => {
                r.errors += 1;
                let _ = writeln!(r.text, "error: cannot connect: {}", e.message);
                continue;
            }
        };
        let role = if facts.in_recovery { "replica" } else { "primary" };
        let _ = writeln!(r.text, "server: PostgreSQL {} ({role})", facts.version);
        let mut rows = vec![["query", "status", "rows", "series", "duration", "warnings"].map(String::from)];
        for query in &cat.queries {
            if !query.targets.is_empty() && !query.targets.contains(&target.name) {
                continue;
            }
            if let Some(reason) = skip_reason(query, &facts) {
                rows.push([
                    query.name.clone(),
                    format!("skipped: {reason}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    String::new(),
                ]);
                continue;
            }
            let start = Instant::now();
            let outcome = db::execute(target.pool(), cat, query, target.label.as_deref()).await;
            let took = start.elapsed();
            let mut warnings = Vec::new();
            if took > query.timeout / 2 {
                warnings.push(format!("slower than half its timeout ({:?})", query.timeout));
            }
            let (status, nrows, series) = match &outcome {
                Ok(result) => {
                    let series = result.series_count();
                    if series * 10 >= query.max_series * 8 {
                        warnings.push(format!("{series} series is near max_series {}", query.max_series));
                    }
                    ("ok".to_owned(), result.rows.to_string(), series.to_string())
                }
                Err(e) => {
                    r.errors += 1;
                    (format!("ERROR {}: {}", e.kind.as_str(), e.message), "-".into(), "-".into())
                }
            };
            if explain {
                match db::explain(target.pool(), query, LARGE_TABLE_ROWS).await {
                    Ok(plan) => {
                        warnings.push(format!("cost {:.0}", plan.total_cost));
                        for (rel, n) in plan.large_seq_scans {
                            warnings.push(format!("sequential scan over {rel} (~{n:.0} rows)"));
                        }
                    }
                    Err(e) => warnings.push(format!("EXPLAIN failed: {}", e.message)),
                }
            }
            rows.push([
                query.name.clone(),
                status,
                nrows,
                series,
                format!("{:.1} ms", took.as_secs_f64() * 1e3),
                warnings.join("; "),
            ]);
        }
        r.text.push_str(&table(&rows));
    }
    let _ = writeln!(r.text, "\n{} error(s)", r.errors);
    r
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

fn table(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(5) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < 5 {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            } else {
                out.push_str(cell);
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}
