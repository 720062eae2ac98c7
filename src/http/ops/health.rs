//! `/healthz` (the process answers), `/readyz` (the catalog is loaded, the ledger can
//! commit and the change feed is being heard), `/metrics`.

use std::sync::atomic::Ordering;

use http::{Response, StatusCode};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, text};

/// Liveness.
pub fn health() -> Response<Body> {
    text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8")
}

/// Readiness: 503 until the first catalog load finished, while the ledger cannot commit
/// (after a failed write, until a probe commit succeeds), and while the change feed has gone
/// unread for a few catch-up periods (an origin that cannot hear refunds made elsewhere must
/// leave the load balancer's rotation, even if nobody bought anything through it).
pub async fn ready(app: &App) -> Result<Response<Body>, ApiError> {
    if !app.ready.load(Ordering::Acquire) {
        return Err(ApiError::NotReady(
            "the catalog is still being packaged".into(),
        ));
    }
    if !app.ledger.can_commit(app.now_signed()).await {
        return Err(ApiError::NotReady(
            "the purchase ledger cannot commit".into(),
        ));
    }
    if let Some(silent) = app.change_feed_silent() {
        return Err(ApiError::NotReady(format!(
            "the change feed has not been read for {} ms: refunds made through other origins \
             may not be enforced here",
            silent.as_millis()
        )));
    }
    // Stale keys do not take the origin out of service (it serves with its last good keys,
    // as every origin did a moment ago), but the probe says so.
    let body = match app.key_health.stale() {
        None => "ready\n".to_owned(),
        // The reason (it may name a path) is in the server log only.
        Some(_) => "ready\nkeys: stale: newer shared keys cannot be loaded here; serving the \
                    previous keys (see the server log)\n"
            .to_owned(),
    };
    Ok(text(StatusCode::OK, body, "text/plain; charset=utf-8"))
}

/// Prometheus text exposition.
pub fn metrics(app: &App) -> Response<Body> {
    let stats = app.keys().tokens.stats();
    app.metrics.token_cache_hits.set(stats.hits);
    app.metrics.token_cache_misses.set(stats.misses);
    app.metrics
        .segment_cache_bytes
        .set(app.segments.weighted_size());
    app.metrics
        .segment_pages_pinned_bytes
        .set(crate::store::backed::pinned_bytes());
    text(
        StatusCode::OK,
        app.metrics.render(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
}
