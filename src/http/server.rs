//! The connection threads and their accept loops: `run(listener, app, tls, shutdown)` so tests
//! bind `127.0.0.1:0` and pass their own shutdown future (mini-redis style).
//!
//! Connections are served by `limits.connection_threads` threads, each running a
//! single-threaded tokio runtime of its own, the way nginx runs one event loop per worker
//! process. A connection stays on the thread that accepted it: its socket, token memo and
//! tasks never move between cores, and no thread waits for a wake-up from another's event
//! loop. Sharing one work-stealing runtime instead left cores idle under load (measured in
//! docs/PERFORMANCE.md, "One event loop per core"). Every thread accepts from the listening
//! socket itself (a duplicate registered with its own event loop), and only while no other
//! thread has fewer open connections; handing accepted sockets from one accept loop to the
//! threads instead cost ~10–20 µs of CPU per new connection in wake-ups and re-registration.
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
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};

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
    let threads = limits.connection_threads.max(1);
    // Leaves the caller's event loop: every connection thread registers it with its own. The
    // duplicates share one open file, so setting it non-blocking once covers them all.
    let listener = listener.into_std()?;
    listener.set_nonblocking(true)?;
    let share = Arc::new(AcceptShare {
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        open: (0..threads)
            .map(|index| {
                app.metrics
                    .connections_open
                    .get_or_create(&ThreadLabels {
                        thread: u16::try_from(index).unwrap_or(u16::MAX),
                    })
                    .clone()
            })
            .collect(),
        balance: Notify::new(),
    });
    // Dropped on an early return too, which stops the threads already started.
    let (stop, stopping) = watch::channel(false);
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads {
        let listener = listener.try_clone()?;
        finished.push(start_thread(
            index,
            &app,
            tls.clone(),
            listener,
            share.clone(),
            stopping.clone(),
        )?);
    }
    drop(listener);
    shutdown.await;
    stop.send_replace(true);
    tracing::info!(
        "shutting down: finishing in-flight requests (up to {:?})",
        limits.shutdown_grace
    );
    for thread in finished {
        // A dropped sender means the thread ended anyway.
        let _ = thread.await;
    }
    Ok(())
}

/// What the connection threads' accept loops share.
struct AcceptShare {
    /// `max_connections`, over all threads.
    permits: Arc<Semaphore>,
    /// Open connections per thread (the `/metrics` gauges).
    open: Vec<Gauge>,
    /// Signalled whenever a count changes, for threads waiting to be among the least busy.
    balance: Notify,
}

impl AcceptShare {
    /// A thread accepts only while no other thread has fewer open connections, so connections
    /// spread evenly however the kernel orders the threads' wake-ups.
    fn may_accept(&self, thread: usize) -> bool {
        let mine = self.open[thread].get();
        self.open.iter().all(|other| mine <= other.get())
    }
}

/// A connection's place: its permit under `max_connections` and its count on its thread's
/// gauge, both given back when the connection ends, however it ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    share: Arc<AcceptShare>,
    thread: usize,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, share: Arc<AcceptShare>, thread: usize) -> Slot {
        share.open[thread].inc();
        share.balance.notify_waiters();
        Slot {
            _permit: permit,
            share,
            thread,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.share.open[self.thread].dec();
        self.share.balance.notify_waiters();
    }
}

/// Starts connection thread `index`; the receiver completes when it has stopped. Its runtime
/// is built here, so a failure is reported before anything is served.
fn start_thread(
    index: usize,
    app: &Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    listener: std::net::TcpListener,
    share: Arc<AcceptShare>,
    stopping: watch::Receiver<bool>,
) -> io::Result<oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("encore-conn-{index}-blocking"))
        .build()?;
    let (done, finished) = oneshot::channel();
    let app = app.clone();
    std::thread::Builder::new()
        .name(format!("encore-conn-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("connection thread {index} cannot listen: {e}");
                        return;
                    }
                };
                let connections = Connections::new(app, tls);
                accept(index, &listener, &share, &connections, stopping).await;
                drop(listener);
                connections.finish().await;
            });
            runtime.shutdown_timeout(BLOCKING_DRAIN);
            let _ = done.send(());
        })?;
    Ok(finished)
}

/// Thread `index`'s accept loop, until `stopping` says so (or its sender is gone).
async fn accept(
    index: usize,
    listener: &TcpListener,
    share: &Arc<AcceptShare>,
    connections: &Connections,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        // Every thread's event loop sees each new connection; the least busy take it.
        loop {
            let notified = share.balance.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if share.may_accept(index) {
                break;
            }
            tokio::select! {
                () = &mut notified => {}
                _ = stopping.changed() => return,
            }
        }
        let permit = tokio::select! {
            p = share.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopping.changed() => return,
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
            _ = stopping.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        connections.serve(stream, peer, Slot::take(permit, share.clone(), index));
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
