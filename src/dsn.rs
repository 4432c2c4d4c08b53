//! Where the database is: `DATABASE_URL` / `--database.url`, a password file,
//! and psql-like defaults, turned into a `tokio_postgres::Config`.
//!
//! This module is the only place that ever holds the password in clear; what
//! it hands out for display ([`Database::masked`]) never contains it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

/// Unix socket directory used when no host is given, as Debian's psql does.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Connection settings for one database.
#[derive(Clone)]
pub struct Database {
    /// Ready-to-use driver configuration (password included).
    pub config: tokio_postgres::Config,
    /// The same settings for humans: a URL with the password masked.
    pub masked: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("masked", &self.masked).finish()
    }
}

/// Why the connection settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL or key=value string did not parse. The message never repeats the input.
    #[error("invalid database URL ({origin}): {reason}")]
    Parse {
        /// Where the string came from (flag or environment variable).
        origin: &'static str,
        /// The driver's reason, without the string itself.
        reason: String,
    },
    /// The password file could not be read.
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Where the database settings come from; `None` fields fall back to defaults.
#[derive(Debug, Default, Clone)]
pub struct Source<'a> {
    /// `--database.url` or `DATABASE_URL`.
    pub url: Option<&'a str>,
    /// Description of where `url` came from, for error messages.
    pub origin: &'static str,
    /// `DATABASE_PASSWORD_FILE`: used when the URL has no password.
    pub password_file: Option<&'a Path>,
    /// Value of `PGUSER`, else `USER`, for the default user.
    pub default_user: Option<String>,
}

/// Builds the connection settings from `source`, applying psql-like defaults.
pub fn resolve(source: &Source<'_>) -> Result<Database, Error> {
    let mut config = match source.url.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) => tokio_postgres::Config::from_str(url)
            .map_err(|e| Error::Parse { origin: source.origin, reason: scrub(&e.to_string(), url) })?,
        None => tokio_postgres::Config::new(),
    };
    if config.get_hosts().is_empty() {
        config.host_path(DEFAULT_SOCKET_DIR);
    }
    if config.get_user().is_none() {
        config.user(source.default_user.clone().unwrap_or_else(|| "postgres".to_owned()));
    }
    if source.url.is_none() && config.get_dbname().is_none() {
        config.dbname("postgres");
    }
    if config.get_password().is_none()
        && let Some(path) = source.password_file
    {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::PasswordFile { path: path.display().to_string(), source: e })?;
        config.password(text.trim_end_matches(['\n', '\r']));
    }
    if config.get_application_name().is_none() {
        config.application_name("runbook-exporter");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    let masked = mask(&config);
    Ok(Database { config, masked })
}

/// Renders `config` as a URL with any password replaced by `****`.
pub fn mask(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or_default();
    let password = if config.get_password().is_some() { ":****" } else { "" };
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string().replace('/', "%2F"),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}{password}@{}/{db}", hosts.join(","))
}

/// Removes any occurrence of the raw input from a driver message.
fn scrub(message: &str, input: &str) -> String {
    if input.len() >= 4 { message.replace(input, "<redacted>") } else { message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_url(url: &str) -> Database {
        resolve(&Source { url: Some(url), origin: "test", ..Default::default() }).unwrap()
    }

    #[test]
    fn url_password_is_masked() {
        let db = resolve_url("postgres://alice:s3cret@db.example:6432/ignition?sslmode=disable");
        assert_eq!(db.masked, "postgres://alice:****@db.example:6432/ignition");
        assert_eq!(db.config.get_password(), Some(&b"s3cret"[..]));
        assert!(!format!("{db:?}").contains("s3cret"));
    }

    #[test]
    fn key_value_form_is_accepted() {
        let db = resolve_url("host=127.0.0.1 port=5433 user=bob password=pw dbname=x");
        assert_eq!(db.masked, "postgres://bob:****@127.0.0.1:5433/x");
    }

    #[test]
    fn defaults_follow_psql() {
        let db = resolve(&Source { default_user: Some("carol".into()), ..Default::default() }).unwrap();
        assert_eq!(db.masked, "postgres://carol@%2Fvar%2Frun%2Fpostgresql:5432/postgres");
        assert_eq!(db.config.get_application_name(), Some("runbook-exporter"));
    }

    #[test]
    fn password_file_fills_missing_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let with_file = |url| {
            resolve(&Source { url: Some(url), origin: "test", password_file: Some(&file), ..Default::default() })
                .unwrap()
        };
        assert_eq!(with_file("postgres://u@h/d").config.get_password(), Some(&b"from-file"[..]));
        assert_eq!(with_file("postgres://u:inline@h/d").config.get_password(), Some(&b"inline"[..]));
    }

    #[test]
    fn parse_error_does_not_echo_the_password() {
        let err = resolve(&Source {
            url: Some("postgres://u:hunter22@h:notaport/d"),
            origin: "DATABASE_URL",
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn missing_password_file_is_a_clear_error() {
        let err =
            resolve(&Source { password_file: Some(Path::new("/nonexistent/pw")), ..Default::default() }).unwrap_err();
        assert!(err.to_string().starts_with("cannot read password file /nonexistent/pw"), "{err}");
    }
}
