//! Store files that no longer match their manifest are never served as good: a segment whose
//! bytes on disk fail their SHA-256 is a 5xx (never cached, never `immutable`, logged and
//! counted), and a store file changed or replaced after it was checked and cached never
//! reaches a client, on the `sendfile` path as on the others.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use encore::license::Scope;
use encore::store::library::segment_url;
use reqwest::StatusCode;

use crate::util::{self, TestServer};

const ALBUM: &str = "intact";

/// A media segment of the lossless rendition: its URL, its file and its length.
fn media_segment(ws: &util::Workspace) -> (String, PathBuf, u64) {
    let m = util::manifest(ws, ALBUM, 1, "lossless");
    let record = &m.segments[0];
    let url = segment_url(ALBUM, 1, "lossless", &m.generation, &record.file);
    let path = ws.store().segment_path(&m, record).expect("segment path");
    // Large enough for the connection to send it with `sendfile` from the store file.
    assert!(
        record.bytes >= 16 * 1024,
        "segment of {} bytes",
        record.bytes
    );
    (url, path, record.bytes)
}

/// Inverts the byte at `at` in place (same file, same length).
fn flip_byte(path: &std::path::Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at as usize] ^= 0xff;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for writing");
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&bytes[at as usize..=at as usize])
        .expect("write");
    f.sync_all().expect("sync");
}

async fn integrity_failures(c: &reqwest::Client, s: &TestServer) -> u64 {
    let text = c
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("encore_store_integrity_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_corrupted_on_disk_is_a_5xx_never_cached_never_immutable() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let (url, path, len) = media_segment(&ws);
    let original = std::fs::read(&path).expect("read");
    flip_byte(&path, len / 2);

    let s = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let edge = util::token(&ws, "edge-1", Scope::Edge, &[]);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    // The express lane (HTTP/1.1) and hyper (HTTP/2) alike.
    for (client, n) in [(&c, 1u64), (&h2, 2)] {
        let r = client
            .get(format!("{}{url}", s.url))
            .bearer_auth(&edge)
            .send()
            .await
            .expect("get");
        assert!(r.status().is_server_error(), "status {}", r.status());
        let cache_control = r.headers()["cache-control"].to_str().expect("ascii");
        assert!(!cache_control.contains("immutable"), "{cache_control}");
        assert!(
            r.headers().get("etag").is_none(),
            "no validator on an error"
        );
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body = r.text().await.expect("body");
        assert!(
            !body.contains(&*ws.path().to_string_lossy()),
            "no path in a problem: {body}"
        );
        assert_eq!(integrity_failures(&c, &s).await, n, "counted, every load");
    }

    // Nothing bad was cached: once the file is right again, it is served.
    std::fs::write(&path, &original).expect("restore");
    let r = c
        .get(format!("{}{url}", s.url))
        .bearer_auth(&edge)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.bytes().await.expect("body")[..] == original[..],
        "restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_changed_after_it_was_cached_never_reaches_a_client() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let (url, path, len) = media_segment(&ws);
    let original = std::fs::read(&path).expect("read");
    let s = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let get = || async {
        let r = c
            .get(format!("{}{url}", s.url))
            .bearer_auth(&buyer)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.expect("whole body")
    };
    assert!(
        get().await[..] == original[..],
        "loaded and checked: other bytes sent"
    );

    // Written in place: the file the cache keeps open now holds other bytes.
    flip_byte(&path, len / 2);
    assert!(
        get().await[..] == original[..],
        "changed in place: other bytes sent"
    );
    // Cut short.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(len / 2)
        .expect("truncate");
    assert!(
        get().await[..] == original[..],
        "truncated: other bytes sent"
    );
    // Replaced by another file under the same name.
    let other = path.with_extension("new");
    std::fs::write(&other, vec![0x5a; len as usize]).expect("write");
    std::fs::rename(&other, &path).expect("rename");
    assert!(
        get().await[..] == original[..],
        "replaced: other bytes sent"
    );
    // A range of it, too.
    let r = c
        .get(format!("{}{url}", s.url))
        .bearer_auth(&buyer)
        .header("Range", format!("bytes=0-{}", len - 2))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(
        r.bytes().await.expect("body")[..] == original[..len as usize - 1],
        "a range: other bytes sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hls_segment_made_from_a_corrupted_sealed_one_fails_closed() {
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let (_, path, len) = media_segment(&ws);
    flip_byte(&path, len / 2);
    let s = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let edge = util::token(&ws, "edge-1", Scope::Edge, &[]);
    let m = util::manifest(&ws, ALBUM, 1, "lossless");
    let r = c
        .get(format!(
            "{}/v1/albums/{ALBUM}/tracks/1/lossless/hls/{}/0001.mp4",
            s.url, m.generation
        ))
        .bearer_auth(&edge)
        .send()
        .await
        .expect("get");
    assert!(r.status().is_server_error(), "status {}", r.status());
    let cache_control = r.headers()["cache-control"].to_str().expect("ascii");
    assert!(!cache_control.contains("immutable"), "{cache_control}");
}
