//! Finds the bearer token in a request and verifies it through the cache.

use std::sync::Arc;

use http::HeaderMap;

use super::app::App;
use super::metrics::OutcomeLabels;
use super::problem::ApiError;
use crate::license::{TokenError, TokenMemo, VerifiedToken};

/// The token from `Authorization: Bearer`, else from the `access_token` query parameter.
pub fn bearer<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    bearer_in(authorization, query)
}

/// [`bearer`] from the `Authorization` value itself (`None`: absent or not visible ASCII).
pub fn bearer_in<'a>(authorization: Option<&'a str>, query: Option<&'a str>) -> Option<&'a str> {
    if let Some(v) = authorization {
        let v = v.trim();
        // `get`, not indexing: byte 7 may fall inside a character.
        return match (v.get(..7), v.get(7..)) {
            (Some(scheme), Some(token))
                if scheme.eq_ignore_ascii_case("bearer ") && !token.is_empty() =>
            {
                Some(token.trim())
            }
            _ => None,
        };
    }
    access_token(query)
}

/// The `access_token` query parameter, if set and not empty.
fn access_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .filter(|t| !t.is_empty())
}

/// The token when it came as the `access_token` query parameter (no `Authorization` header):
/// what HLS playlists must repeat in their URIs for a player that cannot send headers.
pub fn query_token<'a>(headers: &HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    if headers.contains_key(http::header::AUTHORIZATION) {
        return None;
    }
    access_token(query)
}

/// Verifies the request's token, counting the outcome.
pub fn authenticate(
    app: &App,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<VerifiedToken>, ApiError> {
    verify_counted(app, None, bearer(headers, query))
}

/// Verifies `token` (found with [`bearer`]) through the connection's memo of its last token
/// (see [`TokenMemo`]), counting the outcome.
pub fn authenticate_on(
    app: &App,
    memo: &TokenMemo,
    token: Option<&str>,
) -> Result<Arc<VerifiedToken>, ApiError> {
    verify_counted(app, Some(memo), token)
}

fn verify_counted(
    app: &App,
    memo: Option<&TokenMemo>,
    token: Option<&str>,
) -> Result<Arc<VerifiedToken>, ApiError> {
    let Some(token) = token else {
        app.metrics
            .token_checks
            .get_or_create(&OutcomeLabels {
                outcome: "token-missing",
            })
            .inc();
        return Err(ApiError::TokenMissing);
    };
    let keys = app.keys();
    let verified = match memo {
        Some(memo) => keys.tokens.verify_memo(memo, token),
        None => keys.tokens.verify(token),
    };
    match verified {
        Ok(t) => {
            app.metrics.hot.token_ok.inc();
            Ok(t)
        }
        Err(e) => {
            app.metrics
                .token_checks
                .get_or_create(&OutcomeLabels {
                    outcome: e.problem_type(),
                })
                .inc();
            Err(ApiError::Token(e))
        }
    }
}

/// Verifies an `account` token from the platform's account service (its own keys and
/// issuer, `keys/accounts/`). 401 when no account service is trusted.
pub fn authenticate_account(
    app: &App,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<VerifiedToken>, ApiError> {
    let token = bearer(headers, query).ok_or(ApiError::TokenMissing)?;
    let keys = app.keys();
    let accounts = keys
        .accounts
        .as_ref()
        .ok_or(ApiError::Token(TokenError::UnknownKid))?;
    let verified = accounts.verify(token).map_err(ApiError::Token)?;
    app.metrics
        .token_checks
        .get_or_create(&OutcomeLabels {
            outcome: "ok-account",
        })
        .inc();
    Ok(verified)
}

/// Verifies a token that may be either encore's own (e.g. `store`) or the account
/// service's: encore's keys first, the account service's when encore does not know the key.
pub fn authenticate_any(
    app: &App,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<VerifiedToken>, ApiError> {
    match authenticate(app, headers, query) {
        Err(ApiError::Token(TokenError::UnknownKid)) if app.keys().accounts.is_some() => {
            authenticate_account(app, headers, query)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h, Some("a=1&access_token=abc")), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(bearer(&h, Some("access_token=abc")), Some("xyz"));
        h.insert(http::header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&h, None), None);
    }

    #[test]
    fn a_scheme_cut_inside_a_character_is_not_bearer() {
        // Both callers pass visible ASCII today; the function itself must not rely on it.
        assert_eq!(bearer_in(Some("Beare\u{e9} x"), None), None);
        assert_eq!(bearer_in(Some("\u{16b2c}\u{16b2c} token"), None), None);
        assert_eq!(bearer_in(Some("bearer \u{e9}t"), None), Some("\u{e9}t"));
    }

    #[test]
    fn query_token_only_when_no_header() {
        let mut h = HeaderMap::new();
        assert_eq!(query_token(&h, Some("access_token=abc")), Some("abc"));
        assert_eq!(query_token(&h, Some("x=1")), None);
        h.insert(http::header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(query_token(&h, Some("access_token=abc")), None);
    }
}
