//! The connection pool: bounded, never waits forever, checks every connection before reuse.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::error::{PoolBuildError, QueryError, pool_error};
use crate::config::PoolSettings;
use crate::config::dsn::Database;
use crate::defaults::CONNECT_TIMEOUT;

/// Builds a pool for `db`; no connection is opened yet. Sessions it opens are read-only by default and
/// never start parallel workers: those are server processes beyond the pool's bound, taken from the
/// `max_parallel_workers` the application's queries need (and on a small server they slow the scrape they
/// were meant to speed up, competing for the same CPUs as the pool's other connections).
pub fn pool(db: &Database, settings: PoolSettings) -> Result<Pool, PoolBuildError> {
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Verified };
    let manager = match &db.tls {
        Some(tls) => Manager::from_config(
            db.config.clone(),
            tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone()),
            manager_config,
        ),
        None => Manager::from_config(db.config.clone(), NoTls, manager_config),
    };
    Pool::builder(manager)
        .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
            Box::pin(async move {
                client
                    .batch_execute("SET default_transaction_read_only = on; SET max_parallel_workers_per_gather = 0")
                    .await
                    .map_err(deadpool_postgres::HookError::Backend)
            })
        }))
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| PoolBuildError(e.to_string()))
}

/// A connection from `pool`; a failure says which limit was hit.
pub(super) async fn checkout(pool: &Pool) -> Result<Object, QueryError> {
    pool.get().await.map_err(|e| pool_error(e, &pool.timeouts()))
}

/// The pool's connect timeout (the bound of a probe's round trip).
pub(super) fn connect_timeout(pool: &Pool) -> Duration {
    pool.timeouts().create.unwrap_or(CONNECT_TIMEOUT)
}

/// Drops a connection instead of returning it to the pool: its session state is unknown.
pub(super) fn discard(client: Object) {
    drop(Object::take(client));
}

/// Occupancy of a pool right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Most connections it may hold.
    pub max: usize,
    /// Connections open.
    pub open: usize,
    /// Open connections not in use.
    pub idle: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
}

/// The occupancy of `pool`.
pub fn stats(pool: &Pool) -> PoolStats {
    let s = pool.status();
    PoolStats { max: s.max_size, open: s.size, idle: s.available, waiting: s.waiting }
}
