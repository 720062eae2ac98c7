//! Rotating the KEK: a new KEK, every content key re-wrapped under it album by album, the old
//! KEKs dropped and deleted. Every step is one durable write under the keys lock; a run after
//! a crash finishes the interrupted rotation instead of starting another.

use super::keydir::{remove_durably, remove_unlisted, save_state, state};
use crate::crashpoint;
use crate::keys::Keyring;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::{KekEntry, load_kek, write_kek};
use crate::keys::layout::kek_file_name;
use crate::keys::vault::KeyDir;
use crate::seal::{Kek, KeyId};

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

/// Replaces the KEK: a new KEK becomes active, every content key is re-wrapped under it
/// (album by album, each file in one atomic write), then the old KEKs are dropped from the
/// state and deleted. If a previous run crashed midway (the state still lists old KEKs), this
/// run finishes that rotation instead of starting another.
pub fn rotate_kek(dir: &KeyDir, now: u64) -> Result<KekRotation, KeyError> {
    let _lock = dir.lock()?;
    let mut state = state(dir)?;
    // A KEK file of a KEK the state records as retired is the debris of a rotation that
    // crashed just before deleting it: that rotation is finished by deleting it, not by
    // starting another one. (Any other unlisted KEK file was never committed.)
    let leftover: Vec<KeyId> = state
        .retired_keks
        .iter()
        .copied()
        .filter(|id| dir.path().join(kek_file_name(*id)).exists())
        .collect();
    remove_unlisted(dir, &state)?;
    // With the database, a change commits whole: a retired KEK's file is one this node has
    // not deleted yet (not a crash's debris), and the rotation goes ahead.
    let shared = !dir.is_folder();
    if shared {
        for id in &leftover {
            remove_durably(dir, &dir.path().join(kek_file_name(*id)))?;
        }
    }
    if !leftover.is_empty() && state.keks.len() == 1 && !shared {
        tracing::info!(kek = %state.active_kek, "finished an interrupted KEK rotation (deleted the old KEK)");
        return Ok(KekRotation {
            kek: state.active_kek,
            retired: leftover,
            albums: Keyring::open_in(dir)?.albums()?.len(),
            rewrapped: 0,
            resumed: true,
        });
    }
    let resumed = state.keks.len() > 1;
    if !resumed {
        let kek = match distributed_kek(dir, &state)? {
            Some(kek) => kek,
            None => {
                let kek = Kek::generate()?;
                write_kek(&dir.path().join(kek_file_name(kek.id())), &kek, now)?;
                kek
            }
        };
        crashpoint::reached("rotate-kek:kek-written");
        state.keks.push(KekEntry {
            id: kek.id(),
            created_unix: now,
        });
        state.active_kek = kek.id();
        save_state(dir, &state)?;
        crashpoint::reached("rotate-kek:state-written");
    }
    let target = state.active_kek;

    // Opened after the state write, so it holds the old KEKs and the new one.
    let keyring = Keyring::open_in(dir)?;
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
        remove_durably(dir, &dir.path().join(kek_file_name(*id)))?;
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

/// With the database: the KEK file staff made with `encore keys new-kek` and copied to every
/// node before rotating (the one KEK file here that the state neither lists nor retired), so
/// no node is ever without the KEK the database is wrapped under. `None` in a keys folder.
fn distributed_kek(
    dir: &KeyDir,
    state: &crate::keys::keyfiles::StateFile,
) -> Result<Option<Kek>, KeyError> {
    if dir.is_folder() {
        return Ok(None);
    }
    let known = |id: &str| {
        state.keks.iter().any(|e| e.id.to_string() == id)
            || state.retired_keks.iter().any(|k| k.to_string() == id)
    };
    let mut found = Vec::new();
    for name in dir.list(dir.path())? {
        if let Some(id) = name
            .strip_prefix("kek-")
            .and_then(|n| n.strip_suffix(".json"))
            && !known(id)
        {
            found.push(dir.path().join(&name));
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [path] => match load_kek(path)? {
            Some((kek, _)) => {
                tracing::info!(kek = %kek.id(), "rotating to the KEK distributed beforehand");
                Ok(Some(kek))
            }
            None => Ok(None),
        },
        _ => Err(KeyError::corrupt(
            dir.path(),
            "keys folder",
            format!(
                "it holds {} new KEK files ({}); keep the one to rotate to",
                found.len(),
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Makes a new KEK file in the keys folder `dir` without using it: with the database, staff
/// copy it to every node, then `rotate kek` on any node rotates to it.
pub fn new_kek_file(
    dir: &std::path::Path,
    now: u64,
) -> Result<(KeyId, std::path::PathBuf), KeyError> {
    let kek = Kek::generate()?;
    let path = dir.join(kek_file_name(kek.id()));
    write_kek(&path, &kek, now)?;
    Ok((kek.id(), path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    use super::super::test_keys_dir as keys;

    #[test]
    fn kek_rotation_rewraps_every_content_key() {
        let (_tmp, dir) = keys();
        let k = Keyring::open(&dir).unwrap();
        let old_kek = k.active_kek_id();
        let a = k.content_key("first-light", 1, "lossless").unwrap();
        let b = k.content_key("second-wind", 2, "preview").unwrap();

        let rot = rotate_kek(&KeyDir::folder(&dir), 1000).unwrap();
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
        let mut state = state(&KeyDir::folder(&dir)).unwrap();
        let kek = Kek::generate().unwrap();
        write_kek(&dir.join(kek_file_name(kek.id())), &kek, 5).unwrap();
        state.keks.push(KekEntry {
            id: kek.id(),
            created_unix: 5,
        });
        state.active_kek = kek.id();
        save_state(&KeyDir::folder(&dir), &state).unwrap();
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

        let rot = rotate_kek(&KeyDir::folder(&dir), 10).unwrap();
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
                .filter(|e| e.kind == KeyKind::Kek)
                .count(),
            1
        );
    }
}
