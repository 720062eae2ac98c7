//! The ingest pipeline: album folders under `media/` to the packaged store, tracks in
//! parallel on blocking threads, with progress and a summary.

pub mod extras;
pub mod progress;
pub mod rendition;
pub mod track;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::catalog::{self, AlbumSource};
use crate::config::IngestSettings;
use crate::keys::Keyring;
use crate::store::{AlbumRecord, MANIFEST_FORMAT, Store};

pub use progress::Observer;
pub use track::{TrackError, TrackOutcome};

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestJob {
    /// Folder of album folders (scanned when `albums` is empty).
    pub media_dir: PathBuf,
    /// Specific album folders; empty means every album under `media_dir`.
    pub albums: Vec<PathBuf>,
    /// Output-shaping settings.
    pub settings: IngestSettings,
    /// Re-package even unchanged tracks.
    pub force: bool,
}

/// One thing that failed, named by file or folder.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The file or folder at fault.
    pub path: PathBuf,
    /// A sentence a person understands.
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct IngestReport {
    /// Albums seen.
    pub albums: usize,
    /// Tracks packaged in this run.
    pub tracks_packaged: usize,
    /// Tracks already up to date.
    pub tracks_unchanged: usize,
    /// Renditions written.
    pub renditions: usize,
    /// Sealed bytes written.
    pub bytes: u64,
    /// Seconds of audio packaged in this run.
    pub audio_seconds: f64,
    /// Wall-clock seconds of the run.
    pub wall_seconds: f64,
    /// Tracks whose loudness this run measured (packaged ones, and unchanged ones whose
    /// meter a changed album's figure needed).
    pub tracks_measured: usize,
    /// Everything that failed.
    pub failures: Vec<Failure>,
}

impl IngestReport {
    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Audio seconds packaged per wall-clock second.
    pub fn realtime_factor(&self) -> f64 {
        if self.wall_seconds > 0.0 {
            self.audio_seconds / self.wall_seconds
        } else {
            0.0
        }
    }

    /// The one-paragraph summary printed at the end of `encore ingest`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} album(s): {} track(s) packaged, {} unchanged, {} rendition(s), {:.1} MB sealed, {:.1} s of audio in {:.1} s ({:.1}x realtime), loudness measured on {} track(s)",
            self.albums,
            self.tracks_packaged,
            self.tracks_unchanged,
            self.renditions,
            self.bytes as f64 / 1e6,
            self.audio_seconds,
            self.wall_seconds,
            self.realtime_factor(),
            self.tracks_measured
        );
        if !self.failures.is_empty() {
            s.push_str(&format!("\n{} failure(s):", self.failures.len()));
            for f in &self.failures {
                s.push_str(&format!("\n  {}: {}", f.path.display(), f.reason));
            }
        }
        s
    }
}

/// Runs an ingest. Never panics on bad input: every failure lands in the report.
pub async fn run(
    job: IngestJob,
    keyring: Arc<Keyring>,
    store: Store,
    observer: Arc<dyn Observer>,
) -> IngestReport {
    let started = Instant::now();
    let mut report = IngestReport::default();
    let mut albums = Vec::new();
    if job.albums.is_empty() {
        match catalog::scan_media_dir(&job.media_dir) {
            Ok(scan) => {
                for r in scan {
                    match r {
                        Ok(a) => albums.push(a),
                        Err(e) => report.failures.push(failure_of(&e, &job.media_dir)),
                    }
                }
            }
            Err(e) => report.failures.push(failure_of(&e, &job.media_dir)),
        }
    } else {
        for dir in &job.albums {
            match catalog::load_album(dir) {
                Ok(a) => albums.push(a),
                Err(e) => report.failures.push(failure_of(&e, dir)),
            }
        }
    }
    report.albums = albums.len();

    let permits = Arc::new(tokio::sync::Semaphore::new(job.settings.parallelism.max(1)));
    let settings = Arc::new(job.settings.clone());
    let mut album_tasks = Vec::new();
    for album in albums {
        let (keyring, store, observer, permits, settings) = (
            keyring.clone(),
            store.clone(),
            observer.clone(),
            permits.clone(),
            settings.clone(),
        );
        let force = job.force;
        album_tasks.push(tokio::spawn(async move {
            ingest_album(album, keyring, store, observer, permits, settings, force).await
        }));
    }
    for t in album_tasks {
        match t.await {
            Ok(part) => {
                report.tracks_packaged += part.tracks_packaged;
                report.tracks_unchanged += part.tracks_unchanged;
                report.renditions += part.renditions;
                report.bytes += part.bytes;
                report.audio_seconds += part.audio_seconds;
                report.tracks_measured += part.tracks_measured;
                report.failures.extend(part.failures);
            }
            Err(e) => report.failures.push(Failure {
                path: job.media_dir.clone(),
                reason: format!("album task failed: {e}"),
            }),
        }
    }
    report.wall_seconds = started.elapsed().as_secs_f64();
    report
}

fn failure_of(e: &dyn std::fmt::Display, path: &Path) -> Failure {
    Failure {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

async fn ingest_album(
    album: AlbumSource,
    keyring: Arc<Keyring>,
    store: Store,
    observer: Arc<dyn Observer>,
    permits: Arc<tokio::sync::Semaphore>,
    settings: Arc<IngestSettings>,
    force: bool,
) -> IngestReport {
    let mut report = IngestReport::default();
    let album = Arc::new(album);
    let id = album.id.to_string();
    observer.album_started(&id, album.tracks.len());
    let mut tasks = Vec::new();
    for t in album.tracks.iter() {
        let (album, keyring, store, observer, permits, settings) = (
            album.clone(),
            keyring.clone(),
            store.clone(),
            observer.clone(),
            permits.clone(),
            settings.clone(),
        );
        let number = t.number;
        let path = t.path.clone();
        tasks.push((
            path.clone(),
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                tokio::task::spawn_blocking(move || {
                    let id = album.id.to_string();
                    let window = album.preview_window(number);
                    let job = track::TrackJob {
                        album: &id,
                        track: number,
                        path,
                        title_override: album
                            .info
                            .as_ref()
                            .and_then(|i| i.track_title(number))
                            .map(str::to_owned),
                        preview_start: window.start_seconds,
                        preview_seconds: window.seconds,
                        settings: &settings,
                        keyring: &keyring,
                        store: &store,
                        force,
                    };
                    let result = track::package(&job, observer.as_ref());
                    match &result {
                        Ok(o) => observer.track_finished(
                            &id,
                            number,
                            true,
                            if o.packaged { "packaged" } else { "unchanged" },
                        ),
                        Err(e) => observer.track_finished(&id, number, false, &e.to_string()),
                    }
                    result
                })
                .await
            }),
        ));
    }
    let mut packaged_tracks = Vec::new();
    let mut meters = Vec::new();
    let mut embedded_cover = None;
    for (path, task) in tasks {
        match task.await {
            Ok(Ok(Ok(outcome))) => {
                if outcome.packaged {
                    report.tracks_packaged += 1;
                } else {
                    report.tracks_unchanged += 1;
                }
                report.renditions += outcome.renditions_written;
                report.bytes += outcome.bytes_written;
                if outcome.packaged {
                    report.audio_seconds += outcome.audio_seconds;
                }
                if embedded_cover.is_none() {
                    embedded_cover = outcome.cover;
                }
                report.failures.extend(outcome.lyrics_failure);
                if let Some(m) = outcome.meter {
                    report.tracks_measured += 1;
                    meters.push((outcome.record.track, m));
                }
                packaged_tracks.push(outcome.record);
            }
            Ok(Ok(Err(e))) => report.failures.push(Failure {
                path,
                reason: e.to_string(),
            }),
            Ok(Err(e)) | Err(e) => report.failures.push(Failure {
                path,
                reason: format!("worker failed: {e}"),
            }),
        }
    }
    let extras = {
        let (album, keyring, store) = (album.clone(), keyring.clone(), store.clone());
        tokio::task::spawn_blocking(move || {
            let previous = store.read_album(album.id.as_str()).ok().flatten();
            extras::package(&album, &keyring, &store, previous.as_ref())
        })
        .await
    };
    let extras = match extras {
        Ok((records, failures)) => {
            report.failures.extend(failures);
            records
        }
        Err(e) => {
            report.failures.push(Failure {
                path: album.dir.clone(),
                reason: format!("extras worker failed: {e}"),
            });
            Vec::new()
        }
    };
    let loudness = album_loudness(
        &album,
        &store,
        &settings,
        &mut packaged_tracks,
        meters,
        &mut report,
    )
    .await;
    if let Err(e) = write_album_record(
        &album,
        &store,
        &packaged_tracks,
        embedded_cover,
        extras,
        loudness,
    ) {
        report.failures.push(Failure {
            path: album.dir.clone(),
            reason: e,
        });
    }
    observer.album_finished(&id);
    report
}

/// The album's loudness: the previous figure when no track changed (a re-run measures
/// nothing), else gated over every track's meter together, measuring again (decode only)
/// the unchanged tracks this run did not package, and filling in track records written
/// before encore measured loudness.
async fn album_loudness(
    album: &Arc<AlbumSource>,
    store: &Store,
    settings: &IngestSettings,
    tracks: &mut [crate::store::TrackRecord],
    mut meters: Vec<(u32, crate::media::loudness::Meter)>,
    report: &mut IngestReport,
) -> Option<crate::media::loudness::Loudness> {
    let previous = store.read_album(album.id.as_str()).ok().flatten();
    let mut numbers: Vec<u32> = tracks.iter().map(|t| t.track).collect();
    numbers.sort_unstable();
    let previous_loudness = previous
        .filter(|p| p.tracks == numbers)
        .and_then(|p| p.loudness);
    if tracks.is_empty() {
        return None;
    }
    if meters.is_empty()
        && tracks.iter().all(|t| t.loudness.is_some())
        && previous_loudness.is_some()
    {
        return previous_loudness;
    }
    if !settings.loudness {
        return None;
    }
    for record in tracks.iter_mut() {
        if meters.iter().any(|(n, _)| *n == record.track) {
            continue;
        }
        let Some(source) = album.tracks.iter().find(|t| t.number == record.track) else {
            continue;
        };
        let path = source.path.clone();
        let measured = tokio::task::spawn_blocking(move || track::measure(&path)).await;
        let meter = match measured {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                report.failures.push(Failure {
                    path: source.path.clone(),
                    reason: format!("loudness not measured: {e}"),
                });
                return None;
            }
            Err(e) => {
                report.failures.push(Failure {
                    path: source.path.clone(),
                    reason: format!("loudness worker failed: {e}"),
                });
                return None;
            }
        };
        report.tracks_measured += 1;
        if record.loudness.is_none() {
            record.loudness = meter.loudness().ok();
            if let Err(e) = store.write_track(record) {
                report.failures.push(Failure {
                    path: source.path.clone(),
                    reason: format!("track record: {e}"),
                });
            }
        }
        meters.push((record.track, meter));
    }
    let all: Vec<&crate::media::loudness::Meter> = meters.iter().map(|(_, m)| m).collect();
    match crate::media::loudness::Meter::album(&all) {
        Ok(l) => Some(l),
        Err(e) => {
            report.failures.push(Failure {
                path: album.dir.clone(),
                reason: format!("album loudness: {e}"),
            });
            None
        }
    }
}

fn write_album_record(
    album: &AlbumSource,
    store: &Store,
    tracks: &[crate::store::TrackRecord],
    embedded: Option<crate::media::decode::EmbeddedPicture>,
    extras: Vec<crate::store::ExtraRecord>,
    loudness: Option<crate::media::loudness::Loudness>,
) -> Result<(), String> {
    let id = album.id.to_string();
    let previous = store.read_album(&id).ok().flatten();
    let (mut cover, mut cover_type) = (
        previous.as_ref().and_then(|p| p.cover.clone()),
        previous.as_ref().and_then(|p| p.cover_type.clone()),
    );
    if let Some(path) = &album.cover {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read cover {}: {e}", path.display()))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("jpg")
            .to_ascii_lowercase();
        let ext = if ext == "jpeg" {
            "jpg".to_string()
        } else {
            ext
        };
        cover_type = Some(
            if ext == "png" {
                "image/png"
            } else {
                "image/jpeg"
            }
            .to_string(),
        );
        cover = Some(
            store
                .write_cover(&id, &ext, &bytes)
                .map_err(|e| e.to_string())?,
        );
    } else if let Some(pic) = embedded {
        let ext = if pic.media_type.contains("png") {
            "png"
        } else {
            "jpg"
        };
        cover = Some(
            store
                .write_cover(&id, ext, &pic.data)
                .map_err(|e| e.to_string())?,
        );
        cover_type = Some(pic.media_type.clone());
    }
    let info = album.info.as_ref();
    let mut numbers: Vec<u32> = tracks.iter().map(|t| t.track).collect();
    numbers.sort_unstable();
    let first_tags = tracks.iter().find_map(|t| t.artist.clone());
    let record = AlbumRecord {
        format: MANIFEST_FORMAT,
        album: id.clone(),
        title: info
            .and_then(|i| i.title.clone())
            .unwrap_or_else(|| id.clone()),
        artist: info.and_then(|i| i.artist.clone()).or(first_tags),
        release_date: info.and_then(|i| i.release_date).map(|d| d.to_string()),
        price: info.and_then(|i| i.price.as_ref()).map(|p| p.minor_units),
        currency: info
            .and_then(|i| i.price.as_ref())
            .map(|p| p.currency.to_string()),
        cover,
        cover_type,
        tracks: numbers,
        on_sale_at: info.and_then(|i| i.on_sale_at),
        extras,
        loudness,
    };
    store.write_album(&record).map_err(|e| e.to_string())
}
