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
//! A plain-TCP connection starts in the express lane (`super::express`) and goes to hyper at
//! its first request the lane does not answer; TLS connections go to hyper at once.
//!
//! A connection that does nothing is closed whatever its protocol. HTTP/1.1 waits for each
//! head under `header_read_timeout` (hyper's timer and the lane's). hyper's HTTP/2 has no such
//! limit, so [`drive`] adds one: no request within `header_read_timeout` of hyper taking the
//! connection, or none in progress for `idle_timeout` since the last ended, and the connection
//! gets a GOAWAY and is closed. Keep-alive pings find peers that went away with a stream open.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;

use super::app::{App, Limits};
use super::express::{self, Exit, Rewind};
use super::metrics::ThreadLabels;
use super::respond::Body;
use super::sendfile::{BodySlot, SendfileStream};
use crate::license::TokenMemo;
use crate::store::backed::FileBacked;

/// How long a stopping connection thread waits for blocking work (a store read) to return
/// once its connections are closed.
const BLOCKING_DRAIN: Duration = Duration::from_secs(5);

/// How long a connection that never made a request gets, after its GOAWAY, before it is
/// dropped: closing gracefully waits for the peer to answer a PING, which a peer that only
/// opened a connection may never do. Nothing is lost by dropping it.
const UNUSED_GOAWAY_GRACE: Duration = Duration::from_secs(1);

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
        .event_interval(8)
        .global_queue_interval(8)
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
    /// Tells every connection that the server is stopping; each holds a receiver until it
    /// ends, so [`Connections::finish`] knows when all have.
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
            .max_header_list_size(limits.max_header_bytes as u32)
            .keep_alive_interval(limits.h2_keep_alive_interval)
            .keep_alive_timeout(limits.h2_keep_alive_timeout);
        Connections {
            app,
            tls,
            builder: Arc::new(builder),
            stopping: watch::channel(false).0,
        }
    }

    /// Serves one connection on a task of this thread's runtime.
    fn serve(&self, stream: TcpStream, peer: SocketAddr, slot: Slot) {
        // One memo per connection: its requests usually all carry the same token.
        let memo = Arc::new(TokenMemo::default());
        // Held from the first byte: shutdown waits for the express lane too.
        let stop = self.stopping.subscribe();
        let lane = self
            .app
            .express_lane
            .then(|| (self.app.clone(), memo.clone(), stop.clone()));
        let app = self.app.clone();
        let builder = self.builder.clone();
        match &self.tls {
            None => {
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
                    let slot = stream.body_slot();
                    let io = TokioIo::new(Rewind::new(read_ahead, stream));
                    let activity = Arc::new(Activity::new());
                    let service = service(app.clone(), memo, activity.clone(), Some(slot));
                    let conn = builder.serve_connection(io, service).into_owned();
                    if let Err(e) = drive(conn, &activity, &app.limits, stop).await {
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
                    let activity = Arc::new(Activity::new());
                    let service = service(app.clone(), memo, activity.clone(), None);
                    let conn = builder
                        .serve_connection(TokioIo::new(tls_stream), service)
                        .into_owned();
                    if let Err(e) = drive(conn, &activity, &app.limits, stop).await {
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
        if tokio::time::timeout(self.app.limits.shutdown_grace, self.stopping.closed())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
}

/// The service hyper calls for each request of one connection: [`super::handle`], with each
/// request counted in `activity` until its response body has been handed over. On a plain-TCP
/// connection (`slot`), an HTTP/1 body read from a store file announces its file there as
/// hyper takes it, so the connection can send it with `sendfile`.
fn service(
    app: Arc<App>,
    memo: Arc<TokenMemo>,
    activity: Arc<Activity>,
    slot: Option<Arc<BodySlot>>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<CountedBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone {
    service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let in_flight = InFlight::begin(&activity);
        // HTTP/2 frames bodies itself: its writes are never a body's whole remainder.
        let slot = slot
            .clone()
            .filter(|_| req.version() < http::Version::HTTP_2);
        let work = super::handle(app.clone(), memo.clone(), req);
        async move {
            let mut resp = work.await?;
            let file = resp.extensions_mut().remove::<FileBacked>();
            Ok(resp.map(|body| CountedBody {
                body,
                announce: slot.zip(file),
                _in_flight: in_flight,
            }))
        }
    })
}

/// Drives hyper's connection until it ends. It is asked to close gracefully (HTTP/2: GOAWAY,
/// then in-flight streams finish) when the server stops or when `activity` has been idle too
/// long; one that never made a request is dropped if it has not closed soon after.
async fn drive<C: GracefulConnection>(
    conn: C,
    activity: &Activity,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) -> Result<(), C::Error> {
    let mut conn = std::pin::pin!(conn);
    let mut idle = std::pin::pin!(activity.idle(limits.header_read_timeout, limits.idle_timeout));
    // A dropped sender means the server is gone: stop as well.
    let mut stopping = std::pin::pin!(async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    });
    let mut closing = false;
    let mut drop_at: Option<Instant> = None;
    loop {
        let drop_timer = async {
            match drop_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            ended = conn.as_mut() => return ended,
            () = &mut stopping, if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = &mut idle, if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
                if activity.unused() {
                    drop_at = Some(Instant::now() + UNUSED_GOAWAY_GRACE);
                }
            }
            () = drop_timer => return Ok(()),
        }
    }
}

/// A hyper connection's requests: how many are in progress and when the last one ended.
struct Activity {
    /// When hyper took the connection.
    since: Instant,
    /// Requests whose response body has not yet been handed over.
    in_flight: AtomicUsize,
    /// Microseconds from `since` to when the last request ended; [`NO_REQUEST_YET`] before.
    last_end_micros: AtomicU64,
}

const NO_REQUEST_YET: u64 = u64::MAX;

impl Activity {
    fn new() -> Activity {
        Activity {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_micros: AtomicU64::new(NO_REQUEST_YET),
        }
    }

    /// True while no request has been made.
    fn unused(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.last_end_micros.load(Ordering::Acquire) == NO_REQUEST_YET
    }

    /// When the connection will have been idle too long if nothing happens meanwhile: `first`
    /// after it was taken if it has made no request, `idle` after its last request ended;
    /// `None` while a request is in progress.
    fn idle_deadline(&self, first: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(match self.last_end_micros.load(Ordering::Acquire) {
            NO_REQUEST_YET => self.since + first,
            micros => self.since + Duration::from_micros(micros) + idle,
        })
    }

    /// Completes once the connection has been idle too long ([`Activity::idle_deadline`]).
    /// A busy connection is looked at again `idle` later.
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let now = Instant::now();
            let wake = match self.idle_deadline(first, idle) {
                Some(deadline) if deadline <= now => return,
                Some(deadline) => deadline,
                None => now + idle,
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// One request in progress on a connection, until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let micros = u64::try_from(activity.since.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
        // The end time first: whoever sees the count reach zero sees when it did.
        activity.last_end_micros.store(micros, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until hyper drops it, which
/// it does once the last frame is handed over (for HTTP/2, as flow control lets it go).
struct CountedBody {
    body: Body,
    /// The body's store file, announced to the connection when hyper first polls the body.
    announce: Option<(Arc<BodySlot>, FileBacked)>,
    _in_flight: InFlight,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some((slot, file)) = this.announce.take() {
            slot.announce(file);
        }
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
