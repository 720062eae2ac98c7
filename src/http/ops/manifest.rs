//! `GET .../manifest`: a rendition's segments with immutable URLs, sizes and hashes.

use http::Response;

use crate::http::respond::{Body, json};
use crate::license::{Audience, SegmentGrant};
use crate::store::RenditionManifest;

/// The URL of a stored segment.
pub fn segment_url(m: &RenditionManifest, file: &str) -> String {
    format!(
        "/v1/albums/{}/tracks/{}/{}/{}/{}",
        m.album, m.track, m.rendition, m.generation, file
    )
}

/// Answers with `m`, the manifest of the rendition the grant covers.
pub fn get(m: &RenditionManifest, grant: &SegmentGrant) -> Response<Body> {
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
    // Manifests change when a track is re-packaged: short-lived, unlike the segments they name.
    let cc = match grant.audience() {
        Audience::Edge => "public, max-age=10",
        Audience::Player => "private, max-age=10",
    };
    json(&body, cc)
}
