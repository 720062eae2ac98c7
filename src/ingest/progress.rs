//! Progress of an ingest run: bars on a terminal, log lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives progress events; implementations must be cheap, they run on worker threads.
pub trait Observer: Send + Sync {
    /// An album with `tracks` tracks begins.
    fn album_started(&self, album: &str, tracks: usize);
    /// A track moved to `step` (`step_no` of `steps`).
    fn track_step(&self, album: &str, track: u32, step: &str, step_no: u64, steps: u64);
    /// A track finished; `note` says how ("packaged", "unchanged", or the error).
    fn track_finished(&self, album: &str, track: u32, ok: bool, note: &str);
    /// An album finished.
    fn album_finished(&self, album: &str);
}

/// Picks bars for a terminal on stderr and log lines otherwise.
pub fn for_stderr() -> Box<dyn Observer> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(LogLines)
    }
}

/// Plain log lines through `tracing`, for CI logs and pipes.
pub struct LogLines;

impl Observer for LogLines {
    fn album_started(&self, album: &str, tracks: usize) {
        tracing::info!(album, tracks, "ingest: album started");
    }
    fn track_step(&self, album: &str, track: u32, step: &str, step_no: u64, steps: u64) {
        tracing::debug!(album, track, step, step_no, steps, "ingest: step");
    }
    fn track_finished(&self, album: &str, track: u32, ok: bool, note: &str) {
        if ok {
            tracing::info!(album, track, "ingest: track {note}");
        } else {
            tracing::error!(album, track, "ingest: track failed: {note}");
        }
    }
    fn album_finished(&self, album: &str) {
        tracing::info!(album, "ingest: album finished");
    }
}

/// A no-op observer, for tests and embedding.
pub struct Silent;

impl Observer for Silent {
    fn album_started(&self, _: &str, _: usize) {}
    fn track_step(&self, _: &str, _: u32, _: &str, _: u64, _: u64) {}
    fn track_finished(&self, _: &str, _: u32, _: bool, _: &str) {}
    fn album_finished(&self, _: &str) {}
}

/// indicatif bars: one per album (tracks done) and one per track in flight (steps).
pub struct Bars {
    multi: MultiProgress,
    albums: Mutex<HashMap<String, ProgressBar>>,
    tracks: Mutex<HashMap<(String, u32), ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            albums: Mutex::new(HashMap::new()),
            tracks: Mutex::new(HashMap::new()),
        }
    }
}

fn album_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} tracks {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn track_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix} [{bar:20}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Observer for Bars {
    fn album_started(&self, album: &str, tracks: usize) {
        let bar = self.multi.add(ProgressBar::new(tracks as u64));
        bar.set_style(album_style());
        bar.set_prefix(album.to_string());
        if let Ok(mut m) = self.albums.lock() {
            m.insert(album.to_string(), bar);
        }
    }
    fn track_step(&self, album: &str, track: u32, step: &str, step_no: u64, steps: u64) {
        let Ok(mut m) = self.tracks.lock() else {
            return;
        };
        let bar = m.entry((album.to_string(), track)).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new(steps));
            b.set_style(track_style());
            b.set_prefix(format!("{album} #{track:02}"));
            b
        });
        bar.set_length(steps);
        bar.set_position(step_no);
        bar.set_message(step.to_string());
    }
    fn track_finished(&self, album: &str, track: u32, ok: bool, note: &str) {
        if let Ok(mut m) = self.tracks.lock()
            && let Some(bar) = m.remove(&(album.to_string(), track))
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if !ok {
            let _ = self
                .multi
                .println(format!("error: {album} track {track}: {note}"));
        }
        if let Ok(m) = self.albums.lock()
            && let Some(bar) = m.get(album)
        {
            bar.inc(1);
        }
    }
    fn album_finished(&self, album: &str) {
        if let Ok(mut m) = self.albums.lock()
            && let Some(bar) = m.remove(album)
        {
            bar.finish();
        }
    }
}
