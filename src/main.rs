//! Entry point: parse flags, load the configuration, then serve, `check` or `once`.
//! Start-up errors (bad catalogue, bad URL) end the process with a message on stderr.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use runbook_exporter::cli::{Args, Command, LogFormat, listen_addresses};
use runbook_exporter::exposition::{self, Format, Process};
use runbook_exporter::http::{self, AppState};
use runbook_exporter::targets::Loader;
use runbook_exporter::web::{self, Auth, WebConfig};
use runbook_exporter::{check, db, engine};

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
    let outcome = match args.command.clone() {
        None => runtime.block_on(serve(args)),
        Some(Command::Once) => runtime.block_on(once(args)),
        Some(Command::Check { explain }) => runtime.block_on(check_command(args, explain)),
    };
    match outcome {
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

fn loader(args: &Args) -> Loader {
    Loader {
        config_file: args.config_file.clone(),
        database_url: args.database_url.clone(),
        password_file: args.password_file.clone(),
        default_user: std::env::var("PGUSER").or_else(|_| std::env::var("USER")).ok(),
        pool: db::PoolSettings {
            max_size: usize::from(args.max_connections),
            wait_timeout: args.connect_timeout + Duration::from_secs(5),
            connect_timeout: args.connect_timeout,
        },
    }
}

fn process() -> Process {
    Process {
        version: env!("CARGO_PKG_VERSION"),
        revision: runbook_exporter::REVISION,
        last_reload_ok: true,
        last_reload_success: http::unix_now(),
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let loader = loader(&args);
    let running = loader.load(None)?;
    for t in &running.targets {
        tracing::info!(target_name = %t.name, database = %t.masked_dsn, "target");
    }
    tracing::info!(catalogue = %running.catalogue.source, queries = running.catalogue.queries.len(), "catalogue loaded");
    let web_config = match &args.web_config_file {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    let tls = web_config.tls_acceptor()?;
    let settings = http::Settings {
        telemetry_path: args.telemetry_path.clone(),
        scrape_timeout: args.scrape_timeout,
        max_concurrent_scrapes: args.max_concurrent_scrapes,
        auth: Auth::new(web_config.basic_auth_users),
    };
    let state = AppState::new(running, loader, process(), settings);
    spawn_sighup_reloader(state.clone());
    let listener = bind(&args.listen_address).await?;
    let address = listener.local_addr().context("listener has no local address")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%address, scheme, path = %args.telemetry_path, "listening");
    web::serve(listener, http::app(state), tls, shutdown_signal()).await;
    Ok(())
}

/// One scrape of every target, printed in the classic text format.
async fn once(args: Args) -> anyhow::Result<()> {
    let running = loader(&args).load(None)?;
    let budget = args.scrape_timeout.unwrap_or_else(|| {
        running.catalogue.queries.iter().map(|q| q.timeout).max().unwrap_or(Duration::from_secs(5)) + db::CLIENT_MARGIN
    });
    let deadline = tokio::time::Instant::now() + budget;
    let snapshot = engine::scrape(&running.catalogue, &running.targets, deadline).await;
    print!("{}", exposition::encode(&snapshot, &process(), Format::PrometheusText));
    Ok(())
}

async fn check_command(args: Args, explain: bool) -> anyhow::Result<()> {
    let running = loader(&args).load(None)?;
    let report = check::run(&running, explain).await;
    print!("{}", report.text);
    if report.errors > 0 {
        anyhow::bail!("check found {} error(s)", report.errors);
    }
    Ok(())
}

fn spawn_sighup_reloader(state: Arc<AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading configuration");
            let _ = http::reload(&state).await;
        }
    });
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
