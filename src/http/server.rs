//! The accept loop: bounds slow, idle and numerous clients before a request reaches the router.
//!
//! **Invariant:** every connection has a header-read timeout (slowloris), a
//! TLS-handshake timeout and an idle timeout between requests, and the number
//! of open connections is capped. At the cap, the connection idle the
//! longest (between requests, or silent since it connected) is closed to make
//! room, so idle keep-alive connections can never lock Prometheus out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt;

use super::TlsHandle;
use super::stats::{Counter, HttpStats};
use crate::defaults::{
    ACCEPT_BACKOFF, EVICTION_WAIT, HEADER_READ_TIMEOUT, KEEPALIVE_IDLE_TIMEOUT, MAX_HTTP_CONNECTIONS, SHUTDOWN_GRACE,
    TLS_HANDSHAKE_TIMEOUT,
};

/// Accepts connections until `shutdown` resolves, then lets open requests finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: TlsHandle,
    stats: Arc<HttpStats>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    let open = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
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
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match make_room(&open, &limit, &stats).await {
                Some(permit) => permit,
                None => {
                    stats.count(Counter::Refused);
                    drop(stream);
                    continue;
                }
            },
        };
        // The acceptor as of this connection: a reload may have replaced the certificate.
        let tls = tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (router, builder, stats, stopping) = (router.clone(), builder.clone(), stats.clone(), stopping.clone());
        let tracked = open.add();
        let open = open.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let ends = Ends { tracked: &tracked, stats: &stats, stopping };
            // hyper's header-read timer starts with the first byte: a client that sends nothing at all
            // would hold the connection forever, so the first byte has the same deadline.
            let first_byte = tokio::select! {
                ready = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.readable()) => ready.is_ok(),
                () = tracked.close.notified() => false,
            };
            if first_byte {
                match tls {
                    None => connection(stream, router, &builder, ends).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => connection(tls_stream, router, &builder, ends).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
            } else {
                ends.stats.count(Counter::IdleClosed);
                tracing::debug!("client sent nothing; closing");
            }
            open.remove(tracked.id);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection task holds a permit until it ends: all of them back means all are closed.
    let all = u32::try_from(MAX_HTTP_CONNECTIONS).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, limit.acquire_many(all)).await;
}

/// At the connection cap: closes the connection idle the longest, if there is one, and waits
/// briefly for its slot.
async fn make_room(
    open: &Registry,
    limit: &Arc<Semaphore>,
    stats: &HttpStats,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let victim = open.longest_idle()?;
    victim.notify_one();
    stats.count(Counter::Evicted);
    tokio::time::timeout(EVICTION_WAIT, limit.clone().acquire_owned()).await.ok()?.ok()
}

/// The open connections and when each became idle.
#[derive(Default)]
struct Registry {
    next: Mutex<u64>,
    open: Mutex<HashMap<u64, Watched>>,
}

/// What the registry keeps of a connection: since when it is idle (`None` while busy), and its closer.
type Watched = (watch::Receiver<Option<Instant>>, Arc<Notify>);

/// One open connection's handles: its id, whether it is idle, and how to close it.
struct Tracked {
    id: u64,
    idle_since: watch::Sender<Option<Instant>>,
    close: Arc<Notify>,
}

impl Registry {
    /// Registers a new connection, idle (silent) from now until its first request.
    fn add(&self) -> Tracked {
        let id = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let (idle_since, watched) = watch::channel(Some(Instant::now()));
        let close = Arc::new(Notify::new());
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (watched, close.clone()));
        Tracked { id, idle_since, close }
    }

    fn remove(&self, id: u64) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// The closer of the connection idle the longest, if any is idle.
    fn longest_idle(&self) -> Option<Arc<Notify>> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let idle = open.values().filter_map(|(since, close)| Some(((*since.borrow())?, close)));
        idle.min_by_key(|(since, _)| *since).map(|(_, close)| close.clone())
    }
}

/// What ends a connection besides its client: eviction, its idle timeout, shutdown.
struct Ends<'a> {
    tracked: &'a Tracked,
    stats: &'a HttpStats,
    stopping: watch::Receiver<bool>,
}

async fn connection<S>(stream: S, router: Router, builder: &http1::Builder, mut ends: Ends<'_>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle_since = ends.tracked.idle_since.clone();
    // Busy from the moment a request arrives until its response is ready.
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (router, idle_since) = (router.clone(), idle_since.clone());
        async move {
            idle_since.send_replace(None);
            let response = router.oneshot(request.map(Body::new)).await;
            idle_since.send_replace(Some(Instant::now()));
            response
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut idle = ends.tracked.idle_since.subscribe();
    let mut closing = false;
    loop {
        let idle_deadline = (*idle.borrow_and_update()).map(|since| since + KEEPALIVE_IDLE_TIMEOUT);
        let idle_timeout = async {
            match idle_deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = idle.changed() => {}
            () = ends.tracked.close.notified(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = idle_timeout, if !closing => {
                ends.stats.count(Counter::IdleClosed);
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ends.stopping.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
