//! `requires:`: what a server must offer for a query to run.
//!
//! A query whose requirements are not met is skipped with a reason, never
//! failed; deciding that against a live server is the engine's job.

use std::fmt;

/// Preconditions of a query; when one is not met the query is skipped, not failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requires {
    /// Lowest server major version, inclusive.
    pub min_version: Option<u32>,
    /// Highest server major version, inclusive.
    pub max_version: Option<u32>,
    /// Extensions that must be installed in the database, optionally at a minimum/maximum version.
    pub extensions: Vec<ExtensionRequirement>,
    /// Tables that must exist (resolved with `to_regclass`).
    pub tables: Vec<String>,
    /// Server libraries that must be loaded (`shared_preload_libraries`); a library counts as
    /// loaded when the server knows one of its settings (`name.*` in `pg_settings`).
    pub libraries: Vec<String>,
}

/// `name` or `name OP version` in `requires.extensions` (OP one of `>=`, `>`, `=`, `<=`, `<`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRequirement {
    /// Extension name as in `pg_extension.extname`.
    pub name: String,
    /// Version constraint on `pg_extension.extversion`, if any.
    pub version: Option<VersionConstraint>,
}

/// `OP version` of an extension requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConstraint {
    /// How the installed version compares.
    pub op: VersionOp,
    /// The version's numeric parts (`1.8` is `[1, 8]`).
    pub version: Vec<u32>,
}

/// Comparison in an extension version constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOp {
    /// `>=`
    AtLeast,
    /// `>`
    Above,
    /// `=`
    Exactly,
    /// `<=`
    AtMost,
    /// `<`
    Below,
}

/// Operators as written, longest first so `>=` is not read as `>`.
const OPERATORS: [(&str, VersionOp); 5] = [
    (">=", VersionOp::AtLeast),
    ("<=", VersionOp::AtMost),
    (">", VersionOp::Above),
    ("<", VersionOp::Below),
    ("=", VersionOp::Exactly),
];

impl ExtensionRequirement {
    /// Parses `name` or `name OP 1.8`.
    pub fn parse(s: &str) -> Result<ExtensionRequirement, String> {
        let s = s.trim();
        let Some(at) = s.find(['>', '<', '=']) else {
            return if s.is_empty() || s.contains(char::is_whitespace) {
                Err(format!("invalid extension {s:?}"))
            } else {
                Ok(ExtensionRequirement { name: s.to_owned(), version: None })
            };
        };
        let name = s[..at].trim();
        let rest = &s[at..];
        let (op, version) = OPERATORS
            .iter()
            .find_map(|(token, op)| rest.strip_prefix(token).map(|v| (*op, v.trim())))
            .ok_or_else(|| format!("invalid version constraint {rest:?}"))?;
        let version = parse_version(version)
            .ok_or_else(|| format!("invalid version {version:?}: use digits and dots, e.g. 1.8"))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("invalid extension name {name:?}"));
        }
        Ok(ExtensionRequirement { name: name.to_owned(), version: Some(VersionConstraint { op, version }) })
    }

    /// Whether an installed version satisfies the constraint (non-numeric parts compare as 0).
    pub fn accepts(&self, installed: &str) -> bool {
        let Some(VersionConstraint { op, version: wanted }) = &self.version else { return true };
        let have: Vec<u32> = installed.split('.').map(|p| p.trim().parse().unwrap_or(0)).collect();
        let len = have.len().max(wanted.len());
        let pad = |v: &[u32]| (0..len).map(|i| v.get(i).copied().unwrap_or(0)).collect::<Vec<_>>();
        let ord = pad(&have).cmp(&pad(wanted));
        match op {
            VersionOp::AtLeast => ord.is_ge(),
            VersionOp::Above => ord.is_gt(),
            VersionOp::Exactly => ord.is_eq(),
            VersionOp::AtMost => ord.is_le(),
            VersionOp::Below => ord.is_lt(),
        }
    }
}

impl fmt::Display for ExtensionRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(VersionConstraint { op, version }) = &self.version {
            let op = OPERATORS.iter().find(|(_, o)| o == op).map_or("?", |(token, _)| token);
            let version: Vec<String> = version.iter().map(u32::to_string).collect();
            write!(f, " {op} {}", version.join("."))?;
        }
        Ok(())
    }
}

fn parse_version(s: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = s.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}
