//! Sealed segments: the hot path. Takes a [`SegmentGrant`], which only the entitlement check
//! can make, so a handler that forgot the check would not compile.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::range::{self, RangeAnswer};
use crate::http::respond::Body;
use crate::license::{Audience, SegmentGrant};
use crate::store::library::ServedSegment;

/// Serves the granted segment with validators, ranges and cache headers.
pub async fn get(
    app: &App,
    grant: &SegmentGrant,
    seg: ServedSegment,
    conditions: &Conditions<'_>,
) -> Result<Response<Body>, ApiError> {
    let etag = HeaderValue::from_maybe_shared(seg.etag)
        .map_err(|_| ApiError::Internal("a segment's ETag is not a header value".into()))?;
    let immutable = Immutable {
        etag,
        cache_control: immutable_cache_control(grant.audience()),
        content_type: "application/octet-stream",
    };
    serve(&immutable, conditions, || async {
        app.segments.get(seg.path).await.map_err(|e| {
            if e.not_found {
                ApiError::NotFound("segment file missing from the store".into())
            } else {
                ApiError::Internal(e.to_string())
            }
        })
    })
    .await
}

/// `Cache-Control` of bytes behind an immutable URL, by who fetches them.
pub(crate) fn immutable_cache_control(audience: Audience) -> &'static str {
    match audience {
        Audience::Edge => "public, max-age=31536000, immutable",
        Audience::Player => "private, max-age=31536000, immutable",
    }
}

/// The request headers that shape an answer for immutable bytes, each only when it is
/// visible ASCII (what `HeaderValue::to_str` accepts; anything else counts as absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

impl<'a> Conditions<'a> {
    /// The conditions of a request hyper parsed (the first value of each header).
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Conditions {
            if_none_match: get(header::IF_NONE_MATCH),
            range: get(header::RANGE),
            if_range: get(header::IF_RANGE),
        }
    }
}

/// How to answer for bytes behind an immutable URL.
pub(crate) struct Immutable {
    /// Strong validator, quoted.
    pub etag: HeaderValue,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
}

/// Answers for immutable bytes: `If-None-Match` (304 without loading them), a single
/// `Range` (206/416, honouring `If-Range`), validators and cache headers; `load` runs only
/// when the body is needed.
pub(crate) async fn serve<F, Fut>(
    im: &Immutable,
    conditions: &Conditions<'_>,
    load: F,
) -> Result<Response<Body>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Bytes, ApiError>>,
{
    // Validators compare as bytes: an ETag is visible ASCII by construction.
    let etag = im.etag.as_bytes();
    let common = |h: &mut HeaderMap| {
        // Room for these, Content-Type and CORS: no regrowth while they go in.
        h.reserve(10);
        h.insert(header::ETAG, im.etag.clone());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(im.cache_control),
        );
        h.insert(header::VARY, HeaderValue::from_static("Authorization"));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    };
    if let Some(inm) = conditions.if_none_match
        && inm.split(',').any(|t| {
            let t = t.trim().as_bytes();
            t == b"*" || t == etag || t.strip_prefix(b"W/") == Some(etag)
        })
    {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        common(resp.headers_mut());
        return Ok(resp);
    }
    let bytes = load().await?;
    let len = bytes.len() as u64;
    // A stale If-Range means the client's partial copy is of other bytes: send everything.
    let if_range_ok = conditions
        .if_range
        .is_none_or(|v| v.trim().as_bytes() == etag);
    let answer = if if_range_ok {
        range::answer(conditions.range, len)
    } else {
        RangeAnswer::Whole
    };
    let mut resp = match answer {
        RangeAnswer::Whole => Response::new(Full::new(bytes)),
        RangeAnswer::Partial { start, end } => {
            let mut r = Response::new(Full::new(bytes.slice(start as usize..=end as usize)));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        RangeAnswer::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable(len)),
    };
    let h = resp.headers_mut();
    common(h);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(im.content_type),
    );
    Ok(resp)
}
