//! Serving HTTP safely: the exporter-toolkit web config (`--web.config.file`:
//! TLS and basic auth), and the accept loop that bounds slow and numerous clients.
//!
//! **Invariant:** every connection has a header-read timeout (slowloris) and a
//! TLS-handshake timeout, the number of open connections is capped, and every
//! request is authenticated when `basic_auth_users` is set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS client must finish its handshake within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 512;

/// `--web.config.file`, in Prometheus exporter-toolkit format (the subset the exporter supports).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve HTTPS with this certificate.
    pub tls_server_config: Option<TlsServerConfig>,
    /// User name → bcrypt hash; when set, every request needs one of them.
    #[serde(default)]
    pub basic_auth_users: HashMap<String, String>,
}

/// `tls_server_config:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain; relative to the web config file.
    pub cert_file: PathBuf,
    /// PEM private key; relative to the web config file.
    pub key_file: PathBuf,
}

impl WebConfig {
    /// Reads and checks a web config file; relative paths are resolved against its directory.
    pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read web config: {e}", path.display()))?;
        let mut config: WebConfig = serde_saphyr::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            let message = e.without_snippet().to_string();
            anyhow::anyhow!("{}{at}: {}", path.display(), message.lines().next().unwrap_or_default())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut config.tls_server_config {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        for (user, hash) in &config.basic_auth_users {
            if bcrypt::verify("", hash).is_err() {
                anyhow::bail!("{}: basic_auth_users.{user}: not a bcrypt hash", path.display());
            }
        }
        Ok(config)
    }

    /// The TLS acceptor for `tls_server_config`, if any.
    pub fn tls_acceptor(&self) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let Some(tls) = &self.tls_server_config else { return Ok(None) };
        let certs = CertificateDer::pem_file_iter(&tls.cert_file)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("tls_server_config.cert_file {}: {e}", tls.cert_file.display()))?;
        let key = PrivateKeyDer::from_pem_file(&tls.key_file)
            .map_err(|e| anyhow::anyhow!("tls_server_config.key_file {}: {e}", tls.key_file.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| anyhow::anyhow!("tls_server_config: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

/// Basic-auth state: the users and a cache of checked credentials (bcrypt is slow on purpose).
#[derive(Debug)]
pub struct Auth {
    users: HashMap<String, String>,
    checked: Mutex<HashMap<String, bool>>,
}

impl Auth {
    /// `None` when no users are configured (no authentication).
    pub fn new(users: HashMap<String, String>) -> Option<Arc<Auth>> {
        (!users.is_empty()).then(|| Arc::new(Auth { users, checked: Mutex::default() }))
    }

    fn allows(&self, authorization: Option<&str>) -> bool {
        let Some(encoded) = authorization.and_then(|h| h.strip_prefix("Basic ")) else { return false };
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ok) = checked.get(encoded) {
            return *ok;
        }
        let ok = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                let (user, password) = pair.split_once(':')?;
                let hash = self.users.get(user)?;
                Some(bcrypt::verify(password, hash).unwrap_or(false))
            })
            .unwrap_or(false);
        if checked.len() >= 1024 {
            checked.clear();
        }
        checked.insert(encoded.to_owned(), ok);
        ok
    }
}

/// Middleware: 401 with a challenge unless the request carries valid credentials.
pub async fn require_auth(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let auth_ok = tokio::task::spawn_blocking(move || auth.allows(header.as_deref())).await.unwrap_or(false);
    if auth_ok {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"runbook-exporter\"")], "unauthorized\n")
            .into_response()
    }
}

/// Accepts connections until `shutdown` resolves, then lets open requests finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // HTTP/1.1 only: Prometheus scrapes with it, and protocol auto-detection would wait
    // for an HTTP/2 preface without any timeout.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (router, builder, tls, watcher) = (router.clone(), builder.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _permit = permit;
            // hyper's header-read timer starts with the first byte: a client that sends nothing at all
            // would hold the connection forever, so the first byte has the same deadline.
            if tokio::time::timeout(HEADER_READ_TIMEOUT, stream.readable()).await.is_err() {
                tracing::debug!("client sent nothing; closing");
                return;
            }
            match tls {
                None => connection(stream, router, &builder, watcher).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => connection(tls_stream, router, &builder, watcher).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn connection<S>(
    stream: S,
    router: Router,
    builder: &http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
