//! `POST /v1/licenses`: the content keys of the renditions the token entitles.

use http::Response;
use serde::Deserialize;

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json};
use crate::license::{VerifiedToken, authorize_license};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseRequest {
    /// Album id.
    pub album: String,
    /// Track number.
    pub track: u32,
}

/// Answers a license request for an authenticated token.
pub fn create(app: &App, token: &VerifiedToken, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let req: LicenseRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("license request body: {e}")))?;
    let renditions: Vec<String> = {
        let lib = app.library.load();
        lib.track_manifests(&req.album, req.track)
            .ok_or_else(|| {
                ApiError::NotFound(format!("no track {} in album {:?}", req.track, req.album))
            })?
            .iter()
            .map(|m| m.rendition.clone())
            .collect()
    };
    let available: Vec<&str> = renditions.iter().map(String::as_str).collect();
    let grant = authorize_license(token, &req.album, req.track, &available, &app.revocations)
        .inspect_err(|d| app.metrics.count_denial(d))?;
    let keyset = app.keys();
    let now = app.now();
    let mut keys = Vec::new();
    for rendition in grant.renditions() {
        let what = || format!("{}/{}/{rendition}", grant.album(), grant.track());
        // Every key not yet retired: during a content rotation, the key of the generation
        // players already listed and the new one both open segments the server serves.
        let live = keyset
            .keyring
            .live_content_keys(grant.album(), grant.track(), rendition, now)
            .map_err(|e| ApiError::Internal(format!("content keys for {}: {e}", what())))?;
        if live.is_empty() {
            return Err(ApiError::Internal(format!("no content key for {}", what())));
        }
        for key in live {
            keys.push(serde_json::json!({
                "rendition": rendition,
                "key_id": key.id().to_string(),
                "key": hex::encode(key.expose_bytes()),
            }));
        }
    }
    let mut answer = serde_json::json!({ "album": grant.album(), "track": grant.track(), "expires_at": grant.expires_at(), "keys": keys });
    if let Some(why) = grant.preview_only() {
        // Only the preview's key: say why (not bought, or bought and refunded), so a player
        // can tell its user rather than play a clip where the album was expected.
        answer["preview_only"] = why.problem_type().into();
    }
    Ok(json(&answer, "no-store"))
}
