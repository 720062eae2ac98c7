//! The claims once the signature holds: every required one present, `sub` a plain
//! identifier, the scope one the signing key may vouch for, the lifetime within its limits,
//! and the validity window against our clock.

use serde::Deserialize;

use super::TokenVerifier;
use super::error::TokenError;
use crate::ledger::purchase::check_identifier;
use crate::license::claims::{Claims, Scope};

impl TokenVerifier {
    /// The scope and lifetime rules of the verifier's config.
    pub(super) fn check_scope_and_lifetime(&self, claims: &Claims) -> Result<(), TokenError> {
        // Checked before anything else of the claims: a key outside its trust domain vouches
        // for nothing at all.
        if !self.config.scopes.contains(&claims.scope) {
            return Err(TokenError::ScopeNotVouched);
        }
        if claims.exp.saturating_sub(claims.iat) > self.config.max_lifetime_seconds {
            // It could outlive the signing key's retirement, which assumes this bound.
            return Err(TokenError::InvalidClaims(
                "token lifetime exceeds the limit",
            ));
        }
        if claims.scope == Scope::Play
            && claims.exp.saturating_sub(claims.iat) > self.config.max_play_lifetime_seconds
        {
            // A refund is remembered only this long; a longer-lived token would outlive it.
            return Err(TokenError::InvalidClaims(
                "play token lifetime exceeds the limit",
            ));
        }
        Ok(())
    }

    /// The validity window against our clock: `iat - leeway <= now`, `nbf - leeway <= now`,
    /// `now < exp + leeway`. The cache re-runs this on every hit.
    pub(crate) fn check_times(&self, claims: &Claims) -> Result<(), TokenError> {
        let now = self.clock.now_unix();
        let leeway = self.config.leeway_seconds;
        if now >= claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        let not_before = claims.nbf.map_or(claims.iat, |nbf| nbf.max(claims.iat));
        if not_before > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// The claims as they arrive: optional, so a missing one is named rather than reported as a
/// JSON error (whose message could echo claim values).
#[derive(Deserialize)]
pub(super) struct WireClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    nbf: Option<u64>,
    jti: Option<String>,
    scope: Option<Scope>,
    #[serde(default)]
    albums: Vec<String>,
}

impl WireClaims {
    pub(super) fn into_claims(self) -> Result<Claims, TokenError> {
        fn required<T>(value: Option<T>, name: &str) -> Result<T, TokenError> {
            value.ok_or_else(|| TokenError::MissingClaim(name.to_owned()))
        }
        let claims = Claims {
            iss: required(self.iss, "iss")?,
            sub: required(self.sub, "sub")?,
            aud: required(self.aud, "aud")?,
            exp: required(self.exp, "exp")?,
            iat: required(self.iat, "iat")?,
            nbf: self.nbf,
            jti: required(self.jti, "jti")?,
            scope: required(self.scope, "scope")?,
            albums: self.albums,
        };
        if claims.sub.is_empty() {
            return Err(TokenError::InvalidClaims("sub is empty"));
        }
        // The same rule as a purchase's `user`: a `sub` is logged, audited and looked up in
        // the ledger, so it never carries a newline, a space or anything to escape.
        if check_identifier(&claims.sub).is_err() {
            return Err(TokenError::InvalidClaims(
                "sub must be 1-128 of A-Za-z0-9._:@-",
            ));
        }
        Ok(claims)
    }
}
