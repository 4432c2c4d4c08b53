//! Catalogue + connection settings → the targets being served.
//!
//! Used at start-up and on every reload. A reload builds a complete new
//! [`Running`] before anything is swapped, so a bad file changes nothing; a
//! target whose connection settings (URL, password, pool size) did not change
//! keeps its pool and its open connections.

use std::path::PathBuf;
use std::sync::Arc;

use crate::catalogue::{self, Catalogue};
use crate::db::{self, PoolSettings, render_label};
use crate::dsn;
use crate::engine::Target;

/// Name of the single target when the catalogue has no `targets:` block.
pub const DEFAULT_TARGET: &str = "default";

/// Where the configuration comes from; kept for reloads.
#[derive(Debug, Clone)]
pub struct Loader {
    /// The catalogue file.
    pub config_file: PathBuf,
    /// `--database.url` / `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--database.password-file` / `DATABASE_PASSWORD_FILE`.
    pub password_file: Option<PathBuf>,
    /// `PGUSER` or `USER`, for the default user.
    pub default_user: Option<String>,
    /// Pool settings from the command line.
    pub pool: PoolSettings,
}

/// What decides whether a pool can be kept on reload.
type Settings = (tokio_postgres::Config, (crate::db::tls::SslMode, Option<PathBuf>), PoolSettings);

/// One target to build: name, label, URL, password file, pool settings.
type Spec<'a> = (String, Option<String>, Option<&'a str>, Option<PathBuf>, PoolSettings);

/// What is being served: replaced whole on reload.
pub struct Running {
    /// The validated catalogue.
    pub catalogue: Arc<Catalogue>,
    /// One entry per database, in catalogue order.
    pub targets: Vec<Arc<Target>>,
    /// Connection settings per target (same order), to decide on reload whether a pool can be kept.
    settings: Vec<Settings>,
}

impl Running {
    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.iter().find(|t| t.name == name)
    }
}

impl Loader {
    /// Loads the catalogue and builds the targets, reusing pools of `previous` whose settings are unchanged.
    pub fn load(&self, previous: Option<&Running>) -> anyhow::Result<Running> {
        let catalogue = Arc::new(catalogue::load(&self.config_file)?);
        let specs: Vec<Spec<'_>> = if catalogue.targets.is_empty() {
            vec![(DEFAULT_TARGET.to_owned(), None, self.database_url.as_deref(), self.password_file.clone(), self.pool)]
        } else {
            catalogue
                .targets
                .iter()
                .map(|t| {
                    let pool = PoolSettings { max_size: t.max_connections.unwrap_or(self.pool.max_size), ..self.pool };
                    let url = t.url.as_deref().or(self.database_url.as_deref());
                    let password_file = t.password_file.clone().or_else(|| self.password_file.clone());
                    (t.name.clone(), Some(render_label("target", &t.name)), url, password_file, pool)
                })
                .collect()
        };
        let mut targets = Vec::new();
        let mut settings = Vec::new();
        for (name, label, url, password_file, pool_settings) in specs {
            let origin = if catalogue.targets.is_empty() { "--database.url / DATABASE_URL" } else { "targets: url" };
            let database = dsn::resolve(&dsn::Source {
                url,
                origin,
                password_file: password_file.as_deref(),
                default_user: self.default_user.clone(),
            })
            .map_err(|e| anyhow::anyhow!("target {name}: {e}"))?;
            let reused = previous.and_then(|p| {
                let i = p.targets.iter().position(|t| t.name == name)?;
                (p.settings[i] == (database.config.clone(), database.ssl.clone(), pool_settings))
                    .then(|| p.targets[i].pool().clone())
            });
            let pool = match reused {
                Some(pool) => pool,
                None => db::pool(&database, pool_settings)
                    .map_err(|e| anyhow::anyhow!("target {name}: cannot create the connection pool: {e}"))?,
            };
            targets.push(Arc::new(Target::new(name, label, database.masked.clone(), pool, catalogue.clone())));
            settings.push((database.config, database.ssl, pool_settings));
        }
        Ok(Running { catalogue, targets, settings })
    }
}
