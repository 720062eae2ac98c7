//! The keys-directory steps that signing and KEK rotations share (each called under the keys
//! lock): reading and writing the state, writing a new signing key pair, and deleting key
//! files durably, including the debris of a rotation that crashed before it committed.

use std::path::Path;

use crate::keys::error::KeyError;
use crate::keys::keyfiles::{
    StateFile, read_state, write_new_signing_private, write_signing_public, write_state,
};
use crate::keys::layout::{STATE_FILE, signing_public_name};
use crate::keys::vault::KeyDir;
use crate::seal::SigningKeyPair;

/// The state of the keys `dir`; an error if it has none.
pub(super) fn state(dir: &KeyDir) -> Result<StateFile, KeyError> {
    let path = dir.path().join(STATE_FILE);
    read_state(dir, &path)?.ok_or_else(|| KeyError::NotInitialized {
        dir: dir.path().to_path_buf(),
        file: path,
    })
}

/// Writes the state of the keys `dir` durably.
pub(super) fn save_state(dir: &KeyDir, state: &StateFile) -> Result<(), KeyError> {
    write_state(dir, &dir.path().join(STATE_FILE), state)
}

/// Deletes `path` durably; `false` if it was already gone.
pub(super) fn remove_durably(dir: &KeyDir, path: &Path) -> Result<bool, KeyError> {
    dir.remove(path)
}

/// Generates a signing key pair and writes both halves (private 0600, public 0644).
pub(super) fn new_signing_pair(dir: &KeyDir) -> Result<SigningKeyPair, KeyError> {
    let (pair, _) = write_new_signing_private(dir)?;
    write_signing_public(
        dir,
        &dir.path().join(signing_public_name(pair.kid())),
        &pair,
    )?;
    Ok(pair)
}

/// Removes key files the state does not list: debris of a rotation that crashed before its
/// state write. Nothing was ever signed or wrapped with them.
pub(super) fn remove_unlisted(dir: &KeyDir, state: &StateFile) -> Result<Vec<String>, KeyError> {
    let mut removed = Vec::new();
    for name in dir.list(dir.path())? {
        let listed = if let Some(id) = name
            .strip_prefix("kek-")
            .and_then(|n| n.strip_suffix(".json"))
        {
            // With the database, an unlisted KEK file may be the next KEK, distributed to
            // every node before the rotation: never debris to remove.
            !dir.is_folder() || state.keks.iter().any(|e| e.id.to_string() == id)
        } else if let Some(kid) = name.strip_prefix("signing-").and_then(|n| {
            n.strip_suffix(".key.pem")
                .or_else(|| n.strip_suffix(".pub.pem"))
        }) {
            state.signing.iter().any(|e| e.kid.to_string() == kid)
        } else {
            continue;
        };
        if !listed && remove_durably(dir, &dir.path().join(&name))? {
            tracing::info!(file = %name, "removed a key file no rotation committed");
            removed.push(name);
        }
    }
    Ok(removed)
}
