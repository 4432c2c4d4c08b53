//! Entry point: parse flags, load the catalogue, build the pool, serve.
//! Startup errors (bad catalogue, bad URL) end the process with a message on stderr.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use runbook_exporter::cli::{Args, LogFormat, listen_addresses};
use runbook_exporter::engine::Target;
use runbook_exporter::exposition::Process;
use runbook_exporter::http::{self, AppState, Running};
use runbook_exporter::{catalogue, db, dsn};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runbook-exporter: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runbook-exporter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(args.log_level.directive()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == LogFormat::Json {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(false).init();
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let catalogue = Arc::new(catalogue::load(&args.config_file)?);
    let default_user = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).ok();
    let database = dsn::resolve(&dsn::Source {
        url: args.database_url.as_deref(),
        origin: "--database.url / DATABASE_URL",
        password_file: args.password_file.as_deref(),
        default_user,
    })?;
    let settings = db::PoolSettings {
        max_size: usize::from(args.max_connections),
        wait_timeout: args.connect_timeout + Duration::from_secs(5),
        connect_timeout: args.connect_timeout,
    };
    let pool = db::pool(&database, settings).map_err(|e| anyhow::anyhow!("cannot create the connection pool: {e}"))?;
    let target = Arc::new(Target::new("default".into(), None, database.masked.clone(), pool, catalogue.clone()));
    tracing::info!(catalogue = %catalogue.source, queries = catalogue.queries.len(), database = %database.masked, "catalogue loaded");

    let process = Process {
        version: env!("CARGO_PKG_VERSION"),
        revision: runbook_exporter::REVISION,
        last_reload_ok: true,
        last_reload_success: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    };
    let state = AppState::new(
        Running { catalogue, targets: vec![target] },
        process,
        http::Settings {
            telemetry_path: args.telemetry_path.clone(),
            scrape_timeout: args.scrape_timeout,
            max_concurrent_scrapes: args.max_concurrent_scrapes,
        },
    );
    let listener = bind(&args.listen_address).await?;
    let address = listener.local_addr().context("listener has no local address")?;
    tracing::info!(%address, path = %args.telemetry_path, "listening");
    axum::serve(listener, http::app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")
}

async fn bind(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for candidate in listen_addresses(address) {
        match tokio::net::TcpListener::bind(&candidate).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(anyhow::anyhow!("cannot listen on {candidate}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address to listen on")))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
