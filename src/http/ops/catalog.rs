//! The public catalog: albums, one album with its tracks and renditions, cover art.

use http::{HeaderValue, Response, header};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{self, Body, json};
use crate::media::Rendition;
use crate::store::library::AlbumEntry;

fn cover_url(album: &AlbumEntry) -> serde_json::Value {
    match album.record.cover {
        Some(_) => serde_json::Value::String(format!("/v1/albums/{}/cover", album.record.album)),
        None => serde_json::Value::Null,
    }
}

fn summary(album: &AlbumEntry) -> serde_json::Value {
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
    })
}

/// `GET /v1/albums`.
pub fn list(app: &App) -> Response<Body> {
    let lib = app.library.load();
    let albums: Vec<_> = lib.albums.values().map(summary).collect();
    json(
        &serde_json::json!({ "albums": albums }),
        "public, max-age=30",
    )
}

/// `GET /v1/albums/{album}`.
pub fn get(app: &App, album: &str) -> Result<Response<Body>, ApiError> {
    let lib = app.library.load();
    let entry = lib
        .albums
        .get(album)
        .ok_or_else(|| ApiError::NotFound(format!("no album {album:?}")))?;
    let mut value = summary(entry);
    let tracks: Vec<_> = entry
        .tracks
        .values()
        .map(|t| {
            let renditions: Vec<_> = t
                .renditions
                .values()
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
            let preview = t.renditions.get(Rendition::Preview.as_str()).and_then(|m| m.preview);
            serde_json::json!({
                "number": t.record.track,
                "title": t.record.title,
                "artist": t.record.artist,
                "duration_seconds": t.record.source_samples as f64 / f64::from(t.record.source_sample_rate.max(1)),
                "renditions": renditions,
                "preview": preview.map(|p| serde_json::json!({"start_seconds": p.start_seconds, "seconds": p.seconds})),
            })
        })
        .collect();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("tracks".into(), serde_json::Value::Array(tracks));
    }
    Ok(json(&value, "public, max-age=30"))
}

/// `GET /v1/albums/{album}/cover`.
pub async fn cover(app: &App, album: &str) -> Result<Response<Body>, ApiError> {
    let (name, kind) = {
        let lib = app.library.load();
        let entry = lib
            .albums
            .get(album)
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
