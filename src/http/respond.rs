//! Building responses: JSON bodies, bytes, CORS.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::store::backed::FileBacked;

/// The body type of every response: bodies are in memory (segments come from the cache).
pub type Body = Full<Bytes>;

/// A response of bytes read from a store file. The file rides along in the response's
/// extensions, where a plain-TCP connection's service finds it to send the body with
/// `sendfile` (`super::sendfile`); every other connection writes the bytes.
pub fn file_backed(body: FileBacked) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.bytes().clone()));
    if body.has_file() {
        resp.extensions_mut().insert(body);
    }
    resp
}

/// A JSON response.
pub fn json(value: &serde_json::Value, cache_control: &'static str) -> Response<Body> {
    json_text(StatusCode::OK, value.to_string(), cache_control)
}

/// A plain-text response.
pub fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    with_headers(
        status,
        body,
        &[
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
}

/// A response of `body` with `status` and `headers`, inserted in the order given.
pub fn with_headers(
    status: StatusCode,
    body: impl Into<Bytes>,
    headers: &[(HeaderName, &'static str)],
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (name, value) in headers {
        h.insert(name.clone(), HeaderValue::from_static(value));
    }
    resp
}

/// The CORS headers every response carries, for web players: any origin may read (tokens
/// travel in headers, not cookies, so there is no ambient authority to protect), and the
/// headers a player needs to see are exposed. (What a player may send is the preflight's.)
pub static CORS: [(HeaderName, HeaderValue); 2] = [
    (
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    ),
    (
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "Content-Length, Content-Range, ETag, Accept-Ranges, WWW-Authenticate",
        ),
    ),
];

/// Adds the [`CORS`] headers.
pub fn cors(headers: &mut HeaderMap) {
    for (name, value) in &CORS {
        headers.insert(name.clone(), value.clone());
    }
}

/// The answer to a CORS preflight.
pub fn preflight() -> Response<Body> {
    with_headers(
        StatusCode::NO_CONTENT,
        Bytes::new(),
        &[
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                // DELETE: a web player removes a device (`DELETE /v1/devices/{id}`).
                "GET, HEAD, POST, DELETE, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Range, If-None-Match, Content-Type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
}

/// A JSON response from text already serialized (a stored receipt replayed byte for byte).
pub fn json_text(
    status: StatusCode,
    body: impl Into<Bytes>,
    cache_control: &'static str,
) -> Response<Body> {
    with_headers(
        status,
        body,
        &[
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache_control),
        ],
    )
}
