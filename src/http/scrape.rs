//! `/metrics` and `/probe`: one scrape of all targets or of one configured target.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::catalogue::{Catalogue, is_target_name};
use crate::defaults::{DEADLINE_MARGIN, MAX_SCRAPE_BUDGET, MIN_SCRAPE_BUDGET};
use crate::engine::{self, FileSetState, Running, Target};
use crate::exposition::{self, Endpoint, Format};

pub(super) async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let running = state.current();
    serve(&state, &headers, running.clone(), &running.targets, &running.files, Endpoint::Metrics).await
}

pub(super) async fn probe(
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
    serve(&state, &headers, running.clone(), &[target], &[], Endpoint::Probe).await
}

async fn serve(
    state: &AppState,
    headers: &HeaderMap,
    running: Arc<Running>,
    targets: &[Arc<Target>],
    files: &[FileSetState],
    endpoint: Endpoint,
) -> Response {
    let Ok(_permit) = state.scrapes.try_acquire() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n").into_response();
    };
    let budget = scrape_budget(headers, state.settings.scrape_timeout, &running.catalogue);
    let deadline = tokio::time::Instant::now() + budget;
    let snapshot = engine::scrape(&running.catalogue, targets, files, deadline).await;
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = exposition::encode(&snapshot, &state.process(endpoint), format, endpoint);
    {
        let mut last = state.last.write().unwrap_or_else(|p| p.into_inner());
        for (t, s) in targets.iter().zip(&snapshot.targets) {
            last.insert(t.name.clone(), s.clone());
        }
    }
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// How long a scrape may take: Prometheus' header minus a margin, capped by the configured bound
/// (or, without one, by [`engine::default_budget`]).
pub fn scrape_budget(headers: &HeaderMap, configured: Option<Duration>, catalogue: &Catalogue) -> Duration {
    let fallback = configured.unwrap_or_else(|| engine::default_budget(catalogue));
    let from_header = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| {
            Duration::from_secs_f64(s.min(MAX_SCRAPE_BUDGET.as_secs_f64()))
                .saturating_sub(DEADLINE_MARGIN)
                .max(MIN_SCRAPE_BUDGET)
        });
    from_header.map_or(fallback, |h| h.min(fallback))
}
