//! libpq's conventions for what a connection string leaves out: the `PG*`
//! environment variables and the password file (`PGPASSFILE`, `~/.pgpass`),
//! with libpq's precedence: the connection string first, then the
//! environment, then the password file, then built-in defaults.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variables libpq reads, captured once so that resolution is testable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// No variables at all.
pub static NO_ENV: Env = Env { vars: BTreeMap::new() };

/// The variables captured: libpq's, plus `USER` and `HOME` for its defaults.
const NAMES: &[&str] = &[
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGPASSFILE",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "USER",
    "HOME",
];

impl Env {
    /// The variables of this process.
    pub fn from_process() -> Env {
        Env::from_pairs(NAMES.iter().filter_map(|n| Some((*n, std::env::var(n).ok()?))))
    }

    /// Given variables (for tests and for callers with their own environment).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Env {
        Env { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// A variable's value; empty values count as unset, as in libpq.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The password file libpq would read: `PGPASSFILE`, else `~/.pgpass`.
    pub fn passfile(&self) -> Option<PathBuf> {
        self.get("PGPASSFILE").map(PathBuf::from).or_else(|| self.get("HOME").map(|h| Path::new(h).join(".pgpass")))
    }
}

/// Why a password file was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassfileSkipped {
    /// Group or others may read or write it (libpq ignores such a file).
    Permissions(u32),
}

/// The password for `(host, port, database, user)` from the password file at `path`, as libpq
/// reads it: the first line whose fields all match (`*` matches anything; `\\` escapes `:` and `\\`).
/// A Unix-socket host matches `localhost`. A file that does not exist gives `Ok(None)`.
pub fn passfile_password(
    path: &Path,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Result<Option<String>, PassfileSkipped> {
    let Ok(meta) = std::fs::metadata(path) else { return Ok(None) };
    let mode = meta.permissions().mode();
    if meta.is_file() && mode & 0o077 != 0 {
        return Err(PassfileSkipped::Permissions(mode & 0o777));
    }
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let fields = split_fields(line);
        let [h, p, d, u, password] = fields.as_slice() else { continue };
        if [h, p, d, u].iter().zip(wanted).all(|(field, want)| field.as_str() == "*" || field.as_str() == want) {
            return Ok(Some(password.clone()));
        }
    }
    Ok(None)
}

/// The `:`-separated fields of a password-file line, with `\:` and `\\` unescaped.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().into_iter().for_each(|f| f.extend(chars.next())),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().into_iter().for_each(|f| f.push(c)),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passfile(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let (_dir, path) = passfile(
            "# comment\ndb1:5432:app:alice:first\n*:5432:*:alice:any\\:host\nlocalhost:6432:app:bob:p\\\\w\n",
            0o600,
        );
        assert_eq!(passfile_password(&path, "db1", 5432, "app", "alice"), Ok(Some("first".into())));
        assert_eq!(passfile_password(&path, "db2", 5432, "x", "alice"), Ok(Some("any:host".into())));
        assert_eq!(passfile_password(&path, "localhost", 6432, "app", "bob"), Ok(Some("p\\w".into())));
        assert_eq!(passfile_password(&path, "db1", 5433, "app", "alice"), Ok(None));
        assert_eq!(passfile_password(&path.with_extension("missing"), "db1", 5432, "app", "alice"), Ok(None));
    }

    #[test]
    fn a_file_others_may_read_is_ignored_as_libpq_does() {
        let (_dir, path) = passfile("*:*:*:*:secret\n", 0o644);
        assert_eq!(passfile_password(&path, "h", 5432, "d", "u"), Err(PassfileSkipped::Permissions(0o644)));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(passfile_password(&path, "h", 5432, "d", "u"), Ok(Some("secret".into())));
    }

    #[test]
    fn empty_variables_are_unset_and_the_passfile_defaults_to_home() {
        let env = Env::from_pairs([("PGHOST", ""), ("HOME", "/home/x")]);
        assert_eq!(env.get("PGHOST"), None);
        assert_eq!(env.passfile(), Some(PathBuf::from("/home/x/.pgpass")));
        let env = Env::from_pairs([("PGPASSFILE", "/etc/pgpass"), ("HOME", "/home/x")]);
        assert_eq!(env.passfile(), Some(PathBuf::from("/etc/pgpass")));
    }
}
