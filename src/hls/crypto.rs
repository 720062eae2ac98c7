//! The HLS key and segment encryption: `METHOD=AES-128` of RFC 8216 §5.2 (AES-128-CBC over the
//! whole segment, PKCS#7 padding, an explicit IV per segment), under a key derived from the
//! track's content key. Specified in `docs/HLS.md`, whose test vector a unit test checks.
//!
//! ```text
//! hls key = HKDF-SHA256(salt = none, ikm = content key (32 bytes),
//!                       info = "encore/hls-key/v1"
//!                            | u16 BE len(album) | album | u32 BE track
//!                            | u16 BE len(rendition) | rendition | content key id (16 bytes),
//!                       L = 16)
//! iv      = SHA-256("encore/hls-iv/v1" | u16 BE len(generation) | generation | u32 BE index)[0..16]
//! ```

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::HlsError;
use crate::seal::ContentKey;

/// Domain tag at the start of the key derivation's `info`. DO NOT CHANGE: it fixes every HLS
/// key, and so the bytes of every HLS segment that players and edges keep under immutable URLs.
pub const KEY_DOMAIN: &[u8] = b"encore/hls-key/v1";
/// Domain tag at the start of the IV hash input. DO NOT CHANGE: as [`KEY_DOMAIN`].
pub const IV_DOMAIN: &[u8] = b"encore/hls-iv/v1";
/// Length of an HLS key (AES-128).
pub const KEY_LEN: usize = 16;
/// AES block size: HLS segments are padded to a multiple of it.
pub const BLOCK_LEN: usize = 16;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// Which rendition of which track an HLS key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyContext<'a> {
    /// Album id.
    pub album: &'a str,
    /// Track number, from 1.
    pub track: u32,
    /// Rendition name.
    pub rendition: &'a str,
}

/// The 16-byte AES-128 key a player uses for one rendition of one track. Zeroized on drop,
/// never printed (Debug shows nothing of it), not `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HlsKey([u8; KEY_LEN]);

impl HlsKey {
    /// Derives the HLS key of `ctx` from its content key (see the module docs).
    ///
    /// Separate from the content key on purpose: the content key is an AES-256-GCM key, and one
    /// key never serves two algorithms; HKDF is one-way, so a holder of the HLS key (any
    /// standard player, and whatever it leaks to) cannot recover the content key, and so
    /// cannot forge sealed segments or open other renditions.
    pub fn derive(content: &ContentKey, ctx: &KeyContext<'_>) -> Result<HlsKey, HlsError> {
        let mut info = Vec::with_capacity(
            KEY_DOMAIN.len() + 2 + ctx.album.len() + 4 + 2 + ctx.rendition.len() + 16,
        );
        info.extend_from_slice(KEY_DOMAIN);
        push_prefixed(&mut info, "album", ctx.album.as_bytes())?;
        info.extend_from_slice(&ctx.track.to_be_bytes());
        push_prefixed(&mut info, "rendition", ctx.rendition.as_bytes())?;
        info.extend_from_slice(content.id().as_bytes());
        let mut key = HlsKey([0; KEY_LEN]);
        Hkdf::<Sha256>::new(None, content.expose_bytes())
            .expand(&info, &mut key.0)
            .map_err(|_| HlsError::KeyDerivation)?;
        Ok(key)
    }

    /// The secret bytes: only for the key response to an entitled player; never log them.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key from its bytes, as a player receives it (for clients and tests).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> HlsKey {
        HlsKey(bytes)
    }
}

impl fmt::Debug for HlsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HlsKey(..)")
    }
}

/// The explicit IV of media segment `index` of packaging `generation` (see the module docs).
///
/// CBC needs a (key, IV) pair never to encrypt two different plaintexts, else equal leading
/// blocks show. One HLS key covers every packaging of a rendition under one content key, and a
/// re-package writes new plaintexts at the same indexes, so the IV hashes in the generation
/// too: within a generation the bytes at an index never change, across generations the IVs
/// differ. CBC's other demand, IVs an attacker cannot predict before choosing plaintext, does
/// not arise: nobody but the packager chooses what is encrypted, and HLS publishes every IV in
/// the playlist anyway.
pub fn segment_iv(generation: &str, index: u32) -> [u8; BLOCK_LEN] {
    let mut h = Sha256::new();
    h.update(IV_DOMAIN);
    // A generation is a short slug (checked by the store), so the u16 prefix always fits;
    // saturating keeps this infallible without ever mattering.
    let len = u16::try_from(generation.len()).unwrap_or(u16::MAX);
    h.update(len.to_be_bytes());
    h.update(generation.as_bytes());
    h.update(index.to_be_bytes());
    let digest = h.finalize();
    let mut iv = [0u8; BLOCK_LEN];
    iv.copy_from_slice(&digest[..BLOCK_LEN]);
    iv
}

/// Length of the HLS form of a `plaintext_len`-byte segment: PKCS#7 always adds 1 to 16 bytes.
pub const fn encrypted_len(plaintext_len: usize) -> usize {
    (plaintext_len / BLOCK_LEN + 1) * BLOCK_LEN
}

/// Encrypts a whole segment with AES-128-CBC and PKCS#7 padding, in `plaintext`'s own
/// allocation (it grows by the padding only).
pub fn encrypt_segment(key: &HlsKey, iv: &[u8; BLOCK_LEN], mut plaintext: Vec<u8>) -> Vec<u8> {
    let len = plaintext.len();
    plaintext.resize(encrypted_len(len), 0);
    let out_len = Encryptor::new(&key.0.into(), &(*iv).into())
        .encrypt_padded::<Pkcs7>(&mut plaintext, len)
        .map(<[u8]>::len)
        // The buffer was sized for the padding just above, so this cannot fail.
        .unwrap_or(0);
    plaintext.truncate(out_len);
    plaintext
}

/// Decrypts a segment encrypted by [`encrypt_segment`] (what a player does).
pub fn decrypt_segment(
    key: &HlsKey,
    iv: &[u8; BLOCK_LEN],
    mut ciphertext: Vec<u8>,
) -> Result<Vec<u8>, HlsError> {
    let len = Decryptor::new(&key.0.into(), &(*iv).into())
        .decrypt_padded::<Pkcs7>(&mut ciphertext)
        .map_err(|_| HlsError::BadPadding)?
        .len();
    ciphertext.truncate(len);
    Ok(ciphertext)
}

/// Appends `bytes` preceded by its length as a big-endian u16.
fn push_prefixed(out: &mut Vec<u8>, field: &'static str, bytes: &[u8]) -> Result<(), HlsError> {
    let len = u16::try_from(bytes.len()).map_err(|_| HlsError::NameTooLong {
        field,
        len: bytes.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::KeyId;

    const DOC: &str = include_str!("../../docs/HLS.md");

    /// The content key of the test vector in docs/HLS.md (the one docs/SEALING.md uses).
    fn vector_content_key() -> ContentKey {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = 0xa0 + i as u8;
        }
        ContentKey::from_bytes(KeyId::from_bytes(id), bytes)
    }

    fn ctx() -> KeyContext<'static> {
        KeyContext {
            album: "demo-album",
            track: 1,
            rendition: "lossless",
        }
    }

    const VECTOR_KEY: &str = "0155f9a0d7f5734e6f3c85d6f0683a4b";
    const VECTOR_IV: &str = "2407bd15f3ffa4d1a823c7ffb332f6d1";
    const VECTOR_CT: &str = "8a8b540b6f95d51971b3527e670a7aa8";

    #[test]
    fn test_vector_matches_docs() {
        let key = HlsKey::derive(&vector_content_key(), &ctx()).unwrap();
        let iv = segment_iv("g0123456789abcdef", 3);
        let ct = encrypt_segment(&key, &iv, b"hello, encore".to_vec());
        assert_eq!(hex::encode(key.expose_bytes()), VECTOR_KEY);
        assert_eq!(hex::encode(iv), VECTOR_IV);
        assert_eq!(hex::encode(&ct), VECTOR_CT);
        for v in [VECTOR_KEY, VECTOR_IV, VECTOR_CT] {
            assert!(DOC.contains(v), "docs/HLS.md lacks {v}");
        }
    }

    #[test]
    fn round_trips_at_every_padding_length() {
        let key = HlsKey::derive(&vector_content_key(), &ctx()).unwrap();
        let iv = segment_iv("g1", 1);
        for len in 0..=48 {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = encrypt_segment(&key, &iv, pt.clone());
            assert_eq!(ct.len(), encrypted_len(len), "len {len}");
            assert_eq!(ct.len() % BLOCK_LEN, 0);
            assert!(ct.len() > len);
            assert_eq!(decrypt_segment(&key, &iv, ct).unwrap(), pt);
        }
    }

    #[test]
    fn keys_differ_per_slot_and_content_key() {
        let content = vector_content_key();
        let base = HlsKey::derive(&content, &ctx()).unwrap();
        let others = [
            KeyContext {
                album: "demo-albun",
                ..ctx()
            },
            KeyContext { track: 2, ..ctx() },
            KeyContext {
                rendition: "preview",
                ..ctx()
            },
            // Same bytes, other split: the length prefixes keep them apart.
            KeyContext {
                album: "demo-albuml",
                rendition: "ossless",
                ..ctx()
            },
        ];
        for other in others {
            let k = HlsKey::derive(&content, &other).unwrap();
            assert_ne!(k.expose_bytes(), base.expose_bytes(), "{other:?}");
        }
        let other_content = ContentKey::generate().unwrap();
        let k = HlsKey::derive(&other_content, &ctx()).unwrap();
        assert_ne!(k.expose_bytes(), base.expose_bytes());
        // The HLS key is not a prefix of the content key.
        assert_ne!(&content.expose_bytes()[..16], base.expose_bytes());
    }

    #[test]
    fn ivs_differ_per_segment_and_generation() {
        let a = segment_iv("g1", 1);
        assert_ne!(a, segment_iv("g1", 2));
        assert_ne!(a, segment_iv("g2", 1));
        assert_eq!(a, segment_iv("g1", 1));
    }

    #[test]
    fn wrong_key_or_truncation_is_refused_or_garbled() {
        let key = HlsKey::derive(&vector_content_key(), &ctx()).unwrap();
        let iv = segment_iv("g1", 1);
        let ct = encrypt_segment(&key, &iv, vec![7u8; 100]);
        assert!(matches!(
            decrypt_segment(&key, &iv, ct[..ct.len() - 1].to_vec()),
            Err(HlsError::BadPadding)
        ));
        let other = HlsKey::from_bytes([1; 16]);
        // CBC is not authenticated: a wrong key yields garbage or a padding error, never the
        // plaintext.
        assert_ne!(decrypt_segment(&other, &iv, ct).ok(), Some(vec![7u8; 100]));
    }

    #[test]
    fn debug_hides_the_key() {
        let key = HlsKey::from_bytes([0xab; 16]);
        assert_eq!(format!("{key:?}"), "HlsKey(..)");
    }
}
