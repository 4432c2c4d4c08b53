//! When `files:` sets are scanned: at most once per set at a time, reused for
//! the set's `ttl`, and off the async runtime (a hung network file system
//! blocks one blocking thread, never a scrape past its deadline).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::timeout_at;

use super::lock;
use crate::catalogue::FileSet;
use crate::files::{self, Scan};

/// A scan's result: what was found, or why nothing could be.
pub type ScanOutcome = Result<Arc<Scan>, String>;
type ScanFlight = Shared<BoxFuture<'static, ScanOutcome>>;

/// One watched file set and its last scan.
pub struct FileSetState {
    set: Arc<FileSet>,
    slot: Arc<Mutex<Slot>>,
}

#[derive(Default)]
struct Slot {
    last: Option<(Instant, ScanOutcome)>,
    inflight: Option<ScanFlight>,
}

/// A file set as of one scrape.
#[derive(Debug, Clone)]
pub struct FileSetSnapshot {
    /// The set's name.
    pub name: String,
    /// The scan served.
    pub outcome: ScanOutcome,
    /// Age of that scan.
    pub age: Duration,
}

impl FileSetState {
    /// State for `set`; nothing is scanned yet.
    pub fn new(set: FileSet) -> FileSetState {
        FileSetState { set: Arc::new(set), slot: Arc::default() }
    }

    /// The last scan if younger than the set's ttl, else a new one, waiting no later than `deadline`.
    pub async fn collect(&self, deadline: tokio::time::Instant) -> FileSetSnapshot {
        let flight = {
            let mut slot = lock(&self.slot);
            if let Some((at, outcome)) = &slot.last
                && at.elapsed() < self.set.ttl
            {
                return self.snapshot(outcome.clone(), at.elapsed());
            }
            match &slot.inflight {
                Some(f) => f.clone(),
                None => {
                    let f = self.start();
                    slot.inflight = Some(f.clone());
                    f
                }
            }
        };
        match timeout_at(deadline, flight).await {
            Ok(outcome) => self.snapshot(outcome, Duration::ZERO),
            Err(_) => {
                self.snapshot(Err("the scan did not finish within the scrape's deadline".to_owned()), Duration::ZERO)
            }
        }
    }

    fn snapshot(&self, outcome: ScanOutcome, age: Duration) -> FileSetSnapshot {
        FileSetSnapshot { name: self.set.name.clone(), outcome, age }
    }

    fn start(&self) -> ScanFlight {
        let (set, slot) = (self.set.clone(), self.slot.clone());
        let task = tokio::task::spawn_blocking(move || {
            let outcome = files::scan(&set).map(Arc::new);
            let mut slot = lock(&slot);
            let was_ok = !matches!(slot.last, Some((_, Err(_))));
            match &outcome {
                Err(reason) if was_ok => tracing::warn!(file_set = %set.name, %reason, "file set scan failed"),
                Ok(_) if !was_ok => tracing::info!(file_set = %set.name, "file set readable again"),
                _ => {}
            }
            slot.inflight = None;
            slot.last = Some((Instant::now(), outcome.clone()));
            outcome
        });
        async move { task.await.unwrap_or_else(|e| Err(format!("scan task failed: {e}"))) }.boxed().shared()
    }
}
