//! Decoded audio held in memory: interleaved samples plus the facts needed to re-encode them.

/// How the source stored its samples, which decides what "lossless" can mean for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceSamples {
    /// Integer PCM of this many significant bits (FLAC, ALAC, integer WAV).
    Integer { bits: u32 },
    /// Floating-point or lossy-decoded audio: there is no integer original to preserve.
    Float,
}

/// A decoded track: interleaved samples at the source rate.
#[derive(Clone)]
pub struct Pcm {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Channel count (1 or 2 for the renditions encore makes).
    pub channels: u16,
    /// What the source's samples were.
    pub source: SourceSamples,
    /// The samples as the source's integers (right-aligned), present for integer sources.
    pub int: Option<Vec<i32>>,
    /// The samples as floats in [-1, 1).
    pub float: Vec<f32>,
}

impl Pcm {
    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.float.len() / usize::from(self.channels.max(1))
    }

    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }
}

impl std::fmt::Debug for Pcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pcm")
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("source", &self.source)
            .field("frames", &self.frames())
            .finish()
    }
}
