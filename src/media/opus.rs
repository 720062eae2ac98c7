//! The lossy renditions: Opus frames at 48 kHz through libopus (transpiled to Rust, so it
//! builds with cargo alone), with the encoder delay signalled instead of baked in.

use unsafe_libopus::{
    OPUS_APPLICATION_AUDIO, OPUS_GET_LOOKAHEAD_REQUEST, OPUS_OK, OPUS_SET_BITRATE_REQUEST,
    OPUS_SET_COMPLEXITY_REQUEST, OPUS_SET_SIGNAL_REQUEST, OPUS_SET_VBR_REQUEST, OPUS_SIGNAL_MUSIC,
    OpusEncoder, opus_encode_float, opus_encoder_create, opus_encoder_ctl, opus_encoder_destroy,
};

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

/// An owned libopus encoder, destroyed on drop.
struct Encoder {
    raw: *mut OpusEncoder,
}

impl Encoder {
    fn new(channels: u16, bitrate: u32) -> Result<Self, OpusError> {
        if !(1..=2).contains(&channels) {
            return Err(OpusError(format!(
                "{channels} channels: only mono and stereo are coded"
            )));
        }
        let mut err = 0i32;
        // SAFETY: plain constructor; the pointer is checked for null and owned by `Encoder`.
        let raw = unsafe {
            opus_encoder_create(
                OPUS_RATE as i32,
                i32::from(channels),
                OPUS_APPLICATION_AUDIO,
                &mut err,
            )
        };
        if raw.is_null() || err != OPUS_OK {
            return Err(OpusError(format!("encoder creation returned {err}")));
        }
        let enc = Encoder { raw };
        enc.ctl(OPUS_SET_BITRATE_REQUEST, bitrate as i32)?;
        enc.ctl(OPUS_SET_VBR_REQUEST, 1)?;
        enc.ctl(OPUS_SET_COMPLEXITY_REQUEST, 10)?;
        enc.ctl(OPUS_SET_SIGNAL_REQUEST, OPUS_SIGNAL_MUSIC)?;
        Ok(enc)
    }

    fn ctl(&self, request: i32, value: i32) -> Result<(), OpusError> {
        // SAFETY: `raw` is a live encoder; setters take one i32 argument.
        let rc = unsafe { opus_encoder_ctl!(self.raw, request, value) };
        if rc != OPUS_OK {
            return Err(OpusError(format!(
                "encoder setting {request} = {value} returned {rc}"
            )));
        }
        Ok(())
    }

    fn lookahead(&self) -> Result<u16, OpusError> {
        let mut value = 0i32;
        // SAFETY: `raw` is a live encoder; the getter writes one i32.
        let rc = unsafe { opus_encoder_ctl!(self.raw, OPUS_GET_LOOKAHEAD_REQUEST, &mut value) };
        if rc != OPUS_OK {
            return Err(OpusError(format!("lookahead query returned {rc}")));
        }
        u16::try_from(value).map_err(|_| OpusError(format!("lookahead {value} out of range")))
    }

    fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, OpusError> {
        // SAFETY: `pcm` holds exactly FRAME frames of interleaved samples for the encoder's
        // channel count (checked by the caller), `out` is writable for its whole length.
        let n = unsafe {
            opus_encode_float(
                self.raw,
                pcm.as_ptr(),
                FRAME as i32,
                out.as_mut_ptr(),
                out.len() as i32,
            )
        };
        usize::try_from(n).map_err(|_| OpusError(format!("opus_encode_float returned {n}")))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create and destroyed exactly once.
        unsafe { opus_encoder_destroy(self.raw) }
    }
}

/// Encodes interleaved 48 kHz samples at `bitrate` bits per second. CPU-bound.
///
/// The encoder delays its output by its lookahead; that many samples are declared as Opus
/// pre-skip (and as the edit list's media_time), the tail is padded with silence to a whole
/// frame, and the edit list's duration is the input's exact length: a player that honours
/// both presents exactly the input, so consecutive tracks join without a gap.
pub fn encode(samples: &[f32], channels: u16, bitrate: u32) -> Result<EncodedAudio, OpusError> {
    let ch = usize::from(channels);
    let mut enc = Encoder::new(channels, bitrate)?;
    let pre_skip = enc.lookahead()?;
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
        let n = enc.encode(block, &mut out)?;
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
