//! Running one catalogue query: read-only, bounded in time, rows streamed.
//!
//! **Invariant:** every query runs as a single extended-protocol statement
//! inside `BEGIN READ ONLY` with `SET LOCAL statement_timeout` and
//! `lock_timeout`, and a client-side bound of timeout + [`CLIENT_MARGIN`];
//! a connection whose state is unknown is discarded, never reused.

use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use futures::{StreamExt, pin_mut};
use tokio_postgres::NoTls;
use tokio_postgres::types::{ToSql, Type};

use super::error::{ErrorKind, QueryError, classify};
use super::pool::{checkout, discard};
use super::rows::{Collector, QueryResult};
use crate::catalogue::{Catalogue, Query};
use crate::defaults::{CANCEL_TIMEOUT, CLIENT_MARGIN};

/// Runs `query` once in a read-only transaction and turns its rows into series.
///
/// `extra_label` (e.g. `target="primary"`) is appended to every series.
pub async fn execute(
    pool: &Pool,
    catalogue: &Catalogue,
    query: &Query,
    extra_label: Option<&str>,
) -> Result<QueryResult, QueryError> {
    let client = checkout(pool).await?;
    let setup = begin(query, true);
    let work = async {
        // Pipelined: the three messages go out together and the server runs them in order, so the
        // session is never seen "idle in transaction" between round trips. The pool's post-create hook
        // made the session read-only by default, in case BEGIN READ ONLY were ever not in effect.
        let (begun, result, ended) = tokio::join!(
            client.batch_execute(&setup),
            stream_rows(&client, catalogue, query, extra_label),
            // A failed statement aborts the transaction; either way it ends here.
            client.batch_execute("ROLLBACK"),
        );
        begun.map_err(|e| classify(&e))?;
        let result = result?;
        ended.map_err(|e| classify(&e))?;
        Ok::<_, QueryError>(result)
    };
    match tokio::time::timeout(query.timeout + CLIENT_MARGIN, work).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(err)) => {
            // After a cut-off stream or a broken connection the session state is unknown: never reuse it.
            if matches!(err.kind, ErrorKind::Connection | ErrorKind::Cardinality | ErrorKind::Conversion)
                || client.is_closed()
            {
                discard(client);
            }
            Err(err)
        }
        Err(_) => {
            let cancel = client.cancel_token();
            discard(client);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CANCEL_TIMEOUT, cancel.cancel_query(NoTls)).await;
            });
            Err(QueryError::new(
                ErrorKind::Timeout,
                format!("no answer within {:?} (client-side bound)", query.timeout + CLIENT_MARGIN),
            ))
        }
    }
}

/// `BEGIN READ ONLY` with the query's server-side timeouts (`lock_timeout` only when `with_lock_timeout`).
pub(super) fn begin(query: &Query, with_lock_timeout: bool) -> String {
    let mut sql = format!("BEGIN READ ONLY; SET LOCAL statement_timeout = {}", query.timeout.as_millis().max(1));
    if with_lock_timeout {
        sql.push_str(&format!("; SET LOCAL lock_timeout = {}", query.lock_timeout.as_millis().max(1)));
    }
    sql
}

/// Streams the rows so a runaway result is cut at the series budget instead of being buffered whole.
async fn stream_rows(
    client: &Object,
    catalogue: &Catalogue,
    query: &Query,
    extra_label: Option<&str>,
) -> Result<QueryResult, QueryError> {
    let stream = client
        .query_typed_raw(&query.sql, std::iter::empty::<(&(dyn ToSql + Sync), Type)>())
        .await
        .map_err(|e| classify(&e))?;
    pin_mut!(stream);
    let mut collector = Collector::new(catalogue, query, extra_label);
    while let Some(row) = stream.next().await {
        collector.push(&row.map_err(|e| classify(&e))?)?;
    }
    Ok(collector.finish())
}

/// Wall time of `f`.
pub async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}
