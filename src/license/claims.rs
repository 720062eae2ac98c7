//! The claims an encore token carries: who (`sub`), what they bought (`albums`), what the token
//! may do (`scope`), and its validity window.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Default `iss` of tokens encore mints and accepts.
pub const DEFAULT_ISSUER: &str = "encore";
/// Default `aud` of tokens encore mints and accepts.
pub const DEFAULT_AUDIENCE: &str = "encore";

/// What a token may be used for. Serialized lowercase in the `scope` claim; DO NOT RENAME:
/// issued tokens carry these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A fan's player: licenses and segments, full tracks for albums in `albums`, the preview
    /// rendition otherwise.
    Play,
    /// A CDN edge node: every sealed segment and manifest, never a license.
    Edge,
    /// The store's payment backend (purchases API).
    Store,
    /// Operators and licensing staff.
    Admin,
    /// A fan's account management.
    Account,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 5] = [
        Scope::Play,
        Scope::Edge,
        Scope::Store,
        Scope::Admin,
        Scope::Account,
    ];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Play => "play",
            Scope::Edge => "edge",
            Scope::Store => "store",
            Scope::Admin => "admin",
            Scope::Account => "account",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string is not a scope name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a scope: expected play, edge, store, admin or account")]
pub struct ScopeParseError {
    input: String,
}

impl FromStr for Scope {
    type Err = ScopeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeParseError {
                input: s.to_owned(),
            })
    }
}

/// The payload of an encore token (RFC 7519 registered claims plus `scope` and `albums`).
///
/// Album ids in `albums` are lowercase slugs (see [`crate::catalog::AlbumId`]), so an
/// entitlement check is a plain string comparison: two ids that differ in any byte are
/// different albums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user (or edge, or service) the token was issued to.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Token id: 32 random hex digits.
    pub jti: String,
    /// What the token may do.
    pub scope: Scope,
    /// Album ids the subject bought.
    #[serde(default)]
    pub albums: Vec<String>,
}

impl Claims {
    /// Whether `album` is among the albums bought (exact comparison of slugs).
    pub fn owns(&self, album: &str) -> bool {
        self.albums.iter().any(|a| a == album)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_round_trips_lowercase() {
        for scope in Scope::ALL {
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        assert!("Play".parse::<Scope>().is_err());
        assert!(serde_json::from_str::<Scope>("\"superuser\"").is_err());
    }

    #[test]
    fn owns_is_exact() {
        let claims = Claims {
            iss: "encore".into(),
            sub: "u1".into(),
            aud: "encore".into(),
            exp: 2,
            iat: 1,
            nbf: None,
            jti: "j".into(),
            scope: Scope::Play,
            albums: vec!["first-light".into()],
        };
        assert!(claims.owns("first-light"));
        assert!(!claims.owns("First-Light"));
        assert!(!claims.owns("first-light "));
        assert!(!claims.owns("first"));
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("nbf").is_none());
    }
}
