//! Which databases to watch: the catalogue's `targets:` block, or one
//! database from `DATABASE_URL`, each with its connection settings resolved.

use super::{Error, PoolSettings, Sources, TargetConfig, dsn};
use crate::catalogue::Catalogue;

/// Name of the single target when the catalogue has no `targets:` block.
pub const DEFAULT_TARGET: &str = "default";

/// One target before its connection string is resolved.
struct Unresolved<'a> {
    name: &'a str,
    discovery: Option<&'a crate::catalogue::DatabaseDiscovery>,
    url: Option<&'a str>,
    password_file: Option<&'a std::path::Path>,
    pool: PoolSettings,
}

/// Resolves the targets of `catalogue`, falling back to `sources` for what a target leaves out.
pub(super) fn resolve(sources: &Sources, catalogue: &Catalogue) -> Result<Vec<TargetConfig>, Error> {
    let labelled = !catalogue.targets.is_empty();
    let (origin, unresolved): (&'static str, Vec<Unresolved<'_>>) = if labelled {
        let specs = catalogue.targets.iter().map(|t| Unresolved {
            name: &t.name,
            discovery: t.databases.as_ref(),
            url: t.url.as_deref().or(sources.database_url.as_deref()),
            password_file: t.password_file.as_deref().or(sources.password_file.as_deref()),
            pool: PoolSettings { max_size: t.max_connections.unwrap_or(sources.pool.max_size), ..sources.pool },
        });
        ("targets: url", specs.collect())
    } else {
        let only = Unresolved {
            name: DEFAULT_TARGET,
            discovery: None,
            url: sources.database_url.as_deref(),
            password_file: sources.password_file.as_deref(),
            pool: sources.pool,
        };
        ("--database.url / DATABASE_URL", vec![only])
    };
    unresolved
        .into_iter()
        .map(|t| {
            let database =
                dsn::resolve(&dsn::Source { url: t.url, origin, password_file: t.password_file, env: &sources.env })
                    .map_err(|cause| Error::Target { name: t.name.to_owned(), cause })?;
            // The connection string's (or PGCONNECT_TIMEOUT's) connect timeout bounds the whole connection
            // attempt, as in libpq: the pool's create timeout, not only the driver's TCP connect.
            let mut pool = t.pool;
            if let Some(limit) = database.config.get_connect_timeout() {
                pool.connect_timeout = pool.connect_timeout.min(*limit);
            }
            let t = Unresolved { pool, ..t };
            if t.discovery.is_some() && t.pool.max_size < 2 {
                return Err(Error::Discovery { name: t.name.to_owned() });
            }
            Ok(TargetConfig {
                name: t.name.to_owned(),
                labelled,
                database,
                pool: t.pool,
                discovery: t.discovery.cloned(),
            })
        })
        .collect()
}
