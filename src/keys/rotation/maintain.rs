//! Maintenance: what rotations scheduled and is now due. Deletes the private halves of
//! signing keys that no longer sign, retiring generations whose serving time is up, and
//! content keys retired by then that no manifest uses. Run by `encore serve` on a timer and
//! by every `encore keys` command; idempotent, so overlapping runs are harmless.

use std::collections::HashSet;

use serde::Serialize;

use super::{RotationError, Rotator, signing};
use crate::keys::Keyring;
use crate::store::library;

/// What one maintenance run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceReport {
    /// Signing keys whose private half was deleted.
    pub signing_private_deleted: Vec<String>,
    /// Generations deleted, as `album/track/rendition/generation`.
    pub generations_deleted: Vec<String>,
    /// Content keys deleted, as `album/key id`.
    pub content_keys_deleted: Vec<String>,
}

impl MaintenanceReport {
    /// True when the run changed nothing.
    pub fn is_empty(&self) -> bool {
        self.signing_private_deleted.is_empty()
            && self.generations_deleted.is_empty()
            && self.content_keys_deleted.is_empty()
    }
}

pub(super) fn run(rotator: &Rotator, now: u64) -> Result<MaintenanceReport, RotationError> {
    let mut report = MaintenanceReport {
        signing_private_deleted: rotator
            .keys()
            .transact(|kd| signing::prune_signing(kd, now))?
            .into_iter()
            .map(|k| k.to_string())
            .collect(),
        ..MaintenanceReport::default()
    };

    let store = rotator.store();
    // One album at a time: its retiring generations whose time is up are deleted, then the
    // keys still sealing something it serves are noted (read after those expiries). An album
    // whose records do not read keeps every key: what it seals is unknown.
    let mut in_use: HashSet<(String, u32, String, String)> = HashSet::new();
    let mut unreadable: HashSet<String> = HashSet::new();
    for album in library::album_ids(store)? {
        match expire_then_note_keys(store, &album, now, &mut report, &mut in_use) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(album = %album, "maintenance skips an album it cannot read: {e}");
                unreadable.insert(album);
            }
        }
    }
    let keyring = Keyring::open_in(rotator.keys())?;
    for album in keyring.albums()? {
        if unreadable.contains(&album) {
            continue;
        }
        let used = |track: u32, rendition: &str, id: crate::seal::KeyId| {
            in_use.contains(&(album.clone(), track, rendition.to_owned(), id.to_string()))
        };
        for id in keyring.prune_content_keys(&album, now, &used)? {
            report.content_keys_deleted.push(format!("{album}/{id}"));
        }
    }
    Ok(report)
}

/// Deletes `album`'s retiring generations whose time is up, then adds the content keys its
/// manifests still name to `in_use`.
fn expire_then_note_keys(
    store: &crate::store::Store,
    album: &str,
    now: u64,
    report: &mut MaintenanceReport,
    in_use: &mut HashSet<(String, u32, String, String)>,
) -> Result<(), RotationError> {
    let Some(mut entry) = library::load_album(store, album)? else {
        return Ok(());
    };
    let mut expired = false;
    for (n, track) in &entry.tracks {
        for (rendition, m) in &track.renditions {
            if m.retiring.iter().any(|r| r.serve_until_unix <= now) {
                for generation in store.expire_retiring(album, *n, rendition, now)? {
                    expired = true;
                    report
                        .generations_deleted
                        .push(format!("{album}/{n}/{rendition}/{generation}"));
                }
            }
        }
    }
    if expired {
        let Some(reread) = library::load_album(store, album)? else {
            return Ok(());
        };
        entry = reread;
    }
    for (n, track) in &entry.tracks {
        for (rendition, m) in &track.renditions {
            in_use.insert((album.to_owned(), *n, rendition.clone(), m.key_id.clone()));
            for r in &m.retiring {
                in_use.insert((album.to_owned(), *n, rendition.clone(), r.key_id.clone()));
            }
        }
    }
    Ok(())
}
