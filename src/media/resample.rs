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
    let ch = usize::from(channels.max(1));
    if from == to {
        return Ok(samples.to_vec());
    }
    let err = |reason: String| ResampleError { from, to, reason };
    let frames = samples.len() / ch;
    let want = resampled_len(frames, from, to);
    const CHUNK: usize = 4096;
    let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, ch)
        .map_err(|e| err(e.to_string()))?;
    let delay = resampler.output_delay();

    let planar: Vec<Vec<f32>> = (0..ch)
        .map(|c| samples.iter().skip(c).step_by(ch).copied().collect())
        .collect();
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(want + delay + CHUNK * 2); ch];
    let mut pos = 0;
    while pos + CHUNK <= frames {
        let block: Vec<&[f32]> = planar.iter().map(|p| &p[pos..pos + CHUNK]).collect();
        let res = resampler
            .process(&block, None)
            .map_err(|e| err(e.to_string()))?;
        append(&mut out, res);
        pos += CHUNK;
    }
    if pos < frames {
        let block: Vec<&[f32]> = planar.iter().map(|p| &p[pos..]).collect();
        let res = resampler
            .process_partial(Some(&block), None)
            .map_err(|e| err(e.to_string()))?;
        append(&mut out, res);
    }
    // Flush with silence until the delayed tail has come out.
    let mut guard = 0;
    while out[0].len() < want + delay {
        let res = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| err(e.to_string()))?;
        append(&mut out, res);
        guard += 1;
        if guard > 64 {
            return Err(err("the resampler did not flush its tail".into()));
        }
    }
    let mut interleaved = Vec::with_capacity(want * ch);
    for i in delay..delay + want {
        for plane in &out {
            interleaved.push(plane[i]);
        }
    }
    Ok(interleaved)
}

fn append(out: &mut [Vec<f32>], res: Vec<Vec<f32>>) {
    for (o, r) in out.iter_mut().zip(res) {
        o.extend_from_slice(&r);
    }
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
}
