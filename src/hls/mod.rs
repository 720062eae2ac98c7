//! HLS delivery (RFC 8216, version 7, fMP4): playlists made from the store's manifests, and
//! the HLS form of each stored segment, made on the way out by opening its seal and
//! encrypting it for `METHOD=AES-128`. Knows nothing of HTTP; the routes are in
//! `http::ops::hls`, the format in `docs/HLS.md`.
//!
//! - [`crypto`]: the HLS key (HKDF from the content key), IVs, AES-128-CBC.
//! - [`playlist`]: multivariant and media playlists, per track and per album.

pub mod crypto;
pub mod playlist;

use crate::keys::Keyring;
use crate::media::Rendition;
use crate::seal::{self, ContentKey, OpenError, SealContext, SegmentSlot};
use crate::store::RenditionManifest;

pub use crypto::{HlsKey, KeyContext};

/// Why the HLS form of a segment or its key could not be made. Every variant is a fault of
/// the server's store or keys, never of the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HlsError {
    /// The stored segment did not open under its content key.
    #[error("cannot open the stored {slot}: {source}")]
    Open {
        /// Which segment.
        slot: SegmentSlot,
        /// Why.
        source: OpenError,
    },
    /// An album or rendition name longer than a u16 length prefix.
    #[error("{field} is {len} bytes long; at most 65535 bytes fit an HLS key context")]
    NameTooLong {
        /// `album` or `rendition`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// HKDF refused the output length (cannot happen for 16 bytes).
    #[error("HKDF could not derive the HLS key")]
    KeyDerivation,
    /// Decryption found bad PKCS#7 padding: wrong key, wrong IV or damaged bytes.
    #[error("HLS segment does not decrypt: bad padding (wrong key or IV, or damaged bytes)")]
    BadPadding,
    /// The keyring could not be read.
    #[error("cannot read the content key of {slot}: {reason}")]
    Keyring {
        /// `album/track/rendition`.
        slot: String,
        /// The keyring's message.
        reason: String,
    },
    /// The keyring has no content key for a packaged rendition.
    #[error("no content key for {0}, though it is packaged")]
    NoContentKey(String),
    /// The keyring's content key is not the one the rendition is sealed under.
    #[error("{slot} is sealed under content key {sealed}, but the keyring holds {held}")]
    KeyMismatch {
        /// `album/track/rendition`.
        slot: String,
        /// Key id in the manifest.
        sealed: String,
        /// Key id in the keyring.
        held: String,
    },
    /// The blocking task that built a segment did not finish.
    #[error("the task building an HLS segment failed: {0}")]
    Task(String),
}

/// The content key that sealed `m`'s segments: the keyring's key for its slot, which must be
/// the one the manifest names (never a newer one it was not sealed under).
pub fn content_key_for(keyring: &Keyring, m: &RenditionManifest) -> Result<ContentKey, HlsError> {
    let slot = || format!("{}/{}/{}", m.album, m.track, m.rendition);
    // By the id the manifest names, not the slot's newest key: during a content-key
    // rotation the newest key may not seal anything served yet, and a retiring generation
    // is sealed under the old one.
    let id = m.key_id.parse().map_err(|e| HlsError::Keyring {
        slot: slot(),
        reason: format!("manifest key id: {e}"),
    })?;
    keyring
        .content_key_by_id(&m.album, m.track, &m.rendition, id)
        .map_err(|e| HlsError::Keyring {
            slot: slot(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| HlsError::NoContentKey(slot()))
}

/// Which of the renditions a token may fetch go into a multivariant playlist: the full ones
/// when there is any, else the preview. Never both: the preview is another, shorter timeline
/// (a clip), not another quality of the track, so a player must not switch to it mid-track.
pub fn variant_renditions<'a>(entitled: &[&'a str]) -> Vec<&'a str> {
    let (previews, full): (Vec<&str>, Vec<&str>) = entitled
        .iter()
        .copied()
        .partition(|r| Rendition::names_preview(r));
    if full.is_empty() { previews } else { full }
}

/// One file of a rendition's HLS form, as named in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HlsFile {
    /// `init.mp4`: the fMP4 init segment (`EXT-X-MAP`), not encrypted.
    Init,
    /// `NNNN.mp4`: media segment `n` (from 1), AES-128 encrypted.
    Media(u32),
    /// `key`: the 16-byte AES-128 key.
    Key,
}

/// File name of the HLS init segment.
pub const INIT_FILE: &str = "init.mp4";
/// File name of the HLS key.
pub const KEY_FILE: &str = "key";

impl HlsFile {
    /// Parses a file name as [`HlsFile::name`] writes it; anything else (another spelling of
    /// the same segment included, so each file has one URL) is `None`.
    pub fn parse(name: &str) -> Option<HlsFile> {
        match name {
            INIT_FILE => Some(HlsFile::Init),
            KEY_FILE => Some(HlsFile::Key),
            _ => {
                let n: u32 = name.strip_suffix(".mp4")?.parse().ok()?;
                let file = HlsFile::Media(n);
                (n > 0 && file.name() == name).then_some(file)
            }
        }
    }

    /// The file name in URLs. Media segments end in `.mp4`, not the usual `.m4s`: ffmpeg's HLS
    /// demuxer (with `extension_picky`, its default since 7.1) refuses a segment whose
    /// extension is not one its detected demuxer claims, and its MP4 demuxer does not claim
    /// `m4s`. Players that do not look at extensions are unaffected.
    pub fn name(&self) -> String {
        match self {
            HlsFile::Init => INIT_FILE.to_owned(),
            HlsFile::Media(n) => format!("{n:04}.mp4"),
            HlsFile::Key => KEY_FILE.to_owned(),
        }
    }
}

/// Where a stored segment belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentPlace<'a> {
    /// Album id.
    pub album: &'a str,
    /// Track number.
    pub track: u32,
    /// Rendition name.
    pub rendition: &'a str,
    /// Packaging generation (part of the IV).
    pub generation: &'a str,
    /// Init or media segment `n`.
    pub slot: SegmentSlot,
}

/// Makes the HLS form of one sealed segment: the init segment opened (sent in the clear, see
/// `docs/HLS.md` for why), a media segment opened and encrypted with AES-128-CBC under the
/// rendition's HLS key and the segment's IV. Deterministic: the same sealed bytes always give
/// the same HLS bytes, so they are cached and validated like the sealed ones.
pub fn build_segment(
    content: &ContentKey,
    place: &SegmentPlace<'_>,
    sealed: Vec<u8>,
) -> Result<Vec<u8>, HlsError> {
    let ctx = SealContext {
        album: place.album,
        track: place.track,
        rendition: place.rendition,
        slot: place.slot,
    };
    let plain = seal::open_in_place(content, &ctx, sealed).map_err(|source| HlsError::Open {
        slot: place.slot,
        source,
    })?;
    match place.slot {
        SegmentSlot::Init => Ok(plain),
        SegmentSlot::Media(n) => {
            let key = HlsKey::derive(
                content,
                &KeyContext {
                    album: place.album,
                    track: place.track,
                    rendition: place.rendition,
                },
            )?;
            Ok(crypto::encrypt_segment(
                &key,
                &crypto::segment_iv(place.generation, n),
                plain,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_full_renditions_else_the_preview() {
        assert_eq!(
            variant_renditions(&["high", "lossless", "preview", "standard"]),
            ["high", "lossless", "standard"]
        );
        assert_eq!(variant_renditions(&["preview"]), ["preview"]);
        assert!(variant_renditions(&[]).is_empty());
    }

    #[test]
    fn file_names_round_trip_and_are_canonical() {
        for f in [
            HlsFile::Init,
            HlsFile::Key,
            HlsFile::Media(1),
            HlsFile::Media(42),
            HlsFile::Media(12345),
        ] {
            assert_eq!(HlsFile::parse(&f.name()), Some(f));
        }
        assert_eq!(HlsFile::Media(7).name(), "0007.mp4");
        for bad in [
            "0000.mp4",
            "7.mp4",
            "00007.mp4",
            "0007.m4s",
            "+007.mp4",
            "init.m4s",
            "KEY",
            "",
        ] {
            assert_eq!(HlsFile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn builds_plain_init_and_encrypted_media() {
        let content = ContentKey::generate().unwrap();
        let place = |slot| SegmentPlace {
            album: "a",
            track: 1,
            rendition: "lossless",
            generation: "g1",
            slot,
        };
        let seal_at = |slot, pt: &[u8]| {
            let ctx = SealContext {
                album: "a",
                track: 1,
                rendition: "lossless",
                slot,
            };
            seal::seal(&content, &ctx, pt.to_vec()).unwrap()
        };
        let init = build_segment(
            &content,
            &place(SegmentSlot::Init),
            seal_at(SegmentSlot::Init, b"ftyp..moov.."),
        )
        .unwrap();
        assert_eq!(init, b"ftyp..moov..");

        let sealed = seal_at(SegmentSlot::Media(2), b"moof..mdat..");
        let hls = build_segment(&content, &place(SegmentSlot::Media(2)), sealed.clone()).unwrap();
        let key = HlsKey::derive(
            &content,
            &KeyContext {
                album: "a",
                track: 1,
                rendition: "lossless",
            },
        )
        .unwrap();
        let iv = crypto::segment_iv("g1", 2);
        assert_eq!(
            crypto::decrypt_segment(&key, &iv, hls.clone()).unwrap(),
            b"moof..mdat.."
        );
        // Deterministic, so cacheable and validated by the sealed bytes' hash.
        assert_eq!(
            build_segment(&content, &place(SegmentSlot::Media(2)), sealed.clone()).unwrap(),
            hls
        );
        // A segment served in another place does not open.
        assert!(matches!(
            build_segment(&content, &place(SegmentSlot::Media(3)), sealed),
            Err(HlsError::Open { .. })
        ));
    }
}
