//! Where the database is: `DATABASE_URL` / `--database.url`, a password file,
//! and psql-like defaults, turned into a `tokio_postgres::Config`.
//!
//! This module is the only place that ever holds the password in clear; what
//! it hands out for display ([`Database::masked`]) never contains it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::db::tls::{self, SslMode};

use tokio_postgres::config::Host;

/// Unix socket directory used when no host is given, as Debian's psql does.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Connection settings for one database.
#[derive(Clone)]
pub struct Database {
    /// Ready-to-use driver configuration (password included).
    pub config: tokio_postgres::Config,
    /// TLS as libpq's `sslmode` and `sslrootcert` asked for it.
    pub ssl: (SslMode, Option<PathBuf>),
    /// The rustls configuration for `ssl`; `None` when TLS is disabled.
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
    let origin = source.origin;
    let (mut config, ssl) = match source.url.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) => {
            let (rest, ssl) = split_ssl(url).map_err(|reason| Error::Parse { origin, reason: scrub(&reason, url) })?;
            let config = tokio_postgres::Config::from_str(&rest)
                .map_err(|e| Error::Parse { origin, reason: scrub(&e.to_string(), url) })?;
            (config, ssl)
        }
        None => (tokio_postgres::Config::new(), SslKeys::default()),
    };
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
            .map_err(|e| Error::PasswordFile { path: path.display().to_string(), cause: e })?;
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
    let mut masked = mask(&config);
    if mode != SslMode::Prefer {
        masked.push_str(&format!("?sslmode={}", ssl.mode.as_deref().unwrap_or_default()));
    }
    Ok(Database { config, ssl: (mode, root_cert), tls: tls.map(Arc::new), masked })
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
mod tests {
    use super::*;

    fn resolve_url(url: &str) -> Database {
        resolve(&Source { url: Some(url), origin: "test", ..Default::default() }).unwrap()
    }

    #[test]
    fn url_password_is_masked() {
        let db = resolve_url("postgres://alice:s3cret@db.example:6432/ignition?sslmode=disable");
        assert_eq!(db.masked, "postgres://alice:****@db.example:6432/ignition?sslmode=disable");
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
    fn libpq_tls_keys_are_taken_out_of_both_forms() {
        let (rest, keys) =
            split_ssl("postgres://u@h/d?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.crt").unwrap();
        assert_eq!(rest, "postgres://u@h/d?application_name=x");
        assert_eq!((keys.mode.as_deref(), keys.root_cert.as_deref()), (Some("verify-full"), Some("/etc/ca.crt")));
        let (rest, keys) = split_ssl("host=h sslmode = require sslrootcert='/a b/c\\'d' password='p w'").unwrap();
        assert_eq!(rest, "host='h' password='p w'");
        assert_eq!((keys.mode.as_deref(), keys.root_cert.as_deref()), (Some("require"), Some("/a b/c'd")));
        assert!(split_ssl("host='unterminated").is_err());
        assert_eq!(split_ssl("host=h sslcert=c").unwrap().1.unsupported, vec!["sslcert"]);
    }

    #[test]
    fn a_mistyped_scheme_is_named_and_a_url_like_value_is_fine() {
        let err =
            resolve(&Source { url: Some("postgress://u:pw1234@h/d"), origin: "t", ..Default::default() }).unwrap_err();
        assert!(
            err.to_string().contains("must start with postgres://") && !err.to_string().contains("pw1234"),
            "{err}"
        );
        let db = resolve_url("host=h user=u application_name='http://x' sslmode=disable");
        assert_eq!(db.config.get_application_name(), Some("http://x"));
    }

    #[test]
    fn tls_settings_are_checked_before_connecting() {
        let err =
            |url| resolve(&Source { url: Some(url), origin: "test", ..Default::default() }).unwrap_err().to_string();
        assert!(err("postgres://u@h/d?sslmode=verify-full").contains("need sslrootcert"));
        assert!(err("postgres://u@h/d?sslmode=sometimes").contains("unknown sslmode"));
        assert!(err("host=h sslkey=/k").contains("sslkey (client certificates) is not supported"));
        // The path is not repeated: in a mangled connection string it may run into the password.
        let missing = err("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt");
        assert!(missing.contains("sslrootcert (the file named in the connection string)"), "{missing}");
        assert!(!missing.contains("/nonexistent"), "{missing}");
        let db = resolve_url("postgres://u@h/d?sslmode=disable");
        assert!(db.tls.is_none() && db.masked.ends_with("?sslmode=disable"));
        assert!(resolve_url("postgres://u@h/d").tls.is_some(), "libpq's default is prefer");
    }

    #[test]
    fn driver_messages_keep_option_names_only() {
        let input = "postgress://u:Secret-pw1@db/app port=x";
        assert_eq!(scrub("unknown option `postgress://u:Secret-pw1@db/app`", input), "unknown option `<redacted>`");
        assert_eq!(scrub("invalid value for option `port`", input), "invalid value for option `port`");
        assert_eq!(
            scrub("invalid connection string: Secret-pw1@db/app", input),
            "invalid connection string: <redacted>"
        );
    }

    #[test]
    fn missing_password_file_is_a_clear_error() {
        let err =
            resolve(&Source { password_file: Some(Path::new("/nonexistent/pw")), ..Default::default() }).unwrap_err();
        assert!(err.to_string().starts_with("cannot read password file /nonexistent/pw"), "{err}");
    }
}
