//! The Apple rendition: AAC-LC through the Fraunhofer FDK AAC encoder (bundled and built by
//! the `fdk-aac` crate), raw access units for an `mp4a` track, with the encoder delay
//! signalled by the edit list instead of baked in.

use fdk_aac::enc::{
    AudioObjectType, BitRate, ChannelMode, Encoder, EncoderError, EncoderParams, Transport,
};

use super::encoded::{CodedFrames, EncodedAudio, LossyStream};
use super::mp4::{CodecConfig, Edit, SampleInfo};

/// Samples per channel in one AAC-LC access unit.
pub const FRAME: usize = 1024;

/// The two rates Apple's HLS authoring rules expect for AAC (and every player plays).
pub const RATE_44K: u32 = 44_100;
/// See [`RATE_44K`].
pub const RATE_48K: u32 = 48_000;

/// Audio object type 2 (AAC Low Complexity) as it stands in an AudioSpecificConfig.
const AOT_LC: u8 = 2;

/// Why AAC encoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AacError {
    /// The FDK encoder refused a setting or failed while encoding.
    #[error("AAC encoding failed: {step}: {message}")]
    Encoder {
        /// What encore asked of it.
        step: &'static str,
        /// The library's own description of the error.
        message: String,
    },
    /// Only mono and stereo are coded (the track packager refuses more before this).
    #[error("AAC encoding failed: {0} channels: only mono and stereo are coded")]
    Channels(u16),
    /// The rate is not one of [`RATE_44K`] and [`RATE_48K`]; the caller resamples first.
    #[error("AAC encoding failed: {0} Hz: resample to 44100 or 48000 Hz first")]
    SampleRate(u32),
    /// Nothing to encode.
    #[error("AAC encoding failed: no samples")]
    Empty,
    /// The encoder produced something encore cannot describe in an `mp4a` sample entry.
    #[error("AAC encoding failed: {0}")]
    Unexpected(String),
}

fn fdk(step: &'static str) -> impl Fn(EncoderError) -> AacError {
    move |e| AacError::Encoder {
        step,
        message: e.to_string(),
    }
}

/// The rate the AAC rendition is coded at for a source at `source_rate` Hz.
///
/// Sources at 44.1 kHz or 48 kHz keep their rate, so most albums are coded without any
/// resampling and the rendition presents exactly the source's samples. Other rates go to
/// the member of the same family (88.2/176.4/22.05 kHz to 44.1 kHz; 96/192/32/16/8 kHz to
/// 48 kHz), which keeps the conversion ratio simple: Apple's authoring rules and every
/// player expect one of the two.
pub fn coded_rate(source_rate: u32) -> u32 {
    if source_rate != 0 && source_rate.is_multiple_of(11_025) {
        RATE_44K
    } else {
        RATE_48K
    }
}

/// Converts float samples to the 16-bit integers FDK AAC takes.
///
/// Scaled by 2^15, the inverse of how the decoder turned 16-bit sources into floats, so a
/// 16-bit source reaches the encoder bit for bit. No dither: at the bitrates encore codes
/// AAC, the codec's own quantisation noise is tens of dB above a 16-bit rounding error.
fn to_i16(x: f32) -> i16 {
    (x * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// An AAC-LC encoder fed samples in pieces of any size: each access unit is coded as soon
/// as a frame of input is complete, so memory stays one frame (plus a size per access
/// unit, for the `esds` figures) whatever the track's length.
///
/// Constant bitrate because a playlist has to declare it: HLS's `BANDWIDTH` is a peak, and
/// FDK's CBR (a bit reservoir around the nominal rate) keeps every segment close to the
/// figure the catalog and the playlist state, which its VBR modes (a quality target whose
/// highest setting averages well below 256 kbit/s stereo) do not.
///
/// The encoder delays its output by its analysis delay (`nDelayCore`, 2048 samples for
/// AAC-LC in this version); that many samples are the edit list's media_time, the input
/// is padded with silence to whole access units, and the edit list's duration is the
/// input's exact length: a player that honours it presents exactly the input.
pub struct AacEncoder {
    enc: Encoder,
    channels: usize,
    sample_rate: u32,
    asc: Vec<u8>,
    delay: u64,
    pending: Vec<i16>,
    input_frames: u64,
    blocks_fed: u64,
    sizes: Vec<SampleInfo>,
    out: Vec<u8>,
}

impl AacEncoder {
    /// An encoder for `channels` channels at `sample_rate` (44.1 or 48 kHz) and `bitrate`
    /// bits per second (constant).
    pub fn new(channels: u16, sample_rate: u32, bitrate: u32) -> Result<Self, AacError> {
        let mode = match channels {
            1 => ChannelMode::Mono,
            2 => ChannelMode::Stereo,
            n => return Err(AacError::Channels(n)),
        };
        if sample_rate != RATE_44K && sample_rate != RATE_48K {
            return Err(AacError::SampleRate(sample_rate));
        }
        let ch = usize::from(channels);
        let enc = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(bitrate),
            sample_rate,
            transport: Transport::Raw,
            channels: mode,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(fdk("encoder setup"))?;
        let info = enc.info().map_err(fdk("encoder info"))?;
        if info.frameLength as usize != FRAME {
            return Err(AacError::Unexpected(format!(
                "frame length {} (AAC-LC codes {FRAME})",
                info.frameLength
            )));
        }
        let asc = info
            .confBuf
            .get(..info.confSize as usize)
            .unwrap_or_default()
            .to_vec();
        if asc.len() < 2 || asc[0] >> 3 != AOT_LC {
            return Err(AacError::Unexpected(format!(
                "AudioSpecificConfig {asc:02x?} is not AAC-LC"
            )));
        }
        // nDelayCore, not nDelay: the delay without an SBR decoder's share, which is what an
        // edit list must state (equal for plain AAC-LC anyway).
        let delay = u64::from(info.nDelayCore);
        Ok(AacEncoder {
            enc,
            channels: ch,
            sample_rate,
            asc,
            delay,
            pending: Vec::with_capacity(FRAME * ch),
            input_frames: 0,
            blocks_fed: 0,
            sizes: Vec::new(),
            out: vec![0u8; (info.maxOutBufBytes as usize).max(768 * ch)],
        })
    }

    /// Feeds interleaved samples; every access unit completed is appended to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut CodedFrames) -> Result<(), AacError> {
        let block = FRAME * self.channels;
        self.input_frames += (samples.len() / self.channels) as u64;
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (block - self.pending.len()).min(rest.len());
            self.pending.extend(rest[..take].iter().map(|&x| to_i16(x)));
            rest = &rest[take..];
            if self.pending.len() == block {
                let full = std::mem::take(&mut self.pending);
                self.feed(&full, u64::MAX, out)?;
                self.pending = full;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Codes the padded tail: enough access units to cover the delay plus the input.
    pub fn finish(mut self, out: &mut CodedFrames) -> Result<LossyStream, AacError> {
        if self.input_frames == 0 {
            return Err(AacError::Empty);
        }
        // Every access unit decodes to FRAME samples of the delayed signal: enough of them
        // to cover the delay plus the input, the last one padded with silence.
        let units = (self.delay + self.input_frames).div_ceil(FRAME as u64);
        let block = FRAME * self.channels;
        let mut tail = std::mem::take(&mut self.pending);
        // The encoder emits one access unit per full frame of input, so this runs about
        // `units` times in all; the bound only stops a misbehaving library from looping
        // for ever.
        while (self.sizes.len() as u64) < units {
            if self.blocks_fed > units + 16 {
                return Err(AacError::Unexpected(format!(
                    "{} access units after {} frames of input, expected {units}",
                    self.sizes.len(),
                    self.blocks_fed
                )));
            }
            tail.resize(block, 0);
            self.feed(&tail, units, out)?;
            tail.clear();
        }
        let (buffer_size, max_bitrate, avg_bitrate) = rates(&self.sizes, self.sample_rate);
        Ok(LossyStream {
            codec: CodecConfig::Aac {
                audio_specific_config: self.asc,
                buffer_size,
                max_bitrate,
                avg_bitrate,
            },
            edit: Edit {
                media_time: self.delay,
                duration: self.input_frames,
            },
            presented_samples: self.input_frames,
        })
    }

    /// Feeds one frame of input; keeps at most `units` access units in all.
    fn feed(&mut self, block: &[i16], units: u64, out: &mut CodedFrames) -> Result<(), AacError> {
        self.blocks_fed += 1;
        let mut offset = 0;
        while offset < block.len() {
            let step = self
                .enc
                .encode(&block[offset..], &mut self.out)
                .map_err(fdk("encode"))?;
            if step.output_size > 0 && (self.sizes.len() as u64) < units {
                let size = u32::try_from(step.output_size)
                    .map_err(|_| AacError::Unexpected("oversized access unit".into()))?;
                let info = SampleInfo {
                    size,
                    duration: FRAME as u32,
                };
                self.sizes.push(info);
                out.push(info, &self.out[..step.output_size]);
            }
            if step.input_consumed == 0 && step.output_size == 0 {
                return Err(AacError::Unexpected(
                    "the encoder took no input and gave no output".into(),
                ));
            }
            offset += step.input_consumed;
        }
        Ok(())
    }
}

/// Encodes interleaved `samples` at `sample_rate` (44.1 or 48 kHz) as AAC-LC at `bitrate`
/// bits per second (constant), all at once. CPU-bound: call it from a blocking thread.
pub fn encode(
    samples: &[f32],
    channels: u16,
    sample_rate: u32,
    bitrate: u32,
) -> Result<EncodedAudio, AacError> {
    let mut encoder = AacEncoder::new(channels, sample_rate, bitrate)?;
    let mut out = CodedFrames::default();
    encoder.push(samples, &mut out)?;
    let stream = encoder.finish(&mut out)?;
    Ok(EncodedAudio::lossy(
        stream,
        out,
        sample_rate,
        channels,
        bitrate,
    ))
}

/// The `esds` DecoderConfigDescriptor figures: the largest access unit in bytes, the
/// highest bitrate over any one-second window and the average bitrate (ISO/IEC 14496-1
/// 7.2.6.6), measured on what was coded rather than quoted from the setting.
fn rates(frames: &[SampleInfo], sample_rate: u32) -> (u32, u32, u32) {
    let largest = frames.iter().map(|f| f.size).max().unwrap_or(0);
    let total_bits: u64 = frames.iter().map(|f| u64::from(f.size) * 8).sum();
    let seconds = (frames.len() * FRAME) as f64 / f64::from(sample_rate.max(1));
    let avg = if seconds > 0.0 {
        (total_bits as f64 / seconds).round() as u32
    } else {
        0
    };
    // A window of whole access units spanning one second (rounded up).
    let window = (sample_rate as usize).div_ceil(FRAME).max(1);
    let window_seconds = (window * FRAME) as f64 / f64::from(sample_rate.max(1));
    let mut max_bits = 0u64;
    let mut sum = 0u64;
    for (i, f) in frames.iter().enumerate() {
        sum += u64::from(f.size) * 8;
        if i >= window {
            sum -= u64::from(frames[i - window].size) * 8;
        }
        max_bits = max_bits.max(sum);
    }
    let peak = if frames.len() >= window {
        (max_bits as f64 / window_seconds).round() as u32
    } else {
        avg
    };
    (largest, peak.max(avg), avg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, channels: usize, frames: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(frames * channels);
        for i in 0..frames {
            let t = i as f64 / f64::from(rate);
            for c in 0..channels {
                let f = 440.0 * (c + 1) as f64;
                v.push((0.4 * (2.0 * std::f64::consts::PI * f * t).sin()) as f32);
            }
        }
        v
    }

    #[test]
    fn coded_rates() {
        assert_eq!(coded_rate(44_100), RATE_44K);
        assert_eq!(coded_rate(48_000), RATE_48K);
        assert_eq!(coded_rate(88_200), RATE_44K);
        assert_eq!(coded_rate(176_400), RATE_44K);
        assert_eq!(coded_rate(22_050), RATE_44K);
        assert_eq!(coded_rate(96_000), RATE_48K);
        assert_eq!(coded_rate(192_000), RATE_48K);
        assert_eq!(coded_rate(8_000), RATE_48K);
        assert_eq!(coded_rate(0), RATE_48K);
    }

    #[test]
    fn sixteen_bit_values_pass_through() {
        for s in [-32_768i16, -1, 0, 1, 12_345, 32_767] {
            assert_eq!(to_i16(f32::from(s) / 32_768.0), s);
        }
        assert_eq!(to_i16(1.5), 32_767);
        assert_eq!(to_i16(-1.5), -32_768);
    }

    #[test]
    fn stereo_48k_layout() {
        let n = 48_000 + 123;
        let audio = encode(&tone(48_000, 2, n), 2, 48_000, 256_000).expect("encode");
        let CodecConfig::Aac {
            audio_specific_config,
            buffer_size,
            max_bitrate,
            avg_bitrate,
        } = &audio.codec
        else {
            panic!("not AAC");
        };
        // AOT 2, sampling frequency index 3 (48 kHz), channel configuration 2.
        assert_eq!(audio_specific_config.as_slice(), [0x11, 0x90]);
        let edit = audio.edit.clone().expect("edit list");
        assert_eq!(edit.duration, n as u64);
        assert!(edit.media_time > 0, "the priming is signalled");
        assert_eq!(
            audio.frames.len() as u64,
            (edit.media_time + n as u64).div_ceil(FRAME as u64),
            "just enough access units to cover delay and input"
        );
        assert!(audio.media_duration() >= edit.media_time + edit.duration);
        assert_eq!(
            audio.data.len() as u64,
            audio.frames.iter().map(|f| u64::from(f.size)).sum::<u64>()
        );
        assert_eq!(
            *buffer_size,
            audio.frames.iter().map(|f| f.size).max().unwrap()
        );
        // CBR: the average is the setting, within the reservoir's slack.
        assert!(
            (240_000..=272_000).contains(avg_bitrate),
            "average {avg_bitrate}"
        );
        assert!(max_bitrate >= avg_bitrate);
        assert_eq!(audio.presented_samples, n as u64);
    }

    /// Decodes access units with symphonia's AAC decoder (not FDK's: an independent reading).
    fn decode(audio: &EncodedAudio) -> Vec<f32> {
        use symphonia::core::audio::{Channels, SampleBuffer};
        use symphonia::core::codecs::{CODEC_TYPE_AAC, CodecParameters, DecoderOptions};
        use symphonia::core::formats::Packet;
        let CodecConfig::Aac {
            audio_specific_config,
            ..
        } = &audio.codec
        else {
            panic!("not AAC");
        };
        let layout = if audio.channels == 1 {
            Channels::FRONT_LEFT
        } else {
            Channels::FRONT_LEFT | Channels::FRONT_RIGHT
        };
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_sample_rate(audio.sample_rate)
            .with_channels(layout)
            .with_extra_data(audio_specific_config.clone().into_boxed_slice());
        let mut dec = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .expect("decoder");
        let mut pcm = Vec::new();
        let mut offset = 0usize;
        for (i, f) in audio.frames.iter().enumerate() {
            let bytes = &audio.data[offset..offset + f.size as usize];
            offset += f.size as usize;
            let packet = Packet::new_from_slice(0, (i * FRAME) as u64, FRAME as u64, bytes);
            let decoded = dec.decode(&packet).expect("decode");
            let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
            buf.copy_interleaved_ref(decoded);
            pcm.extend_from_slice(buf.samples());
        }
        pcm
    }

    /// Normalised cross-correlation of `a` and `b[lag..]` over `a`'s length.
    fn correlation_at(a: &[f32], b: &[f32], lag: usize) -> f64 {
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for (x, y) in a.iter().zip(&b[lag..]) {
            let (x, y) = (f64::from(*x), f64::from(*y));
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE)
    }

    #[test]
    fn edit_list_media_time_is_the_true_delay() {
        // A chirp, so that no lag but the right one lines up.
        let rate = 44_100u32;
        let n = rate as usize;
        let chirp: Vec<f32> = (0..n)
            .flat_map(|i| {
                let t = i as f64 / f64::from(rate);
                let s =
                    (0.5 * (2.0 * std::f64::consts::PI * (200.0 + 1800.0 * t) * t).sin()) as f32;
                [s, -s]
            })
            .collect();
        let audio = encode(&chirp, 2, rate, 256_000).expect("encode");
        let pcm = decode(&audio);
        assert_eq!(pcm.len() as u64, audio.media_duration() * 2);
        let skip = audio.edit.as_ref().expect("edit").media_time as usize;
        let best = (skip - 64..=skip + 64)
            .max_by(|&a, &b| {
                correlation_at(&chirp, &pcm, a * 2).total_cmp(&correlation_at(&chirp, &pcm, b * 2))
            })
            .expect("lags");
        assert_eq!(
            best, skip,
            "the decoded signal starts {best} samples in, the edit says {skip}"
        );
        let c = correlation_at(&chirp, &pcm, skip * 2);
        assert!(c > 0.999, "correlation {c} at the signalled delay");
    }

    #[test]
    fn mono_44k_config() {
        let audio = encode(&tone(44_100, 1, 10_000), 1, 44_100, 128_000).expect("encode");
        let CodecConfig::Aac {
            audio_specific_config,
            ..
        } = &audio.codec
        else {
            panic!("not AAC");
        };
        // AOT 2, sampling frequency index 4 (44.1 kHz), channel configuration 1.
        assert_eq!(audio_specific_config.as_slice(), [0x12, 0x08]);
        assert_eq!(audio.channels, 1);
    }

    #[test]
    fn refuses_what_it_cannot_code() {
        assert!(matches!(
            encode(&[0.0; 6], 3, 48_000, 256_000),
            Err(AacError::Channels(3))
        ));
        assert!(matches!(
            encode(&[0.0; 4], 2, 96_000, 256_000),
            Err(AacError::SampleRate(96_000))
        ));
        assert!(matches!(
            encode(&[], 2, 48_000, 256_000),
            Err(AacError::Empty)
        ));
    }
}
