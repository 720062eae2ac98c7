//! The `lossless` rendition: FLAC frames (flacenc) at the source's rate and bit depth.

use flacenc::component::{BitRepr, StreamInfo};
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

use super::encoded::EncodedAudio;
use super::mp4::{CodecConfig, SampleInfo};
use super::pcm::{Pcm, SourceSamples};

/// FLAC block size in samples: libFLAC's default, a good trade at every rate we accept.
pub const BLOCK_SIZE: usize = 4096;
/// The deepest integer flacenc codes.
const MAX_BITS: u32 = 24;

/// Why FLAC encoding failed.
#[derive(Debug, thiserror::Error)]
#[error("FLAC encoding failed: {0}")]
pub struct FlacError(String);

/// What the lossless rendition holds relative to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exactness {
    /// Decodes to the source's integers, sample for sample.
    BitExact,
    /// The source was floating point or deeper than 24 bits: rounded to 24-bit integers.
    Quantised24,
}

/// The integers the lossless rendition codes, with their width, and whether they equal the source.
pub fn lossless_samples(pcm: &Pcm) -> (Vec<i32>, u32, Exactness) {
    match (&pcm.source, &pcm.int) {
        (SourceSamples::Integer { bits }, Some(int)) if *bits <= MAX_BITS && *bits >= 8 => {
            (int.clone(), *bits, Exactness::BitExact)
        }
        (SourceSamples::Integer { bits }, Some(int)) if *bits > MAX_BITS => {
            // Many "32-bit" files carry 24 significant bits: if the low bits are all zero the
            // narrower integers are the same signal, exactly.
            let drop = bits - MAX_BITS;
            let mask = (1i32 << drop) - 1;
            if int.iter().all(|s| s & mask == 0) {
                (
                    int.iter().map(|s| s >> drop).collect(),
                    MAX_BITS,
                    Exactness::BitExact,
                )
            } else {
                (
                    quantise(&pcm.float, MAX_BITS),
                    MAX_BITS,
                    Exactness::Quantised24,
                )
            }
        }
        (SourceSamples::Integer { bits }, Some(int)) => {
            // Below 8 bits (rare): widen to 8, exactly.
            let up = 8 - bits;
            (
                int.iter().map(|s| s << up).collect(),
                8,
                Exactness::BitExact,
            )
        }
        _ => (
            quantise(&pcm.float, MAX_BITS),
            MAX_BITS,
            Exactness::Quantised24,
        ),
    }
}

fn quantise(float: &[f32], bits: u32) -> Vec<i32> {
    let scale = f64::from(1u32 << (bits - 1));
    let (lo, hi) = (-scale, scale - 1.0);
    float
        .iter()
        .map(|&x| (f64::from(x) * scale).round().clamp(lo, hi) as i32)
        .collect()
}

/// LPC order: libFLAC's and ffmpeg's at their default level 5 (flacenc's default is 10, which
/// costs more time than it saves bytes).
const LPC_ORDER: usize = 8;

fn flac_err(e: impl std::fmt::Display) -> FlacError {
    FlacError(e.to_string())
}

/// flacenc's settings: fixed 4096-sample blocks, LPC order 8, one thread (ingest runs tracks
/// in parallel itself). `verbatim` keeps only verbatim (and constant) subframes.
fn encoder_config(verbatim: bool) -> Result<Verified<flacenc::config::Encoder>, FlacError> {
    let mut config = flacenc::config::Encoder::default();
    config.block_size = BLOCK_SIZE;
    config.multithread = false;
    config.subframe_coding.qlpc.lpc_order = LPC_ORDER;
    if verbatim {
        config.subframe_coding.use_lpc = false;
        config.subframe_coding.use_fixed = false;
    }
    config.into_verified().map_err(|(_, e)| flac_err(e))
}

/// Encodes the lossless rendition. CPU-bound: call it from a blocking thread.
pub fn encode(pcm: &Pcm) -> Result<(EncodedAudio, Exactness), FlacError> {
    let (samples, bits, exactness) = lossless_samples(pcm);
    let channels = usize::from(pcm.channels);
    let total = samples.len() / channels.max(1);
    if total == 0 {
        return Err(FlacError("no samples".into()));
    }
    let config = encoder_config(false)?;
    let verbatim = encoder_config(true)?;
    // flacenc refuses rates above 96 kHz although FLAC allows them: encode as 96 kHz, then
    // point each frame header at STREAMINFO for the rate (see `frame_rate_from_streaminfo`).
    let high_rate = pcm.sample_rate > FLACENC_MAX_RATE;
    let encode_rate = if high_rate {
        FLACENC_MAX_RATE
    } else {
        pcm.sample_rate
    };
    let info = StreamInfo::new(encode_rate as usize, channels, bits as usize).map_err(flac_err)?;
    let mut block_buf = FrameBuf::with_size(channels, BLOCK_SIZE).map_err(flac_err)?;
    // STREAMINFO's MD5 of the samples (little-endian, whole bytes per sample), fed one block
    // at a time: flacenc's own source feeds it one sample at a time, which costs more.
    let mut md5 = flacenc::source::Context::new(bits as usize, channels);
    let mut le_bytes = Vec::with_capacity(BLOCK_SIZE * channels * md5.bytes_per_sample());

    let mut data = Vec::with_capacity(samples.len() * (bits as usize) / 8 / 2);
    let mut frames = Vec::with_capacity(total.div_ceil(BLOCK_SIZE));
    let mut sink = flacenc::bitsink::ByteSink::new();
    let mut fallback = flacenc::bitsink::ByteSink::new();
    let mut owned = Vec::new();
    for (i, chunk) in samples.chunks(BLOCK_SIZE * channels).enumerate() {
        let block = chunk.len() / channels;
        let width = md5.bytes_per_sample();
        le_bytes.clear();
        for s in chunk {
            le_bytes.extend_from_slice(&s.to_le_bytes()[..width]);
        }
        md5.fill_le_bytes(&le_bytes, width).map_err(flac_err)?;

        block_buf.fill_interleaved(chunk).map_err(flac_err)?;
        let frame =
            flacenc::encode_fixed_size_frame(&config, &block_buf, i, &info).map_err(flac_err)?;
        sink.clear();
        frame.write(&mut sink).map_err(flac_err)?;
        let mut bytes = sink.as_slice();
        if bytes.len() > verbatim_bound(block, channels, bits) {
            // flacenc caps the Rice parameter at 14, so loud or noisy 24-bit audio can code to
            // far more than its raw size (a 7 s clip of noise came out at 1.5 GB). A FLAC
            // encoder must never exceed verbatim: re-code such a frame with verbatim subframes.
            let frame = flacenc::encode_fixed_size_frame(&verbatim, &block_buf, i, &info)
                .map_err(flac_err)?;
            fallback.clear();
            frame.write(&mut fallback).map_err(flac_err)?;
            bytes = fallback.as_slice();
        }
        if high_rate {
            owned.clear();
            owned.extend_from_slice(bytes);
            frame_rate_from_streaminfo(&mut owned).map_err(FlacError)?;
            bytes = &owned;
        }
        frames.push(SampleInfo {
            size: bytes.len() as u32,
            duration: block as u32,
        });
        data.extend_from_slice(bytes);
    }
    let min_frame = frames.iter().map(|f| f.size).min().unwrap_or(0);
    let max_frame = frames.iter().map(|f| f.size).max().unwrap_or(0);
    let streaminfo = streaminfo(&StreamInfoFields {
        block_size: BLOCK_SIZE as u16,
        min_frame_size: min_frame,
        max_frame_size: max_frame,
        sample_rate: pcm.sample_rate,
        channels: pcm.channels,
        bits_per_sample: bits,
        total_samples: total as u64,
        md5: md5.md5_digest(),
    });
    let bitrate = if total > 0 {
        (data.len() as u64 * 8 * u64::from(pcm.sample_rate) / total as u64) as u32
    } else {
        0
    };
    Ok((
        EncodedAudio {
            codec: CodecConfig::Flac {
                metadata_blocks: vec![(0, streaminfo.to_vec())],
            },
            sample_rate: pcm.sample_rate,
            channels: pcm.channels,
            bits_per_sample: bits as u16,
            frames,
            data,
            edit: None,
            presented_samples: total as u64,
            bitrate,
        },
        exactness,
    ))
}

/// Largest a frame of `block` samples can be when coded verbatim: frame header (at most 16
/// bytes), one subframe header and `bits + 1` bits per sample per channel (a side channel
/// needs one more bit), and the CRC-16.
fn verbatim_bound(block: usize, channels: usize, bits: u32) -> usize {
    16 + channels * (1 + (block * (bits as usize + 1)).div_ceil(8)) + 2
}

/// The highest rate flacenc accepts.
const FLACENC_MAX_RATE: u32 = 96_000;

const CRC8: crc::Crc<u8> = crc::Crc::<u8>::new(&crc::CRC_8_SMBUS);
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_UMTS);

/// Rewrites a frame header's sample-rate code to 0000 ("from STREAMINFO") and fixes both
/// checksums. Only valid for a frame coded with a rate whose code takes no extra header
/// bytes (96 kHz is code 1011), so the frame keeps its length.
fn frame_rate_from_streaminfo(frame: &mut [u8]) -> Result<(), String> {
    if frame.len() < 8 || frame[0] != 0xFF || frame[1] & 0xFE != 0xF8 {
        return Err("frame does not start with a FLAC sync code".into());
    }
    let block_code = frame[2] >> 4;
    let rate_code = frame[2] & 0x0F;
    if rate_code != 0b1011 {
        return Err(format!("unexpected sample-rate code {rate_code:#06b}"));
    }
    // Coded frame or sample number: UTF-8-like, the first byte's leading ones give the length.
    let lead = frame[4].leading_ones() as usize;
    let number_len = if lead == 0 { 1 } else { lead };
    let extra_block = match block_code {
        0b0110 => 1,
        0b0111 => 2,
        _ => 0,
    };
    let header_len = 4 + number_len + extra_block;
    if frame.len() < header_len + 3 {
        return Err("frame shorter than its header".into());
    }
    frame[2] &= 0xF0;
    frame[header_len] = CRC8.checksum(&frame[..header_len]);
    let end = frame.len() - 2;
    let crc16 = CRC16.checksum(&frame[..end]);
    frame[end..].copy_from_slice(&crc16.to_be_bytes());
    Ok(())
}

/// The fields of a FLAC STREAMINFO block.
pub struct StreamInfoFields {
    /// Fixed block size (used for both minimum and maximum).
    pub block_size: u16,
    /// Smallest frame in bytes.
    pub min_frame_size: u32,
    /// Largest frame in bytes.
    pub max_frame_size: u32,
    /// Sample rate in Hz (20 bits).
    pub sample_rate: u32,
    /// Channels (1..=8).
    pub channels: u16,
    /// Bits per sample (4..=32).
    pub bits_per_sample: u32,
    /// Samples per channel (36 bits).
    pub total_samples: u64,
    /// MD5 of the unencoded audio.
    pub md5: [u8; 16],
}

/// Serialises STREAMINFO ourselves rather than taking flacenc's: flacenc can report the
/// short last block as the minimum block size (flacenc-rs issue #242), which makes strict
/// decoders such as symphonia reject the stream. With fixed blocking, min = max.
pub fn streaminfo(f: &StreamInfoFields) -> [u8; 34] {
    let mut out = [0u8; 34];
    out[0..2].copy_from_slice(&f.block_size.to_be_bytes());
    out[2..4].copy_from_slice(&f.block_size.to_be_bytes());
    out[4..7].copy_from_slice(&f.min_frame_size.to_be_bytes()[1..]);
    out[7..10].copy_from_slice(&f.max_frame_size.to_be_bytes()[1..]);
    // 20 bits rate | 3 bits channels-1 | 5 bits bps-1 | 36 bits total samples
    let packed: u64 = (u64::from(f.sample_rate) & 0xF_FFFF) << 44
        | (u64::from(f.channels.saturating_sub(1)) & 0x7) << 41
        | (u64::from(f.bits_per_sample.saturating_sub(1)) & 0x1F) << 36
        | (f.total_samples & 0xF_FFFF_FFFF);
    out[10..18].copy_from_slice(&packed.to_be_bytes());
    out[18..34].copy_from_slice(&f.md5);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaminfo_packs_fields() {
        let si = streaminfo(&StreamInfoFields {
            block_size: 4096,
            min_frame_size: 14,
            max_frame_size: 9000,
            sample_rate: 44_100,
            channels: 2,
            bits_per_sample: 16,
            total_samples: 1_323_000,
            md5: [7; 16],
        });
        assert_eq!(&si[0..4], &[0x10, 0x00, 0x10, 0x00]);
        assert_eq!(&si[4..10], &[0, 0, 14, 0, 0x23, 0x28]);
        // 44100 = 0x0AC44 -> 0A C4 4 | ch 1 (001) | bps 15 (01111) | total
        assert_eq!(si[10], 0x0A);
        assert_eq!(si[11], 0xC4);
        assert_eq!(si[12] >> 4, 0x4);
        assert_eq!((si[12] >> 1) & 0x7, 1);
        assert_eq!(((si[12] & 1) << 4) | (si[13] >> 4), 15);
        assert_eq!(&si[18..], &[7; 16]);
    }

    /// STREAMINFO's MD5 is over the samples as little-endian integers of whole bytes,
    /// interleaved, across block boundaries (reference digests computed independently).
    #[test]
    fn streaminfo_md5_covers_every_sample() {
        for (bits, expected) in [
            (16u32, "45a77d6a43399e579b69cb60e0f3213d"),
            (24, "76740ead9dad2f6951753c861ce51909"),
        ] {
            let int: Vec<i32> = (0..10_000i64)
                .map(|i| ((i * 7919) % (1 << bits) - (1 << (bits - 1))) as i32)
                .collect();
            let pcm = Pcm {
                sample_rate: 44_100,
                channels: 2,
                source: SourceSamples::Integer { bits },
                float: vec![0.0; int.len()],
                int: Some(int),
            };
            let (audio, exactness) = encode(&pcm).expect("encodes");
            assert_eq!(exactness, Exactness::BitExact);
            let CodecConfig::Flac { metadata_blocks } = &audio.codec else {
                panic!("not FLAC");
            };
            assert_eq!(
                hex::encode(&metadata_blocks[0].1[18..34]),
                expected,
                "{bits}-bit"
            );
            assert_eq!(audio.frames.len(), 2);
        }
    }

    #[test]
    fn float_sources_are_quantised_to_24_bits() {
        let pcm = Pcm {
            sample_rate: 48_000,
            channels: 1,
            source: SourceSamples::Float,
            int: None,
            float: vec![0.0, 0.5, -1.0, 0.999_999_9],
        };
        let (s, bits, ex) = lossless_samples(&pcm);
        assert_eq!(bits, 24);
        assert_eq!(ex, Exactness::Quantised24);
        assert_eq!(s, vec![0, 1 << 22, -(1 << 23), (1 << 23) - 1]);
    }

    #[test]
    fn padded_32_bit_is_exact_at_24() {
        let pcm = Pcm {
            sample_rate: 48_000,
            channels: 1,
            source: SourceSamples::Integer { bits: 32 },
            int: Some(vec![256, -512, 0]),
            float: vec![0.0; 3],
        };
        let (s, bits, ex) = lossless_samples(&pcm);
        assert_eq!((s, bits, ex), (vec![1, -2, 0], 24, Exactness::BitExact));
    }
}
