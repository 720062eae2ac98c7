//! Cutting a rendition into CMAF segments: an init segment and media segments of about N
//! seconds, each starting on a codec frame with a sample-accurate decode time.

use super::encoded::EncodedAudio;
use super::mp4::{self, InitSpec, Mp4Error};

/// One media segment before sealing.
pub struct MediaSegment {
    /// 1-based position in the rendition (0 is the init segment).
    pub index: u32,
    /// Decode time of the first sample (the `tfdt`), in the rendition's timescale.
    pub start: u64,
    /// Sum of the sample durations in this segment.
    pub duration: u64,
    /// The fMP4 bytes: styp + moof + mdat.
    pub bytes: Vec<u8>,
}

/// A rendition as fMP4: one init segment and its media segments.
pub struct Packaged {
    /// ftyp + moov.
    pub init: Vec<u8>,
    /// The fragments, in order.
    pub segments: Vec<MediaSegment>,
}

/// Splits `audio` into segments of at least `target_seconds` (the last may be shorter) and muxes them.
pub fn package(audio: &EncodedAudio, target_seconds: f64) -> Result<Packaged, Mp4Error> {
    let init = mp4::init_segment(&InitSpec {
        codec: audio.codec.clone(),
        sample_rate: audio.sample_rate,
        channels: audio.channels,
        bits_per_sample: audio.bits_per_sample,
        edit: audio.edit.clone(),
        media_duration: audio.media_duration(),
        language: *b"und",
    })?;
    let target = ((target_seconds * f64::from(audio.sample_rate)).round() as u64).max(1);
    let mut segments = Vec::new();
    let mut offset = 0usize;
    let mut start = 0u64;
    let mut first = 0usize;
    while first < audio.frames.len() {
        let mut last = first;
        let mut duration = 0u64;
        let mut bytes = 0usize;
        while last < audio.frames.len() && duration < target {
            duration += u64::from(audio.frames[last].duration);
            bytes += audio.frames[last].size as usize;
            last += 1;
        }
        // Avoid a runt final segment: fold a tail shorter than a quarter target into this one.
        let rest: u64 = audio.frames[last..]
            .iter()
            .map(|f| u64::from(f.duration))
            .sum();
        if rest > 0 && rest < target / 4 {
            duration += rest;
            bytes += audio.frames[last..]
                .iter()
                .map(|f| f.size as usize)
                .sum::<usize>();
            last = audio.frames.len();
        }
        let index = segments.len() as u32 + 1;
        let payload = &audio.data[offset..offset + bytes];
        let fragment = mp4::media_segment(index, start, &audio.frames[first..last], payload)?;
        segments.push(MediaSegment {
            index,
            start,
            duration,
            bytes: fragment,
        });
        offset += bytes;
        start += duration;
        first = last;
    }
    Ok(Packaged { init, segments })
}
