//! Minting: signs a [`Claims`] set with the active Ed25519 key into a compact JWT
//! (`alg: EdDSA`, `typ: JWT`, `kid`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::claims::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Scope};
use crate::catalog::{AlbumId, CatalogError};
use crate::seal::key::fill_random;
use crate::seal::{RngError, SigningError, SigningKeyPair};

/// Default token lifetime, seconds.
pub const DEFAULT_TTL_SECONDS: u64 = 3600;

/// Random bytes in a `jti` (written as twice as many hex digits).
const JTI_BYTES: usize = 16;

/// What to put in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// Subject (user id, edge name, service name). Not empty.
    pub sub: String,
    /// Album ids bought; each must be a lowercase slug.
    pub albums: Vec<String>,
    /// What the token may do.
    pub scope: Scope,
    /// Lifetime from `now`, seconds; more than 0.
    pub ttl_seconds: u64,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Optional `nbf`, seconds since the Unix epoch.
    pub not_before: Option<u64>,
}

impl MintRequest {
    /// A request for `sub` with `scope`, no albums, the default lifetime, issuer and audience.
    pub fn new(sub: impl Into<String>, scope: Scope) -> Self {
        Self {
            sub: sub.into(),
            albums: Vec::new(),
            scope,
            ttl_seconds: DEFAULT_TTL_SECONDS,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            not_before: None,
        }
    }
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// A required text field is empty.
    #[error("the {0} must not be empty")]
    Empty(&'static str),
    /// An album id is not a lowercase slug.
    #[error(transparent)]
    InvalidAlbum(#[from] CatalogError),
    /// The subject is not 1-128 of `A-Za-z0-9._:@-` (the rule of a purchase's `user`).
    #[error("the subject {0}")]
    InvalidSubject(String),
    /// A zero lifetime would mint a token that is already expired.
    #[error("the lifetime must be more than 0 seconds")]
    ZeroTtl,
    /// `now + ttl` does not fit in 64 bits.
    #[error("the lifetime is too long")]
    TtlTooLong,
    /// The signing key could not be exported for signing.
    #[error("cannot use the signing key: {0}")]
    Key(#[from] SigningError),
    /// No randomness for the `jti`.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// jsonwebtoken refused to sign (key format, serialization).
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token for `req` with `key`, issued at `now` (seconds since the Unix epoch).
///
/// `exp` is `now + ttl`; a test makes an expired token by passing a `now` in the past.
pub fn mint(key: &SigningKeyPair, req: &MintRequest, now: u64) -> Result<String, MintError> {
    for (name, value) in [
        ("subject", &req.sub),
        ("issuer", &req.issuer),
        ("audience", &req.audience),
    ] {
        if value.is_empty() {
            return Err(MintError::Empty(name));
        }
    }
    crate::ledger::purchase::check_identifier(&req.sub).map_err(MintError::InvalidSubject)?;
    for album in &req.albums {
        AlbumId::parse(album)?;
    }
    if req.ttl_seconds == 0 {
        return Err(MintError::ZeroTtl);
    }
    let exp = now
        .checked_add(req.ttl_seconds)
        .ok_or(MintError::TtlTooLong)?;

    let mut jti = [0u8; JTI_BYTES];
    fill_random(&mut jti)?;
    let claims = Claims {
        iss: req.issuer.clone(),
        sub: req.sub.clone(),
        aud: req.audience.clone(),
        exp,
        iat: now,
        nbf: req.not_before,
        jti: hex::encode(jti),
        scope: req.scope,
        albums: req.albums.clone(),
    };

    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid().to_string());
    // aws-lc's `Ed25519KeyPair::from_pkcs8` reads PKCS#8 v1 (what the keyring writes) as
    // well as v2; `minted_token_verifies` holds this down. Both the DER here and the copy
    // inside `EncodingKey` are zeroized on drop.
    let der = key.to_pkcs8_der()?;
    let encoding = EncodingKey::from_ed_der(&der);
    Ok(jsonwebtoken::encode(&header, &claims, &encoding)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::testutil::{Fixture, NOW};

    #[test]
    fn minted_token_has_our_header_and_fresh_jti() {
        let fx = Fixture::new();
        // The keyring hands out PKCS#8 v1 (48 bytes); aws-lc signs with it.
        assert_eq!(fx.key.to_pkcs8_der().unwrap().len(), 48);
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.not_before = Some(NOW + 5);
        let a = fx.mint(&req);
        let b = fx.mint(&req);
        let header = jsonwebtoken::decode_header(&a).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid, Some(fx.key.kid().to_string()));
        assert!(header.jku.is_none() && header.jwk.is_none());

        fx.clock.set(NOW + 5);
        let verifier = fx.verifier();
        let (ca, cb) = (verifier.verify(&a).unwrap(), verifier.verify(&b).unwrap());
        assert_ne!(ca.claims().jti, cb.claims().jti);
        assert!(ca.claims().jti.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(ca.claims().nbf, Some(NOW + 5));
    }

    #[test]
    fn bad_requests_are_refused() {
        let fx = Fixture::new();
        let ok = MintRequest::new("fan-1", Scope::Play);

        let mut req = ok.clone();
        req.sub = String::new();
        assert!(matches!(
            mint(&fx.key, &req, NOW),
            Err(MintError::Empty("subject"))
        ));

        for sub in ["fan-1\nINFO encore::audit: forged", "fan 1", "f\u{1b}[2J"] {
            let mut req = ok.clone();
            req.sub = sub.into();
            assert!(
                matches!(mint(&fx.key, &req, NOW), Err(MintError::InvalidSubject(_))),
                "{sub:?}"
            );
        }

        let mut req = ok.clone();
        req.albums = vec!["first-light".into(), "First Light".into()];
        let err = mint(&fx.key, &req, NOW).unwrap_err();
        assert!(matches!(err, MintError::InvalidAlbum(_)));
        assert!(err.to_string().contains("First Light"), "{err}");

        let mut req = ok.clone();
        req.ttl_seconds = 0;
        assert!(matches!(mint(&fx.key, &req, NOW), Err(MintError::ZeroTtl)));

        let mut req = ok;
        req.ttl_seconds = u64::MAX;
        assert!(matches!(
            mint(&fx.key, &req, NOW),
            Err(MintError::TtlTooLong)
        ));
    }
}
