//! `GET /v1/charts/albums?window=24h|7d|30d|all` (public) and `GET /v1/users/{user}/albums`
//! (the user's own account token, or the store): the sales chart and buyer nameplates.

use http::{Response, StatusCode};

use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json_text};
use crate::ledger::Window;
use crate::ledger::time::format_rfc3339;
use crate::license::{Denied, Scope, VerifiedToken};

/// The chart for the `window` query parameter (default `7d`).
pub async fn chart(app: &App, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let window = match query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("window="))
    {
        None => Window::Week,
        Some(w) => w
            .parse()
            .map_err(|e: crate::ledger::chart::WindowParseError| {
                ApiError::BadRequest(e.to_string())
            })?,
    };
    let entries = app
        .charts
        .get(&app.ledger, window, app.now_signed())
        .await?;
    let lib = app.library.load_full();
    // Built once per chart and catalog: a read that anyone may repeat costs no JSON work.
    let body = app.charts.render(window, &entries, &lib, || {
        let albums: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let head = lib.album(&e.album);
                let record = head.as_ref().map(|a| &a.record);
                serde_json::json!({
                    "rank": e.rank,
                    "album": e.album,
                    "title": record.map(|r| r.title.as_str()),
                    "artist": record.and_then(|r| r.artist.as_deref()),
                    "units": e.units,
                    "buyers": e.buyers,
                    "previous_rank": e.previous_rank,
                    "revenue": e.revenue,
                })
            })
            .collect();
        serde_json::json!({
            "window": window.as_str(),
            "albums": albums,
        })
        .to_string()
    });
    Ok(json_text(StatusCode::OK, body, "public, max-age=10"))
}

/// The user's library with buyer numbers: for the user's own account token or the store.
pub async fn user_albums(
    app: &App,
    token: &VerifiedToken,
    user: &str,
) -> Result<Response<Body>, ApiError> {
    let claims = token.claims();
    match claims.scope {
        Scope::Store => {}
        // Only the account service speaks for a user: an `account` token under encore's own
        // issuer does not count (the verifiers already keep each key in its trust domain).
        Scope::Account
            if claims.iss == app.ledger_settings.account_issuer
                && claims.iss != app.token_issuer =>
        {
            if claims.sub != user {
                return Err(ApiError::Denied(Denied::NotYourLibrary));
            }
        }
        Scope::Play | Scope::Edge | Scope::Admin | Scope::Account => {
            return Err(ApiError::Denied(Denied::ScopeNotAllowed));
        }
    }
    let entries = app.ledger.library_shown(user).await?;
    let clubs = app.ledger.clubs_of(user).await?;
    let lib = app.library.load();
    let albums: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let head = lib.album(&e.album);
            let title = head
                .as_ref()
                .map_or(e.album.as_str(), |a| a.record.title.as_str());
            let artist_id = head
                .as_ref()
                .and_then(|a| a.record.artist.as_deref())
                .and_then(crate::catalog::slugify);
            let club = clubs
                .iter()
                .find(|c| Some(&c.artist_id) == artist_id.as_ref())
                .map(|c| serde_json::json!({"id": c.id, "name": c.name}));
            let mut plate = nameplate(e.buyer_number, title);
            if e.copies > 1 {
                plate.push_str(&format!(" · {} copies", e.copies));
            }
            serde_json::json!({
                "album": e.album,
                "title": title,
                "order_id": e.order_id,
                "purchased_at": format_rfc3339(e.purchased_at),
                "buyer_number": e.buyer_number,
                "copies": e.copies,
                "gift_from": e.gift_from,
                "club": club,
                "nameplate": plate,
            })
        })
        .collect();
    let body = serde_json::json!({ "user": user, "albums": albums });
    Ok(json_text(
        StatusCode::OK,
        body.to_string(),
        "private, no-store",
    ))
}

/// "No. 1,024 buyer of First Light".
pub fn nameplate(buyer_number: i64, title: &str) -> String {
    let digits = buyer_number.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("No. {grouped} buyer of {title}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameplates_group_thousands() {
        assert_eq!(nameplate(1, "X"), "No. 1 buyer of X");
        assert_eq!(nameplate(999, "X"), "No. 999 buyer of X");
        assert_eq!(
            nameplate(1024, "First Light"),
            "No. 1,024 buyer of First Light"
        );
        assert_eq!(nameplate(1_234_567, "X"), "No. 1,234,567 buyer of X");
    }
}
