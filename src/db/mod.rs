//! Everything that talks to PostgreSQL: the pool, the probe behind `pg_up`,
//! read-only execution with timeouts, turning rows into series, and
//! `EXPLAIN` for `check`.
//!
//! **Invariant:** only this module sends SQL. Every catalogue query runs as a
//! single extended-protocol statement inside `BEGIN READ ONLY` with
//! `SET LOCAL statement_timeout` and `lock_timeout`, and a client-side bound
//! just above the server's, so neither a slow query nor a hung server can hold
//! a scrape or a connection for long.

pub mod decode;
mod error;
mod execute;
mod explain;
mod pool;
mod probe;
mod rows;

pub use error::{ErrorKind, PoolBuildError, QueryError};
pub use execute::{execute, timed};
pub use explain::{Explain, explain};
pub use pool::{PoolStats, pool, stats};
pub use probe::{ServerFacts, close_and_wait, databases, probe};
pub use rows::{QueryResult, Series};

/// The connection pool type the rest of the exporter holds.
pub use deadpool_postgres::Pool;
