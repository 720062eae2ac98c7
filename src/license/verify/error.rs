//! [`TokenError`], and how jsonwebtoken's errors map onto it without echoing the token.

use jsonwebtoken::errors::ErrorKind;

/// Why a token was refused. Messages never contain the token or its claims' values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`VerifierConfig::max_token_bytes`](super::VerifierConfig::max_token_bytes);
    /// not parsed at all.
    #[error("token is {len} bytes; the limit is {max}")]
    TooLarge {
        /// The token's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a compact JWS with a JSON header we can read.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The header names a key source or extension encore never honours (`jku`, `x5u`, `jwk`,
    /// `x5c`, `crit`): keys come only from the keys directory.
    #[error("token header carries {0:?}, which encore refuses")]
    ForbiddenHeader(&'static str),
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// The `kid` names no loaded signing key.
    #[error("token is signed with an unknown key")]
    UnknownKid,
    /// `alg` is not the one allowed for that key (EdDSA).
    #[error("token algorithm is not allowed (only EdDSA is)")]
    DisallowedAlgorithm,
    /// The signature does not match.
    #[error("token signature is invalid")]
    BadSignature,
    /// Past `exp` (plus leeway).
    #[error("token has expired")]
    Expired,
    /// Before `nbf` or `iat` (minus leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `aud` is not ours.
    #[error("token is for another audience")]
    WrongAudience,
    /// `iss` is not ours.
    #[error("token is from another issuer")]
    WrongIssuer,
    /// A required claim is absent.
    #[error("token has no {0:?} claim")]
    MissingClaim(String),
    /// The `scope` is outside what the signing key's issuer may vouch for: an account-service
    /// key signing a `store` token, or encore's key signing an `account` one.
    #[error("token scope is not one its signing key may vouch for")]
    ScopeNotVouched,
    /// A claim has the wrong type or value (the reason names the claim, not its value).
    #[error("token claims are invalid: {0}")]
    InvalidClaims(&'static str),
    /// The verification key could not be used; a fault on our side, not the client's.
    #[error("token could not be verified with the configured key")]
    KeyUnusable,
}

impl TokenError {
    /// The problem `type` name for the 401 response (`docs/HTTP.md`).
    pub fn problem_type(&self) -> &'static str {
        match self {
            TokenError::Expired => "token-expired",
            TokenError::TooLarge { .. }
            | TokenError::Malformed(_)
            | TokenError::ForbiddenHeader(_)
            | TokenError::MissingKid
            | TokenError::UnknownKid
            | TokenError::DisallowedAlgorithm
            | TokenError::BadSignature
            | TokenError::NotYetValid
            | TokenError::WrongAudience
            | TokenError::WrongIssuer
            | TokenError::MissingClaim(_)
            | TokenError::ScopeNotVouched
            | TokenError::InvalidClaims(_)
            | TokenError::KeyUnusable => "token-invalid",
        }
    }
}

/// Maps an error from `decode_header`.
pub(super) fn header_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::Json(_) => {
            TokenError::Malformed("header is not JSON of the expected shape (or alg is unknown)")
        }
        other => kind_error(other),
    }
}

/// Maps an error from `decode` (the header already parsed, so JSON errors are the claims').
pub(super) fn body_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::Json(_) => TokenError::InvalidClaims("a claim has the wrong type or value"),
        other => kind_error(other),
    }
}

fn kind_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidToken => TokenError::Malformed("not three dot-separated parts"),
        ErrorKind::Base64(_) => TokenError::Malformed("a part is not base64url"),
        ErrorKind::Utf8(_) => TokenError::Malformed("a part is not UTF-8"),
        ErrorKind::Json(_) => TokenError::Malformed("a part is not JSON of the expected shape"),
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenError::DisallowedAlgorithm,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(name) => TokenError::MissingClaim(name.clone()),
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::InvalidSubject => {
            TokenError::InvalidClaims("a claim has the wrong type or value")
        }
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::RsaFailedSigning
        | ErrorKind::Signing(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Provider(_) => TokenError::KeyUnusable,
        // `ErrorKind` is `#[non_exhaustive]`, so a wildcard is forced on us; a kind added in a
        // later jsonwebtoken is refused as unverifiable, never accepted.
        _ => TokenError::KeyUnusable,
    }
}
