//! The query catalogue: `queries.yaml` loaded and validated.
//!
//! [`load`] reads a file, [`raw`] mirrors its YAML exactly, and
//! [`validate`] turns that into a [`Catalogue`], collecting *every* problem
//! at once as a [`Diagnostic`] (file, line, column, field). Everything
//! downstream takes only the validated types of [`model`].
//!
//! **Invariant:** nothing outside this module sees raw YAML types; a
//! `Catalogue` that exists has legal names, no `_total` on gauges, no
//! duplicate labels, no side-effecting function calls and consistent families.

mod error;
mod files;
mod keys;
mod load;
mod model;
mod names;
mod raw;
mod requires;
mod sql_guard;
mod text;
mod validate;

pub use error::{Diagnostic, Error};
pub use files::{FileMetric, FileSet};
pub use load::{load, parse};
pub use model::{
    Catalogue, DatabaseDiscovery, Family, Metric, MetricKind, Needs, OverBudget, Query, Role, Scope, Source, TargetSpec,
};
pub use names::{RESERVED_NAMES, SELF_PREFIX, glob_match, is_label_name, is_metric_name, is_target_name};
pub use requires::{ExtensionRequirement, Requires, VersionConstraint, VersionOp};
pub use sql_guard::SIDE_EFFECTING_FUNCTIONS;
pub use text::spoken_duration;

pub(crate) use load::syntax_message;

#[cfg(test)]
mod tests;
