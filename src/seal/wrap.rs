//! Content-key wrapping: AES-256-GCM under a KEK, bound to album, track, rendition and both
//! key ids, so a wrapped key cannot be moved to another track or relabelled.
//!
//! ```text
//! aad     = "encore/content-key/v1"
//!         | album len (u16 BE) | album | track (u32 BE)
//!         | rendition len (u16 BE) | rendition
//!         | content key id (16) | KEK id (16)
//! wrapped = AES-256-GCM(KEK, nonce (12, random), aad, content key (32)) = ciphertext (32) | tag (16)
//! ```

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Nonce, Tag};

use super::aead::{ContextError, NONCE_LEN, TAG_LEN, push_u16_prefixed};
use super::key::{ContentKey, KEY_ID_LEN, KEY_LEN, Kek, KeyId, RngError, fill_random};

/// Domain separation tag of the wrapping AAD. DO NOT CHANGE: stored data depends on it.
pub const WRAP_AAD_DOMAIN: &[u8] = b"encore/content-key/v1";

/// Length of a wrapped key: ciphertext plus tag. DO NOT CHANGE: stored data depends on it.
pub const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;

/// Where a content key belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeySlot<'a> {
    pub album: &'a str,
    pub track: u32,
    pub rendition: &'a str,
}

/// A content key as stored: encrypted under a KEK. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wrapped {
    pub key_id: KeyId,
    pub kek_id: KeyId,
    pub nonce: [u8; NONCE_LEN],
    pub sealed: [u8; WRAPPED_LEN],
}

/// Wrapping or unwrapping failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WrapError {
    #[error(transparent)]
    Rng(#[from] RngError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("it is wrapped under KEK {found}, not under KEK {expected}")]
    WrongKek { expected: KeyId, found: KeyId },
    #[error("the tag check failed: the entry was altered, moved, or the KEK is wrong")]
    Forged,
}

/// Encrypts `key` under `kek` for `slot`, with a fresh random nonce.
pub(crate) fn wrap(kek: &Kek, slot: KeySlot<'_>, key: &ContentKey) -> Result<Wrapped, WrapError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let aad = wrap_aad(slot, key.id(), kek.id())?;
    let mut sealed = [0u8; WRAPPED_LEN];
    let (ct, tag_out) = sealed.split_at_mut(KEY_LEN);
    let inout = InOutBuf::new(key.expose_bytes(), ct).map_err(|_| WrapError::Forged)?;
    let tag = kek
        .cipher()
        .encrypt_inout_detached(&Nonce::from(nonce), &aad, inout)
        .map_err(|_| WrapError::Forged)?;
    tag_out.copy_from_slice(&tag);
    Ok(Wrapped {
        key_id: key.id(),
        kek_id: kek.id(),
        nonce,
        sealed,
    })
}

/// Decrypts a wrapped key straight into a [`ContentKey`] (no stray copy of the secret).
pub(crate) fn unwrap(
    kek: &Kek,
    slot: KeySlot<'_>,
    wrapped: &Wrapped,
) -> Result<ContentKey, WrapError> {
    if wrapped.kek_id != kek.id() {
        return Err(WrapError::WrongKek {
            expected: kek.id(),
            found: wrapped.kek_id,
        });
    }
    let aad = wrap_aad(slot, wrapped.key_id, wrapped.kek_id)?;
    let (ct, tag) = wrapped.sealed.split_at(KEY_LEN);
    let tag = Tag::try_from(tag).map_err(|_| WrapError::Forged)?;
    let mut key = ContentKey::zeroed(wrapped.key_id);
    let inout = InOutBuf::new(ct, key.bytes_mut()).map_err(|_| WrapError::Forged)?;
    kek.cipher()
        .decrypt_inout_detached(&Nonce::from(wrapped.nonce), &aad, inout, &tag)
        .map_err(|_| WrapError::Forged)?;
    Ok(key)
}

/// The wrapping AAD. DO NOT CHANGE: stored data depends on it.
fn wrap_aad(slot: KeySlot<'_>, key_id: KeyId, kek_id: KeyId) -> Result<Vec<u8>, ContextError> {
    let mut aad = Vec::with_capacity(
        WRAP_AAD_DOMAIN.len() + 8 + slot.album.len() + slot.rendition.len() + 2 * KEY_ID_LEN,
    );
    aad.extend_from_slice(WRAP_AAD_DOMAIN);
    push_u16_prefixed(&mut aad, "album", slot.album.as_bytes())?;
    aad.extend_from_slice(&slot.track.to_be_bytes());
    push_u16_prefixed(&mut aad, "rendition", slot.rendition.as_bytes())?;
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(kek_id.as_bytes());
    Ok(aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: KeySlot<'static> = KeySlot {
        album: "demo-album",
        track: 1,
        rendition: "lossless",
    };

    #[test]
    fn wrap_unwrap_round_trip() {
        let kek = Kek::generate().unwrap();
        let key = ContentKey::generate().unwrap();
        let wrapped = wrap(&kek, SLOT, &key).unwrap();
        assert_ne!(&wrapped.sealed[..KEY_LEN], key.expose_bytes());
        let back = unwrap(&kek, SLOT, &wrapped).unwrap();
        assert_eq!(back.id(), key.id());
        assert_eq!(back.expose_bytes(), key.expose_bytes());
    }

    #[test]
    fn another_kek_cannot_unwrap() {
        let kek = Kek::generate().unwrap();
        let other = Kek::generate().unwrap();
        let key = ContentKey::generate().unwrap();
        let wrapped = wrap(&kek, SLOT, &key).unwrap();
        assert!(matches!(
            unwrap(&other, SLOT, &wrapped),
            Err(WrapError::WrongKek { .. })
        ));
        // Relabelling the entry with the other KEK's id does not help either.
        let relabelled = Wrapped {
            kek_id: other.id(),
            ..wrapped.clone()
        };
        assert!(matches!(
            unwrap(&other, SLOT, &relabelled),
            Err(WrapError::Forged)
        ));
        // Same id, different bytes.
        let impostor = Kek::from_bytes(kek.id(), [0; 32]);
        assert!(matches!(
            unwrap(&impostor, SLOT, &wrapped),
            Err(WrapError::Forged)
        ));
    }

    #[test]
    fn moved_or_relabelled_entry_fails() {
        let kek = Kek::generate().unwrap();
        let key = ContentKey::generate().unwrap();
        let wrapped = wrap(&kek, SLOT, &key).unwrap();
        for slot in [
            KeySlot {
                album: "other",
                ..SLOT
            },
            KeySlot { track: 2, ..SLOT },
            KeySlot {
                rendition: "preview",
                ..SLOT
            },
        ] {
            assert!(matches!(
                unwrap(&kek, slot, &wrapped),
                Err(WrapError::Forged)
            ));
        }
        let relabelled = Wrapped {
            key_id: KeyId::generate().unwrap(),
            ..wrapped.clone()
        };
        assert!(matches!(
            unwrap(&kek, SLOT, &relabelled),
            Err(WrapError::Forged)
        ));
        let mut flipped = wrapped;
        flipped.sealed[0] ^= 1;
        assert!(matches!(
            unwrap(&kek, SLOT, &flipped),
            Err(WrapError::Forged)
        ));
    }
}
