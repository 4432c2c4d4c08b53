//! The table itself: one entry per self-metric, in exposition order.

use super::{Scope, SelfMetric, labels, per_query, per_target, queries, resource};
use crate::catalogue::MetricKind::{Counter, Gauge};
use crate::db::ErrorKind;
use crate::engine::Status;
use crate::exposition::labels::{join, render_label};

/// Every self-metric, in exposition order.
pub static SELF_METRICS: &[SelfMetric] = &[
    SelfMetric {
        name: "pg_up",
        kind: Gauge,
        help: "Whether the last connection to the database succeeded (1) or not (0).",
        labels: &[],
        scope: Scope::Target,
        samples: |s, _, out| per_target(s, out, |t| Some(f64::from(u8::from(t.up)))),
    },
    SelfMetric {
        name: "runbook_exporter_role_sees_all_sessions",
        kind: Gauge,
        help: "Whether the exporter's role sees other roles' sessions in full (1: superuser or pg_read_all_stats, part of pg_monitor) or not (0: connection and lock metrics count hidden sessions as state \"hidden\"; GRANT pg_monitor TO the role).",
        labels: &[],
        scope: Scope::Target,
        samples: |s, _, out| per_target(s, out, |t| t.facts.as_ref().map(|f| f64::from(u8::from(f.sees_all_sessions)))),
    },
    SelfMetric {
        name: "runbook_exporter_query_success",
        kind: Gauge,
        help: "Whether the query's result served by this scrape is from a successful run (1) or not (0); skipped queries have no value.",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| {
            per_query(s, out, |q| match q.status {
                Status::Served { .. } => Some(1.0),
                Status::Failed(_) | Status::NotRun => Some(0.0),
                Status::Skipped(_) | Status::NotApplicable => None,
            })
        },
    },
    SelfMetric {
        name: "runbook_exporter_query_duration_seconds",
        kind: Gauge,
        help: "Wall time of the query's last finished execution.",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| per_query(s, out, |q| q.stats.last_duration.map(|d| d.as_secs_f64())),
    },
    SelfMetric {
        name: "runbook_exporter_query_series",
        kind: Gauge,
        help: "Series the query contributes to this scrape.",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| {
            per_query(s, out, |q| match &q.status {
                Status::Served { result, .. } => Some(result.series_count() as f64),
                Status::Failed(_) | Status::NotRun => Some(0.0),
                Status::Skipped(_) | Status::NotApplicable => None,
            })
        },
    },
    SelfMetric {
        name: "runbook_exporter_query_truncated_rows",
        kind: Gauge,
        help: "Rows the query's served result dropped past its max_series (over_budget: truncate keeps the first rows in the query's order); 0 when nothing was dropped.",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| {
            per_query(s, out, |q| match &q.status {
                Status::Served { result, .. } => Some(result.truncated_rows as f64),
                _ => None,
            })
        },
    },
    SelfMetric {
        name: "runbook_exporter_query_result_age_seconds",
        kind: Gauge,
        help: "Age of the result served for the query (cached results are reused up to the query's ttl).",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| {
            per_query(s, out, |q| match &q.status {
                Status::Served { age, .. } => Some(age.as_secs_f64()),
                _ => None,
            })
        },
    },
    SelfMetric {
        name: "runbook_exporter_query_executions",
        kind: Counter,
        help: "Executions of the query started against the database.",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| per_query(s, out, |q| Some(q.stats.executions as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_query_cache_hits",
        kind: Counter,
        help: "Scrapes served from the query's cached result without executing it.",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| per_query(s, out, |q| Some(q.stats.cache_hits as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_query_null_values",
        kind: Counter,
        help: "NULL value cells that gave no sample.",
        labels: &["query"],
        scope: Scope::Target,
        samples: |s, _, out| per_query(s, out, |q| Some(q.stats.null_values as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_query_errors",
        kind: Counter,
        help: "Failed executions of the query by kind of failure.",
        labels: &["query", "kind"],
        scope: Scope::Target,
        samples: |s, _, out| {
            for (t, name, q) in queries(s) {
                for kind in ErrorKind::ALL {
                    let n = q.stats.errors.get(&kind).copied().unwrap_or(0);
                    let labels = labels(t, &[("query", name), ("kind", kind.as_str())]);
                    out.push((labels, n as f64));
                }
            }
        },
    },
    SelfMetric {
        name: "runbook_exporter_query_skipped",
        kind: Gauge,
        help: "Queries skipped because the server does not meet their requirements (1 while skipped).",
        labels: &["query", "reason"],
        scope: Scope::Target,
        samples: |s, _, out| {
            for (t, name, q) in queries(s) {
                if let Status::Skipped(reason) = &q.status {
                    out.push((labels(t, &[("query", name), ("reason", reason)]), 1.0));
                }
            }
        },
    },
    SelfMetric {
        name: "runbook_exporter_pool_max_connections",
        kind: Gauge,
        help: "Most connections the exporter may hold to the database.",
        labels: &[],
        scope: Scope::Target,
        samples: |s, _, out| per_target(s, out, |t| Some(t.pool.max as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_pool_open_connections",
        kind: Gauge,
        help: "Connections the exporter holds open to the database.",
        labels: &[],
        scope: Scope::Target,
        samples: |s, _, out| per_target(s, out, |t| Some(t.pool.open as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_pool_idle_connections",
        kind: Gauge,
        help: "Open connections not in use.",
        labels: &[],
        scope: Scope::Target,
        samples: |s, _, out| per_target(s, out, |t| Some(t.pool.idle as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_pool_waiting_tasks",
        kind: Gauge,
        help: "Executions waiting for a free connection.",
        labels: &[],
        scope: Scope::Target,
        samples: |s, _, out| per_target(s, out, |t| Some(t.pool.waiting as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_probe_errors",
        kind: Counter,
        help: "Failed connection attempts (the check behind pg_up) by kind: connection, timeout, ...",
        labels: &["kind"],
        scope: Scope::Target,
        samples: |s, _, out| {
            for t in &s.targets {
                for kind in ErrorKind::PROBE {
                    let n = t.probe_errors.get(&kind).copied().unwrap_or(0);
                    out.push((labels(t.label.as_deref(), &[("kind", kind.as_str())]), n as f64));
                }
            }
        },
    },
    SelfMetric {
        name: "runbook_exporter_file_set_success",
        kind: Gauge,
        help: "Whether the last scan of the files: set succeeded (1) or not (0); the reason is in runbook_exporter_file_set_error.",
        labels: &["set"],
        scope: Scope::Exporter,
        samples: |s, _, out| {
            for f in &s.files {
                out.push((render_label("set", &f.name), f64::from(u8::from(f.outcome.is_ok()))));
            }
        },
    },
    SelfMetric {
        name: "runbook_exporter_file_set_error",
        kind: Gauge,
        help: "Why the last scan of the files: set failed (1 while it fails), e.g. a directory that does not exist or cannot be read.",
        labels: &["set", "reason"],
        scope: Scope::Exporter,
        samples: |s, _, out| {
            for f in &s.files {
                if let Err(reason) = &f.outcome {
                    out.push((join([render_label("set", &f.name).as_str(), &render_label("reason", reason)]), 1.0));
                }
            }
        },
    },
    SelfMetric {
        name: "runbook_exporter_scrape_duration_seconds",
        kind: Gauge,
        help: "Time this scrape spent collecting from the database(s).",
        labels: &[],
        scope: Scope::Exporter,
        samples: |s, _, out| out.push((String::new(), s.duration.as_secs_f64())),
    },
    SelfMetric {
        name: "runbook_exporter_build_info",
        kind: Gauge,
        help: "Build information; the value is always 1.",
        labels: &["version", "revision"],
        scope: Scope::Exporter,
        samples: |_, p, out| {
            let labels = join([render_label("version", p.version).as_str(), &render_label("revision", p.revision)]);
            out.push((labels, 1.0));
        },
    },
    SelfMetric {
        name: "runbook_exporter_config_last_reload_successful",
        kind: Gauge,
        help: "Whether the last configuration (re)load succeeded.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| out.push((String::new(), f64::from(u8::from(p.last_reload_ok)))),
    },
    SelfMetric {
        name: "runbook_exporter_config_last_reload_success_timestamp_seconds",
        kind: Gauge,
        help: "Unix time of the last successful configuration (re)load.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| out.push((String::new(), p.last_reload_success)),
    },
    SelfMetric {
        name: "runbook_exporter_http_connections_refused",
        kind: Counter,
        help: "Connections closed at once because the connection cap was reached and no idle keep-alive connection could make room.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| out.push((String::new(), p.http.connections_refused as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_http_connections_evicted",
        kind: Counter,
        help: "Idle keep-alive connections closed to make room for a new connection at the connection cap.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| out.push((String::new(), p.http.connections_evicted as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_http_connections_idle_closed",
        kind: Counter,
        help: "Connections closed because no request came for the idle timeout (between keep-alive requests, or since they connected).",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| out.push((String::new(), p.http.connections_idle_closed as f64)),
    },
    SelfMetric {
        name: "runbook_exporter_http_auth_bcrypt_verifications",
        kind: Counter,
        help: "bcrypt checks of basic-auth passwords, against a configured user's hash (hash=\"user\") or, for an unknown user name, against a dummy hash of the same cost (hash=\"dummy\").",
        labels: &["hash"],
        scope: Scope::Exporter,
        samples: |_, p, out| {
            out.push((render_label("hash", "user"), p.http.bcrypt_user as f64));
            out.push((render_label("hash", "dummy"), p.http.bcrypt_dummy as f64));
        },
    },
    SelfMetric {
        name: "process_cpu_seconds",
        kind: Counter,
        help: "Total user and system CPU time spent in seconds.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| resource(p, out, |r| r.cpu_seconds),
    },
    SelfMetric {
        name: "process_resident_memory_bytes",
        kind: Gauge,
        help: "Resident memory size in bytes.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| resource(p, out, |r| r.resident_bytes),
    },
    SelfMetric {
        name: "process_virtual_memory_bytes",
        kind: Gauge,
        help: "Virtual memory size in bytes.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| resource(p, out, |r| r.virtual_bytes),
    },
    SelfMetric {
        name: "process_open_fds",
        kind: Gauge,
        help: "Number of open file descriptors.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| resource(p, out, |r| r.open_fds),
    },
    SelfMetric {
        name: "process_max_fds",
        kind: Gauge,
        help: "Maximum number of open file descriptors.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| resource(p, out, |r| r.max_fds),
    },
    SelfMetric {
        name: "process_start_time_seconds",
        kind: Gauge,
        help: "Start time of the process since unix epoch in seconds.",
        labels: &[],
        scope: Scope::Exporter,
        samples: |_, p, out| out.push((String::new(), p.started_at)),
    },
];
