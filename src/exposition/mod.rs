//! Snapshot → exposition text, in OpenMetrics 1.0 or Prometheus text 0.0.4,
//! and the exporter's own metrics as one table.
//!
//! **Invariant:** this module does no I/O and cannot fail on data: every
//! label value was escaped when its row was read ([`labels`], the one place
//! that renders labels), HELP is escaped here per format, and non-finite
//! values are spelled `NaN`, `+Inf`, `-Inf` as both formats require.

mod encode;
mod format;
pub mod labels;
pub mod self_metrics;

pub use encode::{Endpoint, encode, push_value};
pub use format::{Format, OPENMETRICS, PROMETHEUS_TEXT};
pub use self_metrics::{Process, SELF_METRICS, SelfMetric};

#[cfg(test)]
mod tests;
