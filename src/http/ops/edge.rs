//! `GET /v1/edge/authorize`: the check a CDN edge (nginx's `auth_request`) makes before it
//! answers a player, from the player's token and the URL it asked for alone: no body, no
//! store access, and an answer the edge may keep for a bounded time (docs/EDGE.md).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

use crate::hls::HlsFile;
use crate::http::app::App;
use crate::http::auth;
use crate::http::problem::ApiError;
use crate::http::respond::Body;
use crate::http::router::{self, Endpoint};
use crate::license::{EdgeCheck, TokenError, authorize_edge, edge_check_lifetime};

/// The player's request target (path and query) as the edge received it.
pub const ORIGINAL_URI: &str = "x-original-uri";
/// How many seconds the edge keeps the answers to its checks (`--auth-ttl`).
pub const EDGE_TTL: &str = "x-encore-edge-ttl";
/// The problem `type` name of a refusal, for the edge's own problem answer (the answer to
/// the edge has no body).
pub const PROBLEM: &str = "x-encore-problem";

/// Answers the edge: 204 (the player may have it), 401 (no usable token) or 403 (a valid
/// token without the entitlement), each with no body and with how long the edge may keep it
/// (`X-Accel-Expires` for nginx, `Cache-Control: max-age` for others). A request that names
/// nothing an edge checks is a 400: the edge's configuration is wrong, and nothing is let
/// through on a guess.
pub fn authorize(app: &App, headers: &HeaderMap) -> Result<Response<Body>, ApiError> {
    let original = headers
        .get(ORIGINAL_URI)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!("an edge check needs the {ORIGINAL_URI} header"))
        })?;
    let (path, query) = match original.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (original, None),
    };
    let endpoint = router::route(&Method::GET, path);
    let check = edge_check(&endpoint)
        .ok_or_else(|| ApiError::BadRequest(format!("{path:?} is not a URL an edge checks")))?;
    // An edge that does not say how long it keeps answers keeps none.
    let edge_ttl = headers
        .get(EDGE_TTL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let now = app.now();
    let token = match auth::authenticate_token(app, auth::bearer(headers, query).as_deref()) {
        Ok(token) => token,
        Err(e) => {
            let lifetime = match &e {
                // Valid later: keeping the refusal could refuse it then.
                ApiError::Token(TokenError::NotYetValid | TokenError::KeyUnusable) => 0,
                _ => edge_ttl.min(crate::license::EDGE_CHECK_TTL_MAX),
            };
            return Ok(refusal(e, lifetime));
        }
    };
    let lifetime = edge_check_lifetime(token.claims().exp, now, edge_ttl);
    match authorize_edge(&token, check, &app.revocations) {
        Ok(()) => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            keep_for(resp.headers_mut(), lifetime);
            Ok(resp)
        }
        Err(denied) => {
            app.metrics.count_denial(&denied);
            Ok(refusal(ApiError::Denied(denied), lifetime))
        }
    }
}

/// What the edge checks for a player's request to `endpoint`; `None` for anything it passes
/// to the origin unchecked (licenses and HLS keys are always answered by the origin) or
/// does not serve.
fn edge_check(endpoint: &Endpoint) -> Option<EdgeCheck<'_>> {
    match endpoint {
        Endpoint::GetSegment {
            album, rendition, ..
        }
        | Endpoint::GetManifest {
            album, rendition, ..
        }
        | Endpoint::HlsTrackMedia {
            album, rendition, ..
        }
        | Endpoint::HlsAlbumMedia { album, rendition }
        | Endpoint::HlsFile {
            album,
            rendition,
            file: HlsFile::Init | HlsFile::Media(_),
            ..
        } => Some(EdgeCheck::Rendition { album, rendition }),
        Endpoint::HlsTrackMaster { .. } | Endpoint::HlsAlbumMaster { .. } => {
            Some(EdgeCheck::Playlists)
        }
        _ => None,
    }
}

/// A 401 or 403 with no body: the problem's status, its `WWW-Authenticate`, its type in
/// [`PROBLEM`], kept `lifetime` seconds.
fn refusal(e: ApiError, lifetime: u64) -> Response<Body> {
    let name = match &e {
        ApiError::TokenMissing => "token-missing",
        ApiError::Token(t) => t.problem_type(),
        ApiError::Denied(d) => d.problem_type(),
        _ => "internal",
    };
    let mut resp = e.into_response();
    *resp.body_mut() = Full::new(Bytes::new());
    let h = resp.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(PROBLEM, HeaderValue::from_static(name));
    keep_for(h, lifetime);
    resp
}

/// How long the edge may keep the answer: `X-Accel-Expires` (nginx, seconds from when it
/// stores the answer; 0 = not at all) and `Cache-Control` for any other cache that honours
/// it per token. `private`: a cache keyed by URL alone must not keep it.
fn keep_for(h: &mut HeaderMap, lifetime: u64) {
    let accel = HeaderValue::from(lifetime);
    h.insert("x-accel-expires", accel);
    let cc = if lifetime == 0 {
        HeaderValue::from_static("no-store")
    } else {
        HeaderValue::from_str(&format!("private, max-age={lifetime}"))
            .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
    };
    h.insert(header::CACHE_CONTROL, cc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_edge_checks() {
        let check =
            |path: &str| edge_check(&router::route(&Method::GET, path)).map(|c| format!("{c:?}"));
        let rendition = Some("Rendition { album: \"a\", rendition: \"lossless\" }".to_string());
        assert_eq!(
            check("/v1/albums/a/tracks/2/lossless/g00/0001.enc"),
            rendition
        );
        assert_eq!(check("/v1/albums/a/tracks/2/lossless/manifest"), rendition);
        assert_eq!(
            check("/v1/albums/a/tracks/2/lossless/index.m3u8"),
            rendition
        );
        assert_eq!(check("/v1/albums/a/lossless/index.m3u8"), rendition);
        assert_eq!(
            check("/v1/albums/a/tracks/2/lossless/hls/g00/0003.mp4"),
            rendition
        );
        assert_eq!(
            check("/v1/albums/a/tracks/2/lossless/hls/g00/init.mp4"),
            rendition
        );
        let playlists = Some("Playlists".to_string());
        assert_eq!(check("/v1/albums/a/tracks/2/master.m3u8"), playlists);
        assert_eq!(check("/v1/albums/a/master.m3u8"), playlists);
        // Keys and licenses are the origin's to answer; the rest is not gated at all.
        for path in [
            "/v1/albums/a/tracks/2/lossless/hls/g00/key",
            "/v1/licenses",
            "/v1/albums",
            "/metrics",
            "/v1/albums/a/tracks/0/lossless/manifest",
        ] {
            assert_eq!(check(path), None, "{path}");
        }
    }

    #[test]
    fn answers_say_how_long_to_keep_them() {
        let mut h = HeaderMap::new();
        keep_for(&mut h, 10);
        assert_eq!(h["x-accel-expires"], "10");
        assert_eq!(h[header::CACHE_CONTROL], "private, max-age=10");
        keep_for(&mut h, 0);
        assert_eq!(h["x-accel-expires"], "0");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
}
