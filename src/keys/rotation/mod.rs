//! Key rotation as licensing staff run it, from `encore keys` or the admin API: rotate the
//! signing key, the KEK or an album's content keys, revoke a signing key, and the maintenance
//! that retires what has run its time. Every operation is audited ([`audit`]) and crash-safe;
//! a running server picks the result up without a restart.
//!
//! - [`signing`]: rotating, revoking and pruning token-signing keys in the keys directory.
//! - [`kek`]: rotating the KEK, re-wrapping every content key.
//! - [`content`]: new content keys and the re-seal of the store under new segment URLs.
//! - [`maintain`]: deleting superseded private keys, expired generations and content keys.
//! - [`audit`]: the append-only audit log.
//! - `keydir`: the keys-directory steps the signing and KEK rotations share.

pub mod audit;
pub mod content;
pub mod kek;
mod keydir;
pub mod maintain;
pub mod signing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use audit::{Actor, AuditLog};
pub use content::{ContentRotation, SlotRotation};
pub use kek::KekRotation;
pub use maintain::MaintenanceReport;
pub use signing::{SigningRevocation, SigningRotation, Superseded};

use crate::clock::{Clock, SystemClock};
use crate::config::KeySettings;
use crate::keys::{KeyDir, KeyEntry, KeyError, Keyring};
use crate::seal::SigningKid;
use crate::store::{Store, StoreError};

/// Why a rotation failed. Messages name the album, track or key and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The keys directory refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The packaged store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such album or track in the packaged store.
    #[error("{0}")]
    NotFound(String),
    /// A stored segment did not open with its key or failed its hash: the store is damaged,
    /// and re-sealing it would launder the damage.
    #[error("cannot re-seal {what}: {reason}; re-package the album (`encore ingest --force`)")]
    Damaged {
        /// Which segment.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The operation was carried out but its audit line could not be written.
    #[error("the operation completed, but its audit line could not be written to {path}: {source}")]
    Audit {
        /// The audit log.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Timing of rotations, built from the `[keys]` settings (`From<&KeySettings>`), the one place
/// that knows how config values become rotation timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSettings {
    /// Time between publishing a new signing key in the JWKS and signing with it, seconds.
    pub propagation_seconds: u64,
    /// Longest token lifetime plus clock leeway, seconds: how long a superseded signing key
    /// keeps verifying after its successor starts signing.
    pub token_horizon_seconds: u64,
}

impl From<&KeySettings> for RotationSettings {
    fn from(keys: &KeySettings) -> Self {
        RotationSettings {
            propagation_seconds: keys.signing_propagation_seconds,
            token_horizon_seconds: keys.token_horizon_seconds(),
        }
    }
}

impl Default for RotationSettings {
    /// The timing of the default `[keys]` settings.
    fn default() -> Self {
        RotationSettings::from(&KeySettings::default())
    }
}

/// Runs key operations on one keys directory (or the database's key state) and packaged
/// store.
#[derive(Clone)]
pub struct Rotator {
    keys: KeyDir,
    store: Store,
    settings: RotationSettings,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotator")
            .field("keys", &self.keys)
            .field("store", &self.store.root())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The keys as listed for staff: no material.
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    /// KEKs and signing keys.
    pub keys: Vec<KeyRow>,
    /// Content keys per album.
    pub content: Vec<ContentKeyRow>,
}

/// One KEK or signing key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    /// `kek` or `signing`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// `pending`, `active`, `verifying`, `retired` or `revoked`.
    pub state: String,
    /// Created, Unix seconds.
    pub created: u64,
    /// Signs from (signing keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activates: Option<u64>,
    /// Retired from (signing keys with a successor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<u64>,
    /// Revoked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
}

impl From<KeyEntry> for KeyRow {
    fn from(e: KeyEntry) -> Self {
        KeyRow {
            kind: e.kind.to_string(),
            id: e.id,
            state: e.state.to_string(),
            created: e.created_unix,
            activates: e.activates_unix,
            retires_at: e.retires_unix,
            revoked: e.revoked_unix,
        }
    }
}

/// One content key.
#[derive(Debug, Clone, Serialize)]
pub struct ContentKeyRow {
    /// Album id.
    pub album: String,
    /// Track number.
    pub track: u32,
    /// Rendition.
    pub rendition: String,
    /// Key id.
    pub id: String,
    /// KEK it is wrapped under.
    pub kek: String,
    /// Created, Unix seconds.
    pub created: u64,
    /// Deleted at (set once a newer key replaced it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<u64>,
}

impl Rotator {
    /// Operations on `keys_dir` and `store`, audited in `keys_dir/audit.jsonl`.
    pub fn new(keys_dir: &Path, store: Store, settings: RotationSettings) -> Self {
        Rotator::new_in(KeyDir::folder(keys_dir), store, settings)
    }

    /// Operations on the keys where `keys` says they live (with the database, each change is
    /// one transaction there), audited in the node's `audit.jsonl`.
    pub fn new_in(keys: KeyDir, store: Store, settings: RotationSettings) -> Self {
        let audit = AuditLog::in_keys_dir(keys.path());
        Rotator {
            keys: keys.source(),
            store,
            settings,
            audit,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same, reading `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The keys directory.
    pub fn keys_dir(&self) -> &Path {
        self.keys.path()
    }

    /// Where the keys live.
    pub fn keys(&self) -> &KeyDir {
        &self.keys
    }

    /// The packaged store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The timing settings.
    pub fn settings(&self) -> RotationSettings {
        self.settings
    }

    fn now(&self) -> u64 {
        self.clock.now_unix()
    }

    /// Every key with its state now, and every album's content keys. No material.
    pub fn list(&self) -> Result<KeyListing, RotationError> {
        let keyring = Keyring::open_in(&self.keys)?;
        let keys = keyring
            .list_at(self.now())
            .into_iter()
            .map(KeyRow::from)
            .collect();
        let mut content = Vec::new();
        for album in keyring.albums()? {
            for k in keyring.content_keys_for_album(&album)? {
                content.push(ContentKeyRow {
                    album: album.clone(),
                    track: k.track,
                    rendition: k.rendition,
                    id: k.id.to_string(),
                    kek: k.kek.to_string(),
                    created: k.created_unix,
                    retires_at: k.retires_unix,
                });
            }
        }
        Ok(KeyListing { keys, content })
    }

    /// `rotate signing`: a new key in the JWKS now, signing after the propagation delay.
    pub fn rotate_signing(&self, actor: &Actor) -> Result<SigningRotation, RotationError> {
        let now = self.now();
        let result = self
            .keys
            .transact(|kd| {
                signing::rotate_signing(
                    kd,
                    now,
                    self.settings.propagation_seconds,
                    self.settings.token_horizon_seconds,
                )
            })
            .map_err(RotationError::from);
        self.audited(actor, "rotate-signing", now, result, |r| {
            serde_json::json!({
                "kid": r.kid.to_string(),
                "activates": r.activates_unix,
                "superseded": r.superseded,
            })
        })
    }

    /// `revoke signing KID`: distrusted at once.
    pub fn revoke_signing(
        &self,
        actor: &Actor,
        kid: SigningKid,
    ) -> Result<SigningRevocation, RotationError> {
        let now = self.now();
        let result = self
            .keys
            .transact(|kd| signing::revoke_signing(kd, kid, now))
            .map_err(RotationError::from);
        self.audited(actor, "revoke-signing", now, result, |r| {
            serde_json::json!({
                "kid": r.kid.to_string(),
                "signer": r.signer.to_string(),
                "created_signer": r.created_signer,
            })
        })
    }

    /// `rotate kek`: a new KEK, every content key re-wrapped, the old KEK deleted.
    pub fn rotate_kek(&self, actor: &Actor) -> Result<KekRotation, RotationError> {
        let now = self.now();
        let result = self
            .keys
            .transact(|kd| kek::rotate_kek(kd, now))
            .map_err(RotationError::from);
        self.audited(actor, "rotate-kek", now, result, |r| {
            serde_json::json!({
                "kek": r.kek.to_string(),
                "retired": r.retired.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "albums": r.albums,
                "rewrapped": r.rewrapped,
                "resumed": r.resumed,
            })
        })
    }

    /// `rotate content --album ID [--track N]`: new content keys, the tracks re-sealed under
    /// new segment URLs, manifests switched once each rendition's new segments are in place.
    pub fn rotate_content(
        &self,
        actor: &Actor,
        album: &str,
        track: Option<u32>,
    ) -> Result<ContentRotation, RotationError> {
        let now = self.now();
        let result = content::rotate(self, album, track, now);
        self.audited(actor, "rotate-content", now, result, |r| {
            serde_json::json!({
                "album": r.album,
                "track": track,
                "resumed": r.resumed,
                "slots": r.slots.iter().map(|s| serde_json::json!({
                    "track": s.track,
                    "rendition": s.rendition,
                    "old_key": s.old_key,
                    "new_key": s.new_key,
                    "generation": s.generation,
                })).collect::<Vec<_>>(),
            })
        })
    }

    /// Retires and deletes what has run its time. Audited only when it did something.
    pub fn maintain(&self) -> Result<MaintenanceReport, RotationError> {
        let now = self.now();
        let report = maintain::run(self, now)?;
        if !report.is_empty() {
            self.audited(&Actor::Maintenance, "maintenance", now, Ok(&report), |r| {
                serde_json::to_value(r).unwrap_or_default()
            })?;
        }
        Ok(report)
    }

    /// Writes the audit line for an operation's outcome and hands the outcome back.
    fn audited<T>(
        &self,
        actor: &Actor,
        operation: &str,
        now: u64,
        result: Result<T, RotationError>,
        details: impl FnOnce(&T) -> serde_json::Value,
    ) -> Result<T, RotationError> {
        let (details, error) = match &result {
            Ok(value) => (details(value), None),
            Err(e) => (serde_json::Value::Null, Some(e.to_string())),
        };
        let record = audit::AuditRecord {
            time: rfc3339(now),
            unix: now,
            actor,
            operation,
            details,
            result: if error.is_some() { "error" } else { "ok" },
            error,
        };
        self.audit
            .append(&record)
            .map_err(|source| RotationError::Audit {
                path: self.audit.path().to_path_buf(),
                source,
            })?;
        result
    }
}

fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A fresh keys folder made by `Keyring::init`, for the rotations' tests.
#[cfg(test)]
fn test_keys_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("keys");
    crate::keys::Keyring::init(&dir).expect("keys init");
    (tmp, dir)
}
