//! Rotating and revoking the keys of a keys directory: signing keys and the KEK. Every
//! step is one durable write (temp file, fsync, rename, fsync dir) under the keys lock, in an
//! order where a crash between any two steps leaves a directory that loads and serves, and
//! a re-run that completes the job. Content-key rotation, which also re-seals the store,
//! lives in [`crate::rotation`].

use std::fs;
use std::io;
use std::path::Path;

use super::key::{Kek, KeyId};
use super::keyerror::KeyError;
use super::keyfiles::{
    LOCK_FILE, PUBLIC_MODE, SECRET_MODE, STATE_FILE, StateFile, kek_file_name, read_state,
    signing_private_name, signing_public_name, write_kek, write_state,
};
use super::keyring::Keyring;
use super::lifecycle::{self, AfterRevoke};
use super::lock::DirLock;
use super::signing::{SigningError, SigningKeyPair, SigningKid};
use crate::crashpoint;
use crate::durable;

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

/// What `rotate kek` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KekRotation {
    /// The KEK every content key is now wrapped under.
    pub kek: KeyId,
    /// KEKs taken out of service and deleted.
    pub retired: Vec<KeyId>,
    /// Album key files looked at.
    pub albums: usize,
    /// Content keys re-wrapped.
    pub rewrapped: usize,
    /// True when this run finished a rotation a crash had interrupted, rather than start one.
    pub resumed: bool,
}

fn lock(dir: &Path) -> Result<DirLock, KeyError> {
    let path = dir.join(LOCK_FILE);
    DirLock::acquire(&path).map_err(KeyError::io("lock", &path))
}

fn state(dir: &Path) -> Result<StateFile, KeyError> {
    let path = dir.join(STATE_FILE);
    read_state(&path)?.ok_or_else(|| KeyError::NotInitialized {
        dir: dir.to_path_buf(),
        file: path,
    })
}

fn save_state(dir: &Path, state: &StateFile) -> Result<(), KeyError> {
    write_state(&dir.join(STATE_FILE), state)
}

fn remove_durably(path: &Path) -> Result<bool, KeyError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                durable::sync_dir(parent).map_err(KeyError::io("sync", parent))?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeyError::io("remove", path)(e)),
    }
}

/// Generates a signing key pair and writes both halves (private 0600, public 0644).
fn new_signing_pair(dir: &Path) -> Result<SigningKeyPair, KeyError> {
    let pair = SigningKeyPair::generate().map_err(|e| match e {
        SigningError::Rng(e) => KeyError::Rng(e),
        other => KeyError::corrupt(dir, "signing key", other),
    })?;
    let private = dir.join(signing_private_name(pair.kid()));
    let pem = pair
        .to_pkcs8_pem()
        .map_err(|e| KeyError::corrupt(&private, "PKCS#8 PEM private key", e))?;
    durable::write_atomic(&private, pem.as_bytes(), SECRET_MODE)
        .map_err(KeyError::io("write", &private))?;
    let public = dir.join(signing_public_name(pair.kid()));
    let pem = pair
        .public()
        .and_then(|p| p.to_spki_pem())
        .map_err(|e| KeyError::corrupt(&public, "public signing key", e))?;
    durable::write_atomic(&public, pem.as_bytes(), PUBLIC_MODE)
        .map_err(KeyError::io("write", &public))?;
    Ok(pair)
}

/// Removes key files the state does not list: debris of a rotation that crashed before its
/// state write. Nothing was ever signed or wrapped with them.
fn remove_unlisted(dir: &Path, state: &StateFile) -> Result<Vec<String>, KeyError> {
    let mut removed = Vec::new();
    let entries = fs::read_dir(dir).map_err(KeyError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(KeyError::io("list", dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let listed = if let Some(id) = name
            .strip_prefix("kek-")
            .and_then(|n| n.strip_suffix(".json"))
        {
            state.keks.iter().any(|e| e.id.to_string() == id)
        } else if let Some(kid) = name.strip_prefix("signing-").and_then(|n| {
            n.strip_suffix(".key.pem")
                .or_else(|| n.strip_suffix(".pub.pem"))
        }) {
            state.signing.iter().any(|e| e.kid.to_string() == kid)
        } else {
            continue;
        };
        if !listed && remove_durably(&entry.path())? {
            tracing::info!(file = %name, "removed a key file no rotation committed");
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Adds a new Ed25519 signing key: published in the JWKS at once, signing after
/// `propagation_seconds`; every older key is retired `token_horizon_seconds` (the longest
/// token lifetime plus clock leeway) after that, when no token it signed can still be valid.
pub fn rotate_signing(
    dir: &Path,
    now: u64,
    propagation_seconds: u64,
    token_horizon_seconds: u64,
) -> Result<SigningRotation, KeyError> {
    let _lock = lock(dir)?;
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
    dir: &Path,
    kid: SigningKid,
    now: u64,
) -> Result<SigningRevocation, KeyError> {
    let _lock = lock(dir)?;
    let mut state = state(dir)?;
    remove_unlisted(dir, &state)?;
    let after = lifecycle::revoke(&mut state.signing, kid, now).ok_or_else(|| {
        KeyError::UnknownSigningKey {
            kid: kid.to_string(),
            dir: dir.to_path_buf(),
        }
    })?;
    let (signer, created_signer) = match after {
        AfterRevoke::SignerRemains(signer) => (signer, false),
        AfterRevoke::NeedsNewSigner => {
            let pair = new_signing_pair(dir)?;
            state.signing.push(super::keyfiles::SigningEntry {
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
    remove_durably(&dir.join(signing_private_name(kid)))?;
    tracing::warn!(kid = %kid, signer = %signer, "signing key revoked");
    Ok(SigningRevocation {
        kid,
        signer,
        created_signer,
    })
}

/// Deletes the private halves of signing keys that will never sign again (superseded,
/// retired, revoked). Returns their kids.
pub fn prune_signing(dir: &Path, now: u64) -> Result<Vec<SigningKid>, KeyError> {
    let _lock = lock(dir)?;
    let state = state(dir)?;
    remove_unlisted(dir, &state)?;
    let mut pruned = Vec::new();
    for entry in &state.signing {
        if !lifecycle::needs_private_key(&state.signing, entry, now)
            && remove_durably(&dir.join(signing_private_name(entry.kid)))?
        {
            tracing::info!(kid = %entry.kid, "deleted the private half of a signing key that no longer signs");
            pruned.push(entry.kid);
        }
    }
    Ok(pruned)
}

/// Replaces the KEK: a new KEK becomes active, every content key is re-wrapped under it
/// (album by album, each file in one atomic write), then the old KEKs are dropped from the
/// state and deleted. If a previous run crashed midway (the state still lists old KEKs), this
/// run finishes that rotation instead of starting another.
pub fn rotate_kek(dir: &Path, now: u64) -> Result<KekRotation, KeyError> {
    let _lock = lock(dir)?;
    let mut state = state(dir)?;
    // A KEK file of a KEK the state records as retired is the debris of a rotation that
    // crashed just before deleting it: that rotation is finished by deleting it, not by
    // starting another one. (Any other unlisted KEK file was never committed.)
    let leftover: Vec<KeyId> = state
        .retired_keks
        .iter()
        .copied()
        .filter(|id| dir.join(kek_file_name(*id)).exists())
        .collect();
    remove_unlisted(dir, &state)?;
    if !leftover.is_empty() && state.keks.len() == 1 {
        tracing::info!(kek = %state.active_kek, "finished an interrupted KEK rotation (deleted the old KEK)");
        return Ok(KekRotation {
            kek: state.active_kek,
            retired: leftover,
            albums: Keyring::open(dir)?.albums()?.len(),
            rewrapped: 0,
            resumed: true,
        });
    }
    let resumed = state.keks.len() > 1;
    if !resumed {
        let kek = Kek::generate()?;
        let path = dir.join(kek_file_name(kek.id()));
        write_kek(&path, &kek, now)?;
        crashpoint::reached("rotate-kek:kek-written");
        state.keks.push(super::keyfiles::KekEntry {
            id: kek.id(),
            created_unix: now,
        });
        state.active_kek = kek.id();
        save_state(dir, &state)?;
        crashpoint::reached("rotate-kek:state-written");
    }
    let target = state.active_kek;

    // Opened after the state write, so it holds the old KEKs and the new one.
    let keyring = Keyring::open(dir)?;
    let albums = keyring.albums()?;
    let mut rewrapped = 0;
    for album in &albums {
        rewrapped += keyring.rewrap_album_locked(album, target)?;
        crashpoint::reached("rotate-kek:album-rewrapped");
    }

    let retired: Vec<KeyId> = state
        .keks
        .iter()
        .map(|e| e.id)
        .filter(|id| *id != target)
        .collect();
    state.keks.retain(|e| e.id == target);
    state.retired_keks.extend(retired.iter().copied());
    save_state(dir, &state)?;
    crashpoint::reached("rotate-kek:old-dropped");
    for id in &retired {
        remove_durably(&dir.join(kek_file_name(*id)))?;
    }
    tracing::info!(kek = %target, albums = albums.len(), rewrapped, resumed, "KEK rotated");
    Ok(KekRotation {
        kek: target,
        retired,
        albums: albums.len(),
        rewrapped,
        resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::keyring::KeyState;

    fn keys() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        Keyring::init(&dir).unwrap();
        (tmp, dir)
    }

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
        let now = crate::seal::keyfiles::now_unix();

        let rot = rotate_signing(&dir, now, 60, 500).unwrap();
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
        assert_eq!(prune_signing(&dir, now).unwrap(), vec![]);
        assert_eq!(prune_signing(&dir, now + 60).unwrap(), vec![old]);
        assert!(!dir.join(signing_private_name(old)).exists());
        assert!(dir.join(signing_public_name(old)).exists());
    }

    #[test]
    fn revoking_the_signer_makes_a_new_one_at_once() {
        let (_tmp, dir) = keys();
        let old = Keyring::open(&dir).unwrap().active_signing_kid();
        let now = crate::seal::keyfiles::now_unix();
        let rev = revoke_signing(&dir, old, now).unwrap();
        assert!(rev.created_signer);
        assert_ne!(rev.signer, old);
        assert!(!dir.join(signing_private_name(old)).exists());
        let k = Keyring::open(&dir).unwrap();
        assert_eq!(k.signer_kid_at(now), Some(rev.signer));
        assert!(k.public_keys_at(now).iter().all(|t| t.key.kid() != old));
        assert_eq!(state_of(&k, old, now), Some(KeyState::Revoked));

        let unknown: SigningKid = "00000000000000aa".parse().unwrap();
        assert!(matches!(
            revoke_signing(&dir, unknown, now),
            Err(KeyError::UnknownSigningKey { .. })
        ));
    }

    #[test]
    fn kek_rotation_rewraps_every_content_key() {
        let (_tmp, dir) = keys();
        let k = Keyring::open(&dir).unwrap();
        let old_kek = k.active_kek_id();
        let a = k.content_key("first-light", 1, "lossless").unwrap();
        let b = k.content_key("second-wind", 2, "preview").unwrap();

        let rot = rotate_kek(&dir, 1000).unwrap();
        assert!(!rot.resumed);
        assert_eq!(rot.retired, vec![old_kek]);
        assert_eq!((rot.albums, rot.rewrapped), (2, 2));
        assert!(!dir.join(kek_file_name(old_kek)).exists());

        let fresh = Keyring::open(&dir).unwrap();
        assert_eq!(fresh.active_kek_id(), rot.kek);
        let a2 = fresh
            .existing_content_key("first-light", 1, "lossless")
            .unwrap()
            .unwrap();
        assert_eq!(a2.expose_bytes(), a.expose_bytes());
        assert!(
            fresh.content_keys_for_album("second-wind").unwrap()[0].kek == rot.kek,
            "wrapped under the new KEK"
        );
        // A keyring loaded before the rotation (a server not reloaded yet) still unwraps:
        // it reads the new KEK's file on demand.
        let b2 = k
            .existing_content_key("second-wind", 2, "preview")
            .unwrap()
            .unwrap();
        assert_eq!(b2.expose_bytes(), b.expose_bytes());
        // And new keys it makes go under the KEK active on disk.
        k.content_key("third-eye", 1, "high").unwrap();
        assert_eq!(
            fresh.content_keys_for_album("third-eye").unwrap()[0].kek,
            rot.kek
        );
    }

    #[test]
    fn an_interrupted_kek_rotation_is_finished_by_the_next_run() {
        let (_tmp, dir) = keys();
        let k = Keyring::open(&dir).unwrap();
        let old_kek = k.active_kek_id();
        let a = k.content_key("first-light", 1, "lossless").unwrap();
        k.content_key("second-wind", 1, "lossless").unwrap();

        // What a crash after the state write and one album leaves behind.
        let mut state = state(&dir).unwrap();
        let kek = Kek::generate().unwrap();
        write_kek(&dir.join(kek_file_name(kek.id())), &kek, 5).unwrap();
        state.keks.push(super::super::keyfiles::KekEntry {
            id: kek.id(),
            created_unix: 5,
        });
        state.active_kek = kek.id();
        save_state(&dir, &state).unwrap();
        let mid = Keyring::open(&dir).unwrap();
        assert_eq!(mid.rewrap_album_locked("first-light", kek.id()).unwrap(), 1);
        // The half-done state loads and serves both albums.
        assert!(
            mid.existing_content_key("second-wind", 1, "lossless")
                .unwrap()
                .is_some()
        );
        // An orphan from a crash before any state write is cleaned up too.
        let orphan = Kek::generate().unwrap();
        write_kek(&dir.join(kek_file_name(orphan.id())), &orphan, 6).unwrap();

        let rot = rotate_kek(&dir, 10).unwrap();
        assert!(
            rot.resumed,
            "finished the interrupted rotation, did not start another"
        );
        assert_eq!(rot.kek, kek.id());
        assert_eq!(rot.retired, vec![old_kek]);
        assert_eq!(rot.rewrapped, 1);
        assert!(!dir.join(kek_file_name(orphan.id())).exists());
        let done = Keyring::open(&dir).unwrap();
        assert_eq!(
            done.existing_content_key("first-light", 1, "lossless")
                .unwrap()
                .unwrap()
                .expose_bytes(),
            a.expose_bytes()
        );
        assert_eq!(
            done.list()
                .iter()
                .filter(|e| e.kind == super::super::KeyKind::Kek)
                .count(),
            1
        );
    }

    #[test]
    fn content_keys_rotate_and_retire() {
        let (_tmp, dir) = keys();
        let k = Keyring::open(&dir).unwrap();
        let old = k.content_key("first-light", 1, "lossless").unwrap();
        let slots = vec![(1, "lossless".to_string(), old.id())];
        let ids = k.add_content_keys("first-light", &slots).unwrap();
        assert_ne!(ids[0], old.id());
        // A re-run while the new key is not in use yet reuses it.
        assert_eq!(k.add_content_keys("first-light", &slots).unwrap(), ids);
        // New seals use the newest key; licenses carry both, newest first.
        assert_eq!(
            k.existing_content_key("first-light", 1, "lossless")
                .unwrap()
                .unwrap()
                .id(),
            ids[0]
        );
        let live: Vec<_> = k
            .live_content_keys("first-light", 1, "lossless", 100)
            .unwrap()
            .iter()
            .map(|c| c.id())
            .collect();
        assert_eq!(live, vec![ids[0], old.id()]);

        k.retire_content_key("first-light", 1, "lossless", old.id(), 200)
            .unwrap();
        assert_eq!(
            k.live_content_keys("first-light", 1, "lossless", 200)
                .unwrap()
                .len(),
            1
        );
        // Not deleted while a manifest still uses it, nor before its time.
        let in_use = |_: u32, _: &str, id: KeyId| id == old.id();
        assert!(
            k.prune_content_keys("first-light", 300, &in_use)
                .unwrap()
                .is_empty()
        );
        let unused = |_: u32, _: &str, _: KeyId| false;
        assert!(
            k.prune_content_keys("first-light", 199, &unused)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            k.prune_content_keys("first-light", 200, &unused).unwrap(),
            vec![old.id()]
        );
        assert!(
            k.content_key_by_id("first-light", 1, "lossless", old.id())
                .unwrap()
                .is_none()
        );
    }
}
