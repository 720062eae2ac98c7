//! Property tests of what `encore fetch` reads back from a server it does not trust: the
//! manifest (every download stays on the server's origin, in slot order, bounded in size)
//! and the license (keys only for the track asked for, while valid); no answer panics the
//! client.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use proptest::prelude::*;
use serde_json::json;

use super::super::api::License;
use super::license::license_keys;
use super::plan::MAX_SEGMENT_BYTES;
use super::*;
use crate::seal::SegmentSlot;

const BASE: &str = "http://127.0.0.1:8080/";

fn request() -> FetchRequest {
    let mut req = FetchRequest::new(BASE, "t", "first-light", 2, "/dev/null");
    req.rendition = "lossless".to_owned();
    req
}

/// Segment URLs a hostile server could write: its own paths, other origins in every
/// spelling the URL standard knows, and junk.
fn segment_url() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "/v1/albums/first-light/tracks/2/lossless/g00/[0-9]{4}\\.enc",
        3 => proptest::sample::select(vec![
            "//evil.example/x", "http://evil.example/x", "https://127.0.0.1:8080/x",
            "http://127.0.0.1:8081/x", "http://127.0.0.1:8080/x", "/\\evil.example/x",
            "\\\\evil.example/x", "http:evil.example/x", " //evil.example/x", "\t//evil.example/x",
            "http://127.0.0.1:8080@evil.example/x", "http://evil.example\\@127.0.0.1:8080/x",
            "file:///etc/passwd", "data:,x", "javascript:alert(1)", "x", "", "..", "/..%2f..",
            "http://[::1]:8080/x", "http://127.1:8080/x", "HTTP://127.0.0.1:8080/x",
            "http://127.0.0.1:8080/%2e%2e/x", "?x", "#x",
        ]).prop_map(str::to_owned),
        1 => "\\PC{0,30}",
    ]
}

fn segment(index: u32) -> impl Strategy<Value = serde_json::Value> {
    (
        segment_url(),
        prop_oneof![8 => Just(index), 1 => any::<u32>()],
        prop_oneof![8 => 0u64..100_000, 1 => any::<u64>()],
        prop_oneof![8 => "[0-9a-f]{64}", 1 => "[0-9a-fA-FxX ]{0,70}"],
    )
        .prop_map(|(url, index, bytes, sha256)| {
            json!({"index": index, "url": url, "bytes": bytes, "sha256": sha256})
        })
}

fn manifest() -> impl Strategy<Value = serde_json::Value> {
    (
        segment(0),
        proptest::collection::vec(segment(0), 0..6),
        prop_oneof![8 => Just("first-light"), 1 => Just("other")],
        prop_oneof![8 => Just(2u32), 1 => Just(3u32)],
        prop_oneof![8 => Just("lossless"), 1 => Just("preview")],
    )
        .prop_map(|(init, segments, album, track, rendition)| {
            let segments: Vec<serde_json::Value> = segments
                .into_iter()
                .enumerate()
                .map(|(i, mut s)| {
                    // Most manifests number their segments in order; some do not.
                    if s["index"] == 0 {
                        s["index"] = json!(i + 1);
                    }
                    s
                })
                .collect();
            json!({
                "album": album, "track": track, "rendition": rendition, "codec": "flac",
                "sample_rate": 48000, "channels": 2, "duration_samples": 480000,
                "key_id": "00112233445566778899aabbccddeeff", "init": init, "segments": segments,
            })
        })
}

proptest! {
    #![proptest_config(crate::fuzzing::config(256))]

    /// Whatever the manifest says, every download is on the server's origin, in slot order
    /// (init, then 1, 2, ...), bounded in size, and for the track asked for.
    #[test]
    fn a_manifest_never_sends_the_token_elsewhere(manifest in manifest()) {
        let req = request();
        let base = parse_server(&req.server).unwrap();
        let text = manifest.to_string();
        let Ok(parsed) = parse_json::<Manifest>(text.as_bytes(), "manifest") else {
            return Ok(());
        };
        if let Ok(jobs) = plan(&parsed, &req, &base) {
            prop_assert_eq!(&parsed.album, &req.album);
            prop_assert_eq!(parsed.track, req.track);
            prop_assert_eq!(&parsed.rendition, &req.rendition);
            prop_assert_eq!(jobs.len(), parsed.segments.len() + 1);
            for (i, job) in jobs.iter().enumerate() {
                prop_assert_eq!(job.url.origin(), base.origin(), "{}", job.url);
                prop_assert_eq!(job.url.scheme(), "http");
                prop_assert_eq!(job.url.host_str(), Some("127.0.0.1"));
                prop_assert_eq!(job.url.port_or_known_default(), Some(8080));
                prop_assert!(job.bytes <= MAX_SEGMENT_BYTES);
                let want = if i == 0 { SegmentSlot::Init } else { SegmentSlot::Media(i as u32) };
                prop_assert_eq!(job.slot, want);
            }
        }
    }

    /// A license is used only for the track asked for, while it is valid, and only with keys
    /// that decode.
    #[test]
    fn a_license_gives_keys_only_for_what_was_asked(
        album in prop_oneof![8 => Just("first-light"), 1 => Just("other")],
        track in prop_oneof![8 => Just(2u32), 1 => Just(3u32)],
        expires_at in prop_oneof![Just(0u64), Just(999u64), Just(1_000u64), Just(1_001u64), Just(u64::MAX)],
        keys in proptest::collection::vec(
            (
                prop_oneof![Just("lossless"), Just("preview"), Just("")],
                prop_oneof![8 => "[0-9a-f]{64}", 1 => "[0-9a-fA-F]{0,66}", 1 => "\\PC{0,10}"],
            ),
            0..4,
        ),
    ) {
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .map(|(r, k)| json!({"rendition": r, "key_id": "00112233445566778899aabbccddeeff", "key": k}))
            .collect();
        let text = json!({"album": album, "track": track, "expires_at": expires_at, "keys": keys}).to_string();
        let Ok(license) = parse_json::<License>(text.as_bytes(), "license") else {
            return Ok(());
        };
        let req = request();
        if let Ok(got) = license_keys(&license, &req, 1_000) {
            prop_assert_eq!(album, req.album.as_str());
            prop_assert_eq!(track, req.track);
            prop_assert!(expires_at > 1_000);
            prop_assert!(!got.is_empty());
            prop_assert_eq!(got.len(), license.keys_for(&req.rendition).count());
        }
    }

    /// No answer body panics the client's JSON reading.
    #[test]
    fn any_answer_body_is_read_safely(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_json::<Manifest>(&body, "manifest");
        let _ = parse_json::<License>(&body, "license");
    }
}
