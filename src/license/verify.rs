//! Token verification: size limit, header policy, `kid` lookup among the loaded public keys,
//! EdDSA signature, then the claims (issuer, audience, required claims, validity window).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::claims::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Scope};
use super::clock::{Clock, SystemClock};
use crate::keys::Keyring;
use crate::ledger::purchase::check_identifier;
use crate::seal::{PublicSigningKey, SigningKid};

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

/// Why a token was refused. Messages never contain the token or its claims' values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`VerifierConfig::max_token_bytes`]; not parsed at all.
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
        // jsonwebtoken ignores "iat" here; `check_claims` requires it.
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
        let header = jsonwebtoken::decode_header(token).map_err(header_error)?;
        // Keys come from the keys directory only; a token must not point at its own key.
        let forbidden = [
            ("jku", header.jku.is_some()),
            ("x5u", header.x5u.is_some()),
            ("jwk", header.jwk.is_some()),
            ("x5c", header.x5c.is_some()),
            // We implement no JWS extension, so any critical one must be refused (RFC 7515
            // §4.1.11).
            ("crit", header.crit.is_some()),
        ];
        if let Some((name, _)) = forbidden.iter().find(|(_, present)| *present) {
            return Err(TokenError::ForbiddenHeader(name));
        }
        let kid = header.kid.as_deref().ok_or(TokenError::MissingKid)?;
        let kid: SigningKid = kid.parse().map_err(|_| TokenError::UnknownKid)?;
        let (key, until) = self.keys.get(&kid).ok_or(TokenError::UnknownKid)?;
        // A retired key is treated as unknown: it has left the JWKS too.
        if until.is_some_and(|t| self.clock.now_unix() >= t) {
            return Err(TokenError::UnknownKid);
        }
        // The key's allow-list: EdDSA only. Refusing here (not only in `Validation`) keeps
        // `none` and HS256-with-the-public-key-as-secret out before any crypto runs.
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::DisallowedAlgorithm);
        }
        let data =
            jsonwebtoken::decode::<WireClaims>(token, key, &self.validation).map_err(body_error)?;
        let claims = data.claims.into_claims()?;
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
        self.check_times(&claims)?;
        Ok(VerifiedToken { claims, token_hash })
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
struct WireClaims {
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
    fn into_claims(self) -> Result<Claims, TokenError> {
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

/// Maps an error from `decode_header`.
fn header_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::Json(_) => {
            TokenError::Malformed("header is not JSON of the expected shape (or alg is unknown)")
        }
        other => kind_error(other),
    }
}

/// Maps an error from `decode` (the header already parsed, so JSON errors are the claims').
fn body_error(e: jsonwebtoken::errors::Error) -> TokenError {
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

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use super::*;
    use crate::license::mint::{MintRequest, mint};
    use crate::license::testutil::{Fixture, NOW, b64, sign_with};
    use crate::seal::SigningKeyPair;

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    #[test]
    fn minted_token_verifies() {
        let fx = Fixture::new();
        let token = fx.token("fan-1", Scope::Play, &["first-light", "second-wind"]);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid, Some(fx.key.kid().to_string()));

        let verified = fx.verifier().verify(&token).unwrap();
        let claims = verified.claims();
        assert_eq!(claims.sub, "fan-1");
        assert_eq!(claims.iss, "encore");
        assert_eq!(claims.aud, "encore");
        assert_eq!(claims.iat, NOW);
        assert_eq!(claims.exp, NOW + 3600);
        assert_eq!(claims.nbf, None);
        assert_eq!(claims.scope, Scope::Play);
        assert_eq!(claims.albums, ["first-light", "second-wind"]);
        assert_eq!(claims.jti.len(), 32);
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert_eq!(verified.token_hash(), &hash);
    }

    #[test]
    fn raw_public_key_is_what_aws_lc_wants() {
        let fx = Fixture::new();
        let public = &fx.public[0];
        let token = fx.token("fan-1", Scope::Play, &[]);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["encore"]);
        validation.validate_exp = false;
        let raw = DecodingKey::from_ed_der(public.verifying_key().as_bytes());
        assert!(jsonwebtoken::decode::<Value>(&token, &raw, &validation).is_ok());
        // aws-lc also takes SPKI DER (it switches on length); a wrong key does not verify.
        let spki = DecodingKey::from_ed_der(public.spki_der());
        assert!(jsonwebtoken::decode::<Value>(&token, &spki, &validation).is_ok());
        let other = SigningKeyPair::generate().unwrap().verifying_key();
        let wrong = DecodingKey::from_ed_der(other.as_bytes());
        let err = jsonwebtoken::decode::<Value>(&token, &wrong, &validation).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
        // The SPKI PEM route and the JWK `x` route land on the same 32 bytes.
        let pem = DecodingKey::from_ed_pem(public.to_spki_pem().unwrap().as_bytes()).unwrap();
        assert_eq!(pem.as_bytes(), public.verifying_key().as_bytes());
        let jwk = DecodingKey::from_ed_components(&b64(public.verifying_key().as_bytes())).unwrap();
        assert_eq!(jwk.as_bytes(), public.verifying_key().as_bytes());
    }

    #[test]
    fn retired_keys_still_verify_and_kids_pick_the_key() {
        let fx = Fixture::new();
        let old = SigningKeyPair::generate().unwrap();
        let mut keys = fx.public.clone();
        keys.push(old.public().unwrap());
        let verifier =
            TokenVerifier::new(keys, VerifierConfig::default()).with_clock(fx.clock.clone());
        assert!(verifier.trusts(old.kid()) && verifier.trusts(fx.key.kid()));
        let req = MintRequest::new("fan-1", Scope::Play);
        verifier.verify(&mint(&old, &req, NOW).unwrap()).unwrap();
        verifier.verify(&fx.mint(&req)).unwrap();
    }

    #[test]
    fn expired_with_leeway() {
        let fx = Fixture::new();
        let verifier = fx.verifier();
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.ttl_seconds = 3600;
        let long_ago = mint(&fx.key, &req, NOW - 7200).unwrap();
        let err = verifier.verify(&long_ago).unwrap_err();
        assert_eq!(err, TokenError::Expired);
        assert_eq!(err.problem_type(), "token-expired");

        // exp 10 s ago: inside the 30 s leeway. exp 30 s ago: out.
        req.ttl_seconds = 100;
        verifier
            .verify(&mint(&fx.key, &req, NOW - 110).unwrap())
            .unwrap();
        let at_edge = mint(&fx.key, &req, NOW - 130).unwrap();
        assert_eq!(verifier.verify(&at_edge), Err(TokenError::Expired));

        // The verifier reads its clock: the same fresh token expires as the clock moves.
        let fresh = fx.token("fan-1", Scope::Play, &[]);
        verifier.verify(&fresh).unwrap();
        fx.clock.set(NOW + 3600 + 30);
        assert_eq!(verifier.verify(&fresh), Err(TokenError::Expired));
    }

    #[test]
    fn not_yet_valid() {
        let fx = Fixture::new();
        let verifier = fx.verifier();
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.not_before = Some(NOW + 600);
        let token = fx.mint(&req);
        let err = verifier.verify(&token).unwrap_err();
        assert_eq!(err, TokenError::NotYetValid);
        assert_eq!(err.problem_type(), "token-invalid");
        fx.clock.set(NOW + 600 - 30); // within leeway
        verifier.verify(&token).unwrap();

        // Issued in the future (iat beyond leeway) is refused too.
        fx.clock.set(NOW);
        let future = mint(&fx.key, &MintRequest::new("fan-1", Scope::Play), NOW + 600).unwrap();
        assert_eq!(verifier.verify(&future), Err(TokenError::NotYetValid));
    }

    #[test]
    fn wrong_audience_and_issuer() {
        let fx = Fixture::new();
        let verifier = fx.verifier();
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.audience = "someone-else".into();
        assert_eq!(
            verifier.verify(&fx.mint(&req)),
            Err(TokenError::WrongAudience)
        );
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.issuer = "evil".into();
        assert_eq!(
            verifier.verify(&fx.mint(&req)),
            Err(TokenError::WrongIssuer)
        );
        // `aud` as an array containing ours is still refused (we mint a string).
        let claims = json!({"aud": ["encore", "x"]});
        let mut all = fx.claims_json();
        all["aud"] = claims["aud"].clone();
        assert!(
            verifier
                .verify(&fx.sign_raw(&fx.header_json(), &all))
                .is_err()
        );
    }

    #[test]
    fn unknown_missing_or_garbage_kid() {
        let fx = Fixture::new();
        let verifier = fx.verifier();
        let stranger = SigningKeyPair::generate().unwrap();
        let token = mint(&stranger, &MintRequest::new("fan-1", Scope::Play), NOW).unwrap();
        assert_eq!(verifier.verify(&token), Err(TokenError::UnknownKid));

        let claims = fx.claims_json();
        for kid in ["../../etc/passwd", "", "0123456789ABCDEF"] {
            let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
            let token = fx.sign_raw(&header, &claims);
            assert_eq!(
                verifier.verify(&token),
                Err(TokenError::UnknownKid),
                "{kid}"
            );
        }
        let header = json!({"alg": "EdDSA", "typ": "JWT"});
        assert_eq!(
            verifier.verify(&fx.sign_raw(&header, &claims)),
            Err(TokenError::MissingKid)
        );
    }

    #[test]
    fn signature_by_another_key_under_our_kid() {
        let fx = Fixture::new();
        let stranger = SigningKeyPair::generate().unwrap();
        let token = sign_with(&stranger, &fx.header_json(), &fx.claims_json());
        assert_eq!(fx.verifier().verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn tampered_payload() {
        let fx = Fixture::new();
        let token = fx.token("fan-1", Scope::Play, &[]);
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = parts[1].to_owned().into_bytes();
        let mid = payload.len() / 2;
        payload[mid] = if payload[mid] == b'A' { b'B' } else { b'A' };
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            String::from_utf8(payload).unwrap(),
            parts[2]
        );
        assert_eq!(
            fx.verifier().verify(&tampered),
            Err(TokenError::BadSignature)
        );

        // Granting oneself an album by re-encoding the claims fails the same way.
        let mut claims = fx.claims_json();
        claims["albums"] = json!(["first-light", "everything"]);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        assert_eq!(fx.verifier().verify(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let fx = Fixture::new();
        let header = json!({"alg": "none", "typ": "JWT", "kid": fx.key.kid().to_string()});
        let unsigned = format!(
            "{}.{}.",
            b64(&serde_json::to_vec(&header).unwrap()),
            b64(&serde_json::to_vec(&fx.claims_json()).unwrap())
        );
        let err = fx.verifier().verify(&unsigned).unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{err:?}");
        // Also with a signature part that is really an EdDSA signature over the same bytes.
        let signed = fx.sign_raw(&header, &fx.claims_json());
        assert!(fx.verifier().verify(&signed).is_err());
    }

    #[test]
    fn hs256_with_the_public_key_as_secret_is_refused() {
        let fx = Fixture::new();
        let public = &fx.public[0];
        let pem = public.to_spki_pem().unwrap();
        let secrets: [&[u8]; 3] = [
            public.verifying_key().as_bytes(),
            public.spki_der(),
            pem.as_bytes(),
        ];
        for secret in secrets {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(fx.key.kid().to_string());
            let token = jsonwebtoken::encode(
                &header,
                &fx.claims_json(),
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            // The forgery is well-formed: a verifier that trusted `alg` would accept it.
            let mut naive = Validation::new(Algorithm::HS256);
            naive.set_audience(&["encore"]);
            naive.validate_exp = false;
            jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(secret), &naive)
                .unwrap();
            assert_eq!(
                fx.verifier().verify(&token),
                Err(TokenError::DisallowedAlgorithm)
            );
        }
    }

    #[test]
    fn key_carrying_headers_are_refused() {
        let fx = Fixture::new();
        let x = b64(fx.public[0].verifying_key().as_bytes());
        let cases = [
            ("jku", json!("https://evil.example/jwks.json")),
            ("x5u", json!("https://evil.example/cert.pem")),
            ("jwk", json!({"kty": "OKP", "crv": "Ed25519", "x": x})),
            ("x5c", json!(["MIIBszCCAVmgAwIBAgIUQ"])),
            ("crit", json!(["exp"])),
        ];
        for (name, value) in cases {
            let mut header = fx.header_json();
            header[name] = value;
            let token = fx.sign_raw(&header, &fx.claims_json());
            assert_eq!(
                fx.verifier().verify(&token),
                Err(TokenError::ForbiddenHeader(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn oversized_token_is_refused_before_parsing() {
        let fx = Fixture::new();
        let verifier = fx.verifier();
        // Garbage that parsing would call malformed: the size check comes first.
        let huge = "x".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
        assert_eq!(
            verifier.verify(&huge),
            Err(TokenError::TooLarge {
                len: DEFAULT_MAX_TOKEN_BYTES + 1,
                max: DEFAULT_MAX_TOKEN_BYTES
            })
        );
        // A validly signed token over the limit too.
        let albums: Vec<String> = (0..300).map(|i| format!("album-{i}")).collect();
        let albums: Vec<&str> = albums.iter().map(String::as_str).collect();
        let big = fx.token("fan-1", Scope::Play, &albums);
        assert!(big.len() > DEFAULT_MAX_TOKEN_BYTES);
        assert!(matches!(
            verifier.verify(&big),
            Err(TokenError::TooLarge { .. })
        ));
        let roomy = TokenVerifier::new(
            fx.public.clone(),
            VerifierConfig {
                max_token_bytes: 64 * 1024,
                ..VerifierConfig::default()
            },
        )
        .with_clock(fx.clock.clone());
        roomy.verify(&big).unwrap();
    }

    #[test]
    fn missing_claims_are_named() {
        let fx = Fixture::new();
        let verifier = fx.verifier();
        for name in ["sub", "iat", "exp", "aud", "iss", "jti", "scope"] {
            let token = fx.sign_raw(&fx.header_json(), &without(fx.claims_json(), name));
            assert_eq!(
                verifier.verify(&token),
                Err(TokenError::MissingClaim(name.to_owned())),
                "{name}"
            );
        }
        // `albums` may be absent: nothing bought.
        let token = fx.sign_raw(&fx.header_json(), &without(fx.claims_json(), "albums"));
        assert!(verifier.verify(&token).unwrap().claims().albums.is_empty());
    }

    #[test]
    fn bad_claim_values() {
        let fx = Fixture::new();
        let verifier = fx.verifier();
        let cases = [
            ("sub", json!("")),
            ("sub", json!("fan-1\nINFO encore::audit: forged")),
            ("sub", json!("fan 1")),
            ("sub", json!("x".repeat(129))),
            ("scope", json!("superuser")),
            ("exp", json!("tomorrow")),
            ("exp", json!(-5)),
            ("albums", json!("first-light")),
        ];
        for (name, value) in cases {
            let mut claims = fx.claims_json();
            claims[name] = value.clone();
            let err = verifier
                .verify(&fx.sign_raw(&fx.header_json(), &claims))
                .unwrap_err();
            assert!(
                matches!(err, TokenError::InvalidClaims(_)),
                "{name}: {err:?}"
            );
            // The message names no claim value.
            assert!(!err.to_string().contains("superuser"));
            assert!(!err.to_string().contains("tomorrow"));
        }
    }

    #[test]
    fn keys_vouch_only_for_their_trust_domain() {
        let fx = Fixture::new();
        // encore's keys: every scope but `account`.
        for scope in Scope::ALL {
            let result = fx.verifier().verify(&fx.token("fan-1", scope, &[]));
            if scope == Scope::Account {
                assert_eq!(result, Err(TokenError::ScopeNotVouched));
            } else {
                result.unwrap();
            }
        }
        // An account-service verifier: `account` and nothing else, however well signed.
        let accounts = TokenVerifier::new(
            fx.public.clone(),
            VerifierConfig {
                scopes: ACCOUNT_SCOPES.to_vec(),
                ..VerifierConfig::default()
            },
        )
        .with_clock(fx.clock.clone());
        for scope in Scope::ALL {
            let result = accounts.verify(&fx.token("fan-1", scope, &[]));
            if scope == Scope::Account {
                result.unwrap();
            } else {
                let err = result.unwrap_err();
                assert_eq!(err, TokenError::ScopeNotVouched, "{scope}");
                assert_eq!(err.problem_type(), "token-invalid");
            }
        }
    }

    #[test]
    fn garbage_is_malformed() {
        let verifier = Fixture::new().verifier();
        for token in ["", "abc", "a.b", "a.b.c", "!!!.e30.e30", "e30.e30.e30.e30"] {
            let err = verifier.verify(token).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(_)), "{token}: {err:?}");
        }
    }
}
