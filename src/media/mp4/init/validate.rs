//! What an [`InitSpec`] must hold before a byte is written: a rate and language, an edit
//! inside the media, and per codec the channel counts, rates and configuration its sample
//! entry can state.

use super::super::{CodecConfig, InitSpec, Mp4Error};

/// STREAMINFO body length.
const STREAMINFO_LEN: usize = 34;
/// Largest FLAC metadata block body (24-bit length field).
const MAX_METADATA_BLOCK_LEN: usize = 0x00FF_FFFF;
/// Opus timestamps are always in 48 kHz units.
const OPUS_RATE: u32 = 48_000;
/// MPEG-4 audio object type of AAC Low Complexity.
const AOT_AAC_LC: u8 = 2;
/// Longest AudioSpecificConfig accepted (FDK's configuration buffer is 64 bytes).
const ASC_MAX_LEN: usize = 64;

pub(super) fn validate(spec: &InitSpec) -> Result<(), Mp4Error> {
    if spec.sample_rate == 0 {
        return Err(Mp4Error::ZeroSampleRate);
    }
    if !spec.language.iter().all(u8::is_ascii_lowercase) {
        return Err(Mp4Error::InvalidLanguage);
    }
    if let Some(e) = &spec.edit {
        let end = e.media_time.checked_add(e.duration);
        if end.is_none_or(|end| end > spec.media_duration) {
            return Err(Mp4Error::EditOutOfRange {
                media_time: e.media_time,
                duration: e.duration,
                media_duration: spec.media_duration,
            });
        }
        if i64::try_from(e.media_time).is_err() {
            return Err(Mp4Error::TooLarge {
                what: "edit media_time beyond i64",
            });
        }
    }
    match &spec.codec {
        CodecConfig::Flac { metadata_blocks } => {
            if !(1..=8).contains(&spec.channels) {
                return Err(Mp4Error::UnsupportedChannels {
                    codec: "FLAC",
                    channels: spec.channels,
                });
            }
            if !(4..=32).contains(&spec.bits_per_sample) {
                return Err(Mp4Error::InvalidBitsPerSample(spec.bits_per_sample));
            }
            let (first_type, first_body) =
                metadata_blocks.first().ok_or(Mp4Error::EmptyFlacMetadata)?;
            if *first_type != 0 || first_body.len() != STREAMINFO_LEN {
                return Err(Mp4Error::BadStreamInfo {
                    block_type: *first_type,
                    len: first_body.len(),
                });
            }
            for (index, (block_type, body)) in metadata_blocks.iter().enumerate().skip(1) {
                // Type 127 is forbidden by FLAC; a second STREAMINFO is forbidden too.
                if *block_type == 0 || *block_type >= 127 || body.len() > MAX_METADATA_BLOCK_LEN {
                    return Err(Mp4Error::BadMetadataBlock {
                        index,
                        block_type: *block_type,
                        len: body.len(),
                    });
                }
            }
            check_streaminfo(first_body, spec)
        }
        CodecConfig::Opus { .. } => {
            if spec.sample_rate != OPUS_RATE {
                return Err(Mp4Error::OpusSampleRate(spec.sample_rate));
            }
            if !(1..=2).contains(&spec.channels) {
                return Err(Mp4Error::UnsupportedChannels {
                    codec: "Opus (mapping family 0)",
                    channels: spec.channels,
                });
            }
            Ok(())
        }
        CodecConfig::Aac {
            audio_specific_config,
            ..
        } => {
            // The two rates Apple's HLS rules name; both also fit the 16-bit sample entry rate.
            if spec.sample_rate != 44_100 && spec.sample_rate != 48_000 {
                return Err(Mp4Error::AacSampleRate(spec.sample_rate));
            }
            if !(1..=2).contains(&spec.channels) {
                return Err(Mp4Error::UnsupportedChannels {
                    codec: "AAC",
                    channels: spec.channels,
                });
            }
            // The first five bits are the audio object type; "mp4a.40.2" promises 2 (LC).
            // 64 bytes is FDK's own limit and keeps every descriptor length in one byte.
            let asc = audio_specific_config;
            if !(2..=ASC_MAX_LEN).contains(&asc.len()) || asc[0] >> 3 != AOT_AAC_LC {
                return Err(Mp4Error::BadAudioSpecificConfig(asc.clone()));
            }
            Ok(())
        }
    }
}

/// The FLAC spec requires the sample entry, STREAMINFO and frame headers to agree
/// (Chromium refuses a samplesize that differs from STREAMINFO), so a disagreement is a
/// caller bug worth failing on.
fn check_streaminfo(si: &[u8], spec: &InitSpec) -> Result<(), Mp4Error> {
    let rate = (u32::from(si[10]) << 12) | (u32::from(si[11]) << 4) | (u32::from(si[12]) >> 4);
    let channels = u32::from((si[12] >> 1) & 0x07) + 1;
    let bits = ((u32::from(si[12] & 0x01) << 4) | (u32::from(si[13]) >> 4)) + 1;
    for (field, streaminfo, spec) in [
        ("sample rate", rate, spec.sample_rate),
        ("channels", channels, u32::from(spec.channels)),
        ("bits per sample", bits, u32::from(spec.bits_per_sample)),
    ] {
        if streaminfo != spec {
            return Err(Mp4Error::StreamInfoMismatch {
                field,
                streaminfo,
                spec,
            });
        }
    }
    Ok(())
}
