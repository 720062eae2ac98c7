//! The express lane: the segment GETs and HEADs that open a plain HTTP/1.1 connection,
//! answered without going through hyper.
//!
//! Why: CDN edges and players pull segment after segment on one keep-alive connection, and on
//! that route hyper's own per-request work (its connection state machine, a header map built
//! and dropped per request, a service call, the response head encoded from another map, a
//! timer per request) cost more user-space CPU than all of nginx's (docs/PERFORMANCE.md).
//! The lane keeps everything that decides an answer in one place: its one way into the rest
//! of the edge is `delivery` (the catalog lookup, the token through the connection's memo,
//! entitlement, validators, ranges, problem responses, CORS and metrics), the same calls
//! hyper's path makes for a segment URL. What it does itself is only the framing of the
//! simplest requests (`frame`, no I/O) and its connection loop (here):
//!
//! - it parses heads with `httparse`, hyper's own parser, with the same limits;
//! - it answers only `GET`/`HEAD` of a URL in the catalog's segment table, over HTTP/1.1,
//!   with no query, no body framing (`Content-Length`, `Transfer-Encoding`), no `Expect`,
//!   no `Upgrade` and no `Connection` other than `keep-alive`;
//! - at the first request that is anything else (another route, an HTTP/2 preface, a head it
//!   cannot parse, a head over the size limit), it hands the connection, with every byte it
//!   has read and not answered, to hyper, which serves the rest of the connection. So every
//!   error of framing, every body and every other route stays hyper's.
//!
//! Responses are written as hyper writes them (same status line, headers, `content-length`
//! and `date` rules); `tests/express.rs` holds the two paths to byte-equal answers. When the
//! lane hands a connection over, hyper reads it through [`Rewind`], which puts back the bytes
//! the lane read and did not answer.

mod frame;
mod rewind;

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use self::frame::{HandOff, Head, encode, encode_answer, read_head};
use super::app::App;
use super::auth;
use super::delivery::{self, Delivered};
use super::sendfile::SendfileStream;
use crate::license::TokenMemo;
use crate::store::backed::FileBacked;

#[cfg(test)]
pub(crate) use self::frame::{Head as RequestHead, read_head as read_request_head};
pub(crate) use self::rewind::Rewind;

/// Bytes read at a time: hyper's first read buffer is this size too.
const READ_CHUNK: usize = 8 * 1024;

/// Where a connection goes when the lane is done with it.
#[derive(Debug)]
pub(crate) enum Exit {
    /// It is closed (the peer left, shutdown, a timeout): nothing more to serve.
    Closed,
    /// hyper serves the rest, starting with these bytes already read.
    ToHyper(bytes::Bytes),
}

/// Serves `stream` from its first byte until it closes or needs hyper. `stop` turns true when
/// the server shuts down: an idle connection then closes, and one mid-response finishes that
/// response (marked `connection: close`) first.
pub(crate) async fn serve(
    stream: &mut SendfileStream,
    app: &App,
    memo: &TokenMemo,
    stop: watch::Receiver<bool>,
) -> io::Result<Exit> {
    let limits = &app.limits;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut head = Vec::with_capacity(512);
    // The header-read timer and the shutdown waiter live as long as the connection: arming a
    // timer and joining the shutdown waiters is a cost per request otherwise.
    let mut waits = connection_waits(limits.header_read_timeout, stop);
    // As hyper's: the time for a whole head runs from when the lane starts waiting for it, so
    // an idle keep-alive connection is closed after it too.
    let mut deadline = None;
    loop {
        let req = match read_head(&buf, limits.max_headers) {
            Head::Partial => {
                if buf.len() >= limits.max_header_bytes {
                    return Ok(hand_off(app, HandOff::Unparsed, buf));
                }
                let until =
                    *deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout);
                if !waits.fill(stream, &mut buf, until).await? {
                    return Ok(Exit::Closed);
                }
                continue;
            }
            Head::HandOff(why) => return Ok(hand_off(app, why, buf)),
            Head::Express(req) => req,
        };
        let Some(seg) = delivery::find(app, req.path) else {
            return Ok(hand_off(app, HandOff::Target, buf));
        };
        let started = Instant::now();
        let token = auth::bearer_in(req.authorization, None);
        let delivered =
            delivery::deliver(app, memo, seg, token.as_deref(), &req.conditions, started).await;
        let closing = waits.stopping();
        let (head_only, len) = (req.head_only, req.len);
        let body = match delivered {
            Delivered::Answer(answer) => encode_answer(answer, head_only, closing, &mut head),
            Delivered::Problem(resp) => {
                FileBacked::in_memory(encode(resp, head_only, closing, &mut head).await)
            }
        };
        let bytes = body.bytes().clone();
        stream.expect_body(body);
        write_all(stream, &head, &bytes).await?;
        app.metrics.express_responses.inc();
        if closing {
            return Ok(Exit::Closed);
        }
        buf.advance(len);
        deadline = None;
    }
}

fn hand_off(app: &App, why: HandOff, buf: BytesMut) -> Exit {
    app.metrics
        .express_handoffs
        .get_or_create(&crate::app::metrics::ReasonLabels {
            reason: why.reason(),
        })
        .inc();
    Exit::ToHyper(buf.freeze())
}

/// Resolves once the server is shutting down (or the sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// What a connection waits on besides its socket, armed once for its whole life.
struct Waits<S> {
    /// Fires at or before the current head's deadline: it is set once and moved on only
    /// when it fires early, so a busy connection touches the timer wheel once per timeout
    /// period instead of once per request.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The shutdown signal; registered once, not per idle wait. Polled only until it
    /// resolves: `fill` then reports the connection closed, and it is not called again.
    stopped: Pin<Box<S>>,
    /// The same signal's current value.
    stop: watch::Receiver<bool>,
}

/// A connection's waits: the header-read timer first set to `timeout` from now, and the
/// shutdown signal `stop`.
fn connection_waits(
    timeout: std::time::Duration,
    stop: watch::Receiver<bool>,
) -> Waits<impl Future<Output = ()> + use<>> {
    Waits {
        timer: Box::pin(tokio::time::sleep(timeout)),
        stopped: Box::pin(stopped(stop.clone())),
        stop,
    }
}

impl<S: Future<Output = ()>> Waits<S> {
    /// The server has begun shutting down.
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Reads more of the connection into `buf`: false when the peer closed it or the server is
    /// shutting down while nothing of a request has arrived; an error past `deadline`.
    async fn fill(
        &mut self,
        stream: &mut SendfileStream,
        buf: &mut BytesMut,
        deadline: Instant,
    ) -> io::Result<bool> {
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        let idle = buf.is_empty();
        // Checked before reading, so an idle connection closes at shutdown even if its next
        // request has already arrived.
        if idle && self.stopping() {
            return Ok(false);
        }
        loop {
            tokio::select! {
                biased;
                read = stream.read_buf(buf) => return match read {
                    Ok(0) => Ok(false),
                    Ok(_) => Ok(true),
                    Err(e) => Err(e),
                },
                () = self.stopped.as_mut(), if idle => return Ok(false),
                () = self.timer.as_mut() => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not received in time",
                        ));
                    }
                    self.timer.as_mut().reset(deadline.into());
                }
            }
        }
    }
}

/// Writes the head and the body, resuming after short writes. A file-backed body goes out with
/// `sendfile`, corked behind its head, as under hyper ([`SendfileStream`]).
async fn write_all(stream: &mut SendfileStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    while !body.is_empty() {
        let n = stream.write(body).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        body = &body[n..];
    }
    stream.flush().await
}

/// The lane's framing work, for `benches/segment_path.rs` (re-exported as
/// `encore::http::express_bench`); not an interface of the crate.
pub mod bench {
    use super::frame::{Head, encode_answer, read_head};
    use crate::http::ops::segment::Answer;

    /// The length of the head at the front of `buf` if the lane would answer it.
    pub fn read_head_len(buf: &[u8], max_headers: usize) -> Option<usize> {
        match read_head(buf, max_headers) {
            Head::Express(req) => Some(req.len),
            Head::Partial | Head::HandOff(_) => None,
        }
    }

    /// Encodes `answer`'s head into `out` as the lane writes it for a `GET`; returns the body.
    pub fn encode_head(answer: Answer, out: &mut Vec<u8>) -> bytes::Bytes {
        encode_answer(answer, false, false, out).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// A lane's idle wait over a fresh loopback connection whose peer has already sent `sent`.
    async fn idle_lane_with(
        sent: &[u8],
        stop: watch::Receiver<bool>,
    ) -> (
        Waits<impl Future<Output = ()> + use<>>,
        SendfileStream,
        TcpStream,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(sent).await.unwrap();
        // The request is in the server's receive queue before the lane looks.
        server.readable().await.unwrap();
        let waits = connection_waits(std::time::Duration::from_secs(5), stop);
        (waits, SendfileStream::new(server), client)
    }

    #[tokio::test]
    async fn an_idle_connection_closes_at_shutdown_even_with_a_request_waiting() {
        let request = b"GET /v1/a HTTP/1.1\r\nHost: x\r\n\r\n";
        let deadline = Instant::now() + std::time::Duration::from_secs(5);

        // Shutdown began while the connection sat idle, and its next request had arrived:
        // the request is not started (the peer sees the connection close and may retry
        // elsewhere), because nothing of it has been read.
        let (tx, rx) = watch::channel(false);
        let (mut waits, mut stream, _client) = idle_lane_with(request, rx).await;
        tx.send(true).unwrap();
        let mut buf = BytesMut::new();
        assert!(!waits.fill(&mut stream, &mut buf, deadline).await.unwrap());
        assert!(buf.is_empty(), "nothing of the waiting request was read");

        // Without shutdown the same wait reads the request.
        let (_tx, rx) = watch::channel(false);
        let (mut waits, mut stream, _client) = idle_lane_with(request, rx).await;
        assert!(waits.fill(&mut stream, &mut buf, deadline).await.unwrap());
        assert_eq!(&buf[..], request);

        // Part of a request already read: the connection is not idle, so shutdown lets the
        // rest of that request arrive and be answered.
        let (tx, rx) = watch::channel(false);
        let (mut waits, mut stream, _client) = idle_lane_with(b"Host: x\r\n\r\n", rx).await;
        tx.send(true).unwrap();
        let mut buf = BytesMut::from(&b"GET /v1/a HTTP/1.1\r\n"[..]);
        assert!(waits.fill(&mut stream, &mut buf, deadline).await.unwrap());
        assert_eq!(&buf[..], request);
    }
}
