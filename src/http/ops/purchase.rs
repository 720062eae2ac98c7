//! `POST /v1/purchases` and `POST /v1/purchases/{order_id}/refund`: the store's payment
//! backend (scope `store`) records purchases and refunds. Rules in `ledger`; this file maps
//! them to HTTP and keeps the in-memory views (revocations, charts) in step.

use http::{Response, StatusCode};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json_text};
use crate::ledger::time::format_rfc3339;
use crate::ledger::{NewPurchase, Recorded};
use crate::license::{Denied, Scope, VerifiedToken};

/// Only the store's payment backend records purchases and refunds.
fn require_store(token: &VerifiedToken) -> Result<(), ApiError> {
    if token.claims().scope == Scope::Store {
        Ok(())
    } else {
        Err(ApiError::Denied(Denied::ScopeNotAllowed))
    }
}

/// Refuses an album not in the catalog (404) or whose launch is still ahead at `now` (409
/// `not-on-sale` with the time): every purchase route, real or demo store, asks this.
pub fn check_on_sale(app: &App, album: &str, now: i64) -> Result<(), ApiError> {
    let head = app
        .library
        .load()
        .album(album)
        .ok_or_else(|| ApiError::NotFound(format!("no album {album:?} in the catalog")))?;
    match head.record.on_sale_at {
        Some(at) if now < at => Err(ApiError::NotOnSale(at)),
        _ => Ok(()),
    }
}

/// Records a purchase: 201 with the receipt, 200 with the same receipt on a retry, 409 for
/// the same order id with another body, 404 for an album not in the catalog.
pub async fn create(
    app: &App,
    token: &VerifiedToken,
    body: &[u8],
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    require_store(token)?;
    let now = app.now_signed();
    let purchase = NewPurchase::parse(body, now)?;
    check_on_sale(app, purchase.album.as_str(), now)?;
    let outcome = app.ledger.record_purchase(&purchase, now, request_id).await;
    let (status, body, result) = match outcome {
        Ok(Recorded::Created(body)) => {
            // The user owns the album (again): a refund of an earlier order no longer applies.
            app.revocations
                .restore(purchase.owner(), purchase.album.as_str());
            app.charts.invalidate();
            (StatusCode::CREATED, body, "created")
        }
        Ok(Recorded::Replayed(body)) => (StatusCode::OK, body, "replayed"),
        Err(e) => {
            tracing::info!(target: "encore::audit", request_id, action = "purchase",
                by = %token.claims().sub, order_id = %purchase.order_id, user = %purchase.user,
                album = %purchase.album, result = "refused", reason = %e);
            return Err(e.into());
        }
    };
    tracing::info!(target: "encore::audit", request_id, action = "purchase",
        by = %token.claims().sub, order_id = %purchase.order_id, user = %purchase.user,
        album = %purchase.album, price = purchase.price, currency = %purchase.currency,
        quantity = purchase.quantity, gift_to = purchase.gift_to.as_deref(), result);
    Ok(json_text(status, body, "no-store"))
}

/// Refunds an order (idempotent): the user loses the album unless another purchase of it
/// stands, and play tokens issued before now stop opening its full renditions at once.
pub async fn refund(
    app: &App,
    token: &VerifiedToken,
    order_id: &str,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    require_store(token)?;
    let refunded = match app
        .ledger
        .refund(order_id, app.now_signed(), request_id)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(target: "encore::audit", request_id, action = "refund",
                by = %token.claims().sub, order_id, result = "refused", reason = %e);
            return Err(e.into());
        }
    };
    enforce_refund(app, &refunded);
    tracing::info!(target: "encore::audit", request_id, action = "refund",
        by = %token.claims().sub, order_id, user = %refunded.user, album = %refunded.album,
        result = if refunded.newly { "refunded" } else { "replayed" });
    let body = serde_json::json!({
        "order_id": refunded.order_id,
        "user": refunded.user,
        "album": refunded.album,
        "gift_to": refunded.gift_to,
        "refunded_at": format_rfc3339(refunded.refunded_at),
        "still_owned": refunded.still_owned,
    });
    Ok(json_text(StatusCode::OK, body.to_string(), "no-store"))
}

/// After a refund commits and before its answer: the owner (a gift's recipient, else the
/// buyer) loses the album at once on every route unless another order holds it.
pub fn enforce_refund(app: &App, refunded: &crate::ledger::Refunded) {
    if !refunded.still_owned {
        // Before the response: once the store hears "refunded", no old token may play.
        app.revocations.revoke(
            &refunded.owner,
            &refunded.album,
            u64::try_from(refunded.refunded_at).unwrap_or(0),
        );
    }
    if refunded.newly {
        app.charts.invalidate();
    }
    app.revocations.prune(app.now());
}
