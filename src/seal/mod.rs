//! Sealing: AES-256-GCM segment seals, content keys wrapped under a KEK, token-signing keys,
//! and the keys directory that holds them. Formats are specified in `docs/SEALING.md`.
//!
//! - [`key`]: key ids and secret key types (zeroized, never printed).
//! - [`aead`]: the sealed-segment format (`seal`, `open`).
//! - `wrap`: content keys encrypted under a KEK.
//! - [`signing`]: Ed25519 token-signing keys and their kids.
//! - [`keyring`]: the `keys/` directory: init, open, content keys, listing; its files are in
//!   `keyfiles`, its error in `keyerror`.
//! - `lifecycle`: a signing key's life as a function of time (pending, active, verifying,
//!   retired, revoked).
//! - [`rotate`]: rotating and revoking signing keys and the KEK, crash-safe.
//! - `lock`: the cross-process lock on `keys/`.

pub mod account_keys;
pub mod aead;
pub mod key;
mod keyerror;
mod keyfiles;
pub mod keyring;
mod lifecycle;
mod lock;
#[cfg(test)]
mod proptests;
pub mod rotate;
pub mod signing;
mod wrap;

pub use aead::{
    ContextError, OVERHEAD, OpenError, SealContext, SealError, SegmentSlot, open, open_in_place,
    seal, sealed_key_id,
};
pub use key::{ContentKey, Kek, KeyId, KeyIdParseError, RngError};
pub use keyring::{
    ContentKeyInfo, InitReport, KeyEntry, KeyError, KeyKind, KeyState, Keyring, TrustedKey,
};
pub use signing::{
    PublicSigningKey, SigningError, SigningKeyPair, SigningKid, SigningKidParseError,
};
