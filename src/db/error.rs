//! The error taxonomy of database work: every failure has a [`ErrorKind`]
//! (the `kind` label of the error counters) and a message that never holds
//! connection secrets.

use deadpool_postgres::TimeoutType;
use deadpool_postgres::{PoolError, Timeouts};
use tokio_postgres::error::SqlState;

/// Classification of a failed execution: the `kind` label of `runbook_exporter_query_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Cut by `statement_timeout` or the client-side bound.
    Timeout,
    /// Cut by `lock_timeout`: the query waited on a lock another session holds.
    LockTimeout,
    /// The server rejected the statement (syntax, missing table, read-only violation, ...).
    Sql,
    /// No connection could be had, or it broke.
    Connection,
    /// A column was missing or could not be turned into a value or label.
    Conversion,
    /// More series than the query's `max_series`.
    Cardinality,
    /// Two rows produced the same label set for one metric.
    Duplicate,
    /// The scrape's deadline passed before the result arrived.
    Deadline,
}

impl ErrorKind {
    /// Every kind, for pre-initialised counters.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Timeout,
        ErrorKind::LockTimeout,
        ErrorKind::Sql,
        ErrorKind::Connection,
        ErrorKind::Conversion,
        ErrorKind::Cardinality,
        ErrorKind::Duplicate,
        ErrorKind::Deadline,
    ];

    /// The kinds a connection attempt (the probe behind `pg_up`) can fail with.
    pub const PROBE: [ErrorKind; 3] = [ErrorKind::Connection, ErrorKind::Timeout, ErrorKind::Sql];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::LockTimeout => "lock_timeout",
            ErrorKind::Sql => "sql",
            ErrorKind::Connection => "connection",
            ErrorKind::Conversion => "conversion",
            ErrorKind::Cardinality => "cardinality",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::Deadline => "deadline",
        }
    }
}

/// A failed execution.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// What went wrong, as a label value.
    pub kind: ErrorKind,
    /// Details for the log; never contains connection secrets.
    pub message: String,
}

impl QueryError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> QueryError {
        QueryError { kind, message: message.into() }
    }
}

/// A pool could not be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the connection pool: {0}")]
pub struct PoolBuildError(pub String);

/// A failure to get a connection from a pool with these timeouts; a timeout names the limit it hit.
pub(super) fn pool_error(e: PoolError, timeouts: &Timeouts) -> QueryError {
    let limit = |t: Option<std::time::Duration>| t.map_or_else(|| "its".to_owned(), |t| format!("the {t:?}"));
    let message = match &e {
        PoolError::Timeout(TimeoutType::Create) => connect_timed_out(timeouts),
        PoolError::Timeout(TimeoutType::Wait) => format!(
            "no free connection within {} wait (every pooled connection stayed busy; --database.max-connections)",
            limit(timeouts.wait)
        ),
        PoolError::Timeout(TimeoutType::Recycle) => {
            format!("checking a pooled connection took longer than {} timeout", limit(timeouts.recycle))
        }
        PoolError::Backend(err) => {
            let err = classify(err);
            if err.kind != ErrorKind::Timeout {
                return err;
            }
            // The driver's own connect timeout (PGCONNECT_TIMEOUT, connect_timeout in the URL) fired.
            connect_timed_out(timeouts)
        }
        other => return QueryError::new(ErrorKind::Connection, other.to_string()),
    };
    QueryError::new(ErrorKind::Timeout, message)
}

/// The message of a connection attempt cut by its connect timeout.
fn connect_timed_out(timeouts: &Timeouts) -> String {
    let limit = timeouts.create.map_or_else(|| "its".to_owned(), |t| format!("the {t:?}"));
    format!(
        "connecting took longer than {limit} connect timeout (--database.connect-timeout, or the connection \
         string's connect_timeout / PGCONNECT_TIMEOUT when shorter)"
    )
}

/// Whether an I/O time-out (the driver's connect timeout) is behind `e`.
fn timed_out(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        source = cause.source();
    }
    e.to_string().contains("timed out")
}

/// Classifies a driver error by its SQLSTATE; a message without a server error carries the cause chain.
pub(super) fn classify(e: &tokio_postgres::Error) -> QueryError {
    let kind = match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => ErrorKind::Timeout,
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => ErrorKind::LockTimeout,
        Some(c)
            if [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(c) =>
        {
            ErrorKind::Connection
        }
        Some(c) if c.code().starts_with("08") || c.code().starts_with("28") => ErrorKind::Connection,
        Some(_) => ErrorKind::Sql,
        None if timed_out(e) => ErrorKind::Timeout,
        None => ErrorKind::Connection,
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            // The driver's top-level message ("error performing TLS handshake") hides the cause; add the chain.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    };
    QueryError::new(kind, message)
}
