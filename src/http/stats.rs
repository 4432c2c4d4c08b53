//! Counters of the HTTP layer, shared by the accept loop, basic auth and the encoder.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; [`HttpStats::counts`] copies them for one scrape.
#[derive(Debug, Default)]
pub struct HttpStats {
    refused: AtomicU64,
    evicted: AtomicU64,
    idle_closed: AtomicU64,
    bcrypt_user: AtomicU64,
    bcrypt_dummy: AtomicU64,
}

/// The counters as of one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpCounts {
    /// Connections closed at accept because the cap was reached and no idle one could make room.
    pub connections_refused: u64,
    /// Idle keep-alive connections closed to make room for a new one.
    pub connections_evicted: u64,
    /// Keep-alive connections closed after their idle timeout.
    pub connections_idle_closed: u64,
    /// bcrypt verifications against a configured user's hash.
    pub bcrypt_user: u64,
    /// bcrypt verifications against the dummy hash (an unknown user name).
    pub bcrypt_dummy: u64,
}

/// One of the counters.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// See [`HttpCounts::connections_refused`].
    Refused,
    /// See [`HttpCounts::connections_evicted`].
    Evicted,
    /// See [`HttpCounts::connections_idle_closed`].
    IdleClosed,
    /// See [`HttpCounts::bcrypt_user`].
    BcryptUser,
    /// See [`HttpCounts::bcrypt_dummy`].
    BcryptDummy,
}

impl HttpStats {
    /// Adds one to `counter`.
    pub fn count(&self, counter: Counter) {
        let c = match counter {
            Counter::Refused => &self.refused,
            Counter::Evicted => &self.evicted,
            Counter::IdleClosed => &self.idle_closed,
            Counter::BcryptUser => &self.bcrypt_user,
            Counter::BcryptDummy => &self.bcrypt_dummy,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of every counter.
    pub fn counts(&self) -> HttpCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpCounts {
            connections_refused: get(&self.refused),
            connections_evicted: get(&self.evicted),
            connections_idle_closed: get(&self.idle_closed),
            bcrypt_user: get(&self.bcrypt_user),
            bcrypt_dummy: get(&self.bcrypt_dummy),
        }
    }
}
