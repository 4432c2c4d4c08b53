//! Rows → series: where each metric's value and labels are in a row, and the
//! budget and uniqueness checks made while rows stream in.

use std::collections::HashSet;
use std::error::Error as _;

use tokio_postgres::Row;

use super::decode::{Label, Sample};
use super::error::{ErrorKind, QueryError};
use crate::catalogue::{Catalogue, OverBudget, Query};
use crate::exposition::labels::push_label;

/// One exposed series: pre-rendered labels and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `name="value",...` already escaped, without braces; empty for no labels.
    pub labels: Box<str>,
    /// The sample.
    pub value: f64,
}

/// The successful outcome of one execution.
#[derive(Debug, Default)]
pub struct QueryResult {
    /// Series per metric of the query, in catalogue order.
    pub series: Vec<Vec<Series>>,
    /// Rows turned into series (rows dropped past the budget are in `truncated_rows`).
    pub rows: usize,
    /// Value cells that were NULL and gave no sample.
    pub null_values: u64,
    /// Rows dropped past `max_series` by a query that truncates (`over_budget: truncate`).
    pub truncated_rows: u64,
}

impl QueryResult {
    /// Total series over all metrics.
    pub fn series_count(&self) -> usize {
        self.series.iter().map(Vec::len).sum()
    }
}

/// Builds a [`QueryResult`] row by row, enforcing `max_series` and unique label sets.
pub(super) struct Collector<'a> {
    catalogue: &'a Catalogue,
    query: &'a Query,
    extra_label: Option<&'a str>,
    columns: Option<Vec<Columns>>,
    seen: Vec<HashSet<Box<str>>>,
    total: usize,
    result: QueryResult,
}

/// Where one metric's parts are in a row.
struct Columns {
    value: usize,
    labels: Vec<(usize, String)>,
    /// Constant labels (and the target label), rendered once.
    constant: String,
}

impl<'a> Collector<'a> {
    /// A collector for `query`'s rows; `extra_label` (e.g. `target="primary"`) is appended to every series.
    pub(super) fn new(catalogue: &'a Catalogue, query: &'a Query, extra_label: Option<&'a str>) -> Collector<'a> {
        let metrics = query.metrics.len();
        Collector {
            catalogue,
            query,
            extra_label,
            columns: None,
            seen: vec![HashSet::new(); metrics],
            total: 0,
            result: QueryResult { series: vec![Vec::new(); metrics], ..Default::default() },
        }
    }

    /// Adds one row's series; an error ends the execution.
    pub(super) fn push(&mut self, row: &Row) -> Result<(), QueryError> {
        if self.result.truncated_rows > 0 {
            // Past the budget of a truncating query every later row is dropped, so the rows kept
            // are the first ones in the query's own order.
            self.result.truncated_rows += 1;
            return Ok(());
        }
        if self.columns.is_none() {
            self.columns = Some(locate(row, self.query, self.extra_label)?);
        }
        let Some(columns) = &self.columns else { return Ok(()) };
        let mut made = Vec::with_capacity(columns.len());
        for (mi, metric) in columns.iter().enumerate() {
            match series(row, metric)? {
                Some(s) => made.push((mi, s)),
                None => self.result.null_values += 1,
            }
        }
        if self.total + made.len() > self.query.max_series {
            if self.query.over_budget == OverBudget::Truncate {
                self.result.truncated_rows = 1;
                return Ok(());
            }
            let message = format!("more than max_series = {} series", self.query.max_series);
            return Err(QueryError::new(ErrorKind::Cardinality, message));
        }
        self.result.rows += 1;
        self.total += made.len();
        for (mi, s) in made {
            if !self.seen[mi].insert(s.labels.clone()) {
                let name = &self.catalogue.families[self.query.metrics[mi].family].name;
                let message = format!("metric {name}: two rows with the same labels {{{}}}", s.labels);
                return Err(QueryError::new(ErrorKind::Duplicate, message));
            }
            self.result.series[mi].push(s);
        }
        Ok(())
    }

    /// The result of every row pushed.
    pub(super) fn finish(self) -> QueryResult {
        self.result
    }
}

/// Column positions of every metric, resolved on the first row and reused for the rest.
fn locate(row: &Row, query: &Query, extra_label: Option<&str>) -> Result<Vec<Columns>, QueryError> {
    let index = |name: &str| -> Result<usize, QueryError> {
        row.columns().iter().position(|c| c.name() == name).ok_or_else(|| {
            let have: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
            QueryError::new(
                ErrorKind::Conversion,
                format!("column {name:?} is not in the result (columns: {})", have.join(", ")),
            )
        })
    };
    let mut metrics = Vec::new();
    for m in &query.metrics {
        let value = index(&m.value_column)?;
        let labels =
            m.label_columns.iter().map(|l| Ok((index(l)?, l.clone()))).collect::<Result<Vec<_>, QueryError>>()?;
        let mut constant = String::new();
        for (k, v) in &m.const_labels {
            push_label(&mut constant, k, v);
        }
        if let Some(extra) = extra_label {
            if !constant.is_empty() {
                constant.push(',');
            }
            constant.push_str(extra);
        }
        metrics.push(Columns { value, labels, constant });
    }
    Ok(metrics)
}

/// The series of one metric for `row`, or `None` when the value is NULL.
fn series(row: &Row, columns: &Columns) -> Result<Option<Series>, QueryError> {
    let Columns { value: vi, labels, constant } = columns;
    let conversion = |col: &str, e: tokio_postgres::Error| {
        let reason = e.source().map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
        QueryError::new(ErrorKind::Conversion, format!("column {col:?}: {reason}"))
    };
    let value = match row.try_get::<_, Option<Sample>>(*vi) {
        Ok(Some(Sample(v))) => v,
        Ok(None) => return Ok(None),
        Err(e) => return Err(conversion(row.columns()[*vi].name(), e)),
    };
    let mut rendered = String::new();
    for (li, name) in labels {
        let Label(text) =
            row.try_get::<_, Option<Label>>(*li).map_err(|e| conversion(name, e))?.unwrap_or(Label(String::new()));
        push_label(&mut rendered, name, &text);
    }
    if !constant.is_empty() {
        if !rendered.is_empty() {
            rendered.push(',');
        }
        rendered.push_str(constant);
    }
    Ok(Some(Series { labels: rendered.into_boxed_str(), value }))
}
