//! Key types: [`KeyId`], and [`SecretKey`] in its two kinds, [`ContentKey`] and [`Kek`];
//! secrets are zeroized on drop and never printed.

use std::fmt;
use std::marker::PhantomData;
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

/// What a [`SecretKey`] is for. A marker, so that a content key is never passed where a KEK
/// is wanted (or the other way round); sealed: the two kinds below are all there are.
pub trait SecretKind: private::Sealed {
    /// The name `Debug` shows.
    const NAME: &'static str;
}

mod private {
    /// Keeps [`super::SecretKind`] to this module's kinds.
    pub trait Sealed {}
}

/// Marks the key that seals every segment of one (album, track, rendition).
#[derive(Debug)]
pub enum Content {}

/// Marks a key-encryption key, which wraps content keys at rest.
#[derive(Debug)]
pub enum KeyEncryption {}

impl private::Sealed for Content {}
impl private::Sealed for KeyEncryption {}

impl SecretKind for Content {
    const NAME: &'static str = "ContentKey";
}

impl SecretKind for KeyEncryption {
    const NAME: &'static str = "Kek";
}

/// An AES-256 key of kind `K` with its id.
///
/// Zeroized on drop; `Debug` shows only the id. Not `Clone`: every copy of a secret is one
/// more place it can leak from, so pass references.
pub struct SecretKey<K: SecretKind> {
    id: KeyId,
    bytes: [u8; KEY_LEN],
    kind: PhantomData<K>,
}

/// The AES-256 key that seals every segment of one (album, track, rendition).
pub type ContentKey = SecretKey<Content>;

/// A key-encryption key: wraps content keys at rest.
pub type Kek = SecretKey<KeyEncryption>;

impl<K: SecretKind> SecretKey<K> {
    /// A fresh random key with a fresh random id.
    pub fn generate() -> Result<Self, RngError> {
        let mut key = Self::zeroed(KeyId::generate()?);
        fill_random(&mut key.bytes)?;
        Ok(key)
    }

    /// A key from its bytes (a license, a KEK file, tests). The caller should zeroize its own
    /// copy of `bytes`.
    pub fn from_bytes(id: KeyId, bytes: [u8; KEY_LEN]) -> Self {
        Self {
            id,
            bytes,
            kind: PhantomData,
        }
    }

    /// An all-zero key, to be filled in place (unwrapping, loading) so no stray copy of the
    /// secret is left on the stack.
    pub(crate) fn zeroed(id: KeyId) -> Self {
        Self::from_bytes(id, [0; KEY_LEN])
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.bytes
    }

    /// The key's id: written in every segment a content key seals, and next to every content
    /// key a KEK wraps.
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

impl ContentKey {
    /// The secret bytes. Only for handing the key to an entitled client (license) and for
    /// wrapping; never log them.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl Kek {
    /// The secret bytes, for writing the KEK file only.
    pub(crate) fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl<K: SecretKind> Zeroize for SecretKey<K> {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
    }
}

impl<K: SecretKind> Drop for SecretKey<K> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<K: SecretKind> ZeroizeOnDrop for SecretKey<K> {}

impl<K: SecretKind> fmt::Debug for SecretKey<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(K::NAME)
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
