//! The sealed-segment format: AES-256-GCM over one CMAF fragment, bound to its place in the
//! catalog. Specified byte by byte in `docs/SEALING.md`.
//!
//! ```text
//! sealed = "ENCS" | version (1) | key id (16) | nonce (12) | ciphertext | tag (16)
//! aad    = "encore/segment/v1"
//!        | album len (u16 BE) | album | track (u32 BE)
//!        | rendition len (u16 BE) | rendition
//!        | slot kind (u8: 0 init, 1 media) | slot index (u32 BE: 0 for init)
//!        | header (the first 33 bytes of `sealed`: magic, version, key id, nonce)
//! ```
//!
//! Binding the whole header puts the key id and the version under the tag, so neither can be
//! swapped without detection; binding the context means a segment moved to another album,
//! track, rendition or position fails to open.

use std::fmt;

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Nonce, Tag};

use super::key::{ContentKey, KEY_ID_LEN, KeyId, RngError, fill_random};

/// First bytes of every sealed segment. DO NOT CHANGE: stored data depends on it.
pub const MAGIC: [u8; 4] = *b"ENCS";
/// Format version written by [`seal`]. DO NOT CHANGE: stored data depends on it.
pub const VERSION: u8 = 1;
/// AES-GCM nonce length. DO NOT CHANGE: stored data depends on it.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length. DO NOT CHANGE: stored data depends on it.
pub const TAG_LEN: usize = 16;
/// magic + version + key id + nonce. DO NOT CHANGE: stored data depends on it.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + KEY_ID_LEN + NONCE_LEN;
/// Bytes a sealed segment has beyond its plaintext. A plaintext `Vec` with this much spare
/// capacity is sealed without any allocation.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Domain separation tag at the start of the AAD. DO NOT CHANGE: stored data depends on it.
pub const AAD_DOMAIN: &[u8] = b"encore/segment/v1";
/// Slot kind byte for the init segment. DO NOT CHANGE: stored data depends on it.
const SLOT_KIND_INIT: u8 = 0;
/// Slot kind byte for media segments. DO NOT CHANGE: stored data depends on it.
const SLOT_KIND_MEDIA: u8 = 1;

const VERSION_AT: usize = MAGIC.len();
const KEY_ID_AT: usize = VERSION_AT + 1;
const NONCE_AT: usize = KEY_ID_AT + KEY_ID_LEN;

/// AES-GCM's plaintext limit (2^36 - 32 bytes).
const MAX_PLAINTEXT: u64 = aes_gcm::P_MAX;

/// Which segment of a rendition: the fMP4 init segment, or media segment `n` (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentSlot {
    /// The init segment (`ftyp` + `moov`).
    Init,
    /// Media segment number `n`; numbering starts at 1.
    Media(u32),
}

impl fmt::Display for SegmentSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentSlot::Init => f.write_str("init segment"),
            SegmentSlot::Media(n) => write!(f, "media segment {n}"),
        }
    }
}

/// Where a segment belongs; bound into the AAD so a segment opens only in its own place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    /// Album id (a slug; at most 65535 bytes).
    pub album: &'a str,
    /// Track number, from 1.
    pub track: u32,
    /// Rendition name, e.g. `lossless` or `preview` (at most 65535 bytes).
    pub rendition: &'a str,
    /// Init or media segment `n`.
    pub slot: SegmentSlot,
}

/// A [`SealContext`] that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A field is longer than its u16 length prefix allows.
    #[error("{field} is {len} bytes long; at most 65535 bytes can be sealed into a segment")]
    TooLong {
        /// `album` or `rendition`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// `SegmentSlot::Media(0)`: media segments are numbered from 1.
    #[error("media segment 0 does not exist: media segments are numbered from 1")]
    MediaZero,
}

/// Sealing failed. Nothing was written anywhere.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// No fresh nonce could be drawn.
    #[error("cannot seal a segment: {0}")]
    Rng(#[from] RngError),
    /// The context cannot be encoded.
    #[error("cannot seal a segment: {0}")]
    Context(#[from] ContextError),
    /// The plaintext exceeds AES-GCM's limit of 2^36 - 32 bytes.
    #[error("cannot seal a segment of {len} bytes: AES-GCM's limit is 64 GiB")]
    TooLarge {
        /// Plaintext length.
        len: usize,
    },
}

/// Opening failed; the segment must not be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Shorter than header + tag (or, for [`sealed_key_id`], than the header up to the key id).
    #[error("sealed segment is truncated: {len} bytes, at least {min} needed")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        min: usize,
    },
    /// Does not start with `ENCS`.
    #[error("not a sealed encore segment: it does not start with \"ENCS\"")]
    BadMagic,
    /// A version this build cannot read.
    #[error("sealed segment format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// The segment names a different content key from the one given.
    #[error(
        "segment is sealed under content key {found}, but the key given is {expected}: \
         fetch the license for this album, track and rendition"
    )]
    WrongKey {
        /// Id of the key the caller gave.
        expected: KeyId,
        /// Id written in the segment header.
        found: KeyId,
    },
    /// The tag check failed.
    #[error(
        "segment failed authentication: its bytes were altered, or it belongs to a different \
         album, track, rendition or segment number"
    )]
    Forged,
    /// The context cannot be encoded, so no segment can match it.
    #[error("cannot open a segment: {0}")]
    Context(#[from] ContextError),
}

/// Seals `plaintext` (one fragment) under `key` for `ctx`, with a fresh random nonce.
///
/// Encrypts in place: if `plaintext` has [`OVERHEAD`] bytes of spare capacity its allocation
/// becomes the output (no allocation at all); otherwise the ciphertext is written straight
/// into one exactly-sized output buffer (one allocation, still no extra copy).
pub fn seal(
    key: &ContentKey,
    ctx: &SealContext<'_>,
    plaintext: Vec<u8>,
) -> Result<Vec<u8>, SealError> {
    // A fresh random nonce per seal, never a counter: a content key outlives processes and
    // may seal on several machines (re-ingest, parallel ingest), where no counter stays
    // unique. NIST SP 800-38D allows 2^32 random-nonce seals per key; one rendition of one
    // track has thousands of segments at most.
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    seal_with_nonce(key, ctx, nonce, plaintext)
}

/// [`seal`] with a caller-chosen nonce: only for test vectors. Reusing a nonce under one key
/// destroys GCM's security.
pub(crate) fn seal_with_nonce(
    key: &ContentKey,
    ctx: &SealContext<'_>,
    nonce: [u8; NONCE_LEN],
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, SealError> {
    let len = buf.len();
    if len as u64 > MAX_PLAINTEXT {
        return Err(SealError::TooLarge { len });
    }
    let header = encode_header(key.id(), &nonce);
    let aad = encode_aad(ctx, &header)?;
    let cipher = key.cipher();
    let nonce = Nonce::from(nonce);
    let too_large = || SealError::TooLarge { len };

    if buf.capacity() - len >= OVERHEAD {
        // Shift the plaintext right within its own allocation, then encrypt in place.
        buf.resize(HEADER_LEN + len, 0);
        buf.copy_within(..len, HEADER_LEN);
        buf[..HEADER_LEN].copy_from_slice(&header);
        let tag = cipher
            .encrypt_inout_detached(&nonce, &aad, (&mut buf[HEADER_LEN..]).into())
            .map_err(|_| too_large())?;
        buf.extend_from_slice(&tag);
        Ok(buf)
    } else {
        // Growing `buf` could copy it (realloc) and then shift it again; instead encrypt from
        // `buf` directly into the output, which costs the same single pass.
        let mut out = Vec::with_capacity(len + OVERHEAD);
        out.extend_from_slice(&header);
        out.resize(HEADER_LEN + len, 0);
        let inout = InOutBuf::new(&buf, &mut out[HEADER_LEN..]).map_err(|_| too_large())?;
        let tag = cipher
            .encrypt_inout_detached(&nonce, &aad, inout)
            .map_err(|_| too_large())?;
        out.extend_from_slice(&tag);
        Ok(out)
    }
}

/// Opens a sealed segment into a new buffer (one allocation, the plaintext's size).
pub fn open(key: &ContentKey, ctx: &SealContext<'_>, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let parts = Parts::parse(key, ctx, sealed)?;
    let mut out = vec![0u8; parts.ct_len];
    let ct = &sealed[HEADER_LEN..HEADER_LEN + parts.ct_len];
    let inout = InOutBuf::new(ct, &mut out).map_err(|_| OpenError::Forged)?;
    key.cipher()
        .decrypt_inout_detached(&parts.nonce, &parts.aad, inout, &parts.tag)
        .map_err(|_| OpenError::Forged)?;
    Ok(out)
}

/// Opens a sealed segment in its own buffer: decrypts in place, then moves the plaintext to
/// the front. No allocation. On error the buffer is dropped unchanged (GCM checks the tag
/// before decrypting).
pub fn open_in_place(
    key: &ContentKey,
    ctx: &SealContext<'_>,
    mut sealed: Vec<u8>,
) -> Result<Vec<u8>, OpenError> {
    let parts = Parts::parse(key, ctx, &sealed)?;
    let end = HEADER_LEN + parts.ct_len;
    key.cipher()
        .decrypt_inout_detached(
            &parts.nonce,
            &parts.aad,
            (&mut sealed[HEADER_LEN..end]).into(),
            &parts.tag,
        )
        .map_err(|_| OpenError::Forged)?;
    sealed.copy_within(HEADER_LEN..end, 0);
    sealed.truncate(parts.ct_len);
    Ok(sealed)
}

/// The content key id in a sealed segment's header, read without any key (to pick the key).
/// Needs only the first 21 bytes (magic, version, key id). Not authenticated: the id is
/// checked by the tag when the segment is opened.
pub fn sealed_key_id(sealed: &[u8]) -> Result<KeyId, OpenError> {
    check_prefix(sealed, NONCE_AT)?;
    Ok(read_key_id(sealed))
}

/// Checks magic, version and length, in that order, so that garbage reads as `BadMagic` and a
/// cut-off real segment as `Truncated`.
fn check_prefix(sealed: &[u8], min: usize) -> Result<(), OpenError> {
    let magic_len = sealed.len().min(MAGIC.len());
    if sealed[..magic_len] != MAGIC[..magic_len] {
        return Err(OpenError::BadMagic);
    }
    if let Some(&version) = sealed.get(VERSION_AT)
        && version != VERSION
    {
        return Err(OpenError::UnsupportedVersion(version));
    }
    if sealed.len() < min {
        return Err(OpenError::Truncated {
            len: sealed.len(),
            min,
        });
    }
    Ok(())
}

/// Key id bytes; the caller has checked the length.
fn read_key_id(sealed: &[u8]) -> KeyId {
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&sealed[KEY_ID_AT..NONCE_AT]);
    KeyId::from_bytes(id)
}

/// A checked sealed segment, ready to decrypt.
struct Parts {
    nonce: Nonce<aes_gcm::aead::consts::U12>,
    tag: Tag,
    aad: Vec<u8>,
    ct_len: usize,
}

impl Parts {
    fn parse(key: &ContentKey, ctx: &SealContext<'_>, sealed: &[u8]) -> Result<Self, OpenError> {
        check_prefix(sealed, OVERHEAD)?;
        let found = read_key_id(sealed);
        if found != key.id() {
            return Err(OpenError::WrongKey {
                expected: key.id(),
                found,
            });
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&sealed[..HEADER_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[NONCE_AT..HEADER_LEN]);
        let ct_len = sealed.len() - OVERHEAD;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&sealed[HEADER_LEN + ct_len..]);
        Ok(Self {
            nonce: Nonce::from(nonce),
            tag: Tag::from(tag),
            aad: encode_aad(ctx, &header)?,
            ct_len,
        })
    }
}

fn encode_header(key_id: KeyId, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..VERSION_AT].copy_from_slice(&MAGIC);
    header[VERSION_AT] = VERSION;
    header[KEY_ID_AT..NONCE_AT].copy_from_slice(key_id.as_bytes());
    header[NONCE_AT..].copy_from_slice(nonce);
    header
}

/// The AAD, exactly as specified in the module docs and `docs/SEALING.md`.
/// DO NOT CHANGE: stored data depends on it.
pub(crate) fn encode_aad(
    ctx: &SealContext<'_>,
    header: &[u8; HEADER_LEN],
) -> Result<Vec<u8>, ContextError> {
    let (kind, index) = match ctx.slot {
        SegmentSlot::Init => (SLOT_KIND_INIT, 0),
        SegmentSlot::Media(0) => return Err(ContextError::MediaZero),
        SegmentSlot::Media(n) => (SLOT_KIND_MEDIA, n),
    };
    let album = ctx.album.as_bytes();
    let rendition = ctx.rendition.as_bytes();
    let mut aad = Vec::with_capacity(
        AAD_DOMAIN.len() + 2 + album.len() + 4 + 2 + rendition.len() + 5 + HEADER_LEN,
    );
    aad.extend_from_slice(AAD_DOMAIN);
    push_u16_prefixed(&mut aad, "album", album)?;
    aad.extend_from_slice(&ctx.track.to_be_bytes());
    push_u16_prefixed(&mut aad, "rendition", rendition)?;
    aad.push(kind);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.extend_from_slice(header);
    Ok(aad)
}

/// Appends `bytes` preceded by its length as a big-endian u16.
pub(crate) fn push_u16_prefixed(
    out: &mut Vec<u8>,
    field: &'static str,
    bytes: &[u8],
) -> Result<(), ContextError> {
    let len = u16::try_from(bytes.len()).map_err(|_| ContextError::TooLong {
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
    use proptest::prelude::*;

    const DOC: &str = include_str!("../../docs/SEALING.md");

    fn key() -> ContentKey {
        ContentKey::generate().unwrap()
    }

    fn ctx() -> SealContext<'static> {
        SealContext {
            album: "demo-album",
            track: 1,
            rendition: "lossless",
            slot: SegmentSlot::Media(3),
        }
    }

    /// The test vector of docs/SEALING.md.
    fn vector_key() -> ContentKey {
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

    const VECTOR_NONCE: [u8; 12] = [
        0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb,
    ];
    const VECTOR_AAD: &str = "656e636f72652f7365676d656e742f7631000a64656d6f2d616c62756d00000001\
        00086c6f73736c6573730100000003454e435301a0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacb";
    const VECTOR_SEALED: &str = "454e435301a0a1a2a3a4a5a6a7a8a9aaabacadaeafc0c1c2c3c4c5c6c7c8c9cacb\
        682d4b0b1854b63bf6ba92d05709166dd629a2563926f69d53cd1af9c9";

    #[test]
    fn test_vector_matches_docs() {
        let key = vector_key();
        let header = encode_header(key.id(), &VECTOR_NONCE);
        let aad = encode_aad(&ctx(), &header).unwrap();
        let sealed =
            seal_with_nonce(&key, &ctx(), VECTOR_NONCE, b"hello, encore".to_vec()).unwrap();
        assert_eq!(hex::encode(&aad), VECTOR_AAD);
        assert_eq!(hex::encode(&sealed), VECTOR_SEALED);
        assert!(
            DOC.contains(VECTOR_AAD),
            "docs/SEALING.md lacks the AAD hex"
        );
        assert!(
            DOC.contains(VECTOR_SEALED),
            "docs/SEALING.md lacks the sealed hex"
        );
        assert_eq!(open(&key, &ctx(), &sealed).unwrap(), b"hello, encore");
    }

    #[test]
    fn round_trip_both_open_paths() {
        let key = key();
        let plaintext: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let sealed = seal(&key, &ctx(), plaintext.clone()).unwrap();
        assert_eq!(sealed.len(), plaintext.len() + OVERHEAD);
        assert_eq!(&sealed[..4], b"ENCS");
        assert_eq!(sealed_key_id(&sealed).unwrap(), key.id());
        assert_eq!(open(&key, &ctx(), &sealed).unwrap(), plaintext);
        assert_eq!(open_in_place(&key, &ctx(), sealed).unwrap(), plaintext);
    }

    #[test]
    fn in_place_and_copying_seal_paths_agree() {
        let key = key();
        let nonce = [9u8; 12];
        let exact = b"some fragment".to_vec();
        let mut roomy = Vec::with_capacity(exact.len() + OVERHEAD);
        roomy.extend_from_slice(&exact);
        let roomy_ptr = roomy.as_ptr();
        let a = seal_with_nonce(&key, &ctx(), nonce, exact).unwrap();
        let b = seal_with_nonce(&key, &ctx(), nonce, roomy).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.as_ptr(), roomy_ptr, "spare capacity should be reused");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = key();
        let sealed = seal(&key, &ctx(), Vec::new()).unwrap();
        assert_eq!(sealed.len(), OVERHEAD);
        assert!(open(&key, &ctx(), &sealed).unwrap().is_empty());
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let key = key();
        let sealed = seal(&key, &ctx(), b"a short fragment".to_vec()).unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[byte] ^= 1 << bit;
                let err = open(&key, &ctx(), &bad).unwrap_err();
                let expected_kind = match byte {
                    0..4 => matches!(err, OpenError::BadMagic),
                    4 => matches!(err, OpenError::UnsupportedVersion(_)),
                    5..21 => matches!(err, OpenError::WrongKey { .. }),
                    _ => err == OpenError::Forged,
                };
                assert!(expected_kind, "byte {byte} bit {bit}: {err:?}");
                assert!(open_in_place(&key, &ctx(), bad).is_err());
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let key = key();
        let sealed = seal(&key, &ctx(), b"fragment".to_vec()).unwrap();
        for len in 0..OVERHEAD {
            let err = open(&key, &ctx(), &sealed[..len]).unwrap_err();
            assert_eq!(err, OpenError::Truncated { len, min: OVERHEAD });
        }
        // Cut inside ciphertext or tag but still long enough: the tag check catches it.
        for len in OVERHEAD..sealed.len() {
            assert_eq!(open(&key, &ctx(), &sealed[..len]), Err(OpenError::Forged));
        }
        assert!(matches!(
            sealed_key_id(&sealed[..20]),
            Err(OpenError::Truncated { len: 20, min: 21 })
        ));
        assert_eq!(sealed_key_id(&sealed[..21]).unwrap(), key.id());
    }

    #[test]
    fn moved_segment_is_forged() {
        let key = key();
        let sealed = seal(&key, &ctx(), b"fragment".to_vec()).unwrap();
        let base = ctx();
        let moved = [
            SealContext {
                album: "other-album",
                ..base
            },
            SealContext { track: 2, ..base },
            SealContext {
                rendition: "preview",
                ..base
            },
            SealContext {
                slot: SegmentSlot::Media(4),
                ..base
            },
            SealContext {
                slot: SegmentSlot::Init,
                ..base
            },
        ];
        for other in moved {
            assert_eq!(
                open(&key, &other, &sealed),
                Err(OpenError::Forged),
                "{other:?}"
            );
        }
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        // Same concatenated bytes, different split: must not collide.
        let header = [0u8; HEADER_LEN];
        let a = SealContext {
            album: "ab",
            track: 1,
            rendition: "c",
            slot: SegmentSlot::Init,
        };
        let b = SealContext {
            album: "a",
            rendition: "bc",
            ..a
        };
        assert_ne!(
            encode_aad(&a, &header).unwrap(),
            encode_aad(&b, &header).unwrap()
        );
    }

    #[test]
    fn wrong_key_is_named() {
        let key = key();
        let other = ContentKey::generate().unwrap();
        let sealed = seal(&key, &ctx(), b"fragment".to_vec()).unwrap();
        assert_eq!(
            open(&other, &ctx(), &sealed),
            Err(OpenError::WrongKey {
                expected: other.id(),
                found: key.id()
            })
        );
        // Same id, different bytes (a corrupted license): the tag catches it.
        let impostor = ContentKey::from_bytes(key.id(), [0u8; 32]);
        assert_eq!(open(&impostor, &ctx(), &sealed), Err(OpenError::Forged));
    }

    #[test]
    fn garbage_and_future_versions() {
        let key = key();
        assert_eq!(
            open(
                &key,
                &ctx(),
                b"ftypisom and the rest of a plain mp4 file........."
            ),
            Err(OpenError::BadMagic)
        );
        let mut sealed = seal(&key, &ctx(), b"x".to_vec()).unwrap();
        sealed[4] = 2;
        assert_eq!(
            open(&key, &ctx(), &sealed),
            Err(OpenError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn two_seals_differ() {
        let key = key();
        let a = seal(&key, &ctx(), b"same".to_vec()).unwrap();
        let b = seal(&key, &ctx(), b"same".to_vec()).unwrap();
        assert_ne!(a[NONCE_AT..HEADER_LEN], b[NONCE_AT..HEADER_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn bad_contexts_are_refused() {
        let key = key();
        let zero = SealContext {
            slot: SegmentSlot::Media(0),
            ..ctx()
        };
        assert!(matches!(
            seal(&key, &zero, vec![1]),
            Err(SealError::Context(ContextError::MediaZero))
        ));
        let long = "x".repeat(70_000);
        let too_long = SealContext {
            album: &long,
            ..ctx()
        };
        assert!(matches!(
            seal(&key, &too_long, vec![1]),
            Err(SealError::Context(ContextError::TooLong {
                field: "album",
                ..
            }))
        ));
    }

    #[test]
    fn errors_read_well() {
        let msg = OpenError::Forged.to_string();
        assert!(msg.contains("altered"), "{msg}");
        let msg = OpenError::Truncated { len: 3, min: 49 }.to_string();
        assert!(msg.contains("truncated"), "{msg}");
    }

    fn slot() -> impl Strategy<Value = SegmentSlot> {
        prop_oneof![
            Just(SegmentSlot::Init),
            (1u32..=u32::MAX).prop_map(SegmentSlot::Media)
        ]
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            album in "[a-z0-9-]{1,64}",
            track in any::<u32>(),
            rendition in "\\PC{0,20}",
            slot in slot(),
            plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
            spare in 0usize..64,
        ) {
            let key = key();
            let ctx = SealContext { album: &album, track, rendition: &rendition, slot };
            let mut buf = Vec::with_capacity(plaintext.len() + spare);
            buf.extend_from_slice(&plaintext);
            let sealed = seal(&key, &ctx, buf).unwrap();
            prop_assert_eq!(sealed.len(), plaintext.len() + OVERHEAD);
            prop_assert_eq!(&open(&key, &ctx, &sealed).unwrap(), &plaintext);
            prop_assert_eq!(&open_in_place(&key, &ctx, sealed).unwrap(), &plaintext);
        }
    }
}
