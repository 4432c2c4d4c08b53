//! Entry point: parse flags, load the configuration, then serve, `check` or `once`.
//! Start-up errors (bad catalogue, bad URL) end the process with a message on stderr.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use runbook_exporter::cli::{Args, CheckOutput, Command, LogFormat, listen_addresses};
use runbook_exporter::config::libpq::Env;
use runbook_exporter::config::{self, PoolSettings, Sources, web};
use runbook_exporter::engine::{self, LoadError, Running};
use runbook_exporter::exposition::{self, Endpoint, Format, Process};
use runbook_exporter::http::stats::{HttpCounts, HttpStats};
use runbook_exporter::http::{self, AppState, server};
use runbook_exporter::{catalogue, check, defaults};

/// When the process started, for `process_start_time_seconds`.
static STARTED_AT: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

fn main() -> std::process::ExitCode {
    STARTED_AT.get_or_init(http::unix_now);
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
        Some(Command::Check { explain, offline, output }) => {
            runtime.block_on(check_command(&args, explain, offline, output))
        }
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
    // No module path in log lines: it means nothing to an operator, and in JSON its "target" key
    // would clash with the exporter's own `target` field (the database a line is about).
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    if args.log_format == LogFormat::Json {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn sources(args: &Args) -> Sources {
    Sources {
        config_file: args.config_file.clone(),
        database_url: args.database_url.clone(),
        password_file: args.password_file.clone(),
        env: Env::from_process(),
        pool: PoolSettings {
            max_size: usize::from(args.max_connections),
            wait_timeout: args.connect_timeout + defaults::POOL_WAIT_MARGIN,
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
        started_at: *STARTED_AT.get_or_init(http::unix_now),
        resources: None,
        http: HttpCounts::default(),
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let sources = sources(&args);
    let running = Running::load(&sources, None)?;
    for t in &running.targets {
        // Connections are opened now, not inside the first scrape.
        t.warm();
        tracing::info!(target = %t.name, database = %t.masked_dsn, "target");
    }
    tracing::info!(catalogue = %running.catalogue.source, queries = running.catalogue.queries.len(), "catalogue loaded");
    let web = match &args.web_config_file {
        Some(path) => web::load(path)?,
        None => web::Web::default(),
    };
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    let stats = Arc::new(HttpStats::default());
    let settings = http::Settings {
        telemetry_path: args.telemetry_path.clone(),
        scrape_timeout: args.scrape_timeout,
        max_concurrent_scrapes: args.max_concurrent_scrapes,
        web_config_file: args.web_config_file.clone(),
    };
    let state = AppState::new(running, sources, process(), settings, stats.clone(), web);
    spawn_sighup_reloader(state.clone());
    let tls = state.tls();
    let router = http::app(state);
    let listener = bind(&args.listen_address).await?;
    let address = listener.local_addr().context("listener has no local address")?;
    tracing::info!(%address, scheme, path = %args.telemetry_path, "listening");
    server::serve(listener, router, tls, stats, shutdown_signal()).await;
    Ok(())
}

/// One scrape of every target, printed in the classic text format.
async fn once(args: Args) -> anyhow::Result<()> {
    let running = Running::load(&sources(&args), None)?;
    let budget = args.scrape_timeout.unwrap_or_else(|| engine::default_budget(&running.catalogue));
    let deadline = tokio::time::Instant::now() + budget;
    let snapshot = engine::scrape(&running.catalogue, &running.targets, &running.files, deadline).await;
    let process = Process { resources: runbook_exporter::procfs::read(), ..process() };
    stdout(&exposition::encode(&snapshot, &process, Format::PrometheusText, Endpoint::Metrics));
    Ok(())
}

async fn check_command(args: &Args, explain: bool, offline: bool, output: CheckOutput) -> anyhow::Result<()> {
    let file = args.config_file.display().to_string();
    let loaded = Running::load(&sources(args), None);
    let running = match (loaded, output) {
        (Ok(running), _) => running,
        (Err(e), CheckOutput::Text) => return Err(e.into()),
        (Err(e), CheckOutput::Json) => {
            let diagnostics = match &e {
                LoadError::Config(config::Error::Catalogue(catalogue::Error::Invalid { diagnostics, .. })) => {
                    Some(diagnostics.as_slice())
                }
                _ => None,
            };
            stdout(&(check::load_error_json(&file, &e, diagnostics) + "\n"));
            anyhow::bail!("the configuration does not load");
        }
    };
    let mut report = check::run(&running, explain, offline).await;
    if let Some(path) = &args.web_config_file {
        report.web_config = Some(path.display().to_string());
        if let Err(e) = web::load(path) {
            report.errors += 1;
            report.problems.push(e.to_string());
        }
    }
    match output {
        CheckOutput::Text => stdout(&check::text(&report)),
        CheckOutput::Json => stdout(&(check::json(&report) + "\n")),
    }
    if report.errors > 0 {
        anyhow::bail!("check found {} error(s)", report.errors);
    }
    Ok(())
}

/// Writes to stdout; a reader that went away (`| head`) is not an error worth a panic.
fn stdout(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
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
