//! Packaging one track: decode, encode every rendition, cut, seal, store. Plain blocking code.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::progress::Observer;
use super::rendition::{self, AAC, HIGH, LOSSLESS, PIPELINE_VERSION, PREVIEW, STANDARD};
use crate::config::IngestSettings;
use crate::media::decode::{self, DecodeError, EmbeddedPicture};
use crate::media::encoded::EncodedAudio;
use crate::media::{aac, flac, mp4, opus, preview, resample, segment};
use crate::seal::{self, ContentKey, Keyring, SealContext, SegmentSlot};
use crate::store::{
    MANIFEST_FORMAT, PreviewWindowRecord, RenditionManifest, SealedSegment, SegmentRecord, Store,
    TrackRecord, new_generation,
};

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
}

const STEPS: u64 = 8;

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
    let encode_err = |reason: String| TrackError::Encode {
        path: path.clone(),
        reason,
    };
    let store_err = |e: crate::store::StoreError| TrackError::Store {
        path: path.clone(),
        reason: e.to_string(),
    };

    step("checking", 0);
    let keys = rendition::ALL
        .iter()
        .map(|r| {
            job.keyring
                .content_key(job.album, job.track, r)
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
        && rendition::ALL.iter().all(|r| {
            matches!(job.store.read_manifest(job.album, job.track, r), Ok(Some(m)) if job.store.is_complete(&m) && sealed_under_known_key(&m))
        })
    {
        let seconds = existing.source_samples as f64 / f64::from(existing.source_sample_rate.max(1));
        return Ok(TrackOutcome { record: existing, packaged: false, audio_seconds: seconds, bytes_written: 0, renditions_written: 0, cover: None });
    }

    step("decoding", 1);
    let decoded = decode::decode_file(path)?;
    let pcm = &decoded.pcm;
    if pcm.channels > 2 {
        return Err(encode_err(format!(
            "{} channels: encore packages mono and stereo",
            pcm.channels
        )));
    }
    let generation = new_generation().map_err(|e| TrackError::Key {
        path: path.clone(),
        reason: e,
    })?;
    let mut written = 0u64;
    let key_for = |name: &str| &keys[rendition::ALL.iter().position(|r| *r == name).unwrap_or(0)];

    step("lossless", 2);
    let (flac_audio, exactness) = flac::encode(pcm).map_err(|e| encode_err(e.to_string()))?;
    let (mut m, sealed) = write_rendition(
        job,
        LOSSLESS,
        &flac_audio,
        key_for(LOSSLESS),
        &generation,
        None,
    )?;
    m.bit_exact = Some(exactness == flac::Exactness::BitExact);
    written += store_manifest(job, (m, sealed))?;
    drop(flac_audio);

    step("resampling", 3);
    let pcm48 = resample::resample_interleaved(
        &pcm.float,
        pcm.channels,
        pcm.sample_rate,
        resample::OPUS_RATE,
    )
    .map_err(|e| encode_err(e.to_string()))?;
    let per_channel = |stereo_rate: u32| {
        if pcm.channels == 1 {
            stereo_rate / 2
        } else {
            stereo_rate
        }
    };

    for (n, (name, rate)) in [
        (HIGH, job.settings.high_bitrate),
        (STANDARD, job.settings.standard_bitrate),
    ]
    .into_iter()
    .enumerate()
    {
        step(name, 4 + n as u64);
        let audio = opus::encode(&pcm48, pcm.channels, per_channel(rate))
            .map_err(|e| encode_err(e.to_string()))?;
        let m = write_rendition(job, name, &audio, key_for(name), &generation, None)?;
        written += store_manifest(job, m)?;
    }

    step(AAC, 6);
    // Reuse whichever PCM is already at the AAC rate: the source itself (44.1/48 kHz
    // sources, no resampling at all) or the 48 kHz copy made for Opus (96/192 kHz).
    let aac_rate = aac::coded_rate(pcm.sample_rate);
    let resampled;
    let aac_input: &[f32] = if aac_rate == pcm.sample_rate {
        &pcm.float
    } else if aac_rate == resample::OPUS_RATE {
        &pcm48
    } else {
        resampled =
            resample::resample_interleaved(&pcm.float, pcm.channels, pcm.sample_rate, aac_rate)
                .map_err(|e| encode_err(e.to_string()))?;
        &resampled
    };
    // Mono stays mono at half the rate, like the Opus tiers: an upmix would spend bits on
    // a copy and tell players there is a stereo image when there is none.
    let audio = aac::encode(
        aac_input,
        pcm.channels,
        aac_rate,
        per_channel(job.settings.aac_bitrate),
    )
    .map_err(|e| encode_err(e.to_string()))?;
    let m = write_rendition(job, AAC, &audio, key_for(AAC), &generation, None)?;
    written += store_manifest(job, m)?;
    drop(audio);

    step(PREVIEW, 7);
    let span = preview::span(
        pcm48.len() / usize::from(pcm.channels),
        resample::OPUS_RATE,
        job.preview_start,
        job.preview_seconds,
    );
    let clip = preview::clip(&pcm48, pcm.channels, resample::OPUS_RATE, span);
    // AAC-LC, not Opus: the preview is what a non-buyer hears in whatever player they have,
    // and AAC is the one codec every HLS player plays (Apple's before Opus support, and
    // hardware decoders), so nobody is left without a preview.
    let audio = aac::encode(
        &clip,
        pcm.channels,
        resample::OPUS_RATE,
        per_channel(job.settings.standard_bitrate),
    )
    .map_err(|e| encode_err(e.to_string()))?;
    let window = PreviewWindowRecord {
        start_seconds: span.start as f64 / f64::from(resample::OPUS_RATE),
        seconds: span.len as f64 / f64::from(resample::OPUS_RATE),
    };
    let m = write_rendition(
        job,
        PREVIEW,
        &audio,
        key_for(PREVIEW),
        &generation,
        Some(window),
    )?;
    written += store_manifest(job, m)?;

    let title = job
        .title_override
        .clone()
        .or_else(|| decoded.tags.title.clone())
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let record = TrackRecord {
        format: MANIFEST_FORMAT,
        album: job.album.to_string(),
        track: job.track,
        source_file: path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        fingerprint,
        title,
        artist: decoded.tags.artist.clone(),
        source_codec: decoded.codec.clone(),
        source_sample_rate: pcm.sample_rate,
        source_samples: pcm.frames() as u64,
        channels: pcm.channels,
        renditions: rendition::ALL.iter().map(|s| s.to_string()).collect(),
    };
    job.store.write_track(&record).map_err(store_err)?;
    step("done", STEPS);
    Ok(TrackOutcome {
        audio_seconds: pcm.seconds(),
        record,
        packaged: true,
        bytes_written: written,
        renditions_written: rendition::ALL.len(),
        cover: decoded.cover,
    })
}

/// Cuts, seals and builds the manifest of one rendition (segments not yet stored).
fn write_rendition(
    job: &TrackJob<'_>,
    name: &str,
    audio: &EncodedAudio,
    key: &ContentKey,
    generation: &str,
    preview: Option<PreviewWindowRecord>,
) -> Result<(RenditionManifest, Vec<SealedSegment>), TrackError> {
    let path = &job.path;
    let packaged =
        segment::package(audio, job.settings.segment_seconds).map_err(|e| TrackError::Encode {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let seal_one = |slot: SegmentSlot, bytes: Vec<u8>| {
        let ctx = SealContext {
            album: job.album,
            track: job.track,
            rendition: name,
            slot,
        };
        seal::seal(key, &ctx, bytes).map_err(|e| TrackError::Key {
            path: path.clone(),
            reason: e.to_string(),
        })
    };
    let mut sealed = Vec::with_capacity(packaged.segments.len() + 1);
    sealed.push(SealedSegment {
        index: 0,
        start: 0,
        duration: 0,
        bytes: seal_one(SegmentSlot::Init, packaged.init)?,
    });
    for s in packaged.segments {
        sealed.push(SealedSegment {
            index: s.index,
            start: s.start,
            duration: s.duration,
            bytes: seal_one(SegmentSlot::Media(s.index), s.bytes)?,
        });
    }
    let empty = SegmentRecord {
        index: 0,
        file: String::new(),
        start: 0,
        duration: 0,
        bytes: 0,
        sha256: String::new(),
    };
    let manifest = RenditionManifest {
        format: MANIFEST_FORMAT,
        album: job.album.to_string(),
        track: job.track,
        rendition: name.to_string(),
        generation: generation.to_string(),
        codec: mp4::codec_name(&audio.codec).to_string(),
        codec_string: mp4::codec_string(&audio.codec).to_string(),
        sample_rate: audio.sample_rate,
        channels: audio.channels,
        bits_per_sample: audio.bits_per_sample,
        duration_samples: audio.presented_samples,
        skip_samples: audio.edit.as_ref().map(|e| e.media_time).unwrap_or(0),
        bitrate: audio.bitrate,
        key_id: key.id().to_string(),
        bit_exact: None,
        preview,
        init: empty,
        segments: Vec::new(),
        retiring: Vec::new(),
    };
    Ok((manifest, sealed))
}

fn store_manifest(
    job: &TrackJob<'_>,
    (manifest, sealed): (RenditionManifest, Vec<SealedSegment>),
) -> Result<u64, TrackError> {
    // The store keeps the generation this one replaces as retiring (players that listed it
    // keep playing) and deletes debris of interrupted runs.
    let written = job
        .store
        .write_rendition(manifest, sealed)
        .map_err(|e| TrackError::Store {
            path: job.path.clone(),
            reason: e.to_string(),
        })?;
    Ok(written.total_bytes())
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
