//! The public catalog: albums, one album with its tracks and renditions, cover art.

use http::{HeaderValue, Response, header};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{self, Body, json};
use crate::media::Rendition;
use crate::store::library::AlbumHead;

fn cover_url(album: &AlbumHead) -> serde_json::Value {
    match album.record.cover {
        Some(_) => serde_json::Value::String(format!("/v1/albums/{}/cover", album.record.album)),
        None => serde_json::Value::Null,
    }
}

fn summary(album: &AlbumHead) -> serde_json::Value {
    let r = &album.record;
    serde_json::json!({
        "id": r.album,
        "title": r.title,
        "artist": r.artist,
        "release_date": r.release_date,
        "price": r.price,
        "currency": r.currency,
        "tracks": album.tracks.len(),
        "cover": cover_url(album),
        "on_sale_at": r.on_sale_at.map(crate::ledger::time::format_rfc3339),
        "artist_id": r.artist.as_deref().and_then(crate::catalog::slugify),
    })
}

/// The album's loudness and gain (`null` before it was measured), with the reference level
/// the gains aim at.
fn loudness_json(l: Option<&crate::media::loudness::Loudness>) -> serde_json::Value {
    match l.and_then(|l| serde_json::to_value(l).ok()) {
        Some(mut v) => {
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "reference_lufs".into(),
                    crate::media::loudness::REFERENCE_LUFS.into(),
                );
            }
            v
        }
        None => serde_json::Value::Null,
    }
}

/// Albums a listing page holds when the query does not say.
pub const DEFAULT_PAGE: usize = 500;
/// The most albums one listing page holds.
pub const MAX_PAGE: usize = 1000;

/// `GET /v1/albums[?after=ID][&limit=N]`: a page of albums in id order, with the URL of the
/// next page while there may be more (`next`, else `null`).
pub fn list(app: &App, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let mut after = None;
    let mut limit = DEFAULT_PAGE;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("after", id)) => {
                // The store's own rule for an album's folder name.
                if app.store.album_dir(id).is_err() {
                    return Err(ApiError::BadRequest(format!(
                        "after={id:?} is not an album id"
                    )));
                }
                after = Some(id);
            }
            Some(("limit", n)) => {
                limit = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("limit={n:?} is not 1 to {MAX_PAGE}"))
                    })?;
            }
            // Other parameters (an access token, a cache buster) do not shape the page.
            _ => {}
        }
    }
    let (page, more) = app.library.load().albums_after(after, limit);
    let albums: Vec<_> = page.iter().map(|a| summary(a)).collect();
    let next = match page.last() {
        Some(last) if more => serde_json::Value::String(format!(
            "/v1/albums?after={}&limit={limit}",
            last.record.album
        )),
        _ => serde_json::Value::Null,
    };
    Ok(json(
        &serde_json::json!({ "albums": albums, "next": next }),
        "public, max-age=30",
    ))
}

/// `GET /v1/albums/{album}`.
pub fn get(app: &App, album: &str) -> Result<Response<Body>, ApiError> {
    let lib = app.library.load();
    let entry = lib
        .album(album)
        .ok_or_else(|| ApiError::NotFound(format!("no album {album:?}")))?;
    let mut value = summary(&entry);
    let tracks: Vec<_> = entry
        .tracks
        .values()
        .map(|t| {
            let manifests = lib.track_manifests(album, t.track).unwrap_or_default();
            let renditions: Vec<_> = manifests
                .iter()
                .map(|m| {
                    let mut r = serde_json::json!({
                        "name": m.rendition,
                        "codec": m.codec,
                        "codec_string": m.codec_string,
                        "bitrate": m.bitrate,
                        "sample_rate": m.sample_rate,
                        "channels": m.channels,
                        "duration_seconds": m.duration_seconds(),
                    });
                    if let (Some(bits), Some(fields)) =
                        (m.decoded_bits_per_sample(), r.as_object_mut())
                    {
                        fields.insert("bits_per_sample".into(), bits.into());
                    }
                    r
                })
                .collect();
            let preview = manifests
                .iter()
                .find(|m| m.rendition == Rendition::Preview.as_str())
                .and_then(|m| m.preview);
            serde_json::json!({
                "number": t.track,
                "title": t.title,
                "artist": t.artist,
                "duration_seconds": t.source_samples as f64 / f64::from(t.source_sample_rate.max(1)),
                "renditions": renditions,
                "preview": preview.map(|p| serde_json::json!({"start_seconds": p.start_seconds, "seconds": p.seconds})),
                "loudness": t.loudness,
                "lyrics": t.lyrics.map(|l| serde_json::json!({
                    "synced": l.synced,
                    "lines": l.lines,
                    "url": format!("/v1/albums/{album}/tracks/{}/lyrics", t.track),
                })),
            })
        })
        .collect();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("tracks".into(), serde_json::Value::Array(tracks));
        let extras = super::extras::listing(album, &entry.record.extras);
        obj.insert("extras".into(), extras);
        obj.insert(
            "loudness".into(),
            loudness_json(entry.record.loudness.as_ref()),
        );
    }
    Ok(json(&value, "public, max-age=30"))
}

/// `GET /v1/albums/{album}/cover`.
pub async fn cover(app: &App, album: &str) -> Result<Response<Body>, ApiError> {
    let (name, kind) = {
        let entry = app
            .library
            .load()
            .album(album)
            .ok_or_else(|| ApiError::NotFound(format!("no album {album:?}")))?;
        let name = entry
            .record
            .cover
            .clone()
            .ok_or_else(|| ApiError::NotFound(format!("album {album:?} has no cover")))?;
        (
            name,
            entry
                .record
                .cover_type
                .clone()
                .unwrap_or_else(|| "image/jpeg".into()),
        )
    };
    let dir = app
        .store
        .album_dir(album)
        .map_err(|_| ApiError::NotFound(format!("album {album:?} has no cover")))?;
    let cover = app.segments.get(dir.join(name)).await.map_err(|e| {
        if e.not_found {
            ApiError::NotFound(format!("cover of {album:?}"))
        } else {
            ApiError::Internal(e.to_string())
        }
    })?;
    let mut resp = respond::file_backed(cover);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&kind)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(resp)
}
