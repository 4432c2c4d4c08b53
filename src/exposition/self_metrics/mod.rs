//! The exporter's own metrics, as one table.
//!
//! [`SELF_METRICS`] drives the encoder (each entry says how to read its
//! samples off a [`Snapshot`]), the README's "Exporter metrics" table
//! ([`reference_table`], drift-tested) and the alert lint's list of names
//! the exporter exposes. A new self-metric is one new entry here.

use super::labels::push_label;
use crate::catalogue::MetricKind;

mod table;

use crate::engine::{QuerySnapshot, Snapshot, Status, TargetSnapshot};
use crate::http::stats::HttpCounts;
use crate::procfs::Resources;
pub use table::SELF_METRICS;

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
    /// Unix time the process started.
    pub started_at: f64,
    /// Resource use, read just before encoding `/metrics`; `None` where `/proc` cannot be read.
    pub resources: Option<Resources>,
    /// The HTTP layer's counters.
    pub http: HttpCounts,
}

/// Which responses carry a self-metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// About one target: one series per target (with a `target` label when the catalogue names targets).
    Target,
    /// About the exporter process or the whole scrape.
    Exporter,
}

/// Samples of one family: (rendered labels, value).
pub type Samples = Vec<(String, f64)>;

/// One of the exporter's own metrics.
pub struct SelfMetric {
    /// Name, without `_total` for counters.
    pub name: &'static str,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// HELP text.
    pub help: &'static str,
    /// Label names besides `target`.
    pub labels: &'static [&'static str],
    /// Which responses carry it.
    pub scope: Scope,
    /// Reads its samples off a scrape.
    pub samples: fn(&Snapshot, &Process, &mut Samples),
}

/// The README's table of self-metrics, generated from [`SELF_METRICS`].
pub fn reference_table() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for m in SELF_METRICS {
        let suffix = if m.kind == MetricKind::Counter { "_total" } else { "" };
        let mut labels: Vec<String> = m.labels.iter().map(|l| format!("`{l}`")).collect();
        if m.scope == Scope::Target {
            labels.push("(`target`)".to_owned());
        }
        out.push_str(&format!("| `{}{suffix}` | {} | {} | {} |\n", m.name, m.kind, labels.join(" "), m.help));
    }
    out
}

/// The names a scrape exposes for the self-metrics, as Prometheus sees them (`_total` on counters).
pub fn exposed_names() -> Vec<String> {
    SELF_METRICS
        .iter()
        .map(|m| format!("{}{}", m.name, if m.kind == MetricKind::Counter { "_total" } else { "" }))
        .collect()
}

/// A target's label (if any) followed by `pairs`.
fn labels(prefix: Option<&str>, pairs: &[(&str, &str)]) -> String {
    // Sized once: a scrape renders a few of these per query, and growing each string was a fifth of a scrape's
    // CPU under concurrent scrapers.
    let prefix = prefix.unwrap_or_default();
    let size = prefix.len() + pairs.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>();
    let mut out = String::with_capacity(size);
    out.push_str(prefix);
    for (k, v) in pairs {
        push_label(&mut out, k, v);
    }
    out
}

/// One sample per target where `value` gives one.
fn per_target(s: &Snapshot, out: &mut Samples, value: impl Fn(&TargetSnapshot) -> Option<f64>) {
    for t in &s.targets {
        if let Some(v) = value(t) {
            out.push((t.label.clone().unwrap_or_default(), v));
        }
    }
}

/// Every (labels of its target and database, query name, query) of the scrape, without queries
/// that do not run there (limited to other targets, or of the other scope).
fn queries(s: &Snapshot) -> impl Iterator<Item = (Option<&str>, &str, &QuerySnapshot)> {
    s.targets.iter().flat_map(|t| &t.units).flat_map(move |u| {
        u.queries
            .iter()
            .zip(&s.catalogue.queries)
            .filter(|(q, _)| !matches!(q.status, Status::NotApplicable))
            .map(move |(q, query)| (u.label.as_deref(), query.name.as_str(), q))
    })
}

/// One sample per (target, query) where `value` gives one.
fn per_query(s: &Snapshot, out: &mut Samples, value: impl Fn(&QuerySnapshot) -> Option<f64>) {
    for (t, name, q) in queries(s) {
        if let Some(v) = value(q) {
            out.push((labels(t, &[("query", name)]), v));
        }
    }
}

/// One unlabelled sample from the process's resource use, when it could be read.
fn resource(p: &Process, out: &mut Samples, value: fn(&Resources) -> f64) {
    if let Some(r) = &p.resources {
        out.push((String::new(), value(r)));
    }
}
