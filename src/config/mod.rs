//! Everything the exporter reads from files and the environment, checked
//! before it is used: the catalogue, the connection settings of each target
//! and the web config.
//!
//! [`Sources`] says where the configuration comes from and is kept for
//! reloads; [`Sources::load`] turns it into a [`Config`] or an [`Error`] that
//! names the file, the target or the field at fault. Nothing here opens a
//! connection.

pub mod dsn;
pub mod libpq;
mod targets;
pub mod tls;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::catalogue::{self, Catalogue};

pub use targets::DEFAULT_TARGET;

/// Where the configuration comes from; kept for reloads.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The catalogue file.
    pub config_file: PathBuf,
    /// `--database.url` / `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--database.password-file` / `DATABASE_PASSWORD_FILE`.
    pub password_file: Option<PathBuf>,
    /// libpq's environment variables (`PGHOST`, `PGUSER`, `PGPASSWORD`, ...), read once at start-up.
    pub env: libpq::Env,
    /// Pool settings from the command line.
    pub pool: PoolSettings,
}

/// Connection pool settings of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections held open to the database.
    pub max_size: usize,
    /// Longest wait for a free connection.
    pub wait_timeout: Duration,
    /// Longest time to open a new connection.
    pub connect_timeout: Duration,
}

/// A loaded, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The validated catalogue.
    pub catalogue: Arc<Catalogue>,
    /// One entry per database to watch, in catalogue order.
    pub targets: Vec<TargetConfig>,
}

/// Everything needed to watch one database.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Name, used in the `target` label and in `/probe?target=`.
    pub name: String,
    /// Whether its series carry a `target` label (the catalogue has a `targets:` block).
    pub labelled: bool,
    /// Where the database is.
    pub database: dsn::Database,
    /// Its pool; with `discovery`, the bound on all its connections to the server.
    pub pool: PoolSettings,
    /// Which of the server's databases to watch besides the one in the URL.
    pub discovery: Option<catalogue::DatabaseDiscovery>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalogue file is unreadable or invalid.
    #[error(transparent)]
    Catalogue(#[from] catalogue::Error),
    /// A target's connection settings are unusable.
    #[error("target {name}: {cause}")]
    Target {
        /// The target.
        name: String,
        /// What is wrong with its settings (part of the message, said once).
        cause: dsn::Error,
    },
    /// A target that watches databases has fewer than two connections.
    #[error(
        "target {name}: watching databases needs at least 2 connections (--database.max-connections or max_connections)"
    )]
    Discovery {
        /// The target.
        name: String,
    },
}

impl Sources {
    /// Reads the catalogue and resolves every target's connection settings.
    pub fn load(&self) -> Result<Config, Error> {
        let catalogue = Arc::new(catalogue::load(&self.config_file)?);
        let targets = targets::resolve(self, &catalogue)?;
        Ok(Config { catalogue, targets })
    }
}
