//! The lossy renditions: Opus frames at 48 kHz through the C libopus (the system library,
//! linked through `opusic-c`), with the encoder delay signalled instead of baked in.

use opusic_c::{Application, Bitrate, Channels, ErrorCode, SampleRate, Signal};

use super::encoded::EncodedAudio;
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

/// Encodes interleaved 48 kHz samples at `bitrate` bits per second. CPU-bound.
///
/// The encoder delays its output by its lookahead; that many samples are declared as Opus
/// pre-skip (and as the edit list's media_time), the tail is padded with silence to a whole
/// frame, and the edit list's duration is the input's exact length: a player that honours
/// both presents exactly the input, so consecutive tracks join without a gap.
pub fn encode(samples: &[f32], channels: u16, bitrate: u32) -> Result<EncodedAudio, OpusError> {
    let ch = usize::from(channels);
    let mut enc = encoder(channels, bitrate)?;
    let lookahead = enc
        .get_look_ahead()
        .map_err(|e| failed("lookahead query", e))?;
    let pre_skip = u16::try_from(lookahead)
        .map_err(|_| OpusError(format!("lookahead {lookahead} out of range")))?;
    let input_frames = samples.len() / ch.max(1);
    if input_frames == 0 {
        return Err(OpusError("no samples".into()));
    }
    let total = input_frames + usize::from(pre_skip);
    let packets = total.div_ceil(FRAME);
    let mut frames = Vec::with_capacity(packets);
    let mut data = Vec::with_capacity(packets * (bitrate as usize / 8 / 50 + 16));
    let mut out = vec![0u8; MAX_PACKET];
    let mut tail = vec![0f32; FRAME * ch];
    for p in 0..packets {
        let start = p * FRAME * ch;
        let end = start + FRAME * ch;
        let block: &[f32] = if end <= samples.len() {
            &samples[start..end]
        } else {
            tail.fill(0.0);
            if start < samples.len() {
                tail[..samples.len() - start].copy_from_slice(&samples[start..]);
            }
            &tail
        };
        // `block` holds exactly FRAME frames of interleaved samples: libopus takes the frame
        // size from its length and the channel count.
        let n = enc
            .encode_float_to_slice(block, &mut out)
            .map_err(|e| failed("encode", e))?;
        frames.push(SampleInfo {
            size: n as u32,
            duration: FRAME as u32,
        });
        data.extend_from_slice(&out[..n]);
    }
    Ok(EncodedAudio {
        codec: CodecConfig::Opus {
            pre_skip,
            input_sample_rate: OPUS_RATE,
            output_gain: 0,
        },
        sample_rate: OPUS_RATE,
        channels,
        bits_per_sample: 16,
        frames,
        data,
        edit: Some(Edit {
            media_time: u64::from(pre_skip),
            duration: input_frames as u64,
        }),
        presented_samples: input_frames as u64,
        bitrate,
    })
}
