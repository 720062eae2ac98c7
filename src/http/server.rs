//! The accept loop: `run(listener, app, tls, shutdown)` so tests bind `127.0.0.1:0` and pass
//! their own shutdown future (mini-redis style). A plain-TCP connection starts in the express
//! lane ([`super::express`]) and goes to hyper at its first request the lane does not answer;
//! TLS connections go to hyper at once.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::app::App;
use super::express::{self, Exit};
use super::rewind::Rewind;
use super::sendfile::SendfileStream;
use crate::license::TokenMemo;

/// Serves connections until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish for up to `limits.shutdown_grace`.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = app.limits.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams)
        .max_header_list_size(limits.max_header_bytes as u32);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Tells connections still in the express lane (which hyper's graceful shutdown cannot
    // reach) that the server is stopping.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: log, back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // One memo per connection: its requests usually all carry the same token.
        let memo = Arc::new(TokenMemo::default());
        let lane = app
            .express_lane
            .then(|| (app.clone(), memo.clone(), stop.clone()));
        let app = app.clone();
        let service = service_fn(move |req| super::handle(app.clone(), memo.clone(), req));
        let builder = builder.clone();
        match &tls {
            None => {
                // Held from the first byte: shutdown waits for the express lane too.
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let mut stream = SendfileStream::new(stream);
                    let read_ahead = match lane {
                        Some((app, memo, stop)) => {
                            match express::serve(&mut stream, &app, &memo, stop).await {
                                Ok(Exit::ToHyper(read_ahead)) => read_ahead,
                                Ok(Exit::Closed) => return drop(permit),
                                Err(e) => {
                                    tracing::debug!(%peer, "connection ended: {e}");
                                    return drop(permit);
                                }
                            }
                        }
                        None => Bytes::new(),
                    };
                    let io = TokioIo::new(Rewind::new(read_ahead, stream));
                    let conn = builder.serve_connection(io, service).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                            .await;
                    let Ok(Ok(tls_stream)) = handshake else {
                        tracing::debug!(%peer, "TLS handshake failed or timed out");
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(tls_stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    tracing::info!(
        "shutting down: finishing in-flight requests (up to {:?})",
        limits.shutdown_grace
    );
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}
