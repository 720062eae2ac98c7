//! The HTTP edge: hyper 1 through hyper-util (HTTP/1.1 and h2c on one port, TLS with rustls
//! when configured), with the segment GETs that open a plain HTTP/1.1 connection framed by
//! the express lane (`express`) before hyper takes over. Only this module touches HTTP types; the rules live in
//! `license`, `store` and friends, and each operation is a file under `ops/`.
//!
//! A request: [`handle`] checks its `Host` and serves a segment the catalog has at once (the
//! hot path, `delivery`, which the express lane shares); anything else is parsed by
//! [`router`] into an [`Endpoint`](router::Endpoint) that declares what its caller needs, and
//! `dispatch` authenticates it for that need ([`auth::caller`]) and hands it to its operation
//! in [`ops`].
//! Errors become problem responses in [`problem`]; connections are served by [`server`].

pub mod app;
pub mod auth;
mod delivery;
mod dispatch;
mod express;
mod host;
pub mod json_keys;
pub mod ops;
pub mod problem;
#[cfg(test)]
mod proptests;
pub mod range;
pub mod respond;
pub mod router;
mod sendfile;
pub mod server;
pub mod tls;

/// The application's metrics, which the edge records and serves (`GET /metrics`).
pub use crate::app::metrics;
pub use app::{App, Limits};
pub use delivery::segment;
pub use dispatch::REQUEST_ID;
#[doc(hidden)]
pub use express::bench as express_bench;
pub(crate) use host::host_is_acceptable;
pub use server::run;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use self::delivery::Delivered;
use self::dispatch::{dispatch, request_id};
use self::ops::segment::Conditions;
use self::problem::ApiError;
use self::respond::Body;
use crate::license::TokenMemo;

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
        Method::GET | Method::HEAD => delivery::find(&app, req.uri().path()),
        _ => None,
    };
    if let Some(seg) = served {
        let token = auth::bearer(req.headers(), req.uri().query());
        let conditions = Conditions::from_headers(req.headers());
        let delivered =
            delivery::deliver(&app, &memo, seg, token.as_deref(), &conditions, started).await;
        return Ok(match delivered {
            Delivered::Answer(answer) => {
                let mut resp = answer.into_response();
                respond::cors(resp.headers_mut());
                resp
            }
            Delivered::Problem(resp) => resp,
        });
    }
    let endpoint = router::route(req.method(), req.uri().path());
    let route = endpoint.name();
    let request_id = request_id(req.headers(), &endpoint);
    // Boxed: every route's state would otherwise make each request's future (the segment
    // route's included) as large as the largest, and it is moved around.
    let result = {
        let mut work = Box::pin(dispatch(
            &app,
            endpoint,
            req,
            request_id.as_deref().unwrap_or(""),
        ));
        within(app.limits.request_timeout, work.as_mut()).await
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
