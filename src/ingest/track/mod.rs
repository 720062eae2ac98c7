//! Packaging one track: decode, encode every rendition, cut, seal, store. Plain blocking code.
//!
//! - `pipeline`: every rendition's encoder, fed in one pass over the source.
//! - `preview_clip`: the preview's window, caught from the 48 kHz stream as it passes.
//! - `writer`: one rendition's segments cut, sealed and written as they come, then its
//!   init segment and manifest.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::progress::Observer;
use super::rendition::PIPELINE_VERSION;
use crate::config::IngestSettings;
use crate::keys::Keyring;
use crate::media::Rendition;
use crate::media::decode::{self, DecodeError, EmbeddedPicture};
use crate::media::flac::{self, LosslessInput};
use crate::media::loudness::Meter;
use crate::media::pcm::SourceSamples;
use crate::seal::ContentKey;
use crate::store::{MANIFEST_FORMAT, RenditionManifest, Store, TrackRecord, new_generation};

mod lyrics;
mod pipeline;
mod preview_clip;
mod writer;

use pipeline::Pipeline;

/// Why a track could not be packaged. Each names the source file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackError {
    /// The source could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An encoder or muxer failed.
    #[error("{path}: {reason}")]
    Encode {
        /// The source.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Keys could not be had.
    #[error("{path}: content key: {reason}")]
    Key {
        /// The source.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The packaged store could not be written.
    #[error("{path}: store: {reason}")]
    Store {
        /// The source.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Decoding or encoding panicked; caught so the run goes on.
    #[error("{path}: internal error while packaging (a decoder or encoder panicked: {message})")]
    Panicked {
        /// The source.
        path: PathBuf,
        /// The panic message.
        message: String,
    },
}

/// Everything needed to package one track.
pub struct TrackJob<'a> {
    /// Album id.
    pub album: &'a str,
    /// Track number, from 1.
    pub track: u32,
    /// Source file.
    pub path: PathBuf,
    /// Title from album.toml, if set there.
    pub title_override: Option<String>,
    /// Preview window start, seconds.
    pub preview_start: f64,
    /// Preview length, seconds.
    pub preview_seconds: f64,
    /// Output-shaping settings.
    pub settings: &'a IngestSettings,
    /// Keys.
    pub keyring: &'a Keyring,
    /// Output.
    pub store: &'a Store,
    /// Re-package even when unchanged.
    pub force: bool,
}

/// What packaging a track did.
pub struct TrackOutcome {
    /// The track record now in the store.
    pub record: TrackRecord,
    /// False when the store already held this exact packaging.
    pub packaged: bool,
    /// Seconds of audio.
    pub audio_seconds: f64,
    /// Sealed bytes written (0 when unchanged).
    pub bytes_written: u64,
    /// Renditions written (0 when unchanged).
    pub renditions_written: usize,
    /// Cover art found in the file.
    pub cover: Option<EmbeddedPicture>,
    /// The loudness meter's state when this run measured the track (the album's figure is
    /// gated over every track's blocks together).
    pub meter: Option<Meter>,
    /// A bad `.lrc` beside the track (the track itself is packaged).
    pub lyrics_failure: Option<crate::ingest::Failure>,
}

const STEPS: u64 = 3;

/// Packages one track, catching panics from codecs so that they fail only this track.
pub fn package(job: &TrackJob<'_>, observer: &dyn Observer) -> Result<TrackOutcome, TrackError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        package_inner(job, observer)
    })) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(TrackError::Panicked {
                path: job.path.clone(),
                message,
            })
        }
    }
}

fn package_inner(job: &TrackJob<'_>, observer: &dyn Observer) -> Result<TrackOutcome, TrackError> {
    let step = |name: &str, n: u64| observer.track_step(job.album, job.track, name, n, STEPS);
    let path = &job.path;
    let store_err = |e: crate::store::StoreError| TrackError::Store {
        path: path.clone(),
        reason: e.to_string(),
    };

    step("checking", 0);
    let keys = Rendition::ALL
        .iter()
        .map(|r| {
            job.keyring
                .content_key(job.album, job.track, r.as_str())
                .map_err(|e| TrackError::Key {
                    path: path.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<ContentKey>, _>>()?;
    let fingerprint = fingerprint(job)?;
    // Sealed under a key the keys folder still holds: key changes are the business of
    // content-key rotation, which re-seals the store itself (and may be midway), so a key
    // change alone never sends a track back through the encoders.
    let sealed_under_known_key = |m: &RenditionManifest| {
        m.key_id.parse().is_ok_and(|id| {
            matches!(
                job.keyring
                    .content_key_by_id(job.album, job.track, &m.rendition, id),
                Ok(Some(_))
            )
        })
    };
    if !job.force
        && let Some(existing) = job.store.read_track(job.album, job.track).map_err(store_err)?
        && existing.fingerprint == fingerprint
        && Rendition::ALL.iter().all(|r| {
            matches!(job.store.read_manifest(job.album, job.track, r.as_str()), Ok(Some(m)) if job.store.is_complete(&m) && sealed_under_known_key(&m))
        })
    {
        let seconds = existing.source_samples as f64 / f64::from(existing.source_sample_rate.max(1));
        let mut record = existing;
        let (lyrics_failure, changed) = lyrics::settle(job, &mut record, None)?;
        if changed {
            job.store.write_track(&record).map_err(store_err)?;
        }
        return Ok(TrackOutcome { record, packaged: false, audio_seconds: seconds, bytes_written: 0, renditions_written: 0, cover: None, meter: None, lyrics_failure });
    }

    step("encoding", 1);
    let mut reader = decode::open(path)?;
    if reader.channels > 2 {
        return Err(encode_err(
            job,
            format!(
                "{} channels: encore packages mono and stereo",
                reader.channels
            ),
        ));
    }
    let plan = lossless_plan(job, &reader)?;
    let generation = new_generation().map_err(|e| TrackError::Key {
        path: path.clone(),
        reason: e,
    })?;
    let key_for =
        |name: Rendition| &keys[Rendition::ALL.iter().position(|r| *r == name).unwrap_or(0)];
    let mut pipeline = Pipeline::new(job, &reader, plan, &key_for, &generation)?;
    // One pass over the source: every rendition's encoder takes each packet as it is
    // decoded, and each finished segment is sealed and written at once, so what is held is
    // a few packets and one segment per rendition, whatever the track's length.
    while let Some(chunk) = reader.next_chunk()? {
        pipeline.push(chunk.int, chunk.float)?;
    }
    step("sealing", 2);
    let frames = reader.frames_read();
    let (written, mut meter) = pipeline.finish(frames)?;
    let loudness = match &mut meter {
        Some(m) => {
            let l = m.loudness().map_err(|x| encode_err(job, x.to_string()))?;
            m.keep_for_album()
                .map_err(|x| encode_err(job, x.to_string()))?;
            Some(l)
        }
        None => None,
    };

    let title = job
        .title_override
        .clone()
        .or_else(|| reader.tags.title.clone())
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let mut record = TrackRecord {
        format: MANIFEST_FORMAT,
        album: job.album.to_string(),
        track: job.track,
        source_file: path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        fingerprint,
        title,
        artist: reader.tags.artist.clone(),
        source_codec: reader.codec.clone(),
        source_sample_rate: reader.sample_rate,
        source_samples: frames,
        channels: reader.channels,
        renditions: Rendition::ALL
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        loudness,
        lyrics: None,
    };
    let (lyrics_failure, _) =
        lyrics::settle(job, &mut record, Some(reader.tags.lyrics.as_deref()))?;
    job.store.write_track(&record).map_err(store_err)?;
    step("done", STEPS);
    Ok(TrackOutcome {
        audio_seconds: frames as f64 / f64::from(reader.sample_rate.max(1)),
        record,
        packaged: true,
        bytes_written: written,
        renditions_written: Rendition::ALL.len(),
        cover: reader.cover.take(),
        meter,
        lyrics_failure,
    })
}

/// Measures a source's loudness alone (decode and meter, no encoder): for a track this run
/// did not package whose meter the album's figure needs. CPU-bound: a blocking thread.
pub fn measure(path: &std::path::Path) -> Result<Meter, TrackError> {
    let mut reader = decode::open(path)?;
    let e = |x: crate::media::loudness::LoudnessError| TrackError::Encode {
        path: path.to_path_buf(),
        reason: x.to_string(),
    };
    let mut meter = Meter::new(reader.channels, reader.sample_rate).map_err(e)?;
    while let Some(chunk) = reader.next_chunk()? {
        meter.push(chunk.float).map_err(e)?;
    }
    meter.keep_for_album().map_err(e)?;
    Ok(meter)
}

fn encode_err(job: &TrackJob<'_>, reason: String) -> TrackError {
    TrackError::Encode {
        path: job.path.clone(),
        reason,
    }
}

/// How the lossless rendition codes the source's samples. A source deeper than 24 bits is
/// coded at 24 when its low bits are zero throughout (it then plays everywhere) and at its
/// full depth otherwise; telling which needs every sample, so such a source is decoded
/// once more beforehand, keeping nothing.
fn lossless_plan(
    job: &TrackJob<'_>,
    reader: &decode::SourceReader,
) -> Result<LosslessInput, TrackError> {
    let SourceSamples::Integer { bits } = reader.source else {
        return Ok(LosslessInput::plan(reader.source, true));
    };
    if bits <= 24 {
        return Ok(LosslessInput::plan(reader.source, true));
    }
    let mut scan = decode::open(&job.path)?;
    let mut low_zero = true;
    while let Some(chunk) = scan.next_chunk()? {
        if !chunk.int.is_some_and(|int| flac::low_bits_zero(int, bits)) {
            low_zero = false;
            break;
        }
    }
    Ok(LosslessInput::plan(reader.source, low_zero))
}

/// Hash over the source bytes, the settings, the preview window and the pipeline version.
fn fingerprint(job: &TrackJob<'_>) -> Result<String, TrackError> {
    let source = crate::catalog::file_sha256_hex(&job.path).map_err(|e| {
        TrackError::Decode(DecodeError::Io {
            path: job.path.clone(),
            source: e,
        })
    })?;
    let mut hasher = Sha256::new();
    hasher.update(
        format!(
            "{source}|v{PIPELINE_VERSION}|{}|{}|{}|{}|{}",
            job.settings.fingerprint(),
            job.album,
            job.track,
            job.preview_start,
            job.preview_seconds
        )
        .as_bytes(),
    );
    Ok(hex::encode(hasher.finalize()))
}
