//! The connection layer: accepting within a connection cap, hyper's
//! timeouts on headers and on idle keep-alive connections, and a graceful
//! shutdown that gives in-flight requests a short grace, then drops
//! whatever is still half-sent so the journal can close on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How long a graceful shutdown waits for in-flight requests before it
/// drops them (a half-sent request must not keep the journal open).
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// What the accept loop needs.
pub struct Listening {
    pub listener: TcpListener,
    pub app: Router,
    pub max_connections: usize,
    /// Applies to a request's headers and to an idle keep-alive connection
    /// waiting for its next request.
    pub header_timeout: Duration,
    /// Connections closed at once because the cap was reached.
    pub refused: Arc<AtomicU64>,
}

/// Serves connections until `stopping` turns true, then shuts down
/// gracefully within [`SHUTDOWN_GRACE`].
pub async fn serve_connections(l: Listening, mut stopping: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(l.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = l.listener.accept() => accepted,
            _ = stopping.wait_for(|s| *s) => break,
        };
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most often: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            l.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, max = l.max_connections, "connection cap reached; closing a new connection");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(l.app.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(l.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(l.listener);
    shut_down(graceful, connections).await;
}

async fn shut_down(graceful: GracefulShutdown, mut connections: JoinSet<()>) {
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            let left = connections.len();
            tracing::warn!(connections = left, "requests still unfinished after the shutdown grace; dropping them");
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
