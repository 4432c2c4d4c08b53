//! One target: a server and the databases the exporter watches on it.
//!
//! Without `databases:` a target is one [`Unit`]: its database, every query.
//! With it, the target's own unit runs the server-scope queries once per
//! server, and each watched database is a unit of its own for the
//! database-scope queries (see [`super::discovery`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::discovery::Discovery;
use super::snapshot::TargetSnapshot;
use super::unit::Unit;
use crate::catalogue::{Catalogue, DatabaseDiscovery, Scope};
use crate::config::PoolSettings;
use crate::config::dsn::Database;
use crate::db::{self, ErrorKind, Pool, PoolStats, QueryError, ServerFacts};

/// One target the exporter watches.
pub struct Target {
    /// Name used in the `target` label when there are several.
    pub name: String,
    /// The connection settings with the password masked.
    pub masked_dsn: String,
    /// Pre-rendered `target="name"` label, or `None` with a single unnamed target.
    pub label: Option<String>,
    server: Unit,
    discovery: Option<Discovery>,
}

impl Target {
    /// The state for `catalogue` on `pool`; no connection is opened yet. With `discovery`, the
    /// server's databases are watched too, with `database` as the template of their connections.
    pub fn new(
        name: String,
        label: Option<String>,
        database: &Database,
        pool: Pool,
        catalogue: Arc<Catalogue>,
        discovery: Option<(DatabaseDiscovery, PoolSettings)>,
    ) -> Target {
        let all = catalogue.queries.iter().map(|q| q.runs_on(&name));
        let applies: Vec<bool> = match &discovery {
            None => all.collect(),
            Some(_) => all.zip(&catalogue.queries).map(|(runs, q)| runs && q.scope == Scope::Server).collect(),
        };
        let server = Unit::new(name.clone(), None, label.clone(), pool, catalogue.clone(), applies);
        let discovery = discovery.map(|(spec, settings)| {
            Discovery::new(spec, database.clone(), settings, name.clone(), label.clone(), catalogue)
        });
        Target { name, masked_dsn: database.masked.clone(), label, server, discovery }
    }

    /// Collects this target, waiting no later than `deadline`.
    pub async fn collect(&self, deadline: tokio::time::Instant) -> TargetSnapshot {
        let (server, facts) = self.server.collect(deadline, None).await;
        let mut units = vec![server];
        let mut pool = db::stats(self.server.pool());
        if let (Some(d), Ok(_)) = (&self.discovery, &facts) {
            units.extend(d.collect(deadline, self.server.pool()).await);
            let dbs = d.pool_stats();
            (pool.open, pool.idle, pool.waiting) =
                (pool.open + dbs.open, pool.idle + dbs.idle, pool.waiting + dbs.waiting);
        }
        TargetSnapshot {
            label: self.label.clone(),
            up: facts.is_ok(),
            facts: facts.as_ref().ok().cloned(),
            down_because: facts.err(),
            units,
            pool: PoolStats { max: self.max_connections(), ..pool },
            probe_errors: self.probe_errors(),
        }
    }

    /// Most connections this target may hold to its server.
    fn max_connections(&self) -> usize {
        self.server.pool().status().max_size + self.discovery.as_ref().map_or(0, Discovery::share)
    }

    /// The pool of the target's own database, so a reload with unchanged settings can keep it.
    pub fn pool(&self) -> &Pool {
        self.server.pool()
    }

    /// Each watched database of the server (the list read again if due), waiting no later than `deadline`.
    pub async fn databases(&self, deadline: tokio::time::Instant) -> Vec<Arc<Unit>> {
        match &self.discovery {
            Some(d) => d.units_now(self.server.pool(), deadline).await,
            None => Vec::new(),
        }
    }

    /// The target's own database.
    pub fn server(&self) -> &Unit {
        &self.server
    }

    /// The server's facts from a (shared) probe.
    pub async fn facts(&self) -> Result<Arc<ServerFacts>, QueryError> {
        self.server.facts().await
    }

    /// The server's facts, or why it does not answer, waiting no later than `deadline`.
    pub async fn check(&self, deadline: tokio::time::Instant) -> Result<Arc<ServerFacts>, String> {
        self.server.check(deadline).await
    }

    /// Opens the target's own pool's connections and then reads the server's facts, in the background (start-up,
    /// reload): the first scrape neither waits for connections nor probes a cold session when it comes within
    /// [`crate::defaults::PROBE_REUSE`], and `/readyz` knows at once.
    pub fn warm(self: &Arc<Self>) {
        let target = Arc::clone(self);
        tokio::spawn(async move {
            target.server.warm().await;
            // An unreachable server is recorded and logged by the probe itself.
            let _ = target.server.facts().await;
        });
    }

    /// Failed connection attempts to the server so far, by kind.
    pub fn probe_errors(&self) -> BTreeMap<ErrorKind, u64> {
        self.server.probe_errors()
    }
}
