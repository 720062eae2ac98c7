//! HTTP conformance on hyper's path and the express lane alike: `Host` (RFC 9112 §3.2), 404
//! before 405 and the route's own `Allow`, repeated JSON keys, ISO 4217 currencies, and a
//! form-encoded `access_token` (RFC 6750 §2.3). Raw sockets where the framing matters.

use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{self, TestServer};

const ALBUM: &str = "conform";

/// One response off a raw connection: status, lowercase header lines, body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Sends `requests` on one new connection and reads `count` responses, in order.
async fn exchange(s: &TestServer, requests: &[u8], count: usize) -> Vec<Raw> {
    let mut stream = TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .expect("connect");
    stream.write_all(requests).await.expect("send");
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < count {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut slots);
        if let Ok(httparse::Status::Complete(len)) = parsed.parse(&buf) {
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let status = parsed.code.expect("status");
            let body_len = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse::<usize>().expect("length"));
            if buf.len() >= len + body_len {
                let body = buf[len..len + body_len].to_vec();
                buf.drain(..len + body_len);
                out.push(Raw {
                    status,
                    headers,
                    body,
                });
                continue;
            }
        }
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "connection closed after {} responses", out.len());
        buf.extend_from_slice(&chunk[..n]);
    }
    out
}

fn problem_type(r: &Raw) -> String {
    let v: Value = serde_json::from_slice(&r.body).expect("problem json");
    v["type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_required_once_on_both_paths() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let seg = {
        let m = util::manifest(&ws, ALBUM, 1, "lossless");
        encore::store::library::segment_url(ALBUM, 1, "lossless", &m.generation, &m.init.file)
    };
    let auth = format!("Authorization: Bearer {buyer}\r\n");
    let cases = [
        ("no Host", format!("GET {seg} HTTP/1.1\r\n{auth}\r\n")),
        (
            "two Hosts",
            format!("GET {seg} HTTP/1.1\r\nHost: a\r\nHost: b\r\n{auth}\r\n"),
        ),
        (
            "an invalid Host",
            format!("GET {seg} HTTP/1.1\r\nHost: a/b\r\n{auth}\r\n"),
        ),
        (
            "another route, no Host",
            "GET /v1/albums HTTP/1.1\r\n\r\n".to_owned(),
        ),
    ];
    for (name, request) in &cases {
        // First on a connection: the express lane's turn for a segment.
        let lane = exchange(&s, request.as_bytes(), 1).await.remove(0);
        // After a request hyper served: hyper's turn.
        let mut both = b"GET /healthz HTTP/1.1\r\nHost: encore\r\n\r\n".to_vec();
        both.extend_from_slice(request.as_bytes());
        let hyper = exchange(&s, &both, 2).await.remove(1);
        for (path, r) in [("lane", &lane), ("hyper", &hyper)] {
            assert_eq!(r.status, 400, "{name} ({path})");
            assert_eq!(problem_type(r), "urn:encore:problem:bad-request", "{name}");
        }
        let strip = |r: &Raw| {
            let mut h: Vec<_> = r.headers.iter().filter(|(n, _)| n != "date").collect();
            h.sort();
            format!("{h:?}")
        };
        assert_eq!(strip(&lane), strip(&hyper), "{name}: the same answer");
    }
    // With one Host, the same segment is served.
    let ok = format!("GET {seg} HTTP/1.1\r\nHost: encore\r\n{auth}\r\n");
    assert_eq!(exchange(&s, ok.as_bytes(), 1).await[0].status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_whatever_the_method() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    for method in ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = c
            .request(m, format!("{}/v1/nothing-here", s.url))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method}");
        assert!(r.headers().get("allow").is_none(), "{method}");
    }
    // A known route with a method it does not take: 405 and that route's own methods.
    let cases = [
        ("DELETE", "/v1/albums", "GET, HEAD, OPTIONS"),
        ("GET", "/v1/licenses", "POST, OPTIONS"),
        ("PUT", "/v1/purchases", "POST, OPTIONS"),
        ("POST", "/v1/charts/albums", "GET, HEAD, OPTIONS"),
    ];
    for (method, path, allow) in cases {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = c
            .request(m, format!("{}{path}", s.url))
            .send()
            .await
            .expect("request");
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            r.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_with_a_repeated_key_or_a_made_up_currency_are_refused() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let play = util::token(&ws, "alice", Scope::Play, &[]);
    let post = |path: &str, token: &str, body: String| {
        c.post(format!("{}{path}", s.url))
            .bearer_auth(token.to_owned())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // A parser that keeps the first `price` would read 1; serde_json keeps the last.
    let twice = format!(
        r#"{{"order_id":"o-1","user":"fan-1","album":"{ALBUM}","price":1,"currency":"CNY","price":150000}}"#
    );
    let r = post("/v1/purchases", &store, twice)
        .await
        .expect("purchase");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let p: Value = r.json().await.expect("problem");
    assert_eq!(p["type"], "urn:encore:problem:bad-request");
    assert!(p["detail"].as_str().unwrap_or("").contains("price"), "{p}");
    let nested = format!(r#"{{"album":"{ALBUM}","track":1,"track":2}}"#);
    let r = post("/v1/licenses", &play, nested).await.expect("license");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    for currency in ["ABC", "XXX", "XTS"] {
        let body = format!(
            r#"{{"order_id":"o-2","user":"fan-1","album":"{ALBUM}","price":1,"currency":"{currency}"}}"#
        );
        let r = post("/v1/purchases", &store, body).await.expect("purchase");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{currency}");
        let p: Value = r.json().await.expect("problem");
        assert_eq!(p["field"], "currency", "{currency}");
    }
    assert!(
        s.app.ledger.order_ids().await.expect("ids").is_empty(),
        "nothing refused was recorded"
    );
    let good = format!(
        r#"{{"order_id":"o-3","user":"fan-1","album":"{ALBUM}","price":1500,"currency":"EUR"}}"#
    );
    let r = post("/v1/purchases", &store, good).await.expect("purchase");
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_is_percent_decoded() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let edge = util::token(&ws, "edge-1", Scope::Edge, &[]);
    // Every byte escaped, as a client may legally send it.
    let escaped: String = edge.bytes().map(|b| format!("%{b:02X}")).collect();
    let manifest = format!("{}/v1/albums/{ALBUM}/tracks/1/preview/manifest", s.url);
    let r = reqwest::get(format!("{manifest}?access_token={escaped}"))
        .await
        .expect("manifest");
    assert_eq!(r.status(), StatusCode::OK);
    let r = reqwest::get(format!("{manifest}?access_token={edge}"))
        .await
        .expect("manifest");
    assert_eq!(r.status(), StatusCode::OK);
}
