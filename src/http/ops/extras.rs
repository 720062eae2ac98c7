//! `GET /v1/albums/{album}/extras/{id}`: a buyer-only extra, opened by the origin for a play
//! token that owns the album (the license gate's rule, `license::authorize_extra`).

use http::{HeaderValue, Response, header};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::Body;
use crate::license::{ExtraGrant, VerifiedToken, authorize_extra};
use crate::seal;
use crate::store::{EXTRA_TRACK, ExtraRecord, extra_context, extra_slot};

/// The extras of `album` as the catalog lists them (`GET /v1/albums/{album}`): what anyone
/// may know of them, never their bytes.
pub fn listing(album: &str, extras: &[ExtraRecord]) -> serde_json::Value {
    extras
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "title": e.title,
                "type": e.mime,
                "size": e.size,
                "url": format!("/v1/albums/{album}/extras/{}", e.id),
            })
        })
        .collect()
}

/// Answers with the extra's plaintext. 404 for an album or extra the catalog does not list
/// (the catalog is public, so this tells a non-buyer nothing new); 403 `not-purchased` or
/// `purchase-refunded` for a play token that does not own the album.
pub async fn get(
    app: &App,
    token: &VerifiedToken,
    album: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let record = app
        .library
        .load()
        .album(album)
        .and_then(|a| a.record.extras.iter().find(|e| e.id == id).cloned())
        .ok_or_else(|| ApiError::NotFound(format!("no extra {id:?} in album {album:?}")))?;
    let grant = authorize_extra(token, album, &app.revocations)
        .inspect_err(|d| app.metrics.count_denial(d))?;
    let plain = open(app, &grant, &record).await?;
    let mut resp = Response::new(Body::new(plain.into()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&record.mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    // Opened for one owner: no shared cache may keep it, and a refund must stop it at once.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// Reads the sealed file and opens it under the key its header names. Any failure is the
/// server's (the store or keys are inconsistent), never the caller's.
async fn open(app: &App, grant: &ExtraGrant, record: &ExtraRecord) -> Result<Vec<u8>, ApiError> {
    let album = grant.album();
    let what = || format!("extra {:?} of {album:?}", record.id);
    // On an origin reading a bucket, the sealed file comes from there the first time.
    let library = app.library.load_full();
    let (id, wanted) = (album.to_owned(), record.clone());
    tokio::task::spawn_blocking(move || library.ensure_extra(&id, &wanted))
        .await
        .map_err(|e| ApiError::Internal(format!("{}: {e}", what())))?
        .map_err(|e| ApiError::StoreUnavailable(format!("{}: {e}", what())))?;
    let path = app
        .store
        .extra_path(album, &record.file)
        .map_err(|e| ApiError::Internal(format!("{}: {e}", what())))?;
    let sealed = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("{}: {}: {e}", what(), path.display())))?;
    let key_id =
        seal::sealed_key_id(&sealed).map_err(|e| ApiError::Internal(format!("{}: {e}", what())))?;
    let slot = extra_slot(&record.id);
    let key = app
        .keys()
        .keyring
        .content_key_by_id(album, EXTRA_TRACK, &slot, key_id)
        .map_err(|e| ApiError::Internal(format!("content key of {}: {e}", what())))?
        .ok_or_else(|| ApiError::Internal(format!("no content key {key_id} for {}", what())))?;
    seal::open_in_place(&key, &extra_context(album, &slot), sealed)
        .map_err(|e| ApiError::Internal(format!("{}: {e}", what())))
}
