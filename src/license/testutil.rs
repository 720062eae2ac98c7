//! Test fixtures shared by this module's unit tests: a real keyring in a temp dir, a manual
//! clock, and a signer for hand-built tokens.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::claims::Scope;
use super::clock::ManualClock;
use super::mint::{MintRequest, mint};
use super::verify::{TokenVerifier, VerifiedToken, VerifierConfig};
use crate::keys::Keyring;
use crate::seal::{PublicSigningKey, SigningKeyPair};

/// The fixed "now" of every test, seconds since the Unix epoch (2027-01-15).
pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) struct Fixture {
    _dir: TempDir,
    pub(crate) key: SigningKeyPair,
    pub(crate) public: Vec<PublicSigningKey>,
    pub(crate) clock: Arc<ManualClock>,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keyring::init(&keys).unwrap();
        let keyring = Keyring::open(&keys).unwrap();
        let key = keyring.signing_key().unwrap();
        let public = keyring.public_keys().into_iter().map(|t| t.key).collect();
        Self {
            _dir: dir,
            key,
            public,
            clock: ManualClock::new(NOW),
        }
    }

    pub(crate) fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(self.public.clone(), VerifierConfig::default())
            .with_clock(self.clock.clone())
    }

    pub(crate) fn mint(&self, req: &MintRequest) -> String {
        mint(&self.key, req, NOW).unwrap()
    }

    pub(crate) fn token(&self, sub: &str, scope: Scope, albums: &[&str]) -> String {
        let mut req = MintRequest::new(sub, scope);
        req.albums = albums.iter().map(|a| (*a).to_owned()).collect();
        self.mint(&req)
    }

    /// A verified token of any scope: the entitlement rules are checked as a second line,
    /// whatever the trust domain of the key that signed it.
    pub(crate) fn verified(&self, scope: Scope, albums: &[&str]) -> VerifiedToken {
        let every_scope = VerifierConfig {
            scopes: Scope::ALL.to_vec(),
            ..VerifierConfig::default()
        };
        TokenVerifier::new(self.public.clone(), every_scope)
            .with_clock(self.clock.clone())
            .verify(&self.token("fan-1", scope, albums))
            .unwrap()
    }

    /// A header as `mint` writes it.
    pub(crate) fn header_json(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "JWT", "kid": self.key.kid().to_string()})
    }

    /// Valid claims at [`NOW`].
    pub(crate) fn claims_json(&self) -> Value {
        json!({
            "iss": "encore", "sub": "fan-1", "aud": "encore",
            "exp": NOW + 3600, "iat": NOW, "jti": "00112233445566778899aabbccddeeff",
            "scope": "play", "albums": ["first-light"],
        })
    }

    /// Signs any header and claims with the fixture's real Ed25519 key, bypassing jsonwebtoken.
    pub(crate) fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        sign_with(&self.key, header, claims)
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn sign_with(key: &SigningKeyPair, header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let signature = key.signing_key().sign(message.as_bytes());
    format!("{message}.{}", b64(&signature.to_bytes()))
}
