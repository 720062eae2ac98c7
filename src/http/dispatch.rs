//! Runs a routed request: the one place that gives way to sales, authenticates the caller as
//! its route declares, reads a state-changing request's body, and hands each endpoint to its
//! operation in `ops/`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::app::App;
use super::auth;
use super::json_keys;
use super::ops;
use super::problem::ApiError;
use super::respond::{self, Body};
use super::router::Endpoint;
use crate::hls::playlist::Carry;

/// Header carrying the request id (the caller's, when it sent a sane one).
pub const REQUEST_ID: &str = "x-request-id";

/// Runs `endpoint` for `req`. `request_id` is empty for requests that change nothing.
pub(super) async fn dispatch(
    app: &Arc<App>,
    endpoint: Endpoint,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let _sale = endpoint.is_sale().then(|| app.sales_first.begin());
    if endpoint.is_repeatable_read() {
        app.sales_first.yield_to_sales().await;
    }
    let (head, incoming) = req.into_parts();
    let query = head.uri.query();
    let who = auth::caller(app, endpoint.authorization(), &head.headers, query)?;
    let body = if endpoint.changes_state() {
        read_body(app, incoming).await?
    } else {
        Bytes::new()
    };
    let playlist_carry = || carry(&head.headers, query);
    match endpoint {
        Endpoint::Health => Ok(ops::health::health()),
        Endpoint::Ready => ops::health::ready(app).await,
        Endpoint::Metrics => Ok(ops::health::metrics(app)),
        Endpoint::Jwks => Ok(ops::jwks::jwks(app)),
        Endpoint::ListAlbums => ops::catalog::list(app, query),
        Endpoint::GetAlbum { album } => ops::catalog::get(app, &album),
        Endpoint::GetCover { album } => ops::catalog::cover(app, &album).await,
        Endpoint::GetExtra { album, id } => ops::extras::get(app, who.token()?, &album, &id).await,
        Endpoint::CreateLicense => ops::license::create(app, who.token()?, &body),
        Endpoint::CreatePurchase => {
            ops::purchase::create(app, who.token()?, &body, request_id).await
        }
        Endpoint::RefundPurchase { order_id } => {
            ops::purchase::refund(app, who.token()?, &order_id, request_id).await
        }
        Endpoint::CreatePlayToken => {
            ops::play_token::exchange(app, who.token()?, &body, request_id).await
        }
        Endpoint::GetChart => ops::sales::chart(app, query).await,
        Endpoint::DeclineGift { order_id } => {
            ops::fans::decline(app, who.token()?, &order_id, request_id).await
        }
        Endpoint::GetUserGifts { user } => ops::fans::gifts(app, who.token()?, &user).await,
        Endpoint::CreateClub => ops::fans::create_club(app, who.token()?, &body).await,
        Endpoint::ListClubs => ops::fans::list_clubs(app, query).await,
        Endpoint::JoinClub { club } => ops::fans::membership(app, who.token()?, &club, true).await,
        Endpoint::LeaveClub { club } => {
            ops::fans::membership(app, who.token()?, &club, false).await
        }
        Endpoint::GetClubChart => ops::fans::club_chart(app, query).await,
        Endpoint::RegisterDevice => {
            ops::offline::register(app, who.token()?, &body, request_id).await
        }
        Endpoint::ListDevices => ops::offline::list(app, who.token()?).await,
        Endpoint::RemoveDevice { device } => {
            ops::offline::remove(app, who.token()?, &device, request_id).await
        }
        Endpoint::CreateOfflineLicense => {
            ops::offline::create_license(app, who.token()?, &body, request_id).await
        }
        Endpoint::EdgeAuthorize => ops::edge::authorize(app, &head.headers),
        Endpoint::GetUserAlbums { user } => ops::sales::user_albums(app, who.token()?, &user).await,
        Endpoint::GetManifest {
            album,
            track,
            rendition,
        } => ops::manifest::get(app, who.token()?, &album, track, &rendition),
        Endpoint::GetSegment {
            album,
            track,
            rendition,
            generation,
            file,
        } => ops::segment::not_served(who.token()?, &album, track, &rendition, &generation, &file),
        Endpoint::AdminListKeys => ops::admin::list(app, who.token()?).await,
        Endpoint::AdminRotateSigning => ops::admin::rotate_signing(app, who.token()?).await,
        Endpoint::AdminRevokeSigning { kid } => {
            ops::admin::revoke_signing(app, who.token()?, &kid).await
        }
        Endpoint::AdminRotateKek => ops::admin::rotate_kek(app, who.token()?).await,
        Endpoint::AdminRotateContent => ops::admin::rotate_content(app, who.token()?, &body).await,
        Endpoint::AdminMaintain => ops::admin::maintain(app, who.token()?).await,
        Endpoint::AdminJob { id } => ops::admin::job(app, who.token()?, id),
        Endpoint::HlsTrackMaster { album, track } => {
            ops::hls::track_master(app, who.token()?, &album, track, playlist_carry())
        }
        Endpoint::HlsTrackMedia {
            album,
            track,
            rendition,
        } => ops::hls::track_media(
            app,
            who.token()?,
            &album,
            track,
            &rendition,
            playlist_carry(),
        ),
        Endpoint::HlsAlbumMaster { album } => {
            ops::hls::album_master(app, who.token()?, &album, playlist_carry())
        }
        Endpoint::HlsAlbumMedia { album, rendition } => {
            ops::hls::album_media(app, who.token()?, &album, &rendition, playlist_carry())
        }
        Endpoint::HlsFile {
            album,
            track,
            rendition,
            generation,
            file,
        } => {
            let place = ops::hls::FilePlace {
                album: &album,
                track,
                rendition: &rendition,
                generation: &generation,
                file,
            };
            ops::hls::file(app, who.token()?, &place, &head.headers).await
        }
        Endpoint::Lyrics { album, track, form } => {
            ops::lyrics::get(app, who.token()?, &album, track, form, playlist_carry()).await
        }
        Endpoint::WebAsset { file } => ops::web::asset(&file),
        Endpoint::DevStatus => ops::web::status(app),
        Endpoint::DevSession => ops::web::session(app, &body, request_id),
        Endpoint::DevPurchase => ops::web::purchase(app, &body, request_id).await,
        Endpoint::Preflight => Ok(respond::preflight()),
        Endpoint::WrongMethod { allow } => Err(ApiError::MethodNotAllowed(allow)),
        // Whatever the method: 405 is for a resource that exists (RFC 9110 §15.5.6).
        Endpoint::NotFound => Err(ApiError::NotFound(format!(
            "nothing at {}",
            head.uri.path()
        ))),
    }
}

/// How HLS playlists carry the request's token: in every URI when it came as `access_token`.
fn carry<'a>(headers: &HeaderMap, query: Option<&'a str>) -> Carry<'a> {
    match auth::query_token(headers, query) {
        Some(t) => Carry::token(t),
        None => Carry::none(),
    }
}

/// The request id of a state-changing request: the caller's `X-Request-Id` when it is 1-64
/// of `A-Z a-z 0-9 - _ .`, else a fresh random one. Read-only requests get none: the hot
/// segment path stays free of the work.
pub(super) fn request_id(headers: &HeaderMap, endpoint: &Endpoint) -> Option<String> {
    if !endpoint.changes_state() {
        return None;
    }
    if let Some(given) = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok())
        && (1..=64).contains(&given.len())
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some(given.to_owned());
    }
    let mut raw = [0u8; 12];
    crate::seal::key::fill_random(&mut raw).ok()?;
    Some(hex::encode(raw))
}

/// Reads a POST body up to the configured limit; a JSON body that repeats a key within one
/// object is refused here, for every route.
async fn read_body(app: &App, body: Incoming) -> Result<Bytes, ApiError> {
    let limit = app.limits.max_body_bytes;
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })?;
    let body = body.to_bytes();
    if let Some(key) = json_keys::first_duplicate_key(&body) {
        return Err(ApiError::BadRequest(format!(
            "the JSON body has the key {key:?} more than once in one object; each key may \
             appear once"
        )));
    }
    Ok(body)
}
