//! One track at one rendition, from license to a playable fMP4 file: license, manifest,
//! segments fetched with bounded concurrency, each checked (size, SHA-256, seal) before its
//! plaintext is written.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    let what = format!("the license for {} track {}", req.album, req.track);
    let body = transport
        .post_json(
            &api_url(&base, &["v1", "licenses"])?,
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
    let key = license_key(&license, req, unix_now())?;
    drop(license);

    let track = req.track.to_string();
    let what = format!(
        "the manifest of {} track {} ({})",
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
    if manifest.key_id != key.id() {
        return Err(FetchError::KeyMismatch {
            rendition: req.rendition.clone(),
            manifest: manifest.key_id,
            license: key.id(),
        });
    }
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

/// The key of the rendition asked for, from a license that is for this track and still valid.
fn license_key(license: &License, req: &FetchRequest, now: u64) -> Result<ContentKey, FetchError> {
    let what = || format!("the license for {} track {}", req.album, req.track);
    if license.album != req.album || license.track != req.track {
        return Err(FetchError::BadResponse {
            what: what(),
            reason: format!(
                "the server sent the license for {} track {}",
                license.album, license.track
            ),
        });
    }
    let Some(entry) = license.key_for(&req.rendition) else {
        return Err(FetchError::NotEntitled {
            rendition: req.rendition.clone(),
            available: license.renditions(),
        });
    };
    if license.expires_at <= now {
        return Err(FetchError::LicenseExpired {
            expires_at: license.expires_at,
        });
    }
    entry.content_key().map_err(|e| FetchError::BadResponse {
        what: what(),
        reason: format!("the key for {}: {e}", req.rendition),
    })
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
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
