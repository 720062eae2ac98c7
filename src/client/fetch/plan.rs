//! The downloads a manifest lists, once it is checked to describe what was asked for, in
//! order, on the server's origin and within size limits.

use reqwest::Url;

use crate::seal::SegmentSlot;

use super::super::api::{Manifest, SegmentRef};
use super::super::error::FetchError;
use super::FetchRequest;

/// Largest sealed segment accepted (a few seconds of audio is well under a megabyte); keeps
/// a bad manifest from making us buffer gigabytes.
pub(super) const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// One segment to download and check.
pub(super) struct Job {
    pub(super) slot: SegmentSlot,
    pub(super) url: Url,
    pub(super) bytes: u64,
    pub(super) sha256: [u8; 32],
}

/// Checks the manifest describes what was asked for, in order, on this origin; returns the
/// downloads, init first.
///
/// The manifest is not authenticated, so the slot each segment is opened in comes from its
/// position, never from the server: a manifest that reorders segments (each with its own
/// correct index) is refused here, and one that lies about indices fails to open.
pub(super) fn plan(
    manifest: &Manifest,
    req: &FetchRequest,
    base: &Url,
) -> Result<Vec<Job>, FetchError> {
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
