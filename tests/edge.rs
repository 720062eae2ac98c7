//! A CDN edge as `encore edge-config` prints it: a real nginx running the printed
//! configuration in front of a real `encore serve`, players going through it (docs/EDGE.md).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use encore::license::Scope;
use serde_json::json;

use crate::nginx::{Nginx, free_port};
use crate::util::{self, ServeProcess, Workspace};

const ALBUM: &str = "edge-test";

/// An origin and an edge in front of it.
struct Edge {
    origin: ServeProcess,
    nginx: Nginx,
    _prefix: tempfile::TempDir,
}

/// The origin's `encore.toml`: no clock-skew leeway, so a token is refused the second it
/// expires (the default 30 s would let the origin accept it that much longer).
fn origin_config(ws: &Workspace) -> PathBuf {
    let config = ws.path().join("encore.toml");
    std::fs::write(
        &config,
        "[keys]\ntoken_leeway_seconds = 0\n[server]\nwatch_media = false\n",
    )
    .expect("encore.toml");
    config
}

/// `encore edge-config` for `origin_url` with `auth_ttl`, as an operator runs it.
fn edge_config(
    ws: &Workspace,
    origin_url: &str,
    prefix: &Path,
    port: u16,
    auth_ttl: &str,
) -> String {
    let listen = format!("127.0.0.1:{port}");
    let cache = prefix.join("cache");
    let logs = prefix.join("logs");
    let out = ws.encore(&[
        "edge-config",
        "--origin",
        origin_url,
        "--listen",
        &listen,
        "--cache-dir",
        cache.to_str().expect("utf-8"),
        "--log-dir",
        logs.to_str().expect("utf-8"),
        "--cache-size",
        "1g",
        "--auth-ttl",
        auth_ttl,
        "--name",
        "edge-test-1",
    ]);
    assert!(out.status.success(), "{}", util::text(&out));
    String::from_utf8(out.stdout).expect("utf-8 config")
}

/// A packaged album, its origin, and an edge in front with `auth_ttl`; `tamper` may change
/// the printed configuration before nginx reads it.
async fn edge(auth_ttl: &str, tamper: impl FnOnce(String) -> String) -> (Workspace, Edge) {
    let ws = util::packaged_album(ALBUM, 1, 20.0);
    let config = origin_config(&ws);
    let log = Arc::new(Mutex::new(Vec::new()));
    let origin =
        ServeProcess::start(&ws, &["--config", config.to_str().expect("utf-8")], log).await;
    let prefix = tempfile::tempdir().expect("nginx prefix");
    let port = free_port();
    let text = tamper(edge_config(&ws, &origin.url, prefix.path(), port, auth_ttl));
    let conf = prefix.path().join("edge.conf");
    std::fs::write(&conf, text).expect("edge.conf");
    let nginx = Nginx::start_file(prefix.path(), port, &conf);
    (
        ws,
        Edge {
            origin,
            nginx,
            _prefix: prefix,
        },
    )
}

/// The origin's `encore_segment_bytes_total` and `encore_segment_requests_total` for
/// `scope`.
async fn origin_segments(origin: &str, scope: &str) -> (u64, u64) {
    let text = reqwest::get(format!("{origin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let read = |name: &str| {
        let prefix = format!("{name}{{scope=\"{scope}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
    };
    (
        read("encore_segment_bytes_total"),
        read("encore_segment_requests_total"),
    )
}

async fn fetch(
    ws: &Workspace,
    server: &str,
    token: &str,
    rendition: &str,
    out: &Path,
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .args([
            "fetch", "--server", server, "--token", token, "--album", ALBUM,
        ])
        .args(["--track", "1", "--rendition", rendition, "--out"])
        .arg(out)
        .current_dir(ws.path())
        .output()
        .await
        .expect("run encore fetch")
}

/// Every segment URL (init first) of a rendition of track 1.
fn segment_urls(ws: &Workspace, rendition: &str) -> Vec<String> {
    let m = util::manifest(ws, ALBUM, 1, rendition);
    std::iter::once(&m.init)
        .chain(&m.segments)
        .map(|s| encore::store::library::segment_url(ALBUM, 1, rendition, &m.generation, &s.file))
        .collect()
}

/// GET `url` with `token`: status and the problem type (if any).
async fn get(c: &reqwest::Client, url: &str, token: &str) -> (u16, String) {
    let r = c.get(url).bearer_auth(token).send().await.expect("request");
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let kind = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_buyer_plays_from_the_edge_cache_with_no_segment_bytes_from_the_origin() {
    let (ws, e) = edge("10s", |t| t).await;
    let first = util::token(&ws, "buyer-1", Scope::Play, &[ALBUM]);
    let out = ws.path().join("first.m4a");
    let run = fetch(&ws, &e.nginx.url, &first, "lossless", &out).await;
    assert!(
        run.status.success(),
        "{}\n{}",
        util::text(&run),
        e.nginx.error_log()
    );
    let source = util::decode_s32(&ws.media().join(ALBUM).join("01.flac"));
    assert_eq!(
        util::decode_s32(&out),
        source,
        "played through the edge: the source's PCM"
    );
    // The edge pulled every segment once, with its own token; no player reached a segment
    // at the origin.
    let segments = segment_urls(&ws, "lossless").len() as u64;
    let (edge_bytes, edge_requests) = origin_segments(&e.origin.url, "edge").await;
    assert_eq!(edge_requests, segments, "one pull per segment");
    assert!(edge_bytes > 0);
    assert_eq!(origin_segments(&e.origin.url, "play").await, (0, 0));

    let second = util::token(&ws, "buyer-2", Scope::Play, &[ALBUM]);
    let out = ws.path().join("second.m4a");
    let run = fetch(&ws, &e.nginx.url, &second, "lossless", &out).await;
    assert!(run.status.success(), "{}", util::text(&run));
    assert_eq!(util::decode_s32(&out), source);
    assert_eq!(
        origin_segments(&e.origin.url, "edge").await,
        (edge_bytes, edge_requests),
        "the second buyer's segments came from the edge's cache: zero bytes from the origin"
    );
    assert_eq!(origin_segments(&e.origin.url, "play").await, (0, 0));

    // Ranges and revalidation are answered from the cached copy, still checked.
    let c = reqwest::Client::new();
    let url = format!("{}{}", e.nginx.url, segment_urls(&ws, "lossless")[1]);
    let r = c
        .get(&url)
        .bearer_auth(&second)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("body").len(), 10);
    assert_eq!(
        origin_segments(&e.origin.url, "edge").await,
        (edge_bytes, edge_requests)
    );
    // What the origin tells an edge: shared, immutable, one copy for every token.
    let edge_token = util::token(&ws, "edge", Scope::Edge, &[]);
    let r = c
        .get(format!(
            "{}{}",
            e.origin.url,
            segment_urls(&ws, "lossless")[1]
        ))
        .bearer_auth(&edge_token)
        .send()
        .await
        .expect("edge pull");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(r.headers().get("vary").is_none(), "{:?}", r.headers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_buyer_gets_the_preview_through_the_edge_and_403_for_the_rest() {
    let (ws, e) = edge("10s", |t| t).await;
    let c = reqwest::Client::new();
    // A buyer first, so the full rendition is in the edge's cache: cached is not unchecked.
    let buyer = util::token(&ws, "buyer", Scope::Play, &[ALBUM]);
    let full = segment_urls(&ws, "lossless");
    for url in &full {
        assert_eq!(
            get(&c, &format!("{}{url}", e.nginx.url), &buyer).await.0,
            200
        );
    }
    let fan = util::token(&ws, "fan", Scope::Play, &["another-album"]);
    let out = ws.path().join("preview.m4a");
    let run = fetch(&ws, &e.nginx.url, &fan, "preview", &out).await;
    assert!(run.status.success(), "{}", util::text(&run));
    assert!(
        !util::decode_f32(&out, None).is_empty(),
        "a playable preview"
    );
    let not_purchased = (403, "urn:encore:problem:not-purchased".to_string());
    let mut refused = vec![
        format!("/v1/albums/{ALBUM}/tracks/1/lossless/manifest"),
        format!("/v1/albums/{ALBUM}/tracks/1/high/index.m3u8"),
        format!("/v1/albums/{ALBUM}/high/index.m3u8"),
    ];
    refused.extend(full.iter().cloned());
    refused.extend(segment_urls(&ws, "high").into_iter().take(2));
    for path in &refused {
        assert_eq!(
            get(&c, &format!("{}{path}", e.nginx.url), &fan).await,
            not_purchased,
            "{path}"
        );
    }
    // No token, or a bad one: 401 at the edge.
    let url = format!("{}{}", e.nginx.url, full[1]);
    let r = c.get(&url).send().await.expect("no token");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let (status, kind) = get(&c, &url, "not.a.token").await;
    assert_eq!(
        (status, kind.as_str()),
        (401, "urn:encore:problem:token-invalid")
    );
    // The license says preview only; the origin answered it (licenses pass the edge).
    let r = c
        .post(format!("{}/v1/licenses", e.nginx.url))
        .bearer_auth(&fan)
        .json(&json!({"album": ALBUM, "track": 1}))
        .send()
        .await
        .expect("license");
    assert_eq!(r.status(), 200);
    let license: serde_json::Value = r.json().await.expect("license json");
    assert_eq!(license["preview_only"], "not-purchased");
    assert_eq!(license["keys"].as_array().map(Vec::len), Some(1));
    // Answers that carry no secret are shared for their max-age, with no token at all.
    for path in [
        "/.well-known/jwks.json",
        "/v1/albums",
        "/v1/charts/albums?window=7d",
    ] {
        let url = format!("{}{path}", e.nginx.url);
        let first = c.get(&url).send().await.expect("public");
        assert_eq!(first.status(), 200, "{path}");
        let again = c.get(&url).send().await.expect("public");
        assert_eq!(again.headers()["x-cache-status"], "HIT", "{path}");
    }
    // Operators' routes are not served by the edge.
    for path in ["/metrics", "/v1/edge/authorize", "/v1/admin/keys"] {
        let r = c
            .get(format!("{}{path}", e.nginx.url))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_is_enforced_at_the_edge_within_the_auth_ttl() {
    const TTL: u64 = 2;
    let (ws, e) = edge(&format!("{TTL}s"), |t| t).await;
    let c = reqwest::Client::new();
    let store = util::token(&ws, "store-backend", Scope::Store, &[]);
    let bought = c
        .post(format!("{}/v1/purchases", e.origin.url))
        .bearer_auth(&store)
        .json(
            &json!({"order_id": "ord-1", "user": "fan-1", "album": ALBUM,
            "price": 1500, "currency": "CNY"}),
        )
        .send()
        .await
        .expect("purchase");
    assert_eq!(bought.status(), 201);
    let buyer = util::token(&ws, "fan-1", Scope::Play, &[ALBUM]);
    let urls: Vec<String> = segment_urls(&ws, "lossless")
        .iter()
        .map(|u| format!("{}{u}", e.nginx.url))
        .collect();
    // Playing: the edge now holds a 204 for this token and rendition.
    assert_eq!(get(&c, &urls[0], &buyer).await.0, 200);
    assert_eq!(get(&c, &urls[1], &buyer).await.0, 200);

    let refunded = c
        .post(format!("{}/v1/purchases/ord-1/refund", e.origin.url))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund");
    assert_eq!(refunded.status(), 200);
    let at = Instant::now();
    let bound = Duration::from_secs(TTL + 1);
    let mut i = 1;
    loop {
        let answer = get(&c, &urls[i % urls.len()], &buyer).await;
        if answer.0 == 403 {
            assert_eq!(answer.1, "urn:encore:problem:purchase-refunded");
            break;
        }
        assert_eq!(answer.0, 200, "{answer:?}");
        assert!(
            at.elapsed() <= bound,
            "still served {:?} after the refund (auth-ttl {TTL}s)",
            at.elapsed()
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Refused for good, and the preview is still the fan's.
    assert_eq!(get(&c, &urls[0], &buyer).await.0, 403);
    let preview = segment_urls(&ws, "preview");
    assert_eq!(
        get(&c, &format!("{}{}", e.nginx.url, preview[0]), &buyer)
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_mid_track_is_refused_at_the_edge_once_expired() {
    // The edge would keep a check 30 s: the token's exp cuts it short.
    let (ws, e) = edge("30s", |t| t).await;
    let c = reqwest::Client::new();
    let minted = util::now();
    let token = util::token_at(&ws, "fan", Scope::Play, &[ALBUM], minted, 4, None);
    let exp = minted + 4;
    let urls: Vec<String> = segment_urls(&ws, "high")
        .iter()
        .map(|u| format!("{}{u}", e.nginx.url))
        .collect();
    assert!(urls.len() >= 3, "a track of several segments");
    assert_eq!(get(&c, &urls[0], &token).await.0, 200, "before exp");
    assert_eq!(get(&c, &urls[1], &token).await.0, 200, "before exp");
    // Wait for the clock to pass exp (polling it; nothing asserted about how long it took).
    while util::now() < exp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for url in &urls[1..] {
        assert_eq!(
            get(&c, url, &token).await,
            (401, "urn:encore:problem:token-expired".to_string()),
            "after exp: {url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_without_its_edge_token_cannot_pull_anything() {
    // The edge's token replaced by one of a keyring this origin does not trust.
    let other = Workspace::new();
    let init = other.encore(&["keys", "init"]);
    assert!(init.status.success(), "{}", util::text(&init));
    let foreign = util::token(&other, "edge-test-1", Scope::Edge, &[]);
    let (ws, e) = edge("10s", |text| {
        let start = text.find("Bearer ").expect("the edge token") + "Bearer ".len();
        let end = start + text[start..].find('"').expect("end of the token");
        text.replace(&text[start..end].to_owned(), &foreign)
    })
    .await;
    let c = reqwest::Client::new();
    let buyer = util::token(&ws, "buyer", Scope::Play, &[ALBUM]);
    let mut paths = segment_urls(&ws, "lossless");
    paths.push(format!("/v1/albums/{ALBUM}/tracks/1/lossless/manifest"));
    paths.extend(segment_urls(&ws, "preview"));
    for path in &paths {
        let (status, _) = get(&c, &format!("{}{path}", e.nginx.url), &buyer).await;
        assert_eq!(status, 401, "{path}: the origin refuses the edge's pull");
    }
    assert_eq!(origin_segments(&e.origin.url, "edge").await, (0, 0));
    assert_eq!(origin_segments(&e.origin.url, "play").await, (0, 0));
}

/// An `https://` origin: the edge speaks TLS to it with SNI and checks its certificate
/// against `--trusted-ca`; a certificate from another CA gets no request through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_is_reached_over_verified_tls() {
    let ws = util::packaged_album(ALBUM, 1, 20.0);
    let (cert, key) = util::self_signed(&ws);
    let config = ws.path().join("encore.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nwatch_media = false\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("encore.toml");
    let log = Arc::new(Mutex::new(Vec::new()));
    let cmd = ws.serve_command(&[
        "--listen",
        "127.0.0.1:0",
        "--log-json",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let (_origin, url) = ServeProcess::spawn(cmd, log.clone()).await;
    assert!(url.starts_with("https://"), "{url}");
    // By name, so the edge's SNI and check are for the certificate's `localhost`.
    let origin = url.replace("127.0.0.1", "localhost");
    let c = reqwest::Client::new();
    let buyer = util::token(&ws, "buyer", Scope::Play, &[ALBUM]);
    let segment = segment_urls(&ws, "high")[1].clone();

    let start = |trusted: &Path| {
        let prefix = tempfile::tempdir().expect("nginx prefix");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let out = ws.encore(&[
            "edge-config",
            "--origin",
            &origin,
            "--listen",
            &listen,
            "--cache-dir",
            prefix.path().join("cache").to_str().expect("utf-8"),
            "--log-dir",
            prefix.path().join("logs").to_str().expect("utf-8"),
            "--trusted-ca",
            trusted.to_str().expect("utf-8"),
        ]);
        assert!(out.status.success(), "{}", util::text(&out));
        let conf = prefix.path().join("edge.conf");
        std::fs::write(&conf, &out.stdout).expect("edge.conf");
        let nginx = Nginx::start_file(prefix.path(), port, &conf);
        (prefix, nginx)
    };

    let (_prefix, edge) = start(&cert);
    // The origin may still be starting: wait for its answers through the edge.
    let mut ready = false;
    for _ in 0..600 {
        if let Ok(r) = c.get(format!("{}/v1/albums", edge.url)).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "no answer through the edge: {}\n{:?}",
        edge.error_log(),
        log.lock().expect("log")
    );
    let out = ws.path().join("tls.m4a");
    let run = fetch(&ws, &edge.url, &buyer, "high", &out).await;
    assert!(
        run.status.success(),
        "{}\n{}",
        util::text(&run),
        edge.error_log()
    );
    assert!(!util::decode_f32(&out, None).is_empty());
    let r = c
        .get(format!("{}{segment}", edge.url))
        .bearer_auth(&buyer)
        .send()
        .await
        .expect("segment");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache-status"], "HIT");

    // Another CA: the edge refuses the origin's certificate, so nothing passes.
    let other = Workspace::new();
    let (other_ca, _) = util::self_signed(&other);
    let (_other_prefix, doubting) = start(&other_ca);
    let r = c
        .get(format!("{}{segment}", doubting.url))
        .bearer_auth(&buyer)
        .send()
        .await
        .expect("segment");
    assert!(r.status().is_server_error(), "{}", r.status());
    assert!(
        doubting
            .error_log()
            .contains("upstream SSL certificate verify error"),
        "{}",
        doubting.error_log()
    );
}

/// An HLS player that can only put its token in the URL: every playlist, init and media
/// segment through the edge with `?access_token=` alone; segments shared by URL (the edge
/// pulls each once), keys from the origin, and a second player's segments all cache hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hls_player_with_a_query_token_plays_through_the_edge() {
    let (ws, e) = edge("10s", |t| t).await;
    let c = reqwest::Client::new();
    let mut pulls = None;
    for fan in ["hls-1", "hls-2"] {
        let buyer = util::token(&ws, fan, Scope::Play, &[ALBUM]);
        let q = format!("?access_token={buyer}");
        let playlist = |path: String| {
            let c = c.clone();
            async move {
                let r = c.get(&path).send().await.expect("playlist");
                assert_eq!(r.status(), 200, "{path}");
                r.text().await.expect("playlist text")
            }
        };
        let master = playlist(format!(
            "{}/v1/albums/{ALBUM}/tracks/1/master.m3u8{q}",
            e.nginx.url
        ))
        .await;
        let variant = master
            .lines()
            .find(|l| l.contains("/high/index.m3u8"))
            .unwrap_or_else(|| panic!("a high variant:\n{master}"))
            .to_owned();
        let media = playlist(format!("{}{variant}", e.nginx.url)).await;
        let uris: Vec<&str> = media
            .lines()
            .filter_map(|l| {
                l.strip_prefix("#EXT-X-MAP:URI=\"")
                    .map(|rest| rest.trim_end_matches('"'))
                    .or_else(|| (!l.starts_with('#') && !l.is_empty()).then_some(l))
            })
            .collect();
        assert!(uris.len() >= 3, "init and segments:\n{media}");
        for uri in &uris {
            assert!(uri.ends_with(&q), "{uri}");
            let r = c
                .get(format!("{}{uri}", e.nginx.url))
                .send()
                .await
                .expect("hls file");
            assert_eq!(r.status(), 200, "{uri}");
            if fan == "hls-2" {
                assert_eq!(r.headers()["x-cache-status"], "HIT", "{uri}");
            }
        }
        let key = media
            .lines()
            .filter(|l| l.starts_with("#EXT-X-KEY"))
            .find_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
            .unwrap_or_else(|| panic!("a key URI:\n{media}"));
        let r = c
            .get(format!("{}{key}", e.nginx.url))
            .send()
            .await
            .expect("key");
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.expect("key").len(), 16);
        let now = origin_segments(&e.origin.url, "edge").await;
        match pulls {
            None => {
                assert_eq!(now.1, uris.len() as u64, "one pull per HLS file");
                pulls = Some(now);
            }
            Some(first) => assert_eq!(now, first, "the second player cost the origin nothing"),
        }
    }
    assert_eq!(origin_segments(&e.origin.url, "play").await, (0, 0));
    // The query token alone, refused: a non-buyer's lossless segment.
    let fan = util::token(&ws, "fan", Scope::Play, &[]);
    let seg = segment_urls(&ws, "lossless")[1].clone();
    let r = c
        .get(format!("{}{seg}?access_token={fan}", e.nginx.url))
        .send()
        .await
        .expect("segment");
    assert_eq!(r.status(), 403);
}
