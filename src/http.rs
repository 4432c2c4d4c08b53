//! The HTTP face: `/metrics` (all targets), `/probe?target=NAME` (one target),
//! the landing page, `/healthz`, `/readyz` and `POST /-/reload`.
//!
//! **Invariant:** this module knows nothing about SQL; it asks the engine for a
//! snapshot and the exposition module for text.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use crate::catalogue::{Catalogue, is_target_name};
use crate::engine::{self, Status, Target};
use crate::exposition::{self, Format, Process};
use crate::targets::{Loader, Running};

/// Safety margin subtracted from Prometheus' scrape timeout so the answer arrives before it gives up.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Path of the metrics endpoint, e.g. `/metrics`.
    pub telemetry_path: String,
    /// Upper bound of a scrape when Prometheus sends no timeout header; `None` derives it from the catalogue.
    pub scrape_timeout: Option<Duration>,
    /// Scrapes allowed at once; more are answered 503 at once.
    pub max_concurrent_scrapes: usize,
    /// Basic authentication, when the web config has users.
    pub auth: Option<Arc<crate::web::Auth>>,
}

/// No request may take longer than this, whatever it is.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Shared state of all handlers.
pub struct AppState {
    running: RwLock<Arc<Running>>,
    process: RwLock<Process>,
    loader: Loader,
    reloading: tokio::sync::Mutex<()>,
    /// HTTP settings.
    pub settings: Settings,
    scrapes: Semaphore,
    /// Last scrape's snapshot per target name, for the landing page.
    last: RwLock<HashMap<String, engine::TargetSnapshot>>,
}

impl AppState {
    /// Wraps the running state for the router.
    pub fn new(running: Running, loader: Loader, process: Process, settings: Settings) -> Arc<AppState> {
        let scrapes = Semaphore::new(settings.max_concurrent_scrapes.max(1));
        Arc::new(AppState {
            running: RwLock::new(Arc::new(running)),
            process: RwLock::new(process),
            loader,
            reloading: tokio::sync::Mutex::new(()),
            settings,
            scrapes,
            last: RwLock::default(),
        })
    }

    /// The state to serve a request with; a reload swaps it without disturbing requests in flight.
    pub fn current(&self) -> Arc<Running> {
        self.running.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn process(&self) -> Process {
        self.process.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Re-reads the configuration; on failure the running configuration stays and the error is returned.
pub async fn reload(state: &AppState) -> Result<(), String> {
    let _one_at_a_time = state.reloading.lock().await;
    let previous = state.current();
    let loader = state.loader.clone();
    let loaded = tokio::task::spawn_blocking(move || loader.load(Some(&previous))).await;
    let outcome = match loaded {
        Ok(Ok(running)) => {
            let queries = running.catalogue.queries.len();
            *state.running.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(running);
            tracing::info!(queries, "configuration reloaded");
            Ok(())
        }
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(e) => Err(format!("reload task failed: {e}")),
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
    let auth = state.settings.auth.clone();
    let router = Router::new()
        .route(&path, get(metrics))
        .route("/probe", get(probe))
        .route("/", get(landing))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/-/reload", post(reload_handler))
        .with_state(state)
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT));
    match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, crate::web::require_auth)),
        None => router,
    }
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let running = state.current();
    serve(&state, &headers, running.clone(), &running.targets).await
}

async fn probe(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let running = state.current();
    let Some(name) = params.get("target") else {
        return (StatusCode::BAD_REQUEST, "missing ?target=NAME\n").into_response();
    };
    // Only names from the configuration: never a DSN or a host, so the exporter cannot be pointed elsewhere.
    let target = is_target_name(name).then(|| running.target(name)).flatten();
    let Some(target) = target.cloned() else {
        let known: Vec<&str> = running.targets.iter().map(|t| t.name.as_str()).collect();
        return (StatusCode::BAD_REQUEST, format!("unknown target; configured targets: {}\n", known.join(", ")))
            .into_response();
    };
    serve(&state, &headers, running, &[target]).await
}

async fn serve(state: &AppState, headers: &HeaderMap, running: Arc<Running>, targets: &[Arc<Target>]) -> Response {
    let Ok(_permit) = state.scrapes.try_acquire() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n").into_response();
    };
    let budget = scrape_budget(headers, state.settings.scrape_timeout, &running.catalogue);
    let deadline = tokio::time::Instant::now() + budget;
    let snapshot = engine::scrape(&running.catalogue, targets, deadline).await;
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = exposition::encode(&snapshot, &state.process(), format);
    {
        let mut last = state.last.write().unwrap_or_else(|p| p.into_inner());
        for (t, s) in targets.iter().zip(&snapshot.targets) {
            last.insert(t.name.clone(), s.clone());
        }
    }
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
        .map(|s| {
            Duration::from_secs_f64(s.min(3600.0)).saturating_sub(DEADLINE_MARGIN).max(Duration::from_millis(100))
        });
    from_header.map_or(fallback, |h| h.min(fallback))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let running = state.current();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let checks = futures::future::join_all(running.targets.iter().map(|t| t.is_up(deadline))).await;
    let down: Vec<&str> =
        running.targets.iter().zip(&checks).filter(|(_, up)| !**up).map(|(t, _)| t.name.as_str()).collect();
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

async fn landing(State(state): State<Arc<AppState>>) -> Html<String> {
    let running = state.current();
    let process = state.process();
    let last = state.last.read().unwrap_or_else(|p| p.into_inner()).clone();
    let path = &state.settings.telemetry_path;
    let mut targets = String::new();
    for t in &running.targets {
        let up = match last.get(&t.name) {
            Some(s) if s.up => "up",
            Some(_) => "DOWN",
            None => "not scraped yet",
        };
        targets.push_str(&format!(
            "<tr><td>{name}</td><td><code>{dsn}</code></td><td>{up}</td><td><a href=\"/probe?target={name}\">probe</a></td></tr>",
            name = escape(&t.name),
            dsn = escape(&t.masked_dsn)
        ));
    }
    let mut queries = String::new();
    for (qi, q) in running.catalogue.queries.iter().enumerate() {
        let mut status = String::new();
        for (name, snap) in &last {
            let Some(s) = snap.queries.get(qi) else { continue };
            let text = match &s.status {
                Status::Served { cached: true, .. } => "ok (cached)".to_owned(),
                Status::Served { .. } => "ok".to_owned(),
                Status::Failed(kind) => format!("FAILED ({})", kind.as_str()),
                Status::Skipped(reason) => format!("skipped: {reason}"),
                Status::NotRun => "not run (database down)".to_owned(),
                Status::NotApplicable => continue,
            };
            let took = s
                .stats
                .last_duration
                .map(|d| format!(", last run {:.1} ms", d.as_secs_f64() * 1e3))
                .unwrap_or_default();
            status.push_str(&format!("{}: {}{} ", escape(name), escape(&text), took));
        }
        queries.push_str(&format!(
            "<tr><td>{}</td><td>{:?}</td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
            escape(&q.name),
            q.ttl,
            q.timeout,
            status,
            escape(&q.help)
        ));
    }
    Html(format!(
        "<!doctype html><html><head><title>runbook-exporter</title></head><body>\
         <h1>runbook-exporter {version}</h1><p>revision {revision}, configuration {reload}</p>\
         <p><a href=\"{path}\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\
         <h2>Targets</h2><table><tr><th>name</th><th>database</th><th>status</th><th></th></tr>{targets}</table>\
         <h2>Catalogue <code>{source}</code></h2>\
         <table><tr><th>query</th><th>ttl</th><th>timeout</th><th>last status</th><th>help</th></tr>{queries}</table></body></html>",
        version = process.version,
        revision = process.revision,
        reload = if process.last_reload_ok { "loaded" } else { "RELOAD FAILED (running the previous one)" },
        path = escape(path),
        source = escape(&running.catalogue.source)
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
