//! The init segment: `ftyp` + `moov`.

use super::writer::{BoxWriter, FourCc};
use super::{CodecConfig, Edit, InitSpec, Mp4Error};

/// Frozen: `ftyp` major brand. `iso6` is the ISO-BMFF brand that covers everything used
/// here (movie fragments, `tfdt`, `default-base-is-moof`, `styp`). Changing this changes
/// stored data.
const FTYP_MAJOR: FourCc = *b"iso6";
/// Frozen: `ftyp` compatible brands. `iso6` repeats the major brand (readers only look at
/// this list); `isom` is the minimum the FLAC-in-ISOBMFF spec asks for; `cmfc` declares a
/// CMAF track structure (one track, fragmented, tfdt, moof-relative offsets, single
/// sample entry) which is what MSE/HLS/DASH players expect; `dash` marks a DASH-usable init.
/// Changing this changes stored data.
const FTYP_COMPATIBLE: [FourCc; 4] = [*b"iso6", *b"isom", *b"cmfc", *b"dash"];

/// Frozen: the only track. Changing this changes stored data.
pub(crate) const TRACK_ID: u32 = 1;
/// Frozen: `trex` default_sample_flags. 0 = sample_is_non_sync_sample 0, i.e. every audio
/// sample is a sync sample (FLAC spec 3.3.6.1; Opus and AAC access units are all sync
/// samples too, their decoder pre-roll being the player's business).
/// Changing this changes stored data.
const DEFAULT_SAMPLE_FLAGS: u32 = 0;
/// Frozen: the `hdlr` name (NUL-terminated). Changing this changes stored data.
const HANDLER_NAME: &[u8] = b"SoundHandler\0";

/// 16.16 identity matrix for mvhd/tkhd.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

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
/// Frozen: `esds` objectTypeIndication 0x40 = Audio ISO/IEC 14496-3 (the value RFC 6381's
/// "mp4a.40" names). Changing this changes stored data.
const OTI_MPEG4_AUDIO: u8 = 0x40;
/// Frozen: `esds` streamType 0x05 (AudioStream) << 2, upStream 0, reserved 1. Changing
/// this changes stored data.
const STREAM_TYPE_AUDIO: u8 = (0x05 << 2) | 1;
/// Frozen: SLConfigDescriptor predefined = 2, the value ISO/IEC 14496-14 requires in MP4
/// files. Changing this changes stored data.
const SL_PREDEFINED_MP4: u8 = 0x02;

/// Builds the init segment: ftyp + moov (mvhd, trak{tkhd, [edts/elst], mdia{mdhd,
/// hdlr 'soun', minf{smhd, dinf/dref(url self-contained), stbl{stsd, empty stts, stsc, stsz,
/// stco}}}}, mvex{mehd, trex}).
pub fn init_segment(spec: &InitSpec) -> Result<Vec<u8>, Mp4Error> {
    validate(spec)?;
    let presentation_duration = spec
        .edit
        .as_ref()
        .map_or(spec.media_duration, |e| e.duration);

    let mut w = BoxWriter::new();
    w.plain(*b"ftyp", |w| {
        w.bytes(&FTYP_MAJOR);
        w.u32(0); // minor_version
        for brand in FTYP_COMPATIBLE {
            w.bytes(&brand);
        }
        Ok(())
    })?;
    w.plain(*b"moov", |w| {
        write_mvhd(w, spec.sample_rate, presentation_duration)?;
        w.plain(*b"trak", |w| {
            write_tkhd(w, presentation_duration)?;
            if let Some(edit) = &spec.edit {
                write_edts(w, edit)?;
            }
            w.plain(*b"mdia", |w| {
                write_mdhd(w, spec)?;
                w.full(*b"hdlr", 0, 0, |w| {
                    w.u32(0); // pre_defined
                    w.bytes(b"soun");
                    w.zeros(12); // reserved
                    w.bytes(HANDLER_NAME);
                    Ok(())
                })?;
                w.plain(*b"minf", |w| {
                    w.full(*b"smhd", 0, 0, |w| {
                        w.i16(0); // balance
                        w.u16(0); // reserved
                        Ok(())
                    })?;
                    w.plain(*b"dinf", |w| {
                        w.full(*b"dref", 0, 0, |w| {
                            w.u32(1); // entry_count
                            // flags 1: media data is in the same file.
                            w.full(*b"url ", 0, 1, |_| Ok(()))
                        })
                    })?;
                    write_stbl(w, spec)
                })
            })
        })?;
        w.plain(*b"mvex", |w| {
            let (version, wide) = version_for(spec.media_duration);
            w.full(*b"mehd", version, 0, |w| {
                put_u32_or_u64(w, wide, spec.media_duration);
                Ok(())
            })?;
            w.full(*b"trex", 0, 0, |w| {
                w.u32(TRACK_ID);
                w.u32(1); // default_sample_description_index
                w.u32(0); // default_sample_duration (every trun carries durations)
                w.u32(0); // default_sample_size (every trun carries sizes)
                w.u32(DEFAULT_SAMPLE_FLAGS);
                Ok(())
            })
        })
    })?;
    Ok(w.into_bytes())
}

fn validate(spec: &InitSpec) -> Result<(), Mp4Error> {
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

/// Version 1 (64-bit fields) only when a value does not fit in 32 bits.
fn version_for(v: u64) -> (u8, bool) {
    if v > u64::from(u32::MAX) {
        (1, true)
    } else {
        (0, false)
    }
}

fn put_u32_or_u64(w: &mut BoxWriter, wide: bool, v: u64) {
    match u32::try_from(v) {
        Ok(narrow) if !wide => w.u32(narrow),
        _ => w.u64(v),
    }
}

fn write_mvhd(w: &mut BoxWriter, timescale: u32, duration: u64) -> Result<(), Mp4Error> {
    let (version, wide) = version_for(duration);
    w.full(*b"mvhd", version, 0, |w| {
        put_u32_or_u64(w, wide, 0); // creation_time (0: not stamped, keeps output deterministic)
        put_u32_or_u64(w, wide, 0); // modification_time
        w.u32(timescale);
        put_u32_or_u64(w, wide, duration);
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(2 + 8); // reserved
        for m in MATRIX {
            w.u32(m);
        }
        w.zeros(24); // pre_defined
        w.u32(TRACK_ID + 1); // next_track_ID
        Ok(())
    })
}

fn write_tkhd(w: &mut BoxWriter, duration: u64) -> Result<(), Mp4Error> {
    let (version, wide) = version_for(duration);
    // flags: track_enabled | track_in_movie
    w.full(*b"tkhd", version, 0x00_0003, |w| {
        put_u32_or_u64(w, wide, 0); // creation_time
        put_u32_or_u64(w, wide, 0); // modification_time
        w.u32(TRACK_ID);
        w.u32(0); // reserved
        put_u32_or_u64(w, wide, duration);
        w.zeros(8); // reserved
        w.i16(0); // layer
        w.i16(0); // alternate_group
        w.u16(0x0100); // volume 1.0 (audio)
        w.u16(0); // reserved
        for m in MATRIX {
            w.u32(m);
        }
        w.u32(0); // width
        w.u32(0); // height
        Ok(())
    })
}

fn write_edts(w: &mut BoxWriter, edit: &Edit) -> Result<(), Mp4Error> {
    // Version 0 holds segment_duration as u32 and media_time as i32 (-1 = empty edit).
    let narrow = u32::try_from(edit.duration)
        .ok()
        .zip(i32::try_from(edit.media_time).ok());
    w.plain(*b"edts", |w| {
        w.full(*b"elst", u8::from(narrow.is_none()), 0, |w| {
            w.u32(1); // entry_count
            match narrow {
                Some((duration, media_time)) => {
                    w.u32(duration);
                    w.i32(media_time);
                }
                None => {
                    w.u64(edit.duration);
                    // Checked in validate().
                    w.i64(i64::try_from(edit.media_time).unwrap_or(i64::MAX));
                }
            }
            w.i16(1); // media_rate_integer
            w.i16(0); // media_rate_fraction
            Ok(())
        })
    })
}

fn write_mdhd(w: &mut BoxWriter, spec: &InitSpec) -> Result<(), Mp4Error> {
    // Duration 0: every sample lives in the fragments; mehd carries the total.
    w.full(*b"mdhd", 0, 0, |w| {
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(spec.sample_rate); // timescale
        w.u32(0); // duration
        let [a, b, c] = spec.language.map(|ch| u16::from(ch - 0x60));
        w.u16((a << 10) | (b << 5) | c); // pad(1) + 3 x 5-bit letters
        w.u16(0); // pre_defined
        Ok(())
    })
}

fn write_stbl(w: &mut BoxWriter, spec: &InitSpec) -> Result<(), Mp4Error> {
    w.plain(*b"stbl", |w| {
        w.full(*b"stsd", 0, 0, |w| {
            w.u32(1); // entry_count
            write_sample_entry(w, spec)
        })?;
        // Empty sample tables: all samples are in movie fragments.
        w.full(*b"stts", 0, 0, |w| {
            w.u32(0);
            Ok(())
        })?;
        w.full(*b"stsc", 0, 0, |w| {
            w.u32(0);
            Ok(())
        })?;
        w.full(*b"stsz", 0, 0, |w| {
            w.u32(0); // sample_size
            w.u32(0); // sample_count
            Ok(())
        })?;
        w.full(*b"stco", 0, 0, |w| {
            w.u32(0);
            Ok(())
        })
    })
}

/// The 16-bit integer part of the AudioSampleEntry `samplerate` (16.16) for FLAC.
///
/// FLAC-in-ISOBMFF 3.3.1: the true rate when it fits, else "the greatest expressible regular
/// division of that rate" (48000 for 96 and 192 kHz, 44100 for 88.2/176.4 kHz), else 65535.
/// The real rate is in STREAMINFO and in the mdhd timescale. A version-1 AudioSampleEntry
/// with an `srat` box is deliberately not used: the FLAC spec does not ask for it and
/// ffmpeg's mov demuxer reads a non-zero entry version as a QuickTime sound description.
pub(crate) fn flac_entry_rate(rate: u32) -> u16 {
    let mut r = rate;
    while r > u32::from(u16::MAX) && r.is_multiple_of(2) {
        r /= 2;
    }
    u16::try_from(r).unwrap_or(u16::MAX)
}

fn write_sample_entry(w: &mut BoxWriter, spec: &InitSpec) -> Result<(), Mp4Error> {
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

#[cfg(test)]
mod tests {
    use super::super::testutil::{children, find, find_path};
    use super::*;

    /// A STREAMINFO body for the given format (block size 4096, no frame sizes, no MD5).
    pub(crate) fn streaminfo(rate: u32, channels: u8, bits: u8, total: u64) -> Vec<u8> {
        let mut s = vec![0u8; 34];
        s[0..2].copy_from_slice(&4096u16.to_be_bytes());
        s[2..4].copy_from_slice(&4096u16.to_be_bytes());
        let packed: u64 = (u64::from(rate) << 44)
            | (u64::from(channels - 1) << 41)
            | (u64::from(bits - 1) << 36)
            | total;
        s[10..18].copy_from_slice(&packed.to_be_bytes());
        s
    }

    fn flac_spec(rate: u32, bits: u16) -> InitSpec {
        InitSpec {
            codec: CodecConfig::Flac {
                metadata_blocks: vec![
                    (0, streaminfo(rate, 2, bits as u8, 1000)),
                    (4, b"vendor".to_vec()),
                ],
            },
            sample_rate: rate,
            channels: 2,
            bits_per_sample: bits,
            edit: None,
            media_duration: 12_288,
            language: *b"und",
        }
    }

    fn opus_spec() -> InitSpec {
        InitSpec {
            codec: CodecConfig::Opus {
                pre_skip: 312,
                input_sample_rate: 44_100,
                output_gain: -256,
            },
            sample_rate: 48_000,
            channels: 2,
            bits_per_sample: 16,
            edit: Some(Edit {
                media_time: 312,
                duration: 4000,
            }),
            media_duration: 4800,
            language: *b"eng",
        }
    }

    #[test]
    fn flac_init_layout() {
        let init = init_segment(&flac_spec(44_100, 16)).unwrap();
        let top = children(&init);
        let names: Vec<_> = top.iter().map(|(t, _)| *t).collect();
        assert_eq!(names, [*b"ftyp", *b"moov"]);
        // Top-level boxes tile the whole buffer.
        let total: usize = top.iter().map(|(_, b)| b.len() + 8).sum();
        assert_eq!(total, init.len());
        assert_eq!(top[0].1, b"iso6\0\0\0\0iso6isomcmfcdash");

        let moov = find(&init, *b"moov").unwrap();
        let moov_names: Vec<_> = children(moov).iter().map(|(t, _)| *t).collect();
        assert_eq!(moov_names, [*b"mvhd", *b"trak", *b"mvex"]);
        let trak = find(moov, *b"trak").unwrap();
        let trak_names: Vec<_> = children(trak).iter().map(|(t, _)| *t).collect();
        assert_eq!(trak_names, [*b"tkhd", *b"mdia"], "no edts without an edit");

        let mvhd = find(moov, *b"mvhd").unwrap();
        assert_eq!(mvhd.len(), 100); // v0 mvhd body incl. version/flags
        assert_eq!(&mvhd[12..16], &44_100u32.to_be_bytes()); // timescale
        assert_eq!(&mvhd[16..20], &12_288u32.to_be_bytes()); // duration = media_duration
        assert_eq!(&mvhd[96..100], &2u32.to_be_bytes()); // next_track_ID

        let tkhd = find(trak, *b"tkhd").unwrap();
        assert_eq!(tkhd.len(), 84);
        assert_eq!(&tkhd[0..4], &[0, 0, 0, 3]);
        assert_eq!(&tkhd[12..16], &1u32.to_be_bytes()); // track_ID
        assert_eq!(&tkhd[36..38], &0x0100u16.to_be_bytes()); // volume

        let mdhd = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"mdhd"]).unwrap();
        assert_eq!(&mdhd[12..16], &44_100u32.to_be_bytes());
        // "und" = 0x55C4
        assert_eq!(&mdhd[20..22], &[0x55, 0xC4]);

        let hdlr = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"hdlr"]).unwrap();
        assert_eq!(&hdlr[8..12], b"soun");

        let url = find_path(
            &init,
            &[
                *b"moov", *b"trak", *b"mdia", *b"minf", *b"dinf", *b"dref", *b"url ",
            ],
        );
        assert_eq!(url.unwrap(), &[0, 0, 0, 1]);

        let stbl = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"minf", *b"stbl"]).unwrap();
        let stbl_names: Vec<_> = children(stbl).iter().map(|(t, _)| *t).collect();
        assert_eq!(
            stbl_names,
            [*b"stsd", *b"stts", *b"stsc", *b"stsz", *b"stco"]
        );
        assert_eq!(find(stbl, *b"stsz").unwrap(), &[0u8; 12]);

        let stsd = find(stbl, *b"stsd").unwrap();
        assert_eq!(&stsd[4..8], &1u32.to_be_bytes());
        let entry = find(&stsd[8..], *b"fLaC").unwrap();
        assert_eq!(&entry[6..8], &1u16.to_be_bytes()); // data_reference_index
        assert_eq!(&entry[16..18], &2u16.to_be_bytes()); // channelcount
        assert_eq!(&entry[18..20], &16u16.to_be_bytes()); // samplesize
        assert_eq!(&entry[24..28], &(44_100u32 << 16).to_be_bytes());
        let dfla = find(&entry[28..], *b"dfLa").unwrap();
        assert_eq!(&dfla[0..4], &[0, 0, 0, 0]); // version/flags
        assert_eq!(&dfla[4..8], &[0x00, 0, 0, 34]); // STREAMINFO, not last
        assert_eq!(&dfla[42..46], &[0x84, 0, 0, 6]); // VORBIS_COMMENT, last
        assert_eq!(&dfla[46..], b"vendor");

        let mvex = find(moov, *b"mvex").unwrap();
        let mehd = find(mvex, *b"mehd").unwrap();
        assert_eq!(mehd, &[0, 0, 0, 0, 0, 0, 0x30, 0x00]);
        let trex = find(mvex, *b"trex").unwrap();
        assert_eq!(
            trex,
            &[
                0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn opus_init_layout_and_edit() {
        let init = init_segment(&opus_spec()).unwrap();
        let trak = find_path(&init, &[*b"moov", *b"trak"]).unwrap();
        let names: Vec<_> = children(trak).iter().map(|(t, _)| *t).collect();
        assert_eq!(names, [*b"tkhd", *b"edts", *b"mdia"]);
        let elst = find_path(trak, &[*b"edts", *b"elst"]).unwrap();
        assert_eq!(
            elst,
            &[
                0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x0F, 0xA0, 0, 0, 0x01, 0x38, 0, 1, 0, 0
            ]
        );
        let tkhd = find(trak, *b"tkhd").unwrap();
        assert_eq!(&tkhd[20..24], &4000u32.to_be_bytes()); // duration = edit duration
        let stsd = find_path(trak, &[*b"mdia", *b"minf", *b"stbl", *b"stsd"]).unwrap();
        let entry = find(&stsd[8..], *b"Opus").unwrap();
        assert_eq!(&entry[16..18], &2u16.to_be_bytes());
        assert_eq!(&entry[18..20], &16u16.to_be_bytes());
        assert_eq!(&entry[24..28], &(48_000u32 << 16).to_be_bytes());
        let dops = find(&entry[28..], *b"dOps").unwrap();
        assert_eq!(dops, &[0, 2, 0x01, 0x38, 0, 0, 0xAC, 0x44, 0xFF, 0x00, 0]);
        let mdhd = find_path(trak, &[*b"mdia", *b"mdhd"]).unwrap();
        assert_eq!(&mdhd[20..22], &[0x15, 0xC7]); // "eng"
    }

    fn aac_spec() -> InitSpec {
        InitSpec {
            codec: CodecConfig::Aac {
                audio_specific_config: vec![0x11, 0x90],
                buffer_size: 1536,
                max_bitrate: 270_000,
                avg_bitrate: 256_000,
            },
            sample_rate: 48_000,
            channels: 2,
            bits_per_sample: 16,
            edit: Some(Edit {
                media_time: 2048,
                duration: 48_000,
            }),
            media_duration: 51_200,
            language: *b"und",
        }
    }

    #[test]
    fn aac_init_layout_esds_and_edit() {
        let init = init_segment(&aac_spec()).unwrap();
        let trak = find_path(&init, &[*b"moov", *b"trak"]).unwrap();
        let elst = find_path(trak, &[*b"edts", *b"elst"]).unwrap();
        let mut want = vec![0, 0, 0, 0, 0, 0, 0, 1];
        want.extend_from_slice(&48_000u32.to_be_bytes()); // segment_duration
        want.extend_from_slice(&2048u32.to_be_bytes()); // media_time = priming
        want.extend_from_slice(&[0, 1, 0, 0]); // rate 1.0
        assert_eq!(elst, want.as_slice());
        let stsd = find_path(trak, &[*b"mdia", *b"minf", *b"stbl", *b"stsd"]).unwrap();
        let entry = find(&stsd[8..], *b"mp4a").unwrap();
        assert_eq!(&entry[16..18], &2u16.to_be_bytes()); // channelcount
        assert_eq!(&entry[18..20], &16u16.to_be_bytes()); // samplesize
        assert_eq!(&entry[24..28], &(48_000u32 << 16).to_be_bytes());
        let esds = find(&entry[28..], *b"esds").unwrap();
        let mut want = vec![0, 0, 0, 0]; // version, flags
        want.extend_from_slice(&[0x03, 25, 0, 0, 0]); // ES_Descriptor, ES_ID 0, flags 0
        want.extend_from_slice(&[0x04, 17, 0x40, 0x15]); // DecoderConfig: MPEG-4 audio stream
        want.extend_from_slice(&[0x00, 0x06, 0x00]); // bufferSizeDB 1536
        want.extend_from_slice(&270_000u32.to_be_bytes());
        want.extend_from_slice(&256_000u32.to_be_bytes());
        want.extend_from_slice(&[0x05, 2, 0x11, 0x90]); // DecoderSpecificInfo = the ASC
        want.extend_from_slice(&[0x06, 1, 0x02]); // SLConfig predefined 2
        assert_eq!(esds, want.as_slice());
    }

    #[test]
    fn aac_rejects_what_mp4a_40_2_cannot_say() {
        let mut s = aac_spec();
        s.sample_rate = 96_000;
        assert_eq!(init_segment(&s), Err(Mp4Error::AacSampleRate(96_000)));
        let mut s = aac_spec();
        s.channels = 6;
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::UnsupportedChannels { .. })
        ));
        for asc in [vec![], vec![0x11], vec![0x29, 0x90], vec![0x11; 65]] {
            let mut s = aac_spec();
            s.codec = CodecConfig::Aac {
                audio_specific_config: asc.clone(),
                buffer_size: 0,
                max_bitrate: 0,
                avg_bitrate: 0,
            };
            assert_eq!(init_segment(&s), Err(Mp4Error::BadAudioSpecificConfig(asc)));
        }
    }

    #[test]
    fn wide_values_switch_to_version_1() {
        let mut spec = opus_spec();
        let big = u64::from(u32::MAX) + 10;
        spec.media_duration = big + 312;
        spec.edit = Some(Edit {
            media_time: 312,
            duration: big,
        });
        let init = init_segment(&spec).unwrap();
        let elst = find_path(&init, &[*b"moov", *b"trak", *b"edts", *b"elst"]).unwrap();
        assert_eq!(elst[0], 1);
        assert_eq!(&elst[8..16], &big.to_be_bytes());
        assert_eq!(&elst[16..24], &312i64.to_be_bytes());
        let mvhd = find_path(&init, &[*b"moov", *b"mvhd"]).unwrap();
        assert_eq!(mvhd[0], 1);
        assert_eq!(mvhd.len(), 112);
        assert_eq!(&mvhd[24..32], &big.to_be_bytes());
        let tkhd = find_path(&init, &[*b"moov", *b"trak", *b"tkhd"]).unwrap();
        assert_eq!((tkhd[0], tkhd.len()), (1, 96));
        let mehd = find_path(&init, &[*b"moov", *b"mvex", *b"mehd"]).unwrap();
        assert_eq!(mehd[0], 1);
        assert_eq!(&mehd[4..12], &(big + 312).to_be_bytes());
    }

    #[test]
    fn high_sample_rates() {
        assert_eq!(flac_entry_rate(44_100), 44_100);
        assert_eq!(flac_entry_rate(65_535), 65_535);
        assert_eq!(flac_entry_rate(88_200), 44_100);
        assert_eq!(flac_entry_rate(96_000), 48_000);
        assert_eq!(flac_entry_rate(176_400), 44_100);
        assert_eq!(flac_entry_rate(192_000), 48_000);
        assert_eq!(flac_entry_rate(384_000), 48_000);
        assert_eq!(flac_entry_rate(65_537), 65_535); // no regular division

        let init = init_segment(&flac_spec(192_000, 24)).unwrap();
        let stsd = find_path(
            &init,
            &[*b"moov", *b"trak", *b"mdia", *b"minf", *b"stbl", *b"stsd"],
        )
        .unwrap();
        let entry = find(&stsd[8..], *b"fLaC").unwrap();
        assert_eq!(&entry[18..20], &24u16.to_be_bytes());
        assert_eq!(&entry[24..28], &(48_000u32 << 16).to_be_bytes());
        // The true rate is the timescale.
        let mdhd = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"mdhd"]).unwrap();
        assert_eq!(&mdhd[12..16], &192_000u32.to_be_bytes());
        let mvhd = find_path(&init, &[*b"moov", *b"mvhd"]).unwrap();
        assert_eq!(&mvhd[12..16], &192_000u32.to_be_bytes());
    }

    #[test]
    fn rejects_bad_specs() {
        let mut s = flac_spec(44_100, 16);
        s.sample_rate = 0;
        assert_eq!(init_segment(&s), Err(Mp4Error::ZeroSampleRate));

        let mut s = flac_spec(44_100, 16);
        s.codec = CodecConfig::Flac {
            metadata_blocks: vec![],
        };
        assert_eq!(init_segment(&s), Err(Mp4Error::EmptyFlacMetadata));

        let mut s = flac_spec(44_100, 16);
        s.codec = CodecConfig::Flac {
            metadata_blocks: vec![(4, vec![0; 34])],
        };
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::BadStreamInfo { .. })
        ));

        let mut s = flac_spec(44_100, 16);
        if let CodecConfig::Flac { metadata_blocks } = &mut s.codec {
            metadata_blocks.push((127, vec![]));
        }
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::BadMetadataBlock { index: 2, .. })
        ));

        let mut s = flac_spec(44_100, 16);
        s.sample_rate = 48_000;
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::StreamInfoMismatch {
                field: "sample rate",
                ..
            })
        ));
        let mut s = flac_spec(44_100, 16);
        s.bits_per_sample = 24;
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::StreamInfoMismatch {
                field: "bits per sample",
                ..
            })
        ));
        let mut s = flac_spec(44_100, 16);
        s.channels = 9;
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::UnsupportedChannels { .. })
        ));

        let mut s = opus_spec();
        s.channels = 3;
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::UnsupportedChannels { .. })
        ));
        let mut s = opus_spec();
        s.sample_rate = 44_100;
        assert_eq!(init_segment(&s), Err(Mp4Error::OpusSampleRate(44_100)));
        let mut s = opus_spec();
        s.edit = Some(Edit {
            media_time: 312,
            duration: 4800,
        });
        assert!(matches!(
            init_segment(&s),
            Err(Mp4Error::EditOutOfRange { .. })
        ));
        let mut s = opus_spec();
        s.language = *b"EN1";
        assert_eq!(init_segment(&s), Err(Mp4Error::InvalidLanguage));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(
            init_segment(&opus_spec()).unwrap(),
            init_segment(&opus_spec()).unwrap()
        );
    }
}
