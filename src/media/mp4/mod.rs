//! Hand-written fragmented-MP4 (CMAF-style, ISO/IEC 14496-12) writer for one audio track.
//!
//! Three codecs are supported:
//! - FLAC, sample entry `fLaC` + `dfLa` ("Encapsulation of FLAC in ISO Base Media File Format").
//! - Opus, sample entry `Opus` + `dOps` ("Encapsulation of Opus in ISO Base Media File Format").
//! - AAC-LC, sample entry `mp4a` + `esds` (ISO/IEC 14496-14 and 14496-1), the encoder delay
//!   in the edit list as ISO/IEC 14496-12 and CMAF describe for AAC.
//!
//! [`init_segment`] builds `ftyp` + `moov`; [`media_segment`] builds one `styp` + `moof` +
//! `mdat`. Concatenating the init segment and the media segments in order gives a plain
//! fragmented MP4 file that ffmpeg plays; each piece on its own is what an MSE / DASH / HLS
//! client fetches.
//!
//! FROZEN FORMAT: every byte these functions emit may be sealed into the store and served
//! later next to segments written by an older build. The constants marked "frozen" below
//! (brands, handler name, sample flags, box layout choices) must not change without a
//! store format version bump: changing them changes stored data.

mod fragment;
mod init;
#[cfg(test)]
pub(crate) mod testutil;
mod writer;

pub use fragment::media_segment;
pub use init::init_segment;

/// What the init segment describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSpec {
    pub codec: CodecConfig,
    /// Media timescale = the audio sample rate (e.g. 44100, 48000, 96000, 192000). Also used
    /// as the movie timescale. Must be 48000 for Opus (Opus timestamps are always 48 kHz),
    /// 44100 or 48000 for AAC.
    pub sample_rate: u32,
    pub channels: u16,
    /// Bits per sample of the decoded audio (FLAC: 16/24 etc, must equal STREAMINFO; Opus:
    /// ignored, the Opus sample entry always says 16 as its spec requires).
    pub bits_per_sample: u16,
    /// Presentation edit: skip `media_time` samples at the start and present `duration`
    /// samples (both in `sample_rate` units). When `Some`, an `edts/elst` with one entry is
    /// written (version 1 only if a value needs 64 bits) and mvhd/tkhd durations are
    /// `duration`. When `None`, mvhd/tkhd durations are `media_duration`.
    pub edit: Option<Edit>,
    /// Sum of all sample durations in the track (media timescale); written to `mvex/mehd`.
    /// With an edit, `media_time + duration` must not exceed it.
    pub media_duration: u64,
    /// ISO-639-2/T language, lowercase a-z, e.g. `*b"und"`.
    pub language: [u8; 3],
}

/// A single presentation edit (see [`InitSpec::edit`]).
///
/// Deliberately not `Copy`: callers already `.clone()` it, which clippy would flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub media_time: u64,
    pub duration: u64,
}

/// Codec-specific configuration of the single audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecConfig {
    /// `metadata_blocks`: the FLAC metadata blocks to place in dfLa, each as
    /// (block_type, body bytes). The first must be STREAMINFO (type 0, 34 bytes). The writer
    /// sets the last-metadata-block flag on the final one itself.
    Flac { metadata_blocks: Vec<(u8, Vec<u8>)> },
    /// dOps fields (ChannelMappingFamily 0 only: mono or stereo).
    Opus {
        pre_skip: u16,
        input_sample_rate: u32,
        output_gain: i16,
    },
    /// esds fields for AAC-LC (mono or stereo): the encoder's AudioSpecificConfig and the
    /// DecoderConfigDescriptor's buffer size (bytes) and bitrates (bit/s).
    Aac {
        audio_specific_config: Vec<u8>,
        buffer_size: u32,
        max_bitrate: u32,
        avg_bitrate: u32,
    },
}

/// One sample (= one codec frame) in a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    pub size: u32,
    pub duration: u32,
}

/// The codec's short name for the manifest and catalog: "flac", "opus" or "aac".
pub fn codec_name(codec: &CodecConfig) -> &'static str {
    match codec {
        CodecConfig::Flac { .. } => "flac",
        CodecConfig::Opus { .. } => "opus",
        CodecConfig::Aac { .. } => "aac",
    }
}

/// RFC 6381 codec string for HLS `CODECS` and MSE: "flac", "opus" or "mp4a.40.2".
///
/// AAC is always "mp4a.40.2" (MPEG-4 audio, object type 2 = AAC-LC): the init segment
/// refuses any other AudioSpecificConfig, so the string cannot disagree with the stream.
pub fn codec_string(codec: &CodecConfig) -> &'static str {
    match codec {
        CodecConfig::Flac { .. } => "flac",
        CodecConfig::Opus { .. } => "opus",
        CodecConfig::Aac { .. } => "mp4a.40.2",
    }
}

/// Why a segment could not be built. Every variant is a caller bug or an input the
/// formats cannot represent; none is transient.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mp4Error {
    #[error("sample rate must be non-zero")]
    ZeroSampleRate,
    #[error("Opus tracks must use a 48000 Hz timescale, got {0}")]
    OpusSampleRate(u32),
    #[error("AAC tracks are written at 44100 or 48000 Hz, got {0}")]
    AacSampleRate(u32),
    #[error("AudioSpecificConfig {0:02x?} is not AAC-LC (object type 2) of 2 to 64 bytes")]
    BadAudioSpecificConfig(Vec<u8>),
    #[error("{codec} track cannot carry {channels} channels")]
    UnsupportedChannels { codec: &'static str, channels: u16 },
    #[error("FLAC bits per sample must be 4..=32, got {0}")]
    InvalidBitsPerSample(u16),
    #[error("FLAC dfLa needs at least the STREAMINFO metadata block")]
    EmptyFlacMetadata,
    #[error(
        "first FLAC metadata block must be a 34-byte STREAMINFO (type 0), got type {block_type} with {len} bytes"
    )]
    BadStreamInfo { block_type: u8, len: usize },
    #[error("FLAC metadata block {index} is invalid (type {block_type}, {len} bytes)")]
    BadMetadataBlock {
        index: usize,
        block_type: u8,
        len: usize,
    },
    #[error("STREAMINFO {field} is {streaminfo} but the init spec says {spec}")]
    StreamInfoMismatch {
        field: &'static str,
        streaminfo: u32,
        spec: u32,
    },
    #[error("language must be three lowercase ASCII letters (ISO-639-2/T)")]
    InvalidLanguage,
    #[error(
        "edit (media_time {media_time} + duration {duration}) exceeds media duration {media_duration}"
    )]
    EditOutOfRange {
        media_time: u64,
        duration: u64,
        media_duration: u64,
    },
    #[error("a media segment needs at least one sample")]
    NoSamples,
    #[error("payload is {actual} bytes but the sample sizes add up to {expected}")]
    PayloadSizeMismatch { expected: u64, actual: u64 },
    #[error("too large: {what}")]
    TooLarge { what: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_strings() {
        assert_eq!(
            codec_string(&CodecConfig::Flac {
                metadata_blocks: vec![]
            }),
            "flac"
        );
        assert_eq!(
            codec_string(&CodecConfig::Opus {
                pre_skip: 312,
                input_sample_rate: 48000,
                output_gain: 0
            }),
            "opus"
        );
        let aac = CodecConfig::Aac {
            audio_specific_config: vec![0x11, 0x90],
            buffer_size: 768,
            max_bitrate: 256_000,
            avg_bitrate: 256_000,
        };
        assert_eq!(codec_string(&aac), "mp4a.40.2");
        assert_eq!(codec_name(&aac), "aac");
    }
}
