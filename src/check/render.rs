//! A check report as text for people and as JSON for CI.

use std::fmt::Write;

use super::Report;
use crate::catalogue;

/// The report as text: a summary, warnings, and a table per target.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "catalogue {}: {} queries, {} metric families: valid", r.catalogue, r.queries, r.families);
    for p in &r.problems {
        let _ = writeln!(out, "error: {p}");
    }
    if let Some(web) = r.web_config.as_ref().filter(|_| r.problems.is_empty()) {
        let _ = writeln!(out, "web config {web}: valid");
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for set in &r.file_sets {
        if let (Some(files), newest) = (set.files, set.newest_age_seconds.zip(set.newest_size_bytes)) {
            let newest = newest
                .map_or_else(|| "none".to_owned(), |(age, size)| format!("{:.1} h old, {size} bytes", age / 3600.0));
            let _ = writeln!(out, "file set {}: {files} matching file(s), newest: {newest}", set.name);
        }
    }
    if r.offline {
        let _ = writeln!(out, "offline: no database contacted");
    }
    for t in &r.targets {
        let _ = writeln!(out, "\ntarget {} ({})", t.name, t.database);
        if let Some(e) = &t.error {
            let _ = writeln!(out, "error: {e}");
            continue;
        }
        if let Some(server) = &t.server {
            let _ = writeln!(out, "server: {server}");
        }
        for w in &t.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let mut rows = vec![["query", "status", "rows", "series", "duration", "warnings"].map(String::from)];
        let cell = |v: Option<usize>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        for q in &t.queries {
            rows.push([
                q.name.clone(),
                q.status.clone(),
                cell(q.rows),
                cell(q.series),
                q.duration_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms")),
                q.warnings.join("; "),
            ]);
        }
        out.push_str(&table(&rows));
    }
    let _ = writeln!(out, "\n{} error(s)", r.errors);
    out
}

/// The report as one JSON object.
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"cannot render the report: {e}\"}}"))
}

/// A configuration that did not load, as JSON: `{"errors": [{file, line, column, field, message}], "error_count": n}`.
pub fn load_error_json(
    file: &str,
    error: &dyn std::error::Error,
    diagnostics: Option<&[catalogue::Diagnostic]>,
) -> String {
    let errors: Vec<serde_json::Value> = match diagnostics {
        Some(ds) => ds
            .iter()
            .map(|d| {
                serde_json::json!({"file": file, "line": d.line, "column": d.column, "field": d.field, "message": d.message})
            })
            .collect(),
        None => vec![serde_json::json!({"file": file, "message": error.to_string()})],
    };
    let n = errors.len();
    serde_json::to_string_pretty(&serde_json::json!({"errors": errors, "error_count": n})).unwrap_or_default()
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
