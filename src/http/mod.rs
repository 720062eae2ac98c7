//! The HTTP edge: hyper 1 through hyper-util (HTTP/1.1 and h2c on one port, TLS with rustls
//! when configured), with the segment GETs that open a plain HTTP/1.1 connection framed by
//! [`express`] before hyper takes over. Only this module touches HTTP types; the rules live in
//! `license`, `store` and friends, and each operation is a file under `ops/`.

pub mod app;
pub mod auth;
pub mod express;
pub mod json_keys;
pub mod metrics;
pub mod ops;
pub mod problem;
#[cfg(test)]
mod proptests;
pub mod range;
pub mod respond;
pub mod rewind;
pub mod router;
pub mod sales_first;
pub mod sendfile;
pub mod server;
pub mod tls;

pub use app::{App, Limits};
pub use server::run;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use self::metrics::OutcomeLabels;
use self::ops::segment::{Answer, Conditions};
use self::problem::ApiError;
use self::respond::Body;
use self::router::{Endpoint, SEGMENT_ROUTE};
use crate::hls::HlsFile;
use crate::hls::playlist::Carry;
use crate::license::{
    Clock, Denied, Scope, SystemClock, TokenMemo, VerifiedToken, authorize_license,
    authorize_segment,
};
use crate::store::RenditionManifest;
use crate::store::library::ServedSegment;

/// Handles one request: route, run the operation under the deadline, map errors, count.
/// `memo` is the connection's memo of its last token.
pub async fn handle(
    app: Arc<App>,
    memo: Arc<TokenMemo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let hosts = req.headers().get_all(http::header::HOST).iter();
    if !host_is_acceptable(
        req.version() == http::Version::HTTP_11,
        hosts.map(http::HeaderValue::as_bytes),
    ) {
        let refused = Err(ApiError::BadRequest(HOST_REFUSED.to_owned()));
        return Ok(conclude(&app, BAD_HOST_ROUTE, started, Some(refused), None));
    }
    // Segment URLs resolve in one lookup, before the router parses anything.
    let served = match *req.method() {
        Method::GET | Method::HEAD => served_segment(&app, req.uri().path()),
        _ => None,
    };
    let (route, request_id, result) = match served {
        Some(seg) => {
            let token = auth::bearer(req.headers(), req.uri().query());
            let conditions = Conditions::from_headers(req.headers());
            let result = {
                let work = std::pin::pin!(segment(&app, &memo, seg, token.as_deref(), &conditions));
                within(app.limits.request_timeout, work).await
            };
            let result = result.map(|answer| answer.map(Answer::into_response));
            (SEGMENT_ROUTE, None, result)
        }
        None => {
            let endpoint = router::route(req.method(), req.uri().path());
            let route = endpoint.name();
            let request_id = request_id(req.headers(), &endpoint);
            // Boxed: every route's state would otherwise make each request's future (the
            // segment route's included) as large as the largest, and it is moved around.
            let result = {
                let mut work = Box::pin(dispatch(
                    &app,
                    endpoint,
                    req,
                    request_id.as_deref().unwrap_or(""),
                ));
                within(app.limits.request_timeout, work.as_mut()).await
            };
            (route, request_id, result)
        }
    };
    Ok(conclude(&app, route, started, result, request_id))
}

/// Route name (metrics label) of requests refused for their `Host` lines.
const BAD_HOST_ROUTE: &str = "bad_host";

/// The detail of that refusal.
const HOST_REFUSED: &str =
    "an HTTP/1.1 request needs exactly one Host header with a valid value (RFC 9112 §3.2)";

/// Whether a request's `Host` lines (`values`) are what RFC 9112 §3.2 requires: exactly one in
/// HTTP/1.1 (at most one in HTTP/1.0 and HTTP/2, where `:authority` may stand in), whose value
/// is empty or made only of what a `uri-host [":" port]` may hold (RFC 3986: unreserved,
/// sub-delims, `%`, and `[`, `]`, `:` for IP literals and the port), so no path, query,
/// userinfo or whitespace. Both hyper's path and the express lane ask this, on every request:
/// a table lookup per byte (`http::uri::Authority::try_from` copies the value into a new
/// buffer first, which cost the lane's head parsing ~40 % in `benches/segment_path.rs`).
pub(crate) fn host_is_acceptable<'v>(
    http11: bool,
    mut values: impl Iterator<Item = &'v [u8]>,
) -> bool {
    match (values.next(), values.next()) {
        (None, _) => !http11,
        (Some(value), None) => value.iter().all(|&b| HOST_BYTES[usize::from(b)]),
        (Some(_), Some(_)) => false,
    }
}

/// The bytes a `Host` value may contain (see [`host_is_acceptable`]).
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b':'
                    | b'['
                    | b']'
            );
        b += 1;
    }
    table
};

/// The answer to a request whose operation ended (or ran out of time): errors become
/// problem responses, CORS and the request id go on, and the request is counted.
fn conclude(
    app: &App,
    route: &'static str,
    started: Instant,
    result: Option<Result<Response<Body>, ApiError>>,
    request_id: Option<String>,
) -> Response<Body> {
    let mut resp = result
        .unwrap_or(Err(ApiError::Timeout))
        .unwrap_or_else(ApiError::into_response);
    respond::cors(resp.headers_mut());
    if let Some(id) = request_id
        && let Ok(v) = http::HeaderValue::from_str(&id)
    {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    count(app, route, resp.status(), started);
    resp
}

/// Counts a request in the metrics: by route and status, and its latency.
fn count(app: &App, route: &'static str, status: StatusCode, started: Instant) {
    app.metrics
        .record_request(route, status.as_u16(), started.elapsed().as_secs_f64());
}

/// Runs `work` for at most `limit`; `None` when it ran out of time. Work that finishes at its
/// first poll (a segment cache hit) never arms a timer, which would read the clock and
/// register with the timer wheel on every request. `work` comes pinned where its caller
/// made it: a segment request's future is over a kilobyte, and moving it in here showed as a
/// `memcpy` per request.
async fn within<F: Future + ?Sized>(
    limit: std::time::Duration,
    mut work: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Some(out),
        Poll::Pending => tokio::time::timeout(limit, work).await.ok(),
    }
}

/// The segment a `GET` or `HEAD` of `path` names, if the catalog serves it now.
fn served_segment(app: &App, path: &str) -> Option<ServedSegment> {
    app.library
        .load()
        .served_segment(path, || SystemClock.now_unix())
        .cloned()
}

/// The delivery path: the token (through the connection's memo), the entitlement, then the
/// sealed bytes from the segment cache. `token` is what [`auth::bearer`] found.
pub async fn segment(
    app: &App,
    memo: &TokenMemo,
    seg: ServedSegment,
    token: Option<&str>,
    conditions: &Conditions<'_>,
) -> Result<Answer, ApiError> {
    let token = auth::authenticate_on(app, memo, token)?;
    let m = &seg.manifest;
    let grant = authorize_segment(&token, &m.album, m.track, &m.rendition, &app.revocations)
        .inspect_err(|d| count_denial(app, d))?;
    ops::segment::get(app, &grant, seg, conditions).await
}

/// Header carrying the request id (the caller's, when it sent a sane one).
pub const REQUEST_ID: &str = "x-request-id";

/// The request id of a state-changing request: the caller's `X-Request-Id` when it is 1-64
/// of `A-Z a-z 0-9 - _ .`, else a fresh random one. Read-only requests get none: the hot
/// segment path stays free of the work.
fn request_id(headers: &http::HeaderMap, endpoint: &Endpoint) -> Option<String> {
    if !matches!(
        endpoint,
        Endpoint::CreatePurchase
            | Endpoint::RefundPurchase { .. }
            | Endpoint::CreatePlayToken
            | Endpoint::CreateLicense
            | Endpoint::DevSession
            | Endpoint::DevPurchase
            | Endpoint::AdminRotateSigning
            | Endpoint::AdminRevokeSigning { .. }
            | Endpoint::AdminRotateKek
            | Endpoint::AdminRotateContent
            | Endpoint::AdminMaintain
    ) {
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
async fn read_body(app: &App, req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    let limit = app.limits.max_body_bytes;
    let body = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
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

async fn dispatch(
    app: &Arc<App>,
    endpoint: Endpoint,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let query = req.uri().query().map(str::to_owned);
    let _sale = endpoint.is_sale().then(|| app.sales_first.begin());
    if endpoint.is_repeatable_read() {
        app.sales_first.yield_to_sales().await;
    }
    match endpoint {
        Endpoint::Health => Ok(ops::health::health()),
        Endpoint::Ready => ops::health::ready(app).await,
        Endpoint::Metrics => Ok(ops::health::metrics(app)),
        Endpoint::Jwks => Ok(ops::jwks::jwks(app)),
        Endpoint::ListAlbums => Ok(ops::catalog::list(app)),
        Endpoint::GetAlbum { album } => ops::catalog::get(app, &album),
        Endpoint::GetCover { album } => ops::catalog::cover(app, &album).await,
        Endpoint::CreateLicense => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let body = read_body(app, req).await?;
            ops::license::create(app, &token, &body)
        }
        Endpoint::CreatePurchase => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let body = read_body(app, req).await?;
            ops::purchase::create(app, &token, &body, request_id).await
        }
        Endpoint::RefundPurchase { order_id } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            // The body is not used, but still bounded.
            read_body(app, req).await?;
            ops::purchase::refund(app, &token, &order_id, request_id).await
        }
        Endpoint::CreatePlayToken => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let body = read_body(app, req).await?;
            ops::play_token::exchange(app, &token, &body, request_id).await
        }
        Endpoint::GetChart => ops::sales::chart(app, query.as_deref()).await,
        Endpoint::GetUserAlbums { user } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            ops::sales::user_albums(app, &token, &user).await
        }
        Endpoint::GetManifest {
            album,
            track,
            rendition,
        } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            // One catalog snapshot for the 404 check and the answer.
            let manifest = app
                .library
                .load()
                .manifest(&album, track, &rendition)
                .cloned()
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "no rendition {rendition:?} of track {track} in album {album:?}"
                    ))
                })?;
            let grant = authorize_segment(&token, &album, track, &rendition, &app.revocations)
                .inspect_err(|d| count_denial(app, d))?;
            Ok(ops::manifest::get(&manifest, &grant))
        }
        Endpoint::GetSegment {
            album,
            track,
            rendition,
            generation,
            file,
        } => {
            // `handle` serves every segment the catalog has; this one it does not (or no
            // longer) serve. The token is still checked first, as on every gated route.
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            match token.claims().scope {
                Scope::Play | Scope::Edge => {}
                Scope::Store | Scope::Admin | Scope::Account => {
                    return Err(ApiError::Denied(Denied::ScopeNotAllowed));
                }
            }
            Err(ApiError::NotFound(format!(
                "no segment {file:?} in {album}/{track}/{rendition}/{generation}"
            )))
        }
        Endpoint::AdminListKeys => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            ops::admin::list(app, &token).await
        }
        Endpoint::AdminRotateSigning => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            read_body(app, req).await?;
            ops::admin::rotate_signing(app, &token).await
        }
        Endpoint::AdminRevokeSigning { kid } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            read_body(app, req).await?;
            ops::admin::revoke_signing(app, &token, &kid).await
        }
        Endpoint::AdminRotateKek => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            read_body(app, req).await?;
            ops::admin::rotate_kek(app, &token).await
        }
        Endpoint::AdminRotateContent => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let body = read_body(app, req).await?;
            ops::admin::rotate_content(app, &token, &body).await
        }
        Endpoint::AdminMaintain => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            read_body(app, req).await?;
            ops::admin::maintain(app, &token).await
        }
        Endpoint::AdminJob { id } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            ops::admin::job(app, &token, id)
        }
        Endpoint::HlsTrackMaster { album, track } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let carry = carry(req.headers(), query.as_deref());
            let manifests: Vec<Arc<RenditionManifest>> = app
                .library
                .load()
                .albums
                .get(&album)
                .and_then(|a| a.tracks.get(&track))
                .ok_or_else(|| ApiError::NotFound(format!("no track {track} in album {album:?}")))?
                .renditions
                .values()
                .cloned()
                .collect();
            let entitled = variants(app, &token, manifests.into_iter().map(|m| vec![m]))?;
            let entitled: Vec<_> = entitled.into_iter().flatten().collect();
            Ok(ops::hls::track_master(&entitled, carry))
        }
        Endpoint::HlsTrackMedia {
            album,
            track,
            rendition,
        } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let carry = carry(req.headers(), query.as_deref());
            let manifest = app
                .library
                .load()
                .manifest(&album, track, &rendition)
                .cloned()
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "no rendition {rendition:?} of track {track} in album {album:?}"
                    ))
                })?;
            let entitled = entitle(app, &token, vec![manifest])?;
            Ok(ops::hls::media(&entitled, carry))
        }
        Endpoint::HlsAlbumMaster { album } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let carry = carry(req.headers(), query.as_deref());
            let per_rendition = album_renditions(app, &album, None)?;
            let entitled = variants(app, &token, per_rendition.into_iter())?;
            Ok(ops::hls::album_master(&album, &entitled, carry))
        }
        Endpoint::HlsAlbumMedia { album, rendition } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let carry = carry(req.headers(), query.as_deref());
            let tracks = album_renditions(app, &album, Some(&rendition))?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "album {album:?} has no rendition {rendition:?} in every track"
                    ))
                })?;
            let entitled = entitle(app, &token, tracks)?;
            Ok(ops::hls::media(&entitled, carry))
        }
        Endpoint::HlsFile {
            album,
            track,
            rendition,
            generation,
            file,
        } => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let not_found = || {
                ApiError::NotFound(format!(
                    "no HLS file {:?} in {album}/{track}/{rendition}/{generation}",
                    file.name()
                ))
            };
            // The current generation, or a retiring one players listed before a re-seal.
            let manifest = app
                .library
                .load()
                .manifest(&album, track, &rendition)
                .and_then(|m| m.for_generation(&generation, SystemClock.now_unix()))
                .map(Arc::new)
                .ok_or_else(not_found)?;
            if file == HlsFile::Key {
                let grant = authorize_license(
                    &token,
                    &album,
                    track,
                    &[rendition.as_str()],
                    &app.revocations,
                )
                .inspect_err(|d| count_denial(app, d))?;
                return ops::hls::key(app, &grant, &manifest);
            }
            let record = ops::hls::record_of(&manifest, file)
                .cloned()
                .ok_or_else(not_found)?;
            let path = app
                .store
                .segment_path(&manifest, &record)
                .map_err(|_| not_found())?;
            let grant = authorize_segment(&token, &album, track, &rendition, &app.revocations)
                .inspect_err(|d| count_denial(app, d))?;
            let seg = ops::hls::HlsSegmentRef {
                manifest,
                record,
                path,
            };
            ops::hls::segment(app, &grant, seg, req.headers()).await
        }
        Endpoint::WebAsset { file } => ops::web::asset(&file),
        Endpoint::DevStatus => ops::web::status(app),
        Endpoint::DevSession => {
            let body = read_body(app, req).await?;
            ops::web::session(app, &body, request_id)
        }
        Endpoint::DevPurchase => {
            let body = read_body(app, req).await?;
            ops::web::purchase(app, &body, request_id).await
        }
        Endpoint::Preflight => Ok(respond::preflight()),
        Endpoint::WrongMethod { allow } => Err(ApiError::MethodNotAllowed(allow)),
        // Whatever the method: 405 is for a resource that exists (RFC 9110 §15.5.6).
        Endpoint::NotFound => Err(ApiError::NotFound(format!(
            "nothing at {}",
            req.uri().path()
        ))),
    }
}

/// How HLS playlists carry the request's token: in every URI when it came as `access_token`.
fn carry<'a>(headers: &http::HeaderMap, query: Option<&'a str>) -> Carry<'a> {
    match auth::query_token(headers, query) {
        Some(t) => Carry::token(t),
        None => Carry::none(),
    }
}

/// Checks `token` against every manifest (tracks of one rendition): all granted, or the first
/// denial (counted).
fn entitle(
    app: &App,
    token: &VerifiedToken,
    manifests: Vec<Arc<RenditionManifest>>,
) -> Result<Vec<ops::hls::Entitled>, ApiError> {
    manifests
        .into_iter()
        .map(|m| {
            let grant = authorize_segment(token, &m.album, m.track, &m.rendition, &app.revocations)
                .inspect_err(|d| count_denial(app, d))?;
            Ok(ops::hls::Entitled { grant, manifest: m })
        })
        .collect()
}

/// The variants of a multivariant playlist: of `candidates` (per rendition, its manifests in
/// track order), those `token` may fetch in every track, narrowed by
/// [`crate::hls::variant_renditions`]. None at all: the first denial (counted), so a
/// non-buyer of a track without a preview hears why.
fn variants(
    app: &App,
    token: &VerifiedToken,
    candidates: impl Iterator<Item = Vec<Arc<RenditionManifest>>>,
) -> Result<Vec<Vec<ops::hls::Entitled>>, ApiError> {
    let mut granted = Vec::new();
    let mut denial: Option<Denied> = None;
    for tracks in candidates {
        let checked: Result<Vec<_>, Denied> = tracks
            .into_iter()
            .map(|m| {
                authorize_segment(token, &m.album, m.track, &m.rendition, &app.revocations)
                    .map(|grant| ops::hls::Entitled { grant, manifest: m })
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
    let keep: Vec<String> = crate::hls::variant_renditions(&names)
        .into_iter()
        .map(str::to_owned)
        .collect();
    granted.retain(|t| keep.iter().any(|k| k == t[0].grant.rendition()));
    if granted.is_empty() {
        let d = denial.unwrap_or(Denied::NotPurchased);
        count_denial(app, &d);
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
        .albums
        .get(album)
        .filter(|a| !a.tracks.is_empty())
        .ok_or_else(|| ApiError::NotFound(format!("no album {album:?}")))?;
    let mut names: Vec<&String> = entry
        .tracks
        .values()
        .next()
        .map(|t| t.renditions.keys().collect())
        .unwrap_or_default();
    names.retain(|n| only.is_none_or(|o| o == n.as_str()));
    Ok(names
        .into_iter()
        .filter_map(|name| {
            entry
                .tracks
                .values()
                .map(|t| t.renditions.get(name).cloned())
                .collect::<Option<Vec<_>>>()
        })
        .collect())
}

fn count_denial(app: &App, d: &crate::license::Denied) {
    app.metrics
        .denials
        .get_or_create(&OutcomeLabels {
            outcome: d.problem_type(),
        })
        .inc();
}
