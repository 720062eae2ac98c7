//! A private signing key as the database stores it: its PKCS#8 PEM encrypted with
//! AES-256-GCM under a KEK, bound to its blob name and the KEK's id, with a fresh random nonce
//! for every wrap (a KEK wraps a handful of keys a few times a year: random 96-bit nonces are
//! far from any collision bound). Specified in `docs/SEALING.md` §8.
//!
//! ```text
//! aad     = "encore/signing-key/v1" || u16(len(name)) || name || KEK id (16)
//! wrapped = AES-256-GCM(KEK, nonce (12, random), aad, PEM) = ciphertext || tag (16)
//! ```

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Nonce, Tag};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::error::KeyError;
use crate::keys::layout::FORMAT;
use crate::seal::key::fill_random;
use crate::seal::{Kek, KeyId};

/// Domain tag of the AAD. DO NOT CHANGE: stored data depends on it.
const AAD_DOMAIN: &[u8] = b"encore/signing-key/v1";
/// `kind` of the envelope. DO NOT CHANGE: stored data depends on it.
const KIND: &str = "encore-wrapped-signing-key";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The stored form (JSON text in `key_state.body`). Holds no secret.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Envelope {
    format: u32,
    kind: String,
    /// The KEK it is wrapped under.
    pub(super) kek: KeyId,
    /// 12-byte nonce, hex.
    nonce: String,
    /// Ciphertext then tag, hex.
    wrapped: String,
}

fn aad(name: &str, kek: KeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 2 + name.len() + 16);
    aad.extend_from_slice(AAD_DOMAIN);
    // Blob names are short ASCII (`signing-<16 hex>.key.pem`); a longer one is cut to fit
    // the prefix, which only makes its AAD differ from every real one.
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    aad.extend_from_slice(&len.to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(kek.as_bytes());
    aad
}

fn corrupt(name: &str, reason: impl std::fmt::Display) -> KeyError {
    KeyError::corrupt(
        std::path::Path::new(name),
        "wrapped signing key in the database",
        reason,
    )
}

impl Envelope {
    /// Wraps `plain` (the blob `name`) under `kek` with a fresh random nonce.
    pub(super) fn seal(kek: &Kek, name: &str, plain: &[u8]) -> Result<Envelope, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut out = vec![0u8; plain.len()];
        let inout = InOutBuf::new(plain, &mut out).map_err(|_| corrupt(name, "buffer sizes"))?;
        let tag = kek
            .cipher()
            .encrypt_inout_detached(&Nonce::from(nonce), &aad(name, kek.id()), inout)
            .map_err(|_| corrupt(name, "too large to wrap"))?;
        out.extend_from_slice(&tag);
        Ok(Envelope {
            format: FORMAT,
            kind: KIND.to_owned(),
            kek: kek.id(),
            nonce: hex::encode(nonce),
            wrapped: hex::encode(out),
        })
    }

    /// The stored text.
    pub(super) fn to_json(&self) -> String {
        // Plain data with string and id fields: serializing it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stored text of the blob `name`.
    pub(super) fn parse(name: &str, body: &str) -> Result<Envelope, KeyError> {
        let env: Envelope = serde_json::from_str(body).map_err(|e| corrupt(name, e))?;
        if env.format != FORMAT {
            return Err(KeyError::UnsupportedFormat {
                path: name.into(),
                found: env.format,
            });
        }
        if env.kind != KIND {
            return Err(corrupt(name, format!("kind is {:?}", env.kind)));
        }
        Ok(env)
    }

    /// Unwraps it with `kek` (which must be the one it names) into a zeroizing buffer.
    pub(super) fn open(&self, kek: &Kek, name: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if kek.id() != self.kek {
            return Err(corrupt(
                name,
                format!("it is wrapped under KEK {}", self.kek),
            ));
        }
        let mut nonce = [0u8; NONCE_LEN];
        hex::decode_to_slice(&self.nonce, &mut nonce).map_err(|e| corrupt(name, e))?;
        let bytes = hex::decode(&self.wrapped).map_err(|e| corrupt(name, e))?;
        let Some(ct_len) = bytes.len().checked_sub(TAG_LEN) else {
            return Err(corrupt(name, "it is shorter than a tag"));
        };
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&bytes[ct_len..]);
        let tag = Tag::from(tag);
        let mut plain = Zeroizing::new(vec![0u8; ct_len]);
        let inout = InOutBuf::new(&bytes[..ct_len], &mut plain[..])
            .map_err(|_| corrupt(name, "buffer sizes"))?;
        kek.cipher()
            .decrypt_inout_detached(&Nonce::from(nonce), &aad(name, kek.id()), inout, &tag)
            .map_err(|_| {
                corrupt(
                    name,
                    "the tag check failed: altered, moved to another name, or the wrong KEK",
                )
            })?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_refuses_another_name_or_kek() {
        let kek = Kek::generate().unwrap();
        let pem = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
        let name = "signing-0011223344556677.key.pem";
        let env = Envelope::seal(&kek, name, pem).unwrap();
        let text = env.to_json();
        assert!(!text.contains("secret") && !text.contains("PRIVATE"));
        let back = Envelope::parse(name, &text).unwrap();
        assert_eq!(&back.open(&kek, name).unwrap()[..], pem);
        // Moved to another key's name: refused.
        assert!(back.open(&kek, "signing-8899aabbccddeeff.key.pem").is_err());
        // Another KEK: refused.
        assert!(back.open(&Kek::generate().unwrap(), name).is_err());
        // A fresh nonce every time.
        let again = Envelope::seal(&kek, name, pem).unwrap();
        assert_ne!(again.nonce, env.nonce);
    }
}
