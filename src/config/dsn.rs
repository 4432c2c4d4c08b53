//! Where the database is: `DATABASE_URL` / `--database.url`, a password file,
//! and psql-like defaults, turned into a `tokio_postgres::Config`.
//!
//! This module is the only place that ever holds the password in clear; what
//! it hands out for display ([`Database::masked`]) never contains it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use super::libpq::{self, Env};
use super::tls::{self, SslMode};
use crate::defaults;
use std::time::Duration;

use tokio_postgres::config::Host;

/// Unix socket directory used when no host is given, as Debian's psql does.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Connection settings for one database.
#[derive(Clone)]
pub struct Database {
    /// Ready-to-use driver configuration (password included).
    pub config: tokio_postgres::Config,
    /// TLS as libpq's `sslmode` and `sslrootcert` asked for it.
    pub ssl: Ssl,
    /// The rustls configuration for `ssl`; `None` when TLS is disabled.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The same settings for humans: a URL with the password masked.
    pub masked: String,
}

/// libpq's TLS settings of one connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssl {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: the CA certificate file, if given.
    pub root_cert: Option<PathBuf>,
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
    /// The TLS settings are unusable.
    #[error("database TLS ({origin}): {reason}")]
    Tls {
        /// Where the string came from.
        origin: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The password file could not be read.
    #[error("cannot read password file {path}: {cause}")]
    PasswordFile {
        /// The file.
        path: String,
        /// The underlying error (part of the message, said once).
        cause: std::io::Error,
    },
}

/// Where the database settings come from; `None` fields fall back to defaults.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// `--database.url` or `DATABASE_URL`.
    pub url: Option<&'a str>,
    /// Description of where `url` came from, for error messages.
    pub origin: &'static str,
    /// `DATABASE_PASSWORD_FILE`: used when the URL has no password.
    pub password_file: Option<&'a Path>,
    /// libpq's environment variables, for what the URL leaves out.
    pub env: &'a Env,
}

impl Default for Source<'_> {
    /// No URL, no password file, an empty environment.
    fn default() -> Self {
        Source { url: None, origin: "", password_file: None, env: &libpq::NO_ENV }
    }
}

/// Builds the connection settings from `source`, applying psql-like defaults.
pub fn resolve(source: &Source<'_>) -> Result<Database, Error> {
    let origin = source.origin;
    let (mut config, mut ssl) = match source.url.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) => {
            let (rest, ssl) = split_ssl(url).map_err(|reason| Error::Parse { origin, reason: scrub(&reason, url) })?;
            let config = tokio_postgres::Config::from_str(&rest)
                .map_err(|e| Error::Parse { origin, reason: scrub(&e.to_string(), url) })?;
            (config, ssl)
        }
        None => (tokio_postgres::Config::new(), SslKeys::default()),
    };
    // libpq's precedence: the connection string, then the environment, then the defaults.
    ssl.mode = ssl.mode.or_else(|| source.env.get("PGSSLMODE").map(str::to_owned));
    ssl.root_cert = ssl.root_cert.or_else(|| source.env.get("PGSSLROOTCERT").map(str::to_owned));
    if let Some(key) = ssl.unsupported.first() {
        return Err(Error::Tls { origin, reason: format!("{key} (client certificates) is not supported") });
    }
    let mode = match ssl.mode.as_deref() {
        None => SslMode::Prefer,
        Some(m) => SslMode::parse(m).ok_or_else(|| Error::Tls {
            origin,
            // The value is not repeated: in a mangled URL it may run into the password.
            reason: format!(
                "unknown sslmode ({} characters): use disable, allow, prefer, require, verify-ca or verify-full",
                m.chars().count()
            ),
        })?,
    };
    let root_cert = ssl.root_cert.clone().map(PathBuf::from);
    let tls = tls::client_config(mode, root_cert.as_deref()).map_err(|reason| Error::Tls { origin, reason })?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    fill_from_env(&mut config, source)?;
    if config.get_password().is_none() {
        password(&mut config, source)?;
    }
    config.keepalives(true);
    config.keepalives_idle(defaults::KEEPALIVES_IDLE);
    let mut masked = mask(&config);
    if mode != SslMode::Prefer {
        masked.push_str(&format!("?sslmode={}", ssl.mode.as_deref().unwrap_or_default()));
    }
    Ok(Database { config, ssl: Ssl { mode, root_cert }, tls: tls.map(Arc::new), masked })
}

/// Fills what the connection string left out from libpq's variables, then from the defaults.
fn fill_from_env(config: &mut tokio_postgres::Config, source: &Source<'_>) -> Result<(), Error> {
    let env = source.env;
    if config.get_hosts().is_empty() {
        match env.get("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',').map(str::trim) {
                    if host.starts_with('/') {
                        config.host_path(host);
                    } else {
                        config.host(host);
                    }
                }
            }
            None => {
                config.host_path(DEFAULT_SOCKET_DIR);
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(ports) = env.get("PGPORT")
    {
        for port in ports.split(',').map(str::trim) {
            let port = port
                .parse()
                .map_err(|_| Error::Parse { origin: "PGPORT", reason: format!("{port:?} is not a port number") })?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        config.user(env.get("PGUSER").or(env.get("USER")).unwrap_or("postgres"));
    }
    if config.get_dbname().is_none() {
        match env.get("PGDATABASE") {
            Some(db) => {
                config.dbname(db);
            }
            None if source.url.is_none() => {
                config.dbname("postgres");
            }
            None => {}
        }
    }
    if config.get_application_name().is_none() {
        config.application_name(env.get("PGAPPNAME").unwrap_or("runbook-exporter"));
    }
    if config.get_connect_timeout().is_none()
        // libpq: seconds, 0 means wait forever (here: --database.connect-timeout), less than 2 counts as 2.
        && let Some(secs) = env.get("PGCONNECT_TIMEOUT").and_then(|s| s.trim().parse::<u64>().ok()).filter(|s| *s > 0)
    {
        config.connect_timeout(Duration::from_secs(secs.max(2)));
    }
    Ok(())
}

/// The password when the connection string has none: `--database.password-file`, then
/// `PGPASSWORD`, then the password file (`PGPASSFILE` or `~/.pgpass`), as libpq orders them.
fn password(config: &mut tokio_postgres::Config, source: &Source<'_>) -> Result<(), Error> {
    if let Some(path) = source.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::PasswordFile { path: path.display().to_string(), cause: e })?;
        config.password(text.trim_end_matches(['\n', '\r']));
        return Ok(());
    }
    if let Some(password) = source.env.get("PGPASSWORD") {
        config.password(password);
        return Ok(());
    }
    let Some(passfile) = source.env.passfile() else { return Ok(()) };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq matches a Unix-socket connection against "localhost".
        Some(Host::Unix(_)) | None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default().to_owned();
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    match libpq::passfile_password(&passfile, &host, port, &database, &user) {
        Ok(Some(password)) => {
            config.password(password);
        }
        Ok(None) => {}
        Err(libpq::PassfileSkipped::Permissions(mode)) => tracing::warn!(
            file = %passfile.display(),
            mode = format!("{mode:o}"),
            "password file has group or world access and is ignored; permissions should be u=rw (0600) or less"
        ),
    }
    Ok(())
}

/// libpq TLS keys taken out of a connection string (tokio-postgres rejects most of them).
#[derive(Debug, Default, PartialEq)]
struct SslKeys {
    mode: Option<String>,
    root_cert: Option<String>,
    unsupported: Vec<String>,
}

/// Splits the libpq TLS keys from the rest of a URL or key=value connection string.
fn split_ssl(input: &str) -> Result<(String, SslKeys), String> {
    // "://" before any "=" means a URL (rather than key=value with a URL-like value).
    let url_like = input.find("://").is_some_and(|i| input.find('=').is_none_or(|eq| i < eq));
    if url_like && !input.starts_with("postgres://") && !input.starts_with("postgresql://") {
        return Err("a URL must start with postgres:// or postgresql://".to_owned());
    }
    let mut keys = SslKeys::default();
    let mut take = |key: &str, value: String| -> bool {
        match key {
            "sslmode" => keys.mode = Some(value),
            "sslrootcert" => keys.root_cert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => keys.unsupported.push(key.to_owned()),
            _ => return false,
        }
        true
    };
    if input.starts_with("postgres://") || input.starts_with("postgresql://") {
        let Some((base, query)) = input.split_once('?') else { return Ok((input.to_owned(), keys)) };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k, percent_decode(v))
            })
            .collect();
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, keys));
    }
    let mut kept = Vec::new();
    for (k, v) in key_values(input)? {
        if !take(&k, v.clone()) {
            kept.push(format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    Ok((kept.join(" "), keys))
}

/// Tokenizes libpq's `key=value key='quoted value'` form.
fn key_values(input: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after option {} (options count from 1)", out.len() + 1));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value of option {}", out.len() + 1)),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Option names that may stay quoted in a driver message.
const OPTION_NAMES: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// A driver message about `input` with nothing of the input left in it but option names.
///
/// The driver quotes what it could not parse (for a mistyped scheme, the whole URL, password
/// included), so every quoted part that is not an option name is redacted, and so is every word
/// of four or more characters that occurs in the input.
fn scrub(message: &str, input: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"', '\'']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        match rest.find(quote) {
            Some(close) => {
                let inner = &rest[..close];
                out.push_str(if OPTION_NAMES.contains(&inner) { inner } else { "<redacted>" });
                out.push(quote);
                rest = &rest[close + 1..];
            }
            None => {
                out.push_str("<redacted>");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| c == ':' || c == ',' || c == '.' || c == '(' || c == ')');
            if core.chars().count() >= 4 && input.contains(core) && core != "<redacted>" { "<redacted>" } else { word }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
