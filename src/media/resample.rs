//! Sample-rate conversion to the 48 kHz that Opus runs at, with an exact output length.

use rubato::{FftFixedIn, Resampler};

/// The rate of every lossy rendition (Opus codes 48 kHz internally).
pub const OPUS_RATE: u32 = 48_000;

/// Why resampling failed.
#[derive(Debug, thiserror::Error)]
#[error("resampling {from} Hz to {to} Hz failed: {reason}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    reason: String,
}

/// Length of `frames` at `from` Hz once converted to `to` Hz: rounded to the nearest frame.
///
/// This is the length every lossy rendition promises to present (its edit list duration),
/// so it is defined once, here.
pub fn resampled_len(frames: usize, from: u32, to: u32) -> usize {
    let num = frames as u128 * u128::from(to) + u128::from(from) / 2;
    (num / u128::from(from.max(1))) as usize
}

/// Input frames the resampler takes per call.
const CHUNK: usize = 4096;

/// A rate converter fed the track in pieces of any size, whose output lines up sample for
/// sample with the input: the filter's delay is removed at the start, and at
/// [`finish`](Self::finish) the tail is flushed and the output is exactly
/// [`resampled_len`] frames. Holds one block of input and output at a time.
pub struct StreamResampler {
    inner: Option<FftFixedIn<f32>>,
    /// `from == to`: samples pass through unchanged.
    passthrough: bool,
    channels: usize,
    from: u32,
    to: u32,
    /// Output frames still to drop (the filter's delay).
    delay_left: usize,
    /// Input frames not yet a whole block, per channel.
    input: Vec<Vec<f32>>,
    /// Output frames past the delay not yet handed out, per channel.
    output: Vec<Vec<f32>>,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    /// A converter of `channels` channels from `from` Hz to `to` Hz (a copy when equal).
    pub fn new(channels: u16, from: u32, to: u32) -> Result<Self, ResampleError> {
        let ch = usize::from(channels.max(1));
        let inner = if from == to {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, ch).map_err(|e| {
                    ResampleError {
                        from,
                        to,
                        reason: e.to_string(),
                    }
                })?,
            )
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(StreamResampler {
            passthrough: inner.is_none(),
            inner,
            channels: ch,
            from,
            to,
            delay_left,
            input: vec![Vec::with_capacity(CHUNK); ch],
            output: vec![Vec::new(); ch],
            frames_in: 0,
            frames_out: 0,
        })
    }

    fn err(&self, reason: String) -> ResampleError {
        ResampleError {
            from: self.from,
            to: self.to,
            reason,
        }
    }

    /// Feeds interleaved samples; appends whatever output is ready to `out` (interleaved).
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let ch = self.channels;
        self.frames_in += (samples.len() / ch) as u64;
        if self.passthrough {
            out.extend_from_slice(samples);
            self.frames_out = self.frames_in;
            return Ok(());
        }
        let mut rest = samples;
        while !rest.is_empty() {
            let room = CHUNK - self.input[0].len();
            let take = (rest.len() / ch).min(room);
            for frame in rest[..take * ch].chunks_exact(ch) {
                for (plane, &s) in self.input.iter_mut().zip(frame) {
                    plane.push(s);
                }
            }
            rest = &rest[take * ch..];
            if self.input[0].len() == CHUNK {
                let res = match self.inner.as_mut() {
                    Some(r) => r.process(&self.input, None),
                    None => return Ok(()),
                }
                .map_err(|e| self.err(e.to_string()))?;
                self.input.iter_mut().for_each(Vec::clear);
                self.take_output(res);
            }
        }
        // Never hand out more than the input so far promises: the total is only known at
        // the end, and it is at least this.
        let ready = resampled_len(self.frames_in as usize, self.from, self.to) as u64;
        self.emit(ready, out);
        Ok(())
    }

    /// Flushes the filter and appends the rest of the output, so that the whole output is
    /// exactly [`resampled_len`] of the whole input.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        let want = resampled_len(self.frames_in as usize, self.from, self.to) as u64;
        if let Some(mut inner) = self.inner.take() {
            if !self.input[0].is_empty() {
                let res = inner
                    .process_partial(Some(self.input.as_slice()), None)
                    .map_err(|e| self.err(e.to_string()))?;
                self.take_output(res);
            }
            // Flush with silence until the delayed tail has come out.
            let mut guard = 0;
            while self.frames_out + (self.output[0].len() as u64) < want {
                let res = inner
                    .process_partial::<Vec<f32>>(None, None)
                    .map_err(|e| self.err(e.to_string()))?;
                self.take_output(res);
                guard += 1;
                if guard > 64 {
                    return Err(self.err("the resampler did not flush its tail".into()));
                }
            }
        }
        self.emit(want, out);
        if self.frames_out != want {
            return Err(self.err(format!(
                "{} frames out for {} in, expected {want}",
                self.frames_out, self.frames_in
            )));
        }
        Ok(())
    }

    fn take_output(&mut self, res: Vec<Vec<f32>>) {
        let n = res.first().map_or(0, Vec::len);
        let skip = self.delay_left.min(n);
        self.delay_left -= skip;
        for (o, r) in self.output.iter_mut().zip(res) {
            o.extend_from_slice(&r[skip..]);
        }
    }

    /// Hands out held output up to `limit` frames in total.
    fn emit(&mut self, limit: u64, out: &mut Vec<f32>) {
        if self.passthrough {
            return;
        }
        let n = (self.output[0].len() as u64).min(limit.saturating_sub(self.frames_out)) as usize;
        out.reserve(n * self.channels);
        for i in 0..n {
            for plane in &self.output {
                out.push(plane[i]);
            }
        }
        for plane in &mut self.output {
            plane.drain(..n);
        }
        self.frames_out += n as u64;
    }
}

/// Converts interleaved `samples` with `channels` channels from `from` Hz to `to` Hz.
///
/// The result holds exactly [`resampled_len`] frames: the filter's delay is removed at the
/// start and the tail is flushed, so the output lines up sample for sample with the input.
/// CPU-bound: call it from a blocking thread.
pub fn resample_interleaved(
    samples: &[f32],
    channels: u16,
    from: u32,
    to: u32,
) -> Result<Vec<f32>, ResampleError> {
    let mut resampler = StreamResampler::new(channels, from, to)?;
    let mut out = Vec::with_capacity(
        resampled_len(samples.len() / usize::from(channels.max(1)), from, to)
            * usize::from(channels.max(1)),
    );
    resampler.push(samples, &mut out)?;
    resampler.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_rounded_ratio() {
        assert_eq!(resampled_len(44_100, 44_100, 48_000), 48_000);
        assert_eq!(resampled_len(1, 44_100, 48_000), 1);
        assert_eq!(resampled_len(192_000, 192_000, 48_000), 48_000);
        assert_eq!(resampled_len(8_000, 8_000, 48_000), 48_000);
    }

    #[test]
    fn sine_survives_resampling_in_phase() {
        let from = 44_100;
        let n = 44_100 / 2 + 17;
        let tone = |t: f64| (2.0 * std::f64::consts::PI * 1000.0 * t).sin() as f32 * 0.5;
        let input: Vec<f32> = (0..n).map(|i| tone(i as f64 / f64::from(from))).collect();
        let out = resample_interleaved(&input, 1, from, OPUS_RATE).expect("resample");
        assert_eq!(out.len(), resampled_len(n, from, OPUS_RATE));
        // Away from the edges, the output is the same tone at the same phase.
        let mut err = 0.0f64;
        let mut sig = 0.0f64;
        for (i, &y) in out.iter().enumerate().skip(2000).take(out.len() - 4000) {
            let x = tone(i as f64 / f64::from(OPUS_RATE));
            err += f64::from(y - x).powi(2);
            sig += f64::from(x).powi(2);
        }
        let snr = 10.0 * (sig / err).log10();
        assert!(snr > 60.0, "snr {snr}");
    }

    #[test]
    fn pieces_of_any_size_give_the_same_output() {
        let input: Vec<f32> = (0..2 * 30_011)
            .map(|i| ((i as f32) * 0.013).sin() * 0.5)
            .collect();
        let whole = resample_interleaved(&input, 2, 44_100, OPUS_RATE).expect("whole");
        let mut r = StreamResampler::new(2, 44_100, OPUS_RATE).expect("new");
        let mut out = Vec::new();
        for piece in input.chunks(2 * 1_153) {
            r.push(piece, &mut out).expect("push");
        }
        r.finish(&mut out).expect("finish");
        assert_eq!(out, whole);
        assert_eq!(out.len(), 2 * resampled_len(30_011, 44_100, OPUS_RATE));
    }
}
