//! HLS routes: multivariant and media playlists, the AES-128 key, and the HLS form of each
//! segment, made from the sealed store on the way out and kept in the segment cache. Each
//! operation takes grants that only the entitlement checks make: [`SegmentGrant`]s for
//! playlists and segments (as for sealed segments), a [`LicenseGrant`] for the key (as for
//! licenses: edges never get it).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::hls::playlist::{self, Carry, Variant};
use crate::hls::{self, HlsError, HlsFile, HlsKey, KeyContext, SegmentPlace};
use crate::http::app::App;
use crate::http::ops::segment::{self, Conditions, Immutable};
use crate::http::problem::ApiError;
use crate::http::respond::{self, Body};
use crate::license::{LicenseGrant, SegmentGrant};
use crate::seal::SegmentSlot;
use crate::store::cache::DeriveError;
use crate::store::{RenditionManifest, SegmentRecord};

/// `Content-Type` of playlists (RFC 8216 §4).
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// `Content-Type` of init and media segments: fMP4 audio.
static SEGMENT_TYPE: HeaderValue = HeaderValue::from_static("audio/mp4");
/// Playlists depend on the token (what it may play, and the token itself in their URIs with
/// a query token), so no cache may keep them.
const PLAYLIST_CACHE: &str = "private, no-store";

/// A rendition the token may fetch, with its manifest.
pub struct Entitled {
    /// The check's grant.
    pub grant: SegmentGrant,
    /// The rendition's manifest (of one catalog snapshot).
    pub manifest: Arc<RenditionManifest>,
}

fn playlist_response(text: String) -> Response<Body> {
    let mut resp = respond::text(StatusCode::OK, text, PLAYLIST_TYPE);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(PLAYLIST_CACHE),
    );
    resp
}

/// A track's multivariant playlist: one variant per rendition in `entitled` (which the caller
/// has already narrowed with [`hls::variant_renditions`]).
pub fn track_master(entitled: &[Entitled], carry: Carry<'_>) -> Response<Body> {
    let variants: Vec<Variant<'_>> = entitled
        .iter()
        .map(|e| Variant {
            tracks: vec![&*e.manifest],
            path: playlist::track_media_path(e.grant.album(), e.grant.track(), e.grant.rendition()),
        })
        .collect();
    playlist_response(playlist::multivariant(&variants, carry))
}

/// An album's multivariant playlist: per rendition, every track's entitlement (in track
/// order).
pub fn album_master(
    album: &str,
    per_rendition: &[Vec<Entitled>],
    carry: Carry<'_>,
) -> Response<Body> {
    let variants: Vec<Variant<'_>> = per_rendition
        .iter()
        .filter_map(|tracks| {
            let first = tracks.first()?;
            Some(Variant {
                tracks: tracks.iter().map(|e| &*e.manifest).collect(),
                path: playlist::album_media_path(album, first.grant.rendition()),
            })
        })
        .collect();
    playlist_response(playlist::multivariant(&variants, carry))
}

/// A media playlist of the granted rendition of one track, or of every track of an album.
pub fn media(tracks: &[Entitled], carry: Carry<'_>) -> Response<Body> {
    let manifests: Vec<&RenditionManifest> = tracks.iter().map(|e| &*e.manifest).collect();
    playlist_response(playlist::media(&manifests, carry))
}

/// A stored segment resolved for an HLS request.
pub struct HlsSegmentRef {
    /// The rendition's manifest.
    pub manifest: Arc<RenditionManifest>,
    /// The segment's record (init or media).
    pub record: SegmentRecord,
    /// The sealed file on disk.
    pub path: std::path::PathBuf,
}

/// The HLS form of a granted segment: the init segment in the clear, a media segment
/// AES-128-CBC encrypted. Built from the sealed file on a miss (on a blocking thread: it
/// opens and encrypts the whole segment), then served from the segment cache.
pub async fn segment(
    app: &App,
    grant: &SegmentGrant,
    seg: HlsSegmentRef,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    // The HLS bytes are a function of the sealed bytes, so the sealed hash names them; the
    // prefix keeps the two forms' validators apart.
    let etag = HeaderValue::from_str(&format!("\"hls-{}\"", seg.record.sha256))
        .map_err(|_| ApiError::Internal("an HLS segment's ETag is not a header value".into()))?;
    let immutable = Immutable {
        etag,
        cache_control: segment::immutable_cache_control(grant.audience()),
        content_type: &SEGMENT_TYPE,
    };
    let keyring = Arc::clone(&app.keys().keyring);
    let sha256 = seg
        .record
        .digest()
        .ok_or_else(|| ApiError::Internal(format!("segment {} has no SHA-256", seg.record.file)))?;
    let HlsSegmentRef {
        manifest,
        record,
        path,
    } = seg;
    segment::serve(
        &immutable,
        &Conditions::from_headers(headers),
        || async move {
            let built = app
                .segments
                .get_derived(path, sha256, move |sealed: Bytes| async move {
                    tokio::task::spawn_blocking(move || {
                        let content = hls::content_key_for(&keyring, &manifest)?;
                        let slot = match record.index {
                            0 => SegmentSlot::Init,
                            n => SegmentSlot::Media(n),
                        };
                        let place = SegmentPlace {
                            album: &manifest.album,
                            track: manifest.track,
                            rendition: &manifest.rendition,
                            generation: &manifest.generation,
                            slot,
                        };
                        hls::build_segment(&content, &place, Vec::from(sealed)).map(Bytes::from)
                    })
                    .await
                    .map_err(|e| HlsError::Task(e.to_string()))?
                })
                .await;
            built.map_err(|e| match e {
                DeriveError::Load(e) if e.not_found => {
                    ApiError::NotFound("segment file missing from the store".into())
                }
                DeriveError::Load(e) => ApiError::Internal(e.to_string()),
                DeriveError::Build(e) => ApiError::from(e),
            })
        },
    )
    .await
    .map(segment::Answer::into_response)
}

/// The 16-byte HLS key of the granted rendition (`m`), for a holder of a license grant that
/// covers it. Never stored by any cache.
pub fn key(
    app: &App,
    grant: &LicenseGrant,
    m: &RenditionManifest,
) -> Result<Response<Body>, ApiError> {
    if !grant.renditions().contains(&m.rendition) {
        // authorize_license was asked for exactly this rendition; a grant without it means
        // the caller mixed up its arguments, and a key must never leave on a guess.
        return Err(ApiError::Internal(format!(
            "license grant for {}/{} does not cover {}",
            grant.album(),
            grant.track(),
            m.rendition
        )));
    }
    let content = hls::content_key_for(&app.keys().keyring, m)?;
    let key = HlsKey::derive(
        &content,
        &KeyContext {
            album: &m.album,
            track: m.track,
            rendition: &m.rendition,
        },
    )?;
    let mut resp = Response::new(http_body_util::Full::new(Bytes::copy_from_slice(
        key.expose_bytes(),
    )));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// The record of `file` in `m`, if `m` has it (keys have none).
pub fn record_of(m: &RenditionManifest, file: HlsFile) -> Option<&SegmentRecord> {
    match file {
        HlsFile::Init => Some(&m.init),
        HlsFile::Media(n) => m.segments.iter().find(|s| s.index == n),
        HlsFile::Key => None,
    }
}
