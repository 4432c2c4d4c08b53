//! Command-line flags, following Prometheus exporter conventions; every flag
//! can also be set through an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

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
        default_value = ":9432"
    )]
    pub listen_address: String,

    /// Path under which metrics are served.
    #[arg(
        global = true,
        long = "web.telemetry-path",
        env = "RUNBOOK_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Web config file (Prometheus exporter-toolkit format): `tls_server_config` and `basic_auth_users`.
    #[arg(global = true, long = "web.config.file", env = "RUNBOOK_EXPORTER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Scrapes served at once; more are answered 503 immediately.
    #[arg(
        long = "web.max-concurrent-scrapes",
        env = "RUNBOOK_EXPORTER_WEB_MAX_CONCURRENT_SCRAPES",
        default_value_t = 32
    )]
    pub max_concurrent_scrapes: usize,

    /// PostgreSQL URL (`postgres://user@host:5432/db`) or key=value string; default: the local server over its unix socket.
    #[arg(global = true, long = "database.url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File holding the database password, used when the URL has none.
    #[arg(global = true, long = "database.password-file", env = "DATABASE_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,

    /// Most connections held open to the database.
    #[arg(global = true, long = "database.max-connections", env = "RUNBOOK_EXPORTER_DATABASE_MAX_CONNECTIONS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_connections: u16,

    /// Longest time to open a connection.
    #[arg(global = true, long = "database.connect-timeout", env = "RUNBOOK_EXPORTER_DATABASE_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Upper bound of one scrape when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds header
    /// (default: the longest query timeout plus a margin).
    #[arg(global = true, long = "scrape.timeout", env = "RUNBOOK_EXPORTER_SCRAPE_TIMEOUT", value_parser = humantime::parse_duration)]
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
    Check {
        /// Also show EXPLAIN costs and flag sequential scans over large tables.
        #[arg(long)]
        explain: bool,
    },
    /// Run one scrape and print the metrics to stdout.
    Once,
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
    /// Details for troubleshooting.
    Debug,
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
            LogLevel::Debug => "debug",
        }
    }
}

/// Turns a Prometheus-style listen address (`:9432`, `127.0.0.1:9432`, `[::1]:9432`) into something to bind.
pub fn listen_addresses(address: &str) -> Vec<String> {
    match address.strip_prefix(':') {
        Some(port) => vec![format!("[::]:{port}"), format!("0.0.0.0:{port}")],
        None => vec![address.to_owned()],
    }
}
