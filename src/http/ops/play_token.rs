//! `POST /v1/play-tokens`: an account token (from the platform's account service) is
//! exchanged for a short-lived play token whose `albums` claim is read from the ledger now.
//!
//! Bounded size: a token names at most [`MAX_TOKEN_ALBUMS`] albums. The body may scope the
//! token to the albums the player is about to play (`{"albums": [...]}`); without it the
//! token names the user's most recently bought albums and says whether that is all of them
//! (`albums_complete`). A user with 5,000 albums asks per album (or per page of albums).

use http::{Response, StatusCode};
use serde::Deserialize;

use crate::catalog::AlbumId;
use crate::http::app::App;
use crate::http::problem::ApiError;
use crate::http::respond::{Body, json_text};
use crate::ledger::FieldError;
use crate::license::{Denied, MintRequest, Scope, VerifiedToken, mint};

/// Most albums one play token names: the worst case (64-byte ids, a 128-byte `sub`) stays
/// under the verifier's 4 KiB token limit (a unit test holds this down).
pub const MAX_TOKEN_ALBUMS: usize = 32;

/// The optional request body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeRequest {
    /// Albums the player wants in the token (those the user owns are kept).
    albums: Option<Vec<String>>,
}

fn parse(body: &[u8]) -> Result<ExchangeRequest, FieldError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ExchangeRequest::default());
    }
    let req: ExchangeRequest = serde_json::from_slice(body).map_err(|e| FieldError {
        field: "body",
        problem: format!("expected {{\"albums\": [ids]}} or nothing ({e})"),
    })?;
    if let Some(albums) = &req.albums {
        if albums.len() > MAX_TOKEN_ALBUMS {
            return Err(FieldError {
                field: "albums",
                problem: format!("at most {MAX_TOKEN_ALBUMS} albums per token"),
            });
        }
        for a in albums {
            AlbumId::parse(a).map_err(|e| FieldError {
                field: "albums",
                problem: e.to_string(),
            })?;
        }
    }
    Ok(req)
}

/// Exchanges a verified account token for a play token.
pub async fn exchange(
    app: &App,
    account: &VerifiedToken,
    body: &[u8],
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let claims = account.claims();
    if claims.scope != Scope::Account {
        return Err(ApiError::Denied(Denied::ScopeNotAllowed));
    }
    let req = parse(body)?;
    let user = &claims.sub;
    let owned: Vec<String> = app
        .ledger
        .library(user)
        .await?
        .into_iter()
        .map(|e| e.album)
        .collect();
    let (albums, complete) = match &req.albums {
        Some(wanted) => {
            let mut albums: Vec<String> = Vec::new();
            for a in wanted {
                if owned.contains(a) && !albums.contains(a) {
                    albums.push(a.clone());
                }
            }
            (albums, true)
        }
        None => {
            let complete = owned.len() <= MAX_TOKEN_ALBUMS;
            (owned.into_iter().take(MAX_TOKEN_ALBUMS).collect(), complete)
        }
    };
    let now = app.now();
    let ttl = app.ledger_settings.play_token_seconds;
    let key = app
        .keys()
        .keyring
        .signing_key()
        .map_err(|e| ApiError::Internal(format!("no signing key: {e}")))?;
    let token = mint(
        &key,
        &MintRequest {
            sub: user.clone(),
            albums: albums.clone(),
            scope: Scope::Play,
            ttl_seconds: ttl,
            issuer: app.token_issuer.clone(),
            audience: app.token_audience.clone(),
            not_before: None,
        },
        now,
    )
    .map_err(|e| ApiError::Internal(format!("cannot mint a play token: {e}")))?;
    tracing::info!(target: "encore::audit", request_id, action = "play-token",
        user = %user, albums = albums.len(), albums_complete = complete, ttl, result = "issued");
    let expires_at = i64::try_from(now.saturating_add(ttl)).unwrap_or(i64::MAX);
    let body = serde_json::json!({
        "token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "expires_at": expires_at,
        "albums": albums,
        "albums_complete": complete,
    });
    Ok(json_text(StatusCode::CREATED, body.to_string(), "no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::verify::DEFAULT_MAX_TOKEN_BYTES;
    use crate::seal::SigningKeyPair;

    #[test]
    fn worst_case_token_fits_the_limit() {
        let key = SigningKeyPair::generate().unwrap();
        let albums: Vec<String> = (0..MAX_TOKEN_ALBUMS)
            .map(|i| format!("{:0>64}", i))
            .collect();
        let mut req = MintRequest::new("u".repeat(128), Scope::Play);
        req.albums = albums;
        req.issuer = "i".repeat(32);
        req.audience = "a".repeat(32);
        let token = mint(&key, &req, 1_800_000_000).unwrap();
        assert!(
            token.len() <= DEFAULT_MAX_TOKEN_BYTES,
            "{} bytes",
            token.len()
        );
    }

    #[test]
    fn bodies() {
        assert!(parse(b"").unwrap().albums.is_none());
        assert!(parse(b"{}").unwrap().albums.is_none());
        assert_eq!(
            parse(br#"{"albums":["a","b"]}"#)
                .unwrap()
                .albums
                .unwrap()
                .len(),
            2
        );
        assert_eq!(parse(br#"{"albums":["A"]}"#).unwrap_err().field, "albums");
        assert_eq!(parse(br#"{"albumz":[]}"#).unwrap_err().field, "body");
        let many: Vec<String> = (0..=MAX_TOKEN_ALBUMS).map(|i| format!("a{i}")).collect();
        let body = serde_json::json!({ "albums": many }).to_string();
        assert_eq!(parse(body.as_bytes()).unwrap_err().field, "albums");
    }
}

#[cfg(test)]
#[path = "play_token_proptests.rs"]
mod proptests;
