//! The HTTP/1.1 express lane (src/http/express/) against hyper's path on the same server:
//! byte-equal answers, pipelining, the hand-off to hyper mid-connection, request bodies and
//! oversized heads left to hyper, the head-read timeout, shutdown of idle connections, and how
//! connections spread over the connection threads.
//! Raw sockets, so what is compared is what a player or an edge receives.

use std::time::Duration;

use encore::license::Scope;
use encore::store::library::segment_url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{self, TestServer};

const ALBUM: &str = "express";

/// One response as read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    /// (lowercase name, value), as sent, without `date`.
    headers: Vec<(String, String)>,
    date: Option<String>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A client connection that keeps what it has read past the last response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(s: &TestServer) -> Conn {
        let addr = s.url.trim_start_matches("http://");
        Conn {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads more; false at end of stream.
    async fn more(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("server answers within 10 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads one response; `head_only` for the answer to a HEAD.
    async fn response(&mut self, head_only: bool) -> Raw {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(len) = parsed.parse(&self.buf).expect("a response") {
                let status = parsed.code.expect("status");
                let mut headers = Vec::new();
                let mut date = None;
                for h in parsed.headers.iter() {
                    let name = h.name.to_ascii_lowercase();
                    let value = String::from_utf8(h.value.to_vec()).expect("ascii value");
                    if name == "date" {
                        date = Some(value);
                    } else {
                        headers.push((name, value));
                    }
                }
                let body_len = if head_only || status == 304 {
                    0
                } else {
                    headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map_or(0, |(_, v)| v.parse::<usize>().expect("length"))
                };
                while self.buf.len() < len + body_len {
                    assert!(self.more().await, "connection closed mid-body");
                }
                let body = self.buf[len..len + body_len].to_vec();
                self.buf.drain(..len + body_len);
                return Raw {
                    status,
                    headers,
                    date,
                    body,
                };
            }
            assert!(self.more().await, "connection closed before a response");
        }
    }

    /// True when the server closes the connection within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: encore\r\n{extra}\r\n").into_bytes()
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

fn express_count(s: &TestServer) -> u64 {
    s.app.metrics.express_responses.get()
}

fn handoffs(s: &TestServer, reason: &'static str) -> u64 {
    s.app
        .metrics
        .express_handoffs
        .get_or_create(&encore::http::metrics::ReasonLabels { reason })
        .get()
}

/// Segment URLs of track 1's `rendition` with their hashes (init first).
fn segments(ws: &util::Workspace, rendition: &str) -> Vec<(String, String)> {
    let m = util::manifest(ws, ALBUM, 1, rendition);
    std::iter::once(&m.init)
        .chain(&m.segments)
        .map(|r| {
            (
                segment_url(ALBUM, 1, rendition, &m.generation, &r.file),
                r.sha256.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_express_lane_answers_as_hyper_does() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let other = util::token(&ws, "bob", Scope::Play, &["another-album"]);
    let edge = util::token(&ws, "edge-1", Scope::Edge, &[]);
    let (seg, sha) = segments(&ws, "lossless").swap_remove(1);
    let etag = format!("\"{sha}\"");
    let b = bearer(&buyer);
    let cases: Vec<(&str, Vec<u8>, bool, u16)> = vec![
        ("buyer GET", get(&seg, &b), false, 200),
        (
            "buyer HEAD",
            format!("HEAD {seg} HTTP/1.1\r\nHost: encore\r\n{b}\r\n").into_bytes(),
            true,
            200,
        ),
        (
            "range",
            get(&seg, &format!("{b}Range: bytes=10-99\r\n")),
            false,
            206,
        ),
        (
            "open range",
            get(&seg, &format!("{b}Range: bytes=-50\r\n")),
            false,
            206,
        ),
        (
            "unsatisfiable",
            get(&seg, &format!("{b}Range: bytes=99999999-\r\n")),
            false,
            416,
        ),
        (
            "multi-range",
            get(&seg, &format!("{b}Range: bytes=0-1,5-6\r\n")),
            false,
            200,
        ),
        (
            "not modified",
            get(&seg, &format!("{b}If-None-Match: {etag}\r\n")),
            false,
            304,
        ),
        (
            "weak match",
            get(&seg, &format!("{b}If-None-Match: \"x\", W/{etag}\r\n")),
            false,
            304,
        ),
        (
            "stale if-range",
            get(
                &seg,
                &format!("{b}Range: bytes=0-9\r\nIf-Range: \"old\"\r\n"),
            ),
            false,
            200,
        ),
        ("no token", get(&seg, ""), false, 401),
        (
            "basic auth",
            get(&seg, "Authorization: Basic YTpi\r\n"),
            false,
            401,
        ),
        (
            "garbage token",
            get(&seg, &bearer("not.a.token")),
            false,
            401,
        ),
        ("non-buyer", get(&seg, &bearer(&other)), false, 403),
        ("edge", get(&seg, &bearer(&edge)), false, 200),
        (
            "keep-alive and repeated authorization",
            get(
                &seg,
                &format!("Connection: keep-alive\r\n{b}{}", bearer(&other)),
            ),
            false,
            200,
        ),
    ];
    let before = express_count(&s);
    for (name, request, head_only, status) in &cases {
        // Express: a request that opens a connection.
        let mut lane = Conn::open(&s).await;
        lane.send(request).await;
        let fast = lane.response(*head_only).await;
        // hyper: the same request after one the lane hands off.
        let mut hyper = Conn::open(&s).await;
        hyper
            .send(b"GET /healthz HTTP/1.1\r\nHost: encore\r\n\r\n")
            .await;
        assert_eq!(hyper.response(false).await.status, 200);
        hyper.send(request).await;
        let slow = hyper.response(*head_only).await;

        assert_eq!(fast.status, *status, "{name}: {fast:?}");
        let mut fast_headers = fast.headers.clone();
        let mut slow_headers = slow.headers.clone();
        fast_headers.sort();
        slow_headers.sort();
        assert_eq!(fast_headers, slow_headers, "{name}: the same headers");
        assert_eq!(fast.status, slow.status, "{name}");
        assert_eq!(fast.body, slow.body, "{name}: the same body");
        assert!(fast.date.is_some() && slow.date.is_some(), "{name}: a Date");
        if *status == 200 && !head_only {
            assert_eq!(encore::store::sha256_hex(&fast.body), sha, "{name}");
        }
    }
    assert_eq!(
        express_count(&s) - before,
        cases.len() as u64,
        "every first request went through the lane, none of hyper's"
    );
    // The edge pull carries public cache headers, the player's private ones.
    let mut c = Conn::open(&s).await;
    c.send(&get(&seg, &bearer(&edge))).await;
    let r = c.response(false).await;
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    // One copy for every listener at the edge: no `Vary: Authorization` (docs/EDGE.md).
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_and_a_hand_off_keep_their_order() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let segs = segments(&ws, "lossless");
    let b = bearer(&buyer);
    let before = (express_count(&s), handoffs(&s, "target"));

    // Four requests in one write: two for the lane, then another route (hyper takes the
    // connection from there), then a segment again, which hyper answers.
    let mut c = Conn::open(&s).await;
    let mut burst = get(&segs[1].0, &b);
    burst.extend(format!("HEAD {} HTTP/1.1\r\nHost: encore\r\n{b}\r\n", segs[2].0).into_bytes());
    burst.extend(get(&format!("/v1/albums/{ALBUM}"), ""));
    burst.extend(get(&segs[0].0, &b));
    c.send(&burst).await;
    let first = c.response(false).await;
    assert_eq!(first.status, 200);
    assert_eq!(encore::store::sha256_hex(&first.body), segs[1].1);
    let second = c.response(true).await;
    assert_eq!(second.status, 200);
    assert!(second.body.is_empty());
    let album = c.response(false).await;
    assert_eq!(album.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&album.body).expect("album json");
    assert_eq!(v["id"], ALBUM, "{v}");
    let init = c.response(false).await;
    assert_eq!(init.status, 200);
    assert_eq!(encore::store::sha256_hex(&init.body), segs[0].1);
    // And the connection lives on, with hyper.
    c.send(&get(&segs[2].0, &b)).await;
    let third = c.response(false).await;
    assert_eq!(encore::store::sha256_hex(&third.body), segs[2].1);

    assert_eq!(express_count(&s) - before.0, 2, "the two leading requests");
    assert_eq!(handoffs(&s, "target") - before.1, 1);

    // A head split over many small writes is put together before it is answered.
    let mut c = Conn::open(&s).await;
    for piece in get(&segs[1].0, &b).chunks(7) {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let r = c.response(false).await;
    assert_eq!(encore::store::sha256_hex(&r.body), segs[1].1);
    assert_eq!(express_count(&s) - before.0, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_queries_and_oversized_heads_are_left_to_hyper() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let segs = segments(&ws, "lossless");
    let b = bearer(&buyer);
    let before = express_count(&s);

    // A body on a segment GET: hyper reads it as the body, so the bytes after it are the next
    // request, not part of this one (no request smuggled past the lane's framing).
    let mut c = Conn::open(&s).await;
    let mut req = get(&segs[1].0, &format!("{b}Content-Length: 4\r\n"));
    req.extend_from_slice(b"ABCD");
    req.extend(get("/healthz", ""));
    c.send(&req).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(encore::store::sha256_hex(&r.body), segs[1].1);
    assert_eq!(
        c.response(false).await.status,
        200,
        "/healthz after the body"
    );
    assert_eq!(handoffs(&s, "body"), 1);

    // Chunked framing too.
    let mut c = Conn::open(&s).await;
    let mut req = get(&segs[1].0, &format!("{b}Transfer-Encoding: chunked\r\n"));
    req.extend_from_slice(b"4\r\nABCD\r\n0\r\n\r\n");
    req.extend(get("/healthz", ""));
    c.send(&req).await;
    assert_eq!(c.response(false).await.status, 200);
    assert_eq!(c.response(false).await.status, 200);
    assert_eq!(handoffs(&s, "body"), 2);

    // The token in the query (players that cannot set headers).
    let mut c = Conn::open(&s).await;
    c.send(&get(&format!("{}?access_token={buyer}", segs[1].0), ""))
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(encore::store::sha256_hex(&r.body), segs[1].1);

    // HTTP/1.0 and `Connection: close`: hyper's keep-alive rules apply.
    let mut c = Conn::open(&s).await;
    c.send(format!("GET {} HTTP/1.0\r\n{b}\r\n", segs[1].0).as_bytes())
        .await;
    assert_eq!(c.response(false).await.status, 200);
    assert!(c.closed_within(Duration::from_secs(5)).await);
    let mut c = Conn::open(&s).await;
    c.send(&get(&segs[1].0, &format!("{b}Connection: close\r\n")))
        .await;
    let r = c.response(false).await;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(5)).await);

    // A head over the limit (16 KiB) and one with too many headers: hyper's 431.
    let mut c = Conn::open(&s).await;
    c.send(&get(
        &segs[1].0,
        &format!("{b}X-Big: {}\r\n", "a".repeat(20_000)),
    ))
    .await;
    assert_eq!(c.response(false).await.status, 431);
    let mut c = Conn::open(&s).await;
    let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
    c.send(&get(&segs[1].0, &format!("{b}{many}"))).await;
    assert_eq!(c.response(false).await.status, 431);

    // Garbage: hyper's 400.
    let mut c = Conn::open(&s).await;
    c.send(b"GET /v1 HTTP/1.1\r\nBad Header\r\n\r\n").await;
    assert_eq!(c.response(false).await.status, 400);

    assert_eq!(
        express_count(&s),
        before,
        "none of these went through the lane"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_after_the_head_timeout() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let limits = encore::http::Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let s = TestServer::start_with_limits(&ws, limits).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let segs = segments(&ws, "lossless");

    // A head that never completes (slowloris).
    let mut slow = Conn::open(&s).await;
    slow.send(format!("GET {} HTTP/1.1\r\nHost: x\r\n", segs[1].0).as_bytes())
        .await;
    assert!(
        slow.closed_within(Duration::from_secs(4)).await,
        "an unfinished head is cut off"
    );

    // A keep-alive connection that went quiet after a response.
    let mut idle = Conn::open(&s).await;
    idle.send(&get(&segs[1].0, &bearer(&buyer))).await;
    assert_eq!(idle.response(false).await.status, 200);
    assert!(
        idle.closed_within(Duration::from_secs(4)).await,
        "an idle connection is closed"
    );
}

/// The head timeout counts from when the lane starts waiting for each head, not from when the
/// connection opened: a connection whose requests keep coming stays open well past it (the
/// lane's timer is armed once and moved on lazily, so this is what could break).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_outlives_the_head_timeout() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let limits = encore::http::Limits {
        header_read_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let s = TestServer::start_with_limits(&ws, limits).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let segs = segments(&ws, "lossless");
    let mut c = Conn::open(&s).await;
    // 5 requests 0.8 s apart: 4 s in all, twice the timeout, each head well within it.
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        c.send(&get(&segs[1].0, &bearer(&buyer))).await;
        assert_eq!(c.response(false).await.status, 200, "request {i}");
    }
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "once quiet, it is closed after the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_express_connections_do_not_hold_up_shutdown() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let mut s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let segs = segments(&ws, "lossless");
    let mut c = Conn::open(&s).await;
    c.send(&get(&segs[1].0, &bearer(&buyer))).await;
    assert_eq!(c.response(false).await.status, 200);

    // The grace period is 30 s; an idle connection must not use it.
    s.begin_shutdown();
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "the idle connection is closed at shutdown"
    );
    tokio::time::timeout(Duration::from_secs(5), &mut s.handle)
        .await
        .expect("the server stops without waiting out the grace period")
        .expect("server task")
        .expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_lane_off_hyper_serves_every_request() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let raw: encore::config::RawConfig =
        toml::from_str("[server]\nexpress_lane = false\n").expect("toml");
    let s = TestServer::start_configured(&ws, Default::default(), raw).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let segs = segments(&ws, "lossless");
    let mut c = Conn::open(&s).await;
    c.send(&get(&segs[1].0, &bearer(&buyer))).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(encore::store::sha256_hex(&r.body), segs[1].1);
    assert_eq!(express_count(&s), 0);
    assert_eq!(handoffs(&s, "target") + handoffs(&s, "unparsed"), 0);
}

/// Open connections per connection thread, from `/metrics` scraped on a connection of its own
/// (which is counted too).
async fn open_per_thread(s: &TestServer) -> Vec<i64> {
    let mut c = Conn::open(s).await;
    c.send(&get("/metrics", "Connection: close\r\n")).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).expect("metrics text");
    let mut open: Vec<(u16, i64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("encore_http_connections_open{thread=\""))
        .map(|rest| {
            let (thread, value) = rest.split_once("\"} ").expect("a gauge line");
            (
                thread.parse().expect("thread index"),
                value.trim().parse().expect("gauge value"),
            )
        })
        .collect();
    open.sort_unstable();
    open.into_iter().map(|(_, n)| n).collect()
}

/// Connections are spread over the connection threads (the least busy takes the next one),
/// every thread answers through both the lane and hyper, and a closed connection is given
/// back to its thread's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_over_the_connection_threads() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let limits = encore::http::Limits {
        connection_threads: 3,
        ..Default::default()
    };
    let s = TestServer::start_with_limits(&ws, limits).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let segs = segments(&ws, "lossless");
    let mut held = Vec::new();
    for i in 0..6 {
        // A response means the accept loop has handed the connection over, so the next one
        // sees this one counted.
        let mut c = Conn::open(&s).await;
        c.send(&get(&segs[1].0, &bearer(&buyer))).await;
        let seg = c.response(false).await;
        assert_eq!(seg.status, 200, "connection {i}, the lane");
        assert_eq!(encore::store::sha256_hex(&seg.body), segs[1].1);
        c.send(&get("/v1/albums", "")).await;
        assert_eq!(c.response(false).await.status, 200, "connection {i}, hyper");
        held.push(c);
    }
    let open = open_per_thread(&s).await;
    assert_eq!(open.len(), 3, "one series per thread: {open:?}");
    assert_eq!(
        open.iter().sum::<i64>(),
        7,
        "six held and the scrape: {open:?}"
    );
    assert!(open.iter().all(|&n| n >= 2), "spread evenly: {open:?}");

    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let open = open_per_thread(&s).await;
        if open.iter().sum::<i64>() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "closed connections leave the count: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
