//! Ed25519 token-signing keys: key ids (`kid`), PKCS#8 / SPKI PEM encoding, and a key pair that
//! zeroizes on drop and never prints its secret.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::key::{RngError, fill_random};

/// Bytes of SHA-256(SPKI DER) kept as the kid. DO NOT CHANGE: file names and issued tokens
/// depend on it.
const KID_LEN: usize = 8;

/// A signing key's id: the first 8 bytes of SHA-256 over its SubjectPublicKeyInfo DER, written
/// as 16 lowercase hex digits. Goes into JWT headers (`kid`) and key file names; anyone with
/// the public key can recompute it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SigningKid([u8; KID_LEN]);

impl SigningKid {
    /// The kid of `key`.
    pub fn of(key: &VerifyingKey) -> Result<Self, SigningError> {
        let der = key.to_public_key_der().map_err(SigningError::Spki)?;
        Ok(Self::of_spki_der(der.as_bytes()))
    }

    fn of_spki_der(der: &[u8]) -> Self {
        let digest = Sha256::digest(der);
        let mut kid = [0u8; KID_LEN];
        kid.copy_from_slice(&digest[..KID_LEN]);
        Self(kid)
    }
}

impl fmt::Display for SigningKid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SigningKid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKid({self})")
    }
}

/// A string is not a signing kid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a signing key id: expected 16 lowercase hex digits")]
pub struct SigningKidParseError {
    input: String,
}

impl FromStr for SigningKid {
    type Err = SigningKidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Strict: kids become file names, so only one spelling and no path characters.
        let canonical = s.len() == 2 * KID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut kid = [0u8; KID_LEN];
        if !canonical || hex::decode_to_slice(s, &mut kid).is_err() {
            return Err(SigningKidParseError {
                input: s.chars().take(64).collect(),
            });
        }
        Ok(Self(kid))
    }
}

impl serde::Serialize for SigningKid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SigningKid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Encoding or decoding a signing key failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// No randomness for a new key.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// Not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 Ed25519 private key: {0}")]
    Pkcs8(ed25519_dalek::pkcs8::Error),
    /// Not an SPKI Ed25519 public key.
    #[error("not an SPKI Ed25519 public key: {0}")]
    Spki(ed25519_dalek::pkcs8::spki::Error),
}

/// The active token-signing key: Ed25519, zeroized on drop (ed25519-dalek's `zeroize`
/// feature); `Debug` shows only the kid.
pub struct SigningKeyPair {
    kid: SigningKid,
    key: SigningKey,
}

impl SigningKeyPair {
    /// A fresh key pair from 32 bytes of OS randomness.
    pub fn generate() -> Result<Self, SigningError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        fill_random(seed.as_mut())?;
        Self::from_signing_key(SigningKey::from_bytes(&seed))
    }

    fn from_signing_key(key: SigningKey) -> Result<Self, SigningError> {
        let kid = SigningKid::of(&key.verifying_key())?;
        Ok(Self { kid, key })
    }

    /// Parses a `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SigningError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(SigningError::Pkcs8)?;
        Self::from_signing_key(key)
    }

    /// The key id for JWT headers.
    pub fn kid(&self) -> SigningKid {
        self.kid
    }

    /// The Ed25519 signing key (implements `ed25519_dalek::Signer`).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// PKCS#8 v1 DER (RFC 8410: private key only), zeroized on drop.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, SigningError> {
        let doc = self
            .v1_keypair()
            .to_pkcs8_der()
            .map_err(SigningError::Pkcs8)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// `-----BEGIN PRIVATE KEY-----` PEM (PKCS#8 v1), zeroized on drop; what
    /// `openssl genpkey -algorithm ed25519` writes and `openssl pkey` reads.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, SigningError> {
        self.v1_keypair()
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(SigningError::Pkcs8)
    }

    /// The key as PKCS#8 v1 (no embedded public key). ed25519-dalek would write v2
    /// (`OneAsymmetricKey` with the public key), which OpenSSL 3.0 refuses to load.
    /// `KeypairBytes` zeroizes its secret on drop.
    fn v1_keypair(&self) -> KeypairBytes {
        KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
    }

    /// The public key with its kid.
    pub fn public(&self) -> Result<PublicSigningKey, SigningError> {
        PublicSigningKey::new(self.verifying_key())
    }
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A token-verification key, as published in the JWKS.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicSigningKey {
    kid: SigningKid,
    key: VerifyingKey,
    spki_der: Vec<u8>,
}

impl PublicSigningKey {
    /// Wraps `key`, computing its SPKI DER and kid.
    pub fn new(key: VerifyingKey) -> Result<Self, SigningError> {
        let spki_der = key
            .to_public_key_der()
            .map_err(SigningError::Spki)?
            .into_vec();
        let kid = SigningKid::of_spki_der(&spki_der);
        Ok(Self { kid, key, spki_der })
    }

    /// Parses a `-----BEGIN PUBLIC KEY-----` (SPKI) PEM.
    pub fn from_spki_pem(pem: &str) -> Result<Self, SigningError> {
        Self::new(VerifyingKey::from_public_key_pem(pem).map_err(SigningError::Spki)?)
    }

    /// The key id.
    pub fn kid(&self) -> SigningKid {
        self.kid
    }

    /// The Ed25519 public key; `to_bytes()` is the JWK `x` parameter (before base64url).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// `-----BEGIN PUBLIC KEY-----` PEM (SPKI).
    pub fn to_spki_pem(&self) -> Result<String, SigningError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(SigningError::Spki)
    }
}

impl fmt::Debug for PublicSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicSigningKey")
            .field("kid", &self.kid)
            .field("x", &hex::encode(self.key.as_bytes()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, Verifier};

    #[test]
    fn pem_round_trip_keeps_kid_and_signs() {
        let pair = SigningKeyPair::generate().unwrap();
        let pem = pair.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        // PKCS#8 v1: SEQUENCE { INTEGER 0, ... }, 48 bytes, as `openssl genpkey` writes.
        let der = pair.to_pkcs8_der().unwrap();
        assert_eq!(der[..5], [0x30, 0x2e, 0x02, 0x01, 0x00]);
        assert_eq!(der.len(), 48);
        let back = SigningKeyPair::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.kid(), pair.kid());

        let public = pair.public().unwrap();
        let pub_pem = public.to_spki_pem().unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let public_back = PublicSigningKey::from_spki_pem(&pub_pem).unwrap();
        assert_eq!(public_back, public);
        assert_eq!(public.kid(), pair.kid());

        let sig = back.signing_key().sign(b"header.claims");
        public_back
            .verifying_key()
            .verify(b"header.claims", &sig)
            .unwrap();
    }

    #[test]
    fn kid_is_sha256_prefix_of_spki() {
        let pair = SigningKeyPair::generate().unwrap();
        let public = pair.public().unwrap();
        let digest = Sha256::digest(public.spki_der());
        assert_eq!(pair.kid().to_string(), hex::encode(&digest[..8]));
        assert_eq!(public.spki_der().len(), 44); // RFC 8410 Ed25519 SPKI
    }

    #[test]
    fn kid_parse_is_strict() {
        let kid = SigningKeyPair::generate().unwrap().kid();
        assert_eq!(kid.to_string().parse::<SigningKid>().unwrap(), kid);
        for bad in [
            "",
            "../../etc/passwd",
            "0123456789ABCDEF",
            "0123456789abcdef0",
        ] {
            assert!(bad.parse::<SigningKid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_shows_only_kid() {
        let pair = SigningKeyPair::generate().unwrap();
        let shown = format!("{pair:?}");
        let secret_hex = hex::encode(pair.signing_key().to_bytes());
        assert!(!shown.contains(&secret_hex));
        assert!(shown.contains(&pair.kid().to_string()));
    }

    #[test]
    fn garbage_pem_is_an_error() {
        assert!(SigningKeyPair::from_pkcs8_pem("not a key").is_err());
        assert!(PublicSigningKey::from_spki_pem("-----BEGIN PUBLIC KEY-----\n").is_err());
    }
}
