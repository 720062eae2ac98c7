//! `GET .../tracks/{n}/lyrics[/index.m3u8|/lyrics.vtt]`: a track's lyrics, as JSON lines or
//! as the HLS subtitles rendition, for whoever may hear the track's preview.

use http::{StatusCode, header};

use crate::hls::playlist::{self, Carry};
use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{self, Body};
use crate::http::router::LyricsForm;
use crate::license::{VerifiedToken, authorize_segment};
use crate::media::Rendition;

/// Lyrics change only when an `.lrc` is edited and ingested again; a player's copy may lag
/// that by a minute. `private`: the answer depends on the token's check.
const LYRICS_CACHE: &str = "private, max-age=60";

/// Answers the lyrics of `track` in `form`. 404 before the entitlement check, as for
/// manifests (the public catalog already says which tracks have lyrics). The check is the
/// preview's: any `play` token, buyer or not (lyrics are text a store shows beside the
/// preview too), never an unauthenticated caller (they are a publisher's licensed text, not
/// catalog metadata to hand to scrapers).
pub async fn get(
    app: &App,
    token: &VerifiedToken,
    album: &str,
    track: u32,
    form: LyricsForm,
    carry: Carry<'_>,
) -> Result<Response, ApiError> {
    let (summary, seconds) = {
        let lib = app.library.load();
        let entry = lib
            .album(album)
            .ok_or_else(|| ApiError::NotFound(format!("no album {album:?}")))?;
        let t = entry
            .tracks
            .get(&track)
            .ok_or_else(|| ApiError::NotFound(format!("no track {track} in album {album:?}")))?;
        (
            t.lyrics,
            t.source_samples as f64 / f64::from(t.source_sample_rate.max(1)),
        )
    };
    let summary = summary.ok_or_else(|| {
        ApiError::NotFound(format!("track {track} of album {album:?} has no lyrics"))
    })?;
    authorize_segment(
        token,
        album,
        track,
        Rendition::Preview.as_str(),
        &app.revocations,
    )
    .inspect_err(|d| app.metrics.count_denial(d))?;
    if form != LyricsForm::JsonLines && !summary.synced {
        return Err(ApiError::NotFound(format!(
            "the lyrics of track {track} of album {album:?} are unsynced: no subtitles"
        )));
    }
    if form == LyricsForm::Playlist {
        let text = playlist::lyrics_media(album, track, seconds, carry);
        let mut resp = answer(text, "application/vnd.apple.mpegurl");
        // It may carry the token in its URI, like every playlist (ops::hls).
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            http::HeaderValue::from_static("private, no-store"),
        );
        return Ok(resp);
    }
    let store = app.store.clone();
    let owned = album.to_owned();
    let lyrics = tokio::task::spawn_blocking(move || store.read_lyrics(&owned, track))
        .await
        .map_err(|e| ApiError::Internal(format!("lyrics reader: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?
        // Listed in the track's record but not on disk: the store changed under us.
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "the lyrics of track {track} are not on this origin"
            ))
        })?;
    match form {
        LyricsForm::JsonLines => {
            let mut body = String::new();
            for line in &lyrics.lines {
                body.push_str(
                    &serde_json::json!({"t_ms": line.t_ms, "text": line.text}).to_string(),
                );
                body.push('\n');
            }
            Ok(answer(body, "application/jsonl; charset=utf-8"))
        }
        LyricsForm::WebVtt | LyricsForm::Playlist => {
            let end_ms = (seconds * 1000.0).round() as u64;
            let vtt = lyrics.webvtt(end_ms).ok_or_else(|| {
                ApiError::NotFound(format!("the lyrics of track {track} are unsynced"))
            })?;
            Ok(answer(vtt, "text/vtt; charset=utf-8"))
        }
    }
}

type Response = http::Response<Body>;

fn answer(body: String, content_type: &'static str) -> Response {
    respond::with_headers(
        StatusCode::OK,
        body,
        &[
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, LYRICS_CACHE),
        ],
    )
}
