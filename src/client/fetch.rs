//! One track at one rendition, from license to a playable fMP4 file: license, manifest,
//! segments fetched with bounded concurrency, each checked (size, SHA-256, seal) before its
//! plaintext is written.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use reqwest::Url;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::seal::{ContentKey, SealContext, SegmentSlot, open_in_place};

use super::api::{License, LicenseRequest, Manifest, SegmentRef};
use super::error::{FetchError, SegmentFault};
use super::output::PartialFile;
use super::retry::RetryPolicy;
use super::transport::Transport;

/// Rendition fetched when none is named.
pub const DEFAULT_RENDITION: &str = "lossless";
/// Segments in flight at once by default.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Retries of a transient failure by default (so four attempts in all).
pub const DEFAULT_RETRIES: u32 = 3;
/// Wait before the first retry by default; doubles for each further one.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);
/// Largest license or manifest accepted. A manifest entry is ~250 bytes, so this is tens of
/// thousands of segments: hours of audio.
const MAX_JSON_BYTES: u64 = 8 * 1024 * 1024;
/// Largest sealed segment accepted (a few seconds of audio is well under a megabyte); keeps
/// a bad manifest from making us buffer gigabytes.
const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// What to fetch and where to write it. [`FetchRequest::new`] fills in the defaults.
#[derive(Clone)]
pub struct FetchRequest {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// A `play` token (JWT). Never printed, not even by `Debug`.
    pub token: String,
    /// Album id.
    pub album: String,
    /// Track number, from 1.
    pub track: u32,
    /// Rendition name ([`DEFAULT_RENDITION`]).
    pub rendition: String,
    /// Output file (fMP4, e.g. `track.m4a`); replaced only when everything succeeded.
    pub out: PathBuf,
    /// Segments in flight at once ([`DEFAULT_CONCURRENCY`]; 0 counts as 1).
    pub concurrency: usize,
    /// Retries of a transient failure per request ([`DEFAULT_RETRIES`]).
    pub retries: u32,
    /// Wait before the first retry ([`DEFAULT_BACKOFF`]); tests set it to zero.
    pub backoff: Duration,
}

impl FetchRequest {
    /// A request with the default rendition, concurrency, retries and backoff.
    pub fn new(
        server: impl Into<String>,
        token: impl Into<String>,
        album: impl Into<String>,
        track: u32,
        out: impl Into<PathBuf>,
    ) -> Self {
        Self {
            server: server.into(),
            token: token.into(),
            album: album.into(),
            track,
            rendition: DEFAULT_RENDITION.to_owned(),
            out: out.into(),
            concurrency: DEFAULT_CONCURRENCY,
            retries: DEFAULT_RETRIES,
            backoff: DEFAULT_BACKOFF,
        }
    }
}

impl fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchRequest")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .field("album", &self.album)
            .field("track", &self.track)
            .field("rendition", &self.rendition)
            .field("out", &self.out)
            .field("concurrency", &self.concurrency)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// What a successful fetch wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchReport {
    /// Media segments written (the init segment not counted).
    pub segments: usize,
    /// Bytes written: init plus media plaintexts.
    pub bytes_plaintext: u64,
    /// Presented duration in seconds, from the manifest.
    pub duration_seconds: f64,
    /// Codec name, from the manifest.
    pub codec: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
}

impl fmt::Display for FetchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} segments, {}, {} Hz, {} channels, {:.1} s",
            self.segments, self.codec, self.sample_rate, self.channels, self.duration_seconds
        )
    }
}

/// One segment to download and check.
struct Job {
    slot: SegmentSlot,
    url: Url,
    bytes: u64,
    sha256: [u8; 32],
}

/// Fetches one track at one rendition into `req.out`.
///
/// Steps: license (picks the rendition's key), manifest (its key id must be the license
/// key's), init and media segments with `req.concurrency` in flight and in order, each
/// checked against the manifest's size and SHA-256 and opened under its slot. The plaintexts
/// go to a temp file next to `req.out`, renamed into place only once all passed; on any error,
/// or if the future is dropped, nothing is left behind.
pub async fn fetch(req: &FetchRequest) -> Result<FetchReport, FetchError> {
    let base = parse_server(&req.server)?;
    let token = check_token(&req.token)?;
    // Before any download, so an unwritable output fails fast.
    let mut out = PartialFile::create(&req.out).await?;
    let transport = Transport::new(
        token,
        RetryPolicy {
            retries: req.retries,
            backoff: req.backoff,
        },
    )?;

    let keys = request_license_keys(&transport, &base, req).await?;

    let track = req.track.to_string();
    let what = format!(
        "the manifest of album {}, track {} ({})",
        req.album, req.track, req.rendition
    );
    let url = api_url(
        &base,
        &[
            "v1",
            "albums",
            &req.album,
            "tracks",
            &track,
            &req.rendition,
            "manifest",
        ],
    )?;
    let body = transport.get(&url, &what, MAX_JSON_BYTES).await?;
    let manifest: Manifest = parse_json(&body, &what)?;
    let key = match keys.into_iter().find(|k| k.id() == manifest.key_id) {
        Some(key) => key,
        None => {
            // Staff may have rotated the content keys between the license and the manifest:
            // a fresh license carries the new key. Asked once; a second miss is a real fault.
            let keys = request_license_keys(&transport, &base, req).await?;
            let license_id = keys.first().map(ContentKey::id);
            match keys.into_iter().find(|k| k.id() == manifest.key_id) {
                Some(key) => key,
                None => {
                    return Err(FetchError::KeyMismatch {
                        rendition: req.rendition.clone(),
                        manifest: manifest.key_id,
                        license: license_id.unwrap_or(manifest.key_id),
                    });
                }
            }
        }
    };
    let jobs = plan(&manifest, req, &base)?;

    let transport = &transport;
    let key = &key;
    let mut segments = stream::iter(jobs)
        .map(|job| fetch_segment(transport, job, key, req))
        .buffered(req.concurrency.max(1));
    let mut bytes_plaintext = 0u64;
    while let Some(plaintext) = segments.next().await {
        let plaintext = plaintext?;
        out.write(&plaintext).await?;
        bytes_plaintext += plaintext.len() as u64;
    }
    out.commit().await?;

    Ok(FetchReport {
        segments: manifest.segments.len(),
        bytes_plaintext,
        duration_seconds: manifest.duration_seconds(),
        codec: manifest.codec,
        sample_rate: manifest.sample_rate,
        channels: manifest.channels,
    })
}

/// Downloads one segment, checks size and hash, opens its seal in its own slot.
async fn fetch_segment(
    transport: &Transport,
    job: Job,
    key: &ContentKey,
    req: &FetchRequest,
) -> Result<Vec<u8>, FetchError> {
    let index = match job.slot {
        SegmentSlot::Init => 0,
        SegmentSlot::Media(n) => n,
    };
    let reject = |reason| FetchError::SegmentRejected { index, reason };
    let what = format!("{} ({})", job.slot, job.url.path());
    let sealed = transport.get(&job.url, &what, job.bytes).await?;
    let got = sealed.len() as u64;
    if got > job.bytes {
        return Err(reject(SegmentFault::Long {
            expected: job.bytes,
        }));
    }
    if got < job.bytes {
        return Err(reject(SegmentFault::Short {
            expected: job.bytes,
            got,
        }));
    }
    let digest: [u8; 32] = Sha256::digest(&sealed).into();
    if digest != job.sha256 {
        return Err(reject(SegmentFault::HashMismatch {
            expected: hex::encode(job.sha256),
            actual: hex::encode(digest),
        }));
    }
    let ctx = SealContext {
        album: &req.album,
        track: req.track,
        rendition: &req.rendition,
        slot: job.slot,
    };
    open_in_place(key, &ctx, sealed).map_err(|e| reject(SegmentFault::Open(e)))
}

/// Asks for the license of the track and returns the keys it holds for the rendition.
async fn request_license_keys(
    transport: &Transport,
    base: &Url,
    req: &FetchRequest,
) -> Result<Vec<ContentKey>, FetchError> {
    let what = format!("the license for album {}, track {}", req.album, req.track);
    let body = transport
        .post_json(
            &api_url(base, &["v1", "licenses"])?,
            &LicenseRequest {
                album: req.album.clone(),
                track: req.track,
            },
            &what,
            MAX_JSON_BYTES,
        )
        .await?;
    // The body holds the keys in hex: wipe it once parsed.
    let body = Zeroizing::new(body);
    let license: License = parse_json(&body, &what)?;
    license_keys(&license, req, unix_now())
}

/// The keys of the rendition asked for (newest first; two while a content-key rotation is
/// under way), from a license that is for this track and still valid.
fn license_keys(
    license: &License,
    req: &FetchRequest,
    now: u64,
) -> Result<Vec<ContentKey>, FetchError> {
    let what = || format!("the license for album {}, track {}", req.album, req.track);
    if license.album != req.album || license.track != req.track {
        return Err(FetchError::BadResponse {
            what: what(),
            reason: format!(
                "the server sent the license for {} track {}",
                license.album, license.track
            ),
        });
    }
    let entries: Vec<_> = license.keys_for(&req.rendition).collect();
    if entries.is_empty() {
        return Err(FetchError::NotEntitled {
            rendition: req.rendition.clone(),
            available: license.renditions(),
        });
    }
    if license.expires_at <= now {
        return Err(FetchError::LicenseExpired {
            expires_at: license.expires_at,
        });
    }
    entries
        .into_iter()
        .map(|entry| {
            entry.content_key().map_err(|e| FetchError::BadResponse {
                what: what(),
                reason: format!("the key for {}: {e}", req.rendition),
            })
        })
        .collect()
}

/// Checks the manifest describes what was asked for, in order, on this origin; returns the
/// downloads, init first.
///
/// The manifest is not authenticated, so the slot each segment is opened in comes from its
/// position, never from the server: a manifest that reorders segments (each with its own
/// correct index) is refused here, and one that lies about indices fails to open.
fn plan(manifest: &Manifest, req: &FetchRequest, base: &Url) -> Result<Vec<Job>, FetchError> {
    let bad = |reason: String| FetchError::BadManifest { reason };
    if manifest.album != req.album
        || manifest.track != req.track
        || manifest.rendition != req.rendition
    {
        return Err(bad(format!(
            "it describes {} track {} ({}), not {} track {} ({})",
            manifest.album, manifest.track, manifest.rendition, req.album, req.track, req.rendition
        )));
    }
    if manifest.segments.is_empty() {
        return Err(bad("it lists no media segments".to_owned()));
    }
    let mut jobs = Vec::with_capacity(manifest.segments.len() + 1);
    jobs.push(job(base, SegmentSlot::Init, &manifest.init)?);
    for (position, segment) in manifest.segments.iter().enumerate() {
        let expected = u32::try_from(position + 1)
            .map_err(|_| bad("it lists more than 2^32 segments".to_owned()))?;
        if segment.index != expected {
            return Err(bad(format!(
                "media segment at position {expected} has index {}: segments must be listed \
                 in order from 1",
                segment.index
            )));
        }
        jobs.push(job(base, SegmentSlot::Media(expected), segment)?);
    }
    Ok(jobs)
}

fn job(base: &Url, slot: SegmentSlot, segment: &SegmentRef) -> Result<Job, FetchError> {
    let bad = |reason: String| FetchError::BadManifest {
        reason: format!("{slot}: {reason}"),
    };
    let url = base
        .join(&segment.url)
        .map_err(|e| bad(format!("invalid URL {:?}: {e}", segment.url)))?;
    // The token goes with every segment request: never to another origin.
    if url.origin() != base.origin() {
        return Err(bad(format!(
            "URL {url} is not on the server's origin; refusing to send the token there"
        )));
    }
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&segment.sha256, &mut sha256)
        .map_err(|_| bad(format!("sha256 {:?} is not 64 hex digits", segment.sha256)))?;
    if segment.bytes > MAX_SEGMENT_BYTES {
        return Err(bad(format!(
            "{} bytes is more than the {MAX_SEGMENT_BYTES} a segment may have",
            segment.bytes
        )));
    }
    Ok(Job {
        slot,
        url,
        bytes: segment.bytes,
        sha256,
    })
}

fn parse_server(server: &str) -> Result<Url, FetchError> {
    let invalid = |why: String| FetchError::InvalidRequest {
        reason: format!(
            "invalid server URL {server:?}: {why} (expected e.g. http://127.0.0.1:8080)"
        ),
    };
    let url = Url::parse(server.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(invalid("no host".to_owned()));
    }
    Ok(url)
}

/// `base` with `segments` appended to its path, each percent-encoded.
fn api_url(base: &Url, segments: &[&str]) -> Result<Url, FetchError> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| FetchError::InvalidRequest {
            reason: format!("the server URL {base} cannot have a path"),
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The token without surrounding whitespace (a token read from a file ends in a newline).
fn check_token(token: &str) -> Result<String, FetchError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(FetchError::InvalidRequest {
            reason: "no token: pass --token or set ENCORE_TOKEN".to_owned(),
        });
    }
    // Checked here so the message never has to quote the token.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FetchError::InvalidRequest {
            reason: "the token contains spaces or control characters: it is not a JWT".to_owned(),
        });
    }
    Ok(token.to_owned())
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, FetchError> {
    let bad = |reason: String| FetchError::BadResponse {
        what: what.to_owned(),
        reason,
    };
    if body.len() as u64 > MAX_JSON_BYTES {
        return Err(bad(format!("larger than {MAX_JSON_BYTES} bytes")));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("not the documented JSON: {e}")))
}

fn unix_now() -> u64 {
    crate::clock::Clock::now_unix(&crate::clock::SystemClock)
}

#[cfg(test)]
mod tests {
    use super::super::testserver::{Canned, TestServer};
    use super::*;
    use crate::seal::{OpenError, seal};
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
            let mut req =
                FetchRequest::new(&self.server.base, "tok.en.jwt", ALBUM, TRACK, self.out());
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
}

#[cfg(test)]
#[path = "fetch_proptests.rs"]
mod proptests;
