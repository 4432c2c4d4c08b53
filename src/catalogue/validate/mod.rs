//! Raw YAML → validated [`Catalogue`], collecting every problem at once.
//!
//! Validation never stops at the first problem: each check reports a
//! [`Diagnostic`] with the line, column and field path the operator wrote and
//! carries on with a fallback value, so one run lists everything to fix.

use std::collections::HashMap;
use std::time::Duration;

use indexmap::IndexMap;
use serde_saphyr::{Location, Spanned};

use super::error::Diagnostic;
use super::files::{FileMetric, FileSet};
use super::model::{
    Catalogue, DatabaseDiscovery, Family, Metric, MetricKind, OverBudget, Query, Role, Scope, Source, TargetSpec,
};
use super::names::{is_label_name, is_metric_name, is_query_name, is_reserved, is_target_name};
use super::raw;
use super::requires::{ExtensionRequirement, Requires};
use super::sql_guard::{has_order_by, side_effecting_call, statement_problem};
use super::text::{collapse_whitespace, spoken_duration};
use crate::defaults;

mod metrics;
mod sections;
mod values;

/// Validates `raw`; `file` is recorded as the catalogue's source.
pub(crate) fn catalogue(raw: raw::File, file: &str) -> Result<Catalogue, Vec<Diagnostic>> {
    let mut v = Validator { diagnostics: Vec::new(), families: Vec::new(), family_at: HashMap::new() };
    let catalogue = v.catalogue(raw, file);
    if v.diagnostics.is_empty() {
        Ok(catalogue)
    } else {
        v.diagnostics.sort_by_key(|d| (d.line, d.column));
        Err(v.diagnostics)
    }
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

/// What a query's metrics are checked against.
struct QueryContext<'a> {
    path: &'a str,
    index: usize,
    help: &'a str,
    target_names: &'a [String],
    /// The exporter adds a `datname` label to this query's series (a database-scope query with a
    /// target that watches several databases).
    adds_datname: bool,
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
        let d = &raw.defaults;
        let defaults = Inherited {
            refresh_ahead: d.refresh_ahead.as_ref().is_some_and(|r| r.value),
            timeout: self.positive(d.timeout.as_ref(), "defaults.timeout", defaults::QUERY_TIMEOUT),
            lock_timeout: self.positive(d.lock_timeout.as_ref(), "defaults.lock_timeout", defaults::LOCK_TIMEOUT),
            ttl: self.duration(d.ttl.as_ref(), "defaults.ttl", defaults::TTL),
            max_series: self.budget(d.max_series.as_ref(), "defaults.max_series", defaults::MAX_SERIES),
        };
        if raw.queries.value.is_empty() {
            self.report(raw.queries.referenced, "queries", "the catalogue has no queries");
        }
        let targets = raw.targets.map(|t| self.targets(t)).unwrap_or_default();
        let target_names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let discovering = targets.iter().any(|t| t.databases.is_some());
        let mut queries = Vec::new();
        for (name, q) in raw.queries.value {
            let query = self.query(&name, q, &defaults, (&target_names, discovering), queries.len());
            queries.push(query);
        }
        let files = raw.files.map(|f| self.file_sets(f, file)).unwrap_or_default();
        let mut families = std::mem::take(&mut self.families);
        note_caching(&mut families, &queries);
        Catalogue { source: file.to_owned(), targets, queries, families, files }
    }

    fn query(
        &mut self,
        name: &Spanned<String>,
        q: raw::Query,
        defaults: &Inherited,
        (target_names, discovering): (&[String], bool),
        index: usize,
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
        let allowed: Vec<String> = q.allow_functions.iter().map(|f| f.value.to_lowercase()).collect();
        if let Some(problem) = statement_problem(&q.sql.value).filter(|_| !q.sql.value.trim().is_empty()) {
            self.report(q.sql.referenced, format!("{path}.sql"), problem);
        }
        if let Some(call) = side_effecting_call(&q.sql.value, &allowed) {
            // A literal block scalar (`sql: |`) keeps the SQL's lines, so the call's own line and
            // column can be named; a folded or quoted scalar points at its start line.
            let at = q.sql.referenced;
            self.diagnostics.push(Diagnostic {
                line: at.line() + call.line as u64,
                column: at.column() + call.column as u64,
                field: format!("{path}.sql"),
                message: format!(
                    "calls {}(), which has side effects; list it in allow_functions to run it anyway",
                    call.function
                ),
            });
        }
        let ttl = self.duration(q.ttl.as_ref(), &format!("{path}.ttl"), defaults.ttl);
        let refresh_ahead = self.refresh_ahead(q.refresh_ahead.as_ref(), ttl, defaults, &path);
        self.query_targets(&q.targets, target_names, &path);
        let scope = self.scope(q.scope.as_ref(), &path);
        let adds_datname = discovering && scope == Scope::Database;
        let context = QueryContext { path: &path, index, help: &help, target_names, adds_datname };
        let metrics = self.metrics(q.metrics, &context);
        let over_budget = self.over_budget(q.over_budget.as_ref(), &q.sql, &path);
        Query {
            name: name.value.clone(),
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
            over_budget,
            scope,
            requires: self.requires(&q.requires, &path),
            targets: q.targets.into_iter().map(|t| t.value).collect(),
            role: self.role(q.role.as_ref(), &path),
            metrics,
            help,
        }
    }
}

/// Appends "Cached for up to ..." to the HELP of every family fed by a query with a ttl,
/// as Prometheus' guidance for exporters asks of cached metrics.
fn note_caching(families: &mut [Family], queries: &[Query]) {
    for family in families {
        let ttl = family.sources.iter().filter_map(|s| queries.get(s.query)).map(|q| q.ttl).max();
        if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
            let stop = if family.help.ends_with('.') { "" } else { "." };
            family.help = format!("{}{stop} Cached for up to {}.", family.help, spoken_duration(ttl));
        }
    }
}
