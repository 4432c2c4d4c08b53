//! Snapshot → exposition text, in OpenMetrics 1.0 or Prometheus text 0.0.4.
//!
//! Why not prometheus-client's encoder: its OpenMetrics encoder writes `inf`
//! and leaves HELP unescaped, and it would re-render every label set on every
//! scrape. Series arrive here with their labels rendered once per execution,
//! so a cached result costs one copy per series.

use std::collections::HashSet;
use std::fmt::Write;

use super::format::Format;
use super::self_metrics::{Process, SELF_METRICS, Samples, Scope};
use crate::catalogue::{FileMetric, MetricKind};
use crate::engine::{Snapshot, Status};

/// Which response is being encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/metrics`: everything, including the exporter's own build, reload and process metrics.
    Metrics,
    /// `/probe`: what belongs to the probed target only (its series and per-target self-metrics).
    Probe,
}

/// Encodes a whole scrape: the catalogue's families and file sets, then the self-metrics `endpoint` carries.
pub fn encode(snapshot: &Snapshot, process: &Process, format: Format, endpoint: Endpoint) -> String {
    let series: usize = snapshot
        .targets
        .iter()
        .flat_map(|t| &t.units)
        .flat_map(|u| &u.queries)
        .map(|q| match &q.status {
            Status::Served { result, .. } => result.series_count(),
            _ => 0,
        })
        .sum();
    let mut out = Encoder { out: String::with_capacity(4096 + series * 96), format };
    out.catalogue_families(snapshot);
    out.file_sets(snapshot);
    let scopes: &[Scope] = match endpoint {
        Endpoint::Metrics => &[Scope::Target, Scope::Exporter],
        Endpoint::Probe => &[Scope::Target],
    };
    out.self_metrics(snapshot, process, scopes);
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
            // Several queries may feed one family (one per server version, say); a label set
            // two of them produce is shown once.
            let mut seen: Option<HashSet<&str>> = (family.sources.len() > 1).then(HashSet::new);
            for source in &family.sources {
                for unit in snapshot.targets.iter().flat_map(|t| &t.units) {
                    let Status::Served { result, .. } = &unit.queries[source.query].status else { continue };
                    for s in &result.series[source.metric] {
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

    fn file_sets(&mut self, snapshot: &Snapshot) {
        for (set, seen) in snapshot.catalogue.files.iter().zip(&snapshot.files) {
            let Ok(scan) = &seen.outcome else { continue };
            for metric in FileMetric::ALL {
                let value = match metric {
                    FileMetric::Files => Some(scan.files as f64),
                    FileMetric::NewestTimestamp => scan.newest.map(|f| f.modified),
                    FileMetric::NewestSize => scan.newest.map(|f| f.size as f64),
                    FileMetric::PreviousSize => scan.previous.map(|f| f.size as f64),
                    FileMetric::NewestHeaderMatch => scan.header_match.map(|m| f64::from(u8::from(m))),
                };
                if let Some(value) = value {
                    let name = set.metric_name(metric);
                    // Every file-set metric is a gauge.
                    self.header(&name, MetricKind::Gauge, &set.metric_help(metric));
                    self.sample(&name, MetricKind::Gauge, "", value);
                }
            }
        }
    }

    fn self_metrics(&mut self, snapshot: &Snapshot, process: &Process, scopes: &[Scope]) {
        let mut samples = Samples::new();
        for m in SELF_METRICS.iter().filter(|m| scopes.contains(&m.scope)) {
            samples.clear();
            (m.samples)(snapshot, process, &mut samples);
            if samples.is_empty() {
                continue;
            }
            self.header(m.name, m.kind, m.help);
            for (labels, value) in &samples {
                self.sample(m.name, m.kind, labels, *value);
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
