//! The keys directory and the [`Keyring`] that loads it: KEKs, token-signing keys, and content
//! keys stored only wrapped under a KEK. Layout and formats are in `docs/SEALING.md`.
//!
//! ```text
//! keys/                          0700
//!   keyring.json                 0644  state: active KEK, active signing kid, all entries
//!   keyring.lock                 0600  flock'd by every writer
//!   kek-<id>.json                0600  a KEK (32 bytes, hex) with its id and creation time
//!   signing-<kid>.key.pem        0600  Ed25519 private key, PKCS#8 PEM
//!   signing-<kid>.pub.pem        0644  Ed25519 public key, SPKI PEM
//!   content/                     0700
//!     <album>.json               0600  that album's content keys, wrapped under a KEK
//! ```
//!
//! Every file is written with [`crate::durable::write_atomic`]; `keyring.json` is written last
//! by `init`, so a crash leaves either no keyring (and `init` completes it) or a whole one.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::key::{ContentKey, Kek, KeyId};
use super::keyfiles::{
    ContentEntry, ContentFile, DIR_MODE, FORMAT, KekEntry, PUBLIC_MODE, SECRET_MODE, SigningEntry,
    StateFile, album_problem, check_private_mode, kek_file_name, load_kek, load_public,
    load_signing_pair, now_unix, read_content_file, read_private, read_state, signing_private_name,
    signing_public_name, write_json, write_kek, write_state,
};
use super::lifecycle;
use super::lock::DirLock;
use super::signing::{PublicSigningKey, SigningError, SigningKeyPair, SigningKid};
use super::wrap::{self, KeySlot, WRAPPED_LEN, WrapError, Wrapped};
use crate::durable;

pub use super::keyerror::KeyError;
pub use super::keyfiles::{CONTENT_DIR, LOCK_FILE, STATE_FILE};

/// Whether a key is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Published (a signing key in the JWKS) but not used yet: it signs once its propagation
    /// delay has passed.
    Pending,
    /// Used for new wraps / new tokens.
    Active,
    /// Superseded, still trusted: verifies tokens signed before the rotation (a KEK: still
    /// unwraps keys an unfinished rotation has not re-wrapped yet).
    Verifying,
    /// Out of service: every token it signed has expired.
    Retired,
    /// Distrusted by staff after a suspected leak.
    Revoked,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Verifying => "verifying",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        })
    }
}

/// Kind of key, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// Key-encryption key.
    Kek,
    /// Ed25519 token-signing key.
    Signing,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Kek => "kek",
            KeyKind::Signing => "signing",
        })
    }
}

/// One row of `encore keys list`: no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// KEK or signing key.
    pub kind: KeyKind,
    /// KEK id (32 hex) or signing kid (16 hex).
    pub id: String,
    /// Where the key is in its life now.
    pub state: KeyState,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// When a signing key starts (or started) signing.
    pub activates_unix: Option<u64>,
    /// When a signing key stops being trusted (set once a successor is rotated in).
    pub retires_unix: Option<u64>,
    /// When a signing key was revoked.
    pub revoked_unix: Option<u64>,
}

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

/// A content key's public facts (no secret), for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentKeyInfo {
    /// Track number.
    pub track: u32,
    /// Rendition name.
    pub rendition: String,
    /// The content key's id (as in sealed segment headers).
    pub id: KeyId,
    /// The KEK it is wrapped under.
    pub kek: KeyId,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Set once a newer key replaced it: deleted then.
    pub retires_unix: Option<u64>,
}

/// What [`Keyring::init`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The keys directory.
    pub dir: PathBuf,
    /// The active KEK.
    pub kek: KeyId,
    /// The active signing key.
    pub signing_kid: SigningKid,
    /// Files and directories this run created; empty when the keyring was already complete.
    pub created: Vec<PathBuf>,
}

impl InitReport {
    /// Whether this run changed anything on disk.
    pub fn changed(&self) -> bool {
        !self.created.is_empty()
    }
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changed() {
            writeln!(f, "initialized keyring in {}:", self.dir.display())?;
            for path in &self.created {
                writeln!(f, "  created {}", path.display())?;
            }
        } else {
            writeln!(
                f,
                "keyring in {} is already complete; nothing changed",
                self.dir.display()
            )?;
        }
        writeln!(f, "  active KEK:         {}", self.kek)?;
        write!(f, "  active signing kid: {}", self.signing_kid)
    }
}

// ----- the keyring ---------------------------------------------------------------------------

/// A loaded keys directory. Safe to share between threads (`Send + Sync`).
///
/// Loaded once at [`Keyring::open`]; a rotation by another process is seen after re-opening.
pub struct Keyring {
    dir: PathBuf,
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
            .field("active_kek", &self.state.active_kek)
            .field("active_signing", &self.state.active_signing)
            .field("keks", &self.keks.len())
            .field("signing_keys", &self.public.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Creates the keys directory (0700) with a KEK, an Ed25519 signing key pair and the state
    /// file, or completes one a crashed `init` left behind. On a complete directory it changes
    /// nothing and says so.
    ///
    /// Refuses to guess: if `keyring.json` exists but names a KEK or private key that is gone,
    /// or if several orphan keys lie around without it, it returns an error rather than make
    /// new keys (which would orphan content keys wrapped under the old KEK).
    pub fn init(dir: &Path) -> Result<InitReport, KeyError> {
        let mut created = Vec::new();
        if !dir.exists() {
            created.push(dir.to_path_buf());
        }
        durable::create_dir_all_durable_with_mode(dir, DIR_MODE)
            .map_err(KeyError::io("create directory", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let _lock = DirLock::acquire(&lock_path).map_err(KeyError::io("lock", &lock_path))?;

        let content_dir = dir.join(CONTENT_DIR);
        if !content_dir.exists() {
            durable::create_dir_all_durable_with_mode(&content_dir, DIR_MODE)
                .map_err(KeyError::io("create directory", &content_dir))?;
            created.push(content_dir);
        }

        let state_path = dir.join(STATE_FILE);
        let (kek, signing_kid) = match read_state(&state_path)? {
            Some(state) => {
                complete_existing(dir, &state_path, &state, &mut created)?;
                (state.active_kek, state.active_signing)
            }
            None => {
                let now = now_unix();
                let (kek_id, kek_created) = adopt_or_create_kek(dir, now, &mut created)?;
                let (kid, signing_created) = adopt_or_create_signing(dir, now, &mut created)?;
                let state = StateFile {
                    format: FORMAT,
                    active_kek: kek_id,
                    active_signing: kid,
                    keks: vec![KekEntry {
                        id: kek_id,
                        created_unix: kek_created,
                    }],
                    signing: vec![SigningEntry {
                        kid,
                        created_unix: signing_created,
                        activates_unix: None,
                        retires_unix: None,
                        revoked_unix: None,
                    }],
                    retired_keks: Vec::new(),
                };
                write_state(&state_path, &state)?;
                created.push(state_path);
                (kek_id, kid)
            }
        };
        let report = InitReport {
            dir: dir.to_path_buf(),
            kek,
            signing_kid,
            created,
        };
        if report.changed() {
            tracing::info!(dir = %dir.display(), kek = %kek, signing_kid = %signing_kid, "keyring initialized");
        }
        Ok(report)
    }

    /// Loads the keys directory: the state, every KEK it lists, every public signing key.
    /// Refuses private key files that group or others can read, and a missing or corrupt
    /// state.
    pub fn open(dir: &Path) -> Result<Keyring, KeyError> {
        let state_path = dir.join(STATE_FILE);
        let state = read_state(&state_path)?.ok_or_else(|| KeyError::NotInitialized {
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
            match fs::metadata(&private) {
                Ok(meta) => check_private_mode(&private, &meta)?,
                // Only a key that signs or will sign needs its private half; a superseded
                // one may be public only (maintenance deletes those).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if lifecycle::needs_private_key(&state.signing, entry, now) {
                        return Err(KeyError::Missing {
                            path: private,
                            listed_in: state_path,
                        });
                    }
                }
                Err(e) => return Err(KeyError::io("inspect", &private)(e)),
            }
            let pub_path = dir.join(signing_public_name(entry.kid));
            let key = load_public(&pub_path)?.ok_or_else(|| KeyError::Missing {
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
            dir: dir.to_path_buf(),
            state,
            keks,
            public,
            create: Mutex::new(()),
        })
    }

    /// The keys directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Id of the KEK that wraps new content keys.
    pub fn active_kek_id(&self) -> KeyId {
        self.state.active_kek
    }

    /// Kid of the key that signs new tokens now.
    pub fn active_signing_kid(&self) -> SigningKid {
        self.signer_kid_at(now_unix())
            .unwrap_or(self.state.active_signing)
    }

    /// Kid of the key that signs new tokens at `now`, if any key may sign then.
    pub fn signer_kid_at(&self, now: u64) -> Option<SigningKid> {
        lifecycle::signer_at(&self.state.signing, now).map(|e| e.kid)
    }

    /// The content key for (album, track, rendition), created (random, wrapped under the
    /// active KEK, written durably) if there is none yet. Safe to call from many threads and
    /// processes at once: all callers get the same key.
    pub fn content_key(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Result<ContentKey, KeyError> {
        if let Some(key) = self.existing_content_key(album, track, rendition)? {
            return Ok(key);
        }
        let slot = KeySlot {
            album,
            track,
            rendition,
        };
        // The Mutex orders threads of this process; the flock orders processes. Both are
        // needed because flock is per open file, and the Mutex alone would not stop a second
        // process from overwriting the album file with its own new key.
        let _guard = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.dir.join(LOCK_FILE);
        let _lock = DirLock::acquire(&lock_path).map_err(KeyError::io("lock", &lock_path))?;

        // Re-read under the lock: someone may have created it meanwhile.
        let path = self.content_path(album)?;
        let mut file = read_content_file(&path, album)?.unwrap_or_else(|| ContentFile {
            format: FORMAT,
            album: album.to_owned(),
            keys: Vec::new(),
        });
        if let Some(entry) = find_entry(&file, track, rendition) {
            return self.unwrap_entry(&path, slot, entry);
        }
        let key = ContentKey::generate()?;
        let entry = self.wrap_new_entry(&path, slot, &key)?;
        file.keys.push(entry);
        self.write_content_file(&path, &mut file)?;
        tracing::info!(album, track, rendition, key_id = %key.id(), "content key created");
        Ok(key)
    }

    /// Adds a new content key for every listed (track, rendition) of `album` in one durable
    /// write, keeping the old ones (they still open the segments being served). A slot that
    /// already has a key newer than the one `current` names keeps it: a re-run after a crash
    /// reuses the keys of the interrupted rotation instead of piling up new ones.
    ///
    /// Returns, per slot, the id of the key new seals must use.
    pub fn add_content_keys(
        &self,
        album: &str,
        slots: &[(u32, String, KeyId)],
    ) -> Result<Vec<KeyId>, KeyError> {
        let _guard = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.dir.join(LOCK_FILE);
        let _lock = DirLock::acquire(&lock_path).map_err(KeyError::io("lock", &lock_path))?;
        let path = self.content_path(album)?;
        let mut file = read_content_file(&path, album)?.ok_or_else(|| KeyError::NoContentKeys {
            album: album.to_owned(),
            dir: self.dir.clone(),
        })?;
        let mut ids = Vec::with_capacity(slots.len());
        let mut changed = false;
        for (track, rendition, current) in slots {
            let newest = find_entry(&file, *track, rendition).map(|e| e.id);
            if let Some(newest) = newest
                && newest != *current
            {
                ids.push(newest);
                continue;
            }
            let slot = KeySlot {
                album,
                track: *track,
                rendition,
            };
            let key = ContentKey::generate()?;
            let entry = self.wrap_new_entry(&path, slot, &key)?;
            ids.push(entry.id);
            file.keys.push(entry);
            changed = true;
        }
        if changed {
            self.write_content_file(&path, &mut file)?;
        }
        Ok(ids)
    }

    /// Marks the content key `id` of a slot as replaced: it is deleted at `retires_unix`.
    pub fn retire_content_key(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        id: KeyId,
        retires_unix: u64,
    ) -> Result<(), KeyError> {
        self.edit_content_file(album, |file| {
            let mut changed = false;
            for e in &mut file.keys {
                if e.track == track
                    && e.rendition == rendition
                    && e.id == id
                    && e.retires_unix.is_none()
                {
                    e.retires_unix = Some(retires_unix);
                    changed = true;
                }
            }
            changed
        })
    }

    /// Deletes `album`'s content keys retired by `now` that `in_use` does not name (a key a
    /// manifest still seals under is never deleted). Returns the ids deleted.
    pub fn prune_content_keys(
        &self,
        album: &str,
        now: u64,
        in_use: &dyn Fn(u32, &str, KeyId) -> bool,
    ) -> Result<Vec<KeyId>, KeyError> {
        let mut removed = Vec::new();
        self.edit_content_file(album, |file| {
            file.keys.retain(|e| {
                let gone = e.retires_unix.is_some_and(|t| t <= now)
                    && !in_use(e.track, &e.rendition, e.id);
                if gone {
                    removed.push(e.id);
                }
                !gone
            });
            !removed.is_empty()
        })?;
        Ok(removed)
    }

    /// Re-wraps every content key of `album` that is not under the KEK `to` (whose file must
    /// be in the keys directory). Returns how many keys were re-wrapped; the file is written
    /// once, atomically, so a crash leaves it all-old or all-new. The caller holds the keys
    /// lock.
    pub(crate) fn rewrap_album_locked(&self, album: &str, to: KeyId) -> Result<usize, KeyError> {
        let mut count = 0;
        let path = self.content_path(album)?;
        let mut result = Ok(());
        self.edit_content_file_locked(album, |file| {
            for entry in &mut file.keys {
                if entry.kek == to {
                    continue;
                }
                let slot = KeySlot {
                    album,
                    track: entry.track,
                    rendition: &entry.rendition,
                };
                let rewrapped = self
                    .unwrap_entry(&path, slot, entry)
                    .and_then(|key| self.wrap_under(&path, slot, &key, to));
                match rewrapped {
                    Ok(w) => {
                        entry.kek = w.kek_id;
                        entry.nonce = hex::encode(w.nonce);
                        entry.wrapped = hex::encode(w.sealed);
                        count += 1;
                    }
                    Err(e) => {
                        result = Err(e);
                        return false;
                    }
                }
            }
            count > 0
        })?;
        result.map(|()| count)
    }

    /// Reads, changes and (if `change` says it changed anything) durably rewrites an album's
    /// content key file, under the keys lock.
    fn edit_content_file(
        &self,
        album: &str,
        change: impl FnOnce(&mut ContentFile) -> bool,
    ) -> Result<(), KeyError> {
        let _guard = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.dir.join(LOCK_FILE);
        let _lock = DirLock::acquire(&lock_path).map_err(KeyError::io("lock", &lock_path))?;
        self.edit_content_file_locked(album, change)
    }

    fn edit_content_file_locked(
        &self,
        album: &str,
        change: impl FnOnce(&mut ContentFile) -> bool,
    ) -> Result<(), KeyError> {
        let path = self.content_path(album)?;
        let Some(mut file) = read_content_file(&path, album)? else {
            return Ok(());
        };
        if change(&mut file) {
            self.write_content_file(&path, &mut file)?;
        }
        Ok(())
    }

    fn write_content_file(&self, path: &Path, file: &mut ContentFile) -> Result<(), KeyError> {
        // Stable: within a slot, keys stay oldest first, so the newest is the last.
        file.keys
            .sort_by(|a, b| (a.track, &a.rendition).cmp(&(b.track, &b.rendition)));
        let content_dir = self.dir.join(CONTENT_DIR);
        durable::create_dir_all_durable_with_mode(&content_dir, DIR_MODE)
            .map_err(KeyError::io("create directory", &content_dir))?;
        write_json(path, file, SECRET_MODE)
    }

    /// Wraps a fresh content key under the KEK that is active on disk now (not the one this
    /// keyring loaded: a KEK rotation may have happened since). Call under the keys lock.
    fn wrap_new_entry(
        &self,
        path: &Path,
        slot: KeySlot<'_>,
        key: &ContentKey,
    ) -> Result<ContentEntry, KeyError> {
        let state_path = self.dir.join(STATE_FILE);
        let active = read_state(&state_path)?
            .map(|s| s.active_kek)
            .unwrap_or(self.state.active_kek);
        let wrapped = self.wrap_under(path, slot, key, active)?;
        Ok(ContentEntry {
            track: slot.track,
            rendition: slot.rendition.to_owned(),
            id: key.id(),
            kek: wrapped.kek_id,
            created_unix: now_unix(),
            nonce: hex::encode(wrapped.nonce),
            wrapped: hex::encode(wrapped.sealed),
            retires_unix: None,
        })
    }

    fn wrap_under(
        &self,
        path: &Path,
        slot: KeySlot<'_>,
        key: &ContentKey,
        kek: KeyId,
    ) -> Result<Wrapped, KeyError> {
        self.with_kek(path, slot, kek, |kek| {
            wrap::wrap(kek, slot, key).map_err(|e| match e {
                WrapError::Rng(e) => KeyError::Rng(e),
                WrapError::Context(e) => KeyError::Context(e),
                other => unwrap_error(path, slot, other),
            })
        })
    }

    /// Runs `f` with the KEK `id`: from memory, or, when a rotation by another process added
    /// it after this keyring was loaded, from its file (ids are bound into every wrap, so a
    /// wrong file cannot unwrap anything).
    fn with_kek<T>(
        &self,
        path: &Path,
        slot: KeySlot<'_>,
        id: KeyId,
        f: impl FnOnce(&Kek) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        if let Some(kek) = self.keks.get(&id) {
            return f(kek);
        }
        let unknown = || KeyError::UnknownKek {
            path: path.to_path_buf(),
            album: slot.album.to_owned(),
            track: slot.track,
            rendition: slot.rendition.to_owned(),
            kek: id,
        };
        match load_kek(&self.dir.join(kek_file_name(id)))? {
            Some((kek, _)) if kek.id() == id => f(&kek),
            _ => Err(unknown()),
        }
    }

    /// The newest content key for (album, track, rendition) if one exists; never creates one
    /// (for the license path, which must not invent keys no segment is sealed under).
    pub fn existing_content_key(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Result<Option<ContentKey>, KeyError> {
        let keys = self.unwrap_picked(album, track, rendition, |file| {
            find_entry(file, track, rendition).into_iter().collect()
        })?;
        Ok(keys.into_iter().next())
    }

    /// Every content key of (album, track, rendition) not retired by `now`, newest first:
    /// during a content rotation a license carries both the old key (for segments already
    /// listed in players' manifests) and the new one.
    pub fn live_content_keys(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        now: u64,
    ) -> Result<Vec<ContentKey>, KeyError> {
        self.unwrap_picked(album, track, rendition, |file| {
            file.keys
                .iter()
                .rev()
                .filter(|e| e.track == track && e.rendition == rendition)
                .filter(|e| e.retires_unix.is_none_or(|t| t > now))
                .collect()
        })
    }

    /// The content key `id` of (album, track, rendition), retired or not.
    pub fn content_key_by_id(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        id: KeyId,
    ) -> Result<Option<ContentKey>, KeyError> {
        let keys = self.unwrap_picked(album, track, rendition, |file| {
            file.keys
                .iter()
                .filter(|e| e.track == track && e.rendition == rendition && e.id == id)
                .take(1)
                .collect()
        })?;
        Ok(keys.into_iter().next())
    }

    /// Reads `album`'s key file and unwraps the entries of one slot that `pick` chooses.
    fn unwrap_picked(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        pick: impl for<'f> FnOnce(&'f ContentFile) -> Vec<&'f ContentEntry>,
    ) -> Result<Vec<ContentKey>, KeyError> {
        let path = self.content_path(album)?;
        let Some(file) = read_content_file(&path, album)? else {
            return Ok(Vec::new());
        };
        let slot = KeySlot {
            album,
            track,
            rendition,
        };
        pick(&file)
            .into_iter()
            .map(|entry| self.unwrap_entry(&path, slot, entry))
            .collect()
    }

    /// The content keys of `album`, without secrets; empty if it has none.
    pub fn content_keys_for_album(&self, album: &str) -> Result<Vec<ContentKeyInfo>, KeyError> {
        let path = self.content_path(album)?;
        let Some(file) = read_content_file(&path, album)? else {
            return Ok(Vec::new());
        };
        Ok(file
            .keys
            .into_iter()
            .map(|e| ContentKeyInfo {
                track: e.track,
                rendition: e.rendition,
                id: e.id,
                kek: e.kek,
                created_unix: e.created_unix,
                retires_unix: e.retires_unix,
            })
            .collect())
    }

    /// Albums that have content keys, sorted.
    pub fn albums(&self) -> Result<Vec<String>, KeyError> {
        let dir = self.dir.join(CONTENT_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyError::io("list", &dir)(e)),
        };
        let mut albums = Vec::new();
        for entry in entries {
            let entry = entry.map_err(KeyError::io("list", &dir))?;
            let name = entry.file_name();
            let Some(album) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if album_problem(album).is_none() {
                albums.push(album.to_owned());
            }
        }
        albums.sort();
        Ok(albums)
    }

    /// Loads the Ed25519 private key that signs now (zeroized on drop), checking it matches
    /// its public key file.
    pub fn signing_key(&self) -> Result<SigningKeyPair, KeyError> {
        self.signing_key_at(now_unix())
    }

    /// Loads the private key of the key that signs at `now`.
    pub fn signing_key_at(&self, now: u64) -> Result<SigningKeyPair, KeyError> {
        let kid = self.signer_kid_at(now).ok_or_else(|| KeyError::NoSigner {
            dir: self.dir.clone(),
        })?;
        let path = self.dir.join(signing_private_name(kid));
        let bytes = read_private(&path)?.ok_or_else(|| KeyError::Missing {
            path: path.clone(),
            listed_in: self.dir.join(STATE_FILE),
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

    /// Keys and their life at `now`: KEKs, then signing keys. No material.
    pub fn list_at(&self, now: u64) -> Vec<KeyEntry> {
        let keks = self.state.keks.iter().map(|e| KeyEntry {
            kind: KeyKind::Kek,
            id: e.id.to_string(),
            state: if e.id == self.state.active_kek {
                KeyState::Active
            } else {
                KeyState::Verifying
            },
            created_unix: e.created_unix,
            activates_unix: None,
            retires_unix: None,
            revoked_unix: None,
        });
        let signing = self.state.signing.iter().map(|e| KeyEntry {
            kind: KeyKind::Signing,
            id: e.kid.to_string(),
            state: lifecycle::state_at(&self.state.signing, e, now),
            created_unix: e.created_unix,
            activates_unix: Some(lifecycle::activates(e)),
            retires_unix: e.retires_unix,
            revoked_unix: e.revoked_unix,
        });
        keks.chain(signing).collect()
    }

    /// [`list_at`](Self::list_at) now.
    pub fn list(&self) -> Vec<KeyEntry> {
        self.list_at(now_unix())
    }

    fn content_path(&self, album: &str) -> Result<PathBuf, KeyError> {
        if let Some(reason) = album_problem(album) {
            return Err(KeyError::InvalidAlbum {
                album: album.chars().take(80).collect(),
                reason,
            });
        }
        Ok(self.dir.join(CONTENT_DIR).join(format!("{album}.json")))
    }

    fn unwrap_entry(
        &self,
        path: &Path,
        slot: KeySlot<'_>,
        entry: &ContentEntry,
    ) -> Result<ContentKey, KeyError> {
        let what = "content key file";
        let mut nonce = [0u8; 12];
        hex::decode_to_slice(&entry.nonce, &mut nonce).map_err(|e| {
            KeyError::corrupt(path, what, format!("bad nonce for {}: {e}", entry.id))
        })?;
        let mut sealed = [0u8; WRAPPED_LEN];
        hex::decode_to_slice(&entry.wrapped, &mut sealed).map_err(|e| {
            KeyError::corrupt(path, what, format!("bad wrapped key for {}: {e}", entry.id))
        })?;
        let wrapped = Wrapped {
            key_id: entry.id,
            kek_id: entry.kek,
            nonce,
            sealed,
        };
        self.with_kek(path, slot, entry.kek, |kek| {
            wrap::unwrap(kek, slot, &wrapped).map_err(|e| unwrap_error(path, slot, e))
        })
    }
}

fn unwrap_error(path: &Path, slot: KeySlot<'_>, err: WrapError) -> KeyError {
    KeyError::Unwrap {
        path: path.to_path_buf(),
        album: slot.album.to_owned(),
        track: slot.track,
        rendition: slot.rendition.to_owned(),
        reason: err.to_string(),
    }
}

/// The newest key of a slot (keys are kept oldest first within a slot).
fn find_entry<'f>(file: &'f ContentFile, track: u32, rendition: &str) -> Option<&'f ContentEntry> {
    file.keys
        .iter()
        .rev()
        .find(|e| e.track == track && e.rendition == rendition)
}

// ----- init helpers --------------------------------------------------------------------------

/// The state exists: make sure what it lists is there, re-deriving a lost public key file.
fn complete_existing(
    dir: &Path,
    state_path: &Path,
    state: &StateFile,
    created: &mut Vec<PathBuf>,
) -> Result<(), KeyError> {
    let kek_path = dir.join(kek_file_name(state.active_kek));
    if load_kek(&kek_path)?.is_none() {
        return Err(KeyError::Missing {
            path: kek_path,
            listed_in: state_path.to_path_buf(),
        });
    }
    let kid = state.active_signing;
    let private = dir.join(signing_private_name(kid));
    let Some(pair) = load_signing_pair(&private)? else {
        return Err(KeyError::Missing {
            path: private,
            listed_in: state_path.to_path_buf(),
        });
    };
    if pair.kid() != kid {
        return Err(KeyError::corrupt(
            &private,
            "PKCS#8 PEM private key",
            format!("its kid is {}, not {kid}", pair.kid()),
        ));
    }
    ensure_public(dir, &pair, created)
}

/// Reuses the single KEK file a crashed `init` left, or makes one.
fn adopt_or_create_kek(
    dir: &Path,
    now: u64,
    created: &mut Vec<PathBuf>,
) -> Result<(KeyId, u64), KeyError> {
    let found = orphans(dir, "kek-", ".json")?;
    match found.as_slice() {
        [] => {
            let kek = Kek::generate()?;
            let path = dir.join(kek_file_name(kek.id()));
            write_kek(&path, &kek, now)?;
            created.push(path);
            Ok((kek.id(), now))
        }
        [path] => match load_kek(path)? {
            Some((kek, created_unix)) => {
                tracing::info!(kek = %kek.id(), "adopting KEK left by an interrupted init");
                Ok((kek.id(), created_unix))
            }
            None => Err(KeyError::Missing {
                path: path.clone(),
                listed_in: dir.to_path_buf(),
            }),
        },
        _ => Err(ambiguous(dir, "KEK files", &found)),
    }
}

/// Reuses the single private signing key a crashed `init` left, or makes one; then makes sure
/// its public key file exists.
fn adopt_or_create_signing(
    dir: &Path,
    now: u64,
    created: &mut Vec<PathBuf>,
) -> Result<(SigningKid, u64), KeyError> {
    let found = orphans(dir, "signing-", ".key.pem")?;
    let pair = match found.as_slice() {
        [] => {
            let pair = SigningKeyPair::generate().map_err(|e| match e {
                SigningError::Rng(e) => KeyError::Rng(e),
                other => KeyError::corrupt(dir, "signing key", other),
            })?;
            let path = dir.join(signing_private_name(pair.kid()));
            let pem = pair
                .to_pkcs8_pem()
                .map_err(|e| KeyError::corrupt(&path, "PKCS#8 PEM private key", e))?;
            durable::write_atomic(&path, pem.as_bytes(), SECRET_MODE)
                .map_err(KeyError::io("write", &path))?;
            created.push(path);
            pair
        }
        [path] => {
            let pair = load_signing_pair(path)?.ok_or_else(|| KeyError::Missing {
                path: path.clone(),
                listed_in: dir.to_path_buf(),
            })?;
            tracing::info!(signing_kid = %pair.kid(), "adopting signing key left by an interrupted init");
            pair
        }
        _ => return Err(ambiguous(dir, "private signing keys", &found)),
    };
    ensure_public(dir, &pair, created)?;
    Ok((pair.kid(), now))
}

fn ambiguous(dir: &Path, what: &str, found: &[PathBuf]) -> KeyError {
    let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    KeyError::corrupt(
        &dir.join(STATE_FILE),
        "keyring state",
        format!(
            "it is missing and there are several {what} ({}); restore {STATE_FILE} from a \
             backup instead of guessing which is active",
            names.join(", ")
        ),
    )
}

/// Writes the public key file for `pair` if it is missing (it can always be re-derived).
fn ensure_public(
    dir: &Path,
    pair: &SigningKeyPair,
    created: &mut Vec<PathBuf>,
) -> Result<(), KeyError> {
    let path = dir.join(signing_public_name(pair.kid()));
    if let Some(existing) = load_public(&path)? {
        if existing.kid() == pair.kid() {
            return Ok(());
        }
        return Err(KeyError::corrupt(
            &path,
            "public signing key",
            format!("its kid is {}, not {}", existing.kid(), pair.kid()),
        ));
    }
    let pem = pair
        .public()
        .and_then(|p| p.to_spki_pem())
        .map_err(|e| KeyError::corrupt(&path, "public signing key", e))?;
    durable::write_atomic(&path, pem.as_bytes(), PUBLIC_MODE)
        .map_err(KeyError::io("write", &path))?;
    created.push(path);
    Ok(())
}

/// Files in `dir` named `<prefix><id><suffix>` (temp files start with '.', so never match).
fn orphans(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>, KeyError> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(KeyError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(KeyError::io("list", dir))?;
        let name = entry.file_name();
        if let Some(name) = name.to_str()
            && name.starts_with(prefix)
            && name.ends_with(suffix)
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::aead::{SealContext, SegmentSlot, open, seal};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn keys_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        (tmp, dir)
    }

    /// Every file under `dir` with its bytes and mode, for "nothing changed" checks.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    out.push((p.clone(), Vec::new(), mode_of(&p)));
                    stack.push(p);
                } else {
                    out.push((p.clone(), fs::read(&p).unwrap(), mode_of(&p)));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn init_creates_layout_with_modes() {
        let (_tmp, dir) = keys_dir();
        let report = Keyring::init(&dir).unwrap();
        assert!(report.changed());
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&dir.join(CONTENT_DIR)), 0o700);
        let kek = dir.join(kek_file_name(report.kek));
        assert_eq!(mode_of(&kek), 0o600);
        let private = dir.join(signing_private_name(report.signing_kid));
        let public = dir.join(signing_public_name(report.signing_kid));
        assert_eq!(mode_of(&private), 0o600);
        assert_eq!(mode_of(&public), 0o644);
        assert_eq!(mode_of(&dir.join(STATE_FILE)), 0o644);
        let pem = fs::read_to_string(&private).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let pub_pem = fs::read_to_string(&public).unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let kek_json: serde_json::Value = serde_json::from_slice(&fs::read(&kek).unwrap()).unwrap();
        assert_eq!(kek_json["id"], report.kek.to_string());
        assert_eq!(kek_json["key"].as_str().unwrap().len(), 64);
        assert!(report.to_string().contains("initialized"));
    }

    #[test]
    fn init_is_idempotent() {
        let (_tmp, dir) = keys_dir();
        let first = Keyring::init(&dir).unwrap();
        let before = snapshot(&dir);
        let second = Keyring::init(&dir).unwrap();
        assert!(!second.changed(), "{second}");
        assert_eq!(second.kek, first.kek);
        assert_eq!(second.signing_kid, first.signing_kid);
        assert_eq!(snapshot(&dir), before);
        assert!(second.to_string().contains("nothing changed"));
    }

    #[test]
    fn init_completes_a_crashed_init() {
        let (_tmp, dir) = keys_dir();
        let first = Keyring::init(&dir).unwrap();
        // Crash before the state and the public key were written.
        fs::remove_file(dir.join(STATE_FILE)).unwrap();
        fs::remove_file(dir.join(signing_public_name(first.signing_kid))).unwrap();
        let second = Keyring::init(&dir).unwrap();
        assert_eq!(second.kek, first.kek, "the existing KEK is adopted");
        assert_eq!(second.signing_kid, first.signing_kid);
        assert_eq!(second.created.len(), 2, "{second}");
        Keyring::open(&dir).unwrap();
        // Public key lost after a complete init: re-derived.
        fs::remove_file(dir.join(signing_public_name(first.signing_kid))).unwrap();
        assert_eq!(Keyring::init(&dir).unwrap().created.len(), 1);
    }

    #[test]
    fn init_refuses_to_replace_a_listed_kek() {
        let (_tmp, dir) = keys_dir();
        let first = Keyring::init(&dir).unwrap();
        fs::remove_file(dir.join(kek_file_name(first.kek))).unwrap();
        let err = Keyring::init(&dir).unwrap_err();
        assert!(matches!(err, KeyError::Missing { .. }), "{err}");
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
    fn content_key_survives_reopen_and_unwraps() {
        let (_tmp, dir) = keys_dir();
        Keyring::init(&dir).unwrap();
        let ctx = SealContext {
            album: "demo-album",
            track: 1,
            rendition: "lossless",
            slot: SegmentSlot::Media(1),
        };
        let sealed;
        let id;
        {
            let ring = Keyring::open(&dir).unwrap();
            assert!(
                ring.existing_content_key("demo-album", 1, "lossless")
                    .unwrap()
                    .is_none()
            );
            let key = ring.content_key("demo-album", 1, "lossless").unwrap();
            id = key.id();
            sealed = seal(&key, &ctx, b"fragment".to_vec()).unwrap();
            // Same key on a second call; another rendition gets its own key.
            assert_eq!(
                ring.content_key("demo-album", 1, "lossless").unwrap().id(),
                id
            );
            assert_ne!(
                ring.content_key("demo-album", 1, "preview").unwrap().id(),
                id
            );
        }
        let path = dir.join(CONTENT_DIR).join("demo-album.json");
        assert_eq!(mode_of(&path), 0o600);
        let ring = Keyring::open(&dir).unwrap();
        let key = ring
            .existing_content_key("demo-album", 1, "lossless")
            .unwrap()
            .unwrap();
        assert_eq!(key.id(), id);
        assert_eq!(open(&key, &ctx, &sealed).unwrap(), b"fragment");

        let infos = ring.content_keys_for_album("demo-album").unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].rendition, "lossless");
        assert_eq!(infos[0].id, id);
        assert_eq!(infos[0].kek, ring.active_kek_id());
        assert_eq!(ring.albums().unwrap(), vec!["demo-album".to_owned()]);
        // The file holds no plaintext key.
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode(key.expose_bytes())));
    }

    #[test]
    fn content_key_from_another_keyring_does_not_unwrap() {
        let (_tmp, dir_a) = keys_dir();
        let (_tmp_b, dir_b) = keys_dir();
        Keyring::init(&dir_a).unwrap();
        Keyring::init(&dir_b).unwrap();
        let a = Keyring::open(&dir_a).unwrap();
        a.content_key("demo-album", 1, "lossless").unwrap();
        let file_a = dir_a.join(CONTENT_DIR).join("demo-album.json");
        let file_b = dir_b.join(CONTENT_DIR).join("demo-album.json");
        fs::copy(&file_a, &file_b).unwrap();
        let b = Keyring::open(&dir_b).unwrap();
        let err = b
            .existing_content_key("demo-album", 1, "lossless")
            .unwrap_err();
        assert!(matches!(err, KeyError::UnknownKek { .. }), "{err}");

        // Relabelled as wrapped under B's KEK: the tag check fails.
        let text = fs::read_to_string(&file_b).unwrap().replace(
            &a.active_kek_id().to_string(),
            &b.active_kek_id().to_string(),
        );
        fs::write(&file_b, text).unwrap();
        let err = b
            .existing_content_key("demo-album", 1, "lossless")
            .unwrap_err();
        assert!(matches!(err, KeyError::Unwrap { .. }), "{err}");
        assert!(err.to_string().contains("demo-album.json"), "{err}");
    }

    #[test]
    fn moved_content_entry_does_not_unwrap() {
        let (_tmp, dir) = keys_dir();
        Keyring::init(&dir).unwrap();
        let ring = Keyring::open(&dir).unwrap();
        ring.content_key("demo-album", 1, "preview").unwrap();
        let path = dir.join(CONTENT_DIR).join("demo-album.json");
        // Relabel the preview key as the lossless one: a non-buyer's key must not open it.
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("\"preview\"", "\"lossless\"");
        fs::write(&path, text).unwrap();
        let err = ring
            .existing_content_key("demo-album", 1, "lossless")
            .unwrap_err();
        assert!(matches!(err, KeyError::Unwrap { .. }), "{err}");
    }

    #[test]
    fn content_key_creation_is_race_free() {
        let (_tmp, dir) = keys_dir();
        Keyring::init(&dir).unwrap();
        // Two keyrings stand in for two processes; several threads each.
        let rings = [Keyring::open(&dir).unwrap(), Keyring::open(&dir).unwrap()];
        let ids = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let ring = &rings[t as usize % 2];
                let ids = &ids;
                s.spawn(move || {
                    for track in 1..=5 {
                        let key = ring.content_key("race", track, "lossless").unwrap();
                        ids.lock().unwrap().push((track, key.id()));
                    }
                });
            }
        });
        let ids = ids.into_inner().unwrap();
        for track in 1..=5 {
            let mut distinct: Vec<KeyId> = ids
                .iter()
                .filter(|(t, _)| *t == track)
                .map(|(_, id)| *id)
                .collect();
            distinct.dedup();
            assert_eq!(distinct.len(), 1, "track {track} got several keys");
        }
        assert_eq!(rings[0].content_keys_for_album("race").unwrap().len(), 5);
    }

    #[test]
    fn content_key_refuses_unsafe_album_ids() {
        let (_tmp, dir) = keys_dir();
        Keyring::init(&dir).unwrap();
        let ring = Keyring::open(&dir).unwrap();
        for bad in [
            "",
            "../etc",
            "Demo",
            "a/b",
            "-x",
            ".hidden",
            &"a".repeat(65),
        ] {
            let err = ring.content_key(bad, 1, "lossless").unwrap_err();
            assert!(matches!(err, KeyError::InvalidAlbum { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn content_file_mode_is_checked() {
        let (_tmp, dir) = keys_dir();
        Keyring::init(&dir).unwrap();
        let ring = Keyring::open(&dir).unwrap();
        ring.content_key("demo-album", 1, "lossless").unwrap();
        let path = dir.join(CONTENT_DIR).join("demo-album.json");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = ring.content_key("demo-album", 1, "lossless").unwrap_err();
        assert!(
            matches!(err, KeyError::TooOpen { mode: 0o640, .. }),
            "{err}"
        );
    }

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
    fn keyring_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Keyring>();
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

    /// The PEM files are what OpenSSL expects (skipped where `openssl` is not installed).
    #[test]
    fn openssl_reads_the_pem_files() {
        let (_tmp, dir) = keys_dir();
        let report = Keyring::init(&dir).unwrap();
        let private = dir.join(signing_private_name(report.signing_kid));
        let public = dir.join(signing_public_name(report.signing_kid));
        let run = |args: &[&str]| std::process::Command::new("openssl").args(args).output();
        let Ok(out) = run(&["pkey", "-in", private.to_str().unwrap(), "-noout", "-text"]) else {
            eprintln!("openssl not found; skipping");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("ED25519"));
        let out = run(&[
            "pkey",
            "-pubin",
            "-in",
            public.to_str().unwrap(),
            "-noout",
            "-text",
        ])
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
