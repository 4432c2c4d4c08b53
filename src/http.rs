//! The HTTP face: `/metrics` (content negotiation, scrape deadline), the
//! landing page and `/healthz`.
//!
//! **Invariant:** this module knows nothing about SQL; it asks the engine for a
//! snapshot and the exposition module for text.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

use crate::catalogue::Catalogue;
use crate::engine::{self, Target};
use crate::exposition::{self, Format, Process};

/// Safety margin subtracted from Prometheus' scrape timeout so the answer arrives before it gives up.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// What is being served right now; replaced whole on reload.
pub struct Running {
    /// The validated catalogue.
    pub catalogue: Arc<Catalogue>,
    /// One entry per database.
    pub targets: Vec<Arc<Target>>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Path of the metrics endpoint, e.g. `/metrics`.
    pub telemetry_path: String,
    /// Upper bound of a scrape when Prometheus sends no timeout header; `None` derives it from the catalogue.
    pub scrape_timeout: Option<Duration>,
    /// Scrapes allowed at once; more are answered 503 at once.
    pub max_concurrent_scrapes: usize,
}

/// Shared state of all handlers.
pub struct AppState {
    /// The running catalogue and targets.
    pub running: RwLock<Arc<Running>>,
    /// Reload status and build facts for self-metrics.
    pub process: RwLock<Process>,
    /// HTTP settings.
    pub settings: Settings,
    scrapes: Semaphore,
}

impl AppState {
    /// Wraps the running state for the router.
    pub fn new(running: Running, process: Process, settings: Settings) -> Arc<AppState> {
        let scrapes = Semaphore::new(settings.max_concurrent_scrapes.max(1));
        Arc::new(AppState { running: RwLock::new(Arc::new(running)), process: RwLock::new(process), settings, scrapes })
    }

    /// The state to serve a request with; a reload swaps it without disturbing requests in flight.
    pub fn current(&self) -> Arc<Running> {
        self.running.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Builds the router.
pub fn app(state: Arc<AppState>) -> Router {
    let path = state.settings.telemetry_path.clone();
    Router::new()
        .route(&path, get(metrics))
        .route("/", get(landing))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
        .layer(tower_http::compression::CompressionLayer::new())
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Ok(_permit) = state.scrapes.try_acquire() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n").into_response();
    };
    let running = state.current();
    let budget = scrape_budget(&headers, state.settings.scrape_timeout, &running.catalogue);
    let deadline = tokio::time::Instant::now() + budget;
    let snapshot = engine::scrape(&running.catalogue, &running.targets, deadline).await;
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let process = state.process.read().unwrap_or_else(|p| p.into_inner()).clone();
    let body = exposition::encode(&snapshot, &process, format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// How long a scrape may take: Prometheus' header minus a margin, capped by the configured bound.
pub fn scrape_budget(headers: &HeaderMap, configured: Option<Duration>, catalogue: &Catalogue) -> Duration {
    let fallback = configured.unwrap_or_else(|| {
        let longest = catalogue.queries.iter().map(|q| q.timeout).max().unwrap_or(Duration::from_secs(5));
        longest + crate::db::CLIENT_MARGIN
    });
    let from_header = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s).saturating_sub(DEADLINE_MARGIN).max(Duration::from_millis(100)));
    from_header.map_or(fallback, |h| h.min(fallback))
}

async fn landing(State(state): State<Arc<AppState>>) -> Html<String> {
    let running = state.current();
    let path = &state.settings.telemetry_path;
    let mut targets = String::new();
    for t in &running.targets {
        targets.push_str(&format!("<li>{}: <code>{}</code></li>", escape(&t.name), escape(&t.masked_dsn)));
    }
    let mut queries = String::new();
    for q in &running.catalogue.queries {
        queries.push_str(&format!(
            "<li><b>{}</b> (ttl {:?}, timeout {:?}): {}</li>",
            escape(&q.name),
            q.ttl,
            q.timeout,
            escape(&q.help)
        ));
    }
    Html(format!(
        "<!doctype html><html><head><title>runbook-exporter</title></head><body>\
         <h1>runbook-exporter {}</h1><p><a href=\"{}\">Metrics</a> · <a href=\"/healthz\">Health</a></p>\
         <h2>Targets</h2><ul>{targets}</ul><h2>Catalogue {}</h2><ul>{queries}</ul></body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(path),
        escape(&running.catalogue.source)
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
