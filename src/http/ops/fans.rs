//! Gifts and fan clubs over HTTP: `POST /v1/gifts/{order_id}/decline`,
//! `GET /v1/users/{user}/gifts`, `POST /v1/clubs`, `POST /v1/clubs/{id}/join|leave`,
//! `GET /v1/clubs?artist_id=…` and `GET /v1/charts/clubs?artist_id=…&window=…` (routed by
//! `http::router` like every endpoint). Rules in `ledger::clubs` and `ledger::owned`; this
//! file maps them to HTTP.

use http::{Response, StatusCode};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json_text};
use crate::ledger::time::format_rfc3339;
use crate::ledger::{FieldError, Gift, Window, club_name};
use crate::license::{Denied, Scope, VerifiedToken};

/// The user an account token speaks for: only the account service's tokens count (as for
/// nameplates), never an `account` token under encore's own issuer.
pub fn account_user<'a>(app: &App, token: &'a VerifiedToken) -> Result<&'a str, ApiError> {
    let claims = token.claims();
    if claims.scope == Scope::Account
        && claims.iss == app.ledger_settings.account_issuer
        && claims.iss != app.token_issuer
    {
        Ok(&claims.sub)
    } else {
        Err(ApiError::Denied(Denied::ScopeNotAllowed))
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn artist_param(query: Option<&str>) -> Result<&str, ApiError> {
    let artist = query_param(query, "artist_id")
        .ok_or_else(|| ApiError::BadRequest("artist_id=… is required".into()))?;
    crate::catalog::AlbumId::parse(artist)
        .map_err(|_| ApiError::BadRequest(format!("artist_id={artist:?} is not a slug")))?;
    Ok(artist)
}

fn ok_json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_text(status, value.to_string(), "no-store")
}

/// The decline window's end for a gift.
fn decline_until(app: &App, gift: &Gift) -> i64 {
    let window = i64::try_from(app.ledger_settings.gift_decline_seconds).unwrap_or(i64::MAX);
    gift.purchased_at.saturating_add(window)
}

fn gift_json(app: &App, gift: &Gift, received: bool) -> serde_json::Value {
    let lib = app.library.load();
    let title = lib.album(&gift.album).map(|a| a.record.title.clone());
    let from = (!received || gift.from_visible).then_some(gift.from.as_str());
    serde_json::json!({
        "order_id": gift.order_id,
        "album": gift.album,
        "title": title,
        "quantity": gift.quantity,
        "from": from,
        "to": gift.to,
        "purchased_at": format_rfc3339(gift.purchased_at),
        "refunded_at": gift.refunded_at.map(format_rfc3339),
        "decline_until": format_rfc3339(decline_until(app, gift)),
    })
}

pub async fn gifts(
    app: &App,
    token: &VerifiedToken,
    user: &str,
) -> Result<Response<Body>, ApiError> {
    if token.claims().scope != Scope::Store && account_user(app, token)? != user {
        return Err(ApiError::Denied(Denied::NotYourLibrary));
    }
    let gifts = app.ledger.gifts(user).await?;
    let received: Vec<_> = gifts
        .received
        .iter()
        .map(|g| gift_json(app, g, true))
        .collect();
    let sent: Vec<_> = gifts
        .sent
        .iter()
        .map(|g| gift_json(app, g, false))
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        &serde_json::json!({"user": user, "received": received, "sent": sent}),
    ))
}

pub async fn decline(
    app: &App,
    token: &VerifiedToken,
    order_id: &str,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let user = account_user(app, token)?;
    let gift = app
        .ledger
        .gift(order_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no gift with order id {order_id:?}")))?;
    if gift.to != user {
        return Err(ApiError::Forbidden(
            "not-your-gift",
            "this gift is for someone else".into(),
        ));
    }
    let now = app.now_signed();
    if gift.refunded_at.is_none() && now > decline_until(app, &gift) {
        return Err(ApiError::State(
            "decline-window-closed",
            format!(
                "a gift may be declined until {}",
                format_rfc3339(decline_until(app, &gift))
            ),
        ));
    }
    let refunded = app.ledger.refund(order_id, now, request_id).await?;
    super::purchase::enforce_refund(app, &refunded);
    tracing::info!(target: "encore::audit", request_id, action = "decline-gift",
        by = %user, order_id, album = %refunded.album,
        result = if refunded.newly { "declined" } else { "replayed" });
    Ok(ok_json(
        StatusCode::OK,
        &serde_json::json!({
            "order_id": refunded.order_id,
            "album": refunded.album,
            "from": gift.from_visible.then_some(gift.from.as_str()),
            "declined_at": format_rfc3339(refunded.refunded_at),
            "still_owned": refunded.still_owned,
        }),
    ))
}

fn membership_json(m: &crate::ledger::Membership) -> serde_json::Value {
    serde_json::json!({
        "id": m.club.id,
        "artist_id": m.club.artist_id,
        "name": m.club.name,
        "members": m.club.members,
        "user": m.user,
        "member": m.member,
    })
}

pub async fn create_club(
    app: &App,
    token: &VerifiedToken,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let user = account_user(app, token)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Create {
        artist_id: String,
        name: String,
    }
    let req: Create = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadField(FieldError {
            field: "body",
            problem: format!("expected {{\"artist_id\": \"...\", \"name\": \"...\"}} ({e})"),
        })
    })?;
    crate::catalog::AlbumId::parse(&req.artist_id).map_err(|_| {
        ApiError::BadField(FieldError {
            field: "artist_id",
            problem: "must be an artist's slug, e.g. the-lantern-choir".into(),
        })
    })?;
    let name = club_name(&req.name).map_err(|problem| {
        ApiError::BadField(FieldError {
            field: "name",
            problem,
        })
    })?;
    let m = app
        .ledger
        .create_club(&req.artist_id, &name, user, app.now_signed())
        .await?;
    Ok(ok_json(StatusCode::CREATED, &membership_json(&m)))
}

pub async fn membership(
    app: &App,
    token: &VerifiedToken,
    club: &str,
    join: bool,
) -> Result<Response<Body>, ApiError> {
    let user = account_user(app, token)?;
    let now = app.now_signed();
    let m = if join {
        app.ledger.join_club(club, user, now).await?
    } else {
        app.ledger.leave_club(club, user, now).await?
    };
    Ok(ok_json(StatusCode::OK, &membership_json(&m)))
}

pub async fn list_clubs(app: &App, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let artist = artist_param(query)?;
    let clubs: Vec<_> = app
        .ledger
        .clubs(artist)
        .await?
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "artist_id": c.artist_id, "name": c.name, "members": c.members}))
        .collect();
    Ok(json_text(
        StatusCode::OK,
        serde_json::json!({"artist_id": artist, "clubs": clubs}).to_string(),
        "public, max-age=5",
    ))
}

/// Clubs ranked by copies of the artist's albums their members bought while members.
pub async fn club_chart(app: &App, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let artist = artist_param(query)?;
    let window = match query_param(query, "window") {
        None => Window::Week,
        Some(w) => w
            .parse()
            .map_err(|e: crate::ledger::chart::WindowParseError| {
                ApiError::BadRequest(e.to_string())
            })?,
    };
    let since = window.seconds().map(|s| app.now_signed() - s);
    let clubs = app.ledger.clubs(artist).await?;
    let sales = app.ledger.club_sales(artist, since).await?;
    let lib = app.library.load();
    let mut units: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for s in &sales {
        // Only the artist's own albums count, by the catalog's say.
        let by_artist = lib.album(&s.album).is_some_and(|a| {
            a.record.artist.as_deref().and_then(crate::catalog::slugify) == Some(artist.to_owned())
        });
        if by_artist {
            *units.entry(s.club_id.as_str()).or_default() += s.units;
        }
    }
    let mut ranked: Vec<(&crate::ledger::Club, i64)> = clubs
        .iter()
        .map(|c| (c, units.get(c.id.as_str()).copied().unwrap_or(0)))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.name.cmp(&b.0.name)));
    let entries: Vec<_> = ranked
        .iter()
        .enumerate()
        .map(|(i, (c, units))| {
            serde_json::json!({"rank": i + 1, "id": c.id, "name": c.name,
                "members": c.members, "units": units})
        })
        .collect();
    Ok(json_text(
        StatusCode::OK,
        serde_json::json!({"artist_id": artist, "window": window.as_str(), "clubs": entries})
            .to_string(),
        "public, max-age=5",
    ))
}
