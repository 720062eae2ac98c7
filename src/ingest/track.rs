//! Packaging one track: decode, encode every rendition, cut, seal, store. Plain blocking code.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::progress::Observer;
use super::rendition::{self, AAC, HIGH, LOSSLESS, PIPELINE_VERSION, PREVIEW, STANDARD};
use crate::config::IngestSettings;
use crate::keys::Keyring;
use crate::media::aac::AacEncoder;
use crate::media::decode::{self, DecodeError, EmbeddedPicture};
use crate::media::encoded::CodedFrames;
use crate::media::flac::{FlacEncoder, LosslessInput};
use crate::media::opus::OpusEncoder;
use crate::media::pcm::SourceSamples;
use crate::media::resample::StreamResampler;
use crate::media::{aac, flac, mp4, preview, resample};
use crate::seal::{self, ContentKey, SealContext, SegmentSlot};
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
    let key_for = |name: &str| &keys[rendition::ALL.iter().position(|r| *r == name).unwrap_or(0)];
    let mut pipeline = Pipeline::new(job, &reader, plan, &key_for, &generation)?;
    // One pass over the source: every rendition's encoder takes each packet as it is
    // decoded, and each finished segment is sealed and written at once, so what is held is
    // a few packets and one segment per rendition, whatever the track's length.
    while let Some(chunk) = reader.next_chunk()? {
        pipeline.push(chunk.int, chunk.float)?;
    }
    step("sealing", 2);
    let frames = reader.frames_read();
    let written = pipeline.finish(frames)?;

    let title = job
        .title_override
        .clone()
        .or_else(|| reader.tags.title.clone())
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
        artist: reader.tags.artist.clone(),
        source_codec: reader.codec.clone(),
        source_sample_rate: reader.sample_rate,
        source_samples: frames,
        channels: reader.channels,
        renditions: rendition::ALL.iter().map(|s| s.to_string()).collect(),
    };
    job.store.write_track(&record).map_err(store_err)?;
    step("done", STEPS);
    Ok(TrackOutcome {
        audio_seconds: frames as f64 / f64::from(reader.sample_rate.max(1)),
        record,
        packaged: true,
        bytes_written: written,
        renditions_written: rendition::ALL.len(),
        cover: reader.cover.take(),
    })
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

/// Where the AAC rendition's input comes from.
enum AacInput {
    /// The source itself (44.1 and 48 kHz sources: no resampling at all).
    Source,
    /// The 48 kHz copy made for Opus (96/192/32 kHz... sources).
    Opus48,
    /// Its own conversion to 44.1 kHz (88.2/176.4/22.05 kHz sources).
    Own(Box<StreamResampler>),
}

/// Every rendition's encoder and segment writer for one pass over the source.
struct Pipeline<'j> {
    job: &'j TrackJob<'j>,
    channels: u16,
    plan: LosslessInput,
    ints: Vec<i32>,
    pcm48: Vec<f32>,
    pcm_aac: Vec<f32>,
    coded: CodedFrames,
    flac: FlacEncoder,
    to48: StreamResampler,
    high: OpusEncoder,
    standard: OpusEncoder,
    aac_input: AacInput,
    aac: AacEncoder,
    preview: PreviewCapture,
    preview_key: &'j ContentKey,
    generation: &'j str,
    lossless_out: RenditionWriter<'j>,
    high_out: RenditionWriter<'j>,
    standard_out: RenditionWriter<'j>,
    aac_out: RenditionWriter<'j>,
}

impl<'j> Pipeline<'j> {
    fn new(
        job: &'j TrackJob<'j>,
        reader: &decode::SourceReader,
        plan: LosslessInput,
        key_for: &dyn Fn(&str) -> &'j ContentKey,
        generation: &'j str,
    ) -> Result<Self, TrackError> {
        let e = |reason: String| encode_err(job, reason);
        let (rate, channels) = (reader.sample_rate, reader.channels);
        let per_channel = |stereo_rate: u32| {
            if channels == 1 {
                stereo_rate / 2
            } else {
                stereo_rate
            }
        };
        let aac_rate = aac::coded_rate(rate);
        let aac_input = if aac_rate == rate {
            AacInput::Source
        } else if aac_rate == resample::OPUS_RATE {
            AacInput::Opus48
        } else {
            AacInput::Own(Box::new(
                StreamResampler::new(channels, rate, aac_rate).map_err(|x| e(x.to_string()))?,
            ))
        };
        let writer = |name: &'static str, sample_rate: u32| {
            RenditionWriter::new(job, name, key_for(name), generation, sample_rate)
        };
        Ok(Pipeline {
            job,
            channels,
            plan,
            ints: Vec::new(),
            pcm48: Vec::new(),
            pcm_aac: Vec::new(),
            coded: CodedFrames::default(),
            flac: FlacEncoder::new(rate, channels, plan.bits()).map_err(|x| e(x.to_string()))?,
            to48: StreamResampler::new(channels, rate, resample::OPUS_RATE)
                .map_err(|x| e(x.to_string()))?,
            high: OpusEncoder::new(channels, per_channel(job.settings.high_bitrate))
                .map_err(|x| e(x.to_string()))?,
            standard: OpusEncoder::new(channels, per_channel(job.settings.standard_bitrate))
                .map_err(|x| e(x.to_string()))?,
            aac_input,
            // Mono stays mono at half the rate, like the Opus tiers: an upmix would spend
            // bits on a copy and tell players there is a stereo image when there is none.
            aac: AacEncoder::new(channels, aac_rate, per_channel(job.settings.aac_bitrate))
                .map_err(|x| e(x.to_string()))?,
            preview: PreviewCapture::new(
                channels,
                resample::OPUS_RATE,
                job.preview_start,
                job.preview_seconds,
            ),
            preview_key: key_for(PREVIEW),
            generation,
            lossless_out: writer(LOSSLESS, rate)?,
            high_out: writer(HIGH, resample::OPUS_RATE)?,
            standard_out: writer(STANDARD, resample::OPUS_RATE)?,
            aac_out: writer(AAC, aac_rate)?,
        })
    }

    fn push(&mut self, int: Option<&[i32]>, float: &[f32]) -> Result<(), TrackError> {
        let job = self.job;
        let e = |reason: String| encode_err(job, reason);
        self.ints.clear();
        self.plan.convert(int, float, &mut self.ints);
        self.flac
            .push(&self.ints, &mut self.coded)
            .map_err(|x| e(x.to_string()))?;
        self.lossless_out.take(&mut self.coded)?;

        self.pcm48.clear();
        self.to48
            .push(float, &mut self.pcm48)
            .map_err(|x| e(x.to_string()))?;
        self.feed48()?;
        match &mut self.aac_input {
            AacInput::Source => {
                self.aac
                    .push(float, &mut self.coded)
                    .map_err(|x| e(x.to_string()))?;
                self.aac_out.take(&mut self.coded)?;
            }
            AacInput::Own(r) => {
                self.pcm_aac.clear();
                r.push(float, &mut self.pcm_aac)
                    .map_err(|x| e(x.to_string()))?;
                self.aac
                    .push(&self.pcm_aac, &mut self.coded)
                    .map_err(|x| e(x.to_string()))?;
                self.aac_out.take(&mut self.coded)?;
            }
            AacInput::Opus48 => {}
        }
        Ok(())
    }

    /// Hands the 48 kHz samples in `pcm48` to everything made from them.
    fn feed48(&mut self) -> Result<(), TrackError> {
        let job = self.job;
        let e = |reason: String| encode_err(job, reason);
        self.high
            .push(&self.pcm48, &mut self.coded)
            .map_err(|x| e(x.to_string()))?;
        self.high_out.take(&mut self.coded)?;
        self.standard
            .push(&self.pcm48, &mut self.coded)
            .map_err(|x| e(x.to_string()))?;
        self.standard_out.take(&mut self.coded)?;
        self.preview.push(&self.pcm48);
        if matches!(self.aac_input, AacInput::Opus48) {
            self.aac
                .push(&self.pcm48, &mut self.coded)
                .map_err(|x| e(x.to_string()))?;
            self.aac_out.take(&mut self.coded)?;
        }
        Ok(())
    }

    /// Flushes every encoder, writes each rendition's last segments, init segment and
    /// manifest (in [`rendition::ALL`]'s order), and returns the sealed bytes written.
    /// `frames` is the source's length in samples per channel.
    fn finish(mut self, frames: u64) -> Result<u64, TrackError> {
        let job = self.job;
        let e = |reason: String| encode_err(job, reason);
        self.pcm48.clear();
        self.to48
            .finish(&mut self.pcm48)
            .map_err(|x| e(x.to_string()))?;
        self.feed48()?;
        if let AacInput::Own(r) = &mut self.aac_input {
            self.pcm_aac.clear();
            r.finish(&mut self.pcm_aac).map_err(|x| e(x.to_string()))?;
            self.aac
                .push(&self.pcm_aac, &mut self.coded)
                .map_err(|x| e(x.to_string()))?;
            self.aac_out.take(&mut self.coded)?;
        }
        let Pipeline {
            channels,
            plan,
            mut coded,
            flac,
            high,
            standard,
            aac,
            preview,
            preview_key,
            generation,
            mut lossless_out,
            high_out,
            standard_out,
            mut aac_out,
            ..
        } = self;
        let mut written = 0;

        let stream = flac.finish(&mut coded).map_err(|x| e(x.to_string()))?;
        if stream.total_samples != frames {
            return Err(e(format!(
                "lossless holds {} samples, the source {frames}",
                stream.total_samples
            )));
        }
        lossless_out.take(&mut coded)?;
        written += lossless_out.finish(Finished {
            codec: stream.codec,
            channels,
            bits_per_sample: stream.bits_per_sample,
            edit: None,
            presented_samples: stream.total_samples,
            bitrate: stream.bitrate,
            bit_exact: Some(plan.exactness() == flac::Exactness::BitExact),
            preview: None,
        })?;

        for (encoder, mut out) in [(high, high_out), (standard, standard_out)] {
            let bitrate = encoder.bitrate();
            let stream = encoder.finish(&mut coded).map_err(|x| e(x.to_string()))?;
            out.take(&mut coded)?;
            written += out.finish(Finished {
                codec: stream.codec,
                channels,
                bits_per_sample: 16,
                edit: Some(stream.edit),
                presented_samples: stream.presented_samples,
                bitrate,
                bit_exact: None,
                preview: None,
            })?;
        }

        let stream = aac.finish(&mut coded).map_err(|x| e(x.to_string()))?;
        aac_out.take(&mut coded)?;
        written += aac_out.finish(Finished {
            codec: stream.codec,
            channels,
            bits_per_sample: 16,
            edit: Some(stream.edit),
            presented_samples: stream.presented_samples,
            bitrate: if channels == 1 {
                job.settings.aac_bitrate / 2
            } else {
                job.settings.aac_bitrate
            },
            bit_exact: None,
            preview: None,
        })?;

        let (clip, span) = preview
            .finish(job.preview_start, job.preview_seconds)
            .map_err(e)?;
        // AAC-LC, not Opus: the preview is what a non-buyer hears in whatever player they
        // have, and AAC is the one codec every HLS player plays (Apple's before Opus
        // support, and hardware decoders), so nobody is left without a preview.
        let bitrate = if channels == 1 {
            job.settings.standard_bitrate / 2
        } else {
            job.settings.standard_bitrate
        };
        let mut encoder = AacEncoder::new(channels, resample::OPUS_RATE, bitrate)
            .map_err(|x| e(x.to_string()))?;
        encoder
            .push(&clip, &mut coded)
            .map_err(|x| e(x.to_string()))?;
        drop(clip);
        let stream = encoder.finish(&mut coded).map_err(|x| e(x.to_string()))?;
        let mut preview_out =
            RenditionWriter::new(job, PREVIEW, preview_key, generation, resample::OPUS_RATE)?;
        preview_out.take(&mut coded)?;
        written += preview_out.finish(Finished {
            codec: stream.codec,
            channels,
            bits_per_sample: 16,
            edit: Some(stream.edit),
            presented_samples: stream.presented_samples,
            bitrate,
            bit_exact: None,
            preview: Some(PreviewWindowRecord {
                start_seconds: span.start as f64 / f64::from(resample::OPUS_RATE),
                seconds: span.len as f64 / f64::from(resample::OPUS_RATE),
            }),
        })?;
        Ok(written)
    }
}

/// The preview's window of the 48 kHz stream, caught as it passes: the window as asked
/// for, and the last `preview_seconds` (the window moves back to the end when the track is
/// shorter than its start plus its length, which is known only at the end).
struct PreviewCapture {
    channels: usize,
    start: u64,
    len: u64,
    seen: u64,
    head: Vec<f32>,
    tail: std::collections::VecDeque<f32>,
}

impl PreviewCapture {
    fn new(channels: u16, rate: u32, start_seconds: f64, seconds: f64) -> Self {
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
            tail: std::collections::VecDeque::new(),
        }
    }

    fn push(&mut self, samples: &[f32]) {
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
    fn finish(
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

/// What a rendition's init segment and manifest need once its last frame is coded.
struct Finished {
    codec: mp4::CodecConfig,
    channels: u16,
    bits_per_sample: u16,
    edit: Option<mp4::Edit>,
    presented_samples: u64,
    bitrate: u32,
    bit_exact: Option<bool>,
    preview: Option<PreviewWindowRecord>,
}

/// Cuts one rendition's frames into segments as they arrive (~`segment_seconds` each,
/// starting on a frame, a final tail shorter than a quarter of that joined to the segment
/// before it), seals each and writes it into the new generation at once. The init segment
/// (which holds what is known only at the end: STREAMINFO, edit list, bitrates) and the
/// manifest come last.
struct RenditionWriter<'j> {
    job: &'j TrackJob<'j>,
    name: &'static str,
    key: &'j ContentKey,
    generation: &'j str,
    gen_dir: PathBuf,
    sample_rate: u32,
    target: u64,
    current: CodedFrames,
    current_duration: u64,
    /// A segment of full length, held until enough follows it to be sure it is not the one
    /// a short tail joins.
    closed: Option<(CodedFrames, u64)>,
    start: u64,
    records: Vec<SegmentRecord>,
}

impl<'j> RenditionWriter<'j> {
    fn new(
        job: &'j TrackJob<'j>,
        name: &'static str,
        key: &'j ContentKey,
        generation: &'j str,
        sample_rate: u32,
    ) -> Result<Self, TrackError> {
        let gen_dir = job
            .store
            .create_generation(job.album, job.track, name, generation)
            .map_err(|e| TrackError::Store {
                path: job.path.clone(),
                reason: e.to_string(),
            })?;
        let target =
            ((job.settings.segment_seconds * f64::from(sample_rate)).round() as u64).max(1);
        Ok(RenditionWriter {
            job,
            name,
            key,
            generation,
            gen_dir,
            sample_rate,
            target,
            current: CodedFrames::default(),
            current_duration: 0,
            closed: None,
            start: 0,
            records: Vec::new(),
        })
    }

    /// Takes every frame out of `coded`, writing each segment that is complete.
    fn take(&mut self, coded: &mut CodedFrames) -> Result<(), TrackError> {
        let mut offset = 0usize;
        for info in &coded.frames {
            let bytes = &coded.data[offset..offset + info.size as usize];
            offset += info.size as usize;
            self.current.push(*info, bytes);
            self.current_duration += u64::from(info.duration);
            if self.current_duration >= self.target / 4
                && let Some((frames, duration)) = self.closed.take()
            {
                self.write_segment(frames, duration)?;
            }
            if self.closed.is_none() && self.current_duration >= self.target {
                let full = std::mem::take(&mut self.current);
                self.closed = Some((full, std::mem::take(&mut self.current_duration)));
            }
        }
        coded.frames.clear();
        coded.data.clear();
        Ok(())
    }

    fn seal(&self, slot: SegmentSlot, bytes: Vec<u8>) -> Result<Vec<u8>, TrackError> {
        let ctx = SealContext {
            album: self.job.album,
            track: self.job.track,
            rendition: self.name,
            slot,
        };
        seal::seal(self.key, &ctx, bytes).map_err(|e| TrackError::Key {
            path: self.job.path.clone(),
            reason: e.to_string(),
        })
    }

    fn store(&self, segment: SealedSegment) -> Result<SegmentRecord, TrackError> {
        self.job
            .store
            .write_segment_in(&self.gen_dir, &segment)
            .map_err(|e| TrackError::Store {
                path: self.job.path.clone(),
                reason: e.to_string(),
            })
    }

    fn write_segment(&mut self, frames: CodedFrames, duration: u64) -> Result<(), TrackError> {
        let index = self.records.len() as u32 + 1;
        let fragment = mp4::media_segment(index, self.start, &frames.frames, &frames.data)
            .map_err(|e| encode_err(self.job, e.to_string()))?;
        drop(frames);
        let bytes = self.seal(SegmentSlot::Media(index), fragment)?;
        let record = self.store(SealedSegment {
            index,
            start: self.start,
            duration,
            bytes,
        })?;
        self.records.push(record);
        self.start += duration;
        Ok(())
    }

    /// Writes the last segments, the init segment and the manifest; returns the sealed
    /// bytes written for this rendition.
    fn finish(mut self, done: Finished) -> Result<u64, TrackError> {
        let current = std::mem::take(&mut self.current);
        let current_duration = self.current_duration;
        match self.closed.take() {
            Some((mut frames, duration)) if current_duration > 0 => {
                // A tail shorter than a quarter of the target joins the segment before it.
                frames.frames.extend_from_slice(&current.frames);
                frames.data.extend_from_slice(&current.data);
                self.write_segment(frames, duration + current_duration)?;
            }
            Some((frames, duration)) => self.write_segment(frames, duration)?,
            None if current_duration > 0 => self.write_segment(current, current_duration)?,
            None => {}
        }
        let init = mp4::init_segment(&mp4::InitSpec {
            codec: done.codec.clone(),
            sample_rate: self.sample_rate,
            channels: done.channels,
            bits_per_sample: done.bits_per_sample,
            edit: done.edit.clone(),
            media_duration: self.start,
            language: *b"und",
        })
        .map_err(|e| encode_err(self.job, e.to_string()))?;
        let bytes = self.seal(SegmentSlot::Init, init)?;
        let init = self.store(SealedSegment {
            index: 0,
            start: 0,
            duration: 0,
            bytes,
        })?;
        let manifest = RenditionManifest {
            format: MANIFEST_FORMAT,
            album: self.job.album.to_string(),
            track: self.job.track,
            rendition: self.name.to_string(),
            generation: self.generation.to_string(),
            codec: mp4::codec_name(&done.codec).to_string(),
            codec_string: mp4::codec_string(&done.codec).to_string(),
            sample_rate: self.sample_rate,
            channels: done.channels,
            bits_per_sample: done.bits_per_sample,
            duration_samples: done.presented_samples,
            skip_samples: done.edit.as_ref().map(|e| e.media_time).unwrap_or(0),
            bitrate: done.bitrate,
            key_id: self.key.id().to_string(),
            bit_exact: done.bit_exact,
            preview: done.preview,
            init,
            segments: std::mem::take(&mut self.records),
            retiring: Vec::new(),
        };
        // The store keeps the generation this one replaces as retiring (players that listed
        // it keep playing) and deletes debris of interrupted runs.
        let written = self
            .job
            .store
            .commit_rendition(manifest)
            .map_err(|e| TrackError::Store {
                path: self.job.path.clone(),
                reason: e.to_string(),
            })?;
        Ok(written.total_bytes())
    }
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
