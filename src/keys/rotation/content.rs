//! Content-key rotation: every (track, rendition) of an album (or of one track) gets a new
//! content key, its segments are re-sealed under it into a new generation folder (new segment
//! URLs, so no edge ever serves the old bytes under a new name), and its manifest switches to
//! the new generation only once every new segment is durable. The old generation keeps serving
//! until the longest license issued before the switch has expired; then maintenance deletes it
//! and the old key.
//!
//! Re-sealing needs no transcoding: each segment is opened with the old key (which checks it
//! is intact) and sealed with the new one under a fresh nonce, so the audio is bit-identical.
//!
//! Crash safety, step by step (each a durable write):
//! 1. the new keys of every slot, in one write of the album's key file;
//! 2. per slot: the new generation's segments; the manifest switch (under the store lock);
//!    the old key marked retiring.
//!
//! A re-run finds slots whose newest key no manifest uses yet and finishes only those; a slot
//! whose switch happened but whose old key was not yet marked gets marked. Only when nothing
//! is pending does a run start a new rotation.

use serde::Serialize;

use super::{RotationError, Rotator};
use crate::crashpoint;
use crate::keys::Keyring;
use crate::seal::{self, KeyId, SealContext, SegmentSlot};
use crate::store::library;
use crate::store::{RenditionManifest, SealedSegment, new_generation, sha256_hex};

/// What a content rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct ContentRotation {
    /// The album.
    pub album: String,
    /// True when it finished an interrupted rotation instead of starting one.
    pub resumed: bool,
    /// One entry per (track, rendition).
    pub slots: Vec<SlotRotation>,
}

/// One re-sealed rendition.
#[derive(Debug, Clone, Serialize)]
pub struct SlotRotation {
    /// Track number.
    pub track: u32,
    /// Rendition name.
    pub rendition: String,
    /// The key the old generation is sealed under.
    pub old_key: String,
    /// The key the new generation is sealed under.
    pub new_key: String,
    /// The new generation (segment URLs).
    pub generation: String,
    /// Segments re-sealed (init included); 0 when it was already done.
    pub segments: usize,
    /// Until when the old generation and key are kept, Unix seconds.
    pub old_served_until: u64,
}

struct Slot {
    track: u32,
    rendition: String,
    manifest: RenditionManifest,
    current: KeyId,
}

/// Runs (or resumes) the rotation of `album`'s content keys, or of one track's.
pub(super) fn rotate(
    rotator: &Rotator,
    album: &str,
    track: Option<u32>,
    now: u64,
) -> Result<ContentRotation, RotationError> {
    let store = rotator.store();
    let entry = library::load_album(store, album)?.ok_or_else(|| {
        RotationError::NotFound(format!(
            "no packaged album {album:?}; `encore ingest` packages it"
        ))
    })?;
    let mut slots = Vec::new();
    for (n, t) in &entry.tracks {
        if track.is_some_and(|want| want != *n) {
            continue;
        }
        for (name, m) in &t.renditions {
            let current = m.key_id.parse().map_err(|e| RotationError::Damaged {
                what: format!("the manifest of {album} track {n} ({name})"),
                reason: format!("its key id: {e}"),
            })?;
            slots.push(Slot {
                track: *n,
                rendition: name.clone(),
                manifest: (**m).clone(),
                current,
            });
        }
    }
    if slots.is_empty() {
        return Err(RotationError::NotFound(match track {
            Some(n) => format!("album {album:?} has no packaged track {n}"),
            None => format!("album {album:?} has no packaged tracks"),
        }));
    }

    let keyring = Keyring::open_in(rotator.keys())?;
    let grace = store.retire_grace_seconds();
    let served_until = now.saturating_add(grace);

    // Resume or start: pending slots are those whose newest key no manifest uses yet.
    let newest: Vec<Option<KeyId>> = slots
        .iter()
        .map(|s| {
            keyring.content_keys_for_album(album).map(|keys| {
                keys.iter()
                    .filter(|k| k.track == s.track && k.rendition == s.rendition)
                    .map(|k| k.id)
                    .next_back()
            })
        })
        .collect::<Result<_, _>>()?;
    let resumed = slots
        .iter()
        .zip(&newest)
        .any(|(s, n)| n.is_some_and(|n| n != s.current));
    let targets: Vec<KeyId> = if resumed {
        slots
            .iter()
            .zip(&newest)
            .map(|(s, n)| n.unwrap_or(s.current))
            .collect()
    } else {
        let request: Vec<(u32, String, KeyId)> = slots
            .iter()
            .map(|s| (s.track, s.rendition.clone(), s.current))
            .collect();
        let ids = keyring.add_content_keys(album, &request)?;
        crashpoint::reached("rotate-content:keys-written");
        ids
    };

    let mut done = Vec::with_capacity(slots.len());
    for (slot, target) in slots.iter().zip(targets) {
        let segments = if slot.current == target {
            0
        } else {
            reseal_slot(rotator, &keyring, album, slot, target, now)?
        };
        // Also settles a slot whose switch happened before a crash: its older keys are marked.
        for old in older_unmarked_keys(&keyring, album, slot, target)? {
            keyring.retire_content_key(album, slot.track, &slot.rendition, old, served_until)?;
            crashpoint::reached("rotate-content:old-key-retired");
        }
        let generation = store
            .read_manifest(album, slot.track, &slot.rendition)?
            .map(|m| m.generation)
            .unwrap_or_default();
        done.push(SlotRotation {
            track: slot.track,
            rendition: slot.rendition.clone(),
            old_key: slot.current.to_string(),
            new_key: target.to_string(),
            generation,
            segments,
            old_served_until: served_until,
        });
    }
    tracing::info!(
        album,
        ?track,
        resumed,
        slots = done.len(),
        "content keys rotated"
    );
    Ok(ContentRotation {
        album: album.to_owned(),
        resumed,
        slots: done,
    })
}

/// Keys of the slot older than `target` that are not marked retiring yet.
fn older_unmarked_keys(
    keyring: &Keyring,
    album: &str,
    slot: &Slot,
    target: KeyId,
) -> Result<Vec<KeyId>, RotationError> {
    Ok(keyring
        .content_keys_for_album(album)?
        .into_iter()
        .filter(|k| k.track == slot.track && k.rendition == slot.rendition)
        .filter(|k| k.id != target && k.retires_unix.is_none())
        .map(|k| k.id)
        .collect())
}

/// Re-seals one rendition under `target` into a new generation and switches its manifest.
/// Returns the number of segments re-sealed.
fn reseal_slot(
    rotator: &Rotator,
    keyring: &Keyring,
    album: &str,
    slot: &Slot,
    target: KeyId,
    now: u64,
) -> Result<usize, RotationError> {
    let store = rotator.store();
    let m = &slot.manifest;
    let name = format!("{album} track {} ({})", slot.track, slot.rendition);
    let missing = |id: KeyId| RotationError::Damaged {
        what: name.clone(),
        reason: format!("its content key {id} is not in the keys directory"),
    };
    let old_key = keyring
        .content_key_by_id(album, slot.track, &slot.rendition, slot.current)?
        .ok_or_else(|| missing(slot.current))?;
    let new_key = keyring
        .content_key_by_id(album, slot.track, &slot.rendition, target)?
        .ok_or_else(|| missing(target))?;

    let mut sealed = Vec::with_capacity(m.segments.len() + 1);
    for record in std::iter::once(&m.init).chain(&m.segments) {
        let what = format!("segment {} of {name}", record.file);
        let damaged = |reason: String| RotationError::Damaged {
            what: what.clone(),
            reason,
        };
        let path = store.segment_path(m, record)?;
        let bytes =
            std::fs::read(&path).map_err(|e| damaged(format!("{}: {e}", path.display())))?;
        if sha256_hex(&bytes) != record.sha256 {
            return Err(damaged("its bytes do not match the manifest's hash".into()));
        }
        let ctx = SealContext {
            album,
            track: slot.track,
            rendition: &slot.rendition,
            slot: if record.index == 0 {
                SegmentSlot::Init
            } else {
                SegmentSlot::Media(record.index)
            },
        };
        let plain = seal::open(&old_key, &ctx, &bytes).map_err(|e| damaged(e.to_string()))?;
        let resealed = seal::seal(&new_key, &ctx, plain).map_err(|e| damaged(e.to_string()))?;
        sealed.push(SealedSegment {
            index: record.index,
            start: record.start,
            duration: record.duration,
            bytes: resealed,
        });
    }
    let count = sealed.len();

    let mut next = m.clone();
    next.generation = new_generation().map_err(|e| RotationError::Damaged {
        what: name.clone(),
        reason: e,
    })?;
    next.key_id = target.to_string();
    next.retiring.clear();
    let next = store.write_generation(next, sealed)?;
    crashpoint::reached("rotate-content:generation-written");

    let _lock = store.lock()?;
    let current = store.read_manifest(album, slot.track, &slot.rendition)?;
    match &current {
        Some(c) if c.generation == m.generation => {}
        Some(c) if c.key_id == next.key_id => {
            // Someone (a concurrent re-package) already put this slot under the new key.
            tracing::info!(album, track = slot.track, rendition = %slot.rendition, "already under the new key; keeping that generation");
            return Ok(0);
        }
        _ => {
            return Err(RotationError::Damaged {
                what: name,
                reason: "it was re-packaged while being re-sealed; run the rotation again".into(),
            });
        }
    }
    store.commit_manifest_locked(next, current.as_ref(), now)?;
    crashpoint::reached("rotate-content:manifest-switched");
    Ok(count)
}
