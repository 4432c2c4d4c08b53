//! Every default and built-in limit, named once.
//!
//! A value that an operator may set (a flag, a catalogue field) has its
//! default here; a limit the exporter imposes on itself is here too, so one
//! file answers "how long does it wait for X". Other modules refer to these
//! names and never repeat the numbers.

use std::time::Duration;

/// `defaults.timeout` of a catalogue: the server-side `statement_timeout` of a query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// `defaults.lock_timeout` of a catalogue: the server-side `lock_timeout` of a query.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// `defaults.ttl` of a catalogue: results are not reused.
pub const TTL: Duration = Duration::ZERO;
/// `defaults.max_series` of a catalogue: series one execution may produce.
pub const MAX_SERIES: usize = 1000;
/// Largest `max_series` a catalogue may set.
pub const MAX_SERIES_LIMIT: usize = 1_000_000;

/// `--database.connect-timeout`: longest time to open a connection.
///
/// clap needs the default as text; a unit test keeps the two equal.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// [`CONNECT_TIMEOUT`] as the flag's default text.
pub const CONNECT_TIMEOUT_FLAG: &str = "5s";
/// `databases.refresh` of a target: how often the list of its server's databases is read again.
pub const DISCOVERY_REFRESH: Duration = Duration::from_secs(60);

/// `--database.max-connections`: connections held per target.
pub const MAX_CONNECTIONS: u16 = 2;
/// How much longer than the connect timeout an execution waits for a free pooled connection.
pub const POOL_WAIT_MARGIN: Duration = Duration::from_secs(5);
/// TCP keepalive idle time of database connections.
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);

/// Extra time the client waits past a statement's server-side timeout before it gives up on the connection.
pub const CLIENT_MARGIN: Duration = Duration::from_millis(1500);
/// How long a probe result (and so `pg_up`) is reused by concurrent or rapid scrapes.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);
/// How often a watched database's turn asks whether its closed connection's backend is gone.
pub const BACKEND_GONE_POLL: Duration = Duration::from_millis(2);
/// How long a cancel request for a timed-out query may take.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// Safety margin subtracted from Prometheus' scrape timeout so the answer arrives before it gives up.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);
/// Shortest scrape budget taken from Prometheus' timeout header.
pub const MIN_SCRAPE_BUDGET: Duration = Duration::from_millis(100);
/// Longest scrape budget taken from Prometheus' timeout header.
pub const MAX_SCRAPE_BUDGET: Duration = Duration::from_secs(3600);
/// No HTTP request may take longer than this, whatever it is.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `/readyz` waits for the databases.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(5);
/// `--web.max-concurrent-scrapes`: scrapes served at once.
pub const MAX_CONCURRENT_SCRAPES: usize = 32;

/// A client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS client must finish its handshake within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP connections open at once; more are closed on accept.
pub const MAX_HTTP_CONNECTIONS: usize = 512;
/// How long requests in flight may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept()` (e.g. out of file descriptors) before the next one.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Checked basic-auth credentials remembered (bcrypt is slow on purpose).
pub const AUTH_CACHE_ENTRIES: usize = 1024;

/// The largest catalogue file accepted; bigger files are refused before parsing.
pub const MAX_CATALOGUE_BYTES: u64 = 4 * 1024 * 1024;

/// `ttl` of a `files:` set: how long one directory scan is reused.
pub const FILE_SET_TTL: Duration = Duration::from_secs(60);
/// `max_entries` of a `files:` set: directory entries one scan reads at most.
pub const FILE_SET_MAX_ENTRIES: usize = 10_000;
/// Largest `max_entries` a catalogue may set.
pub const FILE_SET_MAX_ENTRIES_LIMIT: usize = 1_000_000;

/// A keep-alive connection with no request in flight is closed after this long (shorter than
/// [`HEADER_READ_TIMEOUT`], which hyper also applies while waiting for the next request, so the
/// exporter's own idle close comes first and is counted).
pub const KEEPALIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// At the connection cap, how long a new connection waits for an evicted idle one to close.
pub const EVICTION_WAIT: Duration = Duration::from_secs(1);
