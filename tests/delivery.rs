//! Gated delivery over real HTTP: entitlement before every segment, token failures, edge
//! pulls, HTTP semantics players and edges rely on, single-flight loading, graceful shutdown.

use encore::license::Scope;
use reqwest::StatusCode;

use crate::util::{self, TestServer};

const ALBUM: &str = "gated";

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

async fn manifest(
    c: &reqwest::Client,
    s: &TestServer,
    token: &str,
    track: u32,
    rendition: &str,
) -> reqwest::Response {
    c.get(format!(
        "{}/v1/albums/{ALBUM}/tracks/{track}/{rendition}/manifest",
        s.url
    ))
    .bearer_auth(token)
    .send()
    .await
    .expect("manifest request")
}

async fn problem_type(resp: reqwest::Response) -> String {
    let v: serde_json::Value = resp.json().await.expect("problem json");
    v["type"].as_str().unwrap_or_default().to_string()
}

/// `bits_per_sample` is the depth a decoder outputs, which only a lossless codec fixes: the
/// manifest and the catalog state it for `lossless` and leave it out for Opus and AAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bits_per_sample_only_for_lossless() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    for rendition in ["lossless", "high", "standard", "aac", "preview"] {
        let resp = manifest(&c, &s, &buyer, 1, rendition).await;
        assert_eq!(resp.status(), StatusCode::OK, "{rendition}");
        let m: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(
            m.get("bits_per_sample").is_some(),
            rendition == "lossless",
            "{rendition} manifest: {m}"
        );
    }
    let album: serde_json::Value = c
        .get(format!("{}/v1/albums/{ALBUM}", s.url))
        .send()
        .await
        .expect("album")
        .json()
        .await
        .expect("album json");
    for r in album["tracks"][0]["renditions"]
        .as_array()
        .expect("renditions")
    {
        assert_eq!(
            r.get("bits_per_sample").is_some(),
            r["name"] == "lossless",
            "catalog: {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_gets_everything_non_buyer_only_the_preview() {
    let ws = util::packaged_album(ALBUM, 2, 8.0);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let other = util::token(&ws, "bob", Scope::Play, &["another-album"]);

    for track in 1..=2 {
        for rendition in ["lossless", "high", "standard", "aac", "preview"] {
            let resp = manifest(&c, &s, &buyer, track, rendition).await;
            assert_eq!(resp.status(), StatusCode::OK, "{track}/{rendition}");
            let m: serde_json::Value = resp.json().await.expect("json");
            let mut urls = vec![(
                m["init"]["url"].as_str().expect("init").to_string(),
                m["init"]["sha256"].as_str().expect("sha").to_string(),
            )];
            for seg in m["segments"].as_array().expect("segments") {
                urls.push((
                    seg["url"].as_str().expect("url").to_string(),
                    seg["sha256"].as_str().expect("sha").to_string(),
                ));
            }
            for (url, sha) in &urls {
                let r = c
                    .get(format!("{}{url}", s.url))
                    .bearer_auth(&buyer)
                    .send()
                    .await
                    .expect("segment");
                assert_eq!(r.status(), StatusCode::OK, "{url}");
                assert_eq!(
                    r.headers()["cache-control"],
                    "private, max-age=31536000, immutable"
                );
                let body = r.bytes().await.expect("body");
                assert_eq!(&encore::store::sha256_hex(&body), sha, "{url}");
                // The non-buyer: preview segments yes, everything else 403 not-purchased.
                let r = c
                    .get(format!("{}{url}", s.url))
                    .bearer_auth(&other)
                    .send()
                    .await
                    .expect("segment");
                if rendition == "preview" {
                    assert_eq!(r.status(), StatusCode::OK, "{url}");
                } else {
                    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{url}");
                    assert_eq!(r.headers()["content-type"], "application/problem+json");
                    assert_eq!(problem_type(r).await, "urn:encore:problem:not-purchased");
                }
            }
        }
    }
    // Licenses: all keys for the buyer, the preview key only for the other.
    let lic = |t: &str| {
        c.post(format!("{}/v1/licenses", s.url))
            .bearer_auth(t.to_string())
            .json(&serde_json::json!({"album": ALBUM, "track": 1}))
            .send()
    };
    let v: serde_json::Value = lic(&buyer)
        .await
        .expect("license")
        .json()
        .await
        .expect("json");
    let mut names: Vec<&str> = v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["rendition"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["aac", "high", "lossless", "preview", "standard"]);
    let v: serde_json::Value = lic(&other)
        .await
        .expect("license")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["rendition"].as_str())
        .collect();
    assert_eq!(names, ["preview"]);
    // 404s for things that do not exist.
    assert_eq!(
        manifest(&c, &s, &buyer, 9, "lossless").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        manifest(&c, &s, &buyer, 1, "ultra").await.status(),
        StatusCode::NOT_FOUND
    );
    let r = c
        .get(format!(
            "{}/v1/albums/{ALBUM}/tracks/1/lossless/gnope/0001.enc",
            s.url
        ))
        .bearer_auth(&buyer)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem_type(r).await, "urn:encore:problem:not-found");
    // Catalog is public.
    let v: serde_json::Value = c
        .get(format!("{}/v1/albums/{ALBUM}", s.url))
        .send()
        .await
        .expect("album")
        .json()
        .await
        .expect("json");
    assert_eq!(v["tracks"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["tracks"][0]["preview"]["seconds"].as_f64(), Some(4.0));
    // The catalog lists the Apple rendition with what a playlist's CODECS and BANDWIDTH need.
    let aac = v["tracks"][0]["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .find(|r| r["name"] == "aac")
        .expect("an aac rendition in the catalog")
        .clone();
    assert_eq!(aac["codec"], "aac");
    assert_eq!(aac["codec_string"], "mp4a.40.2");
    assert_eq!(aac["bitrate"], 256_000);
    assert_eq!(aac["sample_rate"], 44_100);
    assert_eq!(aac["channels"], 2);
}

/// Builds a JWT by hand: `header` and `claims` as JSON, signature bytes as given.
fn hand_jwt(header: &serde_json::Value, claims: &serde_json::Value, sig: &[u8]) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        e.encode(header.to_string()),
        e.encode(claims.to_string()),
        e.encode(sig)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_with_a_bearer_challenge() {
    use base64::Engine;
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let c = client();
    let now = util::now();
    let good = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let parts: Vec<&str> = good.split('.').collect();
    let kid = {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .expect("b64");
        let v: serde_json::Value = serde_json::from_slice(&h).expect("json");
        v["kid"].as_str().expect("kid").to_string()
    };
    let claims = serde_json::json!({"iss": "encore", "aud": "encore", "sub": "mallory", "exp": now + 3600, "iat": now, "jti": "x", "scope": "play", "albums": [ALBUM]});

    // Tampered payload: same header and signature, claims swapped.
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    // alg none.
    let none = hand_jwt(
        &serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid}),
        &claims,
        b"",
    );
    // HS256 keyed with the public key (the classic algorithm-confusion attack).
    let public = ws
        .keyring()
        .public_keys()
        .into_iter()
        .next()
        .expect("key")
        .key
        .verifying_key()
        .to_bytes();
    let hs_input = format!(
        "{}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string()),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mac = hmac_sha256(&public, hs_input.as_bytes());
    let hs256 = format!(
        "{hs_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    );
    // Signed by a key the server does not know.
    let stranger = util::Workspace::new();
    assert!(stranger.encore(&["keys", "init"]).status.success());
    let unknown_kid = util::token(&stranger, "alice", Scope::Play, &[ALBUM]);
    // Wrong audience / issuer.
    let key = ws.keyring().signing_key().expect("key");
    let mint_with = |iss: &str, aud: &str| {
        let mut r = encore::license::MintRequest::new("alice", Scope::Play);
        r.albums = vec![ALBUM.into()];
        r.issuer = iss.into();
        r.audience = aud.into();
        encore::license::mint(&key, &r, now).expect("mint")
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        (
            "expired",
            Some(util::token_at(
                &ws,
                "alice",
                Scope::Play,
                &[ALBUM],
                now - 7200,
                3600,
                None,
            )),
        ),
        (
            "not yet valid",
            Some(util::token_at(
                &ws,
                "alice",
                Scope::Play,
                &[ALBUM],
                now,
                7200,
                Some(now + 3600),
            )),
        ),
        ("wrong audience", Some(mint_with("encore", "someone-else"))),
        ("wrong issuer", Some(mint_with("evil", "encore"))),
        ("unknown kid", Some(unknown_kid)),
        ("tampered payload", Some(tampered)),
        ("alg none", Some(none)),
        ("HS256 with the public key", Some(hs256)),
        ("oversized", Some(format!("{good}{}", "A".repeat(8000)))),
        ("garbage", Some("not.a.jwt".into())),
    ];
    let url = format!("{}/v1/albums/{ALBUM}/tracks/1/preview/manifest", s.url);
    for (name, token) in cases {
        let mut req = c.get(&url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(challenge.starts_with("Bearer"), "{name}: {challenge}");
        if token.is_some() {
            assert!(challenge.contains("invalid_token"), "{name}: {challenge}");
        }
        let t = problem_type(r).await;
        let expected = match name {
            "missing" => "urn:encore:problem:token-missing",
            "expired" => "urn:encore:problem:token-expired",
            _ => "urn:encore:problem:token-invalid",
        };
        assert_eq!(t, expected, "{name}");
    }
    // The good token still works, also as a query parameter.
    assert_eq!(
        c.get(&url)
            .bearer_auth(&good)
            .send()
            .await
            .expect("ok")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        c.get(format!("{url}?access_token={good}"))
            .send()
            .await
            .expect("ok")
            .status(),
        StatusCode::OK
    );
    // A valid token of the wrong scope is 403, not 401.
    let store = util::token(&ws, "backend", Scope::Store, &[]);
    let r = c.get(&url).bearer_auth(&store).send().await.expect("req");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        problem_type(r).await,
        "urn:encore:problem:scope-not-allowed"
    );
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_pulls_and_http_semantics() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let s = TestServer::start(&ws).await;
    let c = client();
    let edge = util::token(&ws, "edge-fra1", Scope::Edge, &[]);
    let m: serde_json::Value = manifest(&c, &s, &edge, 1, "lossless")
        .await
        .json()
        .await
        .expect("json");
    let seg = &m["segments"][0];
    let url = format!("{}{}", s.url, seg["url"].as_str().expect("url"));
    let len = seg["bytes"].as_u64().expect("bytes");
    let etag = format!("\"{}\"", seg["sha256"].as_str().expect("sha"));

    let r = c.get(&url).bearer_auth(&edge).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["etag"].to_str().expect("etag"), etag);
    assert_eq!(h["accept-ranges"], "bytes");
    // One copy for every listener in a shared cache: no `Vary: Authorization`.
    assert!(h.get("vary").is_none(), "{h:?}");
    assert_eq!(h["content-length"].to_str().expect("len"), len.to_string());
    let full = r.bytes().await.expect("body");

    // Range.
    let r = c
        .get(&url)
        .bearer_auth(&edge)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"].to_str().expect("cr"),
        format!("bytes 100-199/{len}")
    );
    assert_eq!(r.bytes().await.expect("body"), full.slice(100..200));
    let r = c
        .get(&url)
        .bearer_auth(&edge)
        .header("Range", "bytes=-10")
        .send()
        .await
        .expect("suffix");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.bytes().await.expect("body"),
        full.slice(full.len() - 10..)
    );
    let r = c
        .get(&url)
        .bearer_auth(&edge)
        .header("Range", format!("bytes={len}-"))
        .send()
        .await
        .expect("416");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.headers()["content-range"].to_str().expect("cr"),
        format!("bytes */{len}")
    );
    let r = c
        .get(&url)
        .bearer_auth(&edge)
        .header("Range", "bytes=0-1,5-9")
        .send()
        .await
        .expect("multi");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "multi-range gets the whole body, never N parts"
    );
    assert_eq!(r.bytes().await.expect("body").len() as u64, len);

    // Conditional.
    let r = c
        .get(&url)
        .bearer_auth(&edge)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("304");
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"].to_str().expect("etag"), etag);
    assert!(r.bytes().await.expect("body").is_empty());
    let r = c
        .get(&url)
        .bearer_auth(&edge)
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .expect("200");
    assert_eq!(r.status(), StatusCode::OK);

    // HEAD: headers, exact length, no body.
    let r = c.head(&url).bearer_auth(&edge).send().await.expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-length"].to_str().expect("len"),
        len.to_string()
    );
    assert!(r.bytes().await.expect("body").is_empty());

    // CORS preflight for web players.
    let r = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://player.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization, range")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .expect("h")
            .contains("Authorization")
    );
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    // Edge tokens do not get licenses.
    let r = c
        .post(format!("{}/v1/licenses", s.url))
        .bearer_auth(&edge)
        .json(&serde_json::json!({"album": ALBUM, "track": 1}))
        .send()
        .await
        .expect("license");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Oversized and malformed license bodies.
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let r = c
        .post(format!("{}/v1/licenses", s.url))
        .bearer_auth(&buyer)
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .expect("big");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = c
        .post(format!("{}/v1/licenses", s.url))
        .bearer_auth(&buyer)
        .body("{\"album\": 3}")
        .send()
        .await
        .expect("bad");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // JWKS, health, readiness, metrics.
    let jwks: serde_json::Value = c
        .get(format!("{}/.well-known/jwks.json", s.url))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0]["kid"].is_string());
    assert_eq!(
        c.get(format!("{}/healthz", s.url))
            .send()
            .await
            .expect("h")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        c.get(format!("{}/readyz", s.url))
            .send()
            .await
            .expect("r")
            .status(),
        StatusCode::OK
    );
    let metrics = c
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("text");
    for name in [
        "encore_http_requests_total",
        "encore_http_request_duration_seconds_bucket",
        "encore_segment_cache_hits_total",
        "encore_segment_cache_hot_hits_total",
        "encore_segment_pages_pinned_bytes",
        "encore_token_checks_total",
        "encore_entitlement_denials_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    // The segments fetched above are cached, so their store files' pages are pinned.
    let pinned: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("encore_segment_pages_pinned_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a pinned-bytes sample");
    assert!(pinned > 0, "no cached segment's pages are pinned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_misses_read_the_store_once() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let m: serde_json::Value = manifest(&c, &s, &buyer, 1, "lossless")
        .await
        .json()
        .await
        .expect("json");
    let url = format!(
        "{}{}",
        s.url,
        m["segments"][1]["url"].as_str().expect("url")
    );
    let before = s.app.segments.stats().disk_reads.get();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (c, url, t) = (c.clone(), url.clone(), buyer.clone());
            tokio::spawn(async move {
                c.get(&url)
                    .bearer_auth(t)
                    .send()
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body")
                    .len()
            })
        })
        .collect();
    let mut lens = Vec::new();
    for t in tasks {
        lens.push(t.await.expect("task"));
    }
    assert!(lens.iter().all(|&l| l == lens[0] && l > 0));
    assert_eq!(
        s.app.segments.stats().disk_reads.get() - before,
        1,
        "50 concurrent misses must read the segment file once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_in_flight_completes_across_graceful_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A big segment: 192 kHz 24-bit noise barely compresses, so one 6 s segment is megabytes,
    // more than the kernel's socket buffers hold: the response stays in hyper's hands.
    let ws = util::Workspace::new();
    let dir = ws.album_dir(ALBUM);
    util::make_noise_flac(&dir.join("01.flac"), 192_000, 0.1, 7.0);
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    let mut s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let m: serde_json::Value = manifest(&client(), &s, &buyer, 1, "lossless")
        .await
        .json()
        .await
        .expect("json");
    let path = m["segments"][0]["url"].as_str().expect("url").to_string();
    let len = m["segments"][0]["bytes"].as_u64().expect("bytes");
    assert!(
        len > 5_000_000,
        "segment of {len} bytes is too small to be in flight"
    );

    // A slow reader with a tiny receive buffer keeps the response in flight.
    let addr = s.url.trim_start_matches("http://").to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {buyer}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let mut received = Vec::new();
    let mut buf = vec![0u8; 8192];
    let n = stream.read(&mut buf).await.expect("first bytes");
    received.extend_from_slice(&buf[..n]);
    s.begin_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !s.handle.is_finished(),
        "the server waits for the response in flight"
    );
    // New connections are refused once shutdown began.
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "the listener must close on shutdown"
    );
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        let head_end = received.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(h) = head_end
            && (received.len() - h - 4) as u64 >= len
        {
            break;
        }
    }
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&received[..head_end])
    );
    let body = &received[head_end..];
    assert_eq!(
        body.len() as u64,
        len,
        "the whole body arrives after shutdown began"
    );
    assert_eq!(
        encore::store::sha256_hex(body),
        m["segments"][0]["sha256"].as_str().expect("sha")
    );
    drop(stream);
    tokio::time::timeout(std::time::Duration::from_secs(30), &mut s.handle)
        .await
        .expect("server stops after in-flight work")
        .expect("join")
        .expect("server");
}
