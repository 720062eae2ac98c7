//! Media work: the renditions by name, decode sources to PCM, resample, encode renditions,
//! cut and mux fMP4 segments; measure loudness; parse lyrics.

pub mod aac;
pub mod decode;
pub mod encoded;
pub mod flac;
pub mod gapless;
pub mod loudness;
pub mod lyrics;
pub mod mp4;
pub mod opus;
pub mod pcm;
pub mod preview;
#[cfg(test)]
mod proptests;
pub mod rendition;
pub mod resample;
pub mod segment;

pub use rendition::{Rendition, UnknownRendition};
