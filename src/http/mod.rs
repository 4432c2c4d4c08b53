//! The HTTP face: `/metrics` (all targets), `/probe?target=NAME` (one target),
//! the landing page, `/healthz`, `/readyz` and `POST /-/reload`; and the
//! accept loop ([`server`]) with basic auth ([`auth`]).
//!
//! **Invariant:** this module knows nothing about SQL; it asks the engine for a
//! snapshot and the exposition module for text.

pub mod auth;
pub mod landing;
mod scrape;
pub mod server;
pub mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use crate::config::Sources;
use crate::config::web::{self, Web};
use crate::defaults::{READINESS_TIMEOUT, REQUEST_TIMEOUT};
use crate::engine::{LoadError, Running, TargetSnapshot};
use crate::exposition::{Endpoint, Process};
use stats::HttpStats;

pub use scrape::scrape_budget;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Path of the metrics endpoint, e.g. `/metrics`.
    pub telemetry_path: String,
    /// Upper bound of a scrape when Prometheus sends no timeout header; `None` derives it from the catalogue.
    pub scrape_timeout: Option<Duration>,
    /// Scrapes allowed at once; more are answered 503 at once.
    pub max_concurrent_scrapes: usize,
    /// `--web.config.file`, re-read on every reload.
    pub web_config_file: Option<PathBuf>,
}

/// What the web config decides, swapped whole on reload.
pub struct WebState {
    /// Basic authentication, when the web config has users.
    pub auth: Option<Arc<auth::Auth>>,
    /// Headers added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The TLS acceptor the accept loop reads for every new connection, swapped on reload.
pub type TlsHandle = Arc<RwLock<Option<tokio_rustls::TlsAcceptor>>>;

/// Shared state of all handlers.
pub struct AppState {
    running: RwLock<Arc<Running>>,
    process: RwLock<Process>,
    sources: Sources,
    reloading: tokio::sync::Mutex<()>,
    /// HTTP settings.
    pub settings: Settings,
    scrapes: Semaphore,
    /// Last scrape's snapshot per target name, for the landing page.
    last: RwLock<HashMap<String, TargetSnapshot>>,
    /// Counters of the accept loop and basic auth.
    stats: Arc<HttpStats>,
    web: RwLock<Arc<WebState>>,
    tls: TlsHandle,
}

impl AppState {
    /// Wraps the running state for the router; `sources` is kept for reloads, `stats` is read when encoding.
    pub fn new(
        running: Running,
        sources: Sources,
        process: Process,
        settings: Settings,
        stats: Arc<HttpStats>,
        web: Web,
    ) -> Arc<AppState> {
        let (web, tls) = web_state(web, &stats);
        let scrapes = Semaphore::new(settings.max_concurrent_scrapes.max(1));
        Arc::new(AppState {
            running: RwLock::new(Arc::new(running)),
            process: RwLock::new(process),
            sources,
            reloading: tokio::sync::Mutex::new(()),
            settings,
            scrapes,
            last: RwLock::default(),
            stats,
            web: RwLock::new(Arc::new(web)),
            tls: Arc::new(RwLock::new(tls)),
        })
    }

    /// The TLS acceptor the accept loop uses; `None` inside when serving plain HTTP.
    pub fn tls(&self) -> TlsHandle {
        self.tls.clone()
    }

    fn web(&self) -> Arc<WebState> {
        self.web.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The state to serve a request with; a reload swaps it without disturbing requests in flight.
    pub fn current(&self) -> Arc<Running> {
        self.running.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The process facts; for `/metrics` with its resource use read now.
    fn process(&self, endpoint: Endpoint) -> Process {
        let mut process = self.process.read().unwrap_or_else(|p| p.into_inner()).clone();
        process.http = self.stats.counts();
        if endpoint == Endpoint::Metrics {
            process.resources = crate::procfs::read();
        }
        process
    }
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is unusable.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The new web config is unusable.
    #[error(transparent)]
    Web(#[from] web::Error),
    /// The new web config would switch TLS on or off.
    #[error("{0}: tls_server_config was added or removed; switching between HTTP and HTTPS needs a restart")]
    TlsSwitch(String),
    /// The reload task died.
    #[error("reload task failed: {0}")]
    Task(String),
}

/// The web config's parts as the router and the accept loop use them.
fn web_state(web: Web, stats: &Arc<HttpStats>) -> (WebState, Option<tokio_rustls::TlsAcceptor>) {
    let headers = web
        .headers
        .iter()
        .filter_map(|(k, v)| Some((HeaderName::try_from(k.as_str()).ok()?, HeaderValue::try_from(v.as_str()).ok()?)))
        .collect();
    (WebState { auth: auth::Auth::new(web.basic_auth_users, stats.clone()), headers }, web.tls)
}

/// Re-reads the configuration; on failure the running configuration stays and the error is returned.
pub async fn reload(state: &AppState) -> Result<(), ReloadError> {
    let _one_at_a_time = state.reloading.lock().await;
    let previous = state.current();
    let sources = state.sources.clone();
    let web_file = state.settings.web_config_file.clone();
    let had_tls = state.tls.read().unwrap_or_else(|p| p.into_inner()).is_some();
    let stats = state.stats.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let web = match &web_file {
            Some(path) => web::load(path)?,
            None => Web::default(),
        };
        if web.tls.is_some() != had_tls {
            let file = web_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(ReloadError::TlsSwitch(file));
        }
        let running = Running::load(&sources, Some(&previous))?;
        Ok((running, web_state(web, &stats)))
    })
    .await;
    let outcome = match loaded {
        Ok(Ok((running, (web, tls)))) => {
            let queries = running.catalogue.queries.len();
            for t in &running.targets {
                t.warm();
            }
            *state.running.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(running);
            *state.web.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(web);
            *state.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
            tracing::info!(queries, "configuration reloaded");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ReloadError::Task(e.to_string())),
    };
    let mut process = state.process.write().unwrap_or_else(|p| p.into_inner());
    process.last_reload_ok = outcome.is_ok();
    match &outcome {
        Ok(()) => process.last_reload_success = unix_now(),
        Err(e) => tracing::error!(error = %e, "reload failed; keeping the running configuration"),
    }
    outcome
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Builds the router.
pub fn app(state: Arc<AppState>) -> Router {
    let path = state.settings.telemetry_path.clone();
    Router::new()
        .route(&path, get(scrape::metrics))
        .route("/probe", get(scrape::probe))
        .route("/", get(landing::handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/-/reload", post(reload_handler))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web_layer))
        .with_state(state)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
}

/// Basic auth (when configured) and the configured response headers, as of the current web config.
async fn web_layer(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let web = state.web();
    let mut response = match &web.auth {
        Some(auth) => auth::require_auth(auth.clone(), request, next).await,
        None => next.run(request).await,
    };
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let running = state.current();
    let deadline = tokio::time::Instant::now() + READINESS_TIMEOUT;
    let checks = futures::future::join_all(running.targets.iter().map(|t| t.check(deadline))).await;
    let down: Vec<String> = running
        .targets
        .iter()
        .zip(checks)
        .filter_map(|(t, check)| check.err().map(|reason| format!("{} ({reason})", t.name)))
        .collect();
    if down.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: cannot connect to {}\n", down.join(", "))).into_response()
    }
}

async fn reload_handler(State(state): State<Arc<AppState>>) -> Response {
    match reload(&state).await {
        Ok(()) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("reload failed, running configuration kept:\n{e}\n"))
            .into_response(),
    }
}
