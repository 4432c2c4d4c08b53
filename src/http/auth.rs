//! Basic authentication against the web config's bcrypt hashes, as
//! exporter-toolkit does it.
//!
//! **Invariant:** with `basic_auth_users` set, every path needs credentials.
//! An unknown user name is checked against a dummy hash of the same cost as
//! the real ones, so a wrong password takes as long for an unknown user as
//! for a known one and the response time does not tell which names exist.
//! bcrypt runs under its own lock (one computation at a time, bounding the
//! CPU an attacker can burn); the cache of *successful* credentials has a
//! separate, briefly held lock, so a scrape with good credentials never waits
//! behind someone else's bcrypt.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::stats::{Counter, HttpStats};
use crate::defaults::AUTH_CACHE_ENTRIES;

/// Basic-auth state: the users, the dummy hash and a cache of credentials that were right.
#[derive(Debug)]
pub struct Auth {
    users: HashMap<String, String>,
    dummy: String,
    good: Mutex<HashSet<String>>,
    bcrypt: Mutex<()>,
    stats: Arc<HttpStats>,
}

impl Auth {
    /// `None` when no users are configured (no authentication). Computes the dummy hash (one bcrypt
    /// at the highest cost among the users' hashes).
    pub fn new(users: HashMap<String, String>, stats: Arc<HttpStats>) -> Option<Arc<Auth>> {
        if users.is_empty() {
            return None;
        }
        let cost = users.values().filter_map(|h| h.parse::<bcrypt::HashParts>().ok()).map(|p| p.get_cost()).max();
        let dummy = bcrypt::hash("runbook-exporter: no such user", cost.unwrap_or(bcrypt::DEFAULT_COST))
            .unwrap_or_else(|_| users.values().next().cloned().unwrap_or_default());
        Some(Arc::new(Auth { users, dummy, good: Mutex::default(), bcrypt: Mutex::new(()), stats }))
    }

    fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(encoded) = authorization.and_then(|h| h.strip_prefix("Basic ")).map(str::trim) else {
            return false;
        };
        if self.good.lock().unwrap_or_else(|p| p.into_inner()).contains(encoded) {
            return true;
        }
        let Some((user, password)) = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| pair.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        else {
            return false;
        };
        let (hash, counter) = match self.users.get(&user) {
            Some(hash) => (hash.as_str(), Counter::BcryptUser),
            None => (self.dummy.as_str(), Counter::BcryptDummy),
        };
        let verified = {
            let _one_at_a_time = self.bcrypt.lock().unwrap_or_else(|p| p.into_inner());
            self.stats.count(counter);
            bcrypt::verify(&password, hash).unwrap_or(false)
        };
        let ok = verified && matches!(counter, Counter::BcryptUser);
        if ok {
            let mut good = self.good.lock().unwrap_or_else(|p| p.into_inner());
            if good.len() >= AUTH_CACHE_ENTRIES {
                good.clear();
            }
            good.insert(encoded.to_owned());
        }
        ok
    }
}

/// 401 with a challenge unless the request carries valid credentials.
pub async fn require_auth(auth: Arc<Auth>, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let auth_ok = tokio::task::spawn_blocking(move || auth.allows(header.as_deref())).await.unwrap_or(false);
    if auth_ok {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"runbook-exporter\"")], "unauthorized\n")
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn unknown_users_cost_a_bcrypt_like_known_ones_and_only_good_credentials_are_cached() {
        let stats = Arc::new(HttpStats::default());
        let users = [("alice".to_owned(), bcrypt::hash("right", 4).unwrap())].into();
        let auth = Auth::new(users, stats.clone()).unwrap();
        assert_eq!(auth.dummy.parse::<bcrypt::HashParts>().unwrap().get_cost(), 4, "the dummy has the users' cost");
        assert!(!auth.allows(Some(&basic("mallory", "right"))));
        assert_eq!((stats.counts().bcrypt_user, stats.counts().bcrypt_dummy), (0, 1));
        assert!(!auth.allows(Some(&basic("alice", "wrong"))));
        assert!(!auth.allows(Some(&basic("alice", "wrong"))), "a failure is not cached: checked again");
        assert_eq!((stats.counts().bcrypt_user, stats.counts().bcrypt_dummy), (2, 1));
        assert!(auth.allows(Some(&basic("alice", "right"))));
        assert!(auth.allows(Some(&basic("alice", "right"))));
        assert_eq!(stats.counts().bcrypt_user, 3, "the second good request came from the cache");
        assert!(!auth.allows(Some("Basic !!!not base64")) && !auth.allows(Some("Bearer x")) && !auth.allows(None));
    }
}
