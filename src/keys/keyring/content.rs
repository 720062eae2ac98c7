//! Content keys: created on first use (random, wrapped under the active KEK, one durable write
//! of the album's key file under the keys lock), unwrapped for sealing and licenses, added and
//! retired by content rotations, re-wrapped by KEK rotations.

use std::path::Path;
use std::sync::PoisonError;

use super::Keyring;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::{
    ContentEntry, ContentFile, load_kek, now_unix, read_content_file, read_state, write_json,
};
use crate::keys::layout::{CONTENT_DIR, DIR_MODE, FORMAT, SECRET_MODE, STATE_FILE, kek_file_name};
use crate::seal::wrap::{self, KeySlot, WRAPPED_LEN, WrapError, Wrapped};
use crate::seal::{ContentKey, Kek, KeyId};

impl Keyring {
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
        if self.dir.needs_transaction() {
            return self.change(|ring| ring.content_key(album, track, rendition));
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
        let _lock = self.dir.lock()?;

        // Re-read under the lock: someone may have created it meanwhile.
        let path = self.content_path(album)?;
        let mut file = read_content_file(&self.dir, &path, album)?.unwrap_or_else(|| ContentFile {
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
        if self.dir.needs_transaction() {
            return self.change(|ring| ring.add_content_keys(album, slots));
        }
        let _guard = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        let _lock = self.dir.lock()?;
        let path = self.content_path(album)?;
        let mut file =
            read_content_file(&self.dir, &path, album)?.ok_or_else(|| KeyError::NoContentKeys {
                album: album.to_owned(),
                dir: self.dir().to_path_buf(),
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
        if self.dir.needs_transaction() {
            // Most runs find nothing due: only then is it worth the database's lock.
            let due = self.content_keys_for_album(album)?.iter().any(|k| {
                k.retires_unix.is_some_and(|t| t <= now) && !in_use(k.track, &k.rendition, k.id)
            });
            if !due {
                return Ok(Vec::new());
            }
        }
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
        if self.dir.needs_transaction() {
            return self.change(|ring| ring.edit_content_file(album, change));
        }
        let _guard = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        let _lock = self.dir.lock()?;
        self.edit_content_file_locked(album, change)
    }

    fn edit_content_file_locked(
        &self,
        album: &str,
        change: impl FnOnce(&mut ContentFile) -> bool,
    ) -> Result<(), KeyError> {
        let path = self.content_path(album)?;
        let Some(mut file) = read_content_file(&self.dir, &path, album)? else {
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
        let content_dir = self.dir().join(CONTENT_DIR);
        self.dir.create_dir(&content_dir, DIR_MODE)?;
        write_json(&self.dir, path, file, SECRET_MODE)
    }

    /// Wraps a fresh content key under the KEK that is active on disk now (not the one this
    /// keyring loaded: a KEK rotation may have happened since). Call under the keys lock.
    fn wrap_new_entry(
        &self,
        path: &Path,
        slot: KeySlot<'_>,
        key: &ContentKey,
    ) -> Result<ContentEntry, KeyError> {
        let state_path = self.dir().join(STATE_FILE);
        let active = read_state(&self.dir, &state_path)?
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
        match load_kek(&self.dir().join(kek_file_name(id)))? {
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
        let Some(file) = read_content_file(&self.dir, &path, album)? else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;

    use crate::keys::keyring::tests::{keys_dir, mode_of};
    use crate::seal::{SealContext, SegmentSlot, open, seal};

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
    fn content_keys_rotate_and_retire() {
        let (_tmp, dir) = keys_dir();
        Keyring::init(&dir).unwrap();
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
