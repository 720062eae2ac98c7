//! The preview's window of a track, caught from the 48 kHz stream as it passes, so the
//! source is decoded once for every rendition.

use std::collections::VecDeque;

use crate::media::{preview, resample};

/// The preview's window of the 48 kHz stream, caught as it passes: the window as asked
/// for, and the last `preview_seconds` (the window moves back to the end when the track is
/// shorter than its start plus its length, which is known only at the end).
pub(super) struct PreviewCapture {
    channels: usize,
    start: u64,
    len: u64,
    seen: u64,
    head: Vec<f32>,
    tail: VecDeque<f32>,
}

impl PreviewCapture {
    pub(super) fn new(channels: u16, rate: u32, start_seconds: f64, seconds: f64) -> Self {
        // The same rounding as `preview::span`.
        let rate = f64::from(rate);
        let len = ((seconds.max(0.0) * rate).round() as u64).max(1);
        let ch = usize::from(channels.max(1));
        PreviewCapture {
            channels: ch,
            start: (start_seconds.max(0.0) * rate).round() as u64,
            len,
            seen: 0,
            head: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    pub(super) fn push(&mut self, samples: &[f32]) {
        let ch = self.channels;
        let frames = (samples.len() / ch) as u64;
        let (first, end) = (self.seen, self.seen + frames);
        let lo = self.start.clamp(first, end);
        let hi = (self.start + self.len).clamp(lo, end);
        self.head.extend_from_slice(
            &samples[((lo - first) as usize) * ch..((hi - first) as usize) * ch],
        );
        let keep = self.len as usize * ch;
        let from = samples.len().saturating_sub(keep);
        self.tail.extend(&samples[from..]);
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        self.seen = end;
    }

    /// The faded clip and where it sits in the track.
    pub(super) fn finish(
        self,
        start_seconds: f64,
        seconds: f64,
    ) -> Result<(Vec<f32>, preview::PreviewSpan), String> {
        let ch = self.channels;
        let span = preview::span(
            self.seen as usize,
            resample::OPUS_RATE,
            start_seconds,
            seconds,
        );
        let want = span.len * ch;
        let window: Vec<f32> = if span.start as u64 == self.start && self.head.len() >= want {
            self.head[..want].to_vec()
        } else if (span.start + span.len) as u64 == self.seen && self.tail.len() >= want {
            self.tail
                .iter()
                .skip(self.tail.len() - want)
                .copied()
                .collect()
        } else {
            return Err(format!(
                "preview window {span:?} of {} samples was not kept",
                self.seen
            ));
        };
        let clip = preview::clip(
            &window,
            ch as u16,
            resample::OPUS_RATE,
            preview::PreviewSpan {
                start: 0,
                len: span.len,
            },
        );
        Ok((clip, span))
    }
}
