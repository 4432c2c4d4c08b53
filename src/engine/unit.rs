//! One database connection context: a pool, the shared probe, and per query
//! the cached result and the execution in flight. A target is one unit (its
//! database) plus, when it watches its server's databases, one unit each.
//!
//! **Invariants:** at most one execution of a query is in flight at any time
//! (single-flight); executions run in spawned tasks, so a scraper that hangs
//! up never cancels work others wait on; a failed query affects only its own
//! metrics and is counted and logged once per execution, not per scrape.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::timeout_at;

use super::lock;
use super::skip::skip_reason;
use super::snapshot::{QuerySnapshot, QueryStats, Status, UnitSnapshot};
use crate::catalogue::{Catalogue, Needs};
use crate::db::{self, ErrorKind, Pool, QueryError, QueryResult, ServerFacts};
use crate::defaults::PROBE_REUSE;

type Outcome = Result<Arc<QueryResult>, QueryError>;
type Flight = Shared<BoxFuture<'static, Outcome>>;
type ProbeOutcome = Result<Arc<ServerFacts>, QueryError>;
type ProbeFlight = Shared<BoxFuture<'static, ProbeOutcome>>;

/// Something an execution keeps until it ends (a connection budget's permit, say).
pub(super) type Hold = Option<Arc<dyn Any + Send + Sync>>;

/// One database connection context and the state of each catalogue query on it.
pub struct Unit {
    /// The target it belongs to, for logs.
    target: String,
    /// The database, for a unit of a target that watches its server's databases.
    pub datname: Option<String>,
    /// Labels appended to every series: `target="..."` and/or `datname="..."`; `None` for neither.
    pub label: Option<String>,
    pool: Pool,
    catalogue: Arc<Catalogue>,
    needs: Needs,
    /// Per catalogue query: whether it runs on this unit.
    applies: Vec<bool>,
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

impl Unit {
    /// The state for the queries of `catalogue` that `applies` selects, on `pool`; no connection is opened yet.
    pub(super) fn new(
        target: String,
        datname: Option<String>,
        label: Option<String>,
        pool: Pool,
        catalogue: Arc<Catalogue>,
        applies: Vec<bool>,
    ) -> Unit {
        let needs = catalogue.needs();
        let queries = catalogue.queries.iter().map(|_| Arc::default()).collect();
        Unit { target, datname, label, pool, catalogue, needs, applies, probe: Arc::default(), queries }
    }

    /// Collects this unit, waiting no later than `deadline`: its snapshot, and the server's facts or
    /// why it is unreachable. Executions it starts keep `hold` until they end.
    pub(super) async fn collect(
        &self,
        deadline: tokio::time::Instant,
        hold: Hold,
    ) -> (UnitSnapshot, Result<Arc<ServerFacts>, String>) {
        let facts = self.check_holding(deadline, &hold).await;
        let mut plans: Vec<Option<Plan>> = (0..self.queries.len()).map(|_| None).collect();
        // The costliest queries start first, so the slowest one does not queue behind the others for
        // the pool and the scrape takes max(slowest, all ÷ pool size), not their sum.
        for qi in self.by_expected_cost() {
            let (query, state) = (&self.catalogue.queries[qi], &self.queries[qi]);
            plans[qi] = Some(match &facts {
                _ if !self.applies[qi] => Plan::Ready(Status::NotApplicable),
                Err(_) => Plan::Ready(serve_cached(state, query.ttl).unwrap_or(Status::NotRun)),
                Ok(f) => match skip_reason(query, f) {
                    Some(reason) => Plan::Ready(Status::Skipped(reason)),
                    None => self.due(qi, state, &hold),
                },
            });
        }
        let waits = plans.into_iter().enumerate().map(|(qi, plan)| async move {
            match plan {
                None | Some(Plan::Ready(Status::NotApplicable)) => Status::NotApplicable,
                Some(Plan::Ready(status)) => status,
                Some(Plan::Wait(flight)) => match timeout_at(deadline, flight).await {
                    Ok(Ok(result)) => Status::Served { result, age: Duration::ZERO, cached: false },
                    Ok(Err(e)) => Status::Failed(e.kind),
                    Err(_) => {
                        let mut stats = lock(&self.queries[qi].stats);
                        *stats.errors.entry(ErrorKind::Deadline).or_default() += 1;
                        stats.last_error =
                            Some("no result by the scrape's deadline (the execution goes on)".to_owned());
                        Status::Failed(ErrorKind::Deadline)
                    }
                },
            }
        });
        let statuses = futures::future::join_all(waits).await;
        (self.snapshot(statuses), facts)
    }

    /// This unit's snapshot when it could not run at all by the deadline (no connection budget
    /// left): fresh cached results are served, the rest fail with `deadline`.
    pub(super) fn unavailable(&self) -> UnitSnapshot {
        let statuses = self
            .queries
            .iter()
            .enumerate()
            .map(|(qi, state)| {
                if !self.applies[qi] {
                    return Status::NotApplicable;
                }
                serve_cached(state, self.catalogue.queries[qi].ttl).unwrap_or_else(|| {
                    *lock(&state.stats).errors.entry(ErrorKind::Deadline).or_default() += 1;
                    Status::Failed(ErrorKind::Deadline)
                })
            })
            .collect();
        self.snapshot(statuses)
    }

    fn snapshot(&self, statuses: Vec<Status>) -> UnitSnapshot {
        let queries = statuses
            .into_iter()
            .zip(&self.queries)
            .map(|(status, state)| QuerySnapshot { status, stats: lock(&state.stats).clone() })
            .collect();
        UnitSnapshot { datname: self.datname.clone(), label: self.label.clone(), queries }
    }

    /// Query indexes, costliest first: by the last execution's duration (never run counts as
    /// costliest), then by ttl and timeout (a cached query is usually an expensive one).
    fn by_expected_cost(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.queries.len()).collect();
        // Each key is read once: executions of concurrent scrapes update `last_duration` during the sort, and a
        // key that changes under the sort breaks its total order (the standard sort then panics).
        order.sort_by_cached_key(|&qi| {
            let q = &self.catalogue.queries[qi];
            let last = lock(&self.queries[qi].stats).last_duration.unwrap_or(Duration::MAX);
            (Reverse(last), Reverse(q.ttl), Reverse(q.timeout), qi)
        });
        order
    }

    /// Opens up to the pool's size of connections, so the next scrape does not wait for them; a pool that
    /// holds its size already (kept over a reload) is left alone.
    pub async fn warm(&self) {
        if short(&self.pool) {
            fill_now(&self.pool).await;
        }
    }

    /// Whether the query at `qi` of the catalogue runs on this unit.
    pub fn applies(&self, qi: usize) -> bool {
        self.applies[qi]
    }

    /// The pool, so a reload with unchanged settings can keep it.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The server's facts from a (shared) probe.
    pub async fn facts(&self) -> Result<Arc<ServerFacts>, QueryError> {
        self.probe(&None).await
    }

    /// The server's facts, or why the database does not answer (shared with scrapes, reused for
    /// [`PROBE_REUSE`]), waiting no later than `deadline`.
    pub async fn check(&self, deadline: tokio::time::Instant) -> Result<Arc<ServerFacts>, String> {
        self.check_holding(deadline, &None).await
    }

    /// [`Unit::check`], where a probe it starts keeps `hold` until it ends (a watched database's turn: the
    /// probe's connection belongs to the turn even when the scrape stops waiting for it).
    async fn check_holding(&self, deadline: tokio::time::Instant, hold: &Hold) -> Result<Arc<ServerFacts>, String> {
        match timeout_at(deadline, self.probe(hold)).await {
            Ok(Ok(facts)) => Ok(facts),
            Ok(Err(e)) => Err(format!("{}: {}", e.kind.as_str(), e.message)),
            Err(_) => Err("no answer by the scrape's deadline".to_owned()),
        }
    }

    /// The probe result, shared by concurrent scrapes and reused for [`PROBE_REUSE`]; a probe started
    /// here keeps `hold` until it ends.
    async fn probe(&self, hold: &Hold) -> ProbeOutcome {
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
                    let (pool, needs, probe, name) =
                        (self.pool.clone(), self.needs.clone(), self.probe.clone(), self.target.clone());
                    let (datname, hold) = (self.datname.clone(), hold.clone());
                    // The task records and logs its own outcome: a scrape that gave up at its
                    // deadline must not lose why the database is unreachable.
                    let task = tokio::spawn(async move {
                        let outcome = db::probe(&pool, &needs).await.map(Arc::new);
                        let mut slot = lock(&probe);
                        let (was_up, was_down) =
                            (matches!(slot.last, Some((_, Ok(_)))), matches!(slot.last, Some((_, Err(_)))));
                        match &outcome {
                            Err(e) => {
                                *slot.errors.entry(e.kind).or_default() += 1;
                                if !was_down {
                                    tracing::warn!(target = %name, datname = datname.as_deref(), kind = e.kind.as_str(), error = %e.message, "database unreachable");
                                }
                            }
                            Ok(f) => {
                                if was_down {
                                    tracing::info!(target = %name, datname = datname.as_deref(), "database reachable again");
                                } else if !was_up && datname.is_none() {
                                    // The first answer (start-up, reload): what the exporter is connected to.
                                    tracing::info!(target = %name, server_version = %f.version, role = %f.role, in_recovery = f.in_recovery, sees_all_sessions = f.sees_all_sessions, "connected");
                                }
                                // After an outage the pool's connections are broken, and when the server came up
                                // after the exporter (the first probe to answer) the pool is part-filled: fill it
                                // (replacing the broken ones) before the next scrape needs it. A pool the
                                // start-up fill opened whole is left alone: filling checks every connection out
                                // at once, which would keep them from the first scrape's queries. A watched
                                // database's connection lives only for its turn.
                                if datname.is_none() && (was_down || (!was_up && short(&pool))) {
                                    fill(pool.clone());
                                }
                            }
                        }
                        slot.inflight = None;
                        slot.last = Some((Instant::now(), outcome.clone()));
                        drop(slot);
                        drop(hold);
                        outcome
                    });
                    let f = async move {
                        task.await.unwrap_or_else(|e| Err(QueryError::new(ErrorKind::Connection, e.to_string())))
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
    fn due(&self, qi: usize, state: &Arc<QueryState>, hold: &Hold) -> Plan {
        let query = &self.catalogue.queries[qi];
        let ttl = query.ttl;
        let mut slot = lock(&state.slot);
        if let Some((at, result)) = slot.last_good.clone() {
            let age = at.elapsed();
            let usable = age < ttl || (query.refresh_ahead && age < ttl * 2);
            if usable {
                if query.refresh_ahead && age >= refresh_point(ttl) && slot.inflight.is_none() {
                    let flight = self.start(qi, state.clone(), hold.clone());
                    slot.inflight = Some(flight);
                }
                lock(&state.stats).cache_hits += 1;
                tracing::debug!(target = %self.target, query = %query.name, age_ms = age.as_millis() as u64, series = result.series_count(), "served from cache");
                return Plan::Ready(Status::Served { result, age, cached: true });
            }
        }
        if let Some(f) = &slot.inflight {
            return Plan::Wait(f.clone());
        }
        let flight = self.start(qi, state.clone(), hold.clone());
        slot.inflight = Some(flight.clone());
        Plan::Wait(flight)
    }

    fn start(&self, qi: usize, state: Arc<QueryState>, hold: Hold) -> Flight {
        let pool = self.pool.clone();
        let catalogue = self.catalogue.clone();
        let label = self.label.clone();
        let target = self.target.clone();
        let datname = self.datname.clone();
        lock(&state.stats).executions += 1;
        let task = tokio::spawn(async move {
            let _hold = hold;
            let query = &catalogue.queries[qi];
            let (outcome, took) = db::timed(db::execute(&pool, &catalogue, query, label.as_deref())).await;
            let outcome = outcome.map(Arc::new);
            let mut slot = lock(&state.slot);
            let mut stats = lock(&state.stats);
            stats.last_duration = Some(took);
            match &outcome {
                Ok(result) => {
                    tracing::debug!(target = %target, datname = datname.as_deref(), query = %query.name, rows = result.rows, series = result.series_count(), duration_ms = took.as_millis() as u64, "query executed");
                    stats.null_values += result.null_values;
                    stats.last_error = None;
                    slot.last_good = Some((Instant::now(), result.clone()));
                }
                Err(e) => {
                    *stats.errors.entry(e.kind).or_default() += 1;
                    stats.last_error = Some(e.message.clone());
                    tracing::warn!(target = %target, datname = datname.as_deref(), query = %query.name, kind = e.kind.as_str(), error = %e.message, "query failed");
                }
            }
            slot.inflight = None;
            outcome
        });
        async move { task.await.unwrap_or_else(|e| Err(QueryError::new(ErrorKind::Connection, e.to_string()))) }
            .boxed()
            .shared()
    }
}

enum Plan {
    Ready(Status),
    Wait(Flight),
}

/// Opens connections up to `pool`'s size in the background and leaves them idle in it; checking each one out
/// also replaces those that broke.
fn fill(pool: Pool) {
    tokio::spawn(async move { fill_now(&pool).await });
}

/// [`fill`], done when the connections are open (or failed to open).
async fn fill_now(pool: &Pool) {
    drop(futures::future::join_all((0..pool.status().max_size).map(|_| pool.get())).await);
}

/// Whether `pool` holds fewer connections than its size.
fn short(pool: &Pool) -> bool {
    let status = pool.status();
    status.size < status.max_size
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
