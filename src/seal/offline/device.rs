//! A device's X25519 key pair: the private key as a JWK (RFC 8037 `OKP`/`X25519`), the form
//! mobile platforms and HPKE libraries (pyhpke's `KEMKey.from_jwk`) read; the public key as
//! 32 bytes in base64url, the form `POST /v1/devices` takes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hpke::{Deserializable, Kem as _, Serializable};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{Kem, OfflineError};
use crate::seal::key::fill_random;

/// A device's public key: 32 bytes of X25519.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DevicePublicKey([u8; 32]);

impl DevicePublicKey {
    /// Parses 32 bytes written in base64url without padding.
    pub fn parse(s: &str) -> Result<Self, OfflineError> {
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                OfflineError::Format(
                    "a device public key is 32 bytes of X25519 in base64url without padding".into(),
                )
            })?;
        // The all-zero and other low-order points make every shared secret zero: HPKE
        // refuses them when sealing, so refuse them at registration.
        <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|e| OfflineError::Format(format!("device public key: {e}")))?;
        if bytes.iter().all(|&b| b == 0) {
            return Err(OfflineError::Format(
                "the device public key is all zeros".into(),
            ));
        }
        Ok(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublicKey({self})")
    }
}

/// The JWK of a device key file.
#[derive(Serialize, Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    d: String,
}

impl Drop for Jwk {
    fn drop(&mut self) {
        self.d.zeroize();
    }
}

/// A device's private key. Zeroized on drop (the crate's key wraps x25519-dalek's
/// `StaticSecret`); `Debug` shows the public key only.
pub struct DeviceSecret {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: DevicePublicKey,
}

impl DeviceSecret {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self, OfflineError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        fill_random(&mut raw[..]).map_err(|e| OfflineError::Rng(e.to_string()))?;
        Self::from_bytes(&raw)
    }

    /// The key whose X25519 private scalar is `raw` (as RFC 7748 clamps it).
    pub fn from_bytes(raw: &[u8; 32]) -> Result<Self, OfflineError> {
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(raw)
            .map_err(|e| OfflineError::Format(format!("device private key: {e}")))?;
        let public = DevicePublicKey(Kem::sk_to_pk(&private).to_bytes().into());
        Ok(Self { private, public })
    }

    /// HPKE's `DeriveKeyPair(ikm)` (RFC 9180 §7.1.3): the test vector's device.
    pub fn derive(ikm: &[u8]) -> Self {
        let (private, public) = Kem::derive_keypair(ikm);
        Self {
            private,
            public: DevicePublicKey(public.to_bytes().into()),
        }
    }

    /// Reads a private JWK (`{"kty":"OKP","crv":"X25519","x":…,"d":…}`); `x`, when it does
    /// not match `d`, is refused.
    pub fn from_jwk(text: &str) -> Result<Self, OfflineError> {
        let bad = |why: &str| OfflineError::Format(format!("device key file: {why}"));
        let jwk: Jwk = serde_json::from_str(text)
            .map_err(|_| bad("not a JSON Web Key with kty, crv, x and d"))?;
        if jwk.kty != "OKP" || jwk.crv != "X25519" {
            return Err(bad("not an OKP X25519 key"));
        }
        let d: Zeroizing<Vec<u8>> = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(&jwk.d)
                .map_err(|_| bad("d is not base64url"))?,
        );
        let raw: &[u8; 32] = d
            .as_slice()
            .try_into()
            .map_err(|_| bad("d is not 32 bytes"))?;
        let key = Self::from_bytes(raw)?;
        if key.public.to_string() != jwk.x {
            return Err(bad("x is not the public key of d"));
        }
        Ok(key)
    }

    /// The private JWK, for a key file that only its owner may read.
    pub fn to_jwk(&self) -> Zeroizing<String> {
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "X25519".into(),
            x: self.public.to_string(),
            d: URL_SAFE_NO_PAD.encode(self.private.to_bytes()),
        };
        // A JWK of four short strings always serialises.
        Zeroizing::new(serde_json::to_string_pretty(&jwk).unwrap_or_default() + "\n")
    }

    /// The public key, to register the device.
    pub fn public(&self) -> DevicePublicKey {
        self.public
    }

    pub(super) fn hpke_private(&self) -> &<Kem as hpke::Kem>::PrivateKey {
        &self.private
    }
}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSecret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}
