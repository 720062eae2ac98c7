//! One track at one rendition, from license to a playable fMP4 file: license, manifest,
//! segments fetched with bounded concurrency, each checked (size, SHA-256, seal) before its
//! plaintext is written.
//!
//! - `license`: the license asked for and checked, the rendition's keys taken from it.
//! - `plan`: the manifest checked against the request; the downloads it lists, in slot order.
//! - `segment`: one segment downloaded, checked against the plan and opened.
//! - `endpoint`: the server's URL and the API URLs made from it.
//! - `offline`: an album's sealed segments and offline license kept in a folder, and one
//!   track written from it with no server.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::seal::ContentKey;

use super::api::Manifest;
use super::error::FetchError;
use super::output::PartialFile;
use super::retry::RetryPolicy;
use super::token::Token;
use super::transport::Transport;

mod endpoint;
mod extra;
mod license;
mod offline;
mod plan;
mod segment;

use endpoint::{api_url, parse_server};
pub use extra::fetch_extra;
use license::request_license_keys;
pub use offline::{
    JWKS_FILE, LICENSE_FILE, OfflineDownload, OfflineReport, download_offline, open_offline,
    read_device_key,
};
use plan::plan;
use segment::fetch_segment;

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

/// What to fetch and where to write it. [`FetchRequest::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// A `play` token (JWT). Never printed, not even by `Debug`.
    pub token: Token,
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
        token: impl Into<Token>,
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

/// Fetches one track at one rendition into `req.out`.
///
/// Steps: license (picks the rendition's key), manifest (its key id must be the license
/// key's), init and media segments with `req.concurrency` in flight and in order, each
/// checked against the manifest's size and SHA-256 and opened under its slot. The plaintexts
/// go to a temp file next to `req.out`, renamed into place only once all passed; on any error,
/// or if the future is dropped, nothing is left behind.
pub async fn fetch(req: &FetchRequest) -> Result<FetchReport, FetchError> {
    let base = parse_server(&req.server)?;
    let token = check_token(req.token.expose())?;
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
mod tests;

#[cfg(test)]
mod proptests;
