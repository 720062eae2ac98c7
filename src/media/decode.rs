//! Source decoding with symphonia: any supported file to [`Pcm`], tags and embedded cover art.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::audio::{AudioBufferRef, SampleBuffer};
use symphonia::core::codecs::{CODEC_TYPE_NULL, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey, StandardVisualKey};
use symphonia::core::probe::Hint;

use super::pcm::{Pcm, SourceSamples};

/// Highest and lowest sample rates encore accepts, per the ingest contract.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// See [`MIN_SAMPLE_RATE`].
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// Why a source file could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// No demuxer recognised the file.
    #[error("{path} is not an audio format encore can read ({reason})")]
    UnrecognisedFormat {
        /// The file.
        path: PathBuf,
        /// What symphonia said.
        reason: String,
    },
    /// The container holds no audio track, or a codec encore cannot decode.
    #[error("{path}: unsupported audio: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The audio data is damaged.
    #[error("{path}: corrupt audio near {at_seconds:.2} s: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Roughly where.
        at_seconds: f64,
        /// What the decoder said.
        reason: String,
    },
    /// The file ends before the length its header announces.
    #[error(
        "{path} is truncated: its header announces {expected} samples per channel, the data ends after {decoded}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Frames announced.
        expected: u64,
        /// Frames present.
        decoded: u64,
    },
    /// The stream decoded to nothing.
    #[error("{path} contains no audio samples")]
    NoAudio {
        /// The file.
        path: PathBuf,
    },
}

/// Textual tags found in a source, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tags {
    /// Track title.
    pub title: Option<String>,
    /// Track artist.
    pub artist: Option<String>,
    /// Album title.
    pub album: Option<String>,
    /// Album artist.
    pub album_artist: Option<String>,
    /// Release date as written in the file.
    pub date: Option<String>,
    /// Track number as written in the file.
    pub track_number: Option<String>,
    /// Lyrics (ID3 `USLT`, Vorbis `LYRICS`/`UNSYNCEDLYRICS`, MP4 `©lyr`).
    pub lyrics: Option<String>,
}

/// An image embedded in a source file.
#[derive(Clone)]
pub struct EmbeddedPicture {
    /// MIME type as declared by the file.
    pub media_type: String,
    /// The image bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for EmbeddedPicture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EmbeddedPicture({}, {} bytes)",
            self.media_type,
            self.data.len()
        )
    }
}

/// Everything decoding a source yields.
#[derive(Debug)]
pub struct Decoded {
    /// The audio.
    pub pcm: Pcm,
    /// The tags.
    pub tags: Tags,
    /// A front cover (or the first picture) embedded in the file.
    pub cover: Option<EmbeddedPicture>,
    /// Short name of the codec, for reports ("flac", "mp3", ...).
    pub codec: String,
}

/// A source opened for decoding, read one packet at a time: what is held at once is one
/// packet's samples, whatever the track's length.
pub struct SourceReader {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// What the source's samples are.
    pub source: SourceSamples,
    /// The tags.
    pub tags: Tags,
    /// A front cover (or the first picture) embedded in the file.
    pub cover: Option<EmbeddedPicture>,
    /// Short name of the codec, for reports ("flac", "mp3", ...).
    pub codec: String,
    int_bits: Option<u32>,
    lossless: bool,
    expected: Option<u64>,
    trim: Option<super::gapless::Trim>,
    decoded_frames: u64,
    presented_frames: u64,
    i32_buf: Option<SampleBuffer<i32>>,
    f32_buf: Option<SampleBuffer<f32>>,
    int: Vec<i32>,
    float: Vec<f32>,
    /// The first packet, decoded by [`open`] to learn the channel count, not yet handed out.
    held: bool,
    finished: bool,
}

/// One decoded packet: interleaved samples, as the source's integers (integer sources) and
/// as floats in [-1, 1).
pub struct Chunk<'a> {
    /// The source's integers, right-aligned (integer sources only).
    pub int: Option<&'a [i32]>,
    /// The same samples as floats.
    pub float: &'a [f32],
}

/// Opens a file for decoding and decodes its first packet. CPU-bound: call it from a
/// blocking thread.
pub fn open(path: &Path) -> Result<SourceReader, DecodeError> {
    let io = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(&ext.to_ascii_lowercase());
    }
    // Gapless on: MP3 (LAME/Xing) and Vorbis delay and padding are trimmed by the decoders.
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let mut probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_opts, &MetadataOptions::default())
        .map_err(|e| DecodeError::UnrecognisedFormat {
            path: path.to_path_buf(),
            reason: describe(&e),
        })?;

    let mut tags = Tags::default();
    let mut cover = None;
    if let Some(rev) = probed
        .metadata
        .get()
        .as_ref()
        .and_then(|m| m.current().cloned())
    {
        absorb_metadata(&rev, &mut tags, &mut cover);
    }
    let mut format = probed.format;
    if let Some(rev) = format.metadata().current() {
        absorb_metadata(rev, &mut tags, &mut cover);
    }

    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some())
        .ok_or_else(|| DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason: "no audio track".into(),
        })?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_string())
        .unwrap_or_else(|| "unknown".into());
    let sample_rate = params.sample_rate.unwrap_or(0);
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("sample rate {sample_rate} Hz is outside 8000..=192000 Hz"),
        });
    }
    let decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions { verify: true })
        .map_err(|e| DecodeError::Unsupported {
            path: path.to_path_buf(),
            reason: describe(&e),
        })?;
    let lossless = matches!(codec.as_str(), "flac" | "alac")
        || codec.starts_with("pcm_s")
        || codec.starts_with("pcm_u");
    let int_bits = if lossless {
        params
            .bits_per_sample
            .or_else(|| alac_bit_depth(&codec, params.extra_data.as_deref()))
    } else {
        None
    };
    // symphonia returns AAC's priming and padding; the edit list says what to present.
    let trim = if codec == "aac" {
        super::gapless::mp4_trim(path)
    } else {
        None
    };
    let mut reader = SourceReader {
        path: path.to_path_buf(),
        format,
        decoder,
        track_id,
        sample_rate,
        channels: params.channels.map(|c| c.count() as u16).unwrap_or(0),
        source: match int_bits {
            Some(bits) => SourceSamples::Integer { bits },
            None => SourceSamples::Float,
        },
        tags,
        cover,
        codec,
        int_bits,
        lossless,
        expected: params.n_frames,
        trim,
        decoded_frames: 0,
        presented_frames: 0,
        i32_buf: None,
        f32_buf: None,
        int: Vec::new(),
        float: Vec::new(),
        held: false,
        finished: false,
    };
    reader.held = reader.fill()?;
    if !reader.held || reader.channels == 0 {
        return Err(DecodeError::NoAudio {
            path: path.to_path_buf(),
        });
    }
    Ok(reader)
}

impl SourceReader {
    /// Samples per channel the header announces, if it does.
    pub fn announced_frames(&self) -> Option<u64> {
        self.expected
    }

    /// Samples per channel handed out so far.
    pub fn frames_read(&self) -> u64 {
        self.presented_frames
    }

    /// The next packet's samples, or `None` at the end of the stream (after checking that
    /// the stream is as long as its header announced).
    pub fn next_chunk(&mut self) -> Result<Option<Chunk<'_>>, DecodeError> {
        if self.held {
            self.held = false;
        } else if !self.fill()? {
            return Ok(None);
        }
        Ok(Some(Chunk {
            int: self.int_bits.map(|_| self.int.as_slice()),
            float: &self.float,
        }))
    }

    /// Decodes packets until one leaves samples after the gapless trim; false at the end.
    fn fill(&mut self) -> Result<bool, DecodeError> {
        if self.finished {
            return Ok(false);
        }
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    self.finish()?;
                    return Ok(false);
                }
                Err(SymphoniaError::ResetRequired) => {
                    return Err(DecodeError::Unsupported {
                        path: self.path.clone(),
                        reason: "the stream changes its parameters midway".into(),
                    });
                }
                Err(e) => return Err(self.corrupt(describe(&e))),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let audio = match self.decoder.decode(&packet) {
                Ok(a) => a,
                Err(e) => {
                    let reason = describe(&e);
                    return Err(self.corrupt(reason));
                }
            };
            let spec = *audio.spec();
            let frames = audio.frames();
            if frames == 0 {
                continue;
            }
            let ch = spec.channels.count() as u16;
            if self.channels == 0 {
                self.channels = ch;
            }
            if ch != self.channels || spec.rate != self.sample_rate {
                return Err(DecodeError::Unsupported {
                    path: self.path.clone(),
                    reason: "channel count or sample rate changes midway".into(),
                });
            }
            self.int.clear();
            self.float.clear();
            if let Some(bits) = self.int_bits {
                push_int(&audio, bits, &mut self.i32_buf, &mut self.int);
            }
            let buf = self
                .f32_buf
                .get_or_insert_with(|| SampleBuffer::new(audio.capacity() as u64, spec));
            if buf.capacity() < frames * usize::from(ch) {
                *buf = SampleBuffer::new(audio.capacity() as u64, spec);
            }
            buf.copy_interleaved_ref(audio);
            self.float.extend_from_slice(buf.samples());
            let first = self.decoded_frames;
            self.decoded_frames += frames as u64;
            if let Some(trim) = self.trim {
                // Keep only this packet's part of [skip, skip + keep).
                let ch = usize::from(ch);
                let lo = trim.skip.clamp(first, self.decoded_frames);
                let hi = trim
                    .keep
                    .map_or(self.decoded_frames, |k| trim.skip.saturating_add(k))
                    .clamp(lo, self.decoded_frames);
                let (from, to) = ((lo - first) as usize * ch, (hi - first) as usize * ch);
                self.float.truncate(to);
                self.float.drain(..from);
                if self.int_bits.is_some() {
                    self.int.truncate(to);
                    self.int.drain(..from);
                }
                if self.float.is_empty() {
                    continue;
                }
            }
            self.presented_frames += (self.float.len() / usize::from(ch)) as u64;
            return Ok(true);
        }
    }

    fn finish(&mut self) -> Result<(), DecodeError> {
        self.finished = true;
        let _ = self.decoder.finalize();
        if self.decoded_frames == 0 {
            return Err(DecodeError::NoAudio {
                path: self.path.clone(),
            });
        }
        if let Some(expected) = self.expected {
            // Lossless containers announce an exact length; lossy ones may be a frame off.
            let slack = if self.lossless { 0 } else { expected / 50 };
            if self.decoded_frames + slack < expected {
                return Err(DecodeError::Truncated {
                    path: self.path.clone(),
                    expected,
                    decoded: self.decoded_frames,
                });
            }
        }
        Ok(())
    }

    fn corrupt(&self, reason: String) -> DecodeError {
        DecodeError::Corrupt {
            path: self.path.clone(),
            at_seconds: self.decoded_frames as f64 / f64::from(self.sample_rate),
            reason,
        }
    }
}

/// Decodes a whole file into memory. CPU-bound: call it from a blocking thread. Packaging
/// reads sources with [`open`] instead, so that memory does not grow with the track.
pub fn decode_file(path: &Path) -> Result<Decoded, DecodeError> {
    let mut reader = open(path)?;
    let channels = reader.channels;
    let mut int: Option<Vec<i32>> = reader.int_bits.map(|_| Vec::new());
    let mut float: Vec<f32> = Vec::new();
    if let Some(n) = reader.expected {
        let cap = (n as usize)
            .saturating_mul(usize::from(channels.max(1)))
            .min(1 << 30);
        float.reserve(cap);
        if let Some(v) = int.as_mut() {
            v.reserve(cap);
        }
    }
    while let Some(chunk) = reader.next_chunk()? {
        if let (Some(v), Some(c)) = (int.as_mut(), chunk.int) {
            v.extend_from_slice(c);
        }
        float.extend_from_slice(chunk.float);
    }
    Ok(Decoded {
        pcm: Pcm {
            sample_rate: reader.sample_rate,
            channels,
            source: reader.source,
            int,
            float,
        },
        tags: reader.tags,
        cover: reader.cover,
        codec: reader.codec,
    })
}

/// Appends the packet's samples as right-aligned integers of `bits` bits.
fn push_int(
    audio: &AudioBufferRef<'_>,
    bits: u32,
    buf: &mut Option<SampleBuffer<i32>>,
    out: &mut Vec<i32>,
) {
    let spec = *audio.spec();
    let needed = audio.frames() * spec.channels.count();
    let b = buf.get_or_insert_with(|| SampleBuffer::new(audio.capacity() as u64, spec));
    if b.capacity() < needed {
        *b = SampleBuffer::new(audio.capacity() as u64, spec);
    }
    // symphonia widens every integer format to full-scale i32 exactly (a left shift), so a
    // right shift by the unused bits gives back the source's integers unchanged.
    b.copy_interleaved_ref(audio.clone());
    let shift = 32u32.saturating_sub(bits.clamp(1, 32));
    out.extend(b.samples().iter().map(|s| s >> shift));
}

/// ALAC in MP4 carries its bit depth only in the magic cookie (ALACSpecificConfig byte 5,
/// after a 24-byte `frma` + `alac` prefix in the 48-byte form).
fn alac_bit_depth(codec: &str, extra: Option<&[u8]>) -> Option<u32> {
    let cookie = extra.filter(|_| codec == "alac")?;
    let at = match cookie.len() {
        24 => 5,
        48 => 29,
        _ => return None,
    };
    cookie
        .get(at)
        .map(|&b| u32::from(b))
        .filter(|b| (8..=32).contains(b))
}

fn absorb_metadata(rev: &MetadataRevision, tags: &mut Tags, cover: &mut Option<EmbeddedPicture>) {
    for tag in rev.tags() {
        let value = tag.value.to_string();
        let slot = match tag.std_key {
            Some(StandardTagKey::TrackTitle) => &mut tags.title,
            Some(StandardTagKey::Artist) => &mut tags.artist,
            Some(StandardTagKey::Album) => &mut tags.album,
            Some(StandardTagKey::AlbumArtist) => &mut tags.album_artist,
            Some(StandardTagKey::Date) | Some(StandardTagKey::ReleaseDate) => &mut tags.date,
            Some(StandardTagKey::TrackNumber) => &mut tags.track_number,
            Some(StandardTagKey::Lyrics) => &mut tags.lyrics,
            _ => continue,
        };
        if slot.is_none() && !value.trim().is_empty() {
            *slot = Some(value.trim().to_string());
        }
    }
    let front = rev
        .visuals()
        .iter()
        .find(|v| v.usage == Some(StandardVisualKey::FrontCover))
        .or_else(|| rev.visuals().first());
    if let (None, Some(v)) = (cover.as_ref(), front) {
        *cover = Some(EmbeddedPicture {
            media_type: v.media_type.clone(),
            data: v.data.to_vec(),
        });
    }
}

fn describe(e: &SymphoniaError) -> String {
    match e {
        SymphoniaError::IoError(io) => format!("read error: {io}"),
        SymphoniaError::DecodeError(m) => format!("malformed data: {m}"),
        SymphoniaError::SeekError(_) => "seek failed".into(),
        SymphoniaError::Unsupported(m) => format!("unsupported feature: {m}"),
        SymphoniaError::LimitError(m) => format!("limit exceeded: {m}"),
        SymphoniaError::ResetRequired => "stream reset required".into(),
    }
}
