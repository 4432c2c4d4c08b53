//! Command-line flags, following Prometheus exporter conventions; every flag
//! can also be set through an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::defaults;

/// `--version` output: crate version and git revision.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("RUNBOOK_EXPORTER_REVISION"), ")");

/// Prometheus exporter for PostgreSQL driven by a YAML catalogue of runbook queries.
#[derive(Debug, Parser)]
#[command(name = "runbook-exporter", version = VERSION, args_override_self = true)]
pub struct Args {
    /// What to do; without a command the exporter serves metrics.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The query catalogue.
    #[arg(global = true, long = "config.file", env = "RUNBOOK_EXPORTER_CONFIG_FILE", default_value = "queries.yaml")]
    pub config_file: PathBuf,

    /// Address to listen on; `:9432` means every interface.
    #[arg(
        global = true,
        long = "web.listen-address",
        env = "RUNBOOK_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = ":9432",
        value_parser = parse_listen_address
    )]
    pub listen_address: String,

    /// Path under which metrics are served.
    #[arg(
        global = true,
        long = "web.telemetry-path",
        env = "RUNBOOK_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics",
        value_parser = parse_telemetry_path
    )]
    pub telemetry_path: String,

    /// Web config file (Prometheus exporter-toolkit format): `tls_server_config` and `basic_auth_users`.
    #[arg(global = true, long = "web.config.file", env = "RUNBOOK_EXPORTER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Scrapes served at once; more are answered 503 immediately.
    #[arg(
        long = "web.max-concurrent-scrapes",
        env = "RUNBOOK_EXPORTER_WEB_MAX_CONCURRENT_SCRAPES",
        default_value_t = defaults::MAX_CONCURRENT_SCRAPES
    )]
    pub max_concurrent_scrapes: usize,

    /// PostgreSQL URL (`postgres://user@host:5432/db`) or key=value string; default: the local server over its unix socket.
    #[arg(global = true, long = "database.url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File holding the database password, used when the URL has none.
    #[arg(global = true, long = "database.password-file", env = "DATABASE_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,

    /// Most connections held open to the database.
    #[arg(global = true, long = "database.max-connections", env = "RUNBOOK_EXPORTER_DATABASE_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_connections: u16,

    /// Longest time to open a connection.
    #[arg(global = true, long = "database.connect-timeout", env = "RUNBOOK_EXPORTER_DATABASE_CONNECT_TIMEOUT", default_value = defaults::CONNECT_TIMEOUT_FLAG, value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,

    /// Upper bound of one scrape when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds header
    /// (default: the longest query timeout plus a margin).
    #[arg(global = true, long = "scrape.timeout", env = "RUNBOOK_EXPORTER_SCRAPE_TIMEOUT", value_parser = parse_positive_duration)]
    pub scrape_timeout: Option<Duration>,

    /// Log level.
    #[arg(global = true, long = "log.level", env = "RUNBOOK_EXPORTER_LOG_LEVEL", default_value = "info")]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(global = true, long = "log.format", env = "RUNBOOK_EXPORTER_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// Commands besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Validate the configuration and catalogue; with a reachable database, run every query once and print a report.
    /// Exits non-zero on any error, so it can gate a deployment.
    /// Exit codes: 0 no errors, 1 errors found (or the configuration does not load), 2 bad flags.
    Check {
        /// Also show EXPLAIN costs and flag sequential scans over large tables.
        #[arg(long, conflicts_with = "offline")]
        explain: bool,
        /// Validate the catalogue, the web config and the flags without connecting to any database (for CI).
        #[arg(long)]
        offline: bool,
        /// Report format.
        #[arg(long, value_enum, default_value = "text")]
        output: CheckOutput,
    },
    /// Run one scrape and print the metrics to stdout.
    Once,
}

/// How `check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    /// A summary and a table per target.
    Text,
    /// One JSON object (errors, warnings, targets, queries).
    Json,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    Info,
    /// The exporter's own work: one line per query execution or cache hit, per probe, per reload.
    Debug,
    /// Everything, including the database driver's and the HTTP stack's internals.
    Trace,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogLevel {
    /// The `tracing` filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            // The drivers' debug lines (dozens per scrape) only at trace.
            LogLevel::Debug => "info,runbook_exporter=debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Paths the exporter serves itself, which the telemetry path may not take.
pub const RESERVED_PATHS: &[&str] = &["/", "/probe", "/healthz", "/readyz", "/-/reload"];

/// `--web.telemetry-path`: an absolute URL path that no other endpoint uses.
fn parse_telemetry_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("must start with / (e.g. /{})", s.trim_start_matches('/')));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
        return Err("must be a plain path: no spaces, ? or #".to_owned());
    }
    if s.contains("//") || s.split('/').any(|seg| seg.starts_with(':') || seg.starts_with('*') || seg.starts_with('{'))
    {
        return Err("must be a plain path: no empty segments and no : * { segments".to_owned());
    }
    if RESERVED_PATHS.contains(&s) {
        return Err(format!("{s} is already served by the exporter ({})", RESERVED_PATHS.join(", ")));
    }
    Ok(s.to_owned())
}

/// A duration longer than zero (`500ms`, `5s`, `2m`): a zero timeout would make every attempt fail.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (use e.g. 500ms, 5s, 2m)")),
    }
}

/// `--web.listen-address`: `:PORT`, `HOST:PORT` or `[IPv6]:PORT`.
fn parse_listen_address(s: &str) -> Result<String, String> {
    let (host, port) = s.rsplit_once(':').ok_or("must be HOST:PORT or :PORT, e.g. :9432 or 127.0.0.1:9432")?;
    port.parse::<u16>().map_err(|_| format!("{port:?} is not a port number (0-65535)"))?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.contains(':') && !bracketed {
        return Err("an IPv6 address needs brackets, e.g. [::1]:9432".to_owned());
    }
    if host.chars().any(char::is_whitespace) {
        return Err("the host must not contain spaces".to_owned());
    }
    Ok(s.to_owned())
}

/// Turns a Prometheus-style listen address (`:9432`, `127.0.0.1:9432`, `[::1]:9432`) into something to bind.
pub fn listen_addresses(address: &str) -> Vec<String> {
    match address.strip_prefix(':') {
        Some(port) => vec![format!("[::]:{port}"), format!("0.0.0.0:{port}")],
        None => vec![address.to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_addresses_are_checked_when_parsed() {
        assert_eq!(parse_telemetry_path("/metrics").as_deref(), Ok("/metrics"));
        assert_eq!(parse_telemetry_path("/a/b-c").as_deref(), Ok("/a/b-c"));
        for bad in ["metrics", "", "/", "/probe", "/healthz", "/me trics", "/m?x", "//m", "/:x", "/*x", "/{x}"] {
            assert!(parse_telemetry_path(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_telemetry_path("metrics").unwrap_err(), "must start with / (e.g. /metrics)");
        for good in [":9432", "127.0.0.1:9432", "localhost:0", "[::1]:9432", "[::]:1"] {
            assert_eq!(parse_listen_address(good).as_deref(), Ok(good));
        }
        for bad in ["9432", "127.0.0.1", ":http", ":70000", "::1:9432", "host name:1"] {
            assert!(parse_listen_address(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_positive_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_positive_duration("0s").unwrap_err(), "must be longer than 0s");
        assert!(parse_positive_duration("soon").is_err());
        let err = Args::try_parse_from(["runbook-exporter", "--web.telemetry-path", "metrics"]).unwrap_err();
        assert!(err.to_string().contains("--web.telemetry-path"), "{err}");
    }

    #[test]
    fn flag_defaults_are_the_named_defaults() {
        let args = Args::try_parse_from(["runbook-exporter"]).unwrap();
        assert_eq!(args.connect_timeout, defaults::CONNECT_TIMEOUT);
        assert_eq!(args.max_connections, defaults::MAX_CONNECTIONS);
        assert_eq!(args.max_concurrent_scrapes, defaults::MAX_CONCURRENT_SCRAPES);
    }
}
