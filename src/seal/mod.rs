//! Sealing: the cryptography of encore's keys: AES-256-GCM segment seals, content keys
//! wrapped under a KEK, and Ed25519 token-signing key pairs. Formats are specified in
//! `docs/SEALING.md`; the keys directory that stores the keys is `src/keys/`.
//!
//! - [`key`]: key ids and [`SecretKey`], one wrapper for content keys and KEKs (zeroized,
//!   never printed).
//! - [`aead`]: the sealed-segment format (`seal`, `open`).
//! - `wrap`: content keys encrypted under a KEK.
//! - [`signing`]: Ed25519 token-signing keys and their kids.
//! - [`offline`]: offline licenses, content keys encrypted to a device with HPKE and signed.

pub mod aead;
pub mod key;
pub mod offline;
#[cfg(test)]
mod proptests;
pub mod signing;
pub(crate) mod wrap;

pub use aead::{
    ContextError, OVERHEAD, OpenError, SealContext, SealError, SegmentSlot, open, open_in_place,
    seal, sealed_key_id,
};
pub use key::{ContentKey, Kek, KeyId, KeyIdParseError, RngError, SecretKey, SecretKind};
pub use signing::{
    PublicSigningKey, SigningError, SigningKeyPair, SigningKid, SigningKidParseError,
};
