//! The web player (static files compiled into the binary, so it works offline) and the demo
//! store's dev-only endpoints, which exist only while the development account key does.

use http::{Response, StatusCode, header};
use serde::Deserialize;

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json_text, with_headers};
use crate::keys::account_keys::dev_account_key;
use crate::ledger::purchase::check_identifier;
use crate::ledger::{FieldError, NewPurchase, Recorded};
use crate::license::{MintRequest, Scope, mint};

/// One static file of the player.
struct Asset {
    name: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

/// Every file under `web/`, by the name it is served under (`/web/{name}`).
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        bytes: include_bytes!("../../../web/index.html"),
        content_type: "text/html; charset=utf-8",
    },
    Asset {
        name: "app.js",
        bytes: include_bytes!("../../../web/app.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "style.css",
        bytes: include_bytes!("../../../web/style.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        name: "vendor/hls.min.js",
        bytes: include_bytes!("../../../web/vendor/hls.min.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "vendor/hls.js.LICENSE",
        bytes: include_bytes!("../../../web/vendor/hls.js.LICENSE"),
        content_type: "text/plain; charset=utf-8",
    },
];

/// Self only: no CDN, no inline script. `blob:` is where hls.js hands MSE its buffers and
/// `media-src` needs it; `img-src data:` lets the page draw a placeholder cover.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// Whether `name` is one of the player's files.
pub fn is_asset(name: &str) -> bool {
    ASSETS.iter().any(|a| a.name == name)
}

/// `GET /` and `GET /web/{name}`: a file of the player. The file names carry no version, so
/// browsers revalidate after a minute rather than keep an old player after an upgrade.
pub fn asset(name: &str) -> Result<Response<Body>, ApiError> {
    let a = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no web file {name:?}")))?;
    Ok(with_headers(
        StatusCode::OK,
        bytes::Bytes::from_static(a.bytes),
        &[
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
    ))
}

/// Lifetime of a demo session (an account token of the stand-in account service).
const DEV_SESSION_SECONDS: u64 = 3600;

/// The demo store's currency for albums whose album.toml names no price (they are free).
const DEV_DEFAULT_CURRENCY: &str = "CNY";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    user: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseRequest {
    user: String,
    album: String,
    /// Copies, gift and its visibility: passed to the ledger's own parser as they came.
    #[serde(default)]
    quantity: Option<serde_json::Value>,
    #[serde(default)]
    gift_to: Option<serde_json::Value>,
    #[serde(default)]
    gift_from_visible: Option<serde_json::Value>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadField(FieldError {
            field: "body",
            problem: format!("expected {shape} ({e})"),
        })
    })
}

fn check_user(user: &str) -> Result<(), ApiError> {
    check_identifier(user).map_err(|problem| {
        ApiError::BadField(FieldError {
            field: "user",
            problem,
        })
    })
}

/// The development account key, or 404: without it the demo store does not exist (fail
/// closed; production has no such key). Read per request, so deleting the key turns the
/// demo store off without a restart.
fn dev_key(app: &App) -> Result<crate::seal::SigningKeyPair, ApiError> {
    let keys = app.keys();
    match dev_account_key(keys.keyring.dir()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(ApiError::NotFound(
            "no demo store here (no development account key)".into(),
        )),
        Err(e) => {
            tracing::warn!("cannot read the development account key: {e}");
            Err(ApiError::NotFound(
                "no demo store here (development account key unreadable)".into(),
            ))
        }
    }
}

/// `POST /v1/dev/session {"user"}`: an account token for a demo user, signed with the
/// development account key as the real account service would sign it.
pub fn session(app: &App, body: &[u8], request_id: &str) -> Result<Response<Body>, ApiError> {
    let key = dev_key(app)?;
    let req: SessionRequest = parse_body(body, "{\"user\": \"...\"}")?;
    check_user(&req.user)?;
    let now = app.now();
    let token = mint(
        &key,
        &MintRequest {
            sub: req.user.clone(),
            albums: Vec::new(),
            scope: Scope::Account,
            ttl_seconds: DEV_SESSION_SECONDS,
            issuer: app.ledger_settings.account_issuer.clone(),
            audience: app.token_audience.clone(),
            not_before: None,
        },
        now,
    )
    .map_err(|e| ApiError::Internal(format!("cannot mint a demo account token: {e}")))?;
    tracing::info!(target: "encore::audit", request_id, action = "dev-session",
        user = %req.user, result = "issued");
    let expires_at = i64::try_from(now.saturating_add(DEV_SESSION_SECONDS)).unwrap_or(i64::MAX);
    let body = serde_json::json!({
        "user": req.user,
        "token": token,
        "token_type": "Bearer",
        "expires_in": DEV_SESSION_SECONDS,
        "expires_at": expires_at,
    });
    Ok(json_text(StatusCode::CREATED, body.to_string(), "no-store"))
}

/// `POST /v1/dev/purchases {"user","album"}`: the demo store buys the album at its catalog
/// price through the same ledger path as `POST /v1/purchases`. The order id is derived from
/// user and album, so buying twice replays the first receipt instead of buying again.
pub async fn purchase(
    app: &App,
    body: &[u8],
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    dev_key(app)?;
    let req: PurchaseRequest = parse_body(body, "{\"user\": \"...\", \"album\": \"...\"}")?;
    check_user(&req.user)?;
    let (price, currency) = {
        let lib = app.library.load();
        let album = lib.album(&req.album).ok_or_else(|| {
            ApiError::NotFound(format!("no album {:?} in the catalog", req.album))
        })?;
        (
            album.record.price.unwrap_or(0),
            album
                .record
                .currency
                .clone()
                .unwrap_or_else(|| DEV_DEFAULT_CURRENCY.to_owned()),
        )
    };
    let now = app.now_signed();
    crate::http::ops::purchase::check_on_sale(app, &req.album, now)?;
    // A gift is an order of its own per recipient; a plain purchase keeps its old id.
    let order_id = match req.gift_to.as_ref().and_then(|v| v.as_str()) {
        Some(to) => format!("dev:{}:{}:gift:{to}", req.user, req.album),
        None => format!("dev:{}:{}", req.user, req.album),
    };
    // Through NewPurchase::parse, so the demo store obeys every rule the real store does.
    let mut store_body = serde_json::json!({
        "order_id": order_id,
        "user": req.user,
        "album": req.album,
        "price": price,
        "currency": currency,
    });
    for (field, value) in [
        ("quantity", req.quantity),
        ("gift_to", req.gift_to),
        ("gift_from_visible", req.gift_from_visible),
    ] {
        if let Some(v) = value {
            store_body[field] = v;
        }
    }
    let purchase = NewPurchase::parse(store_body.to_string().as_bytes(), now)?;
    let (status, receipt) = match app
        .ledger
        .record_purchase(&purchase, now, request_id)
        .await?
    {
        Recorded::Created(body) => {
            // As in `purchase::create`: the user owns the album again, the chart moved.
            app.revocations
                .restore(purchase.owner(), purchase.album.as_str());
            app.charts.invalidate();
            (StatusCode::CREATED, body)
        }
        Recorded::Replayed(body) => (StatusCode::OK, body),
    };
    tracing::info!(target: "encore::audit", request_id, action = "dev-purchase",
        order_id = %purchase.order_id, user = %purchase.user, album = %purchase.album,
        price = purchase.price, currency = %purchase.currency, status = status.as_u16());
    Ok(json_text(status, receipt, "no-store"))
}

/// `GET /v1/dev`: 200 when the demo store is on, 404 otherwise (the page hides it then).
pub fn status(app: &App) -> Result<Response<Body>, ApiError> {
    dev_key(app)?;
    let body = serde_json::json!({ "demo_store": true });
    Ok(json_text(StatusCode::OK, body.to_string(), "no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_csp() {
        for a in ASSETS {
            let resp = asset(a.name).unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(
                resp.headers()[header::CONTENT_TYPE],
                a.content_type,
                "{}",
                a.name
            );
            assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
        assert!(asset("../Cargo.toml").is_err());
        assert!(!is_asset("vendor/../index.html"));
    }

    #[test]
    fn index_loads_only_local_scripts() {
        let html = std::str::from_utf8(include_bytes!("../../../web/index.html")).unwrap();
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.contains("/web/vendor/hls.min.js"));
    }
}
