//! The harness every area of the integration tests shares, one file per job:
//!
//! - `alerting`: Prometheus, Alertmanager and the webhook receiver of the end-to-end tests, together around one
//!   exporter (`Stack`);
//! - `cluster`: a throwaway PostgreSQL cluster per test and a database in it;
//! - `exporter`: the exporter binary, started through one builder or run to completion;
//! - `process`: the guard that stops every child process by PID, also when a test panics;
//! - `http`: the one HTTP client;
//! - `exposition`: reading `/metrics` (with `openmetrics`, the strict grammar checker);
//! - `ignition`: the Ignition demo database;
//! - `data`: repository files and the tests' own under `tests/data/`;
//! - `generated`: generated documentation checked against the code;
//! - `monitoring`: `alerts/` and `dashboards/`, read once;
//! - `tools`: promtool, amtool, prometheus and alertmanager;
//! - `podman`: the container engine, the local base image, images and containers of the tests;
//! - `kubernetes`: the kustomize base of `deploy/kubernetes/` as kustomize builds it, and kubernetes-validate;
//! - `pki`: certificates made with openssl;
//! - `versions`: the PostgreSQL version matrix of `scripts/pg-versions.conf`;
//! - `library` and `fuzz_checks`: the only code that calls the library's API.

pub mod alerting;
pub mod cluster;
pub mod data;
pub mod exporter;
pub mod exposition;
pub mod fuzz_checks;
pub mod generated;
pub mod http;
pub mod ignition;
pub mod kubernetes;
pub mod library;
pub mod monitoring;
pub mod openmetrics;
pub mod pki;
pub mod podman;
pub mod process;
pub mod tools;
pub mod versions;

use std::time::{Duration, Instant};

pub use cluster::{Cluster, Db, PASSWORD};
pub use exporter::Exporter;
pub use exposition::Metrics;

/// A free TCP port on the loopback interface (free when asked; another process may take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` until it returns true or `timeout` passes; returns the last answer.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Panics listing every problem, if there is any; `what` says what they are problems of.
pub fn assert_no_problems(problems: &[String], what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}
