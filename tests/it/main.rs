//! The integration tests: one binary, one module per area, one harness (`support`).
//!
//! Every test starts what it needs for real and on loopback: its own PostgreSQL (`PG_BIN`), the exporter binary,
//! promtool, amtool, Prometheus and Alertmanager. Nothing is mocked.
//!
//!     cargo test --test it                 # everything
//!     cargo test --test it catalogue::     # one area
//!     UPDATE_DOCS=1 cargo test --test it   # rewrite the generated documentation

mod support;

mod alerts;
mod architecture;
mod backups;
mod catalogue;
mod check;
mod clients;
mod compat;
mod config_errors;
mod container;
mod core;
mod dashboards;
mod demo;
mod diagnostics;
mod docs;
mod e2e;
mod e2e_inputs;
mod e2e_replication;
mod engine;
mod exposition;
mod faults;
mod flags;
mod fleet;
mod fuzz;
mod golden;
mod inputs;
mod kubernetes;
mod libpq;
mod logs;
mod mixin;
mod operations;
mod packaging;
mod pg_tls;
mod privileges;
mod replication;
mod security;
mod status_page;
mod timeouts;
mod web;
