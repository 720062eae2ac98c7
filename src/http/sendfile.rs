//! A plain-TCP connection that sends cached segments with `sendfile(2)` instead of copying them.
//!
//! hyper writes an HTTP/1 response as the head followed by the body `Bytes`, in one vectored
//! write. When a buffer it passes lies inside a cached segment ([`crate::store::backed`]),
//! this stream sends the buffers before it with `MSG_MORE` (so the head leaves in the same
//! packet as the body's start) and then the same range with `sendfile` from the store file:
//! TCP takes the page-cache pages by reference and the body is never copied in user space or
//! into socket buffers. Head and body go out under `TCP_CORK`, and the body's last byte
//! pushes the rest out, so the body leaves in full-sized segments (why:
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
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::store::backed::{self, FileSlice};

/// Below this a body is written by copy: looking it up and a second syscall would cost more
/// than the copy saves.
const MIN_SENDFILE: usize = 16 * 1024;

/// A `TcpStream` whose writes send sealed-segment slices by reference.
#[derive(Debug)]
pub struct SendfileStream {
    inner: TcpStream,
    /// `TCP_CORK` is on: set before a file-backed body's head, cleared once the body is sent.
    corked: bool,
}

impl SendfileStream {
    /// Wraps an accepted connection.
    pub fn new(inner: TcpStream) -> Self {
        SendfileStream {
            inner,
            corked: false,
        }
    }

    /// Holds back partial segments while a response goes out in pieces, as nginx's
    /// `tcp_nopush` does. `sendfile` hands TCP 64 KiB at a time and the loopback MSS is a few
    /// bytes less, so without the cork every piece leaves as a full segment plus a tiny one
    /// (twice the packets, each waking the reader); corked, the remainder waits for the next
    /// piece. The cork stays on from one file-backed body to the next: [`Self::push`] sends a
    /// finished body's tail without lifting it, one syscall per response instead of two.
    /// Failing to set it only costs those packets, so errors are ignored.
    fn set_cork(&mut self, on: bool) {
        if self.corked == on {
            return;
        }
        let value: libc::c_int = on.into();
        // SAFETY: setsockopt on our own socket with a c_int option value.
        let done = unsafe {
            libc::setsockopt(
                self.inner.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done == 0 {
            self.corked = on;
        }
    }

    /// Sends what the cork holds back now, leaving it on. Setting `TCP_NODELAY` (already on
    /// for every connection) flushes pending output even under `TCP_CORK` (tcp(7)); the kernel
    /// drops the flush flag with the next response's first segment, so the cork holds again
    /// from there. A failed push lifts the cork instead, so no tail waits for the cork's
    /// 200 ms timer.
    fn push(&mut self) {
        if self.inner.set_nodelay(true).is_err() {
            self.set_cork(false);
        }
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        slice: FileSlice,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let mut offset = slice.offset as libc::off_t;
                // SAFETY: both fds are open (the socket is ours; the store file is kept open by
                // the `Bytes` hyper is writing), and `offset` is a local the call may update.
                let n =
                    unsafe { libc::sendfile(self.inner.as_raw_fd(), slice.fd, &mut offset, len) };
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
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                // SAFETY: an all-zero msghdr is valid; `IoSlice` is ABI-compatible with
                // `iovec` on Unix, and `bufs` outlives the call.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len() as _;
                // SAFETY: a valid socket fd and a msghdr pointing at live buffers.
                let n = unsafe {
                    libc::sendmsg(
                        self.inner.as_raw_fd(),
                        &msg,
                        libc::MSG_MORE | libc::MSG_NOSIGNAL,
                    )
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

fn file_slice(buf: &[u8]) -> Option<FileSlice> {
    if buf.len() < MIN_SENDFILE {
        return None;
    }
    backed::lookup(buf)
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
        let this = self.get_mut();
        let backed = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| file_slice(b).map(|m| (i, m)));
        match backed {
            None => {
                let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
                // Nothing but a file-backed body may sit behind the cork.
                this.set_cork(false);
                Poll::Ready(written)
            }
            Some((0, slice)) => {
                this.set_cork(true);
                let len = bufs[0].len();
                let sent = ready!(this.poll_sendfile(cx, slice, len));
                if matches!(sent, Ok(n) if n == len) {
                    this.push();
                }
                Poll::Ready(sent)
            }
            Some((i, _)) => {
                this.set_cork(true);
                this.poll_send_more(cx, &bufs[..i])
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
        let segment = backed::load(&path, true, None).await.unwrap();
        assert!(backed::lookup(&segment).is_some());

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
        let segment = backed::load(&path, true, None).await.unwrap();

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
