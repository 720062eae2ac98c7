//! A rendition's coded frames, ready to be cut into segments.

use super::mp4::{CodecConfig, Edit, SampleInfo};

/// The output of an encoder: every codec frame of one track plus what the init segment needs.
pub struct EncodedAudio {
    /// Codec setup for the sample entry.
    pub codec: CodecConfig,
    /// Media timescale (the coded sample rate).
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Bits per decoded sample.
    pub bits_per_sample: u16,
    /// Size and duration of each frame, in decode order.
    pub frames: Vec<SampleInfo>,
    /// The frames' bytes, concatenated in decode order.
    pub data: Vec<u8>,
    /// The presentation window (encoder delay and padding excluded), if the codec has any.
    pub edit: Option<Edit>,
    /// Samples per channel a player presents: the source's length at this rate.
    pub presented_samples: u64,
    /// Nominal bitrate in bits per second, for the catalog (0 when variable and unknown).
    pub bitrate: u32,
}

/// What a lossy encoder (AAC, Opus) hands the init segment and manifest once every frame is
/// coded.
pub struct LossyStream {
    /// Sample entry contents (`mp4a` or `Opus`).
    pub codec: CodecConfig,
    /// Priming (pre-skip) and presented length.
    pub edit: Edit,
    /// Samples per channel a player presents.
    pub presented_samples: u64,
}

impl EncodedAudio {
    /// A lossy rendition: `out`'s frames at `sample_rate`, decoded to 16 bits, presented in
    /// `stream`'s window.
    pub fn lossy(
        stream: LossyStream,
        out: CodedFrames,
        sample_rate: u32,
        channels: u16,
        bitrate: u32,
    ) -> Self {
        Self {
            codec: stream.codec,
            sample_rate,
            channels,
            bits_per_sample: 16,
            frames: out.frames,
            data: out.data,
            edit: Some(stream.edit),
            presented_samples: stream.presented_samples,
            bitrate,
        }
    }

    /// Sum of all frame durations (the media duration, delay and padding included).
    pub fn media_duration(&self) -> u64 {
        self.frames.iter().map(|f| u64::from(f.duration)).sum()
    }
}

/// Coded frames as an encoder emits them, drained by whoever cuts segments.
#[derive(Default)]
pub struct CodedFrames {
    /// Size and duration of each frame, in decode order.
    pub frames: Vec<SampleInfo>,
    /// The frames' bytes, concatenated.
    pub data: Vec<u8>,
}

impl CodedFrames {
    /// Appends one frame.
    pub fn push(&mut self, info: SampleInfo, bytes: &[u8]) {
        self.frames.push(info);
        self.data.extend_from_slice(bytes);
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}
