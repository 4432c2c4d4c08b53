//! The probe behind `pg_up`: one cheap round trip that also learns what the
//! server offers (version, role, extensions, tables, libraries) for `requires:`.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;

use super::error::{ErrorKind, QueryError, classify};
use super::pool::{checkout, connect_timeout, discard};
use crate::catalogue::Needs;
use crate::defaults::{BACKEND_GONE_POLL, CLIENT_MARGIN};

/// What the scrape learns from one cheap round trip on a fresh or reused connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFacts {
    /// `server_version_num` / 10000.
    pub major_version: u32,
    /// Full `server_version` string.
    pub version: String,
    /// Whether the server is a standby.
    pub in_recovery: bool,
    /// Postmaster start time (Unix seconds): a change means the server restarted.
    pub started_at: f64,
    /// Installed extensions of the connected database: name → version.
    pub extensions: HashMap<String, String>,
    /// Tables named by `requires.tables` that exist.
    pub tables: HashSet<String>,
    /// Of those, the ones the exporter's role may read.
    pub readable_tables: HashSet<String>,
    /// Libraries named by `requires.libraries` that are loaded.
    pub libraries: HashSet<String>,
    /// The role the exporter connects as.
    pub role: String,
    /// Whether that role sees other roles' sessions and statements in full (superuser, or a member of
    /// `pg_read_all_stats`, which `pg_monitor` includes); without it PostgreSQL hides their state,
    /// query, wait events and backend type.
    pub sees_all_sessions: bool,
}

const PROBE_SQL: &str = "SELECT current_setting('server_version_num')::int4, current_setting('server_version'), \
     pg_is_in_recovery(), extract(epoch FROM pg_postmaster_start_time())::float8, \
     ARRAY(SELECT extname::text || '=' || extversion FROM pg_extension), \
     ARRAY(SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL), \
     ARRAY(SELECT t FROM unnest($1::text[]) AS t \
           WHERE to_regclass(t) IS NOT NULL AND has_table_privilege(to_regclass(t), 'SELECT')), \
     ARRAY(SELECT l FROM unnest($2::text[]) AS l \
           WHERE EXISTS (SELECT 1 FROM pg_settings WHERE starts_with(name, l || '.'))), \
     current_user::text, \
     (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role('pg_read_all_stats', 'USAGE')";

/// Checks out a connection and reads the server's facts, including what `needs` asks about.
pub async fn probe(pool: &Pool, needs: &Needs) -> Result<ServerFacts, QueryError> {
    let rows = query(pool, PROBE_SQL, &[&needs.tables, &needs.libraries], "answer the probe").await?;
    let row = rows.first().ok_or_else(|| QueryError::new(ErrorKind::Conversion, "the probe returned no row"))?;
    let facts = || -> Result<ServerFacts, tokio_postgres::Error> {
        Ok(ServerFacts {
            major_version: u32::try_from(row.try_get::<_, i32>(0)?).unwrap_or(0) / 10_000,
            version: row.try_get(1)?,
            in_recovery: row.try_get(2)?,
            started_at: row.try_get(3)?,
            extensions: row
                .try_get::<_, Vec<String>>(4)?
                .into_iter()
                .filter_map(|e| e.split_once('=').map(|(n, v)| (n.to_owned(), v.to_owned())))
                .collect(),
            tables: row.try_get::<_, Vec<String>>(5)?.into_iter().collect(),
            readable_tables: row.try_get::<_, Vec<String>>(6)?.into_iter().collect(),
            libraries: row.try_get::<_, Vec<String>>(7)?.into_iter().collect(),
            role: row.try_get(8)?,
            sees_all_sessions: row.try_get::<_, Option<bool>>(9)?.unwrap_or(false),
        })
    };
    facts().map_err(|e| classify(&e))
}

/// The databases of the server a connection from `pool` can reach: those that accept connections,
/// are not templates, and that the role may connect to.
pub async fn databases(pool: &Pool) -> Result<Vec<String>, QueryError> {
    let sql = "SELECT datname::text FROM pg_database \
               WHERE datallowconn AND NOT datistemplate AND has_database_privilege(oid, 'CONNECT') ORDER BY 1";
    let rows = query(pool, sql, &[], "list its databases").await?;
    rows.iter().map(|r| r.try_get::<_, String>(0).map_err(|e| classify(&e))).collect()
}

/// Closes `pool`'s idle connection (a watched database's, at the end of its turn) and waits until
/// the server no longer counts its backend, asking on a connection from `server`, for at most the
/// pool's connect timeout. A backend leaves `pg_stat_activity` just before it leaves the server's
/// connection counts (`max_connections`, a role's `CONNECTION LIMIT`), while a new session needs a
/// fork and authentication first, so the next connection opened after this returns does not find
/// the old one still counted. Returns whether the backend was seen gone.
pub async fn close_and_wait(pool: &Pool, server: &Pool) -> bool {
    let status = pool.status();
    if status.size == 0 {
        return true;
    }
    let pid = match status.available {
        0 => None,
        _ => match query(pool, "SELECT pg_backend_pid()", &[], "say its backend's pid").await {
            Ok(rows) => rows.first().and_then(|r| r.try_get::<_, i32>(0).ok()),
            Err(_) => None,
        },
    };
    pool.retain(|_, _| false);
    let Some(pid) = pid else { return false };
    let until = tokio::time::Instant::now() + connect_timeout(pool);
    while tokio::time::Instant::now() < until {
        match query(server, "SELECT 1 FROM pg_stat_get_activity($1)", &[&pid], "look up a backend").await {
            Ok(rows) if rows.is_empty() => return true,
            Ok(_) => tokio::time::sleep(BACKEND_GONE_POLL).await,
            Err(_) => return false,
        }
    }
    false
}

/// One catalogue-independent query on a connection from `pool`, bounded like a connection attempt;
/// a connection in an unknown state afterwards is discarded. `what` completes "server did not ...".
async fn query(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &str,
) -> Result<Vec<tokio_postgres::Row>, QueryError> {
    let client = checkout(pool).await?;
    let bound = connect_timeout(pool) + CLIENT_MARGIN;
    match tokio::time::timeout(bound, client.query(sql, params)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => {
            let err = classify(&e);
            discard(client);
            Err(err)
        }
        Err(_) => {
            discard(client);
            Err(QueryError::new(ErrorKind::Timeout, format!("server did not {what} within {bound:?}")))
        }
    }
}
