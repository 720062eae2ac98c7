//! One rendition's output: its frames cut into segments, each sealed and written as soon as
//! it is complete, then its init segment and manifest.

use std::path::PathBuf;

use super::{TrackError, TrackJob, encode_err};
use crate::media::encoded::{CodedFrames, LossyStream};
use crate::media::{Rendition, mp4};
use crate::seal::{self, ContentKey, SealContext, SegmentSlot};
use crate::store::{
    MANIFEST_FORMAT, PreviewWindowRecord, RenditionManifest, SealedSegment, SegmentRecord,
};

/// What a rendition's init segment and manifest need once its last frame is coded.
pub(super) struct Finished {
    pub(super) codec: mp4::CodecConfig,
    pub(super) channels: u16,
    pub(super) bits_per_sample: u16,
    pub(super) edit: Option<mp4::Edit>,
    pub(super) presented_samples: u64,
    pub(super) bitrate: u32,
    pub(super) bit_exact: Option<bool>,
    pub(super) preview: Option<PreviewWindowRecord>,
}

impl Finished {
    /// A lossy rendition (AAC or Opus, 16-bit decode): never bit-exact, with an edit list.
    pub(super) fn lossy(
        stream: LossyStream,
        channels: u16,
        bitrate: u32,
        preview: Option<PreviewWindowRecord>,
    ) -> Self {
        Self {
            codec: stream.codec,
            channels,
            bits_per_sample: 16,
            edit: Some(stream.edit),
            presented_samples: stream.presented_samples,
            bitrate,
            bit_exact: None,
            preview,
        }
    }
}

/// Cuts one rendition's frames into segments as they arrive (~`segment_seconds` each,
/// starting on a frame, a final tail shorter than a quarter of that joined to the segment
/// before it), seals each and writes it into the new generation at once. The init segment
/// (which holds what is known only at the end: STREAMINFO, edit list, bitrates) and the
/// manifest come last.
pub(super) struct RenditionWriter<'j> {
    job: &'j TrackJob<'j>,
    name: Rendition,
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
    pub(super) fn new(
        job: &'j TrackJob<'j>,
        name: Rendition,
        key: &'j ContentKey,
        generation: &'j str,
        sample_rate: u32,
    ) -> Result<Self, TrackError> {
        let gen_dir = job
            .store
            .create_generation(job.album, job.track, name.as_str(), generation)
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
    pub(super) fn take(&mut self, coded: &mut CodedFrames) -> Result<(), TrackError> {
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
            rendition: self.name.as_str(),
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
    pub(super) fn finish(mut self, done: Finished) -> Result<u64, TrackError> {
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
        debug_assert_eq!(
            mp4::codec_name(&done.codec),
            self.name.codec(),
            "{}",
            self.name
        );
        let manifest = RenditionManifest {
            format: MANIFEST_FORMAT,
            album: self.job.album.to_string(),
            track: self.job.track,
            rendition: self.name.as_str().to_owned(),
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
