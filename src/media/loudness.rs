//! Loudness per ITU-R BS.1770-4 / EBU R128 (integrated, range, true peak) measured with the
//! `ebur128` crate in one streaming pass, and the ReplayGain 2.0 gains derived from it.

use ebur128::{EbuR128, Mode};
use serde::{Deserialize, Serialize};

/// ReplayGain 2.0's reference level: a gain brings a track's integrated loudness here.
pub const REFERENCE_LUFS: f64 = -18.0;

/// Why a measurement failed (the crate refuses a rate or channel count, or has no blocks).
#[derive(Debug, thiserror::Error)]
#[error("loudness measurement: {0}")]
pub struct LoudnessError(String);

impl From<ebur128::Error> for LoudnessError {
    fn from(e: ebur128::Error) -> Self {
        LoudnessError(e.to_string())
    }
}

/// The measurement of a track or an album and the gain that follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness, LUFS (gated, BS.1770-4). `-inf` silence is stored as -70.
    pub integrated_lufs: f64,
    /// Loudness range, LU (EBU Tech 3342).
    pub range_lu: f64,
    /// True peak over all channels, linear (1.0 = full scale), 4x oversampled below 96 kHz.
    pub true_peak: f64,
    /// The same in dBTP.
    pub true_peak_dbtp: f64,
    /// ReplayGain 2.0 gain to [`REFERENCE_LUFS`], dB.
    pub gain_db: f64,
    /// The largest gain that keeps `true_peak` at or below full scale, dB: a player applies
    /// `min(gain_db, max_gain_db)` and never clips.
    pub max_gain_db: f64,
}

impl Loudness {
    fn from_figures(integrated: f64, range: f64, true_peak: f64) -> Self {
        // Silence gates every block away: the crate says -inf. JSON has no infinities, and
        // the absolute gate (-70 LUFS) is the quietest figure BS.1770 can produce.
        let integrated = if integrated.is_finite() {
            integrated
        } else {
            -70.0
        };
        let range = if range.is_finite() { range } else { 0.0 };
        let true_peak_dbtp = if true_peak > 0.0 {
            20.0 * true_peak.log10()
        } else {
            -200.0
        };
        Loudness {
            integrated_lufs: round2(integrated),
            range_lu: round2(range),
            true_peak: round6(true_peak),
            true_peak_dbtp: round2(true_peak_dbtp),
            gain_db: round2(REFERENCE_LUFS - integrated),
            max_gain_db: round2(-true_peak_dbtp),
        }
    }

    /// The gain a player applies, dB: the ReplayGain gain, lowered when the peak would clip.
    pub fn safe_gain_db(&self) -> f64 {
        self.gain_db.min(self.max_gain_db)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// A running measurement of one track, fed interleaved float samples as they are decoded.
/// Memory stays constant whatever the track's length: the gating blocks go into the crate's
/// histogram (0.1 LU bins), not a list.
pub struct Meter {
    state: EbuR128,
    channels: u32,
    /// The true peak, kept here once [`Meter::keep_for_album`] has let the samples go.
    kept_peak: Option<f64>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Meter({} ch, {} Hz)", self.channels, self.state.rate())
    }
}

impl Meter {
    /// A meter for `channels` channels at `rate` Hz. Mono counts once (channel weight 1), as
    /// BS.1770 and ffmpeg's `ebur128` filter count it.
    pub fn new(channels: u16, rate: u32) -> Result<Self, LoudnessError> {
        let mode = Mode::I | Mode::LRA | Mode::TRUE_PEAK | Mode::HISTOGRAM;
        Ok(Meter {
            state: EbuR128::new(u32::from(channels), rate, mode)?,
            channels: u32::from(channels),
            kept_peak: None,
        })
    }

    /// Adds interleaved samples in [-1, 1).
    pub fn push(&mut self, interleaved: &[f32]) -> Result<(), LoudnessError> {
        Ok(self.state.add_frames_f32(interleaved)?)
    }

    /// The track's figures so far.
    pub fn loudness(&self) -> Result<Loudness, LoudnessError> {
        let integrated = self.state.loudness_global()?;
        let range = self.state.loudness_range()?;
        Ok(Loudness::from_figures(integrated, range, self.true_peak()?))
    }

    /// Lets go of what only more samples would need (the 3 s window of samples, 2.1 MB at
    /// 44.1 kHz stereo, 9.2 MB at 192 kHz) and keeps what the album's figure needs: the
    /// gating histograms and the true peak. An album holds one such meter per track until its
    /// figure is made. No samples may be pushed after this.
    pub fn keep_for_album(&mut self) -> Result<(), LoudnessError> {
        if self.kept_peak.is_none() {
            self.kept_peak = Some(self.true_peak()?);
            // A new rate and channel count reallocate the window (8 kHz mono: 192 KB) and
            // the filters, and leave the block histories as they are.
            self.state.change_parameters(1, 8_000)?;
        }
        Ok(())
    }

    fn true_peak(&self) -> Result<f64, LoudnessError> {
        if let Some(peak) = self.kept_peak {
            return Ok(peak);
        }
        let mut peak = 0.0f64;
        for c in 0..self.channels {
            peak = peak.max(self.state.true_peak(c)?);
        }
        Ok(peak)
    }

    /// The album's figures: loudness gated over all its tracks' blocks together (as if the
    /// tracks were one stream, not an average of their LUFS), range over all of them, and
    /// the highest track peak.
    pub fn album(tracks: &[&Meter]) -> Result<Loudness, LoudnessError> {
        if tracks.is_empty() {
            return Err(LoudnessError("an album with no measured track".into()));
        }
        let integrated = EbuR128::loudness_global_multiple(tracks.iter().map(|m| &m.state))?;
        let range = EbuR128::loudness_range_multiple(tracks.iter().map(|m| &m.state))?;
        let mut peak = 0.0f64;
        for m in tracks {
            peak = peak.max(m.true_peak()?);
        }
        Ok(Loudness::from_figures(integrated, range, peak))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, channels: u16, seconds: f64, amplitude: f32) -> Vec<f32> {
        let frames = (seconds * f64::from(rate)) as usize;
        let mut v = Vec::with_capacity(frames * usize::from(channels));
        for i in 0..frames {
            let s = amplitude
                * (2.0 * std::f64::consts::PI * 997.0 * i as f64 / f64::from(rate)).sin() as f32;
            for _ in 0..channels {
                v.push(s);
            }
        }
        v
    }

    #[test]
    fn a_full_scale_stereo_sine_is_minus_3_lufs_and_never_gains_past_its_peak() {
        let mut m = Meter::new(2, 48_000).unwrap();
        m.push(&sine(48_000, 2, 5.0, 0.5)).unwrap();
        let l = m.loudness().unwrap();
        // A 997 Hz sine at -6 dBFS on both channels: -6 - 3.01 + 3.01 (two channels) ≈ -6.0
        // LUFS (the K-weighting is +0.0x dB near 1 kHz).
        assert!((l.integrated_lufs + 6.0).abs() < 0.1, "{l:?}");
        assert!((l.true_peak - 0.5).abs() < 0.01, "{l:?}");
        assert!((l.gain_db - (-12.0)).abs() < 0.1, "{l:?}");
        assert!((l.max_gain_db - 6.02).abs() < 0.1, "{l:?}");
        assert_eq!(l.safe_gain_db(), l.gain_db);
    }

    #[test]
    fn a_quiet_track_gets_a_gain_capped_by_its_peak() {
        let mut m = Meter::new(1, 44_100).unwrap();
        let mut pcm = sine(44_100, 1, 4.0, 0.01);
        // One loud click: the peak, not the loudness, limits the gain.
        pcm[10_000] = 0.9;
        m.push(&pcm).unwrap();
        let l = m.loudness().unwrap();
        assert!(l.gain_db > 10.0, "{l:?}");
        assert!(l.safe_gain_db() <= l.max_gain_db);
        assert!(10f64.powf(l.safe_gain_db() / 20.0) * l.true_peak <= 1.0 + 1e-3);
    }

    #[test]
    fn album_loudness_gates_over_the_tracks_together() {
        let mut loud = Meter::new(2, 48_000).unwrap();
        loud.push(&sine(48_000, 2, 6.0, 0.5)).unwrap();
        let mut quiet = Meter::new(2, 48_000).unwrap();
        quiet.push(&sine(48_000, 2, 6.0, 0.2)).unwrap();
        let album = Meter::album(&[&loud, &quiet]).unwrap();
        let (a, b) = (
            loud.loudness().unwrap().integrated_lufs,
            quiet.loudness().unwrap().integrated_lufs,
        );
        // The kept part gives the same figures, track and album.
        let before = loud.loudness().unwrap();
        loud.keep_for_album().unwrap();
        quiet.keep_for_album().unwrap();
        assert_eq!(loud.loudness().unwrap(), before);
        assert_eq!(Meter::album(&[&loud, &quiet]).unwrap(), album);
        // The energy mean of -6 and -14 LUFS blocks is -8.4 LUFS (the quiet track is above
        // the relative gate, 10 LU under that mean), not their -10 average.
        assert!(
            (album.integrated_lufs - (-8.37)).abs() < 0.2,
            "{album:?} {a} {b}"
        );
        assert!(album.true_peak >= 0.49);
    }

    #[test]
    fn silence_is_stored_as_the_absolute_gate() {
        let mut m = Meter::new(2, 48_000).unwrap();
        m.push(&vec![0.0; 48_000 * 2 * 2]).unwrap();
        let l = m.loudness().unwrap();
        assert_eq!(l.integrated_lufs, -70.0);
        assert!(serde_json::to_string(&l).is_ok());
    }
}
