//! Key types: [`KeyId`], [`ContentKey`] and [`Kek`]; secrets are zeroized on drop and never
//! printed.

use std::fmt;
use std::str::FromStr;

use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a [`KeyId`] in bytes. DO NOT CHANGE: stored data depends on it.
pub const KEY_ID_LEN: usize = 16;

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;

/// The operating system's random number generator failed. Never papered over: no key or nonce
/// is made without fresh randomness.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RngError(getrandom::Error);

/// Fills `buf` from the OS RNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), RngError> {
    getrandom::fill(buf).map_err(RngError)
}

/// Names a key without revealing it: 16 random bytes, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, RngError> {
        let mut bytes = [0u8; KEY_ID_LEN];
        fill_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The id with these bytes (for tests, test vectors and parsing headers).
    pub const fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw 16 bytes, as stored in sealed-segment headers and AADs.
    pub const fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 2 * KEY_ID_LEN];
        // Cannot fail: the output buffer has exactly twice the input length.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        // Hex digits are ASCII, so this is valid UTF-8.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A string is not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a key id: expected 32 lowercase hex digits")]
pub struct KeyIdParseError {
    input: String,
}

impl FromStr for KeyId {
    type Err = KeyIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Lowercase only, so every id has one spelling (file names, URLs, logs).
        let canonical = s.len() == 2 * KEY_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut bytes = [0u8; KEY_ID_LEN];
        if !canonical || hex::decode_to_slice(s, &mut bytes).is_err() {
            return Err(KeyIdParseError {
                input: s.chars().take(64).collect(),
            });
        }
        Ok(Self(bytes))
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The AES-256 key that seals every segment of one (album, track, rendition).
///
/// Zeroized on drop; `Debug` shows only the id. Not `Clone`: every copy of a secret is one
/// more place it can leak from, so pass references.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ContentKey {
    #[zeroize(skip)]
    id: KeyId,
    bytes: [u8; KEY_LEN],
}

impl ContentKey {
    /// A fresh random key with a fresh random id.
    pub fn generate() -> Result<Self, RngError> {
        let mut key = Self::zeroed(KeyId::generate()?);
        fill_random(&mut key.bytes)?;
        Ok(key)
    }

    /// A key from its bytes, e.g. as received in a license. The caller should zeroize its
    /// own copy of `bytes`.
    pub fn from_bytes(id: KeyId, bytes: [u8; KEY_LEN]) -> Self {
        Self { id, bytes }
    }

    /// An all-zero key, to be filled in place (unwrapping) so no stray copy of the secret is
    /// left on the stack.
    pub(crate) fn zeroed(id: KeyId) -> Self {
        Self {
            id,
            bytes: [0; KEY_LEN],
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.bytes
    }

    /// The key's id, as written in every segment it seals.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The secret bytes. Only for handing the key to an entitled client (license) and for
    /// wrapping; never log them.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A key-encryption key: wraps content keys at rest. Zeroized on drop; `Debug` shows only the
/// id; not `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Kek {
    #[zeroize(skip)]
    id: KeyId,
    bytes: [u8; KEY_LEN],
}

impl Kek {
    /// A fresh random KEK with a fresh random id.
    pub fn generate() -> Result<Self, RngError> {
        let mut kek = Self::zeroed(KeyId::generate()?);
        fill_random(&mut kek.bytes)?;
        Ok(kek)
    }

    /// A KEK from its bytes (loading a KEK file, tests).
    pub fn from_bytes(id: KeyId, bytes: [u8; KEY_LEN]) -> Self {
        Self { id, bytes }
    }

    /// An all-zero KEK, to be filled in place by the loader.
    pub(crate) fn zeroed(id: KeyId) -> Self {
        Self {
            id,
            bytes: [0; KEY_LEN],
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.bytes
    }

    pub(crate) fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The KEK's id, recorded next to every content key it wraps.
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_hex_round_trip() {
        let id = KeyId::generate().unwrap();
        let s = id.to_string();
        assert_eq!(s.len(), 32);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(s.parse::<KeyId>().unwrap(), id);
    }

    #[test]
    fn key_id_rejects_bad_strings() {
        for bad in [
            "",
            "00",
            "000102030405060708090A0B0C0D0E0F",
            "000102030405060708090a0b0c0d0e0g",
            "000102030405060708090a0b0c0d0e0f00",
            "+00102030405060708090a0b0c0d0e0f",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_id_serde_as_hex_string() {
        let id = KeyId::from_bytes([0xab; 16]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"abababababababababababababababab\"");
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>("\"nope\"").is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = ContentKey::from_bytes(KeyId::from_bytes([1; 16]), [0x5a; 32]);
        let kek = Kek::from_bytes(KeyId::from_bytes([2; 16]), [0x5a; 32]);
        for shown in [format!("{key:?}"), format!("{kek:?}"), format!("{key:#?}")] {
            assert!(!shown.contains("5a"), "{shown}");
            assert!(!shown.contains("90"), "{shown}"); // 0x5a as decimal
        }
        assert!(format!("{key:?}").contains(&key.id().to_string()));
    }

    #[test]
    fn generated_keys_differ() {
        let a = ContentKey::generate().unwrap();
        let b = ContentKey::generate().unwrap();
        assert_ne!(a.id(), b.id());
        assert_ne!(a.expose_bytes(), b.expose_bytes());
    }

    #[test]
    fn zeroize_clears_bytes() {
        let mut key = ContentKey::from_bytes(KeyId::from_bytes([1; 16]), [7; 32]);
        key.zeroize();
        assert_eq!(key.expose_bytes(), &[0; 32]);
    }
}
