//! The `lossless` rendition: FLAC frames (flacenc) at the source's rate and bit depth.

use std::io::Write;
use std::sync::{Arc, Mutex};

use flacenc::component::{BitRepr, StreamInfo};
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

use super::encoded::{CodedFrames, EncodedAudio};
use super::mp4::{CodecConfig, SampleInfo};
use super::pcm::{Pcm, SourceSamples};

/// FLAC block size in samples: libFLAC's default, a good trade at every rate we accept.
pub const BLOCK_SIZE: usize = 4096;
/// The deepest integer flacenc codes; deeper sources are coded by flac-codec.
const FLACENC_MAX_BITS: u32 = 24;
/// The width float and lossy sources are rounded to.
const QUANTISED_BITS: u32 = 24;

/// Why FLAC encoding failed.
#[derive(Debug, thiserror::Error)]
#[error("FLAC encoding failed: {0}")]
pub struct FlacError(String);

/// What the lossless rendition holds relative to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exactness {
    /// Decodes to the source's integers, sample for sample.
    BitExact,
    /// The source was floating point or lossy: rounded to 24-bit integers.
    Quantised24,
}

/// How a source's samples become the integers the lossless rendition codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LosslessInput {
    /// The source's integers, shifted right by `drop` bits that are zero in every sample,
    /// or left by `widen` bits (sources narrower than 8 bits), coded at `bits`.
    Integer {
        /// Bits per coded sample.
        bits: u32,
        /// Low bits dropped (all zero in the source).
        drop: u32,
        /// Zero bits added below.
        widen: u32,
    },
    /// Float or lossy-decoded samples rounded to 24-bit integers.
    Quantised24,
}

impl LosslessInput {
    /// Chooses the coding for `source`. `low_bits_zero` says whether every sample of a
    /// source deeper than 24 bits has its bits below the top 24 at zero (many "32-bit"
    /// files carry 24 significant bits): then the 24-bit integers are the same signal,
    /// exactly, and play everywhere; otherwise all the bits are coded (FLAC carries up to
    /// 32, which libFLAC 1.4 and later decode).
    pub fn plan(source: SourceSamples, low_bits_zero: bool) -> Self {
        match source {
            SourceSamples::Integer { bits } if bits > FLACENC_MAX_BITS && low_bits_zero => {
                LosslessInput::Integer {
                    bits: FLACENC_MAX_BITS,
                    drop: bits - FLACENC_MAX_BITS,
                    widen: 0,
                }
            }
            SourceSamples::Integer { bits } if bits >= 8 => LosslessInput::Integer {
                bits: bits.min(32),
                drop: 0,
                widen: 0,
            },
            SourceSamples::Integer { bits } => LosslessInput::Integer {
                bits: 8,
                drop: 0,
                widen: 8 - bits,
            },
            SourceSamples::Float => LosslessInput::Quantised24,
        }
    }

    /// Bits per coded sample.
    pub fn bits(&self) -> u32 {
        match self {
            LosslessInput::Integer { bits, .. } => *bits,
            LosslessInput::Quantised24 => QUANTISED_BITS,
        }
    }

    /// Whether the rendition decodes to the source's integers.
    pub fn exactness(&self) -> Exactness {
        match self {
            LosslessInput::Integer { .. } => Exactness::BitExact,
            LosslessInput::Quantised24 => Exactness::Quantised24,
        }
    }

    /// Appends the coded integers for one chunk of the source (`int` for integer sources,
    /// `float` for the rest).
    pub fn convert(&self, int: Option<&[i32]>, float: &[f32], out: &mut Vec<i32>) {
        match (self, int) {
            (
                LosslessInput::Integer {
                    drop: 0, widen: 0, ..
                },
                Some(int),
            ) => {
                out.extend_from_slice(int);
            }
            (LosslessInput::Integer { drop, widen, .. }, Some(int)) => {
                out.extend(int.iter().map(|s| (s >> drop) << widen));
            }
            _ => out.extend(float.iter().map(|&x| quantise(x, QUANTISED_BITS))),
        }
    }
}

/// Whether every sample's bits below the top 24 of a `bits`-bit source are zero.
pub fn low_bits_zero(int: &[i32], bits: u32) -> bool {
    if bits <= FLACENC_MAX_BITS {
        return true;
    }
    let mask = (1i32 << (bits - FLACENC_MAX_BITS)) - 1;
    int.iter().all(|s| s & mask == 0)
}

/// The integers the lossless rendition codes, with their width, and whether they equal the source.
pub fn lossless_samples(pcm: &Pcm) -> (Vec<i32>, u32, Exactness) {
    let low_zero = match (&pcm.source, &pcm.int) {
        (SourceSamples::Integer { bits }, Some(int)) => low_bits_zero(int, *bits),
        _ => true,
    };
    let source = match (&pcm.source, &pcm.int) {
        (SourceSamples::Integer { .. }, None) => SourceSamples::Float,
        (source, _) => *source,
    };
    let plan = LosslessInput::plan(source, low_zero);
    let mut out = Vec::with_capacity(pcm.float.len());
    plan.convert(pcm.int.as_deref(), &pcm.float, &mut out);
    (out, plan.bits(), plan.exactness())
}

fn quantise(x: f32, bits: u32) -> i32 {
    let scale = f64::from(1u32 << (bits - 1));
    (f64::from(x) * scale).round().clamp(-scale, scale - 1.0) as i32
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

/// Codes one block of interleaved samples as one FLAC frame.
enum FrameCoder {
    /// flacenc, for 4 to 24 bits per sample.
    Narrow(Box<NarrowCoder>),
    /// flac-codec, for 25 to 32 bits: flacenc (0.5) codes at most 24 bits per sample.
    Wide(Box<WideCoder>),
}

struct NarrowCoder {
    config: Verified<flacenc::config::Encoder>,
    verbatim: Verified<flacenc::config::Encoder>,
    info: StreamInfo,
    block_buf: FrameBuf,
    sink: flacenc::bitsink::ByteSink,
    fallback: flacenc::bitsink::ByteSink,
    /// The source rate is above what flacenc accepts: frames are coded as 96 kHz and
    /// rewritten to take the rate from STREAMINFO (see `frame_rate_from_streaminfo`).
    high_rate: bool,
    owned: Vec<u8>,
}

impl NarrowCoder {
    fn new(sample_rate: u32, channels: usize, bits: u32) -> Result<Self, FlacError> {
        let high_rate = sample_rate > FLACENC_MAX_RATE;
        let encode_rate = if high_rate {
            FLACENC_MAX_RATE
        } else {
            sample_rate
        };
        Ok(NarrowCoder {
            config: encoder_config(false)?,
            verbatim: encoder_config(true)?,
            info: StreamInfo::new(encode_rate as usize, channels, bits as usize)
                .map_err(flac_err)?,
            block_buf: FrameBuf::with_size(channels, BLOCK_SIZE).map_err(flac_err)?,
            sink: flacenc::bitsink::ByteSink::new(),
            fallback: flacenc::bitsink::ByteSink::new(),
            high_rate,
            owned: Vec::new(),
        })
    }

    fn code(&mut self, index: usize, chunk: &[i32], bound: usize) -> Result<&[u8], FlacError> {
        self.block_buf.fill_interleaved(chunk).map_err(flac_err)?;
        let frame =
            flacenc::encode_fixed_size_frame(&self.config, &self.block_buf, index, &self.info)
                .map_err(flac_err)?;
        self.sink.clear();
        frame.write(&mut self.sink).map_err(flac_err)?;
        let mut bytes = self.sink.as_slice();
        if bytes.len() > bound {
            // flacenc caps the Rice parameter at 14, so loud or noisy 24-bit audio can code to
            // far more than its raw size (a 7 s clip of noise came out at 1.5 GB). A FLAC
            // encoder must never exceed verbatim: re-code such a frame with verbatim subframes.
            let frame = flacenc::encode_fixed_size_frame(
                &self.verbatim,
                &self.block_buf,
                index,
                &self.info,
            )
            .map_err(flac_err)?;
            self.fallback.clear();
            frame.write(&mut self.fallback).map_err(flac_err)?;
            bytes = self.fallback.as_slice();
        }
        if self.high_rate {
            self.owned.clear();
            self.owned.extend_from_slice(bytes);
            frame_rate_from_streaminfo(&mut self.owned).map_err(FlacError)?;
            bytes = &self.owned;
        }
        Ok(bytes)
    }
}

/// A `Write` whose bytes the coder reads back after each frame: flac-codec's frame writer
/// owns its output and offers no way to borrow it back.
#[derive(Clone, Default)]
struct SharedBytes(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("frame buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct WideCoder {
    writer: flac_codec::encode::FlacStreamWriter<SharedBytes>,
    written: SharedBytes,
    frame: Vec<u8>,
    sample_rate: u32,
    channels: u8,
    bits: u32,
}

impl WideCoder {
    fn new(sample_rate: u32, channels: usize, bits: u32) -> Result<Self, FlacError> {
        let written = SharedBytes::default();
        let options = flac_codec::encode::Options::default()
            .block_size(BLOCK_SIZE as u16)
            .map_err(flac_err)?
            .max_lpc_order(Some(LPC_ORDER as u8))
            .map_err(flac_err)?;
        Ok(WideCoder {
            writer: flac_codec::encode::FlacStreamWriter::new(written.clone(), options),
            written,
            frame: Vec::new(),
            sample_rate,
            channels: u8::try_from(channels).map_err(flac_err)?,
            bits,
        })
    }

    fn code(&mut self, chunk: &[i32]) -> Result<&[u8], FlacError> {
        let take = |w: &SharedBytes| {
            w.0.lock()
                .map(|mut v| std::mem::take(&mut *v))
                .map_err(|_| FlacError("frame buffer poisoned".into()))
        };
        take(&self.written)?;
        self.writer
            .write(self.sample_rate, self.channels, self.bits, chunk)
            .map_err(flac_err)?;
        self.frame = take(&self.written)?;
        Ok(&self.frame)
    }
}

/// The lossless rendition's encoder, fed the source in chunks of any size: it codes each
/// full block as soon as it has one, so memory stays one block whatever the track's length.
/// STREAMINFO (MD5, sample count, frame sizes) is known only at [`finish`](Self::finish).
pub struct FlacEncoder {
    coder: FrameCoder,
    sample_rate: u32,
    channels: usize,
    bits: u32,
    md5: flacenc::source::Context,
    le_bytes: Vec<u8>,
    pending: Vec<i32>,
    blocks: usize,
    total: u64,
    bytes: u64,
    min_frame: u32,
    max_frame: u32,
}

/// What the lossless rendition's init segment and manifest need once every frame is coded.
pub struct FlacStream {
    /// `fLaC` sample entry contents: STREAMINFO.
    pub codec: CodecConfig,
    /// Bits per coded sample.
    pub bits_per_sample: u16,
    /// Samples per channel coded.
    pub total_samples: u64,
    /// Average bitrate, bits per second.
    pub bitrate: u32,
}

impl FlacEncoder {
    /// An encoder for `channels` channels of `bits`-bit integers at `sample_rate` Hz.
    pub fn new(sample_rate: u32, channels: u16, bits: u32) -> Result<Self, FlacError> {
        let ch = usize::from(channels);
        if !(1..=8).contains(&ch) || !(4..=32).contains(&bits) {
            return Err(FlacError(format!("{ch} channels of {bits} bits")));
        }
        let coder = if bits > FLACENC_MAX_BITS {
            FrameCoder::Wide(Box::new(WideCoder::new(sample_rate, ch, bits)?))
        } else {
            FrameCoder::Narrow(Box::new(NarrowCoder::new(sample_rate, ch, bits)?))
        };
        Ok(FlacEncoder {
            coder,
            sample_rate,
            channels: ch,
            bits,
            md5: flacenc::source::Context::new(bits as usize, ch),
            le_bytes: Vec::with_capacity(BLOCK_SIZE * ch * 4),
            pending: Vec::with_capacity(BLOCK_SIZE * ch),
            blocks: 0,
            total: 0,
            bytes: 0,
            min_frame: u32::MAX,
            max_frame: 0,
        })
    }

    /// Feeds interleaved samples; every block completed is appended to `out`.
    pub fn push(&mut self, samples: &[i32], out: &mut CodedFrames) -> Result<(), FlacError> {
        let block_len = BLOCK_SIZE * self.channels;
        let mut rest = samples;
        if !self.pending.is_empty() {
            let take = (block_len - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < block_len {
                return Ok(());
            }
            let block = std::mem::take(&mut self.pending);
            self.code_block(&block, out)?;
            self.pending = block;
            self.pending.clear();
        }
        let mut blocks = rest.chunks_exact(block_len);
        for block in &mut blocks {
            self.code_block(block, out)?;
        }
        self.pending.extend_from_slice(blocks.remainder());
        Ok(())
    }

    /// Codes the last, short block and returns STREAMINFO and the stream's figures.
    pub fn finish(mut self, out: &mut CodedFrames) -> Result<FlacStream, FlacError> {
        if !self.pending.is_empty() {
            let block = std::mem::take(&mut self.pending);
            self.code_block(&block, out)?;
        }
        if self.total == 0 {
            return Err(FlacError("no samples".into()));
        }
        let streaminfo = streaminfo(&StreamInfoFields {
            block_size: BLOCK_SIZE as u16,
            min_frame_size: self.min_frame,
            max_frame_size: self.max_frame,
            sample_rate: self.sample_rate,
            channels: self.channels as u16,
            bits_per_sample: self.bits,
            total_samples: self.total,
            md5: self.md5.md5_digest(),
        });
        Ok(FlacStream {
            codec: CodecConfig::Flac {
                metadata_blocks: vec![(0, streaminfo.to_vec())],
            },
            bits_per_sample: self.bits as u16,
            total_samples: self.total,
            bitrate: (self.bytes * 8 * u64::from(self.sample_rate) / self.total) as u32,
        })
    }

    fn code_block(&mut self, chunk: &[i32], out: &mut CodedFrames) -> Result<(), FlacError> {
        let block = chunk.len() / self.channels;
        // STREAMINFO's MD5 of the samples (little-endian, whole bytes per sample), fed one
        // block at a time: flacenc's own source feeds it one sample at a time, which costs more.
        let width = self.md5.bytes_per_sample();
        self.le_bytes.clear();
        for s in chunk {
            self.le_bytes.extend_from_slice(&s.to_le_bytes()[..width]);
        }
        self.md5
            .fill_le_bytes(&self.le_bytes, width)
            .map_err(flac_err)?;
        let bytes = match &mut self.coder {
            FrameCoder::Narrow(c) => c.code(
                self.blocks,
                chunk,
                verbatim_bound(block, self.channels, self.bits),
            )?,
            FrameCoder::Wide(c) => c.code(chunk)?,
        };
        let size = u32::try_from(bytes.len()).map_err(flac_err)?;
        out.push(
            SampleInfo {
                size,
                duration: block as u32,
            },
            bytes,
        );
        self.blocks += 1;
        self.total += block as u64;
        self.bytes += u64::from(size);
        self.min_frame = self.min_frame.min(size);
        self.max_frame = self.max_frame.max(size);
        Ok(())
    }
}

/// Encodes a whole decoded track as the lossless rendition. CPU-bound: call it from a
/// blocking thread.
pub fn encode(pcm: &Pcm) -> Result<(EncodedAudio, Exactness), FlacError> {
    let (samples, bits, exactness) = lossless_samples(pcm);
    let mut encoder = FlacEncoder::new(pcm.sample_rate, pcm.channels, bits)?;
    let mut out = CodedFrames::default();
    encoder.push(&samples, &mut out)?;
    let stream = encoder.finish(&mut out)?;
    Ok((
        EncodedAudio {
            codec: stream.codec,
            sample_rate: pcm.sample_rate,
            channels: pcm.channels,
            bits_per_sample: stream.bits_per_sample,
            frames: out.frames,
            data: out.data,
            edit: None,
            presented_samples: stream.total_samples,
            bitrate: stream.bitrate,
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
    fn full_32_bit_is_coded_at_32() {
        let pcm = Pcm {
            sample_rate: 48_000,
            channels: 1,
            source: SourceSamples::Integer { bits: 32 },
            int: Some(vec![257, -512, i32::MIN, i32::MAX]),
            float: vec![0.0; 4],
        };
        let (s, bits, ex) = lossless_samples(&pcm);
        assert_eq!(
            (s, bits, ex),
            (vec![257, -512, i32::MIN, i32::MAX], 32, Exactness::BitExact)
        );
        let (audio, _) = encode(&pcm).expect("32-bit encodes");
        assert_eq!(audio.bits_per_sample, 32);
        assert_eq!(audio.frames.len(), 1);
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
