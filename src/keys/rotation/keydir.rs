//! The keys-directory steps that signing and KEK rotations share (each called under the keys
//! lock): reading and writing the state, writing a new signing key pair, and deleting key
//! files durably, including the debris of a rotation that crashed before it committed.

use std::fs;
use std::io;
use std::path::Path;

use crate::durable;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::{
    StateFile, read_state, write_new_signing_private, write_signing_public, write_state,
};
use crate::keys::layout::{STATE_FILE, signing_public_name};
use crate::seal::SigningKeyPair;

/// The state of the keys directory `dir`; an error if it has none.
pub(super) fn state(dir: &Path) -> Result<StateFile, KeyError> {
    let path = dir.join(STATE_FILE);
    read_state(&path)?.ok_or_else(|| KeyError::NotInitialized {
        dir: dir.to_path_buf(),
        file: path,
    })
}

/// Writes the state of the keys directory `dir` durably.
pub(super) fn save_state(dir: &Path, state: &StateFile) -> Result<(), KeyError> {
    write_state(&dir.join(STATE_FILE), state)
}

/// Deletes `path` and syncs its folder; `false` if it was already gone.
pub(super) fn remove_durably(path: &Path) -> Result<bool, KeyError> {
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
pub(super) fn new_signing_pair(dir: &Path) -> Result<SigningKeyPair, KeyError> {
    let (pair, _) = write_new_signing_private(dir)?;
    write_signing_public(&dir.join(signing_public_name(pair.kid())), &pair)?;
    Ok(pair)
}

/// Removes key files the state does not list: debris of a rotation that crashed before its
/// state write. Nothing was ever signed or wrapped with them.
pub(super) fn remove_unlisted(dir: &Path, state: &StateFile) -> Result<Vec<String>, KeyError> {
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
