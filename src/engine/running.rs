//! What is being served: the catalogue and one [`Target`] per database,
//! built from a [`Config`] at start-up and on every reload.
//!
//! **Invariant:** a reload builds a complete new `Running` before anything is
//! swapped, so a bad file changes nothing; a target whose connection settings
//! (URL, password, TLS, pool size) did not change keeps its pool and its open
//! connections.

use std::sync::Arc;

use super::files::FileSetState;
use super::target::Target;
use crate::catalogue::Catalogue;
use crate::config::dsn::Ssl;
use crate::config::{self, Config, PoolSettings, Sources, TargetConfig};
use crate::db::{self, PoolBuildError};
use crate::exposition::labels::render_label;

/// What is being served: replaced whole on reload.
pub struct Running {
    /// The validated catalogue.
    pub catalogue: Arc<Catalogue>,
    /// One entry per database, in catalogue order.
    pub targets: Vec<Arc<Target>>,
    /// One entry per `files:` set, in catalogue order.
    pub files: Vec<FileSetState>,
    /// Connection settings per target (same order), to decide on reload whether a pool can be kept.
    settings: Vec<PoolKey>,
}

/// What decides whether a pool can be kept on reload.
#[derive(PartialEq)]
struct PoolKey {
    connection: tokio_postgres::Config,
    ssl: Ssl,
    pool: PoolSettings,
}

impl PoolKey {
    fn of(t: &TargetConfig) -> PoolKey {
        PoolKey { connection: t.database.config.clone(), ssl: t.database.ssl.clone(), pool: t.pool }
    }
}

/// A target's pool could not be built.
#[derive(Debug, thiserror::Error)]
#[error("target {name}: {cause}")]
pub struct BuildError {
    /// The target.
    pub name: String,
    /// Why (part of the message, said once).
    pub cause: PoolBuildError,
}

/// Why the configuration could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or setting is unusable.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// A target's pool could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl Running {
    /// Loads the configuration from `sources` and builds it, reusing pools of `previous` where possible.
    pub fn load(sources: &Sources, previous: Option<&Running>) -> Result<Running, LoadError> {
        Ok(Running::build(sources.load()?, previous)?)
    }

    /// Builds the targets of `config`, reusing pools of `previous` whose settings are unchanged.
    pub fn build(config: Config, previous: Option<&Running>) -> Result<Running, BuildError> {
        let mut targets = Vec::new();
        let mut settings = Vec::new();
        for t in config.targets {
            let key = PoolKey::of(&t);
            let reused = previous.and_then(|p| {
                let i = p.targets.iter().position(|old| old.name == t.name)?;
                (p.settings[i] == key).then(|| p.targets[i].pool().clone())
            });
            // Watching databases, the target's own pool gets what the databases' share leaves.
            let own = match &t.discovery {
                Some(_) => {
                    PoolSettings { max_size: t.pool.max_size - super::discovery::share(t.pool.max_size), ..t.pool }
                }
                None => t.pool,
            };
            let pool = match reused {
                Some(pool) => pool,
                None => db::pool(&t.database, own).map_err(|cause| BuildError { name: t.name.clone(), cause })?,
            };
            let label = t.labelled.then(|| render_label("target", &t.name));
            let discovery = t.discovery.map(|d| (d, t.pool));
            let target = Target::new(t.name, label, &t.database, pool, config.catalogue.clone(), discovery);
            targets.push(Arc::new(target));
            settings.push(key);
        }
        let files = config.catalogue.files.iter().cloned().map(FileSetState::new).collect();
        Ok(Running { catalogue: config.catalogue, targets, files, settings })
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.iter().find(|t| t.name == name)
    }
}
