//! The renditions encore packages for every track, by name.

/// FLAC at the source's rate and depth.
pub const LOSSLESS: &str = "lossless";
/// Opus, ~256 kbit/s stereo.
pub const HIGH: &str = "high";
/// Opus, ~128 kbit/s stereo.
pub const STANDARD: &str = "standard";
/// AAC-LC, ~256 kbit/s stereo at 44.1 or 48 kHz: the codec Apple's HLS players require.
/// Buyers only, like every full-length rendition.
pub const AAC: &str = "aac";
/// A faded clip, AAC-LC at 48 kHz and the standard tier's bitrate, under its own content key:
/// the one rendition every player, Apple's included, can play without a purchase.
pub const PREVIEW: &str = "preview";

/// Every rendition, in the order they are packaged.
pub const ALL: [&str; 5] = [LOSSLESS, HIGH, STANDARD, AAC, PREVIEW];

/// Bumped whenever the packaging code changes its output, so re-runs re-package.
/// 2: the `aac` rendition. 3: the preview in AAC-LC instead of Opus.
pub const PIPELINE_VERSION: u32 = 3;
