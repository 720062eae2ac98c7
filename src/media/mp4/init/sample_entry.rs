//! The codec's sample entry in `stsd`: `fLaC` + `dfLa`, `Opus` + `dOps`, or `mp4a` + `esds`.

use super::super::writer::{BoxWriter, FourCc};
use super::super::{CodecConfig, InitSpec, Mp4Error};

/// Frozen: `esds` objectTypeIndication 0x40 = Audio ISO/IEC 14496-3 (the value RFC 6381's
/// "mp4a.40" names). Changing this changes stored data.
const OTI_MPEG4_AUDIO: u8 = 0x40;
/// Frozen: `esds` streamType 0x05 (AudioStream) << 2, upStream 0, reserved 1. Changing
/// this changes stored data.
const STREAM_TYPE_AUDIO: u8 = (0x05 << 2) | 1;
/// Frozen: SLConfigDescriptor predefined = 2, the value ISO/IEC 14496-14 requires in MP4
/// files. Changing this changes stored data.
const SL_PREDEFINED_MP4: u8 = 0x02;

/// The 16-bit integer part of the AudioSampleEntry `samplerate` (16.16) for FLAC.
///
/// FLAC-in-ISOBMFF 3.3.1: the true rate when it fits, else "the greatest expressible regular
/// division of that rate" (48000 for 96 and 192 kHz, 44100 for 88.2/176.4 kHz), else 65535.
/// The real rate is in STREAMINFO and in the mdhd timescale. A version-1 AudioSampleEntry
/// with an `srat` box is deliberately not used: the FLAC spec does not ask for it and
/// ffmpeg's mov demuxer reads a non-zero entry version as a QuickTime sound description.
pub(super) fn flac_entry_rate(rate: u32) -> u16 {
    let mut r = rate;
    while r > u32::from(u16::MAX) && r.is_multiple_of(2) {
        r /= 2;
    }
    u16::try_from(r).unwrap_or(u16::MAX)
}

pub(super) fn write_sample_entry(w: &mut BoxWriter, spec: &InitSpec) -> Result<(), Mp4Error> {
    let (fourcc, samplesize, rate): (FourCc, u16, u16) = match spec.codec {
        CodecConfig::Flac { .. } => (
            *b"fLaC",
            spec.bits_per_sample,
            flac_entry_rate(spec.sample_rate),
        ),
        // Opus-in-ISOBMFF 4.3.1: samplesize 16, samplerate 48000.
        CodecConfig::Opus { .. } => (*b"Opus", 16, 48_000),
        // ISO/IEC 14496-14: samplesize 16, samplerate the coded rate (validated to fit).
        CodecConfig::Aac { .. } => (*b"mp4a", 16, spec.sample_rate as u16),
    };
    w.plain(fourcc, |w| {
        // SampleEntry
        w.zeros(6); // reserved
        w.u16(1); // data_reference_index
        // AudioSampleEntry (version 0)
        w.zeros(8); // reserved (entry_version 0 + reserved)
        w.u16(spec.channels);
        w.u16(samplesize);
        w.u16(0); // pre_defined
        w.u16(0); // reserved
        w.u32(u32::from(rate) << 16); // 16.16 fixed point
        match &spec.codec {
            CodecConfig::Flac { metadata_blocks } => write_dfla(w, metadata_blocks),
            CodecConfig::Opus {
                pre_skip,
                input_sample_rate,
                output_gain,
            } => w.plain(*b"dOps", |w| {
                // Big-endian, unlike the Ogg OpusHead.
                w.u8(0); // Version
                w.u8(spec.channels as u8); // OutputChannelCount (1 or 2, validated)
                w.u16(*pre_skip);
                w.u32(*input_sample_rate);
                w.i16(*output_gain);
                w.u8(0); // ChannelMappingFamily 0: mono/stereo, no mapping table
                Ok(())
            }),
            CodecConfig::Aac {
                audio_specific_config,
                buffer_size,
                max_bitrate,
                avg_bitrate,
            } => write_esds(
                w,
                audio_specific_config,
                *buffer_size,
                *max_bitrate,
                *avg_bitrate,
            ),
        }
    })
}

/// `esds`: an ES_Descriptor holding the DecoderConfigDescriptor (with the
/// AudioSpecificConfig as DecoderSpecificInfo) and the SLConfigDescriptor, as ISO/IEC
/// 14496-14 3.1.2 and 14496-1 7.2.6 lay them out.
///
/// Each descriptor's length is written in the one-byte form: the validated ASC (at most 64
/// bytes) keeps the outer ES_Descriptor at most 87 bytes, under the 128 that needs more.
fn write_esds(
    w: &mut BoxWriter,
    asc: &[u8],
    buffer_size: u32,
    max_bitrate: u32,
    avg_bitrate: u32,
) -> Result<(), Mp4Error> {
    const ES_DESCR_TAG: u8 = 0x03;
    const DECODER_CONFIG_DESCR_TAG: u8 = 0x04;
    const DEC_SPECIFIC_INFO_TAG: u8 = 0x05;
    const SL_CONFIG_DESCR_TAG: u8 = 0x06;
    // ASC length fits a byte: validated to at most ASC_MAX_LEN.
    let dsi_len = asc.len() as u8;
    let dcd_len = 13 + 2 + dsi_len;
    let es_len = 3 + 2 + dcd_len + 2 + 1;
    w.full(*b"esds", 0, 0, |w| {
        w.u8(ES_DESCR_TAG);
        w.u8(es_len);
        w.u16(0); // ES_ID: 0 in MP4 files (the track ID identifies the stream)
        w.u8(0); // no streamDependence, no URL, no OCR stream; streamPriority 0
        w.u8(DECODER_CONFIG_DESCR_TAG);
        w.u8(dcd_len);
        w.u8(OTI_MPEG4_AUDIO);
        w.u8(STREAM_TYPE_AUDIO);
        w.u24(buffer_size.min(0x00FF_FFFF));
        w.u32(max_bitrate);
        w.u32(avg_bitrate);
        w.u8(DEC_SPECIFIC_INFO_TAG);
        w.u8(dsi_len);
        w.bytes(asc);
        w.u8(SL_CONFIG_DESCR_TAG);
        w.u8(1);
        w.u8(SL_PREDEFINED_MP4);
        Ok(())
    })
}

fn write_dfla(w: &mut BoxWriter, blocks: &[(u8, Vec<u8>)]) -> Result<(), Mp4Error> {
    w.full(*b"dfLa", 0, 0, |w| {
        for (i, (block_type, body)) in blocks.iter().enumerate() {
            let last = if i + 1 == blocks.len() { 0x80 } else { 0 };
            w.u8(last | (block_type & 0x7F));
            // Length validated to fit 24 bits.
            w.u24(body.len() as u32);
            w.bytes(body);
        }
        Ok(())
    })
}
