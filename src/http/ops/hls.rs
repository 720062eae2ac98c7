//! HLS routes: multivariant and media playlists, the AES-128 key, and the HLS form of each
//! segment, made from the sealed store on the way out and kept in the segment cache. Each
//! operation takes grants that only the entitlement checks make: [`SegmentGrant`]s for
//! playlists and segments (as for sealed segments), a [`LicenseGrant`] for the key (as for
//! licenses: edges never get it).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::hls::playlist::{self, Carry, Session, Variant};
use crate::hls::{self, HlsError, HlsFile, HlsKey, KeyContext, SegmentPlace};
use crate::http::app::App;
use crate::http::ops::manifest;
use crate::http::ops::segment::{self, Conditions, Immutable};
use crate::http::problem::ApiError;
use crate::http::respond::{self, Body};
use crate::license::{
    Denied, LicenseGrant, SegmentGrant, VerifiedToken, authorize_license, authorize_segment,
};
use crate::media::Rendition;
use crate::seal::SegmentSlot;
use crate::store::backed::FileBacked;
use crate::store::cache::DeriveError;
use crate::store::{RenditionManifest, SegmentRecord};

/// `Content-Type` of playlists (RFC 8216 §4).
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// `Content-Type` of init and media segments: fMP4 audio.
static SEGMENT_TYPE: HeaderValue = HeaderValue::from_static("audio/mp4");
/// Playlists depend on the token (what it may play, and the token itself in their URIs with
/// a query token), so no cache may keep them.
const PLAYLIST_CACHE: &str = "private, no-store";

/// A rendition the token may fetch, with its manifest.
struct Entitled {
    /// The check's grant.
    grant: SegmentGrant,
    /// The rendition's manifest (of one catalog snapshot).
    manifest: Arc<RenditionManifest>,
}

fn playlist_response(text: String) -> Response<Body> {
    let mut resp = respond::text(StatusCode::OK, text, PLAYLIST_TYPE);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(PLAYLIST_CACHE),
    );
    resp
}

/// `GET .../tracks/{n}/master.m3u8`: the track's multivariant playlist, one variant per
/// rendition the token may fetch.
pub fn track_master(
    app: &App,
    token: &VerifiedToken,
    album: &str,
    track: u32,
    carry: Carry<'_>,
) -> Result<Response<Body>, ApiError> {
    let manifests: Vec<Arc<RenditionManifest>> =
        app.library
            .load()
            .track_manifests(album, track)
            .ok_or_else(|| ApiError::NotFound(format!("no track {track} in album {album:?}")))?;
    let entitled = variants(app, token, manifests.into_iter().map(|m| vec![m]))?;
    let entitled: Vec<_> = entitled.into_iter().flatten().collect();
    let session = session(app, album, Some(track), &entitled);
    Ok(track_master_of(&entitled, &session, carry))
}

/// `GET .../tracks/{n}/{rendition}/index.m3u8`: one track's media playlist.
pub fn track_media(
    app: &App,
    token: &VerifiedToken,
    album: &str,
    track: u32,
    rendition: &str,
    carry: Carry<'_>,
) -> Result<Response<Body>, ApiError> {
    let manifest = manifest::lookup(app, album, track, rendition)?;
    let entitled = entitle(app, token, vec![manifest])?;
    Ok(media(&entitled, carry))
}

/// `GET /v1/albums/{album}/master.m3u8`: the album's multivariant playlist, one variant per
/// rendition every track has and the token may fetch in every track.
pub fn album_master(
    app: &App,
    token: &VerifiedToken,
    album: &str,
    carry: Carry<'_>,
) -> Result<Response<Body>, ApiError> {
    let per_rendition = album_renditions(app, album, None)?;
    let entitled = variants(app, token, per_rendition.into_iter())?;
    let session = session(app, album, None, &[]);
    Ok(album_master_of(album, &entitled, &session, carry))
}

/// `GET /v1/albums/{album}/{rendition}/index.m3u8`: every track's media playlist of one
/// rendition, one after another.
pub fn album_media(
    app: &App,
    token: &VerifiedToken,
    album: &str,
    rendition: &str,
    carry: Carry<'_>,
) -> Result<Response<Body>, ApiError> {
    let tracks = album_renditions(app, album, Some(rendition))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "album {album:?} has no rendition {rendition:?} in every track"
            ))
        })?;
    let entitled = entitle(app, token, tracks)?;
    Ok(media(&entitled, carry))
}

/// Where an HLS file is: the path of `GET .../{rendition}/hls/{generation}/{file}`.
#[derive(Debug, Clone, Copy)]
pub struct FilePlace<'a> {
    /// Album id.
    pub album: &'a str,
    /// Track number.
    pub track: u32,
    /// Rendition name.
    pub rendition: &'a str,
    /// Packaging generation.
    pub generation: &'a str,
    /// Which file.
    pub file: HlsFile,
}

/// `GET .../hls/{generation}/{file}`: the rendition's key for a license holder, or an init or
/// media segment for a token entitled to its segments. The generation is the current one,
/// or a retiring one that players listed before a re-seal.
pub async fn file(
    app: &App,
    token: &VerifiedToken,
    place: &FilePlace<'_>,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let &FilePlace {
        album,
        track,
        rendition,
        generation,
        file,
    } = place;
    let not_found = || {
        ApiError::NotFound(format!(
            "no HLS file {:?} in {album}/{track}/{rendition}/{generation}",
            file.name()
        ))
    };
    let manifest = app
        .library
        .load()
        .manifest(album, track, rendition)
        .and_then(|m| m.for_generation(generation, app.now()))
        .map(Arc::new)
        .ok_or_else(not_found)?;
    if file == HlsFile::Key {
        let grant = authorize_license(token, album, track, &[rendition], &app.revocations)
            .inspect_err(|d| app.metrics.count_denial(d))?;
        return key(app, &grant, &manifest);
    }
    let record = record_of(&manifest, file).cloned().ok_or_else(not_found)?;
    let path = app
        .store
        .segment_path(&manifest, &record)
        .map_err(|_| not_found())?;
    let grant = authorize_segment(token, album, track, rendition, &app.revocations)
        .inspect_err(|d| app.metrics.count_denial(d))?;
    let seg = HlsSegmentRef {
        manifest,
        record,
        path,
    };
    segment(app, &grant, seg, headers).await
}

/// Checks `token` against every manifest (tracks of one rendition): all granted, or the first
/// denial (counted).
fn entitle(
    app: &App,
    token: &VerifiedToken,
    manifests: Vec<Arc<RenditionManifest>>,
) -> Result<Vec<Entitled>, ApiError> {
    manifests
        .into_iter()
        .map(|m| {
            let grant = authorize_segment(token, &m.album, m.track, &m.rendition, &app.revocations)
                .inspect_err(|d| app.metrics.count_denial(d))?;
            Ok(Entitled { grant, manifest: m })
        })
        .collect()
}

/// The variants of a multivariant playlist: of `candidates` (per rendition, its manifests in
/// track order), those `token` may fetch in every track, narrowed by
/// [`hls::variant_renditions`]. None at all: the first denial (counted), so a non-buyer of a
/// track without a preview hears why.
fn variants(
    app: &App,
    token: &VerifiedToken,
    candidates: impl Iterator<Item = Vec<Arc<RenditionManifest>>>,
) -> Result<Vec<Vec<Entitled>>, ApiError> {
    let mut granted = Vec::new();
    let mut denial: Option<Denied> = None;
    for tracks in candidates {
        let checked: Result<Vec<_>, Denied> = tracks
            .into_iter()
            .map(|m| {
                authorize_segment(token, &m.album, m.track, &m.rendition, &app.revocations)
                    .map(|grant| Entitled { grant, manifest: m })
            })
            .collect();
        match checked {
            Ok(t) if !t.is_empty() => granted.push(t),
            Ok(_) => {}
            Err(d) => {
                denial.get_or_insert(d);
            }
        }
    }
    let names: Vec<&str> = granted.iter().map(|t| t[0].grant.rendition()).collect();
    let keep: Vec<String> = hls::variant_renditions(&names)
        .into_iter()
        .map(str::to_owned)
        .collect();
    granted.retain(|t| keep.iter().any(|k| k == t[0].grant.rendition()));
    if granted.is_empty() {
        let d = denial.unwrap_or(Denied::NotPurchased);
        app.metrics.count_denial(&d);
        return Err(ApiError::Denied(d));
    }
    Ok(granted)
}

/// An album's renditions that every one of its tracks has (only `only`, if given), each with
/// its manifests in track order. 404 when the album has no tracks.
fn album_renditions(
    app: &App,
    album: &str,
    only: Option<&str>,
) -> Result<Vec<Vec<Arc<RenditionManifest>>>, ApiError> {
    let lib = app.library.load();
    let entry = lib
        .album(album)
        .filter(|a| !a.tracks.is_empty())
        .ok_or_else(|| ApiError::NotFound(format!("no album {album:?}")))?;
    let mut names: Vec<&str> = entry
        .tracks
        .keys()
        .next()
        .and_then(|&n| entry.rendition_names(n))
        .unwrap_or_default();
    names.retain(|n| only.is_none_or(|o| o == *n));
    Ok(names
        .into_iter()
        .filter_map(|name| {
            entry
                .tracks
                .keys()
                .map(|&n| lib.manifest(album, n, name))
                .collect::<Option<Vec<_>>>()
        })
        .collect())
}

/// A track's multivariant playlist: one variant per rendition in `entitled` (already narrowed
/// with [`hls::variant_renditions`]).
fn track_master_of(entitled: &[Entitled], session: &Session, carry: Carry<'_>) -> Response<Body> {
    let variants: Vec<Variant<'_>> = entitled
        .iter()
        .map(|e| Variant {
            tracks: vec![&*e.manifest],
            path: playlist::track_media_path(e.grant.album(), e.grant.track(), e.grant.rendition()),
        })
        .collect();
    playlist_response(playlist::multivariant(&variants, session, carry))
}

/// What a multivariant playlist says beside its variants: the loudness gains as
/// `EXT-X-SESSION-DATA` (a track's playlist: track and album; an album's: album only, since
/// its tracks differ), and a track's synced lyrics as a subtitles rendition when the
/// variants are full renditions (the lyrics' times are the whole track's, not the preview
/// clip's).
fn session(app: &App, album: &str, track: Option<u32>, entitled: &[Entitled]) -> Session {
    use playlist::data_id;
    let lib = app.library.load();
    let Some(entry) = lib.album(album) else {
        return Session::default();
    };
    let mut session = Session::default();
    let record = track.and_then(|n| entry.tracks.get(&n));
    if let Some(l) = record.and_then(|t| t.loudness) {
        session
            .data
            .push((data_id::TRACK_GAIN, format!("{:.2}", l.gain_db)));
        session
            .data
            .push((data_id::TRACK_PEAK, format!("{:.6}", l.true_peak)));
    }
    if let Some(l) = entry.record.loudness {
        session
            .data
            .push((data_id::ALBUM_GAIN, format!("{:.2}", l.gain_db)));
        session
            .data
            .push((data_id::ALBUM_PEAK, format!("{:.6}", l.true_peak)));
    }
    if !session.data.is_empty() {
        session.data.push((
            data_id::REFERENCE,
            format!("{:.1}", crate::media::loudness::REFERENCE_LUFS),
        ));
    }
    let full = entitled
        .iter()
        .any(|e| !Rendition::names_preview(e.grant.rendition()));
    if let (Some(t), true) = (record, full)
        && t.lyrics.is_some_and(|l| l.synced)
    {
        session.subtitles = Some(playlist::lyrics_media_path(album, t.track));
    }
    session
}

/// An album's multivariant playlist: per rendition, every track's entitlement (in track
/// order).
fn album_master_of(
    album: &str,
    per_rendition: &[Vec<Entitled>],
    session: &Session,
    carry: Carry<'_>,
) -> Response<Body> {
    let variants: Vec<Variant<'_>> = per_rendition
        .iter()
        .filter_map(|tracks| {
            let first = tracks.first()?;
            Some(Variant {
                tracks: tracks.iter().map(|e| &*e.manifest).collect(),
                path: playlist::album_media_path(album, first.grant.rendition()),
            })
        })
        .collect();
    playlist_response(playlist::multivariant(&variants, session, carry))
}

/// A media playlist of the granted rendition of one track, or of every track of an album.
fn media(tracks: &[Entitled], carry: Carry<'_>) -> Response<Body> {
    let manifests: Vec<&RenditionManifest> = tracks.iter().map(|e| &*e.manifest).collect();
    playlist_response(playlist::media(&manifests, carry))
}

/// A stored segment resolved for an HLS request.
struct HlsSegmentRef {
    /// The rendition's manifest.
    manifest: Arc<RenditionManifest>,
    /// The segment's record (init or media).
    record: SegmentRecord,
    /// The sealed file on disk.
    path: std::path::PathBuf,
}

/// The HLS form of a granted segment: the init segment in the clear, a media segment
/// AES-128-CBC encrypted. Built from the sealed file on a miss (on a blocking thread: it
/// opens and encrypts the whole segment), then served from the segment cache.
async fn segment(
    app: &App,
    grant: &SegmentGrant,
    seg: HlsSegmentRef,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    // The HLS bytes are a function of the sealed bytes, so the sealed hash names them; the
    // prefix keeps the two forms' validators apart.
    let etag = HeaderValue::from_str(&format!("\"hls-{}\"", seg.record.sha256))
        .map_err(|_| ApiError::Internal("an HLS segment's ETag is not a header value".into()))?;
    let immutable = Immutable {
        etag,
        cache_control: segment::immutable_cache_control(grant.audience()),
        vary: segment::immutable_vary(grant.audience()),
        content_type: &SEGMENT_TYPE,
    };
    let keyring = Arc::clone(&app.keys().keyring);
    let sha256 = seg
        .record
        .digest()
        .ok_or_else(|| ApiError::Internal(format!("segment {} has no SHA-256", seg.record.file)))?;
    let HlsSegmentRef {
        manifest,
        record,
        path,
    } = seg;
    segment::serve(
        &immutable,
        &Conditions::from_headers(headers),
        || async move {
            let built = app
                .segments
                .get_derived(path, sha256, move |sealed: Bytes| async move {
                    tokio::task::spawn_blocking(move || {
                        let content = hls::content_key_for(&keyring, &manifest)?;
                        let slot = match record.index {
                            0 => SegmentSlot::Init,
                            n => SegmentSlot::Media(n),
                        };
                        let place = SegmentPlace {
                            album: &manifest.album,
                            track: manifest.track,
                            rendition: &manifest.rendition,
                            generation: &manifest.generation,
                            slot,
                        };
                        hls::build_segment(&content, &place, Vec::from(sealed)).map(Bytes::from)
                    })
                    .await
                    .map_err(|e| HlsError::Task(e.to_string()))?
                })
                .await;
            built.map(FileBacked::in_memory).map_err(|e| match e {
                DeriveError::Load(e) if e.not_found => {
                    ApiError::NotFound("segment file missing from the store".into())
                }
                DeriveError::Load(e) if e.unavailable => {
                    ApiError::StoreUnavailable("the segment's store cannot be reached".into())
                }
                DeriveError::Load(e) => ApiError::Internal(e.to_string()),
                DeriveError::Build(e) => ApiError::from(e),
            })
        },
    )
    .await
    .map(|answer| {
        let bytes = answer.body.bytes().len() as u64;
        app.metrics.count_segment(grant.audience(), bytes);
        answer.into_response()
    })
}

/// The 16-byte HLS key of the granted rendition (`m`), for a holder of a license grant that
/// covers it. Never stored by any cache.
fn key(app: &App, grant: &LicenseGrant, m: &RenditionManifest) -> Result<Response<Body>, ApiError> {
    if !grant.renditions().contains(&m.rendition) {
        // authorize_license was asked for exactly this rendition; a grant without it means
        // the caller mixed up its arguments, and a key must never leave on a guess.
        return Err(ApiError::Internal(format!(
            "license grant for {}/{} does not cover {}",
            grant.album(),
            grant.track(),
            m.rendition
        )));
    }
    let content = hls::content_key_for(&app.keys().keyring, m)?;
    let key = HlsKey::derive(
        &content,
        &KeyContext {
            album: &m.album,
            track: m.track,
            rendition: &m.rendition,
        },
    )?;
    let mut resp = Response::new(http_body_util::Full::new(Bytes::copy_from_slice(
        key.expose_bytes(),
    )));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

/// The record of `file` in `m`, if `m` has it (keys have none).
fn record_of(m: &RenditionManifest, file: HlsFile) -> Option<&SegmentRecord> {
    match file {
        HlsFile::Init => Some(&m.init),
        HlsFile::Media(n) => m.segments.iter().find(|s| s.index == n),
        HlsFile::Key => None,
    }
}
