//! A plain-TCP connection that sends cached segments with `sendfile(2)` instead of copying them.
//!
//! hyper (or the express lane) writes an HTTP/1 response as the head followed by the body
//! `Bytes`, in one vectored write. Before that, the body's store file is handed to this
//! stream: the lane gives it directly ([`SendfileStream::expect_body`]), hyper's service
//! through the connection's [`BodySlot`] as hyper takes the body. When a buffer being written
//! lies inside that body, this stream sends the buffers before it with `MSG_MORE` (so the head
//! leaves in the same packet as the body's start) and then the same range with `sendfile` from
//! the store file: TCP takes the page-cache pages by reference and the body is never copied in
//! user space or into socket buffers. Head and body go out under `TCP_CORK`, and the body's
//! last byte pushes the rest out, so the body leaves in full-sized segments (why:
//! `SendfileStream::set_cork`). The cork stays on between such responses: one syscall per
//! response pushes, instead of two that lift and set it.
//! Everything else (request reads, other responses, HTTP/2 frames) passes straight through to
//! the `TcpStream`.
//!
//! Partial writes keep the `AsyncWrite` contract: the count returned is always a prefix of the
//! buffers given, so hyper resumes at the right byte whichever call was short.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::store::backed::{FileBacked, FileSlice};

/// Below this a body is written by copy: finding its file and a second syscall would cost more
/// than the copy saves.
const MIN_SENDFILE: usize = 16 * 1024;

/// A `TcpStream` whose writes send sealed-segment slices by reference.
#[derive(Debug)]
pub(crate) struct SendfileStream {
    inner: TcpStream,
    /// `TCP_CORK` is on: set before a file-backed body's head, cleared once the body is sent.
    corked: bool,
    /// The file-backed body being written: writes that lie inside its bytes go out with
    /// `sendfile`. Held until its last byte is sent, which keeps its file open for the send.
    body: Option<FileBacked>,
    /// Where hyper's service leaves the next body; moved to `body` at the next large write.
    next: Arc<BodySlot>,
}

/// Where hyper's service hands a connection the store file of the body hyper is about to
/// write (hyper passes the stream bytes only).
#[derive(Debug, Default)]
pub(crate) struct BodySlot(Mutex<Option<FileBacked>>);

impl BodySlot {
    /// `body` is the next response body the connection writes. One too small to be sent
    /// from its file is not kept: it would only hold the file open.
    pub(crate) fn announce(&self, body: FileBacked) {
        if body.bytes().len() < MIN_SENDFILE {
            return;
        }
        if let Ok(mut next) = self.0.lock() {
            *next = Some(body);
        }
    }

    fn take(&self) -> Option<FileBacked> {
        self.0.lock().ok()?.take()
    }
}

impl SendfileStream {
    /// Wraps an accepted connection.
    pub(crate) fn new(inner: TcpStream) -> Self {
        SendfileStream {
            inner,
            corked: false,
            body: None,
            next: Arc::default(),
        }
    }

    /// The slot through which hyper's service announces file-backed bodies.
    pub(crate) fn body_slot(&self) -> Arc<BodySlot> {
        Arc::clone(&self.next)
    }

    /// `body` is what the next writes send (the express lane's bodies).
    pub(crate) fn expect_body(&mut self, body: FileBacked) {
        self.body = (body.has_file() && body.bytes().len() >= MIN_SENDFILE).then_some(body);
    }

    /// Holds back partial segments while a response goes out in pieces, as nginx's
    /// `tcp_nopush` does. `sendfile` hands TCP 64 KiB at a time and the loopback MSS is a few
    /// bytes less, so without the cork every piece leaves as a full segment plus a tiny one
    /// (twice the packets, each waking the reader); corked, the remainder waits for the next
    /// piece. The cork stays on from one file-backed body to the next: [`Self::push`] sends a
    /// finished body's tail without lifting it, one syscall per response instead of two.
    /// Failing to set it only costs those packets, so errors are ignored.
    fn set_cork(inner: &TcpStream, corked: &mut bool, on: bool) {
        if *corked == on {
            return;
        }
        let value: libc::c_int = on.into();
        // SAFETY: setsockopt on our own socket with a c_int option value.
        let done = unsafe {
            libc::setsockopt(
                inner.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done == 0 {
            *corked = on;
        }
    }

    /// Sends what the cork holds back now, leaving it on. Setting `TCP_NODELAY` (already on
    /// for every connection) flushes pending output even under `TCP_CORK` (tcp(7)); the kernel
    /// drops the flush flag with the next response's first segment, so the cork holds again
    /// from there. A failed push lifts the cork instead, so no tail waits for the cork's
    /// 200 ms timer.
    fn push(inner: &TcpStream, corked: &mut bool) {
        if inner.set_nodelay(true).is_err() {
            Self::set_cork(inner, corked, false);
        }
    }

    fn poll_sendfile(
        inner: &TcpStream,
        cx: &mut Context<'_>,
        slice: FileSlice<'_>,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(inner.poll_write_ready(cx))?;
            let sent = inner.try_io(Interest::WRITABLE, || {
                let mut offset = slice.offset as libc::off_t;
                // SAFETY: both fds are open (the socket is ours; the store file is borrowed
                // from the body this stream holds), and `offset` is a local the call may update.
                let n = unsafe {
                    libc::sendfile(inner.as_raw_fd(), slice.fd.as_raw_fd(), &mut offset, len)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else if n == 0 && len > 0 {
                    // The file ends before the cached copy does: someone truncated a store
                    // file. Sending the heap copy instead would hide it; end this response.
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "store file shorter than its cached segment",
                    ))
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Writes `bufs` with `MSG_MORE`: more of the same response follows at once.
    fn poll_send_more(
        inner: &TcpStream,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(inner.poll_write_ready(cx))?;
            let sent = inner.try_io(Interest::WRITABLE, || {
                // SAFETY: an all-zero msghdr is valid; `IoSlice` is ABI-compatible with
                // `iovec` on Unix, and `bufs` outlives the call.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len() as _;
                // SAFETY: a valid socket fd and a msghdr pointing at live buffers.
                let n = unsafe {
                    libc::sendmsg(inner.as_raw_fd(), &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let SendfileStream {
            inner,
            corked,
            body,
            next,
        } = self.get_mut();
        let large = bufs.iter().any(|b| b.len() >= MIN_SENDFILE);
        if large && let Some(announced) = next.take() {
            *body = Some(announced);
        }
        let backed = body.as_ref().filter(|_| large).and_then(|body| {
            bufs.iter().enumerate().find_map(|(i, b)| {
                (b.len() >= MIN_SENDFILE)
                    .then(|| body.file_slice(b))
                    .flatten()
                    .map(|slice| (i, slice))
            })
        });
        match backed {
            None => {
                let written = ready!(Pin::new(&mut *inner).poll_write_vectored(cx, bufs));
                if large {
                    // Another body, or this one's file changed: it is not sent from again.
                    *body = None;
                }
                // Nothing but a file-backed body may sit behind the cork.
                Self::set_cork(inner, corked, false);
                Poll::Ready(written)
            }
            Some((0, slice)) => {
                Self::set_cork(inner, corked, true);
                let len = bufs[0].len();
                let sent = ready!(Self::poll_sendfile(inner, cx, slice, len));
                if matches!(sent, Ok(n) if n == len) {
                    Self::push(inner, corked);
                    // The body's last byte is out: its file may close with the cache's copy.
                    *body = None;
                }
                Poll::Ready(sent)
            }
            Some((i, _)) => {
                Self::set_cork(inner, corked, true);
                Self::poll_send_more(inner, cx, &bufs[..i])
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Head + file-backed body + tail through a deliberately small send buffer and a slow reader:
    /// every write is partial somewhere, and the bytes must still arrive whole and in order.
    #[tokio::test]
    async fn file_backed_bodies_arrive_whole_through_partial_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let body: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 253) as u8).collect();
        std::fs::write(&path, &body).unwrap();
        let backed = crate::store::backed::load(&path, true, None).await.unwrap();
        let segment = backed.bytes().clone();
        assert!(backed.file_slice(&segment).is_some());

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut client = socket.connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // SAFETY: setsockopt with a c_int on a socket we own.
        let small: libc::c_int = 8192;
        unsafe {
            libc::setsockopt(
                server.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let mut stream = SendfileStream::new(server);
        // As hyper's service announces it.
        stream.body_slot().announce(backed.slice(100..=600_099));

        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 700000\r\n\r\n".to_vec();
        let middle = segment.slice(100..600_100);
        let tail = b"tail".to_vec();
        let expected: Vec<u8> = [&head[..], &middle[..], &tail[..]].concat();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 1500];
            loop {
                let n = client.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break got;
                }
                got.extend_from_slice(&chunk[..n]);
                tokio::task::yield_now().await;
            }
        });
        // What hyper does: a vectored write, then the remainder of whatever was short.
        let parts = [&head[..], &middle[..], &tail[..]];
        let (mut part, mut offset) = (0, 0);
        while part < parts.len() {
            let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&parts[part][offset..]))
                .chain(parts[part + 1..].iter().map(|p| IoSlice::new(p)))
                .collect();
            let mut n = stream.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            if part == 0 && offset == 0 {
                assert_eq!(
                    n,
                    head.len(),
                    "the announced body is found: the head goes alone"
                );
            }
            while n > 0 {
                let left = parts[part].len() - offset;
                if n >= left {
                    n -= left;
                    part += 1;
                    offset = 0;
                } else {
                    offset += n;
                    n = 0;
                }
            }
        }
        stream.shutdown().await.unwrap();
        drop(stream);
        assert_eq!(reader.await.unwrap(), expected);
    }

    fn cork_is_on(stream: &SendfileStream) -> bool {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt on a live socket into a local c_int.
        let done = unsafe {
            libc::getsockopt(
                stream.inner.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(done, 0);
        value != 0
    }

    /// Bytes queued on the socket that TCP has not sent yet (`SIOCOUTQNSD`).
    fn unsent(stream: &SendfileStream) -> libc::c_int {
        const SIOCOUTQNSD: u32 = 0x894B;
        let mut queued: libc::c_int = -1;
        // SAFETY: an ioctl that writes one c_int, on a live socket.
        let done = unsafe { libc::ioctl(stream.inner.as_raw_fd(), SIOCOUTQNSD as _, &mut queued) };
        assert_eq!(done, 0);
        queued
    }

    /// The head is held behind the cork so it shares a segment with the body's start, and the
    /// body's last byte pushes everything out: nothing of a response may wait for the kernel's
    /// 200 ms cork timer. The cork stays on, and holds the next response's head again (the
    /// push must not stick).
    #[tokio::test]
    async fn the_head_waits_for_the_body_and_the_last_byte_pushes_all_out() {
        // Small enough that the peer's initial window takes a whole response: whatever is
        // unsent is held by the cork, not by flow control.
        const BODY: usize = 20_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, vec![7u8; BODY]).unwrap();
        let backed = crate::store::backed::load(&path, true, None).await.unwrap();
        let segment = backed.bytes().clone();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got.len()
        });
        let mut stream = SendfileStream::new(server);
        assert!(!cork_is_on(&stream));

        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 20000\r\n\r\n";
        for response in 0..2 {
            // As the express lane does before each response.
            stream.expect_body(backed.clone());
            let n = stream
                .write_vectored(&[IoSlice::new(head), IoSlice::new(&segment)])
                .await
                .unwrap();
            assert_eq!(n, head.len(), "the head goes alone, with MSG_MORE");
            assert!(cork_is_on(&stream));
            assert_eq!(
                unsent(&stream),
                head.len() as libc::c_int,
                "response {response}: the head waits for the body"
            );
            let mut sent = 0;
            while sent < segment.len() {
                sent += stream.write(&segment[sent..]).await.unwrap();
            }
            assert_eq!(unsent(&stream), 0, "response {response}: all pushed out");
        }

        // A plain write afterwards (another response's small body) is never left corked.
        stream.write_all(b"tiny").await.unwrap();
        assert!(!cork_is_on(&stream));
        assert_eq!(unsent(&stream), 0);
        stream.shutdown().await.unwrap();
        drop(stream);
        assert_eq!(reader.await.unwrap(), 2 * (head.len() + BODY) + 4);
    }
}
