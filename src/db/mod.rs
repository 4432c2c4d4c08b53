//! Everything that talks to PostgreSQL: the pool, read-only execution with
//! timeouts, and turning rows into series.
//!
//! **Invariant:** only this module sends SQL. Every catalogue query runs as a
//! single extended-protocol statement inside `BEGIN READ ONLY` with
//! `SET LOCAL statement_timeout` and `lock_timeout`, and a client-side bound
//! just above the server's, so neither a slow query nor a hung server can hold
//! a scrape or a connection for long.

pub mod decode;
pub mod tls;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use futures::{StreamExt, pin_mut};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::catalogue::{Catalogue, Query};
use crate::dsn::Database;
use decode::{Label, Sample};

/// Extra time the client waits past a statement's server-side timeout before it gives up on the connection.
pub const CLIENT_MARGIN: Duration = Duration::from_millis(1500);

/// Pool settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections held open to the database.
    pub max_size: usize,
    /// Longest wait for a free connection.
    pub wait_timeout: Duration,
    /// Longest time to open a new connection.
    pub connect_timeout: Duration,
}

/// Builds a pool that never waits forever and checks every connection before reuse.
pub fn pool(db: &Database, settings: PoolSettings) -> Result<Pool, String> {
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
                    .batch_execute("SET default_transaction_read_only = on")
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
        .map_err(|e| e.to_string())
}

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
    fn new(kind: ErrorKind, message: impl Into<String>) -> QueryError {
        QueryError { kind, message: message.into() }
    }
}

/// One exposed series: pre-rendered labels and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `name="value",...` already escaped, without braces; empty for no labels.
    pub labels: Box<str>,
    /// The sample.
    pub value: f64,
}

/// The successful outcome of one execution.
#[derive(Debug, Default)]
pub struct QueryResult {
    /// Series per metric of the query, in catalogue order.
    pub series: Vec<Vec<Series>>,
    /// Rows returned.
    pub rows: usize,
    /// Value cells that were NULL and gave no sample.
    pub null_values: u64,
}

impl QueryResult {
    /// Total series over all metrics.
    pub fn series_count(&self) -> usize {
        self.series.iter().map(Vec::len).sum()
    }
}

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
    pub extensions: std::collections::HashMap<String, String>,
    /// Tables named by `requires.tables` that exist.
    pub tables: HashSet<String>,
    /// Of those, the ones the exporter's role may read.
    pub readable_tables: HashSet<String>,
}

/// Checks out a connection and reads the server's facts; this is what `pg_up` reports.
pub async fn probe(pool: &Pool, tables: &[String]) -> Result<ServerFacts, QueryError> {
    let client = pool.get().await.map_err(pool_error)?;
    let bound = pool.timeouts().create.unwrap_or(Duration::from_secs(5)) + CLIENT_MARGIN;
    let work = async {
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int4, current_setting('server_version'), \
                 pg_is_in_recovery(), extract(epoch FROM pg_postmaster_start_time())::float8, \
                 ARRAY(SELECT extname::text || '=' || extversion FROM pg_extension), \
                 ARRAY(SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL), \
                 ARRAY(SELECT t FROM unnest($1::text[]) AS t \
                       WHERE to_regclass(t) IS NOT NULL AND has_table_privilege(to_regclass(t), 'SELECT'))",
                &[&tables],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>(ServerFacts {
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
        })
    };
    match tokio::time::timeout(bound, work).await {
        Ok(Ok(facts)) => Ok(facts),
        Ok(Err(e)) => {
            let err = classify(&e);
            discard(client);
            Err(err)
        }
        Err(_) => {
            discard(client);
            Err(QueryError::new(ErrorKind::Connection, "server did not answer the probe in time"))
        }
    }
}

/// Runs `query` once in a read-only transaction and turns its rows into series.
///
/// `extra_label` (e.g. `target="primary"`) is appended to every series.
pub async fn execute(
    pool: &Pool,
    catalogue: &Catalogue,
    query: &Query,
    extra_label: Option<&str>,
) -> Result<QueryResult, QueryError> {
    let client = pool.get().await.map_err(pool_error)?;
    let setup = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        query.timeout.as_millis().max(1),
        query.lock_timeout.as_millis().max(1)
    );
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
                let _ = tokio::time::timeout(Duration::from_secs(2), cancel.cancel_query(NoTls)).await;
            });
            Err(QueryError::new(
                ErrorKind::Timeout,
                format!("no answer within {:?} (client-side bound)", query.timeout + CLIENT_MARGIN),
            ))
        }
    }
}

/// Streams the rows so a runaway result is cut at the series budget instead of being buffered whole.
async fn stream_rows(
    client: &Object,
    catalogue: &Catalogue,
    query: &Query,
    extra_label: Option<&str>,
) -> Result<QueryResult, QueryError> {
    let stream = client
        .query_typed_raw(
            &query.sql,
            std::iter::empty::<(&(dyn tokio_postgres::types::ToSql + Sync), tokio_postgres::types::Type)>(),
        )
        .await
        .map_err(|e| classify(&e))?;
    pin_mut!(stream);
    let mut builder: Option<Builder> = None;
    let mut result = QueryResult { series: vec![Vec::new(); query.metrics.len()], ..Default::default() };
    let mut total = 0usize;
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| classify(&e))?;
        let b = match &mut builder {
            Some(b) => b,
            None => builder.insert(Builder::new(&row, query, extra_label)?),
        };
        result.rows += 1;
        for (mi, series) in result.series.iter_mut().enumerate() {
            match b.series(&row, mi)? {
                Some(s) => {
                    total += 1;
                    if total > query.max_series {
                        return Err(QueryError::new(
                            ErrorKind::Cardinality,
                            format!("more than max_series = {} series", query.max_series),
                        ));
                    }
                    if !b.seen[mi].insert(s.labels.clone()) {
                        let name = &catalogue.families[query.metrics[mi].family].name;
                        return Err(QueryError::new(
                            ErrorKind::Duplicate,
                            format!("metric {name}: two rows with the same labels {{{}}}", s.labels),
                        ));
                    }
                    series.push(s);
                }
                None => result.null_values += 1,
            }
        }
    }
    Ok(result)
}

/// Where one metric's parts are in a row.
struct Columns {
    value: usize,
    labels: Vec<(usize, String)>,
    /// Constant labels (and the target label), rendered once.
    constant: String,
}

/// Column positions resolved on the first row, reused for the rest.
struct Builder {
    metrics: Vec<Columns>,
    seen: Vec<HashSet<Box<str>>>,
}

impl Builder {
    fn new(row: &Row, query: &Query, extra_label: Option<&str>) -> Result<Builder, QueryError> {
        let index = |name: &str| -> Result<usize, QueryError> {
            row.columns().iter().position(|c| c.name() == name).ok_or_else(|| {
                let have: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
                QueryError::new(
                    ErrorKind::Conversion,
                    format!("column {name:?} is not in the result (columns: {})", have.join(", ")),
                )
            })
        };
        let mut metrics = Vec::new();
        for m in &query.metrics {
            let value = index(&m.value_column)?;
            let labels =
                m.label_columns.iter().map(|l| Ok((index(l)?, l.clone()))).collect::<Result<Vec<_>, QueryError>>()?;
            let mut constant = String::new();
            for (k, v) in &m.const_labels {
                push_label(&mut constant, k, v);
            }
            if let Some(extra) = extra_label {
                if !constant.is_empty() {
                    constant.push(',');
                }
                constant.push_str(extra);
            }
            metrics.push(Columns { value, labels, constant });
        }
        let seen = vec![HashSet::new(); metrics.len()];
        Ok(Builder { metrics, seen })
    }

    /// The series of metric `mi` for `row`, or `None` when the value is NULL.
    fn series(&self, row: &Row, mi: usize) -> Result<Option<Series>, QueryError> {
        let Columns { value: vi, labels, constant } = &self.metrics[mi];
        let conversion = |col: &str, e: tokio_postgres::Error| {
            let reason = e.source().map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
            QueryError::new(ErrorKind::Conversion, format!("column {col:?}: {reason}"))
        };
        let value = match row.try_get::<_, Option<Sample>>(*vi) {
            Ok(Some(Sample(v))) => v,
            Ok(None) => return Ok(None),
            Err(e) => return Err(conversion(row.columns()[*vi].name(), e)),
        };
        let mut rendered = String::new();
        for (li, name) in labels {
            let Label(text) =
                row.try_get::<_, Option<Label>>(*li).map_err(|e| conversion(name, e))?.unwrap_or(Label(String::new()));
            push_label(&mut rendered, name, &text);
        }
        if !constant.is_empty() {
            if !rendered.is_empty() {
                rendered.push(',');
            }
            rendered.push_str(constant);
        }
        Ok(Some(Series { labels: rendered.into_boxed_str(), value }))
    }
}

use std::error::Error as _;

/// Appends `name="value"` (escaped for both text formats) to `out`.
pub fn push_label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Renders one label pair as `name="value"`.
pub fn render_label(name: &str, value: &str) -> String {
    let mut s = String::new();
    push_label(&mut s, name, value);
    s
}

fn pool_error(e: PoolError) -> QueryError {
    let message = match &e {
        PoolError::Timeout(kind) => format!("no connection available ({kind:?} timeout)"),
        PoolError::Backend(err) => return classify(err),
        other => other.to_string(),
    };
    QueryError::new(ErrorKind::Connection, message)
}

fn classify(e: &tokio_postgres::Error) -> QueryError {
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

/// Drops a connection instead of returning it to the pool.
fn discard(client: Object) {
    drop(Object::take(client));
}

/// Wall time of `f`.
pub async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

/// What `EXPLAIN` says about a query: total cost and sequential scans over large tables.
#[derive(Debug, Clone, Default)]
pub struct Explain {
    /// Planner's total cost of the top node.
    pub total_cost: f64,
    /// `(relation, estimated rows)` of every sequential scan over a table with more than `large` rows.
    pub large_seq_scans: Vec<(String, f64)>,
}

/// Runs `EXPLAIN (FORMAT JSON)` for `query` in a read-only transaction; seq scans over tables above `large` rows are reported.
pub async fn explain(pool: &Pool, query: &Query, large: f64) -> Result<Explain, QueryError> {
    let client = pool.get().await.map_err(pool_error)?;
    let work = async {
        client
            .batch_execute(&format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
                query.timeout.as_millis().max(1)
            ))
            .await
            .map_err(|e| classify(&e))?;
        let row =
            client.query_one(&format!("EXPLAIN (FORMAT JSON) {}", query.sql), &[]).await.map_err(|e| classify(&e));
        let mut seq = Vec::new();
        let plan: Result<serde_json::Value, QueryError> = row.and_then(|r| {
            let Label(text) = r.try_get::<_, Label>(0).map_err(|e| classify(&e))?;
            serde_json::from_str(&text)
                .map_err(|e| QueryError::new(ErrorKind::Conversion, format!("EXPLAIN output: {e}")))
        });
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        let top = &plan[0]["Plan"];
        collect_seq_scans(top, &mut seq);
        let mut out = Explain { total_cost: top["Total Cost"].as_f64().unwrap_or(0.0), large_seq_scans: Vec::new() };
        for rel in seq {
            let rows: f32 = client
                .query_one("SELECT coalesce(max(reltuples), 0)::float4 FROM pg_class WHERE relname = $1", &[&rel])
                .await
                .map(|r| r.get(0))
                .unwrap_or(0.0);
            if f64::from(rows) > large {
                out.large_seq_scans.push((rel, f64::from(rows)));
            }
        }
        client.batch_execute("ROLLBACK").await.map_err(|e| classify(&e))?;
        Ok(out)
    };
    match tokio::time::timeout(query.timeout + CLIENT_MARGIN, work).await {
        Ok(r) => r,
        Err(_) => {
            discard(client);
            Err(QueryError::new(ErrorKind::Timeout, "EXPLAIN did not answer in time"))
        }
    }
}

fn collect_seq_scans(node: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(rel) = node["Relation Name"].as_str().filter(|_| node["Node Type"] == "Seq Scan") {
        out.push(rel.to_owned());
    }
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            collect_seq_scans(child, out);
        }
    }
}
