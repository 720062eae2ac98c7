//! Connections that do nothing are closed, over HTTP/2 as over HTTP/1.1: no first request
//! within the header-read timeout, no open stream for the idle timeout, a peer that stops
//! answering pings. Over h2c on the plain port and over TLS (ALPN h2).
//!
//! The limits are set to a second or two, and each test waits a few seconds at most for the
//! server to close: the closing is the server's, so there is no clock to inject.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{self, TestServer};

/// The client connection preface (RFC 9113 §3.4) and an empty SETTINGS frame.
const PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;

/// Long enough never to be what closes a connection in a test.
const NEVER: Duration = Duration::from_secs(600);

/// A workspace with keys and an empty catalog: enough for `/healthz`.
fn workspace() -> util::Workspace {
    let ws = util::Workspace::new();
    let init = ws.encore(&["keys", "init"]);
    assert!(init.status.success(), "{}", util::text(&init));
    ws
}

async fn server(ws: &util::Workspace, limits: encore::http::Limits) -> (TestServer, String) {
    let s = TestServer::start_with_limits(ws, limits).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    (s, addr)
}

/// Reads HTTP/2 frames until the server closes the connection or `within` passes; the
/// types of the frames read, and whether the connection was closed. Never answers a PING.
async fn frames_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> (Vec<u8>, bool) {
    let mut types = Vec::new();
    let read_all = async {
        let mut head = [0u8; 9];
        loop {
            if stream.read_exact(&mut head).await.is_err() {
                return;
            }
            types.push(head[3]);
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).await.is_err() {
                return;
            }
        }
    };
    let closed = tokio::time::timeout(within, read_all).await.is_ok();
    (types, closed)
}

/// An HTTP/2 client connection over `io` that makes one request to `/healthz`, then idles;
/// completes when the server ends the connection.
async fn request_then_idle<I>(io: I) -> tokio::task::JoinHandle<()>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("/healthz")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.expect("body");
    // `send` stays alive in the task: the client never ends the connection itself.
    tokio::spawn(async move {
        let _keep = send;
        let _ = driver.await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_connection_without_a_request_is_sent_goaway_and_closed() {
    let ws = workspace();
    let limits = encore::http::Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let (_s, addr) = server(&ws, limits).await;
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    c.write_all(PREFACE_AND_SETTINGS).await.expect("preface");
    let (types, closed) = frames_until_closed(&mut c, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a preface alone keeps no connection open (frames: {types:?})"
    );
    assert!(
        types.contains(&FRAME_GOAWAY),
        "GOAWAY first (frames: {types:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_connection_idle_after_a_request_is_closed() {
    let ws = workspace();
    let limits = encore::http::Limits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let (_s, addr) = server(&ws, limits).await;
    let conn = request_then_idle(TcpStream::connect(&addr).await.expect("connect")).await;
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("an idle HTTP/2 connection is closed")
        .expect("client task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let ws = workspace();
    // Only the pings can close this connection within the test.
    let limits = encore::http::Limits {
        header_read_timeout: NEVER,
        idle_timeout: NEVER,
        h2_keep_alive_interval: Some(Duration::from_secs(1)),
        h2_keep_alive_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let (_s, addr) = server(&ws, limits).await;
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    c.write_all(PREFACE_AND_SETTINGS).await.expect("preface");
    let (types, closed) = frames_until_closed(&mut c, Duration::from_secs(8)).await;
    assert!(types.contains(&FRAME_PING), "pinged (frames: {types:?})");
    assert!(
        closed,
        "a peer that never answers is dropped (frames: {types:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_too() {
    let ws = workspace();
    let limits = encore::http::Limits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let (s, _) = server(&ws, limits).await;
    let (cert, key) = util::self_signed(&ws);
    let (addr, tx, tls_server) = util::serve_tls(s.app.clone(), &cert, &key).await;
    let connector = tls_connector(&cert);
    let connect = || async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls
    };

    // The preface, then nothing.
    let mut quiet = connect().await;
    quiet
        .write_all(PREFACE_AND_SETTINGS)
        .await
        .expect("preface");
    let (types, closed) = frames_until_closed(&mut quiet, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a preface alone keeps no TLS connection open (frames: {types:?})"
    );
    assert!(
        types.contains(&FRAME_GOAWAY),
        "GOAWAY first (frames: {types:?})"
    );

    // A request, then nothing.
    let conn = request_then_idle(connect().await).await;
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("an idle HTTP/2 connection over TLS is closed")
        .expect("client task");

    let _ = tx.send(());
    tls_server.await.expect("server task").expect("server");
}

/// A TLS client that trusts only `cert` and offers only h2.
fn tls_connector(cert: &std::path::Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(c.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
