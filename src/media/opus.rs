//! The lossy renditions: Opus frames at 48 kHz through the C libopus (the system library,
//! linked through `opusic-c`), with the encoder delay signalled instead of baked in.

use opusic_c::{Application, Bitrate, Channels, ErrorCode, SampleRate, Signal};

use super::encoded::{CodedFrames, EncodedAudio, LossyStream};
use super::mp4::{CodecConfig, Edit, SampleInfo};
use super::resample::OPUS_RATE;

/// 20 ms at 48 kHz: the frame size libopus is tuned for with music.
pub const FRAME: usize = 960;
/// libopus's largest packet is 1275 bytes per frame; leave room for repacketised ones.
const MAX_PACKET: usize = 4000;

/// Why Opus encoding failed.
#[derive(Debug, thiserror::Error)]
#[error("Opus encoding failed: {0}")]
pub struct OpusError(String);

/// What a libopus call returned, with the step that failed.
fn failed(step: &str, code: ErrorCode) -> OpusError {
    OpusError(format!("{step}: {} ({code:?})", code.message()))
}

/// A libopus encoder with encore's settings: application audio, VBR, complexity 10, music.
fn encoder(channels: u16, bitrate: u32) -> Result<opusic_c::Encoder, OpusError> {
    let layout = match channels {
        1 => Channels::Mono,
        2 => Channels::Stereo,
        _ => {
            return Err(OpusError(format!(
                "{channels} channels: only mono and stereo are coded"
            )));
        }
    };
    const _: () = assert!(OPUS_RATE == SampleRate::Hz48000 as u32);
    let mut enc = opusic_c::Encoder::new(layout, SampleRate::Hz48000, Application::Audio)
        .map_err(|e| failed("encoder creation", e))?;
    enc.set_bitrate(Bitrate::Value(bitrate))
        .map_err(|e| failed("bitrate", e))?;
    enc.set_vbr(true).map_err(|e| failed("VBR", e))?;
    enc.set_complexity(10)
        .map_err(|e| failed("complexity", e))?;
    enc.set_signal(Signal::Music)
        .map_err(|e| failed("signal type", e))?;
    Ok(enc)
}

/// An Opus encoder fed 48 kHz samples in pieces of any size: each 20 ms frame is coded as
/// soon as it is complete, so memory stays one frame whatever the track's length.
///
/// The encoder delays its output by its lookahead; that many samples are declared as Opus
/// pre-skip (and as the edit list's media_time), the tail is padded with silence to a whole
/// frame, and the edit list's duration is the input's exact length: a player that honours
/// both presents exactly the input, so consecutive tracks join without a gap.
pub struct OpusEncoder {
    enc: opusic_c::Encoder,
    channels: u16,
    bitrate: u32,
    pre_skip: u16,
    pending: Vec<f32>,
    input_frames: u64,
    packets: u64,
    out: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder at `bitrate` bits per second for `channels` channels (mono or stereo).
    pub fn new(channels: u16, bitrate: u32) -> Result<Self, OpusError> {
        let mut enc = encoder(channels, bitrate)?;
        let lookahead = enc
            .get_look_ahead()
            .map_err(|e| failed("lookahead query", e))?;
        let pre_skip = u16::try_from(lookahead)
            .map_err(|_| OpusError(format!("lookahead {lookahead} out of range")))?;
        Ok(OpusEncoder {
            enc,
            channels,
            bitrate,
            pre_skip,
            pending: Vec::with_capacity(FRAME * usize::from(channels)),
            input_frames: 0,
            packets: 0,
            out: vec![0u8; MAX_PACKET],
        })
    }

    /// Feeds interleaved 48 kHz samples; every packet completed is appended to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut CodedFrames) -> Result<(), OpusError> {
        let block = FRAME * usize::from(self.channels);
        self.input_frames += (samples.len() / usize::from(self.channels)) as u64;
        let mut rest = samples;
        if !self.pending.is_empty() {
            let take = (block - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < block {
                return Ok(());
            }
            let full = std::mem::take(&mut self.pending);
            self.code(&full, out)?;
            self.pending = full;
            self.pending.clear();
        }
        let mut blocks = rest.chunks_exact(block);
        for b in &mut blocks {
            self.code(b, out)?;
        }
        self.pending.extend_from_slice(blocks.remainder());
        Ok(())
    }

    /// Codes the padded tail: enough packets to cover pre-skip plus the input.
    pub fn finish(mut self, out: &mut CodedFrames) -> Result<LossyStream, OpusError> {
        if self.input_frames == 0 {
            return Err(OpusError("no samples".into()));
        }
        let block = FRAME * usize::from(self.channels);
        let packets = (self.input_frames + u64::from(self.pre_skip)).div_ceil(FRAME as u64);
        let mut tail = std::mem::take(&mut self.pending);
        while self.packets < packets {
            tail.resize(block, 0.0);
            self.code(&tail, out)?;
            tail.clear();
        }
        Ok(LossyStream {
            codec: CodecConfig::Opus {
                pre_skip: self.pre_skip,
                input_sample_rate: OPUS_RATE,
                output_gain: 0,
            },
            edit: Edit {
                media_time: u64::from(self.pre_skip),
                duration: self.input_frames,
            },
            presented_samples: self.input_frames,
        })
    }

    /// The nominal bitrate, bits per second.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    fn code(&mut self, block: &[f32], out: &mut CodedFrames) -> Result<(), OpusError> {
        // `block` holds exactly FRAME frames of interleaved samples: libopus takes the frame
        // size from its length and the channel count.
        let n = self
            .enc
            .encode_float_to_slice(block, &mut self.out)
            .map_err(|e| failed("encode", e))?;
        out.push(
            SampleInfo {
                size: n as u32,
                duration: FRAME as u32,
            },
            &self.out[..n],
        );
        self.packets += 1;
        Ok(())
    }
}

/// Encodes interleaved 48 kHz samples at `bitrate` bits per second. CPU-bound.
pub fn encode(samples: &[f32], channels: u16, bitrate: u32) -> Result<EncodedAudio, OpusError> {
    let mut encoder = OpusEncoder::new(channels, bitrate)?;
    let mut out = CodedFrames::default();
    encoder.push(samples, &mut out)?;
    let stream = encoder.finish(&mut out)?;
    Ok(EncodedAudio::lossy(
        stream, out, OPUS_RATE, channels, bitrate,
    ))
}
