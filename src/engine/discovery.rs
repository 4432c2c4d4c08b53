//! Watching every database of a server: the list of databases, read again
//! periodically, and one [`Unit`] per database for the database-scope queries.
//!
//! **Invariants:** the connections a target holds to its server stay within
//! its bound. The bound is split: the target's own pool for server-scope
//! queries, and a share for databases. A database runs its queries on one
//! connection during its *turn*, while it holds one of the share's permits;
//! the turn closes that connection and waits until the server no longer
//! counts its backend before the permit goes to the next database, so no
//! idle connection is kept to a watched database (an operator's `DROP
//! DATABASE` is never blocked by one) and the server never sees more than
//! the bound. Concurrent scrapes share a database's turn: a scrape joins the
//! turn queued or running for a database instead of queueing its own, so a
//! `ttl: 0` query runs once per database for all of them. A free permit goes
//! to the queued turn of the database whose result a scrape got the longest
//! ago (never first), so when a round does not fit a scrape's deadline the
//! next scrape starts where it stopped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::timeout_at;

use super::lock;
use super::snapshot::UnitSnapshot;
use super::unit::Unit;
use crate::catalogue::{Catalogue, DatabaseDiscovery, Scope};
use crate::config::PoolSettings;
use crate::config::dsn::Database;
use crate::db::{self, Pool, PoolStats};
use crate::exposition::labels::{join, render_label};

/// A database's turn as the scrapes that joined it see it: its snapshot, or `None` if it never ran.
type TurnFlight = Shared<BoxFuture<'static, Option<UnitSnapshot>>>;

/// The watched databases of one target.
pub(super) struct Discovery {
    spec: DatabaseDiscovery,
    template: Database,
    settings: PoolSettings,
    target: String,
    target_label: Option<String>,
    catalogue: Arc<Catalogue>,
    applies: Vec<bool>,
    watched: Mutex<BTreeMap<String, Arc<Watched>>>,
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    turns: Arc<Turns>,
    share: usize,
}

/// The databases' turns: the share's permits, and the turns queued for one.
struct Turns {
    permits: Arc<Semaphore>,
    queued: Mutex<Vec<(Arc<Watched>, oneshot::Sender<UnitSnapshot>)>>,
}

/// One watched database: its unit, its turn queued or running, and when a scrape last got a turn's result.
struct Watched {
    unit: Arc<Unit>,
    turn: Mutex<Option<TurnFlight>>,
    served: Mutex<Option<Instant>>,
}

/// What a turn's executions hold until the last of them ends: the permit and the connection.
/// On drop the connection is closed and, once the server no longer counts it, the permit is released.
struct Turn {
    permit: Option<OwnedSemaphorePermit>,
    pool: Pool,
    server: Pool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let (permit, pool, server) = (self.permit.take(), self.pool.clone(), self.server.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if !db::close_and_wait(&pool, &server).await {
                        tracing::debug!(
                            size = pool.status().size,
                            available = pool.status().available,
                            "a watched database's closed connection was not seen gone"
                        );
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                pool.retain(|_, _| false);
            }
        }
    }
}

impl Discovery {
    /// Watches the databases `spec` selects; `settings` is the target's bound, of which the
    /// databases get [`Discovery::share`].
    pub(super) fn new(
        spec: DatabaseDiscovery,
        template: Database,
        settings: PoolSettings,
        target: String,
        target_label: Option<String>,
        catalogue: Arc<Catalogue>,
    ) -> Discovery {
        let applies = catalogue.queries.iter().map(|q| q.scope == Scope::Database && q.runs_on(&target)).collect();
        let share = share(settings.max_size);
        Discovery {
            spec,
            template,
            settings: PoolSettings { max_size: 1, ..settings },
            target,
            target_label,
            catalogue,
            applies,
            watched: Mutex::default(),
            refreshed: tokio::sync::Mutex::new(None),
            turns: Arc::new(Turns { permits: Arc::new(Semaphore::new(share)), queued: Mutex::default() }),
            share,
        }
    }

    /// Connections the databases may hold at once.
    pub(super) fn share(&self) -> usize {
        self.share
    }

    /// Collects every watched database (reading the list again when due), in name order: each
    /// from the turn in flight for it, or from a turn this scrape queues, least recently served first.
    pub(super) async fn collect(&self, deadline: tokio::time::Instant, server: &Pool) -> Vec<UnitSnapshot> {
        let watched = self.watched_now(server, deadline).await;
        let mut flights: Vec<TurnFlight> = Vec::with_capacity(watched.len());
        let budget = super::default_budget(&self.catalogue);
        for w in &watched {
            let mut turn = lock(&w.turn);
            let flight = match &*turn {
                Some(flight) => flight.clone(),
                None => {
                    let (tx, rx) = oneshot::channel();
                    let flight = async move { rx.await.ok() }.boxed().shared();
                    *turn = Some(flight.clone());
                    lock(&self.turns.queued).push((w.clone(), tx));
                    tokio::spawn(next_turn(self.turns.clone(), server.clone(), budget));
                    flight
                }
            };
            flights.push(flight);
        }
        let waits = watched.iter().zip(flights).map(|(w, flight)| async move {
            match timeout_at(deadline, flight).await.ok().flatten() {
                Some(snapshot) => {
                    *lock(&w.served) = Some(Instant::now());
                    snapshot
                }
                None => w.unit.unavailable(),
            }
        });
        futures::future::join_all(waits).await
    }

    /// The watched databases' units, after reading the list again if it is older than the refresh interval.
    pub(super) async fn units_now(&self, server: &Pool, deadline: tokio::time::Instant) -> Vec<Arc<Unit>> {
        self.watched_now(server, deadline).await.into_iter().map(|w| w.unit.clone()).collect()
    }

    async fn watched_now(&self, server: &Pool, deadline: tokio::time::Instant) -> Vec<Arc<Watched>> {
        {
            let mut refreshed = self.refreshed.lock().await;
            if refreshed.is_none_or(|at| at.elapsed() >= self.spec.refresh) {
                match timeout_at(deadline, db::databases(server)).await {
                    Ok(Ok(names)) => {
                        self.update(names.into_iter().filter(|n| self.spec.watches(n)));
                        *refreshed = Some(Instant::now());
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(target = %self.target, error = %e.message, "cannot list the databases")
                    }
                    Err(_) => {
                        tracing::warn!(target = %self.target, "listing the databases did not finish by the deadline")
                    }
                }
            }
        }
        lock(&self.watched).values().cloned().collect()
    }

    /// Adds units for new databases and drops those of databases that are gone.
    fn update(&self, names: impl Iterator<Item = String>) {
        let mut watched = lock(&self.watched);
        let mut kept = BTreeMap::new();
        for name in names {
            let w = match watched.remove(&name) {
                Some(w) => w,
                None => match self.unit(&name) {
                    Ok(unit) => {
                        tracing::info!(target = %self.target, datname = %name, "watching database");
                        Arc::new(Watched { unit: Arc::new(unit), turn: Mutex::default(), served: Mutex::default() })
                    }
                    Err(e) => {
                        tracing::warn!(target = %self.target, datname = %name, error = %e, "cannot watch database");
                        continue;
                    }
                },
            };
            kept.insert(name, w);
        }
        for gone in watched.keys() {
            tracing::info!(target = %self.target, datname = %gone, "database gone; no longer watched");
        }
        *watched = kept;
    }

    fn unit(&self, datname: &str) -> Result<Unit, db::PoolBuildError> {
        let mut database = self.template.clone();
        database.config.dbname(datname);
        let pool = db::pool(&database, self.settings)?;
        let datname_label = render_label("datname", datname);
        let label = join(self.target_label.as_deref().into_iter().chain([datname_label.as_str()]));
        let (target, catalogue) = (self.target.clone(), self.catalogue.clone());
        Ok(Unit::new(target, Some(datname.to_owned()), Some(label), pool, catalogue, self.applies.clone()))
    }

    /// Occupancy of the databases' connections.
    pub(super) fn pool_stats(&self) -> PoolStats {
        lock(&self.watched).values().map(|w| db::stats(w.unit.pool())).fold(PoolStats::default(), |a, b| PoolStats {
            max: a.max + b.max,
            open: a.open + b.open,
            idle: a.idle + b.idle,
            waiting: a.waiting + b.waiting,
        })
    }
}

/// Waits for a permit, then runs the queued turn of the database served the longest ago (never served
/// first; queue order among equals) in a task of its own: one call per queued turn. The turn's result goes
/// to every scrape that joined it; its executions keep the permit and the connection until they end.
async fn next_turn(turns: Arc<Turns>, server: Pool, budget: Duration) {
    let Ok(permit) = turns.permits.clone().acquire_owned().await else { return };
    let next = {
        let mut queued = lock(&turns.queued);
        let best = queued.iter().enumerate().min_by_key(|(_, (w, _))| *lock(&w.served)).map(|(i, _)| i);
        best.map(|i| queued.remove(i))
    };
    let Some((w, tx)) = next else { return };
    let turn = Turn { permit: Some(permit), pool: w.unit.pool().clone(), server };
    let hold: Arc<dyn std::any::Any + Send + Sync> = Arc::new(turn);
    let (snapshot, _) = w.unit.collect(tokio::time::Instant::now() + budget, Some(hold)).await;
    *lock(&w.turn) = None;
    let _ = tx.send(snapshot);
}

/// The databases' share of a bound of `max` connections (at least one, and one left for the server).
pub(super) fn share(max: usize) -> usize {
    (max / 2).max(1)
}
