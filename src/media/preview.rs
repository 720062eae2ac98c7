//! The preview clip: a window of the track with short fades at both ends.

/// Fade length at each end of a preview, in seconds: long enough to avoid a click, short
/// enough not to eat into a 15-second clip.
pub const FADE_SECONDS: f64 = 0.5;

/// Where a preview sits in a track, in samples at some rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewSpan {
    /// First sample of the clip.
    pub start: usize,
    /// Number of samples in the clip.
    pub len: usize,
}

/// Places a preview of `seconds` from `start_seconds` in a track of `frames` samples at `rate`.
///
/// A window that would run past the end is moved earlier so the clip keeps its length; a
/// track shorter than the clip is previewed whole. Never returns an empty span for a
/// non-empty track.
pub fn span(frames: usize, rate: u32, start_seconds: f64, seconds: f64) -> PreviewSpan {
    let rate = f64::from(rate);
    let want = ((seconds.max(0.0) * rate).round() as usize)
        .clamp(1, frames.max(1))
        .min(frames);
    let start = ((start_seconds.max(0.0) * rate).round() as usize).min(frames.saturating_sub(want));
    PreviewSpan { start, len: want }
}

/// Copies the span out of interleaved `samples` and applies raised-cosine fades in and out.
pub fn clip(samples: &[f32], channels: u16, rate: u32, span: PreviewSpan) -> Vec<f32> {
    let ch = usize::from(channels.max(1));
    let from = span.start * ch;
    let to = ((span.start + span.len) * ch).min(samples.len());
    let mut out = samples[from.min(to)..to].to_vec();
    let frames = out.len() / ch;
    let fade = ((FADE_SECONDS * f64::from(rate)) as usize).min(frames / 2);
    for i in 0..fade {
        let g = (0.5 - 0.5 * (std::f64::consts::PI * i as f64 / fade as f64).cos()) as f32;
        for c in 0..ch {
            out[i * ch + c] *= g;
            out[(frames - 1 - i) * ch + c] *= g;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_inside_track() {
        assert_eq!(
            span(48_000 * 60, 48_000, 5.0, 15.0),
            PreviewSpan {
                start: 240_000,
                len: 720_000
            }
        );
    }

    #[test]
    fn window_past_end_moves_back() {
        assert_eq!(
            span(48_000 * 20, 48_000, 10.0, 15.0),
            PreviewSpan {
                start: 48_000 * 5,
                len: 720_000
            }
        );
    }

    #[test]
    fn short_track_previewed_whole() {
        assert_eq!(
            span(1000, 48_000, 3.0, 30.0),
            PreviewSpan {
                start: 0,
                len: 1000
            }
        );
    }

    #[test]
    fn fades_start_and_end_at_silence() {
        let s = vec![1.0f32; 48_000 * 2 * 2];
        let out = clip(
            &s,
            2,
            48_000,
            PreviewSpan {
                start: 0,
                len: 96_000,
            },
        );
        assert_eq!(out.len(), s.len());
        assert_eq!(out[0], 0.0);
        assert!(out[out.len() - 1] < 0.001);
        assert_eq!(out[48_000 * 2], 1.0);
    }
}
