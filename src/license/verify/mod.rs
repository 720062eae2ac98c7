//! Token verification: size limit, header policy, `kid` lookup among the loaded public keys,
//! EdDSA signature, then the claims (issuer, audience, required claims, validity window).
//!
//! - `header`: the header policy, which picks the key before any crypto runs.
//! - `claim_rules`: the claims as they arrive, and the rules they must meet.
//! - `error`: [`TokenError`] and the mapping of jsonwebtoken's errors onto it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

use super::claims::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Scope};
use super::clock::{Clock, SystemClock};
use crate::keys::Keyring;
use crate::seal::{PublicSigningKey, SigningKid};

mod claim_rules;
mod error;
mod header;

use claim_rules::WireClaims;
pub use error::TokenError;
use error::body_error;

/// Default clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// Default size limit of a token, bytes. Ours are ~400 bytes plus ~20 per album.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;
/// The scopes encore's own signing keys vouch for; `account` is the account service's alone.
pub const ENCORE_SCOPES: [Scope; 4] = [Scope::Play, Scope::Edge, Scope::Store, Scope::Admin];
/// The scopes an account-service key vouches for (`keys/accounts/`): `account` only.
pub const ACCOUNT_SCOPES: [Scope; 1] = [Scope::Account];

/// Default longest lifetime (`exp - iat`) of a `play` token, seconds: 7 days. It bounds how
/// long a refund must be remembered in the revocation list.
pub const DEFAULT_MAX_PLAY_LIFETIME_SECONDS: u64 = 7 * 86_400;

/// What a token must say to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The only accepted `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
    pub leeway_seconds: u64,
    /// Longer tokens are refused before any parsing.
    pub max_token_bytes: usize,
    /// `play` tokens living longer than this (`exp - iat`) are refused.
    pub max_play_lifetime_seconds: u64,
    /// Tokens of any scope living longer than this are refused: a superseded signing key is
    /// retired this long (plus leeway) after its successor starts signing.
    pub max_lifetime_seconds: u64,
    /// The scopes this verifier's keys may vouch for (its trust domain): a token of any other
    /// scope is refused, however well signed.
    pub scopes: Vec<Scope>,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_play_lifetime_seconds: DEFAULT_MAX_PLAY_LIFETIME_SECONDS,
            max_lifetime_seconds: DEFAULT_MAX_PLAY_LIFETIME_SECONDS,
            scopes: ENCORE_SCOPES.to_vec(),
        }
    }
}

/// A token whose signature and claims checked out. Only [`TokenVerifier`] makes one, so a
/// value of this type is proof of verification (the entitlement checks take it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    claims: Claims,
    token_hash: [u8; 32],
}

impl VerifiedToken {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// SHA-256 of the token text: its cache key, and a name for it in logs that does not
    /// reveal it.
    pub fn token_hash(&self) -> &[u8; 32] {
        &self.token_hash
    }
}

/// Verifies encore tokens against the public signing keys, in memory: never fetches a key.
pub struct TokenVerifier {
    /// One key per kid, with the time it stops being trusted (its retirement), if any; each
    /// key allows exactly one algorithm, EdDSA.
    keys: HashMap<SigningKid, (DecodingKey, Option<u64>)>,
    validation: Validation,
    config: VerifierConfig,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<_> = self.keys.keys().map(ToString::to_string).collect();
        kids.sort();
        f.debug_struct("TokenVerifier")
            .field("kids", &kids)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier trusting `keys` (active and retired), reading the system clock.
    pub fn new(keys: impl IntoIterator<Item = PublicSigningKey>, config: VerifierConfig) -> Self {
        Self::with_windows(keys.into_iter().map(|k| (k, None)), config)
    }

    /// A verifier trusting each key until its time (`None`: no end), reading the system clock.
    pub fn with_windows(
        keys: impl IntoIterator<Item = (PublicSigningKey, Option<u64>)>,
        config: VerifierConfig,
    ) -> Self {
        let keys = keys
            .into_iter()
            // `from_ed_der` stores bytes as given. aws-lc parses 32 bytes as the raw RFC 8032
            // key and anything longer as SPKI DER; we pass the raw key, which is also what
            // the ring and rust_crypto backends take and what a JWK `x` holds.
            // `raw_public_key_is_what_aws_lc_wants` below holds this down.
            .map(|(key, until)| {
                let decoding = DecodingKey::from_ed_der(key.verifying_key().as_bytes());
                (key.kid(), (decoding, until))
            })
            .collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        // jsonwebtoken ignores "iat" here; `WireClaims::into_claims` requires it.
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub", "iat"]);
        // jsonwebtoken 10.4 compares `exp`/`nbf` with `SystemTime::now()` and cannot take a
        // clock, so the validity window is checked in `check_times` against ours (same rules,
        // same leeway). The presence of `exp` is still enforced above.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = config.leeway_seconds;
        Self {
            keys,
            validation,
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// A verifier trusting the signing keys `keyring` trusts now (pending, active, and
    /// superseded ones until their retirement; never revoked ones).
    pub fn from_keyring(keyring: &Keyring, config: VerifierConfig) -> Self {
        Self::with_windows(
            keyring
                .public_keys()
                .into_iter()
                .map(|t| (t.key, t.trusted_until)),
            config,
        )
    }

    /// The same verifier reading `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The accepted issuer, audience and limits.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// The clock it reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How many keys it trusts.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Whether a key with this kid is trusted.
    pub fn trusts(&self, kid: SigningKid) -> bool {
        self.keys.contains_key(&kid)
    }

    /// Verifies `token` completely (no cache).
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.check_size(token)?;
        self.verify_hashed(token, Sha256::digest(token.as_bytes()).into())
    }

    /// Refuses tokens over the size limit; done before hashing or parsing anything.
    pub(crate) fn check_size(&self, token: &str) -> Result<(), TokenError> {
        if token.len() > self.config.max_token_bytes {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: self.config.max_token_bytes,
            });
        }
        Ok(())
    }

    /// [`verify`](Self::verify) for a token already size-checked and hashed (by the cache).
    pub(crate) fn verify_hashed(
        &self,
        token: &str,
        token_hash: [u8; 32],
    ) -> Result<VerifiedToken, TokenError> {
        let key = self.header_key(token)?;
        let data =
            jsonwebtoken::decode::<WireClaims>(token, key, &self.validation).map_err(body_error)?;
        let claims = data.claims.into_claims()?;
        self.check_scope_and_lifetime(&claims)?;
        self.check_times(&claims)?;
        Ok(VerifiedToken { claims, token_hash })
    }
}

#[cfg(test)]
mod tests;
