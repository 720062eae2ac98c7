//! Sealed segments: the hot path. Takes a [`SegmentGrant`], which only the entitlement check
//! can make, so a handler that forgot the check would not compile.

use std::future::Future;

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::range::{self, RangeAnswer};
use crate::http::respond::{self, Body};
use crate::license::{Audience, Denied, Scope, SegmentGrant, VerifiedToken};
use crate::store::backed::FileBacked;
use crate::store::library::ServedSegment;

/// Serves the granted segment with validators, ranges and cache headers.
pub async fn get(
    app: &App,
    grant: &SegmentGrant,
    seg: ServedSegment,
    conditions: &Conditions<'_>,
) -> Result<Answer, ApiError> {
    let etag = HeaderValue::from_maybe_shared(seg.etag)
        .map_err(|_| ApiError::Internal("a segment's ETag is not a header value".into()))?;
    let immutable = Immutable {
        etag,
        cache_control: immutable_cache_control(grant.audience()),
        vary: immutable_vary(grant.audience()),
        content_type: &SEALED_TYPE,
    };
    serve(&immutable, conditions, || async {
        app.segments
            .get_checked(seg.path, seg.sha256)
            .await
            .map_err(|e| {
                if e.not_found {
                    ApiError::NotFound("segment file missing from the store".into())
                } else if e.unavailable {
                    // The cause (a bucket URL, a network error) goes to the log only.
                    ApiError::StoreUnavailable("the segment's store cannot be reached".into())
                } else {
                    // A corrupt file included: a 500 that no cache keeps, never the bytes.
                    ApiError::Internal(e.to_string())
                }
            })
    })
    .await
}

/// A segment URL the catalog does not (or no longer) serve: `handle` serves every one it
/// does before routing. The token's scope is still checked first, as on every gated route,
/// so only a caller that may fetch segments hears that this one does not exist.
pub fn not_served(
    token: &VerifiedToken,
    album: &str,
    track: u32,
    rendition: &str,
    generation: &str,
    file: &str,
) -> Result<Response<Body>, ApiError> {
    match token.claims().scope {
        Scope::Play | Scope::Edge => Err(ApiError::NotFound(format!(
            "no segment {file:?} in {album}/{track}/{rendition}/{generation}"
        ))),
        Scope::Store | Scope::Admin | Scope::Account => {
            Err(ApiError::Denied(Denied::ScopeNotAllowed))
        }
    }
}

static SEALED_TYPE: HeaderValue = HeaderValue::from_static("application/octet-stream");
static EDGE_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
static PLAYER_CACHE: HeaderValue = HeaderValue::from_static("private, max-age=31536000, immutable");
static VARY_AUTHORIZATION: HeaderValue = HeaderValue::from_static("Authorization");
static ACCEPT_BYTES: HeaderValue = HeaderValue::from_static("bytes");

/// `Cache-Control` of bytes behind an immutable URL, by who fetches them.
pub(crate) fn immutable_cache_control(audience: Audience) -> &'static HeaderValue {
    match audience {
        Audience::Edge => &EDGE_CACHE,
        Audience::Player => &PLAYER_CACHE,
    }
}

/// `Vary` of bytes behind an immutable URL, by who fetches them. An edge's copy is the same
/// bytes for every listener, so it is cached by URL alone (a `Vary: Authorization` would
/// make a shared cache keep one copy per token); a player's is `private` anyway.
pub(crate) fn immutable_vary(audience: Audience) -> Option<&'static HeaderValue> {
    match audience {
        Audience::Edge => None,
        Audience::Player => Some(&VARY_AUTHORIZATION),
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
    pub cache_control: &'static HeaderValue,
    /// `Vary`, if any.
    pub vary: Option<&'static HeaderValue>,
    /// `Content-Type`.
    pub content_type: &'static HeaderValue,
}

/// A successful answer for immutable bytes (200, 206 or 304), kept typed until it is
/// written: hyper's path makes a `Response` of it ([`Answer::into_response`]) and the express
/// lane encodes it without building a header map. Both take its headers from
/// [`Answer::each_header`], so the two cannot drift apart.
#[derive(Debug)]
pub struct Answer {
    /// 200, 206 or 304.
    pub status: StatusCode,
    etag: HeaderValue,
    cache_control: &'static HeaderValue,
    vary: Option<&'static HeaderValue>,
    /// Absent on a 304.
    content_type: Option<&'static HeaderValue>,
    /// On a 206.
    content_range: Option<HeaderValue>,
    /// The bytes to send: the whole, one range of it, or nothing (304), with the store file
    /// they were read from when the cache keeps it open.
    pub body: FileBacked,
}

impl Answer {
    /// Calls `f` with each header of the answer (CORS and framing headers are added where
    /// every response gets them).
    pub fn each_header(&self, mut f: impl FnMut(&HeaderName, &HeaderValue)) {
        f(&header::ETAG, &self.etag);
        f(&header::CACHE_CONTROL, self.cache_control);
        if let Some(vary) = self.vary {
            f(&header::VARY, vary);
        }
        f(&header::ACCEPT_RANGES, &ACCEPT_BYTES);
        if let Some(range) = &self.content_range {
            f(&header::CONTENT_RANGE, range);
        }
        if let Some(content_type) = self.content_type {
            f(&header::CONTENT_TYPE, content_type);
        }
    }

    /// The answer as a `Response` for hyper.
    pub fn into_response(self) -> Response<Body> {
        // Room for these, CORS and hyper's framing headers: no regrowth on the way out.
        let mut headers = HeaderMap::with_capacity(10);
        self.each_header(|name, value| {
            headers.insert(name.clone(), value.clone());
        });
        let mut resp = respond::file_backed(self.body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = headers;
        resp
    }
}

/// Answers for immutable bytes: `If-None-Match` (304 without loading them), a single
/// `Range` (206/416, honouring `If-Range`), validators and cache headers; `load` runs only
/// when the body is needed.
pub(crate) async fn serve<F, Fut>(
    im: &Immutable,
    conditions: &Conditions<'_>,
    load: F,
) -> Result<Answer, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<FileBacked, ApiError>>,
{
    // Validators compare as bytes: an ETag is visible ASCII by construction.
    let etag = im.etag.as_bytes();
    let answer = |status, content_type, content_range, body| Answer {
        status,
        etag: im.etag.clone(),
        cache_control: im.cache_control,
        vary: im.vary,
        content_type,
        content_range,
        body,
    };
    if let Some(inm) = conditions.if_none_match
        && inm.split(',').any(|t| {
            let t = t.trim().as_bytes();
            t == b"*" || t == etag || t.strip_prefix(b"W/") == Some(etag)
        })
    {
        return Ok(answer(
            StatusCode::NOT_MODIFIED,
            None,
            None,
            FileBacked::default(),
        ));
    }
    let bytes = load().await?;
    let len = bytes.bytes().len() as u64;
    // A stale If-Range means the client's partial copy is of other bytes: send everything.
    let if_range_ok = conditions
        .if_range
        .is_none_or(|v| v.trim().as_bytes() == etag);
    let range = if if_range_ok {
        range::answer(conditions.range, len)
    } else {
        RangeAnswer::Whole
    };
    let content_type = Some(im.content_type);
    match range {
        RangeAnswer::Whole => Ok(answer(StatusCode::OK, content_type, None, bytes)),
        RangeAnswer::Partial { start, end } => {
            let content_range = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
                .map_err(|_| ApiError::Internal("a Content-Range is not a header value".into()))?;
            Ok(answer(
                StatusCode::PARTIAL_CONTENT,
                content_type,
                Some(content_range),
                bytes.slice(start as usize..=end as usize),
            ))
        }
        RangeAnswer::Unsatisfiable => Err(ApiError::RangeNotSatisfiable(len)),
    }
}
