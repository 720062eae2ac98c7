//! `encore fetch`, the reference client, against a real server: playable output, exact PCM,
//! clear failures and nothing partial left behind.

use encore::license::Scope;

use crate::util::{self, TestServer};

const ALBUM: &str = "fetch-test";

async fn fetch(
    ws: &util::Workspace,
    url: &str,
    token: &str,
    rendition: &str,
    out: &std::path::Path,
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"));
    cmd.args([
        "fetch",
        "--server",
        url,
        "--token",
        token,
        "--album",
        ALBUM,
        "--track",
        "1",
        "--rendition",
        rendition,
        "--out",
    ])
    .arg(out)
    .current_dir(ws.path());
    cmd.output().await.expect("run encore fetch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_lossless_decodes_to_the_sources_pcm() {
    let ws = util::packaged_album(ALBUM, 1, 13.0);
    let s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let out = ws.path().join("track.m4a");
    let run = fetch(&ws, &s.url, &buyer, "lossless", &out).await;
    assert!(run.status.success(), "{}", util::text(&run));
    let source = util::decode_s32(&ws.media().join(ALBUM).join("01.flac"));
    assert_eq!(
        util::decode_s32(&out),
        source,
        "fetched lossless differs from the source"
    );
    // Lossy and preview renditions are playable too.
    for rendition in ["high", "preview"] {
        let out = ws.path().join(format!("{rendition}.m4a"));
        let run = fetch(&ws, &s.url, &buyer, rendition, &out).await;
        assert!(run.status.success(), "{}", util::text(&run));
        assert!(!util::decode_f32(&out, None).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_aac_is_lc_gapless_and_for_buyers_only() {
    let seconds = 13.0;
    let ws = util::packaged_album(ALBUM, 1, seconds);
    let s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let out = ws.path().join("aac.m4a");
    let run = fetch(&ws, &s.url, &buyer, "aac", &out).await;
    assert!(run.status.success(), "{}", util::text(&run));
    let src = ws.media().join(ALBUM).join("01.flac");
    let frames = (seconds * 44_100.0) as usize;
    let snr = util::check_aac(&out, &src, 44_100, 2, frames);
    eprintln!("fetched aac: snr {snr:.1} dB");

    // Someone who has not bought the album gets no key for it.
    let listener = util::token(&ws, "bob", Scope::Play, &[]);
    let nope = ws.path().join("nope.m4a");
    let run = fetch(&ws, &s.url, &listener, "aac", &nope).await;
    assert!(
        !run.status.success(),
        "a non-buyer fetched the aac rendition"
    );
    let err = String::from_utf8_lossy(&run.stderr).to_lowercase();
    assert!(err.contains("preview"), "{err}");
    assert!(!nope.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_fails_loudly_and_leaves_nothing_behind() {
    let ws = util::packaged_album(ALBUM, 1, 13.0);
    let s = TestServer::start(&ws).await;
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let listener = util::token(&ws, "bob", Scope::Play, &[]);

    // Not bought: only the preview.
    let out = ws.path().join("nope.m4a");
    let run = fetch(&ws, &s.url, &listener, "lossless", &out).await;
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr).to_lowercase();
    assert!(
        err.contains("preview"),
        "the message says only the preview is available: {err}"
    );
    assert!(!out.exists());

    // Expired token.
    let expired = util::token_at(
        &ws,
        "alice",
        Scope::Play,
        &[ALBUM],
        util::now() - 7200,
        3600,
        None,
    );
    let run = fetch(&ws, &s.url, &expired, "lossless", &out).await;
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr)
            .to_lowercase()
            .contains("expired"),
        "{}",
        util::text(&run)
    );
    assert!(!out.exists());

    // A corrupted segment in the store (one flipped bit) is refused.
    let m = util::manifest(&ws, ALBUM, 1, "lossless");
    let path = ws.store().segment_path(&m, &m.segments[1]).expect("path");
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    std::fs::write(&path, bytes).expect("write");
    let run = fetch(&ws, &s.url, &buyer, "lossless", &out).await;
    assert!(
        !run.status.success(),
        "a corrupted segment must fail the fetch: {}",
        util::text(&run)
    );
    let err = String::from_utf8_lossy(&run.stderr).to_lowercase();
    assert!(
        err.contains("segment 2"),
        "the message names the segment: {err}"
    );
    assert!(!out.exists(), "nothing partial is left behind");
    let leftovers: Vec<_> = std::fs::read_dir(ws.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("nope"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
