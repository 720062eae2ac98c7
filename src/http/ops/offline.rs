//! Devices and offline licenses over HTTP: `POST|GET /v1/devices`, `DELETE
//! /v1/devices/{id}` (account token) and `POST /v1/offline-licenses` (play token, issue and
//! renew). Format in `seal::offline`; rules in `docs/HTTP.md` and `docs/OFFLINE.md`.
//!
//! Every issue and renewal reads the device and the purchases from the ledger (not from the
//! token, not from a per-origin cache): a removal or a refund made through any origin is seen
//! by the next renewal on every origin.

use http::{Response, StatusCode};
use serde::Deserialize;

use super::fans::account_user;
use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json_text};
use crate::ledger::devices::{Device, Ownership, Registered, device_name};
use crate::ledger::time::format_rfc3339;
use crate::license::{Denied, Scope, VerifiedToken};
use crate::seal::offline::{DevicePublicKey, LicenseTerms, OfflineKey, issue};

fn device_json(d: &Device) -> serde_json::Value {
    serde_json::json!({
        "id": d.id,
        "name": d.name,
        "public_key": d.public_key,
        "created_at": format_rfc3339(d.created_at),
    })
}

fn reply(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_text(status, value.to_string(), "no-store")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    name: String,
    public_key: String,
}

pub async fn register(
    app: &App,
    token: &VerifiedToken,
    body: &[u8],
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let user = account_user(app, token)?;
    let req: RegisterRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"name\": …, \"public_key\": base64url X25519}} ({e})"
        ))
    })?;
    let name = device_name(&req.name)
        .map_err(|problem| ApiError::BadRequest(format!("name {problem}")))?;
    let key = DevicePublicKey::parse(&req.public_key)
        .map_err(|e| ApiError::BadRequest(format!("public_key: {e}")))?;
    let limit = app.ledger_settings.max_devices;
    let outcome = app
        .ledger
        .register_device(user, &name, &key.to_string(), limit, app.now_signed())
        .await?;
    match outcome {
        Registered::Added(d) => {
            tracing::info!(target: "encore::audit", request_id, action = "register-device",
                user = %user, device = %d.id, result = "added");
            Ok(reply(StatusCode::CREATED, &device_json(&d)))
        }
        Registered::Existing(d) => Ok(reply(StatusCode::OK, &device_json(&d))),
        Registered::Full { limit } => Err(ApiError::State(
            "device-limit-reached",
            format!(
                "this account already has {limit} devices, the most it may have; remove one \
                 (DELETE /v1/devices/{{id}}) first"
            ),
        )),
    }
}

pub async fn list(app: &App, token: &VerifiedToken) -> Result<Response<Body>, ApiError> {
    let user = account_user(app, token)?;
    let devices = app.ledger.devices(user).await?;
    let list: Vec<_> = devices.iter().map(device_json).collect();
    Ok(reply(
        StatusCode::OK,
        &serde_json::json!({
            "devices": list,
            "max_devices": app.ledger_settings.max_devices,
        }),
    ))
}

pub async fn remove(
    app: &App,
    token: &VerifiedToken,
    id: &str,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let user = account_user(app, token)?;
    if !app.ledger.remove_device(user, id, app.now_signed()).await? {
        return Err(ApiError::NotFound(format!("no registered device {id:?}")));
    }
    tracing::info!(target: "encore::audit", request_id, action = "remove-device",
        user = %user, device = %id, result = "removed");
    Ok(reply(
        StatusCode::OK,
        &serde_json::json!({"id": id, "removed": true}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenseRequest {
    album: String,
    device_id: String,
    /// A renewal names the license it renews.
    license_id: Option<String>,
}

/// The online license's gate, for a whole album and against the ledger: the token must name
/// the album and no refund since it was issued may take it away (as `POST /v1/licenses`), and
/// the purchases must still make the user its owner now, because the keys outlive the token.
async fn gate(app: &App, token: &VerifiedToken, album: &str) -> Result<(), ApiError> {
    let claims = token.claims();
    if claims.scope != Scope::Play {
        return Err(ApiError::Denied(Denied::ScopeNotAllowed));
    }
    if !claims.owns(album) {
        return Err(ApiError::Denied(Denied::NotPurchased));
    }
    if app.revocations.revokes(&claims.sub, album, claims.iat) {
        return Err(ApiError::Denied(Denied::Refunded));
    }
    match app.ledger.ownership(&claims.sub, album).await? {
        Ownership::Owned => Ok(()),
        Ownership::Refunded => Err(ApiError::Denied(Denied::Refunded)),
        Ownership::Never => Err(ApiError::Denied(Denied::NotPurchased)),
    }
}

/// Every live content key of every rendition of every track of `album`.
fn album_keys(app: &App, album: &str) -> Result<Vec<OfflineKey>, ApiError> {
    let lib = app.library.load();
    let head = lib
        .album(album)
        .ok_or_else(|| ApiError::NotFound(format!("no album {album:?}")))?;
    let keyset = app.keys();
    let now = app.now();
    let mut keys = Vec::new();
    for (&track, _) in head.tracks.iter() {
        for rendition in head.rendition_names(track).unwrap_or_default() {
            let live = keyset
                .keyring
                .live_content_keys(album, track, rendition, now)
                .map_err(|e| {
                    ApiError::Internal(format!("content keys for {album}/{track}/{rendition}: {e}"))
                })?;
            if live.is_empty() {
                return Err(ApiError::Internal(format!(
                    "no content key for {album}/{track}/{rendition}"
                )));
            }
            keys.extend(live.iter().map(|k| OfflineKey::of(track, rendition, k)));
        }
    }
    Ok(keys)
}

pub async fn create_license(
    app: &App,
    token: &VerifiedToken,
    body: &[u8],
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let req: LicenseRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"album\": …, \"device_id\": …, \"license_id\"?: …}} ({e})"
        ))
    })?;
    gate(app, token, &req.album).await?;
    let user = &token.claims().sub;
    let device = app
        .ledger
        .device(user, &req.device_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {:?} of yours", req.device_id)))?;
    if device.removed_at.is_some() {
        return Err(ApiError::Forbidden(
            "device-removed",
            "this device was removed from the account; offline licenses for it are no longer \
             issued or renewed"
                .into(),
        ));
    }
    let public = DevicePublicKey::parse(&device.public_key)
        .map_err(|e| ApiError::Internal(format!("device {} key: {e}", device.id)))?;
    let keys = album_keys(app, &req.album)?;
    let now = app.now_signed();
    let ttl = i64::try_from(app.ledger_settings.offline_license_seconds).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    let (license_id, action) = match &req.license_id {
        Some(id) => {
            let rec = app
                .ledger
                .offline_license(user, id)
                .await?
                .filter(|r| r.album == req.album && r.device_id == device.id)
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "no offline license {id:?} of yours for this album and device"
                    ))
                })?;
            app.ledger
                .renew_offline_license(&rec.id, expires_at, now)
                .await?;
            (rec.id, "renew-offline-license")
        }
        None => {
            let id = app
                .ledger
                .record_offline_license(user, &req.album, &device.id, now, expires_at)
                .await?;
            (id, "offline-license")
        }
    };
    let terms = LicenseTerms {
        license_id,
        user: user.clone(),
        album: req.album.clone(),
        device_id: device.id.clone(),
        issued_at: u64::try_from(now).unwrap_or(0),
        expires_at: u64::try_from(expires_at).unwrap_or(0),
    };
    let signer = app
        .keys()
        .keyring
        .signing_key()
        .map_err(|e| ApiError::Internal(format!("no signing key: {e}")))?;
    let license = issue(&terms, keys, &public, &signer)
        .map_err(|e| ApiError::Internal(format!("cannot issue an offline license: {e}")))?;
    tracing::info!(target: "encore::audit", request_id, action, user = %user,
        album = %req.album, device = %device.id, license = %terms.license_id, expires_at,
        result = "issued");
    Ok(reply(
        StatusCode::CREATED,
        &serde_json::json!({
            "license_id": terms.license_id,
            "album": terms.album,
            "device_id": terms.device_id,
            "issued_at": terms.issued_at,
            "expires_at": terms.expires_at,
            "license": license,
        }),
    ))
}
