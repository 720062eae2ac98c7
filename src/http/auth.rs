//! Finds the bearer token in a request and verifies it through the cache.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;

use super::app::App;
use super::metrics::OutcomeLabels;
use super::problem::ApiError;
use super::router::Authorization;
use crate::license::{TokenError, TokenMemo, VerifiedToken};

/// The token from `Authorization: Bearer`, else from the `access_token` query parameter.
pub fn bearer<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<Cow<'a, str>> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    bearer_in(authorization, query)
}

/// [`bearer`] from the `Authorization` value itself (`None`: absent or not visible ASCII).
pub fn bearer_in<'a>(
    authorization: Option<&'a str>,
    query: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    if let Some(v) = authorization {
        let v = v.trim();
        // `get`, not indexing: byte 7 may fall inside a character.
        return match (v.get(..7), v.get(7..)) {
            (Some(scheme), Some(token))
                if scheme.eq_ignore_ascii_case("bearer ") && !token.is_empty() =>
            {
                Some(Cow::Borrowed(token.trim()))
            }
            _ => None,
        };
    }
    access_token(query?)
}

/// The `access_token` query parameter, form-decoded as RFC 6750 §2.3 requires (its name too),
/// if set and not empty.
fn access_token(query: &str) -> Option<Cow<'_, str>> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "access_token")
        .map(|(_, token)| token)
        .filter(|t| !t.is_empty())
}

/// The token when it came as the `access_token` query parameter (no `Authorization` header):
/// what HLS playlists must repeat in their URIs for a player that cannot send headers.
/// It is the parameter as sent (still encoded), since it goes back into a query string.
pub fn query_token<'a>(headers: &HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    if headers.contains_key(http::header::AUTHORIZATION) {
        return None;
    }
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .filter(|t| !t.is_empty())
}

/// Who made a request, as far as its route asked (see [`Authorization`]).
#[derive(Debug)]
pub enum Caller {
    /// A public route: no token was read.
    Anyone,
    /// A gated route's caller, with the token verified.
    Bearer(Arc<VerifiedToken>),
}

impl Caller {
    /// The verified token of a gated route's caller. A route declared public has none: an
    /// operation asking for it anyway is a routing mistake, a 500 rather than a guess.
    pub fn token(&self) -> Result<&VerifiedToken, ApiError> {
        match self {
            Caller::Bearer(token) => Ok(token),
            Caller::Anyone => Err(ApiError::Internal(
                "a route declared public asked for the caller's token".into(),
            )),
        }
    }
}

/// The caller of a routed request, authenticated as its route declares: the one place every
/// route but the segment fast path (see [`authenticate_on`]) takes its token.
pub fn caller(
    app: &App,
    need: Authorization,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Caller, ApiError> {
    match need {
        Authorization::Public => Ok(Caller::Anyone),
        Authorization::Bearer => authenticate(app, headers, query).map(Caller::Bearer),
    }
}

/// Verifies the request's token, counting the outcome. Every gated route takes its token
/// here, so whose key signed it is decided in one place: encore's keys vouch for `play`,
/// `edge`, `store` and `admin`, the account service's (`keys/accounts/`) for `account` only
/// (each verifier refuses the others' scopes); the route then checks the scope.
pub fn authenticate(
    app: &App,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<VerifiedToken>, ApiError> {
    verify_counted(app, None, bearer(headers, query).as_deref())
}

/// Verifies `token` (found with [`bearer`], perhaps in another URL than the request's own),
/// counting the outcome: for a route that answers a refusal its own way (an edge's check).
pub fn authenticate_token(app: &App, token: Option<&str>) -> Result<Arc<VerifiedToken>, ApiError> {
    verify_counted(app, None, token)
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
    let verified = match (verified, &keys.accounts) {
        // Not signed by encore: perhaps by the account service, whose verifier admits
        // `account` tokens only.
        (Err(TokenError::UnknownKid), Some(accounts)) => match accounts.verify(token) {
            Ok(t) => {
                app.metrics
                    .token_checks
                    .get_or_create(&OutcomeLabels {
                        outcome: "ok-account",
                    })
                    .inc();
                return Ok(t);
            }
            Err(e) => Err(e),
        },
        (other, _) => other,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(
            bearer(&h, Some("a=1&access_token=abc")).as_deref(),
            Some("abc")
        );
        h.insert(http::header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(bearer(&h, Some("access_token=abc")).as_deref(), Some("xyz"));
        h.insert(http::header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&h, None), None);
    }

    #[test]
    fn access_token_is_form_decoded() {
        let h = HeaderMap::new();
        let found = |q: &str| bearer(&h, Some(q)).map(Cow::into_owned);
        assert_eq!(found("access_token=a%2Eb.c").as_deref(), Some("a.b.c"));
        assert_eq!(found("x=1&access%5Ftoken=abc").as_deref(), Some("abc"));
        assert_eq!(found("access_token=").as_deref(), None);
        assert_eq!(found("access_tokens=abc").as_deref(), None);
    }

    #[test]
    fn a_scheme_cut_inside_a_character_is_not_bearer() {
        // Both callers pass visible ASCII today; the function itself must not rely on it.
        assert_eq!(bearer_in(Some("Beare\u{e9} x"), None), None);
        assert_eq!(bearer_in(Some("\u{16b2c}\u{16b2c} token"), None), None);
        assert_eq!(
            bearer_in(Some("bearer \u{e9}t"), None).as_deref(),
            Some("\u{e9}t")
        );
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
