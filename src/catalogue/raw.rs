//! The catalogue exactly as written in YAML: no validation beyond shape.
//!
//! Every field that validation may complain about is `Spanned`, so a
//! diagnostic can point at the line and column the operator wrote.
//! Nothing outside `catalogue` sees these types.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    #[serde(default)]
    pub defaults: Defaults,
    pub targets: Option<Spanned<IndexMap<Spanned<String>, Target>>>,
    pub queries: Spanned<IndexMap<Spanned<String>, Query>>,
}

/// One entry of the optional `targets:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Target {
    pub url: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<u16>>,
}

/// The `defaults:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    pub timeout: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<String>>,
    pub ttl: Option<Spanned<String>>,
    pub max_series: Option<Spanned<u64>>,
    pub refresh_ahead: Option<Spanned<bool>>,
}

/// One entry of `queries:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Query {
    pub help: Spanned<String>,
    pub sql: Spanned<String>,
    pub timeout: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<String>>,
    pub ttl: Option<Spanned<String>>,
    pub max_series: Option<Spanned<u64>>,
    pub refresh_ahead: Option<Spanned<bool>>,
    #[serde(default)]
    pub requires: Requires,
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    pub role: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_functions: Vec<Spanned<String>>,
    pub metrics: Spanned<Vec<Metric>>,
}

/// A query's `requires:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Requires {
    pub min_version: Option<Spanned<u32>>,
    pub max_version: Option<Spanned<u32>>,
    #[serde(default)]
    pub extensions: Vec<Spanned<String>>,
    #[serde(default)]
    pub tables: Vec<Spanned<String>>,
}

/// One entry of a query's `metrics:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metric {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub help: Option<Spanned<String>>,
    pub value: Spanned<String>,
    #[serde(default)]
    pub labels: Vec<Spanned<String>>,
    #[serde(default)]
    pub const_labels: IndexMap<Spanned<String>, Spanned<String>>,
}

/// `type:` of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that can go up and down.
    Gauge,
    /// A monotonically increasing value; exposed with `_total`.
    Counter,
}
