//! Property tests of the sealed-segment format: a sealed segment changed in any way, or
//! opened in any other place, never opens; bytes that were never sealed never open; nothing
//! read from a segment's header panics.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use proptest::prelude::*;

use super::aead::{
    HEADER_LEN, OVERHEAD, SealContext, SegmentSlot, open, open_in_place, seal, sealed_key_id,
};
use super::key::{ContentKey, KeyId};

/// A change to a sealed segment's bytes.
#[derive(Debug, Clone)]
enum Change {
    /// XOR a byte with a non-zero mask.
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// Move a byte range elsewhere (segments spliced together).
    Rotate(usize, usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        6 => (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Change::Flip(i, m)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Change::Insert(i, b)),
        1 => any::<usize>().prop_map(Change::Remove),
        1 => any::<usize>().prop_map(Change::Truncate),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Change::Rotate(a, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, changes: &[Change]) -> Vec<u8> {
    for c in changes {
        let len = bytes.len();
        match *c {
            Change::Flip(i, m) if len > 0 => bytes[i % len] ^= m,
            Change::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Change::Remove(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Change::Truncate(i) => bytes.truncate(i % (len + 1)),
            Change::Rotate(a, b) if len > 0 => {
                let (a, b) = (a % len, b % len);
                bytes[a.min(b)..=a.max(b)].rotate_left(1);
            }
            _ => {}
        }
    }
    bytes
}

fn context() -> impl Strategy<Value = (String, u32, String, SegmentSlot)> {
    (
        "[a-z0-9-]{1,16}",
        1u32..5,
        proptest::sample::select(vec!["lossless", "high", "aac", "preview"])
            .prop_map(str::to_owned),
        prop_oneof![
            Just(SegmentSlot::Init),
            (1u32..5).prop_map(SegmentSlot::Media)
        ],
    )
}

thread_local! {
    static KEY: ContentKey = ContentKey::generate().unwrap();
}

proptest! {
    #![proptest_config(crate::fuzzing::config(256))]

    /// Any change to a sealed segment is refused by both open paths.
    #[test]
    fn a_changed_segment_never_opens(
        (album, track, rendition, slot) in context(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        changes in proptest::collection::vec(change(), 1..4),
    ) {
        KEY.with(|key| -> Result<(), TestCaseError> {
        let ctx = SealContext { album: &album, track, rendition: &rendition, slot };
        let sealed = seal(key, &ctx, plaintext).unwrap();
        let changed = apply(sealed.clone(), &changes);
        prop_assume!(changed != sealed);
        prop_assert!(open(key, &ctx, &changed).is_err());
        prop_assert!(open_in_place(key, &ctx, changed.clone()).is_err());
        let _ = sealed_key_id(&changed);
        Ok(())
        })?;
    }

    /// A segment opens only in the place it was sealed for.
    #[test]
    fn a_segment_opens_only_in_its_own_place(
        (album, track, rendition, slot) in context(),
        (album2, track2, rendition2, slot2) in context(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        KEY.with(|key| -> Result<(), TestCaseError> {
        let ctx = SealContext { album: &album, track, rendition: &rendition, slot };
        let other = SealContext { album: &album2, track: track2, rendition: &rendition2, slot: slot2 };
        let sealed = seal(key, &ctx, plaintext.clone()).unwrap();
        match open(key, &other, &sealed) {
            Ok(opened) => {
                prop_assert_eq!(other, ctx);
                prop_assert_eq!(opened, plaintext);
            }
            Err(_) => prop_assert_ne!(other, ctx),
        }
        Ok(())
        })?;
    }

    /// Bytes that were never sealed never open, even with the right magic, version and key
    /// id in front.
    #[test]
    fn unsealed_bytes_never_open(
        prefix in prop_oneof![Just(0usize), Just(4), Just(5), Just(21)],
        rest in proptest::collection::vec(any::<u8>(), 0..200),
        (album, track, rendition, slot) in context(),
    ) {
        KEY.with(|key| -> Result<(), TestCaseError> {
        let mut header = b"ENCS\x01".to_vec();
        header.extend_from_slice(key.id().as_bytes());
        let mut bytes = header[..prefix.min(header.len())].to_vec();
        bytes.extend_from_slice(&rest);
        let ctx = SealContext { album: &album, track, rendition: &rendition, slot };
        prop_assert!(open(key, &ctx, &bytes).is_err());
        prop_assert!(open_in_place(key, &ctx, bytes.clone()).is_err());
        if let Ok(id) = sealed_key_id(&bytes) {
            prop_assert!(bytes.len() >= HEADER_LEN - 12);
            prop_assert_eq!(id, KeyId::from_bytes(bytes[5..21].try_into().unwrap()));
        }
        prop_assert!(bytes.len() >= OVERHEAD || open(key, &ctx, &bytes).is_err());
        Ok(())
        })?;
    }
}
