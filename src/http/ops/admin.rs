//! The admin API (scope `admin`): the `encore keys` operations over HTTP, so staff tooling
//! need not run on the origin host. Each operation runs on a blocking thread (they fsync and
//! take the keys lock), is audited with the token's `sub`, and is live in this server when
//! the response is sent: the key set or the catalog is reloaded first. A content rotation
//! re-seals in the background: `202 Accepted` with a job to poll.

use http::{Response, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json, json_text};
use crate::keys::rotation::{Actor, RotationError, Rotator};
use crate::license::{Denied, Scope, VerifiedToken};
use crate::seal::SigningKid;

/// Only staff tokens reach the admin API.
fn require_admin(token: &VerifiedToken) -> Result<Actor, ApiError> {
    if token.claims().scope == Scope::Admin {
        Ok(Actor::Token {
            sub: token.claims().sub.clone(),
        })
    } else {
        Err(ApiError::Denied(Denied::ScopeNotAllowed))
    }
}

/// Runs a key operation on a blocking thread.
async fn blocking<T: Send + 'static>(
    rotator: &Rotator,
    op: impl FnOnce(&Rotator) -> Result<T, RotationError> + Send + 'static,
) -> Result<T, ApiError> {
    let rotator = rotator.clone();
    tokio::task::spawn_blocking(move || op(&rotator))
        .await
        .map_err(|e| ApiError::Internal(format!("key operation task: {e}")))?
        .map_err(ApiError::from)
}

fn reload_keys(app: &App) -> Result<(), ApiError> {
    app.reload_keys().map(|_| ()).map_err(|e| {
        ApiError::Internal(format!(
            "the operation succeeded but reloading the keys failed: {e}"
        ))
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /v1/admin/keys`: every key with its state; content keys per album. No material.
pub async fn list(app: &App, token: &VerifiedToken) -> Result<Response<Body>, ApiError> {
    require_admin(token)?;
    let listing = blocking(&app.rotator, |r| r.list()).await?;
    Ok(json(&to_json(&listing)?, "no-store"))
}

/// `POST /v1/admin/keys/signing/rotate`.
pub async fn rotate_signing(app: &App, token: &VerifiedToken) -> Result<Response<Body>, ApiError> {
    let actor = require_admin(token)?;
    let _serial = app.admin_jobs.serial.lock().await;
    let done = blocking(&app.rotator, move |r| r.rotate_signing(&actor)).await?;
    reload_keys(app)?;
    Ok(json(&to_json(&done)?, "no-store"))
}

/// `POST /v1/admin/keys/signing/{kid}/revoke`.
pub async fn revoke_signing(
    app: &App,
    token: &VerifiedToken,
    kid: &str,
) -> Result<Response<Body>, ApiError> {
    let actor = require_admin(token)?;
    let kid: SigningKid = kid
        .parse()
        .map_err(|e: crate::seal::SigningKidParseError| ApiError::NotFound(e.to_string()))?;
    let _serial = app.admin_jobs.serial.lock().await;
    let done = blocking(&app.rotator, move |r| r.revoke_signing(&actor, kid)).await?;
    // Before answering: from the response on, this server refuses the key's tokens.
    reload_keys(app)?;
    Ok(json(&to_json(&done)?, "no-store"))
}

/// `POST /v1/admin/keys/kek/rotate`.
pub async fn rotate_kek(app: &App, token: &VerifiedToken) -> Result<Response<Body>, ApiError> {
    let actor = require_admin(token)?;
    let _serial = app.admin_jobs.serial.lock().await;
    let done = blocking(&app.rotator, move |r| r.rotate_kek(&actor)).await?;
    reload_keys(app)?;
    Ok(json(&to_json(&done)?, "no-store"))
}

/// `POST /v1/admin/keys/maintain`: what is due now, at once.
pub async fn maintain(app: &App, token: &VerifiedToken) -> Result<Response<Body>, ApiError> {
    require_admin(token)?;
    let _serial = app.admin_jobs.serial.lock().await;
    let report = blocking(&app.rotator, |r| r.maintain()).await?;
    reload_keys(app)?;
    app.reload_library_and_purge()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(&to_json(&report)?, "no-store"))
}

/// Body of `POST /v1/admin/keys/content/rotate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentRotateRequest {
    album: String,
    #[serde(default)]
    track: Option<u32>,
}

/// `POST /v1/admin/keys/content/rotate` with `{album, track?}`: 202 and a job URL; the
/// re-seal runs in the background while every segment keeps serving.
pub async fn rotate_content(
    app: &std::sync::Arc<App>,
    token: &VerifiedToken,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let actor = require_admin(token)?;
    let req: ContentRotateRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("content rotation request body: {e}")))?;
    // A re-seal here would change this origin's mirror only (and need every segment local);
    // the bucket, which every origin serves, is changed by the ingest job's publication.
    if app.segments.read_through().is_some() {
        return Err(ApiError::KeyOperation(
            "this origin serves albums published to a bucket: rotate content keys where \
             `encore ingest` runs (`encore keys rotate content --config FILE --data WORK \
             --album ID`), then publish with `encore ingest`"
                .into(),
        ));
    }
    {
        let lib = app.library.load();
        let album = lib
            .album(&req.album)
            .ok_or_else(|| ApiError::NotFound(format!("no packaged album {:?}", req.album)))?;
        if let Some(n) = req.track
            && !album.tracks.contains_key(&n)
        {
            return Err(ApiError::NotFound(format!(
                "album {:?} has no packaged track {n}",
                req.album
            )));
        }
    }
    let operation = match req.track {
        Some(n) => format!("rotate-content {} track {n}", req.album),
        None => format!("rotate-content {}", req.album),
    };
    let id = app.admin_jobs.start(operation, actor.clone(), app.now());
    let app = std::sync::Arc::clone(app);
    app.clone().spawn_background(async move {
        let outcome = async {
            let _serial = app.admin_jobs.serial.lock().await;
            let album = req.album.clone();
            let done = blocking(&app.rotator, move |r| {
                r.rotate_content(&actor, &album, req.track)
            })
            .await?;
            app.reload_library_and_purge()
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            to_json(&done)
        }
        .await;
        if let Err(e) = &outcome {
            tracing::error!(job = id, "content rotation failed: {e}");
        }
        app.admin_jobs
            .finish(id, outcome.map_err(|e| e.to_string()), app.now());
    });
    let location = format!("/v1/admin/jobs/{id}");
    let body = serde_json::json!({ "job": id, "state": "running", "status_url": location });
    let mut resp = json_text(StatusCode::ACCEPTED, body.to_string(), "no-store");
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /v1/admin/jobs/{id}`.
pub fn job(app: &App, token: &VerifiedToken, id: u64) -> Result<Response<Body>, ApiError> {
    require_admin(token)?;
    let job = app
        .admin_jobs
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id} in this server")))?;
    Ok(json(&to_json(&job)?, "no-store"))
}
