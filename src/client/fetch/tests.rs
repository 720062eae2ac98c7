//! The fetch against a canned server: every check on the license, manifest and segments.

use super::super::testserver::{Canned, TestServer};
use super::license::license_keys;
use super::*;
use sha2::{Digest, Sha256};

use super::super::api::License;
use super::super::error::SegmentFault;
use crate::seal::{OpenError, SealContext, SegmentSlot, seal};
use serde_json::json;

const ALBUM: &str = "first-light";
const TRACK: u32 = 1;
const LOSSLESS: &str = "lossless";
const LICENSE_PATH: &str = "/v1/licenses";
const MANIFEST_PATH: &str = "/v1/albums/first-light/tracks/1/lossless/manifest";

fn seg_path(file: &str) -> String {
    format!("/v1/albums/{ALBUM}/tracks/{TRACK}/{LOSSLESS}/g0123456789abcdef/{file}")
}

fn media_path(n: u32) -> String {
    seg_path(&format!("{n:04}.enc"))
}

fn seal_for(key: &ContentKey, slot: SegmentSlot, plaintext: &[u8]) -> Vec<u8> {
    let ctx = SealContext {
        album: ALBUM,
        track: TRACK,
        rendition: LOSSLESS,
        slot,
    };
    seal(key, &ctx, plaintext.to_vec()).unwrap()
}

fn entry(index: u32, url: &str, sealed: &[u8]) -> serde_json::Value {
    json!({
        "index": index, "url": url, "start": 0, "duration_samples": 4096,
        "duration": 0.1, "bytes": sealed.len(), "sha256": hex::encode(Sha256::digest(sealed)),
    })
}

/// A server holding one sealed track (init + 3 media segments) and a buyer's license.
struct Fixture {
    server: TestServer,
    key: ContentKey,
    init: Vec<u8>,
    media: Vec<Vec<u8>>,
    sealed_init: Vec<u8>,
    sealed_media: Vec<Vec<u8>>,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let key = ContentKey::generate().unwrap();
        let preview = ContentKey::generate().unwrap();
        let init = b"\0\0\0\x18ftypiso6....moov-of-the-track".to_vec();
        let media: Vec<Vec<u8>> = (1..=3u8)
            .map(|n| (0..1000 * usize::from(n)).map(|i| (i as u8) ^ n).collect())
            .collect();
        let sealed_init = seal_for(&key, SegmentSlot::Init, &init);
        let sealed_media: Vec<Vec<u8>> = media
            .iter()
            .zip(1..)
            .map(|(p, n)| seal_for(&key, SegmentSlot::Media(n), p))
            .collect();
        server.route(
            LICENSE_PATH,
            vec![Canned::json(&license_json(&[
                ("preview", &preview),
                (LOSSLESS, &key),
            ]))],
        );
        server.route(
            &seg_path("init.enc"),
            vec![Canned::bytes(sealed_init.clone())],
        );
        for (s, n) in sealed_media.iter().zip(1..) {
            server.route(&media_path(n), vec![Canned::bytes(s.clone())]);
        }
        let f = Self {
            server,
            key,
            init,
            media,
            sealed_init,
            sealed_media,
            dir: tempfile::tempdir().unwrap(),
        };
        let entries = f.entries();
        f.serve_manifest(entries);
        f
    }

    fn entries(&self) -> Vec<serde_json::Value> {
        self.sealed_media
            .iter()
            .zip(1..)
            .map(|(s, n)| entry(n, &media_path(n), s))
            .collect()
    }

    fn serve_manifest(&self, segments: Vec<serde_json::Value>) {
        self.serve_manifest_with(segments, |_| {});
    }

    fn serve_manifest_with(
        &self,
        segments: Vec<serde_json::Value>,
        edit: impl FnOnce(&mut serde_json::Value),
    ) {
        let mut m = json!({
            "album": ALBUM, "track": TRACK, "rendition": LOSSLESS,
            "codec": "flac", "codec_string": "flac", "sample_rate": 44100, "channels": 2,
            "bits_per_sample": 16, "duration_samples": 12288, "skip_samples": 0,
            "bitrate": 900000, "key_id": self.key.id().to_string(),
            "init": {"url": seg_path("init.enc"), "bytes": self.sealed_init.len(),
                     "sha256": hex::encode(Sha256::digest(&self.sealed_init))},
            "segments": segments,
        });
        edit(&mut m);
        self.server.route(MANIFEST_PATH, vec![Canned::json(&m)]);
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("track.m4a")
    }

    fn request(&self) -> FetchRequest {
        let mut req = FetchRequest::new(&self.server.base, "tok.en.jwt", ALBUM, TRACK, self.out());
        req.backoff = Duration::ZERO;
        req
    }

    fn expected(&self) -> Vec<u8> {
        let mut all = self.init.clone();
        for m in &self.media {
            all.extend_from_slice(m);
        }
        all
    }

    /// Files in the output folder: after a failure, none (no output, no temp file).
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn license_json(keys: &[(&str, &ContentKey)]) -> serde_json::Value {
    let keys: Vec<_> = keys
        .iter()
        .map(|(r, k)| {
            json!({"rendition": r, "key_id": k.id().to_string(),
                   "key": hex::encode(k.expose_bytes())})
        })
        .collect();
    json!({"album": ALBUM, "track": TRACK, "expires_at": unix_now() + 3600, "keys": keys})
}

#[tokio::test]
async fn writes_init_and_fragments_in_order() {
    let f = Fixture::new().await;
    for concurrency in [1, 4] {
        let mut req = f.request();
        req.concurrency = concurrency;
        let report = fetch(&req).await.unwrap();
        assert_eq!(std::fs::read(f.out()).unwrap(), f.expected());
        assert_eq!(
            report,
            FetchReport {
                segments: 3,
                bytes_plaintext: f.expected().len() as u64,
                duration_seconds: 12288.0 / 44100.0,
                codec: "flac".into(),
                sample_rate: 44100,
                channels: 2,
            }
        );
        assert_eq!(f.files(), vec!["track.m4a"]);
    }
    let log = f.server.log();
    assert!(
        log.iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer tok.en.jwt"))
    );
    let license = log.iter().find(|r| r.path == LICENSE_PATH).unwrap();
    assert_eq!(license.method, "POST");
    let body: serde_json::Value = serde_json::from_slice(&license.body).unwrap();
    assert_eq!(body, json!({"album": ALBUM, "track": TRACK}));
}

#[tokio::test]
async fn a_tampered_segment_is_rejected_and_nothing_is_written() {
    let f = Fixture::new().await;
    std::fs::write(f.out(), b"older file").unwrap();
    // Flip one ciphertext byte and make the manifest agree, so only the seal catches it.
    let mut tampered = f.sealed_media[1].clone();
    tampered[60] ^= 1;
    f.server
        .route(&media_path(2), vec![Canned::bytes(tampered.clone())]);
    let mut entries = f.entries();
    entries[1] = entry(2, &media_path(2), &tampered);
    f.serve_manifest(entries);

    let err = fetch(&f.request()).await.unwrap_err();
    match &err {
        FetchError::SegmentRejected { index, reason } => {
            assert_eq!(*index, 2);
            assert_eq!(*reason, SegmentFault::Open(OpenError::Forged));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().starts_with("media segment 2 rejected"),
        "{err}"
    );
    assert_eq!(std::fs::read(f.out()).unwrap(), b"older file");
    assert_eq!(f.files(), vec!["track.m4a"]);
}

#[tokio::test]
async fn bytes_that_do_not_match_the_manifest_hash_are_rejected() {
    let f = Fixture::new().await;
    let mut tampered = f.sealed_media[0].clone();
    tampered[40] ^= 0x80;
    f.server
        .route(&media_path(1), vec![Canned::bytes(tampered)]);
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::SegmentRejected {
                index: 1,
                reason: SegmentFault::HashMismatch { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("hash mismatch"), "{err}");
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_segment_served_in_another_place_fails_to_open() {
    let f = Fixture::new().await;
    // Segment 2's genuine bytes at segment 1's place, the manifest in on it.
    f.server.route(
        &media_path(1),
        vec![Canned::bytes(f.sealed_media[1].clone())],
    );
    let mut entries = f.entries();
    entries[0] = entry(1, &media_path(1), &f.sealed_media[1]);
    f.serve_manifest(entries);
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::SegmentRejected {
                index: 1,
                reason: SegmentFault::Open(OpenError::Forged)
            }
        ),
        "{err:?}"
    );
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_reordered_manifest_is_refused() {
    let f = Fixture::new().await;
    let mut entries = f.entries();
    entries.swap(0, 1);
    f.serve_manifest(entries);
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(matches!(err, FetchError::BadManifest { .. }), "{err:?}");
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_longer_or_shorter_segment_is_rejected() {
    let f = Fixture::new().await;
    let mut long = f.sealed_media[2].clone();
    long.push(0);
    f.server.route(&media_path(3), vec![Canned::bytes(long)]);
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::SegmentRejected {
                index: 3,
                reason: SegmentFault::Long { .. }
            }
        ),
        "{err:?}"
    );
    let short = f.sealed_init[..20].to_vec();
    f.server
        .route(&seg_path("init.enc"), vec![Canned::bytes(short)]);
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::SegmentRejected {
                index: 0,
                reason: SegmentFault::Short { got: 20, .. }
            }
        ),
        "{err:?}"
    );
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn not_purchased_maps_to_forbidden() {
    let f = Fixture::new().await;
    f.server.route(
        MANIFEST_PATH,
        vec![Canned::problem(403, "not-purchased", "album not bought")],
    );
    let err = fetch(&f.request()).await.unwrap_err();
    match &err {
        FetchError::Forbidden {
            problem_type,
            detail,
        } => {
            assert_eq!(problem_type, "urn:encore:problem:not-purchased");
            assert_eq!(detail, "album not bought");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("only the preview is available"));
    assert_eq!(f.server.hits(MANIFEST_PATH), 1, "a 403 is never retried");
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_bad_token_maps_to_unauthorized() {
    let f = Fixture::new().await;
    f.server.route(
        LICENSE_PATH,
        vec![Canned::problem(401, "token-expired", "the token expired")],
    );
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Unauthorized { detail } if detail == "the token expired"),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing, invalid or expired"));
    assert!(!err.to_string().contains("tok.en.jwt"));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let f = Fixture::new().await;
    let path = media_path(2);
    f.server.route(
        &path,
        vec![
            Canned::problem(500, "internal", "oops"),
            Canned::problem(503, "internal", "busy"),
            Canned::bytes(f.sealed_media[1].clone()),
        ],
    );
    fetch(&f.request()).await.unwrap();
    assert_eq!(std::fs::read(f.out()).unwrap(), f.expected());
    assert_eq!(f.server.hits(&path), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let f = Fixture::new().await;
    let path = media_path(1);
    f.server
        .route(&path, vec![Canned::problem(500, "internal", "down")]);
    let mut req = f.request();
    req.retries = 2;
    let err = fetch(&req).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Http {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(f.server.hits(&path), 3);
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_missing_segment_is_not_found_and_not_retried() {
    let f = Fixture::new().await;
    let path = media_path(3);
    f.server.route(
        &path,
        vec![Canned::problem(404, "not-found", "no such segment")],
    );
    let err = fetch(&f.request()).await.unwrap_err();
    match &err {
        FetchError::NotFound { what } => {
            assert!(what.contains("media segment 3"), "{what}");
            assert!(what.contains("no such segment"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.server.hits(&path), 1);
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_preview_only_license_is_not_entitled_to_lossless() {
    let f = Fixture::new().await;
    let preview = ContentKey::generate().unwrap();
    f.server.route(
        LICENSE_PATH,
        vec![Canned::json(&license_json(&[("preview", &preview)]))],
    );
    let err = fetch(&f.request()).await.unwrap_err();
    match &err {
        FetchError::NotEntitled {
            rendition,
            available,
        } => {
            assert_eq!(rendition, LOSSLESS);
            assert_eq!(available, &vec!["preview".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with("not purchased"), "{err}");
    assert_eq!(f.server.hits(MANIFEST_PATH), 0);
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn a_manifest_under_another_key_is_refused() {
    let f = Fixture::new().await;
    let other = ContentKey::generate().unwrap();
    let entries = f.entries();
    f.serve_manifest_with(entries, |m| m["key_id"] = json!(other.id().to_string()));
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(matches!(err, FetchError::KeyMismatch { .. }), "{err:?}");
    assert!(f.files().is_empty());
}

#[tokio::test]
async fn segments_on_another_origin_are_refused() {
    let f = Fixture::new().await;
    let mut entries = f.entries();
    entries[2]["url"] = json!("http://evil.example/steal");
    f.serve_manifest(entries);
    let err = fetch(&f.request()).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::BadManifest { reason } if reason.contains("origin")),
        "{err:?}"
    );
    assert!(f.server.log().iter().all(|r| !r.path.contains("steal")));
}

#[tokio::test]
async fn an_unreachable_server_is_a_network_error_after_every_retry() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let mut req = FetchRequest::new(
        format!("http://{addr}"),
        "t",
        ALBUM,
        TRACK,
        dir.path().join("x.m4a"),
    );
    req.backoff = Duration::ZERO;
    req.retries = 2;
    let err = fetch(&req).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Network { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("the license for album first-light, track 1")
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn license_checks() {
    let key = ContentKey::generate().unwrap();
    let req = FetchRequest::new("http://h", "t", ALBUM, TRACK, "x.m4a");
    let license: License = serde_json::from_value(license_json(&[(LOSSLESS, &key)])).unwrap();
    let opened = license_keys(&license, &req, 0).unwrap().remove(0);
    assert_eq!(opened.id(), key.id());
    assert_eq!(opened.expose_bytes(), key.expose_bytes());
    let err = license_keys(&license, &req, license.expires_at).unwrap_err();
    assert!(matches!(err, FetchError::LicenseExpired { .. }), "{err:?}");
    let mut other_track = req.clone();
    other_track.track = 2;
    let err = license_keys(&license, &other_track, 0).unwrap_err();
    assert!(matches!(err, FetchError::BadResponse { .. }), "{err:?}");
}

#[test]
fn requests_never_print_the_token_and_urls_are_encoded() {
    let req = FetchRequest::new("http://h", "secret.jwt.value", ALBUM, TRACK, "x.m4a");
    assert!(!format!("{req:?}").contains("secret"));
    let base = parse_server("http://127.0.0.1:8080/").unwrap();
    let url = api_url(&base, &["v1", "albums", "a b/c", "manifest"]).unwrap();
    assert_eq!(
        url.as_str(),
        "http://127.0.0.1:8080/v1/albums/a%20b%2Fc/manifest"
    );
    assert!(parse_server("ftp://h").is_err());
    assert!(parse_server("127.0.0.1:8080").is_err());
    assert!(check_token("  \n").is_err());
    assert!(check_token("a b").is_err());
    assert_eq!(check_token("abc.def\n").unwrap(), "abc.def");
}
