//! What one scrape produced: immutable, and all that encoding reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::files::FileSetSnapshot;
use crate::catalogue::Catalogue;
use crate::db::{ErrorKind, PoolStats, QueryResult, ServerFacts};

/// What one scrape saw for one query.
#[derive(Debug, Clone)]
pub enum Status {
    /// A result is served; `age` is how old it is, `cached` whether this scrape reused it.
    Served {
        /// The rows turned into series.
        result: Arc<QueryResult>,
        /// Time since the execution finished.
        age: Duration,
        /// Served from cache without executing.
        cached: bool,
    },
    /// The execution failed.
    Failed(ErrorKind),
    /// The query's requirements are not met on this server.
    Skipped(String),
    /// The database is down: nothing was run.
    NotRun,
    /// The query is limited to other targets.
    NotApplicable,
}

/// Counters and last-run facts of one query on one target.
#[derive(Debug, Clone, Default)]
pub struct QueryStats {
    /// Executions started.
    pub executions: u64,
    /// Scrapes served from a cached result without executing.
    pub cache_hits: u64,
    /// Failures by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// NULL value cells skipped, summed over executions.
    pub null_values: u64,
    /// Wall time of the last finished execution.
    pub last_duration: Option<Duration>,
    /// The message of the last failed execution, until one succeeds (never holds connection secrets).
    pub last_error: Option<String>,
}

/// A query's status and counters as of one scrape.
#[derive(Debug, Clone)]
pub struct QuerySnapshot {
    /// Outcome for this scrape.
    pub status: Status,
    /// Counters after this scrape.
    pub stats: QueryStats,
}

/// One database of a target as of one scrape.
#[derive(Debug, Clone)]
pub struct UnitSnapshot {
    /// The database, for a target that watches its server's databases.
    pub datname: Option<String>,
    /// Labels on its series: `target="..."` and/or `datname="..."`.
    pub label: Option<String>,
    /// One entry per catalogue query, in catalogue order (queries that do not run here are `NotApplicable`).
    pub queries: Vec<QuerySnapshot>,
}

/// One target as of one scrape.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    /// Pre-rendered `target="..."` label, if any.
    pub label: Option<String>,
    /// Whether the last connection attempt succeeded.
    pub up: bool,
    /// Server facts when up.
    pub facts: Option<Arc<ServerFacts>>,
    /// Why the connection attempt failed, when down (never holds connection secrets).
    pub down_because: Option<String>,
    /// The target's own database first, then each watched database of its server.
    pub units: Vec<UnitSnapshot>,
    /// Pool occupancy (all the target's connections).
    pub pool: PoolStats,
    /// Failed connection attempts so far, by kind.
    pub probe_errors: BTreeMap<ErrorKind, u64>,
}

/// Everything one scrape produced; encoding reads only this.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The catalogue the scrape ran with.
    pub catalogue: Arc<Catalogue>,
    /// One entry per target.
    pub targets: Vec<TargetSnapshot>,
    /// One entry per `files:` set, in catalogue order; empty for `/probe`.
    pub files: Vec<FileSetSnapshot>,
    /// Time spent collecting.
    pub duration: Duration,
}
