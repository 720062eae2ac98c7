//! Where the keys live: [`KeyDir`], the keys folder (the single-machine default) or, shared by
//! every origin, the key state in the database beside the ledger, held in memory.
//!
//! The keyring and the rotations read and write "files" by their path in the keys folder;
//! [`KeyDir`] decides where each one really is. In a folder, everywhere on disk. Backed by the
//! database, only the KEK files (`kek-<id>.json`), the audit log and the account keys stay on
//! the node's disk; the state, the signing keys and the content-key files are named blobs in
//! the `key_state` table, read as one snapshot into memory (private signing keys are stored
//! there wrapped under the active KEK, [`sealed`], and never touch the node's disk).
//!
//! A change to the database's keys runs in [`KeyDir::transact`]: one transaction that holds
//! the cluster-wide lock row, reads a fresh snapshot, runs the unchanged keyring logic on it in
//! memory, then writes every changed blob and bumps the version at once, so the folder's
//! crash ordering is replaced by atomicity, and every origin sees all of a change or none.
//!
//! - `memory`: the in-memory files of a snapshot and what a transaction changed.
//! - `sealed`: private signing keys wrapped under a KEK for the database.
//! - `database`: the `key_state` table (sqlx, on a thread of its own).

mod database;
mod memory;
mod sealed;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

pub use database::{CHANGES_CHANNEL, KeyDb};
pub(crate) use memory::MemFiles;

use super::error::KeyError;
use super::keyfiles;
use super::layout::{CONTENT_DIR, STATE_FILE};
use super::lock::{DirLock, lock_keys_dir};

/// A keys folder, or the database's key state (with the node's keys folder for its KEKs).
#[derive(Clone)]
pub struct KeyDir {
    path: PathBuf,
    backing: Backing,
}

#[derive(Clone)]
enum Backing {
    /// Every file on disk under `path`.
    Folder,
    /// The database, not loaded: [`KeyDir::snapshot`] reads it.
    Database(KeyDb),
    /// A snapshot in memory. `db` is set for a snapshot served from (changes go through
    /// [`KeyDir::transact`]) and unset inside a transaction (changes are made in memory and
    /// committed when it ends).
    Snapshot {
        files: Arc<MemFiles>,
        db: Option<KeyDb>,
    },
}

impl fmt::Debug for KeyDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.backing {
            Backing::Folder => "folder",
            Backing::Database(_) => "database",
            Backing::Snapshot { db: Some(_), .. } => "database snapshot",
            Backing::Snapshot { db: None, .. } => "transaction",
        };
        f.debug_struct("KeyDir")
            .field("path", &self.path)
            .field("kind", &kind)
            .finish()
    }
}

/// Where one path of the keys folder lives.
enum Place<'a> {
    Disk,
    Memory(&'a MemFiles, &'a str),
}

impl KeyDir {
    /// The keys folder `path`, every file on disk.
    pub fn folder(path: &Path) -> KeyDir {
        KeyDir {
            path: path.to_path_buf(),
            backing: Backing::Folder,
        }
    }

    /// The key state in `db`, with the node's KEKs (and audit log) in the folder `path`.
    pub fn database(path: &Path, db: KeyDb) -> KeyDir {
        KeyDir {
            path: path.to_path_buf(),
            backing: Backing::Database(db),
        }
    }

    pub(crate) fn in_memory(path: &Path, files: Arc<MemFiles>, db: Option<KeyDb>) -> KeyDir {
        KeyDir {
            path: path.to_path_buf(),
            backing: Backing::Snapshot { files, db },
        }
    }

    /// The node's keys folder (in the database case, where its KEK files are).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True for a keys folder (every file on disk).
    pub fn is_folder(&self) -> bool {
        matches!(self.backing, Backing::Folder)
    }

    /// The database behind it, if the key state is shared.
    pub fn db(&self) -> Option<&KeyDb> {
        match &self.backing {
            Backing::Folder | Backing::Snapshot { db: None, .. } => None,
            Backing::Database(db) | Backing::Snapshot { db: Some(db), .. } => Some(db),
        }
    }

    /// Where later loads come from: the folder, or the database (not this snapshot).
    pub fn source(&self) -> KeyDir {
        match self.db() {
            Some(db) => KeyDir::database(&self.path, db.clone()),
            None => self.clone(),
        }
    }

    /// The version of the database's key state this snapshot holds (`None` for a folder).
    pub fn version(&self) -> Option<i64> {
        match &self.backing {
            Backing::Snapshot { files, .. } => Some(files.version()),
            Backing::Folder | Backing::Database(_) => None,
        }
    }

    /// A loaded view: the folder itself, or a fresh snapshot of the database's key state
    /// (private signing keys unwrapped with the KEK files of this node).
    pub(crate) fn loaded(&self) -> Result<KeyDir, KeyError> {
        match &self.backing {
            Backing::Folder | Backing::Snapshot { .. } => Ok(self.clone()),
            Backing::Database(db) => {
                let (version, rows) = db.snapshot()?;
                let files = MemFiles::from_rows(&self.path, version, rows)?;
                Ok(KeyDir::in_memory(
                    &self.path,
                    Arc::new(files),
                    Some(db.clone()),
                ))
            }
        }
    }

    /// True where changes must go through [`transact`](Self::transact) (a served snapshot of
    /// the database).
    pub(crate) fn needs_transaction(&self) -> bool {
        matches!(self.backing, Backing::Snapshot { db: Some(_), .. })
    }

    /// Runs `change` with the exclusive right to change the keys. A folder: as it is (the
    /// functions take the folder's flock themselves). The database: in one transaction that
    /// holds the cluster-wide lock, on a snapshot read under it; what `change` wrote is
    /// committed at once (private signing keys wrapped under the active KEK) only if it
    /// succeeds, and the KEK files it deleted are deleted after the commit. A served snapshot
    /// gets the committed files too, so its next reads see them.
    pub(crate) fn transact<T, E: From<KeyError>>(
        &self,
        change: impl FnOnce(&KeyDir) -> Result<T, E>,
    ) -> Result<T, E> {
        let (db, served) = match &self.backing {
            Backing::Folder | Backing::Snapshot { db: None, .. } => return change(self),
            Backing::Database(db) => (db, None),
            Backing::Snapshot {
                files,
                db: Some(db),
            } => (db, Some(files)),
        };
        let mut tx = db.begin()?;
        let rows = tx.take_rows();
        let scratch = Arc::new(MemFiles::from_rows(&self.path, tx.version(), rows)?);
        let dir = KeyDir::in_memory(&self.path, scratch.clone(), None);
        // On an error, dropping the transaction rolls it back: nothing of the change is kept.
        let value = change(&dir)?;
        let (changes, removals) = scratch.changes(&self.path)?;
        if !changes.is_empty() {
            tx.commit(changes)?;
        }
        for path in removals {
            keyfiles::remove_file_durably(&path)?;
        }
        if let Some(files) = served {
            files.absorb(&scratch);
        }
        Ok(value)
    }

    /// Where `path` lives.
    fn place<'a>(&'a self, path: &'a Path) -> Result<Place<'a>, KeyError> {
        let files = match &self.backing {
            Backing::Folder => return Ok(Place::Disk),
            Backing::Snapshot { files, .. } => files,
            Backing::Database(_) => {
                return if is_local(&self.path, path) {
                    Ok(Place::Disk)
                } else {
                    Err(KeyError::Database {
                        location: "the key state".into(),
                        reason: format!("{} read before a snapshot was loaded", path.display()),
                    })
                };
            }
        };
        if is_local(&self.path, path) {
            return Ok(Place::Disk);
        }
        let name = path
            .strip_prefix(&self.path)
            .ok()
            .and_then(Path::to_str)
            .ok_or_else(|| KeyError::corrupt(path, "key state name", "outside the keys"))?;
        Ok(Place::Memory(files, name))
    }

    /// Reads a private file (on disk: only if only the owner can read it).
    pub(crate) fn read_private(&self, path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        match self.place(path)? {
            Place::Disk => keyfiles::read_private(path),
            Place::Memory(files, name) => Ok(files.get(name)),
        }
    }

    /// Reads a public file.
    pub(crate) fn read_public(&self, path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
        match self.place(path)? {
            Place::Disk => keyfiles::read_public(path),
            Place::Memory(files, name) => Ok(files.get(name).map(|b| b.to_vec())),
        }
    }

    /// Whether a private file exists (on disk: checking that only the owner can read it).
    pub(crate) fn private_exists(&self, path: &Path) -> Result<bool, KeyError> {
        match self.place(path)? {
            Place::Disk => keyfiles::private_exists(path),
            Place::Memory(files, name) => Ok(files.contains(name)),
        }
    }

    /// Writes a file durably and atomically (on disk) or into the transaction's snapshot.
    pub(crate) fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
        match self.place(path)? {
            Place::Disk => {
                crate::durable::write_atomic(path, bytes, mode).map_err(KeyError::io("write", path))
            }
            Place::Memory(files, name) => {
                self.refuse_outside_transaction(path)?;
                files.put(name, bytes);
                Ok(())
            }
        }
    }

    /// Deletes a file; `false` if it was already gone. A KEK file of a database-backed keyring
    /// is deleted only once the transaction commits.
    pub(crate) fn remove(&self, path: &Path) -> Result<bool, KeyError> {
        match (&self.backing, self.place(path)?) {
            (Backing::Snapshot { files, .. }, Place::Disk) => {
                self.refuse_outside_transaction(path)?;
                files.remove_after_commit(path);
                Ok(path.exists())
            }
            (_, Place::Disk) => keyfiles::remove_file_durably(path),
            (_, Place::Memory(files, name)) => {
                self.refuse_outside_transaction(path)?;
                Ok(files.remove(name))
            }
        }
    }

    /// Names of the files directly in the folder `dir` (the keys folder or a folder in it).
    pub(crate) fn list(&self, dir: &Path) -> Result<Vec<String>, KeyError> {
        let mut names = keyfiles::list_dir(dir)?;
        if let Backing::Snapshot { files, .. } = &self.backing {
            // On disk only what stays local (KEK files); the rest from the snapshot.
            names.retain(|n| is_local(&self.path, &dir.join(n)));
            let prefix = dir
                .strip_prefix(&self.path)
                .ok()
                .and_then(Path::to_str)
                .unwrap_or("");
            names.extend(files.names_in(prefix));
            names.sort();
            names.dedup();
        }
        Ok(names)
    }

    /// Creates a folder of the keys (on disk only: a snapshot has no folders).
    pub(crate) fn create_dir(&self, dir: &Path, mode: u32) -> Result<(), KeyError> {
        match self.backing {
            Backing::Folder => crate::durable::create_dir_all_durable_with_mode(dir, mode)
                .map_err(KeyError::io("create directory", dir)),
            Backing::Database(_) | Backing::Snapshot { .. } => Ok(()),
        }
    }

    /// The folder's flock, or nothing: a database transaction already holds the lock row.
    pub(crate) fn lock(&self) -> Result<Option<DirLock>, KeyError> {
        match self.backing {
            Backing::Folder => lock_keys_dir(&self.path).map(Some),
            Backing::Database(_) | Backing::Snapshot { .. } => Ok(None),
        }
    }

    fn refuse_outside_transaction(&self, path: &Path) -> Result<(), KeyError> {
        if self.needs_transaction() {
            return Err(KeyError::Database {
                location: "the key state".into(),
                reason: format!(
                    "{} changed outside a transaction (a bug: the change would be lost)",
                    path.display()
                ),
            });
        }
        Ok(())
    }
}

impl keyfiles::KeyFiles for KeyDir {
    fn root(&self) -> &Path {
        &self.path
    }

    fn read_private(&self, path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        KeyDir::read_private(self, path)
    }

    fn read_public(&self, path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
        KeyDir::read_public(self, path)
    }

    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
        KeyDir::write(self, path, bytes, mode)
    }
}

/// Whether `path` stays on the node's disk when the key state is in the database: the KEK
/// files (a node's only secrets), the lock, the audit log and the account service's keys.
fn is_local(root: &Path, path: &Path) -> bool {
    let Some(name) = path.strip_prefix(root).ok().and_then(Path::to_str) else {
        return true;
    };
    !(name == STATE_FILE
        || name.starts_with("signing-") && !name.contains('/')
        || name == CONTENT_DIR
        || name.starts_with(&format!("{CONTENT_DIR}/")))
}

#[cfg(test)]
mod tests;
