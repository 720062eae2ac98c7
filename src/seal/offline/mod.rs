//! Offline licenses: the content keys of an album encrypted to one device's X25519 key with
//! HPKE (RFC 9180, base mode) and signed with the server's Ed25519 signing key, so a player
//! can check and open them with no server. Byte-for-byte format and test vector in
//! `docs/OFFLINE.md`.
//!
//! - `device`: a device's key pair ([`DeviceSecret`], a private JWK file) and public key.
//! - this file: [`LicenseTerms`] (what is bound), [`issue`] and [`open`].

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::key::{ContentKey, KeyId, fill_random};
use super::signing::{SigningKeyPair, SigningKid};

mod device;
#[cfg(test)]
mod tests;

pub use device::{DevicePublicKey, DeviceSecret};

/// The KEM: DHKEM(X25519, HKDF-SHA256), HPKE id 0x0020.
pub type Kem = hpke::kem::X25519HkdfSha256;
/// The KDF: HKDF-SHA256, HPKE id 0x0001.
pub type Kdf = hpke::kdf::HkdfSha256;
/// The AEAD: ChaCha20Poly1305, HPKE id 0x0003. Constant-time in software on every phone CPU,
/// AES instructions or not; AES-128-GCM would buy nothing for one small ciphertext per album.
pub type Aead = hpke::aead::ChaCha20Poly1305;

/// The `format` of a signed license. DO NOT CHANGE: stored licenses and players depend on it.
pub const FORMAT: &str = "encore-offline-license-1";
/// The `suite` field: KEM, KDF and AEAD ids of RFC 9180 §7. DO NOT CHANGE.
pub const SUITE: &str = "0x0020/0x0001/0x0003";
/// HPKE `info` (key schedule context). DO NOT CHANGE.
pub const HPKE_INFO: &[u8] = b"encore offline license v1";
/// Prefix of the bytes the Ed25519 signature covers (domain separation from tokens, which
/// the same key signs). DO NOT CHANGE.
pub const SIGNING_CONTEXT: &[u8] = b"encore-offline-license-v1\x00";

/// Why an offline license cannot be made or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The license or key file is not in the documented format.
    #[error("not an encore offline license: {0}")]
    Format(String),
    /// The license names a signing key the player does not hold.
    #[error("the license is signed by key {0}, which is not among the server's keys")]
    UnknownSigner(String),
    /// The signature does not verify: the license was altered or not made by the server.
    #[error("the license's signature does not verify: it was altered or not issued by the server")]
    BadSignature,
    /// The device key does not open the keys: the license is another device's (or altered).
    #[error("this license is for device {device_id}; the device key given does not open it")]
    WrongDevice {
        /// The device the license names.
        device_id: String,
    },
    /// The license has expired; renew it online.
    #[error("the offline license expired at {expires_at} (Unix seconds); renew it while online")]
    Expired {
        /// When it expired.
        expires_at: u64,
    },
    /// HPKE could not seal (a bad device public key).
    #[error("cannot encrypt to the device key: {0}")]
    Hpke(String),
    /// No randomness.
    #[error("no randomness: {0}")]
    Rng(String),
}

/// What a license binds: none of it can be changed without the signature failing and the
/// HPKE open failing (it is the AEAD's associated data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseTerms {
    /// The license's id (renewals keep it).
    pub license_id: String,
    /// The buyer.
    pub user: String,
    /// The album.
    pub album: String,
    /// The device whose key opens it.
    pub device_id: String,
    /// When this copy was issued, Unix seconds.
    pub issued_at: u64,
    /// When it stops opening, Unix seconds.
    pub expires_at: u64,
}

impl LicenseTerms {
    /// The HPKE associated data: `encore-offline-license-v1`, then each field on its own line
    /// (numbers in decimal). Ids and slugs never hold a newline (checked when parsed), so
    /// the encoding is unambiguous.
    pub fn aad(&self) -> Vec<u8> {
        format!(
            "encore-offline-license-v1\nlicense_id={}\nuser={}\nalbum={}\ndevice_id={}\n\
             issued_at={}\nexpires_at={}",
            self.license_id, self.user, self.album, self.device_id, self.issued_at, self.expires_at
        )
        .into_bytes()
    }

    fn check(&self) -> Result<(), OfflineError> {
        let fields = [&self.license_id, &self.user, &self.album, &self.device_id];
        if fields
            .iter()
            .any(|f| f.is_empty() || f.len() > 128 || f.chars().any(char::is_control))
        {
            return Err(OfflineError::Format(
                "a license field is empty, too long or holds a control character".into(),
            ));
        }
        if self.expires_at <= self.issued_at {
            return Err(OfflineError::Format(
                "it expires before it is issued".into(),
            ));
        }
        Ok(())
    }
}

/// One content key the license carries (a key of one rendition of one track).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OfflineKey {
    /// Track number.
    pub track: u32,
    /// Rendition name.
    pub rendition: String,
    /// The key's id (written in every segment it seals).
    pub key_id: KeyId,
    /// The key, 64 lowercase hex digits.
    pub key: String,
}

impl OfflineKey {
    /// The entry for `key`.
    pub fn of(track: u32, rendition: &str, key: &ContentKey) -> Self {
        Self {
            track,
            rendition: rendition.to_owned(),
            key_id: key.id(),
            key: hex::encode(key.expose_bytes()),
        }
    }

    /// The content key, ready to open segments.
    pub fn content_key(&self) -> Result<ContentKey, OfflineError> {
        let mut bytes = [0u8; 32];
        let decoded = hex::decode_to_slice(self.key.as_bytes(), &mut bytes);
        let key = decoded.map(|()| ContentKey::from_bytes(self.key_id, bytes));
        bytes.zeroize();
        key.map_err(|_| OfflineError::Format("a content key is not 64 hex digits".into()))
    }
}

impl Drop for OfflineKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for OfflineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineKey")
            .field("track", &self.track)
            .field("rendition", &self.rendition)
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The HPKE plaintext.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    keys: Vec<OfflineKey>,
}

/// The signed payload: the terms, the suite, the HPKE `enc` and ciphertext, in this order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u32,
    license_id: String,
    user: String,
    album: String,
    device_id: String,
    issued_at: u64,
    expires_at: u64,
    suite: String,
    enc: String,
    ciphertext: String,
}

impl Payload {
    fn terms(&self) -> LicenseTerms {
        LicenseTerms {
            license_id: self.license_id.clone(),
            user: self.user.clone(),
            album: self.album.clone(),
            device_id: self.device_id.clone(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        }
    }
}

/// A license as issued and stored: the payload's exact bytes (base64url) and the signature
/// over them. A player parses the payload only after the signature checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedLicense {
    /// [`FORMAT`].
    pub format: String,
    /// The signing key's kid (in the server's JWKS).
    pub kid: String,
    /// The payload JSON, base64url without padding.
    pub payload: String,
    /// Ed25519 over [`SIGNING_CONTEXT`] ‖ payload bytes, base64url without padding.
    pub signature: String,
}

/// An opened license: its terms and keys.
#[derive(Debug)]
pub struct OpenedLicense {
    /// What it binds.
    pub terms: LicenseTerms,
    /// Every content key it carries.
    pub keys: Vec<OfflineKey>,
}

impl OpenedLicense {
    /// The keys of one track's rendition (two while a content-key rotation is under way).
    pub fn keys_for(&self, track: u32, rendition: &str) -> Vec<&OfflineKey> {
        self.keys
            .iter()
            .filter(|k| k.track == track && k.rendition == rendition)
            .collect()
    }
}

/// A CSPRNG for HPKE's ephemeral key: SHA-256(seed ‖ counter) blocks. In service the seed is
/// 32 bytes from the operating system ([`issue`]); the test vector fixes it so the vector's
/// `enc` can be reproduced (the ephemeral key is HPKE's `DeriveKeyPair(ikmE)` of the first 32
/// bytes).
struct SeedRng {
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
}

impl hpke::rand_core::TryRng for SeedRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(32) {
            let mut h = Sha256::new();
            h.update(*self.seed);
            h.update(self.counter.to_be_bytes());
            let block = h.finalize();
            chunk.copy_from_slice(&block[..chunk.len()]);
            self.counter += 1;
        }
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for SeedRng {}

/// Issues a license for `terms` carrying `keys`, encrypted to `device`, signed by `signer`.
pub fn issue(
    terms: &LicenseTerms,
    keys: Vec<OfflineKey>,
    device: &DevicePublicKey,
    signer: &SigningKeyPair,
) -> Result<SignedLicense, OfflineError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    fill_random(&mut seed[..]).map_err(|e| OfflineError::Rng(e.to_string()))?;
    issue_seeded(terms, keys, device, signer, seed)
}

/// [`issue`] with the ephemeral key's randomness from `seed` (the test vector).
pub fn issue_seeded(
    terms: &LicenseTerms,
    keys: Vec<OfflineKey>,
    device: &DevicePublicKey,
    signer: &SigningKeyPair,
    seed: Zeroizing<[u8; 32]>,
) -> Result<SignedLicense, OfflineError> {
    terms.check()?;
    let plaintext = Zeroizing::new(
        serde_json::to_vec(&Keys { keys })
            .map_err(|e| OfflineError::Format(format!("keys: {e}")))?,
    );
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(device.as_bytes())
        .map_err(|e| OfflineError::Hpke(e.to_string()))?;
    let mut rng = SeedRng { seed, counter: 0 };
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk,
        HPKE_INFO,
        &plaintext,
        &terms.aad(),
        &mut rng,
    )
    .map_err(|e| OfflineError::Hpke(e.to_string()))?;
    let payload = Payload {
        v: 1,
        license_id: terms.license_id.clone(),
        user: terms.user.clone(),
        album: terms.album.clone(),
        device_id: terms.device_id.clone(),
        issued_at: terms.issued_at,
        expires_at: terms.expires_at,
        suite: SUITE.to_owned(),
        enc: URL_SAFE_NO_PAD.encode(enc.to_bytes()),
        ciphertext: URL_SAFE_NO_PAD.encode(&ciphertext),
    };
    let payload =
        serde_json::to_vec(&payload).map_err(|e| OfflineError::Format(format!("payload: {e}")))?;
    let mut signed = SIGNING_CONTEXT.to_vec();
    signed.extend_from_slice(&payload);
    let signature = signer.signing_key().sign(&signed);
    Ok(SignedLicense {
        format: FORMAT.to_owned(),
        kid: signer.kid().to_string(),
        payload: URL_SAFE_NO_PAD.encode(&payload),
        signature: URL_SAFE_NO_PAD.encode(signature.to_bytes()),
    })
}

/// Checks and opens `license` on the device holding `device`, at `now` (Unix seconds).
/// `signer` finds the server's public key by kid (a player keeps the server's JWKS).
///
/// Order: format, signature, expiry, then HPKE: nothing of an unsigned or expired license is
/// decrypted.
pub fn open(
    license: &SignedLicense,
    signer: impl Fn(&SigningKid) -> Option<VerifyingKey>,
    device: &DeviceSecret,
    now: u64,
) -> Result<OpenedLicense, OfflineError> {
    let bad = |what: &str| OfflineError::Format(what.to_owned());
    if license.format != FORMAT {
        return Err(bad(&format!(
            "format {:?}, expected {FORMAT}",
            license.format
        )));
    }
    let kid: SigningKid = license
        .kid
        .parse()
        .map_err(|_| bad("kid is not a signing key id"))?;
    let key = signer(&kid).ok_or_else(|| OfflineError::UnknownSigner(license.kid.clone()))?;
    let payload = URL_SAFE_NO_PAD
        .decode(&license.payload)
        .map_err(|_| bad("payload is not base64url"))?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(&license.signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("signature is not 64 bytes of base64url"))?;
    let mut signed = SIGNING_CONTEXT.to_vec();
    signed.extend_from_slice(&payload);
    key.verify_strict(&signed, &Signature::from_bytes(&sig))
        .map_err(|_| OfflineError::BadSignature)?;
    let payload: Payload =
        serde_json::from_slice(&payload).map_err(|e| bad(&format!("payload: {e}")))?;
    if payload.v != 1 || payload.suite != SUITE {
        return Err(bad(&format!(
            "version {} suite {:?}, expected 1 and {SUITE}",
            payload.v, payload.suite
        )));
    }
    let terms = payload.terms();
    terms.check()?;
    if now >= terms.expires_at {
        return Err(OfflineError::Expired {
            expires_at: terms.expires_at,
        });
    }
    let enc = URL_SAFE_NO_PAD
        .decode(&payload.enc)
        .map_err(|_| bad("enc is not base64url"))?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc)
        .map_err(|_| bad("enc is not an X25519 public key"))?;
    let ciphertext = URL_SAFE_NO_PAD
        .decode(&payload.ciphertext)
        .map_err(|_| bad("ciphertext is not base64url"))?;
    let plaintext = hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        device.hpke_private(),
        &enc,
        HPKE_INFO,
        &ciphertext,
        &terms.aad(),
    )
    .map_err(|_| OfflineError::WrongDevice {
        device_id: terms.device_id.clone(),
    })?;
    let plaintext = Zeroizing::new(plaintext);
    let keys: Keys = serde_json::from_slice(&plaintext).map_err(|e| bad(&format!("keys: {e}")))?;
    Ok(OpenedLicense {
        terms,
        keys: keys.keys,
    })
}
