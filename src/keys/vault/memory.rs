//! The files of a database snapshot in memory (secrets in zeroizing buffers), and what a
//! transaction changed in them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use zeroize::Zeroizing;

use super::database::Change;
use super::sealed;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::{load_kek, parse_state};
use crate::keys::layout::{STATE_FILE, kek_file_name};
use crate::seal::{Kek, KeyId};

/// One snapshot of the key state: file name (relative to the keys folder) to bytes, private
/// signing keys unwrapped.
pub(crate) struct MemFiles {
    files: RwLock<BTreeMap<String, Zeroizing<Vec<u8>>>>,
    changed: Mutex<BTreeSet<String>>,
    /// KEK files to delete once the transaction has committed.
    removals: Mutex<Vec<PathBuf>>,
    version: i64,
}

/// Whether the blob `name` is a private signing key (stored wrapped, held unwrapped).
pub(super) fn is_private(name: &str) -> bool {
    name.starts_with("signing-") && name.ends_with(".key.pem")
}

impl MemFiles {
    /// The files of the rows read at `version`, private signing keys unwrapped with the KEK
    /// files in the keys folder `dir`. A KEK this node does not have is an error: the node
    /// keeps what it had (fail closed) and says which KEK file it needs.
    pub(crate) fn from_rows(
        dir: &Path,
        version: i64,
        rows: Vec<(String, String)>,
    ) -> Result<MemFiles, KeyError> {
        let mut keks: HashMap<KeyId, Kek> = HashMap::new();
        let mut files = BTreeMap::new();
        for (name, body) in rows {
            let bytes = if is_private(&name) {
                let envelope = sealed::Envelope::parse(&name, &body)?;
                let kek = match keks.get(&envelope.kek) {
                    Some(kek) => kek,
                    None => {
                        let kek = local_kek(dir, envelope.kek)?;
                        keks.entry(envelope.kek).or_insert(kek)
                    }
                };
                envelope.open(kek, &name)?
            } else {
                Zeroizing::new(body.into_bytes())
            };
            files.insert(name, bytes);
        }
        Ok(MemFiles {
            files: RwLock::new(files),
            changed: Mutex::new(BTreeSet::new()),
            removals: Mutex::new(Vec::new()),
            version,
        })
    }

    pub(crate) fn version(&self) -> i64 {
        self.version
    }

    pub(super) fn get(&self, name: &str) -> Option<Zeroizing<Vec<u8>>> {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        files.get(name).cloned()
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        files.contains_key(name)
    }

    pub(super) fn put(&self, name: &str, bytes: &[u8]) {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        files.insert(name.to_owned(), Zeroizing::new(bytes.to_vec()));
        self.mark(name);
    }

    pub(super) fn remove(&self, name: &str) -> bool {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        let was = files.remove(name).is_some();
        if was {
            self.mark(name);
        }
        was
    }

    fn mark(&self, name: &str) {
        self.changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
    }

    pub(super) fn remove_after_commit(&self, path: &Path) {
        self.removals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(path.to_path_buf());
    }

    /// Names directly in the folder `prefix` ("" for the top of the keys folder).
    pub(super) fn names_in(&self, prefix: &str) -> Vec<String> {
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect()
    }

    /// What a transaction changed, ready to write: each changed name with its new body (or
    /// `None`: deleted), private signing keys wrapped under the state's active KEK (read from
    /// the keys folder `dir`). When the active KEK changed, every private key is re-wrapped
    /// under it. Also the KEK files to delete after the commit.
    pub(super) fn changes(&self, dir: &Path) -> Result<(Vec<Change>, Vec<PathBuf>), KeyError> {
        let mut changed = self
            .changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let removals = self
            .removals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if changed.is_empty() {
            return Ok((Vec::new(), removals));
        }
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        let active = match files.get(STATE_FILE) {
            Some(bytes) => Some(parse_state(&dir.join(STATE_FILE), bytes)?.active_kek),
            None => None,
        };
        if changed.contains(STATE_FILE) {
            // A KEK rotation changes the state: re-wrap every private key under the new KEK
            // (cheap: a handful of signing keys), so none stays under a KEK being retired.
            changed.extend(files.keys().filter(|n| is_private(n)).cloned());
        }
        let mut kek: Option<Kek> = None;
        let mut out = Vec::with_capacity(changed.len());
        for name in changed {
            let body = match files.get(&name) {
                None => None,
                Some(bytes) if is_private(&name) => {
                    let active = active.ok_or_else(|| {
                        KeyError::corrupt(&dir.join(STATE_FILE), "keyring state", "it is missing")
                    })?;
                    if kek.is_none() {
                        kek = Some(local_kek(dir, active)?);
                    }
                    let kek = kek.as_ref().ok_or_else(|| KeyError::KekNotHere {
                        path: dir.join(kek_file_name(active)),
                        kek: active,
                    })?;
                    Some(sealed::Envelope::seal(kek, &name, bytes)?.to_json())
                }
                Some(bytes) => {
                    Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                        KeyError::corrupt(&dir.join(&name), "key file", "not UTF-8")
                    })?)
                }
            };
            out.push(Change { name, body });
        }
        Ok((out, removals))
    }

    /// Takes the committed files of a transaction's snapshot into this one.
    pub(super) fn absorb(&self, other: &MemFiles) {
        let changed = other
            .changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let theirs = other.files.read().unwrap_or_else(PoisonError::into_inner);
        let mut mine = self.files.write().unwrap_or_else(PoisonError::into_inner);
        for name in changed {
            match theirs.get(&name) {
                Some(bytes) => mine.insert(name, bytes.clone()),
                None => mine.remove(&name),
            };
        }
    }
}

/// The KEK `id` from this node's keys folder, or why this node cannot have it.
fn local_kek(dir: &Path, id: KeyId) -> Result<Kek, KeyError> {
    let path = dir.join(kek_file_name(id));
    match load_kek(&path)? {
        Some((kek, _)) if kek.id() == id => Ok(kek),
        _ => Err(KeyError::KekNotHere { path, kek: id }),
    }
}
