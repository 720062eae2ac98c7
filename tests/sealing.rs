//! Sealed segments fail to open when tampered with, moved, or opened with the wrong key.

use encore::seal::{self, OpenError, SealContext, SegmentSlot};

use crate::util::{self, Workspace};

fn packaged() -> Workspace {
    let ws = Workspace::new();
    let dir = ws.album_dir("seal-test");
    util::make_fixture(&dir.join("01.flac"), 44_100, 2, 13.0, &["-c:a", "flac"]);
    util::make_fixture(&dir.join("02.flac"), 44_100, 2, 3.0, &["-c:a", "flac"]);
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    ws
}

fn read(ws: &Workspace, m: &encore::store::RenditionManifest, index: u32) -> Vec<u8> {
    let rec = if index == 0 {
        &m.init
    } else {
        &m.segments[index as usize - 1]
    };
    std::fs::read(ws.store().segment_path(m, rec).expect("path")).expect("read")
}

fn media(
    album: &'static str,
    track: u32,
    rendition: &'static str,
    index: u32,
) -> SealContext<'static> {
    SealContext {
        album,
        track,
        rendition,
        slot: SegmentSlot::Media(index),
    }
}

#[test]
fn tampering_moving_and_wrong_keys_are_detected() {
    let ws = packaged();
    let m = util::manifest(&ws, "seal-test", 1, "lossless");
    assert!(
        m.segments.len() >= 2,
        "need two segments, have {}",
        m.segments.len()
    );
    let key = ws
        .keyring()
        .content_key("seal-test", 1, "lossless")
        .expect("key");
    let here = media("seal-test", 1, "lossless", 1);
    let sealed = read(&ws, &m, 1);
    assert!(
        seal::open(&key, &here, &sealed).is_ok(),
        "an untouched segment opens"
    );

    // A flipped bit anywhere: header, nonce, ciphertext or tag.
    let positions = [
        0,
        4,
        5,
        20,
        21,
        32,
        33,
        sealed.len() / 2,
        sealed.len() - 17,
        sealed.len() - 1,
    ];
    for &pos in &positions {
        let mut bad = sealed.clone();
        bad[pos] ^= 0x01;
        let err = seal::open(&key, &here, &bad).expect_err("tampered segment must not open");
        assert!(
            matches!(
                err,
                OpenError::Forged
                    | OpenError::BadMagic
                    | OpenError::UnsupportedVersion(_)
                    | OpenError::WrongKey { .. }
            ),
            "flip at {pos}: unexpected error {err:?}"
        );
    }
    // Every media segment and the init segment, one flipped bit each in the payload.
    for index in 0..=m.segments.len() as u32 {
        let mut bad = read(&ws, &m, index);
        let mid = bad.len() / 2;
        bad[mid] ^= 0x80;
        let slot = if index == 0 {
            SegmentSlot::Init
        } else {
            SegmentSlot::Media(index)
        };
        let ctx = SealContext {
            album: "seal-test",
            track: 1,
            rendition: "lossless",
            slot,
        };
        assert!(
            matches!(seal::open(&key, &ctx, &bad), Err(OpenError::Forged)),
            "segment {index}"
        );
    }

    // Truncated.
    assert!(matches!(
        seal::open(&key, &here, &sealed[..20]),
        Err(OpenError::Truncated { .. })
    ));
    assert!(matches!(
        seal::open(&key, &here, &sealed[..sealed.len() - 1]),
        Err(OpenError::Forged | OpenError::Truncated { .. })
    ));

    // Presented under another index, track, rendition or album.
    assert!(matches!(
        seal::open(&key, &media("seal-test", 1, "lossless", 2), &sealed),
        Err(OpenError::Forged)
    ));
    assert!(matches!(
        seal::open(
            &key,
            &SealContext {
                slot: SegmentSlot::Init,
                ..here
            },
            &sealed
        ),
        Err(OpenError::Forged)
    ));
    assert!(matches!(
        seal::open(&key, &media("seal-test", 2, "lossless", 1), &sealed),
        Err(OpenError::Forged)
    ));
    assert!(matches!(
        seal::open(&key, &media("seal-test", 1, "high", 1), &sealed),
        Err(OpenError::Forged)
    ));
    assert!(matches!(
        seal::open(&key, &media("other-album", 1, "lossless", 1), &sealed),
        Err(OpenError::Forged)
    ));

    // A segment file moved over another in the store.
    let second = read(&ws, &m, 2);
    assert!(matches!(
        seal::open(&key, &here, &second),
        Err(OpenError::Forged)
    ));

    // Wrong keys: another rendition's, another track's.
    let high = ws
        .keyring()
        .content_key("seal-test", 1, "high")
        .expect("key");
    assert!(matches!(
        seal::open(&high, &here, &sealed),
        Err(OpenError::WrongKey { .. })
    ));
    let other_track = ws
        .keyring()
        .content_key("seal-test", 2, "lossless")
        .expect("key");
    assert!(matches!(
        seal::open(&other_track, &here, &sealed),
        Err(OpenError::WrongKey { .. })
    ));
}

#[test]
fn store_holds_no_plaintext_and_keys_only_wrapped() {
    let ws = packaged();
    let m = util::manifest(&ws, "seal-test", 1, "lossless");
    for index in 0..=m.segments.len() as u32 {
        let bytes = read(&ws, &m, index);
        assert_eq!(&bytes[..4], b"ENCS");
        for marker in [&b"ftyp"[..], b"moof", b"mdat", b"fLaC"] {
            assert!(
                !bytes.windows(4).any(|w| w == marker),
                "segment {index} leaks a plaintext box name"
            );
        }
        assert_eq!(
            encore::store::sha256_hex(&bytes),
            if index == 0 {
                m.init.sha256.clone()
            } else {
                m.segments[index as usize - 1].sha256.clone()
            }
        );
    }
    // The raw content key never appears in the keys folder.
    let key = ws
        .keyring()
        .content_key("seal-test", 1, "lossless")
        .expect("key");
    let raw = key.expose_bytes().to_vec();
    for entry in util::files_under(&ws.keys()) {
        let bytes = std::fs::read(&entry).expect("read key file");
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
            "{} holds a raw content key",
            entry.display()
        );
        let hex_key = hex::encode(&raw);
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&hex_key),
            "{} holds a hex content key",
            entry.display()
        );
    }
}
