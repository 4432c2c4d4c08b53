//! The query catalogue: loading `queries.yaml` and validating it.
//!
//! [`load`] reads a file, parses it into the `raw` mirror and turns it into a
//! [`Catalogue`], collecting *every* problem at once as a [`Diagnostic`]
//! (file, line, column, field).
//! Everything downstream takes only the validated types defined here: a
//! `Catalogue` that exists is one whose names, labels and durations are legal.

mod raw;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use serde_saphyr::{Location, Spanned};

pub use raw::MetricKind;

/// The largest catalogue file accepted; bigger files are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Metric-name prefix reserved for the exporter's own metrics.
pub const SELF_PREFIX: &str = "runbook_exporter_";

/// Metric names the exporter emits itself and a catalogue may not reuse.
const RESERVED_NAMES: &[&str] = &["pg_up"];

/// A validated catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// The file it was loaded from, for messages.
    pub source: String,
    /// Databases named in the `targets:` block; empty means one database from `DATABASE_URL`.
    pub targets: Vec<TargetSpec>,
    /// Queries in file order.
    pub queries: Vec<Query>,
    /// Metric families in order of first appearance; a family may be fed by several queries.
    pub families: Vec<Family>,
}

/// A database named in the `targets:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Name, used in the `target` label and in `/probe?target=`.
    pub name: String,
    /// Connection URL; `None` falls back to `DATABASE_URL`.
    pub url: Option<String>,
    /// File holding the password, used when the URL has none.
    pub password_file: Option<std::path::PathBuf>,
    /// Pool size for this target; `None` uses the command-line default.
    pub max_connections: Option<usize>,
}

/// Which servers a query is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Only a server that is not in recovery.
    Primary,
    /// Only a standby.
    Replica,
}

/// One validated query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Unique name, used as the `query` label of self-metrics.
    pub name: String,
    /// What it measures, with the runbook section.
    pub help: String,
    /// The single SELECT statement.
    pub sql: String,
    /// Server-side `statement_timeout`, also the client-side bound (plus a margin).
    pub timeout: Duration,
    /// Server-side `lock_timeout`.
    pub lock_timeout: Duration,
    /// How long a successful result may be served again; zero means every scrape.
    pub ttl: Duration,
    /// Series budget for one execution.
    pub max_series: usize,
    /// Refresh a cached result in the background shortly before it expires, and serve the
    /// last good result (up to twice its ttl old) while the refresh runs, so no scrape waits.
    pub refresh_ahead: bool,
    /// What the server must offer for the query to run.
    pub requires: Requires,
    /// Targets the query runs on; empty means every target.
    pub targets: Vec<String>,
    /// Server role the query is meant for, if any.
    pub role: Option<Role>,
    /// What to make of each row.
    pub metrics: Vec<Metric>,
}

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
}

/// `name` or `name OP version` in `requires.extensions` (OP one of `>=`, `>`, `=`, `<=`, `<`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRequirement {
    /// Extension name as in `pg_extension.extname`.
    pub name: String,
    /// Version constraint on `pg_extension.extversion`, if any.
    pub version: Option<(VersionOp, Vec<u32>)>,
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

impl ExtensionRequirement {
    /// Parses `name` or `name OP 1.8`.
    pub fn parse(s: &str) -> Result<ExtensionRequirement, String> {
        let s = s.trim();
        let split = s.find(['>', '<', '=']);
        let Some(at) = split else {
            return if s.is_empty() || s.contains(char::is_whitespace) {
                Err(format!("invalid extension {s:?}"))
            } else {
                Ok(ExtensionRequirement { name: s.to_owned(), version: None })
            };
        };
        let name = s[..at].trim();
        let rest = &s[at..];
        let (op, version) = [
            (">=", VersionOp::AtLeast),
            ("<=", VersionOp::AtMost),
            (">", VersionOp::Above),
            ("<", VersionOp::Below),
            ("=", VersionOp::Exactly),
        ]
        .iter()
        .find_map(|(token, op)| rest.strip_prefix(token).map(|v| (*op, v.trim())))
        .ok_or_else(|| format!("invalid version constraint {rest:?}"))?;
        let parsed = parse_version(version)
            .ok_or_else(|| format!("invalid version {version:?}: use digits and dots, e.g. 1.8"))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("invalid extension name {name:?}"));
        }
        Ok(ExtensionRequirement { name: name.to_owned(), version: Some((op, parsed)) })
    }

    /// Whether an installed version satisfies the constraint (non-numeric parts compare as 0).
    pub fn accepts(&self, installed: &str) -> bool {
        let Some((op, wanted)) = &self.version else { return true };
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
        if let Some((op, v)) = &self.version {
            let op = match op {
                VersionOp::AtLeast => ">=",
                VersionOp::Above => ">",
                VersionOp::Exactly => "=",
                VersionOp::AtMost => "<=",
                VersionOp::Below => "<",
            };
            let v: Vec<String> = v.iter().map(u32::to_string).collect();
            write!(f, " {op} {}", v.join("."))?;
        }
        Ok(())
    }
}

fn parse_version(s: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = s.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// How one metric is read from a query's rows.
#[derive(Debug, Clone)]
pub struct Metric {
    /// Index into [`Catalogue::families`].
    pub family: usize,
    /// Column holding the sample value.
    pub value_column: String,
    /// Columns that become labels, in order; the label name is the column name.
    pub label_columns: Vec<String>,
    /// Constant labels appended after the column labels.
    pub const_labels: Vec<(String, String)>,
}

/// A metric family as exposed: one HELP/TYPE header and the series of all its sources.
#[derive(Debug, Clone)]
pub struct Family {
    /// Name without the `_total` suffix of counters.
    pub name: String,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// HELP text, whitespace collapsed to single spaces.
    pub help: String,
    /// Label names, sorted; every source has this same set.
    pub label_names: Vec<String>,
    /// `(query index, metric index)` of every metric feeding this family.
    pub sources: Vec<(usize, usize)>,
}

/// One problem found in a catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// The field, as a path (`queries.connections.metrics[0].name`).
    pub field: String,
    /// What is wrong, lower-case, no trailing period.
    pub message: String,
}

/// Why a catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read catalogue: {cause}")]
    Io {
        /// The path as given.
        file: String,
        /// The underlying error (part of the message, not a separate source, so it is said once).
        cause: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{file}: catalogue is larger than {limit} bytes, refusing to parse it")]
    TooLarge {
        /// The path as given.
        file: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is not valid YAML or does not have the catalogue's shape.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The path as given.
        file: String,
        /// 1-based line, 0 when unknown.
        line: u64,
        /// 1-based column, 0 when unknown.
        column: u64,
        /// The parser's message.
        message: String,
    },
    /// The file parsed but breaks one or more rules.
    #[error("{}", render_diagnostics(file, diagnostics))]
    Invalid {
        /// The path as given.
        file: String,
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render_diagnostics(file: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = format!("{file}: {} problem(s) in catalogue", diagnostics.len());
    for d in diagnostics {
        out.push_str(&format!("\n{file}:{}:{}: {}: {}", d.line, d.column, d.field, d.message));
    }
    out
}

/// Reads and validates the catalogue at `path`.
pub fn load(path: &Path) -> Result<Catalogue, Error> {
    let file = path.display().to_string();
    let io = |cause| Error::Io { file: file.clone(), cause };
    // Opening a FIFO or a device would block or never end: only regular files are read.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file" };
        return Err(Error::Io { file, cause: std::io::Error::other(kind) });
    }
    let handle = std::fs::File::open(path).map_err(io)?;
    // Read at most one byte past the limit so a huge file is refused without reading it whole.
    let mut bytes = Vec::new();
    handle.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge { file, limit: MAX_FILE_BYTES });
    }
    let text = String::from_utf8(bytes).map_err(|e| Error::Syntax {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("catalogue is not valid UTF-8: {e}"),
    })?;
    parse(&text, &file)
}

/// Parses and validates catalogue text; `file` is only used in messages.
pub fn parse(text: &str, file: &str) -> Result<Catalogue, Error> {
    let raw: raw::File = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        Error::Syntax { file: file.to_owned(), line, column, message: syntax_message(&e) }
    })?;
    let mut v = Validator { diagnostics: Vec::new(), families: Vec::new(), family_at: HashMap::new() };
    let catalogue = v.catalogue(raw, file);
    if v.diagnostics.is_empty() {
        Ok(catalogue)
    } else {
        v.diagnostics.sort_by_key(|d| (d.line, d.column));
        Err(Error::Invalid { file: file.to_owned(), diagnostics: v.diagnostics })
    }
}

/// Parser limits: a catalogue is small, so anything alias-heavy or huge is hostile.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_events = 200_000;
    budget.max_recorded_anchor_events = 50_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// The parser's message on one line, without its source snippet.
fn syntax_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or_default().trim();
    // The location is already in our prefix; drop the parser's own copy of it,
    // and its advice to the programmer about parser options.
    let first = first.rfind(" at line ").map_or(first, |i| &first[..i]);
    let first = first.find(", set DuplicateKeyPolicy").map_or(first, |i| &first[..i]);
    first.to_owned()
}

struct Validator {
    diagnostics: Vec<Diagnostic>,
    families: Vec<Family>,
    /// Family name → (index in `families`, where it was first defined).
    family_at: HashMap<String, (usize, Location)>,
}

/// Settings that `defaults:` may set and queries may override.
struct Inherited {
    refresh_ahead: bool,
    timeout: Duration,
    lock_timeout: Duration,
    ttl: Duration,
    max_series: usize,
}

impl Validator {
    fn report(&mut self, at: Location, field: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            line: at.line(),
            column: at.column(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn catalogue(&mut self, raw: raw::File, file: &str) -> Catalogue {
        let fallback = Inherited {
            refresh_ahead: false,
            timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(1),
            ttl: Duration::ZERO,
            max_series: 1000,
        };
        let d = &raw.defaults;
        let defaults = Inherited {
            refresh_ahead: d.refresh_ahead.as_ref().is_some_and(|r| r.value),
            timeout: self.positive(d.timeout.as_ref(), "defaults.timeout", fallback.timeout),
            lock_timeout: self.positive(d.lock_timeout.as_ref(), "defaults.lock_timeout", fallback.lock_timeout),
            ttl: self.duration(d.ttl.as_ref(), "defaults.ttl", fallback.ttl),
            max_series: self.budget(d.max_series.as_ref(), "defaults.max_series", fallback.max_series),
        };
        if raw.queries.value.is_empty() {
            self.report(raw.queries.referenced, "queries", "the catalogue has no queries");
        }
        let targets = raw.targets.map(|t| self.targets(t)).unwrap_or_default();
        let target_names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let mut queries = Vec::new();
        for (name, q) in raw.queries.value {
            let qi = queries.len();
            let query = self.query(&name, q, &defaults, &target_names, qi);
            queries.push(query);
        }
        Catalogue { source: file.to_owned(), targets, queries, families: std::mem::take(&mut self.families) }
    }

    fn query(
        &mut self,
        name: &Spanned<String>,
        q: raw::Query,
        defaults: &Inherited,
        target_names: &[String],
        qi: usize,
    ) -> Query {
        let path = format!("queries.{}", name.value);
        if !is_query_name(&name.value) {
            self.report(
                name.referenced,
                &path,
                format!("invalid query name {:?}: use lower-case letters, digits and _", name.value),
            );
        }
        let help = collapse_whitespace(&q.help.value);
        if help.is_empty() {
            self.report(q.help.referenced, format!("{path}.help"), "help must not be empty");
        }
        if q.sql.value.trim().is_empty() {
            self.report(q.sql.referenced, format!("{path}.sql"), "sql must not be empty");
        }
        let requires = self.requires(&q.requires, &path);
        let ttl = self.duration(q.ttl.as_ref(), &format!("{path}.ttl"), defaults.ttl);
        let refresh_ahead = match &q.refresh_ahead {
            Some(r) if r.value && ttl.is_zero() => {
                self.report(r.referenced, format!("{path}.refresh_ahead"), "refresh_ahead needs a ttl above 0s");
                false
            }
            Some(r) => r.value,
            // Inherited from defaults: only meaningful where there is a ttl.
            None => defaults.refresh_ahead && !ttl.is_zero(),
        };
        for t in &q.targets {
            if !target_names.contains(&t.value) {
                let known = if target_names.is_empty() {
                    "the catalogue has no targets: block".to_owned()
                } else {
                    format!("known: {}", target_names.join(", "))
                };
                self.report(t.referenced, format!("{path}.targets"), format!("unknown target {:?} ({known})", t.value));
            }
        }
        let role = q.role.as_ref().and_then(|r| match r.value.as_str() {
            "primary" => Some(Role::Primary),
            "replica" => Some(Role::Replica),
            other => {
                self.report(
                    r.referenced,
                    format!("{path}.role"),
                    format!("unknown role {other:?}: use primary or replica"),
                );
                None
            }
        });
        let allowed: Vec<String> = q.allow_functions.iter().map(|f| f.value.to_lowercase()).collect();
        if let Some(f) = side_effecting_function(&q.sql.value, &allowed) {
            self.report(
                q.sql.referenced,
                format!("{path}.sql"),
                format!("calls {f}(), which has side effects; list it in allow_functions to run it anyway"),
            );
        }
        if q.metrics.value.is_empty() {
            self.report(q.metrics.referenced, format!("{path}.metrics"), "a query needs at least one metric");
        }
        let mut metrics = Vec::new();
        let mut seen: HashMap<String, Location> = HashMap::new();
        for (mi, m) in q.metrics.value.into_iter().enumerate() {
            let mpath = format!("{path}.metrics[{mi}]");
            let kind = match m.kind.value.as_str() {
                "gauge" => MetricKind::Gauge,
                "counter" => MetricKind::Counter,
                other => {
                    self.report(
                        m.kind.referenced,
                        format!("{mpath}.type"),
                        format!("unknown metric type {other:?}: use gauge or counter"),
                    );
                    MetricKind::Gauge
                }
            };
            let family_name = m.name.value.strip_suffix("_total").filter(|_| kind == MetricKind::Counter);
            let family_name = family_name.unwrap_or(&m.name.value).to_owned();
            if let Some(first) = seen.insert(family_name.clone(), m.name.referenced) {
                self.report(
                    m.name.referenced,
                    format!("{mpath}.name"),
                    format!(
                        "metric {:?} is defined twice in this query (first at line {})",
                        m.name.value,
                        first.line()
                    ),
                );
                continue;
            }
            self.metric_name(&m, kind, &mpath);
            let labels = self.labels(&m, &mpath);
            if !target_names.is_empty() && labels.iter().any(|l| l == "target") {
                self.report(
                    m.name.referenced,
                    format!("{mpath}.labels"),
                    "label \"target\" is reserved when the catalogue has a targets: block",
                );
            }
            let metric_help = m.help.as_ref().map(|h| collapse_whitespace(&h.value)).unwrap_or_else(|| help.clone());
            let mut label_names = labels.clone();
            label_names.sort();
            let family = match self.family_at.get(&family_name) {
                Some(&(fi, first)) => {
                    let (f_kind, f_labels) = (self.families[fi].kind, self.families[fi].label_names.clone());
                    if f_kind != kind {
                        let message =
                            format!("metric {family_name:?} is a {kind} here but a {f_kind} at line {}", first.line());
                        self.report(m.kind.referenced, format!("{mpath}.type"), message);
                    } else if f_labels != label_names {
                        let message = format!(
                            "metric {family_name:?} has labels {label_names:?} here but {f_labels:?} at line {}",
                            first.line()
                        );
                        self.report(m.name.referenced, format!("{mpath}.labels"), message);
                    }
                    self.families[fi].sources.push((qi, mi));
                    fi
                }
                None => {
                    self.family_at.insert(family_name.clone(), (self.families.len(), m.name.referenced));
                    self.families.push(Family {
                        name: family_name,
                        kind,
                        help: metric_help,
                        label_names,
                        sources: vec![(qi, mi)],
                    });
                    self.families.len() - 1
                }
            };
            if labels.contains(&m.value.value) {
                self.report(
                    m.value.referenced,
                    format!("{mpath}.value"),
                    format!("column {:?} is both the value and a label", m.value.value),
                );
            }
            if m.value.value.is_empty() {
                self.report(m.value.referenced, format!("{mpath}.value"), "value must name a column");
            }
            metrics.push(Metric {
                family,
                value_column: m.value.value,
                label_columns: m.labels.into_iter().map(|l| l.value).collect(),
                const_labels: m.const_labels.into_iter().map(|(k, v)| (k.value, v.value)).collect(),
            });
        }
        Query {
            name: name.value.clone(),
            help,
            sql: q.sql.value,
            timeout: self.positive(q.timeout.as_ref(), &format!("{path}.timeout"), defaults.timeout),
            lock_timeout: self.positive(
                q.lock_timeout.as_ref(),
                &format!("{path}.lock_timeout"),
                defaults.lock_timeout,
            ),
            ttl,
            refresh_ahead,
            max_series: self.budget(q.max_series.as_ref(), &format!("{path}.max_series"), defaults.max_series),
            requires,
            targets: q.targets.into_iter().map(|t| t.value).collect(),
            role,
            metrics,
        }
    }

    fn targets(&mut self, raw: Spanned<IndexMap<Spanned<String>, raw::Target>>) -> Vec<TargetSpec> {
        if raw.value.is_empty() {
            self.report(raw.referenced, "targets", "targets: is empty; leave it out to use DATABASE_URL");
        }
        let mut out = Vec::new();
        for (name, t) in raw.value {
            let path = format!("targets.{}", name.value);
            if !is_target_name(&name.value) {
                self.report(
                    name.referenced,
                    &path,
                    format!("invalid target name {:?}: use letters, digits, - and _", name.value),
                );
            }
            let max_connections = t.max_connections.as_ref().map(|m| {
                if m.value == 0 || m.value > 100 {
                    self.report(m.referenced, format!("{path}.max_connections"), "must be between 1 and 100");
                }
                usize::from(m.value.clamp(1, 100))
            });
            out.push(TargetSpec {
                name: name.value,
                url: t.url.map(|u| u.value),
                password_file: t.password_file.map(|p| std::path::PathBuf::from(p.value)),
                max_connections,
            });
        }
        out
    }

    fn metric_name(&mut self, m: &raw::Metric, kind: MetricKind, mpath: &str) {
        let name = &m.name.value;
        let field = format!("{mpath}.name");
        if !is_metric_name(name) {
            self.report(
                m.name.referenced,
                field,
                format!("invalid metric name {name:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"),
            );
        } else if name.starts_with(SELF_PREFIX) || RESERVED_NAMES.contains(&name.as_str()) {
            self.report(
                m.name.referenced,
                field,
                format!("metric name {name:?} is reserved for the exporter's own metrics"),
            );
        } else if kind == MetricKind::Gauge && name.ends_with("_total") {
            self.report(
                m.name.referenced,
                field,
                format!("gauge {name:?} must not end in _total: the suffix is for counters"),
            );
        }
    }

    /// Checks label names and returns them in exposition order (columns, then constants).
    fn labels(&mut self, m: &raw::Metric, mpath: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let all = m.labels.iter().map(|l| (l, "labels")).chain(m.const_labels.keys().map(|k| (k, "const_labels")));
        for (label, field) in all {
            let path = format!("{mpath}.{field}");
            if !is_label_name(&label.value) {
                self.report(
                    label.referenced,
                    path,
                    format!(
                        "invalid label name {:?}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __",
                        label.value
                    ),
                );
            } else if names.contains(&label.value) {
                self.report(label.referenced, path, format!("label {:?} is listed twice", label.value));
            } else {
                names.push(label.value.clone());
            }
        }
        names
    }

    fn requires(&mut self, r: &raw::Requires, path: &str) -> Requires {
        if let (Some(min), Some(max)) = (&r.min_version, &r.max_version)
            && min.value > max.value
        {
            self.report(
                max.referenced,
                format!("{path}.requires.max_version"),
                format!("max_version {} is below min_version {}", max.value, min.value),
            );
        }
        let mut extensions = Vec::new();
        for e in &r.extensions {
            match ExtensionRequirement::parse(&e.value) {
                Ok(req) => extensions.push(req),
                Err(message) => self.report(e.referenced, format!("{path}.requires.extensions"), message),
            }
        }
        for t in &r.tables {
            if t.value.trim().is_empty() {
                self.report(t.referenced, format!("{path}.requires.tables"), "table name must not be empty");
            }
        }
        Requires {
            min_version: r.min_version.as_ref().map(|v| v.value),
            max_version: r.max_version.as_ref().map(|v| v.value),
            extensions,
            tables: r.tables.iter().map(|t| t.value.clone()).collect(),
        }
    }

    fn duration(&mut self, raw: Option<&Spanned<String>>, field: &str, fallback: Duration) -> Duration {
        let Some(raw) = raw else { return fallback };
        match humantime::parse_duration(raw.value.trim()) {
            Ok(d) => d,
            Err(e) => {
                self.report(
                    raw.referenced,
                    field,
                    format!("invalid duration {:?}: {e} (use e.g. 500ms, 5s, 2m)", raw.value),
                );
                fallback
            }
        }
    }

    fn positive(&mut self, raw: Option<&Spanned<String>>, field: &str, fallback: Duration) -> Duration {
        let d = self.duration(raw, field, fallback);
        match raw {
            Some(r) if d.is_zero() => {
                self.report(r.referenced, field, "must be longer than 0s");
                fallback
            }
            _ => d,
        }
    }

    fn budget(&mut self, raw: Option<&Spanned<u64>>, field: &str, fallback: usize) -> usize {
        match raw {
            None => fallback,
            Some(r) if r.value == 0 || r.value > 1_000_000 => {
                self.report(r.referenced, field, "max_series must be between 1 and 1000000");
                fallback
            }
            Some(r) => r.value as usize,
        }
    }
}

/// Whether `s` is a valid Prometheus metric name.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `s` is a valid, non-reserved Prometheus label name.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    !s.starts_with("__")
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Target names are safe in a URL query string and a label value.
pub fn is_target_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Functions a monitoring query must not call unless the catalogue says so (`allow_functions`).
pub const SIDE_EFFECTING_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "set_config",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
    "pg_stat_statements_reset",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_drop_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "nextval",
    "setval",
    "txid_current",
    "pg_current_xact_id",
    "lo_",
    "dblink",
    "pg_file_write",
    "pg_logical_emit_message",
];

/// The first side-effecting function `sql` calls that is not in `allowed` (lower-case names).
fn side_effecting_function(sql: &str, allowed: &[String]) -> Option<String> {
    let lower = sql.to_lowercase();
    let bytes = lower.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &lower[start..i];
            let called = lower[i..].trim_start().starts_with('(');
            if called && !allowed.iter().any(|a| a == word) {
                let hit = SIDE_EFFECTING_FUNCTIONS
                    .iter()
                    .any(|f| if f.ends_with('_') || *f == "dblink" { word.starts_with(f) } else { word == *f });
                if hit {
                    return Some(word.to_owned());
                }
            }
        } else {
            i += 1;
        }
    }
    None
}

fn is_query_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
        })
    }
}

#[cfg(test)]
mod tests;
