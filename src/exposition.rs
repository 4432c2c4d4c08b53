//! Snapshot → exposition text, in OpenMetrics 1.0 or Prometheus text 0.0.4.
//!
//! **Invariant:** this module does no I/O and cannot fail on data: every
//! label value was escaped when its row was read, HELP is escaped here per
//! format, and non-finite values are spelled `NaN`, `+Inf`, `-Inf` as both
//! formats require.
//!
//! Why not prometheus-client's encoder: its OpenMetrics encoder writes `inf`
//! and leaves HELP unescaped, and it would re-render every label set on every
//! scrape. Series arrive here with their labels rendered once per execution,
//! so a cached result costs one copy per series.

use std::collections::HashSet;
use std::fmt::Write;

use crate::catalogue::MetricKind;
use crate::db::{ErrorKind, render_label};
use crate::engine::{Snapshot, Status, TargetSnapshot};

/// Content type of OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`# EOF`-terminated).
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    PrometheusText,
}

impl Format {
    /// Picks OpenMetrics when the `Accept` header asks for it, else the classic text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    /// The `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// Process-level facts that are not part of a scrape.
#[derive(Debug, Clone)]
pub struct Process {
    /// Crate version.
    pub version: &'static str,
    /// Git revision the binary was built from.
    pub revision: &'static str,
    /// Whether the last config (re)load succeeded.
    pub last_reload_ok: bool,
    /// Unix time of the last successful (re)load.
    pub last_reload_success: f64,
}

/// Encodes a whole scrape.
pub fn encode(snapshot: &Snapshot, process: &Process, format: Format) -> String {
    let series: usize = snapshot
        .targets
        .iter()
        .flat_map(|t| &t.queries)
        .map(|q| match &q.status {
            Status::Served { result, .. } => result.series_count(),
            _ => 0,
        })
        .sum();
    let mut out = Encoder { out: String::with_capacity(4096 + series * 96), format };
    out.catalogue_families(snapshot);
    out.self_metrics(snapshot, process);
    if format == Format::OpenMetrics {
        out.out.push_str("# EOF\n");
    }
    out.out
}

struct Encoder {
    out: String,
    format: Format,
}

impl Encoder {
    fn catalogue_families(&mut self, snapshot: &Snapshot) {
        let cat = &snapshot.catalogue;
        for family in &cat.families {
            let mut header = false;
            let mut seen: Option<HashSet<&str>> = (family.sources.len() > 1).then(HashSet::new);
            for &(qi, mi) in &family.sources {
                for target in &snapshot.targets {
                    let Status::Served { result, .. } = &target.queries[qi].status else { continue };
                    for s in &result.series[mi] {
                        if let Some(seen) = &mut seen
                            && !seen.insert(&s.labels)
                        {
                            continue;
                        }
                        if !header {
                            self.header(&family.name, family.kind, &family.help);
                            header = true;
                        }
                        self.sample(&family.name, family.kind, &s.labels, s.value);
                    }
                }
            }
        }
    }

    fn self_metrics(&mut self, snap: &Snapshot, process: &Process) {
        let targets = &snap.targets;
        let names: Vec<&str> = snap.catalogue.queries.iter().map(|q| q.name.as_str()).collect();
        let gauge = MetricKind::Gauge;
        let counter = MetricKind::Counter;

        self.header("pg_up", gauge, "Whether the last connection to the database succeeded (1) or not (0).");
        for t in targets {
            self.sample("pg_up", gauge, t.label.as_deref().unwrap_or(""), f64::from(u8::from(t.up)));
        }

        self.per_query(targets, &names, "runbook_exporter_query_success", gauge,
            "Whether the query's result served by this scrape is from a successful run (1) or not (0); skipped queries have no value.",
            |q| match q.status {
                Status::Served { .. } => Some(1.0),
                Status::Failed(_) | Status::NotRun => Some(0.0),
                Status::Skipped(_) | Status::NotApplicable => None,
            });
        self.per_query(
            targets,
            &names,
            "runbook_exporter_query_duration_seconds",
            gauge,
            "Wall time of the query's last finished execution.",
            |q| q.stats.last_duration.map(|d| d.as_secs_f64()),
        );
        self.per_query(
            targets,
            &names,
            "runbook_exporter_query_series",
            gauge,
            "Series the query contributes to this scrape.",
            |q| match &q.status {
                Status::Served { result, .. } => Some(result.series_count() as f64),
                Status::Failed(_) | Status::NotRun => Some(0.0),
                Status::Skipped(_) | Status::NotApplicable => None,
            },
        );
        self.per_query(
            targets,
            &names,
            "runbook_exporter_query_result_age_seconds",
            gauge,
            "Age of the result served for the query (cached results are reused up to the query's ttl).",
            |q| match &q.status {
                Status::Served { age, .. } => Some(age.as_secs_f64()),
                _ => None,
            },
        );
        self.per_query(
            targets,
            &names,
            "runbook_exporter_query_executions",
            counter,
            "Executions of the query started against the database.",
            |q| Some(q.stats.executions as f64),
        );
        self.per_query(
            targets,
            &names,
            "runbook_exporter_query_cache_hits",
            counter,
            "Scrapes served from the query's cached result without executing it.",
            |q| Some(q.stats.cache_hits as f64),
        );
        self.per_query(
            targets,
            &names,
            "runbook_exporter_query_null_values",
            counter,
            "NULL value cells that gave no sample.",
            |q| Some(q.stats.null_values as f64),
        );

        self.header("runbook_exporter_query_errors", counter, "Failed executions of the query by kind of failure.");
        for t in targets {
            for (q, name) in t.queries.iter().zip(&names) {
                if matches!(q.status, Status::NotApplicable) {
                    continue;
                }
                for kind in ErrorKind::ALL {
                    let n = q.stats.errors.get(&kind).copied().unwrap_or(0);
                    let labels = join([
                        t.label.clone(),
                        Some(render_label("query", name)),
                        Some(render_label("kind", kind.as_str())),
                    ]);
                    self.sample("runbook_exporter_query_errors", counter, &labels, n as f64);
                }
            }
        }

        let skipped: Vec<(&TargetSnapshot, &str, &str)> = targets
            .iter()
            .flat_map(|t| t.queries.iter().zip(&names).map(move |(q, n)| (t, q, *n)))
            .filter_map(|(t, q, n)| match &q.status {
                Status::Skipped(reason) => Some((t, n, reason.as_str())),
                _ => None,
            })
            .collect();
        if !skipped.is_empty() {
            self.header(
                "runbook_exporter_query_skipped",
                gauge,
                "Queries skipped because the server does not meet their requirements (1 while skipped).",
            );
            for (t, name, reason) in skipped {
                let labels =
                    join([t.label.clone(), Some(render_label("query", name)), Some(render_label("reason", reason))]);
                self.sample("runbook_exporter_query_skipped", gauge, &labels, 1.0);
            }
        }

        type PoolGauge = (&'static str, &'static str, fn(&TargetSnapshot) -> usize);
        let pool: [PoolGauge; 4] = [
            ("runbook_exporter_pool_max_connections", "Most connections the exporter may hold to the database.", |t| {
                t.pool.0
            }),
            ("runbook_exporter_pool_open_connections", "Connections the exporter holds open to the database.", |t| {
                t.pool.1
            }),
            ("runbook_exporter_pool_idle_connections", "Open connections not in use.", |t| t.pool.2),
            ("runbook_exporter_pool_waiting_tasks", "Executions waiting for a free connection.", |t| t.pool.3),
        ];
        for (name, help, get) in pool {
            self.header(name, gauge, help);
            for t in targets {
                self.sample(name, gauge, t.label.as_deref().unwrap_or(""), get(t) as f64);
            }
        }

        self.header(
            "runbook_exporter_probe_errors",
            counter,
            "Failed connection attempts (the check behind pg_up) by kind: connection, timeout, ...",
        );
        for t in targets {
            for kind in [ErrorKind::Connection, ErrorKind::Timeout, ErrorKind::Sql] {
                let n = t.probe_errors.get(&kind).copied().unwrap_or(0);
                let labels = join([t.label.clone(), Some(render_label("kind", kind.as_str()))]);
                self.sample("runbook_exporter_probe_errors", counter, &labels, n as f64);
            }
        }
        self.header(
            "runbook_exporter_scrape_duration_seconds",
            gauge,
            "Time this scrape spent collecting from the database(s).",
        );
        self.sample("runbook_exporter_scrape_duration_seconds", gauge, "", snap.duration.as_secs_f64());
        self.header("runbook_exporter_build_info", gauge, "Build information; the value is always 1.");
        let labels =
            join([Some(render_label("version", process.version)), Some(render_label("revision", process.revision))]);
        self.sample("runbook_exporter_build_info", gauge, &labels, 1.0);
        self.header(
            "runbook_exporter_config_last_reload_successful",
            gauge,
            "Whether the last configuration (re)load succeeded.",
        );
        self.sample(
            "runbook_exporter_config_last_reload_successful",
            gauge,
            "",
            f64::from(u8::from(process.last_reload_ok)),
        );
        self.header(
            "runbook_exporter_config_last_reload_success_timestamp_seconds",
            gauge,
            "Unix time of the last successful configuration (re)load.",
        );
        self.sample(
            "runbook_exporter_config_last_reload_success_timestamp_seconds",
            gauge,
            "",
            process.last_reload_success,
        );
    }

    /// One family with a series per (target, query) for which `value` gives a number.
    fn per_query(
        &mut self,
        targets: &[TargetSnapshot],
        names: &[&str],
        name: &str,
        kind: MetricKind,
        help: &str,
        value: impl Fn(&crate::engine::QuerySnapshot) -> Option<f64>,
    ) {
        let mut header = false;
        for t in targets {
            for (q, qname) in t.queries.iter().zip(names) {
                if matches!(q.status, Status::NotApplicable) {
                    continue;
                }
                let Some(v) = value(q) else { continue };
                if !header {
                    self.header(name, kind, help);
                    header = true;
                }
                let labels = join([t.label.clone(), Some(render_label("query", qname))]);
                self.sample(name, kind, &labels, v);
            }
        }
    }

    fn header(&mut self, name: &str, kind: MetricKind, help: &str) {
        let suffix = if kind == MetricKind::Counter && self.format == Format::PrometheusText { "_total" } else { "" };
        let out = &mut self.out;
        let _ = write!(out, "# HELP {name}{suffix} ");
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '"' if self.format == Format::OpenMetrics => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        let _ = writeln!(out, "\n# TYPE {name}{suffix} {kind}");
    }

    fn sample(&mut self, name: &str, kind: MetricKind, labels: &str, value: f64) {
        let out = &mut self.out;
        out.push_str(name);
        if kind == MetricKind::Counter {
            out.push_str("_total");
        }
        if !labels.is_empty() {
            out.push('{');
            out.push_str(labels);
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
        out.push('\n');
    }
}

/// Writes a sample value the way both text formats accept it.
pub fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

fn join<const N: usize>(parts: [Option<String>; N]) -> String {
    parts.into_iter().flatten().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests;
