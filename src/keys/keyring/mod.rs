//! The [`Keyring`]: a loaded keys directory (KEKs, token-signing keys, and content keys stored
//! only wrapped under a KEK), split by job: [`init`](Keyring::init) with crash recovery in
//! `init`, content keys in `content`, signing keys in `signing`, listings in `listing`. The
//! directory's layout is in [`super::layout`], its formats in `docs/SEALING.md`.
//!
//! Every file is written with [`crate::durable::write_atomic`]; `keyring.json` is written last
//! by `init`, so a crash leaves either no keyring (and `init` completes it) or a whole one.

mod content;
mod init;
mod listing;
mod signing;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::error::KeyError;
use super::keyfiles::{SigningEntry, StateFile, load_kek, load_public, now_unix, read_state};
use super::layout::{
    CONTENT_DIR, STATE_FILE, album_problem, kek_file_name, signing_private_name,
    signing_public_name,
};
use super::lifecycle;
use super::vault::KeyDir;
use crate::seal::{Kek, KeyId, PublicSigningKey};

pub use init::InitReport;
pub use listing::{ContentKeyInfo, KeyEntry, KeyKind};
pub use signing::TrustedKey;

/// A loaded keys directory, or a snapshot of the database's key state. Safe to share
/// between threads (`Send + Sync`).
///
/// Loaded once at [`Keyring::open`]; a rotation by another process is seen after re-opening.
pub struct Keyring {
    dir: KeyDir,
    state: StateFile,
    keks: HashMap<KeyId, Kek>,
    public: Vec<(SigningEntry, PublicSigningKey)>,
    /// Serializes content-key creation in this process; the flock covers other processes.
    create: Mutex<()>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids only, and short: this ends up in logs.
        f.debug_struct("Keyring")
            .field("dir", &self.dir)
            .field("version", &self.dir.version())
            .field("active_kek", &self.state.active_kek)
            .field("active_signing", &self.state.active_signing)
            .field("keks", &self.keks.len())
            .field("signing_keys", &self.public.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the keys directory: the state, every KEK it lists, every public signing key.
    /// Refuses private key files that group or others can read, and a missing or corrupt
    /// state.
    pub fn open(dir: &Path) -> Result<Keyring, KeyError> {
        Keyring::open_in(&KeyDir::folder(dir))
    }

    /// Loads the keys from where `keys` says they are: a folder, or a fresh snapshot of the
    /// database's key state (private signing keys unwrapped in memory, with this node's KEKs).
    pub fn open_in(keys: &KeyDir) -> Result<Keyring, KeyError> {
        let loaded = keys.loaded()?;
        let dir = loaded.path();
        let state_path = dir.join(STATE_FILE);
        let state = read_state(&loaded, &state_path)?.ok_or_else(|| KeyError::NotInitialized {
            dir: dir.to_path_buf(),
            file: state_path.clone(),
        })?;
        if !state.keks.iter().any(|e| e.id == state.active_kek) {
            return Err(KeyError::corrupt(
                &state_path,
                "keyring state",
                format!("active KEK {} is not among its KEKs", state.active_kek),
            ));
        }
        if !state.signing.iter().any(|e| e.kid == state.active_signing) {
            return Err(KeyError::corrupt(
                &state_path,
                "keyring state",
                format!(
                    "active signing key {} is not among its signing keys",
                    state.active_signing
                ),
            ));
        }

        let mut keks = HashMap::with_capacity(state.keks.len());
        for entry in &state.keks {
            let path = dir.join(kek_file_name(entry.id));
            let kek = match load_kek(&path)? {
                Some((kek, _)) => kek,
                None => {
                    return Err(KeyError::Missing {
                        path,
                        listed_in: state_path,
                    });
                }
            };
            if kek.id() != entry.id {
                return Err(KeyError::corrupt(
                    &path,
                    "KEK file",
                    format!("it holds KEK {}, not {}", kek.id(), entry.id),
                ));
            }
            keks.insert(entry.id, kek);
        }

        let now = now_unix();
        let mut public = Vec::with_capacity(state.signing.len());
        for entry in &state.signing {
            let private = dir.join(signing_private_name(entry.kid));
            // Only a key that signs or will sign needs its private half; a superseded one may
            // be public only (maintenance deletes those).
            if !loaded.private_exists(&private)?
                && lifecycle::needs_private_key(&state.signing, entry, now)
            {
                return Err(KeyError::Missing {
                    path: private,
                    listed_in: state_path,
                });
            }
            let pub_path = dir.join(signing_public_name(entry.kid));
            let key = load_public(&loaded, &pub_path)?.ok_or_else(|| KeyError::Missing {
                path: pub_path.clone(),
                listed_in: state_path.clone(),
            })?;
            if key.kid() != entry.kid {
                return Err(KeyError::corrupt(
                    &pub_path,
                    "public signing key",
                    format!("its kid is {}, not {}", key.kid(), entry.kid),
                ));
            }
            public.push((entry.clone(), key));
        }
        // Newest first: the natural order for a JWKS (the signer, or the key about to sign,
        // leads).
        public.reverse();

        tracing::debug!(dir = %dir.display(), kek = %state.active_kek, signing_kid = %state.active_signing, "keyring opened");
        Ok(Keyring {
            dir: loaded,
            state,
            keks,
            public,
            create: Mutex::new(()),
        })
    }

    /// The keys directory (with the key state in the database: the node's folder of KEKs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the keys live; [`KeyDir::source`] is where a reload reads them.
    pub fn keys(&self) -> &KeyDir {
        &self.dir
    }

    /// Runs a change of the keys: on this keyring (a folder, or inside a transaction), or,
    /// for a snapshot of the database, as one transaction on a fresh snapshot under the lock,
    /// whose committed files this snapshot then holds too.
    fn change<T>(&self, op: impl FnOnce(&Keyring) -> Result<T, KeyError>) -> Result<T, KeyError> {
        if !self.dir.needs_transaction() {
            return op(self);
        }
        // One change of this process at a time; the transaction orders the others.
        let _guard = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        self.dir.transact(|tx| op(&Keyring::open_in(tx)?))
    }

    /// Id of the KEK that wraps new content keys.
    pub fn active_kek_id(&self) -> KeyId {
        self.state.active_kek
    }

    /// The key file of `album`; refuses an id that cannot name a file.
    fn content_path(&self, album: &str) -> Result<PathBuf, KeyError> {
        if let Some(reason) = album_problem(album) {
            return Err(KeyError::InvalidAlbum {
                album: album.chars().take(80).collect(),
                reason,
            });
        }
        Ok(self.dir().join(CONTENT_DIR).join(format!("{album}.json")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    pub(super) fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    pub(super) fn keys_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        (tmp, dir)
    }

    #[test]
    fn open_refuses_readable_private_files() {
        let (_tmp, dir) = keys_dir();
        let report = Keyring::init(&dir).unwrap();
        for name in [
            kek_file_name(report.kek),
            signing_private_name(report.signing_kid),
        ] {
            let path = dir.join(&name);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = Keyring::open(&dir).unwrap_err();
            match &err {
                KeyError::TooOpen { path: p, mode } => {
                    assert_eq!(p, &path);
                    assert_eq!(*mode, 0o644);
                }
                other => panic!("expected TooOpen, got {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(&name) && msg.contains("chmod 600"), "{msg}");
            assert!(msg.contains("0644"), "{msg}");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        Keyring::open(&dir).unwrap();
    }

    #[test]
    fn open_explains_missing_and_corrupt_state() {
        let (_tmp, dir) = keys_dir();
        let err = Keyring::open(&dir).unwrap_err();
        assert!(matches!(err, KeyError::NotInitialized { .. }));
        assert!(err.to_string().contains("encore keys init"), "{err}");

        Keyring::init(&dir).unwrap();
        fs::write(dir.join(STATE_FILE), b"{ not json").unwrap();
        let err = Keyring::open(&dir).unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(STATE_FILE), "{err}");

        fs::write(dir.join(STATE_FILE), br#"{"format": 7}"#).unwrap();
        let err = Keyring::open(&dir).unwrap_err();
        assert!(
            matches!(err, KeyError::UnsupportedFormat { found: 7, .. }),
            "{err}"
        );
    }

    #[test]
    fn keyring_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Keyring>();
    }
}
