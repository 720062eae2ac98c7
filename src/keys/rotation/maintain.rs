//! Maintenance: what rotations scheduled and is now due. Deletes the private halves of
//! signing keys that no longer sign, retiring generations whose serving time is up, and
//! content keys retired by then that no manifest uses. Run by `encore serve` on a timer and
//! by every `encore keys` command; idempotent, so overlapping runs are harmless.

use std::collections::HashSet;

use serde::Serialize;

use super::{RotationError, Rotator, signing};
use crate::keys::Keyring;
use crate::store::library::LibraryIndex;

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
    let index = LibraryIndex::load(store)?;
    for (album, entry) in &index.albums {
        for (n, track) in &entry.tracks {
            for (rendition, m) in &track.renditions {
                if m.retiring.iter().any(|r| r.serve_until_unix <= now) {
                    for generation in store.expire_retiring(album, *n, rendition, now)? {
                        report
                            .generations_deleted
                            .push(format!("{album}/{n}/{rendition}/{generation}"));
                    }
                }
            }
        }
    }

    // Keys still sealing something the store serves, read after the expiries above.
    let index = LibraryIndex::load(store)?;
    let mut in_use: HashSet<(String, u32, String, String)> = HashSet::new();
    for (album, entry) in &index.albums {
        for (n, track) in &entry.tracks {
            for (rendition, m) in &track.renditions {
                in_use.insert((album.clone(), *n, rendition.clone(), m.key_id.clone()));
                for r in &m.retiring {
                    in_use.insert((album.clone(), *n, rendition.clone(), r.key_id.clone()));
                }
            }
        }
    }
    let keyring = Keyring::open_in(rotator.keys())?;
    for album in keyring.albums()? {
        let used = |track: u32, rendition: &str, id: crate::seal::KeyId| {
            in_use.contains(&(album.clone(), track, rendition.to_owned(), id.to_string()))
        };
        for id in keyring.prune_content_keys(&album, now, &used)? {
            report.content_keys_deleted.push(format!("{album}/{id}"));
        }
    }
    Ok(report)
}
