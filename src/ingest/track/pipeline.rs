//! Every rendition's encoder for one pass over a track's source: each decoded packet goes to
//! all of them, and what they code goes straight to the rendition's writer.

use super::preview_clip::PreviewCapture;
use super::writer::{Finished, RenditionWriter};
use super::{TrackError, TrackJob, encode_err};
use crate::ingest::rendition::bitrate;
use crate::media::aac::AacEncoder;
use crate::media::decode;
use crate::media::encoded::CodedFrames;
use crate::media::flac::{self, FlacEncoder, LosslessInput};
use crate::media::loudness::Meter;
use crate::media::opus::OpusEncoder;
use crate::media::resample::{self, StreamResampler};
use crate::media::{Rendition, aac};
use crate::seal::ContentKey;
use crate::store::PreviewWindowRecord;

/// Where the AAC rendition's input comes from.
enum AacInput {
    /// The source itself (44.1 and 48 kHz sources: no resampling at all).
    Source,
    /// The 48 kHz copy made for Opus (96/192/32 kHz... sources).
    Opus48,
    /// Its own conversion to 44.1 kHz (88.2/176.4/22.05 kHz sources).
    Own(Box<StreamResampler>),
}

/// The bitrate a lossy rendition is coded at (`bitrate` has one for every rendition but
/// lossless).
fn lossy_bitrate(job: &TrackJob<'_>, rendition: Rendition, channels: u16) -> u32 {
    bitrate(rendition, job.settings, channels).unwrap_or_default()
}

/// Every rendition's encoder and segment writer for one pass over the source.
pub(super) struct Pipeline<'j> {
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
    loudness: Option<Meter>,
    preview_key: &'j ContentKey,
    generation: &'j str,
    lossless_out: RenditionWriter<'j>,
    high_out: RenditionWriter<'j>,
    standard_out: RenditionWriter<'j>,
    aac_out: RenditionWriter<'j>,
}

impl<'j> Pipeline<'j> {
    pub(super) fn new(
        job: &'j TrackJob<'j>,
        reader: &decode::SourceReader,
        plan: LosslessInput,
        key_for: &dyn Fn(Rendition) -> &'j ContentKey,
        generation: &'j str,
    ) -> Result<Self, TrackError> {
        let e = |reason: String| encode_err(job, reason);
        let (rate, channels) = (reader.sample_rate, reader.channels);
        let bitrate = |r: Rendition| lossy_bitrate(job, r, channels);
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
        let writer = |name: Rendition, sample_rate: u32| {
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
            high: OpusEncoder::new(channels, bitrate(Rendition::High))
                .map_err(|x| e(x.to_string()))?,
            standard: OpusEncoder::new(channels, bitrate(Rendition::Standard))
                .map_err(|x| e(x.to_string()))?,
            aac_input,
            // Mono stays mono, like the Opus tiers (`ingest::rendition::bitrate` says why).
            aac: AacEncoder::new(channels, aac_rate, bitrate(Rendition::Aac))
                .map_err(|x| e(x.to_string()))?,
            preview: PreviewCapture::new(
                channels,
                resample::OPUS_RATE,
                job.preview_start,
                job.preview_seconds,
            ),
            loudness: if job.settings.loudness {
                Some(Meter::new(channels, rate).map_err(|x| e(x.to_string()))?)
            } else {
                None
            },
            preview_key: key_for(Rendition::Preview),
            generation,
            lossless_out: writer(Rendition::Lossless, rate)?,
            high_out: writer(Rendition::High, resample::OPUS_RATE)?,
            standard_out: writer(Rendition::Standard, resample::OPUS_RATE)?,
            aac_out: writer(Rendition::Aac, aac_rate)?,
        })
    }

    pub(super) fn push(&mut self, int: Option<&[i32]>, float: &[f32]) -> Result<(), TrackError> {
        let job = self.job;
        let e = |reason: String| encode_err(job, reason);
        self.ints.clear();
        self.plan.convert(int, float, &mut self.ints);
        self.flac
            .push(&self.ints, &mut self.coded)
            .map_err(|x| e(x.to_string()))?;
        self.lossless_out.take(&mut self.coded)?;
        // The source's own samples at its own rate: what BS.1770 measures and what ffmpeg's
        // ebur128 filter would read from the same file.
        if let Some(meter) = &mut self.loudness {
            meter.push(float).map_err(|x| e(x.to_string()))?;
        }

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
    /// manifest (in [`Rendition::ALL`]'s order), and returns the sealed bytes written and the
    /// loudness meter (its state is needed again for the album's figure).
    /// `frames` is the source's length in samples per channel.
    pub(super) fn finish(mut self, frames: u64) -> Result<(u64, Option<Meter>), TrackError> {
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
            loudness,
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
            written += out.finish(Finished::lossy(stream, channels, bitrate, None))?;
        }

        let stream = aac.finish(&mut coded).map_err(|x| e(x.to_string()))?;
        aac_out.take(&mut coded)?;
        let bitrate = lossy_bitrate(job, Rendition::Aac, channels);
        written += aac_out.finish(Finished::lossy(stream, channels, bitrate, None))?;

        let (clip, span) = preview
            .finish(job.preview_start, job.preview_seconds)
            .map_err(e)?;
        // AAC-LC, not Opus: the preview is what a non-buyer hears in whatever player they
        // have, and AAC is the one codec every HLS player plays (Apple's before Opus
        // support, and hardware decoders), so nobody is left without a preview.
        let bitrate = lossy_bitrate(job, Rendition::Preview, channels);
        let mut encoder = AacEncoder::new(channels, resample::OPUS_RATE, bitrate)
            .map_err(|x| e(x.to_string()))?;
        encoder
            .push(&clip, &mut coded)
            .map_err(|x| e(x.to_string()))?;
        drop(clip);
        let stream = encoder.finish(&mut coded).map_err(|x| e(x.to_string()))?;
        let mut preview_out = RenditionWriter::new(
            job,
            Rendition::Preview,
            preview_key,
            generation,
            resample::OPUS_RATE,
        )?;
        preview_out.take(&mut coded)?;
        let window = PreviewWindowRecord {
            start_seconds: span.start as f64 / f64::from(resample::OPUS_RATE),
            seconds: span.len as f64 / f64::from(resample::OPUS_RATE),
        };
        written += preview_out.finish(Finished::lossy(stream, channels, bitrate, Some(window)))?;
        Ok((written, loudness))
    }
}
