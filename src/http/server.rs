//! The accept loop and the connection threads: `run(listener, app, tls, shutdown)` so tests
//! bind `127.0.0.1:0` and pass their own shutdown future (mini-redis style).
//!
//! Connections are served by `limits.connection_threads` threads, each running a
//! single-threaded tokio runtime of its own, the way nginx runs one event loop per worker
//! process. A connection stays on the thread it was handed to: its socket, token memo and
//! tasks never move between cores, and no thread waits for a wake-up from another's event
//! loop. Sharing one work-stealing runtime instead left cores idle under load (measured in
//! docs/PERFORMANCE.md, "One event loop per core"). The accept loop runs on the caller's
//! runtime and hands each new connection to the thread with the fewest open ones.
//!
//! A plain-TCP connection starts in the express lane ([`super::express`]) and goes to hyper at
//! its first request the lane does not answer; TLS connections go to hyper at once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::app::App;
use super::express::{self, Exit};
use super::metrics::ThreadLabels;
use super::rewind::Rewind;
use super::sendfile::SendfileStream;
use crate::license::TokenMemo;

/// How long a stopping connection thread waits for blocking work (a store read) to return
/// once its connections are closed.
const BLOCKING_DRAIN: Duration = Duration::from_secs(5);

/// Serves connections until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish for up to `limits.shutdown_grace`. Fails only if the connection threads
/// cannot be started.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limits = app.limits.clone();
    let mut threads = Vec::with_capacity(limits.connection_threads.max(1));
    for index in 0..limits.connection_threads.max(1) {
        // On failure the threads already started see their queue close and stop.
        threads.push(ConnectionThread::start(index, &app, tls.clone())?);
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut next = 0usize;
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
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Leaves this runtime's event loop; the chosen thread registers it with its own.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, "cannot hand the connection over: {e}");
                continue;
            }
        };
        let Some(thread) = least_busy(&threads, next) else {
            break;
        };
        next = next.wrapping_add(1);
        let handoff = Handoff {
            stream,
            peer,
            slot: Slot::take(permit, threads[thread].open.clone()),
        };
        if threads[thread].queue.send(handoff).is_err() {
            // Its loop ended, which only a bug can make happen: serve on with the others.
            let index = threads[thread].index;
            tracing::error!("connection thread {index} has stopped; serving on without it");
            threads.remove(thread);
            if threads.is_empty() {
                return Err(io::Error::other("every connection thread has stopped"));
            }
        }
    }
    drop(listener);
    tracing::info!(
        "shutting down: finishing in-flight requests (up to {:?})",
        limits.shutdown_grace
    );
    let finished: Vec<_> = threads
        .into_iter()
        .map(|t| {
            drop(t.queue);
            t.finished
        })
        .collect();
    for f in finished {
        // A dropped sender means the thread ended anyway.
        let _ = f.await;
    }
    Ok(())
}

/// The thread with the fewest open connections; ties go round-robin from `rotation`.
fn least_busy(threads: &[ConnectionThread], rotation: usize) -> Option<usize> {
    let n = threads.len();
    (0..n)
        .map(|i| (rotation.wrapping_add(i)) % n)
        .min_by_key(|&i| threads[i].open.get())
}

/// One accepted connection on its way to a connection thread.
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

/// A connection's place: its permit under `max_connections` and its count on its thread's
/// gauge, both given back when the connection ends, however it ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, open: Gauge) -> Slot {
        open.inc();
        Slot {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// The accept loop's handle on one connection thread.
struct ConnectionThread {
    /// Its number in thread names and the metric's label.
    index: usize,
    queue: mpsc::UnboundedSender<Handoff>,
    open: Gauge,
    finished: oneshot::Receiver<()>,
}

impl ConnectionThread {
    /// Builds the thread's runtime here, so a failure is reported before anything is served.
    fn start(
        index: usize,
        app: &Arc<App>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> io::Result<ConnectionThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(format!("encore-conn-{index}-blocking"))
            .build()?;
        let open = app
            .metrics
            .connections_open
            .get_or_create(&ThreadLabels {
                thread: u16::try_from(index).unwrap_or(u16::MAX),
            })
            .clone();
        let (queue, mut handoffs) = mpsc::unbounded_channel::<Handoff>();
        let (done, finished) = oneshot::channel();
        let app = app.clone();
        std::thread::Builder::new()
            .name(format!("encore-conn-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let connections = Connections::new(app, tls);
                    while let Some(h) = handoffs.recv().await {
                        match TcpStream::from_std(h.stream) {
                            Ok(stream) => connections.serve(stream, h.peer, h.slot),
                            Err(e) => tracing::warn!(peer = %h.peer, "cannot serve: {e}"),
                        }
                    }
                    connections.finish().await;
                });
                runtime.shutdown_timeout(BLOCKING_DRAIN);
                let _ = done.send(());
            })?;
        Ok(ConnectionThread {
            index,
            queue,
            open,
            finished,
        })
    }
}

/// What one connection thread needs to serve its connections and to stop them gracefully.
struct Connections {
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: GracefulShutdown,
    /// Tells connections still in the express lane (which hyper's graceful shutdown cannot
    /// reach) that the server is stopping.
    stopping: watch::Sender<bool>,
}

impl Connections {
    fn new(app: Arc<App>, tls: Option<tokio_rustls::TlsAcceptor>) -> Connections {
        let limits = &app.limits;
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
        Connections {
            app,
            tls,
            builder: Arc::new(builder),
            graceful: GracefulShutdown::new(),
            stopping: watch::channel(false).0,
        }
    }

    /// Serves one connection on a task of this thread's runtime.
    fn serve(&self, stream: TcpStream, peer: SocketAddr, slot: Slot) {
        // One memo per connection: its requests usually all carry the same token.
        let memo = Arc::new(TokenMemo::default());
        let lane = self
            .app
            .express_lane
            .then(|| (self.app.clone(), memo.clone(), self.stopping.subscribe()));
        let app = self.app.clone();
        let service = service_fn(move |req| super::handle(app.clone(), memo.clone(), req));
        let builder = self.builder.clone();
        let watcher = self.graceful.watcher();
        match &self.tls {
            None => {
                // Held from the first byte: shutdown waits for the express lane too.
                tokio::spawn(async move {
                    let _slot = slot;
                    let mut stream = SendfileStream::new(stream);
                    let read_ahead = match lane {
                        Some((app, memo, stop)) => {
                            match express::serve(&mut stream, &app, &memo, stop).await {
                                Ok(Exit::ToHyper(read_ahead)) => read_ahead,
                                Ok(Exit::Closed) => return,
                                Err(e) => {
                                    tracing::debug!(%peer, "connection ended: {e}");
                                    return;
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
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = self.app.limits.header_read_timeout;
                tokio::spawn(async move {
                    let _slot = slot;
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await;
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
                });
            }
        }
    }

    /// Stops every connection of this thread: idle ones at once, busy ones after their
    /// response, and whatever is left when the grace period ends.
    async fn finish(self) {
        self.stopping.send_replace(true);
        if tokio::time::timeout(self.app.limits.shutdown_grace, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
}
