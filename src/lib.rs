//! runbook-exporter: a Prometheus exporter that runs a YAML catalogue of SQL
//! queries against PostgreSQL and serves the rows as metrics.
//!
//! Data flow: `cli` → `catalogue` (load + validate) and `dsn` → `db` (pool,
//! read-only execution, decoding) → `engine` (what runs, caching,
//! single-flight, deadlines) → `exposition` (snapshot → text) → `http`.
//! See ARCHITECTURE.md.
#![deny(missing_docs)]

pub mod catalogue;
pub mod check;
pub mod cli;
pub mod db;
pub mod dsn;
pub mod engine;
pub mod exposition;
pub mod http;
pub mod targets;
pub mod web;

/// Git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("RUNBOOK_EXPORTER_REVISION");
