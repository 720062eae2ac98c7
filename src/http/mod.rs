//! The HTTP edge: hyper 1 through hyper-util (HTTP/1.1 and h2c on one port, TLS with rustls
//! when configured), with the segment GETs that open a plain HTTP/1.1 connection framed by
//! [`express`] before hyper takes over. Only this module touches HTTP types; the rules live in
//! `license`, `store` and friends, and each operation is a file under `ops/`.
//!
//! A request: [`handle`] checks its `Host` and serves a segment the catalog has at once (the
//! hot path: [`segment`]); anything else is parsed by [`router`] into an
//! [`Endpoint`](router::Endpoint) that declares what its caller needs, and `dispatch`
//! authenticates it for that need ([`auth::caller`]) and hands it to its operation in [`ops`].
//! Errors become problem responses in [`problem`]; connections are served by [`server`].

pub mod app;
pub mod auth;
mod dispatch;
pub mod express;
mod host;
pub mod json_keys;
pub mod ops;
pub mod problem;
#[cfg(test)]
mod proptests;
pub mod range;
pub mod respond;
pub mod rewind;
pub mod router;
pub mod sendfile;
pub mod server;
pub mod tls;

/// The application's metrics, which the edge records and serves (`GET /metrics`).
pub use crate::app::metrics;
pub use app::{App, Limits};
pub use dispatch::REQUEST_ID;
pub(crate) use host::host_is_acceptable;
pub use server::run;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use self::dispatch::{dispatch, request_id};
use self::ops::segment::{Answer, Conditions};
use self::problem::ApiError;
use self::respond::Body;
use self::router::SEGMENT_ROUTE;
use crate::license::{Clock, SystemClock, TokenMemo, authorize_segment};
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

/// Counts an entitlement denial by its reason.
fn count_denial(app: &App, d: &crate::license::Denied) {
    app.metrics.count_denial(d);
}
