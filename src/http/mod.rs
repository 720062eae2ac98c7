//! The HTTP edge: hyper 1 through hyper-util (HTTP/1.1 and h2c on one port, TLS with rustls
//! when configured). Only this module touches hyper types; the rules live in `license`,
//! `store` and friends, and each operation is a file under `ops/`.

pub mod app;
pub mod auth;
pub mod metrics;
pub mod ops;
pub mod problem;
pub mod range;
pub mod respond;
pub mod router;
pub mod server;
pub mod tls;

pub use app::{App, Limits};
pub use server::run;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use self::metrics::{OutcomeLabels, RequestLabels, RouteLabels};
use self::problem::ApiError;
use self::respond::Body;
use self::router::Endpoint;
use crate::license::authorize_segment;

/// Handles one request: route, run the operation under the deadline, map errors, count.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let endpoint = router::route(req.method(), req.uri().path());
    let route = endpoint.name();
    let result =
        match tokio::time::timeout(app.limits.request_timeout, dispatch(&app, endpoint, req)).await
        {
            Ok(r) => r,
            Err(_) => Err(ApiError::Timeout),
        };
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    respond::cors(resp.headers_mut());
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    app.metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

async fn dispatch(
    app: &App,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let query = req.uri().query().map(str::to_owned);
    match endpoint {
        Endpoint::Health => Ok(ops::health::health()),
        Endpoint::Ready => ops::health::ready(app),
        Endpoint::Metrics => Ok(ops::health::metrics(app)),
        Endpoint::Jwks => Ok(ops::jwks::jwks(app)),
        Endpoint::ListAlbums => Ok(ops::catalog::list(app)),
        Endpoint::GetAlbum { album } => ops::catalog::get(app, &album),
        Endpoint::GetCover { album } => ops::catalog::cover(app, &album).await,
        Endpoint::CreateLicense => {
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
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
            ops::license::create(app, &token, &body.to_bytes())
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
            let grant = authorize_segment(&token, &album, track, &rendition)
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
            let token = auth::authenticate(app, req.headers(), query.as_deref())?;
            let seg = {
                let lib = app.library.load();
                let (m, rec) = lib
                    .segment(&album, track, &rendition, &generation, &file)
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "no segment {file:?} in {album}/{track}/{rendition}/{generation}"
                        ))
                    })?;
                let path = app
                    .store
                    .segment_path(m, rec)
                    .map_err(|e| ApiError::NotFound(e.to_string()))?;
                ops::segment::SegmentRef {
                    path,
                    sha256: rec.sha256.clone(),
                }
            };
            let grant = authorize_segment(&token, &album, track, &rendition)
                .inspect_err(|d| count_denial(app, d))?;
            ops::segment::get(app, &grant, seg, req.headers()).await
        }
        Endpoint::Preflight => Ok(respond::preflight()),
        Endpoint::WrongMethod => Err(ApiError::MethodNotAllowed),
        Endpoint::NotFound => {
            if req.method() == Method::GET || req.method() == Method::HEAD {
                Err(ApiError::NotFound(format!(
                    "nothing at {}",
                    req.uri().path()
                )))
            } else {
                Err(ApiError::MethodNotAllowed)
            }
        }
    }
}

fn count_denial(app: &App, d: &crate::license::Denied) {
    app.metrics
        .denials
        .get_or_create(&OutcomeLabels {
            outcome: d.problem_type(),
        })
        .inc();
}
