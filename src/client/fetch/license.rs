//! The license of the track asked for: requested, checked to be for this track and still
//! valid, and the keys of the rendition asked for taken from it.

use reqwest::Url;
use zeroize::Zeroizing;

use crate::seal::ContentKey;

use super::super::api::{License, LicenseRequest};
use super::super::error::FetchError;
use super::super::transport::Transport;
use super::endpoint::api_url;
use super::{FetchRequest, MAX_JSON_BYTES, parse_json, unix_now};

/// Asks for the license of the track and returns the keys it holds for the rendition.
pub(super) async fn request_license_keys(
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
pub(super) fn license_keys(
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
