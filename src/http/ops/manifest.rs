//! `GET .../manifest`: a rendition's segments with immutable URLs, sizes and hashes.

use std::sync::Arc;

use http::Response;

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json};
use crate::license::{Audience, SegmentGrant, VerifiedToken, authorize_segment};
use crate::store::RenditionManifest;

/// `GET .../manifest`: the rendition's manifest, for a token entitled to its segments. 404
/// before the entitlement check: the catalog says what exists to anyone with a token.
pub fn get(
    app: &App,
    token: &VerifiedToken,
    album: &str,
    track: u32,
    rendition: &str,
) -> Result<Response<Body>, ApiError> {
    // One catalog snapshot for the 404 check and the answer.
    let manifest = lookup(app, album, track, rendition)?;
    let grant = authorize_segment(token, album, track, rendition, &app.revocations)
        .inspect_err(|d| app.metrics.count_denial(d))?;
    let loudness = app.library.load().album(album).map(|entry| {
        serde_json::json!({
            "reference_lufs": crate::media::loudness::REFERENCE_LUFS,
            "track": entry.tracks.get(&track).and_then(|t| t.loudness),
            "album": entry.record.loudness,
        })
    });
    Ok(answer(&manifest, &grant, loudness))
}

/// The manifest of `rendition` of `track` in `album` in the catalog now, or 404.
pub(crate) fn lookup(
    app: &App,
    album: &str,
    track: u32,
    rendition: &str,
) -> Result<Arc<RenditionManifest>, ApiError> {
    app.library
        .load()
        .manifest(album, track, rendition)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no rendition {rendition:?} of track {track} in album {album:?}"
            ))
        })
}

/// The URL of a stored segment.
pub fn segment_url(m: &RenditionManifest, file: &str) -> String {
    format!(
        "/v1/albums/{}/tracks/{}/{}/{}/{}",
        m.album, m.track, m.rendition, m.generation, file
    )
}

/// Answers with `m`, the manifest of the rendition the grant covers.
fn answer(
    m: &RenditionManifest,
    grant: &SegmentGrant,
    loudness: Option<serde_json::Value>,
) -> Response<Body> {
    let rate = f64::from(m.sample_rate.max(1));
    let segments: Vec<_> = m
        .segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "index": s.index,
                "url": segment_url(m, &s.file),
                "start": s.start,
                "duration_samples": s.duration,
                "duration": s.duration as f64 / rate,
                "bytes": s.bytes,
                "sha256": s.sha256,
            })
        })
        .collect();
    let mut body = serde_json::json!({
        "album": m.album,
        "track": m.track,
        "rendition": m.rendition,
        "codec": m.codec,
        "codec_string": m.codec_string,
        "sample_rate": m.sample_rate,
        "channels": m.channels,
        "duration_samples": m.duration_samples,
        "skip_samples": m.skip_samples,
        "bitrate": m.bitrate,
        "key_id": m.key_id,
        "init": { "url": segment_url(m, &m.init.file), "bytes": m.init.bytes, "sha256": m.init.sha256 },
        "segments": segments,
    });
    if let (Some(bits), Some(fields)) = (m.decoded_bits_per_sample(), body.as_object_mut()) {
        fields.insert("bits_per_sample".into(), bits.into());
    }
    // The source's loudness (the same for every rendition of the track) and the album's.
    if let (Some(l), Some(fields)) = (loudness, body.as_object_mut()) {
        fields.insert("loudness".into(), l);
    }
    // Manifests change when a track is re-packaged: short-lived, unlike the segments they name.
    let cc = match grant.audience() {
        Audience::Edge => "public, max-age=10",
        Audience::Player => "private, max-age=10",
    };
    json(&body, cc)
}
