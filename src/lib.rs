//! runbook-exporter: a Prometheus exporter that runs a YAML catalogue of SQL
//! queries against PostgreSQL and serves the rows as metrics.
//!
//! Data flow: `cli` → `config` (catalogue, connection settings, web config,
//! all checked before use) → `engine` (targets, what runs, caching,
//! single-flight, deadlines) → `db` (pool, read-only execution, decoding) →
//! `exposition` (snapshot → text) → `http`. `defaults` names every default
//! and limit once. See ARCHITECTURE.md.
#![deny(missing_docs)]

pub mod catalogue;
pub mod check;
pub mod cli;
pub mod config;
pub mod db;
pub mod defaults;
pub mod engine;
pub mod exposition;
pub mod files;
pub mod http;
pub mod procfs;

/// Git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("RUNBOOK_EXPORTER_REVISION");
