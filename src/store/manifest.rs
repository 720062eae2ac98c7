//! The manifest of one packaged rendition: everything a server or client needs to know
//! about its segments, without opening them.

use serde::{Deserialize, Serialize};

/// Version of the manifest format; bump when a field changes meaning.
pub const MANIFEST_FORMAT: u32 = 1;

/// One stored segment (init or media).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// 0 for the init segment, 1.. for media segments.
    pub index: u32,
    /// File name inside the generation folder.
    pub file: String,
    /// Decode time of the first sample, in `timescale` units (0 for init).
    pub start: u64,
    /// Duration in `timescale` units (0 for init).
    pub duration: u64,
    /// Size of the sealed file in bytes.
    pub bytes: u64,
    /// SHA-256 of the sealed file, lowercase hex.
    pub sha256: String,
}

impl SegmentRecord {
    /// [`SegmentRecord::sha256`] as bytes; `None` when it is not 64 hex digits.
    pub fn digest(&self) -> Option<[u8; 32]> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut digest).ok()?;
        Some(digest)
    }
}

/// The preview window a clip was cut from, in seconds of the source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreviewWindowRecord {
    /// Start of the clip in the track.
    pub start_seconds: f64,
    /// Length of the clip.
    pub seconds: f64,
}

/// A packaged rendition of one track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionManifest {
    /// [`MANIFEST_FORMAT`] at the time of writing.
    pub format: u32,
    /// Album id.
    pub album: String,
    /// Track number, from 1.
    pub track: u32,
    /// Rendition name (`lossless`, `high`, `standard`, `preview`).
    pub rendition: String,
    /// Folder of this packaging run; new packaging means new segment URLs.
    pub generation: String,
    /// Codec name: `flac` or `opus`.
    pub codec: String,
    /// Codec string for HLS `CODECS` and MSE `isTypeSupported`.
    pub codec_string: String,
    /// Coded sample rate in Hz; also the timescale of `start` and `duration`.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Bits per decoded sample (FLAC: the coded depth; Opus and AAC: 16, what their sample
    /// entries state; clients see it for lossless only, see [`Self::decoded_bits_per_sample`]).
    pub bits_per_sample: u16,
    /// Samples per channel a player presents (edit list applied).
    pub duration_samples: u64,
    /// Samples a player skips at the start (Opus pre-skip; 0 for FLAC).
    pub skip_samples: u64,
    /// Average bitrate of the coded audio in bits per second.
    pub bitrate: u32,
    /// Content key id that seals every segment, 32 hex digits.
    pub key_id: String,
    /// For `lossless`: whether it decodes to the source's integers exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_exact: Option<bool>,
    /// For `preview`: where the clip comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewWindowRecord>,
    /// The init segment.
    pub init: SegmentRecord,
    /// The media segments, in order.
    pub segments: Vec<SegmentRecord>,
    /// Earlier generations (re-packaged or re-sealed since), still served to players that
    /// listed them until their time is up; never shown in the public manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retiring: Vec<RetiringGeneration>,
}

/// A generation replaced by a newer one, kept on disk and served until `serve_until_unix`
/// (the longest license issued before the switch has expired by then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiringGeneration {
    /// Its folder name, as in its segment URLs.
    pub generation: String,
    /// The content key that sealed it, 32 hex digits.
    pub key_id: String,
    /// Served until then; deleted after.
    pub serve_until_unix: u64,
    /// Its init segment.
    pub init: SegmentRecord,
    /// Its media segments.
    pub segments: Vec<SegmentRecord>,
}

impl RetiringGeneration {
    /// `manifest`'s current generation, to be served until `serve_until_unix`.
    pub fn of(manifest: &RenditionManifest, serve_until_unix: u64) -> Self {
        RetiringGeneration {
            generation: manifest.generation.clone(),
            key_id: manifest.key_id.clone(),
            serve_until_unix,
            init: manifest.init.clone(),
            segments: manifest.segments.clone(),
        }
    }
}

impl RenditionManifest {
    /// This manifest as it reads for `generation`: itself for the current one; for a
    /// retiring one still served at `now`, the same rendition with that generation's key and
    /// segments. `None` for any other generation.
    pub fn for_generation(&self, generation: &str, now: u64) -> Option<RenditionManifest> {
        if self.generation == generation {
            return Some(self.clone());
        }
        let old = self
            .retiring
            .iter()
            .find(|r| r.generation == generation && r.serve_until_unix > now)?;
        let mut view = self.clone();
        view.generation = old.generation.clone();
        view.key_id = old.key_id.clone();
        view.init = old.init.clone();
        view.segments = old.segments.clone();
        view.retiring.clear();
        Some(view)
    }

    /// Bits per decoded sample as clients are told it: only a lossless codec fixes the depth
    /// a decoder outputs (an Opus or AAC decoder's depth is the player's choice), so `None`
    /// for lossy renditions. The stored field stays, for the init segment's sample entry.
    pub fn decoded_bits_per_sample(&self) -> Option<u16> {
        (self.codec == "flac").then_some(self.bits_per_sample)
    }

    /// Presented duration in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.duration_samples as f64 / f64::from(self.sample_rate.max(1))
    }

    /// Total sealed bytes of init and media segments.
    pub fn total_bytes(&self) -> u64 {
        self.init.bytes + self.segments.iter().map(|s| s.bytes).sum::<u64>()
    }
}

/// What was packaged for one track, written last: its presence with a matching
/// fingerprint is what lets a re-run skip the track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    /// [`MANIFEST_FORMAT`] at the time of writing.
    pub format: u32,
    /// Album id.
    pub album: String,
    /// Track number, from 1.
    pub track: u32,
    /// Source file name inside the album folder.
    pub source_file: String,
    /// Hash over the source bytes and every setting that shapes the output.
    pub fingerprint: String,
    /// Title (album.toml, then tags, then file name).
    pub title: String,
    /// Artist from the tags, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
    /// Source codec as decoded.
    pub source_codec: String,
    /// Source sample rate in Hz.
    pub source_sample_rate: u32,
    /// Source length in samples per channel.
    pub source_samples: u64,
    /// Source channel count.
    pub channels: u16,
    /// Rendition names packaged for this track.
    pub renditions: Vec<String>,
    /// Loudness of the source (BS.1770-4) and its ReplayGain 2.0 gain; absent in records
    /// written before encore measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness: Option<crate::media::loudness::Loudness>,
    /// The track's lyrics, when it has some (`lyrics.json` beside this record holds them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyrics: Option<crate::media::lyrics::Summary>,
}

/// The album as packaged: catalog facts for the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlbumRecord {
    /// [`MANIFEST_FORMAT`] at the time of writing.
    pub format: u32,
    /// Album id.
    pub album: String,
    /// Title.
    pub title: String,
    /// Artist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
    /// Release date (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// Price in minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<u64>,
    /// ISO 4217 currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Cover file name inside the album's store folder, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<String>,
    /// Cover MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_type: Option<String>,
    /// Track numbers packaged successfully.
    pub tracks: Vec<u32>,
    /// When sales open (album.toml `on_sale_at`), Unix seconds; none: on sale now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_sale_at: Option<i64>,
    /// Buyer-only extras packaged successfully, in `album.toml` order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<ExtraRecord>,
    /// The album's loudness, gated over all its tracks together, and its album gain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness: Option<crate::media::loudness::Loudness>,
}

/// One sealed buyer-only extra (`src/store/extras.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraRecord {
    /// Id, unique in the album (the source file's stem).
    pub id: String,
    /// Title shown to fans.
    pub title: String,
    /// MIME type.
    #[serde(rename = "type")]
    pub mime: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the source file, lowercase hex: an unchanged source is not sealed again.
    pub source_sha256: String,
    /// The sealed file's name inside `<album>/extras/`.
    pub file: String,
    /// SHA-256 of the sealed file, lowercase hex.
    pub sha256: String,
}
