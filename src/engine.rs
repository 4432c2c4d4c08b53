//! The scrape engine: decides what runs, shares executions between concurrent
//! scrapes, caches results for their TTL and bounds every wait by a deadline.
//!
//! A scrape produces an immutable [`Snapshot`]; encoding it is someone else's
//! job and cannot fail. **Invariants:** at most one execution of a query is in
//! flight at any time (single-flight); executions run in spawned tasks, so a
//! scraper that hangs up never cancels work others wait on; a failed query
//! affects only its own metrics; series exist only if their row is in the
//! result being served (no stale series).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::timeout_at;

use crate::catalogue::{Catalogue, Requires, Role};
use crate::db::{self, ErrorKind, QueryError, QueryResult, ServerFacts};

/// How long a probe result (and so `pg_up`) is reused by concurrent or rapid scrapes.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);

type Outcome = Result<Arc<QueryResult>, QueryError>;
type Flight = Shared<BoxFuture<'static, Outcome>>;
type ProbeOutcome = Result<Arc<ServerFacts>, QueryError>;
type ProbeFlight = Shared<BoxFuture<'static, ProbeOutcome>>;

/// One database the exporter watches: its pool and the state of each catalogue query on it.
pub struct Target {
    /// Name used in the `target` label when there are several.
    pub name: String,
    /// The connection settings with the password masked.
    pub masked_dsn: String,
    /// Pre-rendered `target="name"` label, or `None` with a single unnamed target.
    pub label: Option<String>,
    pool: Pool,
    catalogue: Arc<Catalogue>,
    tables: Vec<String>,
    probe: Arc<Mutex<ProbeSlot>>,
    queries: Vec<Arc<QueryState>>,
}

#[derive(Default)]
struct ProbeSlot {
    last: Option<(Instant, ProbeOutcome)>,
    inflight: Option<ProbeFlight>,
    /// Failed probes (connection attempts) by kind.
    errors: BTreeMap<ErrorKind, u64>,
}

/// Per-query state that outlives a scrape.
#[derive(Default)]
struct QueryState {
    slot: Mutex<Slot>,
    stats: Mutex<QueryStats>,
}

#[derive(Default)]
struct Slot {
    last_good: Option<(Instant, Arc<QueryResult>)>,
    inflight: Option<Flight>,
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
}

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

/// A query's status and counters as of one scrape.
#[derive(Debug, Clone)]
pub struct QuerySnapshot {
    /// Outcome for this scrape.
    pub status: Status,
    /// Counters after this scrape.
    pub stats: QueryStats,
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
    /// One entry per catalogue query, in catalogue order.
    pub queries: Vec<QuerySnapshot>,
    /// Pool occupancy: (max, open, idle, waiting).
    pub pool: (usize, usize, usize, usize),
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
    /// Time spent collecting.
    pub duration: Duration,
}

impl Target {
    /// Creates the state for `catalogue` on `pool`; no connection is opened yet.
    pub fn new(
        name: String,
        label: Option<String>,
        masked_dsn: String,
        pool: Pool,
        catalogue: Arc<Catalogue>,
    ) -> Target {
        let mut tables: Vec<String> =
            catalogue.queries.iter().flat_map(|q| q.requires.tables.iter().cloned()).collect();
        tables.sort();
        tables.dedup();
        let queries = catalogue.queries.iter().map(|_| Arc::default()).collect();
        Target { name, masked_dsn, label, pool, catalogue, tables, probe: Arc::default(), queries }
    }

    /// Collects this target, waiting no later than `deadline`.
    pub async fn collect(&self, deadline: tokio::time::Instant) -> TargetSnapshot {
        let facts = match timeout_at(deadline, self.probe()).await {
            Ok(Ok(facts)) => Some(facts),
            Ok(Err(_)) | Err(_) => None,
        };
        let mut pending = Vec::with_capacity(self.queries.len());
        for (qi, state) in self.queries.iter().enumerate() {
            let query = &self.catalogue.queries[qi];
            let plan = match &facts {
                _ if !query.targets.is_empty() && !query.targets.contains(&self.name) => {
                    Plan::Ready(Status::NotApplicable)
                }
                None => Plan::Ready(serve_cached(state, query.ttl).unwrap_or(Status::NotRun)),
                Some(f) => match skip_reason(query, f) {
                    Some(reason) => Plan::Ready(Status::Skipped(reason)),
                    None => self.due(qi, state),
                },
            };
            pending.push(plan);
        }
        let waits = pending.into_iter().enumerate().map(|(qi, plan)| async move {
            match plan {
                Plan::Ready(status) => status,
                Plan::Wait(flight) => match timeout_at(deadline, flight).await {
                    Ok(Ok(result)) => Status::Served { result, age: Duration::ZERO, cached: false },
                    Ok(Err(e)) => Status::Failed(e.kind),
                    Err(_) => {
                        *lock(&self.queries[qi].stats).errors.entry(ErrorKind::Deadline).or_default() += 1;
                        Status::Failed(ErrorKind::Deadline)
                    }
                },
            }
        });
        let statuses = futures::future::join_all(waits).await;
        let queries = statuses
            .into_iter()
            .zip(&self.queries)
            .map(|(status, state)| QuerySnapshot { status, stats: lock(&state.stats).clone() })
            .collect();
        let s = self.pool.status();
        TargetSnapshot {
            label: self.label.clone(),
            up: facts.is_some(),
            facts,
            queries,
            pool: (s.max_size, s.size, s.available, s.waiting),
            probe_errors: self.probe_errors(),
        }
    }

    /// The pool, so a reload with unchanged settings can keep it.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The server's facts from a (shared) probe.
    pub async fn facts(&self) -> Result<Arc<ServerFacts>, QueryError> {
        self.probe().await
    }

    /// Whether the database answers (shared with scrapes, reused for [`PROBE_REUSE`]), waiting no later than `deadline`.
    pub async fn is_up(&self, deadline: tokio::time::Instant) -> bool {
        matches!(timeout_at(deadline, self.probe()).await, Ok(Ok(_)))
    }

    /// The probe result, shared by concurrent scrapes and reused for [`PROBE_REUSE`].
    async fn probe(&self) -> ProbeOutcome {
        let flight = {
            let mut slot = lock(&self.probe);
            if let Some((at, outcome)) = &slot.last
                && at.elapsed() < PROBE_REUSE
            {
                return outcome.clone();
            }
            match &slot.inflight {
                Some(f) => f.clone(),
                None => {
                    let (pool, tables, probe, name) =
                        (self.pool.clone(), self.tables.clone(), self.probe.clone(), self.name.clone());
                    // The task records and logs its own outcome: a scrape that gave up at its
                    // deadline must not lose why the database is unreachable.
                    let task = tokio::spawn(async move {
                        let outcome = db::probe(&pool, &tables).await.map(Arc::new);
                        let mut slot = lock(&probe);
                        let was_up = matches!(slot.last, Some((_, Ok(_))) | None);
                        match &outcome {
                            Err(e) => {
                                *slot.errors.entry(e.kind).or_default() += 1;
                                if was_up {
                                    tracing::warn!(target_name = %name, kind = e.kind.as_str(), error = %e.message, "database unreachable");
                                }
                            }
                            Ok(_) if !was_up => tracing::info!(target_name = %name, "database reachable again"),
                            Ok(_) => {}
                        }
                        slot.inflight = None;
                        slot.last = Some((Instant::now(), outcome.clone()));
                        outcome
                    });
                    let f = async move {
                        task.await
                            .unwrap_or_else(|e| Err(QueryError { kind: ErrorKind::Connection, message: e.to_string() }))
                    }
                    .boxed()
                    .shared();
                    slot.inflight = Some(f.clone());
                    f
                }
            }
        };
        flight.await
    }

    /// Failed connection attempts so far, by kind.
    pub fn probe_errors(&self) -> BTreeMap<ErrorKind, u64> {
        lock(&self.probe).errors.clone()
    }

    /// Serves the cached result if fresh, joins the execution in flight, or starts one.
    ///
    /// With `refresh_ahead`, a result close to expiry (or expired, up to twice its ttl)
    /// is served while one background execution refreshes it.
    fn due(&self, qi: usize, state: &Arc<QueryState>) -> Plan {
        let query = &self.catalogue.queries[qi];
        let ttl = query.ttl;
        let mut slot = lock(&state.slot);
        if let Some((at, result)) = slot.last_good.clone() {
            let age = at.elapsed();
            let usable = age < ttl || (query.refresh_ahead && age < ttl * 2);
            if usable {
                if query.refresh_ahead && age >= refresh_point(ttl) && slot.inflight.is_none() {
                    let flight = self.start(qi, state.clone());
                    slot.inflight = Some(flight);
                }
                lock(&state.stats).cache_hits += 1;
                return Plan::Ready(Status::Served { result, age, cached: true });
            }
        }
        if let Some(f) = &slot.inflight {
            return Plan::Wait(f.clone());
        }
        let flight = self.start(qi, state.clone());
        slot.inflight = Some(flight.clone());
        Plan::Wait(flight)
    }

    fn start(&self, qi: usize, state: Arc<QueryState>) -> Flight {
        let pool = self.pool.clone();
        let catalogue = self.catalogue.clone();
        let label = self.label.clone();
        let target = self.name.clone();
        lock(&state.stats).executions += 1;
        let task = tokio::spawn(async move {
            let query = &catalogue.queries[qi];
            let (outcome, took) = db::timed(db::execute(&pool, &catalogue, query, label.as_deref())).await;
            let outcome = outcome.map(Arc::new);
            let mut slot = lock(&state.slot);
            let mut stats = lock(&state.stats);
            stats.last_duration = Some(took);
            match &outcome {
                Ok(result) => {
                    stats.null_values += result.null_values;
                    slot.last_good = Some((Instant::now(), result.clone()));
                }
                Err(e) => {
                    *stats.errors.entry(e.kind).or_default() += 1;
                    tracing::warn!(target_name = %target, query = %query.name, kind = e.kind.as_str(), error = %e.message, "query failed");
                }
            }
            slot.inflight = None;
            outcome
        });
        async move { task.await.unwrap_or_else(|e| Err(QueryError { kind: ErrorKind::Connection, message: e.to_string() })) }
            .boxed()
            .shared()
    }
}

enum Plan {
    Ready(Status),
    Wait(Flight),
}

/// Age at which a refresh-ahead query starts its background refresh: a tenth of the ttl
/// (at most 5 s) before it expires.
pub fn refresh_point(ttl: Duration) -> Duration {
    ttl.saturating_sub((ttl / 10).min(Duration::from_secs(5)))
}

/// A cached result still inside its TTL, served while the database is unreachable.
fn serve_cached(state: &QueryState, ttl: Duration) -> Option<Status> {
    let slot = lock(&state.slot);
    let (at, result) = slot.last_good.as_ref()?;
    let age = at.elapsed();
    (age < ttl).then(|| Status::Served { result: result.clone(), age, cached: true })
}

/// Why `requires` is not met by `facts`, or `None` when the query may run.
pub fn unmet(requires: &Requires, facts: &ServerFacts) -> Option<String> {
    if let Some(min) = requires.min_version
        && facts.major_version < min
    {
        return Some(format!("server version {} < {min}", facts.major_version));
    }
    if let Some(max) = requires.max_version
        && facts.major_version > max
    {
        return Some(format!("server version {} > {max}", facts.major_version));
    }
    for e in &requires.extensions {
        match facts.extensions.get(&e.name) {
            None => return Some(format!("extension {} not installed", e.name)),
            Some(v) if !e.accepts(v) => return Some(format!("extension {} {v} installed, {e} needed", e.name)),
            Some(_) => {}
        }
    }
    if let Some(t) = requires.tables.iter().find(|t| !facts.tables.contains(*t)) {
        return Some(format!("table {t} not found"));
    }
    if let Some(t) = requires.tables.iter().find(|t| !facts.readable_tables.contains(*t)) {
        return Some(format!("no SELECT privilege on table {t}"));
    }
    None
}

/// Why `query` does not run on a server with `facts`, or `None` when it does.
pub fn skip_reason(query: &crate::catalogue::Query, facts: &ServerFacts) -> Option<String> {
    unmet(&query.requires, facts).or_else(|| wrong_role(query.role, facts))
}

/// Why a query limited to one role does not run on this server.
fn wrong_role(role: Option<Role>, facts: &ServerFacts) -> Option<String> {
    match role? {
        Role::Primary if facts.in_recovery => Some("server is a replica".to_owned()),
        Role::Replica if !facts.in_recovery => Some("server is a primary".to_owned()),
        _ => None,
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Collects every target concurrently; one slow target never delays the others past `deadline`.
pub async fn scrape(catalogue: &Arc<Catalogue>, targets: &[Arc<Target>], deadline: tokio::time::Instant) -> Snapshot {
    let start = Instant::now();
    let snapshots = futures::future::join_all(targets.iter().map(|t| t.collect(deadline))).await;
    Snapshot { catalogue: catalogue.clone(), targets: snapshots, duration: start.elapsed() }
}
