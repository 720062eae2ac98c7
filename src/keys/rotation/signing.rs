//! Rotating, revoking and pruning token-signing keys. Every step is one durable write (temp
//! file, fsync, rename, fsync dir) under the keys lock, in an order where a crash between any
//! two steps leaves a directory that loads and serves, and a re-run that completes the job.

use super::keydir::{new_signing_pair, remove_durably, remove_unlisted, save_state, state};
use crate::crashpoint;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::SigningEntry;
use crate::keys::layout::signing_private_name;
use crate::keys::lifecycle::{self, AfterRevoke};
use crate::keys::vault::KeyDir;
use crate::seal::SigningKid;

/// What `rotate signing` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SigningRotation {
    /// The new key: in the JWKS from now, signing from `activates_unix`.
    pub kid: SigningKid,
    /// When it starts signing.
    pub activates_unix: u64,
    /// Keys it supersedes, with the time each is retired.
    pub superseded: Vec<Superseded>,
}

/// A signing key a rotation superseded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Superseded {
    /// Its kid.
    pub kid: SigningKid,
    /// From when its tokens are refused and it leaves the JWKS.
    pub retires_unix: u64,
}

/// What `revoke signing` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SigningRevocation {
    /// The revoked key.
    pub kid: SigningKid,
    /// The key that signs from now on.
    pub signer: SigningKid,
    /// True when a new key had to be made to sign (the revoked one was the only signer).
    pub created_signer: bool,
}

/// Adds a new Ed25519 signing key: published in the JWKS at once, signing after
/// `propagation_seconds`; every older key is retired `token_horizon_seconds` (the longest
/// token lifetime plus clock leeway) after that, when no token it signed can still be valid.
pub fn rotate_signing(
    dir: &KeyDir,
    now: u64,
    propagation_seconds: u64,
    token_horizon_seconds: u64,
) -> Result<SigningRotation, KeyError> {
    let _lock = dir.lock()?;
    let mut state = state(dir)?;
    remove_unlisted(dir, &state)?;
    let pair = new_signing_pair(dir)?;
    crashpoint::reached("rotate-signing:key-written");
    lifecycle::rotate(
        &mut state.signing,
        pair.kid(),
        now,
        propagation_seconds,
        token_horizon_seconds,
    );
    state.active_signing = pair.kid();
    save_state(dir, &state)?;
    crashpoint::reached("rotate-signing:state-written");
    let superseded = state
        .signing
        .iter()
        .filter(|e| e.kid != pair.kid())
        .filter_map(|e| {
            Some(Superseded {
                kid: e.kid,
                retires_unix: e.retires_unix?,
            })
        })
        .filter(|s| s.retires_unix > now)
        .collect();
    tracing::info!(kid = %pair.kid(), activates = now + propagation_seconds, "signing key rotated in");
    Ok(SigningRotation {
        kid: pair.kid(),
        activates_unix: now.saturating_add(propagation_seconds),
        superseded,
    })
}

/// Distrusts `kid` from `now`. If it was the only key able to sign, the newest pending key
/// signs at once, or a new key is made that does; its private half is deleted.
pub fn revoke_signing(
    dir: &KeyDir,
    kid: SigningKid,
    now: u64,
) -> Result<SigningRevocation, KeyError> {
    let _lock = dir.lock()?;
    let mut state = state(dir)?;
    remove_unlisted(dir, &state)?;
    let after = lifecycle::revoke(&mut state.signing, kid, now).ok_or_else(|| {
        KeyError::UnknownSigningKey {
            kid: kid.to_string(),
            dir: dir.path().to_path_buf(),
        }
    })?;
    let (signer, created_signer) = match after {
        AfterRevoke::SignerRemains(signer) => (signer, false),
        AfterRevoke::NeedsNewSigner => {
            let pair = new_signing_pair(dir)?;
            state.signing.push(SigningEntry {
                kid: pair.kid(),
                created_unix: now,
                activates_unix: Some(now),
                retires_unix: None,
                revoked_unix: None,
            });
            (pair.kid(), true)
        }
    };
    state.active_signing = signer;
    save_state(dir, &state)?;
    crashpoint::reached("revoke-signing:state-written");
    remove_durably(dir, &dir.path().join(signing_private_name(kid)))?;
    tracing::warn!(kid = %kid, signer = %signer, "signing key revoked");
    Ok(SigningRevocation {
        kid,
        signer,
        created_signer,
    })
}

/// Deletes the private halves of signing keys that will never sign again (superseded,
/// retired, revoked). Returns their kids.
pub fn prune_signing(dir: &KeyDir, now: u64) -> Result<Vec<SigningKid>, KeyError> {
    let _lock = dir.lock()?;
    let state = state(dir)?;
    remove_unlisted(dir, &state)?;
    let mut pruned = Vec::new();
    for entry in &state.signing {
        if !lifecycle::needs_private_key(&state.signing, entry, now)
            && remove_durably(dir, &dir.path().join(signing_private_name(entry.kid)))?
        {
            tracing::info!(kid = %entry.kid, "deleted the private half of a signing key that no longer signs");
            pruned.push(entry.kid);
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keyring;
    use crate::keys::keyfiles::now_unix;
    use crate::keys::layout::signing_public_name;
    use crate::keys::lifecycle::KeyState;

    use super::super::test_keys_dir as keys;

    fn state_of(keyring: &Keyring, kid: SigningKid, now: u64) -> Option<KeyState> {
        keyring
            .list_at(now)
            .into_iter()
            .find(|e| e.id == kid.to_string())
            .map(|e| e.state)
    }

    #[test]
    fn signing_rotation_publishes_first_then_signs_then_retires() {
        let (_tmp, dir) = keys();
        let before = Keyring::open(&dir).unwrap();
        let old = before.active_signing_kid();
        let now = now_unix();

        let rot = rotate_signing(&KeyDir::folder(&dir), now, 60, 500).unwrap();
        assert_eq!(rot.activates_unix, now + 60);
        assert_eq!(
            rot.superseded,
            vec![Superseded {
                kid: old,
                retires_unix: now + 560
            }]
        );

        let k = Keyring::open(&dir).unwrap();
        // Published at once, signing only after the delay.
        let published: Vec<_> = k.public_keys_at(now).iter().map(|t| t.key.kid()).collect();
        assert_eq!(published, vec![rot.kid, old]);
        assert_eq!(k.signer_kid_at(now), Some(old));
        assert_eq!(state_of(&k, rot.kid, now), Some(KeyState::Pending));
        assert_eq!(k.signer_kid_at(now + 60), Some(rot.kid));
        assert_eq!(k.signing_key_at(now + 60).unwrap().kid(), rot.kid);
        assert_eq!(state_of(&k, old, now + 60), Some(KeyState::Verifying));
        // Retired: gone from the JWKS.
        let later: Vec<_> = k
            .public_keys_at(now + 560)
            .iter()
            .map(|t| t.key.kid())
            .collect();
        assert_eq!(later, vec![rot.kid]);
        assert_eq!(state_of(&k, old, now + 560), Some(KeyState::Retired));

        // Once superseded, the old private half is deleted; the public half stays listed.
        assert_eq!(prune_signing(&KeyDir::folder(&dir), now).unwrap(), vec![]);
        assert_eq!(
            prune_signing(&KeyDir::folder(&dir), now + 60).unwrap(),
            vec![old]
        );
        assert!(!dir.join(signing_private_name(old)).exists());
        assert!(dir.join(signing_public_name(old)).exists());
    }

    #[test]
    fn revoking_the_signer_makes_a_new_one_at_once() {
        let (_tmp, dir) = keys();
        let old = Keyring::open(&dir).unwrap().active_signing_kid();
        let now = now_unix();
        let rev = revoke_signing(&KeyDir::folder(&dir), old, now).unwrap();
        assert!(rev.created_signer);
        assert_ne!(rev.signer, old);
        assert!(!dir.join(signing_private_name(old)).exists());
        let k = Keyring::open(&dir).unwrap();
        assert_eq!(k.signer_kid_at(now), Some(rev.signer));
        assert!(k.public_keys_at(now).iter().all(|t| t.key.kid() != old));
        assert_eq!(state_of(&k, old, now), Some(KeyState::Revoked));

        let unknown: SigningKid = "00000000000000aa".parse().unwrap();
        assert!(matches!(
            revoke_signing(&KeyDir::folder(&dir), unknown, now),
            Err(KeyError::UnknownSigningKey { .. })
        ));
    }
}
