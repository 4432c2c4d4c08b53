//! The catalogue exactly as written in YAML: no validation beyond shape.
//!
//! Every field that validation may complain about is `Spanned`, so a
//! diagnostic can point at the line and column the operator wrote.
//! Nothing outside `catalogue` sees these types. Unknown keys are not
//! refused here (serde would stop at the first): `keys` reports them all.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
pub(crate) struct File {
    #[serde(default)]
    pub defaults: Defaults,
    pub targets: Option<Spanned<IndexMap<Spanned<String>, Target>>>,
    pub queries: Spanned<IndexMap<Spanned<String>, Query>>,
    pub files: Option<Spanned<IndexMap<Spanned<String>, FileSet>>>,
}

/// One entry of the optional `files:` block.
#[derive(Debug, Deserialize)]
pub(crate) struct FileSet {
    pub help: Spanned<String>,
    pub directory: Spanned<String>,
    pub pattern: Spanned<String>,
    pub header: Option<Spanned<String>>,
    pub ttl: Option<Spanned<String>>,
    pub max_entries: Option<Spanned<u64>>,
}

/// One entry of the optional `targets:` block.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Target {
    pub url: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<u16>>,
    pub databases: Option<Spanned<Databases>>,
}

/// A target's `databases:` block: watch the server's databases.
#[derive(Debug, Deserialize)]
pub(crate) struct Databases {
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    pub refresh: Option<Spanned<String>>,
}

/// The `defaults:` block.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Defaults {
    pub timeout: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<String>>,
    pub ttl: Option<Spanned<String>>,
    pub max_series: Option<Spanned<u64>>,
    pub refresh_ahead: Option<Spanned<bool>>,
}

/// One entry of `queries:`.
#[derive(Debug, Deserialize)]
pub(crate) struct Query {
    pub help: Spanned<String>,
    pub sql: Spanned<String>,
    pub timeout: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<String>>,
    pub ttl: Option<Spanned<String>>,
    pub max_series: Option<Spanned<u64>>,
    pub over_budget: Option<Spanned<String>>,
    pub scope: Option<Spanned<String>>,
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
pub(crate) struct Requires {
    pub min_version: Option<Spanned<u32>>,
    pub max_version: Option<Spanned<u32>>,
    #[serde(default)]
    pub extensions: Vec<Spanned<String>>,
    #[serde(default)]
    pub tables: Vec<Spanned<String>>,
    #[serde(default)]
    pub libraries: Vec<Spanned<String>>,
}

/// One entry of a query's `metrics:`.
#[derive(Debug, Deserialize)]
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
