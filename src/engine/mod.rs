//! The scrape engine: decides what runs, shares executions between concurrent
//! scrapes, caches results for their TTL and bounds every wait by a deadline.
//!
//! A scrape produces an immutable [`Snapshot`]; encoding it is the exposition
//! module's job and cannot fail. **Invariant:** a series exists only if its row
//! is in the result being served (no stale series).

mod discovery;
mod files;
mod running;
mod skip;
mod snapshot;
mod target;
mod unit;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use files::{FileSetSnapshot, FileSetState, ScanOutcome};
pub use running::{BuildError, LoadError, Running};
pub use skip::{skip_reason, unmet};
pub use snapshot::{QuerySnapshot, QueryStats, Snapshot, Status, TargetSnapshot, UnitSnapshot};
pub use target::Target;
pub use unit::{Unit, refresh_point};

use crate::catalogue::Catalogue;
use crate::defaults::{CLIENT_MARGIN, QUERY_TIMEOUT};

/// Collects every target and file set concurrently; nothing slow delays the rest past `deadline`.
pub async fn scrape(
    catalogue: &Arc<Catalogue>,
    targets: &[Arc<Target>],
    files: &[FileSetState],
    deadline: tokio::time::Instant,
) -> Snapshot {
    let start = Instant::now();
    let (targets, files) = futures::join!(
        futures::future::join_all(targets.iter().map(|t| t.collect(deadline))),
        futures::future::join_all(files.iter().map(|f| f.collect(deadline))),
    );
    Snapshot { catalogue: catalogue.clone(), targets, files, duration: start.elapsed() }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a scrape may take when neither Prometheus nor `--scrape.timeout` says:
/// long enough for the slowest query to finish or be cut by its own timeout.
pub fn default_budget(catalogue: &Catalogue) -> Duration {
    catalogue.longest_timeout().unwrap_or(QUERY_TIMEOUT) + CLIENT_MARGIN
}
