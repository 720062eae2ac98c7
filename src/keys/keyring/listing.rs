//! Listings of the keyring for staff: every KEK and signing key with its state, every
//! album's content keys; ids and times, never key material.

use std::fmt;

use super::Keyring;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::{now_unix, read_content_file};
use crate::keys::layout::{CONTENT_DIR, album_problem};
use crate::keys::lifecycle::{self, KeyState};
use crate::seal::KeyId;

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

impl Keyring {
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

    /// The content keys of `album`, without secrets; empty if it has none.
    pub fn content_keys_for_album(&self, album: &str) -> Result<Vec<ContentKeyInfo>, KeyError> {
        let path = self.content_path(album)?;
        let Some(file) = read_content_file(&self.dir, &path, album)? else {
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
        let dir = self.dir().join(CONTENT_DIR);
        let mut albums = Vec::new();
        for name in self.dir.list(&dir)? {
            let Some(album) = name.strip_suffix(".json") else {
                continue;
            };
            if album_problem(album).is_none() {
                albums.push(album.to_owned());
            }
        }
        albums.sort();
        Ok(albums)
    }
}
