//! The validated catalogue: what every other module reads.
//!
//! Values of these types only come out of [`super::validate`], so a
//! `Catalogue` that exists has legal names, labels and durations.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::files::FileSet;
use super::requires::Requires;

/// A validated catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// The file it was loaded from, for messages.
    pub source: String,
    /// Databases named in the `targets:` block; empty means one database from `DATABASE_URL`.
    pub targets: Vec<TargetSpec>,
    /// Queries in file order.
    pub queries: Vec<Query>,
    /// Metric families in order of first appearance; a family may be fed by several queries.
    pub families: Vec<Family>,
    /// Sets of files watched next to the database (`files:`), in file order.
    pub files: Vec<FileSet>,
}

impl Catalogue {
    /// The longest `timeout` of any query, if there are queries.
    pub fn longest_timeout(&self) -> Option<Duration> {
        self.queries.iter().map(|q| q.timeout).max()
    }

    /// What the probe must look up for the `requires:` of every query.
    pub fn needs(&self) -> Needs {
        let all = |of: fn(&Requires) -> &Vec<String>| {
            let mut names: Vec<String> = self.queries.iter().flat_map(|q| of(&q.requires).iter().cloned()).collect();
            names.sort();
            names.dedup();
            names
        };
        Needs { tables: all(|r| &r.tables), libraries: all(|r| &r.libraries) }
    }
}

/// Names the probe looks up for `requires:`, sorted, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Tables named in some `requires.tables`.
    pub tables: Vec<String>,
    /// Libraries named in some `requires.libraries`.
    pub libraries: Vec<String>,
}

/// A database named in the `targets:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Name, used in the `target` label and in `/probe?target=`.
    pub name: String,
    /// Connection URL; `None` falls back to `DATABASE_URL`.
    pub url: Option<String>,
    /// File holding the password, used when the URL has none.
    pub password_file: Option<PathBuf>,
    /// Pool size for this target; `None` uses the command-line default. With `databases`, the
    /// bound on every connection to the server.
    pub max_connections: Option<usize>,
    /// Watch the server's databases, not just the one in the URL.
    pub databases: Option<DatabaseDiscovery>,
}

/// A target's `databases:` block: which of the server's databases to watch, found again periodically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseDiscovery {
    /// Globs a database name must match (at least one); `*` when none were given.
    pub include: Vec<String>,
    /// Globs that leave a database out.
    pub exclude: Vec<String>,
    /// How often the list of databases is read again.
    pub refresh: std::time::Duration,
}

impl DatabaseDiscovery {
    /// Whether the database called `datname` is watched.
    pub fn watches(&self, datname: &str) -> bool {
        self.include.iter().any(|g| super::names::glob_match(g, datname))
            && !self.exclude.iter().any(|g| super::names::glob_match(g, datname))
    }
}

/// Which servers a query is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Only a server that is not in recovery.
    Primary,
    /// Only a standby.
    Replica,
}

/// One validated query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Unique name, used as the `query` label of self-metrics.
    pub name: String,
    /// What it measures, with the runbook section.
    pub help: String,
    /// The single SELECT statement.
    pub sql: String,
    /// Server-side `statement_timeout`, also the client-side bound (plus a margin).
    pub timeout: Duration,
    /// Server-side `lock_timeout`.
    pub lock_timeout: Duration,
    /// How long a successful result may be served again; zero means every scrape.
    pub ttl: Duration,
    /// Series budget for one execution.
    pub max_series: usize,
    /// What happens past `max_series`.
    pub over_budget: OverBudget,
    /// Whether the query is about the whole server or about the database it runs in.
    pub scope: Scope,
    /// Refresh a cached result in the background shortly before it expires, and serve the
    /// last good result (up to twice its ttl old) while the refresh runs, so no scrape waits.
    pub refresh_ahead: bool,
    /// What the server must offer for the query to run.
    pub requires: Requires,
    /// Targets the query runs on; empty means every target.
    pub targets: Vec<String>,
    /// Server role the query is meant for, if any.
    pub role: Option<Role>,
    /// What to make of each row.
    pub metrics: Vec<Metric>,
}

impl Query {
    /// Whether the query runs on the target called `target` (a `targets:` list limits it).
    pub fn runs_on(&self, target: &str) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| t == target)
    }
}

/// What a query does when its rows would make more than `max_series` series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverBudget {
    /// The execution fails (kind `cardinality`) and the query loses its series: for queries where a
    /// partial answer would mislead.
    #[default]
    Fail,
    /// The rows past the budget are dropped and counted; the query's own `ORDER BY` decides which
    /// rows are kept (e.g. the largest tables).
    Truncate,
}

/// What a query is about; decides where it runs when a target watches several databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// The database it runs in (tables, indexes, application data): run in each watched database.
    #[default]
    Database,
    /// The whole server (activity, settings, replication, pg_database): run once per server.
    Server,
}

/// How one metric is read from a query's rows.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Index into [`Catalogue::families`].
    pub family: usize,
    /// Column holding the sample value.
    pub value_column: String,
    /// Columns that become labels, in order; the label name is the column name.
    pub label_columns: Vec<String>,
    /// Constant labels appended after the column labels.
    pub const_labels: Vec<(String, String)>,
}

/// A metric family as exposed: one HELP/TYPE header and the series of all its sources.
#[derive(Debug, Clone)]
pub struct Family {
    /// Name without the `_total` suffix of counters.
    pub name: String,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// HELP text, whitespace collapsed to single spaces; ends with a note on caching when a source has a ttl.
    pub help: String,
    /// Label names, sorted; every source has this same set.
    pub label_names: Vec<String>,
    /// Every metric feeding this family.
    pub sources: Vec<Source>,
}

/// Where a family's series come from: metric `metric` of query `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Index into [`Catalogue::queries`].
    pub query: usize,
    /// Index into that query's [`Query::metrics`].
    pub metric: usize,
}

/// `type:` of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that can go up and down.
    Gauge,
    /// A monotonically increasing value; exposed with `_total`.
    Counter,
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
        })
    }
}
