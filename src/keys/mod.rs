//! The keys directory: the [`Keyring`] that creates and loads it (KEKs, token-signing keys,
//! content keys wrapped under a KEK), the account service's keys, the life of a signing key,
//! and the [`rotation`]s licensing staff run. The cryptography is [`crate::seal`]'s; the layout
//! is in [`layout`], the formats in `docs/SEALING.md`.
//!
//! Modules import downwards only, in this order: `layout`, `error`, `lock`, `keyfiles`,
//! [`vault`], `lifecycle`, [`keyring`], [`account_keys`], [`rotation`] (`keyfiles` reads and
//! writes through its `KeyFiles` trait, which [`vault`]'s [`KeyDir`] implements).
//!
//! - [`layout`]: file names and modes of the keys directory.
//! - `error`: [`KeyError`], whose messages name the file and the fix.
//! - `lock`: the cross-process lock on the keys directory.
//! - `keyfiles`: the JSON and PEM files, read and written (secrets through zeroizing buffers).
//! - [`vault`]: where they live: the keys folder, or the database shared by every origin.
//! - `lifecycle`: a signing key's life as a function of time ([`KeyState`]).
//! - [`keyring`]: init with crash recovery, content keys, signing keys, listings.
//! - [`account_keys`]: the account service's public keys (and its development stand-in).
//! - [`rotation`]: rotating and revoking keys, re-sealing content, maintenance, the audit log.

pub mod account_keys;
mod error;
mod keyfiles;
pub mod keyring;
pub mod layout;
mod lifecycle;
mod lock;
pub mod rotation;
pub mod vault;

pub use error::KeyError;
pub use keyring::{ContentKeyInfo, InitReport, KeyEntry, KeyKind, Keyring, TrustedKey};
pub use layout::{CONTENT_DIR, LOCK_FILE, STATE_FILE};
pub use lifecycle::KeyState;
pub use vault::{KeyDb, KeyDir};
