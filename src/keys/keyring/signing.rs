//! Token-signing keys of the keyring: which key signs at a given time, its private half
//! (checked against its public half), and the public keys trusted then, for the JWKS.

use super::Keyring;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::now_unix;
use crate::keys::layout::{STATE_FILE, signing_private_name, signing_public_name};
use crate::keys::lifecycle::{self, KeyState};
use crate::seal::{PublicSigningKey, SigningKeyPair, SigningKid};

/// A public signing key with how long it is trusted, for the JWKS and the verifier.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The key.
    pub key: PublicSigningKey,
    /// Its state at the time asked.
    pub state: KeyState,
    /// Tokens it signed are refused from this time on (its retirement), if set.
    pub trusted_until: Option<u64>,
}

impl Keyring {
    /// Kid of the key that signs new tokens now.
    pub fn active_signing_kid(&self) -> SigningKid {
        self.signer_kid_at(now_unix())
            .unwrap_or(self.state.active_signing)
    }

    /// Kid of the key that signs new tokens at `now`, if any key may sign then.
    pub fn signer_kid_at(&self, now: u64) -> Option<SigningKid> {
        lifecycle::signer_at(&self.state.signing, now).map(|e| e.kid)
    }

    /// Loads the Ed25519 private key that signs now (zeroized on drop), checking it matches
    /// its public key file.
    pub fn signing_key(&self) -> Result<SigningKeyPair, KeyError> {
        self.signing_key_at(now_unix())
    }

    /// Loads the private key of the key that signs at `now`.
    pub fn signing_key_at(&self, now: u64) -> Result<SigningKeyPair, KeyError> {
        let kid = self.signer_kid_at(now).ok_or_else(|| KeyError::NoSigner {
            dir: self.dir().to_path_buf(),
        })?;
        let path = self.dir().join(signing_private_name(kid));
        let bytes = self
            .dir
            .read_private(&path)?
            .ok_or_else(|| KeyError::Missing {
                path: path.clone(),
                listed_in: self.dir().join(STATE_FILE),
            })?;
        let pem = std::str::from_utf8(&bytes)
            .map_err(|_| KeyError::corrupt(&path, "PKCS#8 PEM private key", "it is not text"))?;
        let pair = SigningKeyPair::from_pkcs8_pem(pem)
            .map_err(|e| KeyError::corrupt(&path, "PKCS#8 PEM private key", e))?;
        if pair.kid() != kid {
            return Err(KeyError::corrupt(
                &path,
                "PKCS#8 PEM private key",
                format!(
                    "it does not match {} (its kid is {})",
                    signing_public_name(kid),
                    pair.kid()
                ),
            ));
        }
        Ok(pair)
    }

    /// Every signing key trusted at `now` (pending, active, verifying), newest first, for the
    /// JWKS. Revoked and retired keys are left out.
    pub fn public_keys_at(&self, now: u64) -> Vec<TrustedKey> {
        self.public
            .iter()
            .filter(|(e, _)| lifecycle::trusted_at(e, now))
            .map(|(e, key)| TrustedKey {
                key: key.clone(),
                state: lifecycle::state_at(&self.state.signing, e, now),
                trusted_until: e.retires_unix,
            })
            .collect()
    }

    /// [`public_keys_at`](Self::public_keys_at) now.
    pub fn public_keys(&self) -> Vec<TrustedKey> {
        self.public_keys_at(now_unix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::durable;
    use crate::keys::KeyKind;
    use crate::keys::keyring::tests::keys_dir;
    use crate::keys::layout::kek_file_name;

    #[test]
    fn signing_key_loads_and_matches_public() {
        let (_tmp, dir) = keys_dir();
        let report = Keyring::init(&dir).unwrap();
        let ring = Keyring::open(&dir).unwrap();
        let pair = ring.signing_key().unwrap();
        assert_eq!(pair.kid(), report.signing_kid);
        let public = ring.public_keys();
        assert_eq!(public.len(), 1);
        assert_eq!(public[0].state, KeyState::Active);
        assert_eq!(public[0].key.verifying_key(), &pair.verifying_key());
        let shown = format!("{ring:?}");
        assert!(!shown.contains(&hex::encode(pair.signing_key().to_bytes())));
        let kek_file = fs::read(dir.join(kek_file_name(report.kek))).unwrap();
        let kek_json: serde_json::Value = serde_json::from_slice(&kek_file).unwrap();
        assert!(!shown.contains(kek_json["key"].as_str().unwrap()));

        let list = ring.list();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|e| e.state == KeyState::Active));
        assert_eq!(list[0].kind, KeyKind::Kek);
        assert_eq!(list[0].id, report.kek.to_string());
        assert_eq!(list[1].id, report.signing_kid.to_string());
    }

    #[test]
    fn swapped_private_key_is_detected() {
        let (_tmp, dir) = keys_dir();
        let report = Keyring::init(&dir).unwrap();
        let other = SigningKeyPair::generate().unwrap();
        let path = dir.join(signing_private_name(report.signing_kid));
        durable::write_atomic(&path, other.to_pkcs8_pem().unwrap().as_bytes(), 0o600).unwrap();
        let ring = Keyring::open(&dir).unwrap();
        let err = ring.signing_key().unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
    }
}
