//! The segment route as both HTTP/1.1 framings answer it, hyper's ([`super::handle`]) and the
//! express lane's: the URL looked up in the catalog, then the token (through the connection's
//! memo), the entitlement and the cached bytes, under the request deadline, counted in the
//! metrics. It is the lane's only way into the rest of the edge, so nothing that decides an
//! answer can differ between the two paths.

use std::time::Instant;

use http::Response;

use super::app::App;
use super::ops::segment::{Answer, Conditions};
use super::problem::ApiError;
use super::respond::Body;
use super::router::SEGMENT_ROUTE;
use super::{auth, ops};
use crate::license::{Clock, SystemClock, TokenMemo, authorize_segment};
use crate::store::library::ServedSegment;

/// The segment a `GET` or `HEAD` of `path` names, if the catalog serves it now.
pub(crate) fn find(app: &App, path: &str) -> Option<ServedSegment> {
    app.library
        .load()
        .served_segment(path, || SystemClock.now_unix())
}

/// What the segment route answered.
pub(crate) enum Delivered {
    /// A 200, 206 or 304, still typed: the caller frames it, CORS headers included.
    Answer(Answer),
    /// Any other answer (a problem, a timeout), complete with its CORS headers.
    Problem(Response<Body>),
}

/// Answers a request for `seg` that arrived at `started`, and counts it. `token` is what
/// [`auth::bearer`] (or the lane's `auth::bearer_in`) found.
pub(crate) async fn deliver(
    app: &App,
    memo: &TokenMemo,
    seg: ServedSegment,
    token: Option<&str>,
    conditions: &Conditions<'_>,
    started: Instant,
) -> Delivered {
    let result = {
        let work = std::pin::pin!(segment(app, memo, seg, token, conditions));
        super::within(app.limits.request_timeout, work).await
    };
    match result {
        Some(Ok(answer)) => {
            super::count(app, SEGMENT_ROUTE, answer.status, started);
            Delivered::Answer(answer)
        }
        other => {
            let other = other.map(|answer| answer.map(Answer::into_response));
            Delivered::Problem(super::conclude(app, SEGMENT_ROUTE, started, other, None))
        }
    }
}

/// The delivery path: the token (through the connection's memo), the entitlement, then the
/// sealed bytes from the segment cache.
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
        .inspect_err(|d| app.metrics.count_denial(d))?;
    let answer = ops::segment::get(app, &grant, seg, conditions).await?;
    let bytes = answer.body.bytes().len() as u64;
    app.metrics.count_segment(grant.audience(), bytes);
    Ok(answer)
}
