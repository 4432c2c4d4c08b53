//! Reading what the exporter serves: [`Metrics`], the samples of one exposition (sample lines are read by
//! [`openmetrics::parse_sample`], the same reader the strict grammar checker uses), and promtool's verdict.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

use super::openmetrics::{self, Dialect};
use super::tools;

/// Samples of one exposition in the classic text format: name, labels, value.
#[derive(Debug, Default)]
pub struct Metrics {
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let s =
                openmetrics::parse_sample(line, Dialect::Text004).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
            let value = s.number();
            samples.push((s.name, s.labels.into_iter().collect(), value));
        }
        Metrics { samples }
    }

    /// Values of `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| *v)
            .collect()
    }

    /// The single value of `name` with `labels`; panics if there is not exactly one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(found.len(), 1, "expected one {name}{labels:?}, found {found:?}");
        found[0]
    }

    /// The first value of `name` with `labels`, or NaN when there is none (for reporting, never for asserting
    /// presence).
    pub fn value_or_nan(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).first().copied().unwrap_or(f64::NAN)
    }

    /// The sum of every value of `name` with `labels` (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().sum()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

/// Checks exposition text with `promtool check metrics` (the classic format); returns promtool's complaints.
pub fn promtool_check(text: &str) -> String {
    let mut child = tools::promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool did not start");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.code().is_some(), "promtool crashed");
    s
}
