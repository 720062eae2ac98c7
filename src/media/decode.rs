//! Source decoding with symphonia: any supported file to [`Pcm`], tags and embedded cover art.

use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::audio::{AudioBufferRef, SampleBuffer};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
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

/// Decodes a whole file. CPU-bound: call it from a blocking thread.
pub fn decode_file(path: &Path) -> Result<Decoded, DecodeError> {
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
    let mut decoder = symphonia::default::get_codecs()
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

    let mut channels: u16 = params.channels.map(|c| c.count() as u16).unwrap_or(0);
    let mut int: Option<Vec<i32>> = int_bits.map(|_| Vec::new());
    let mut float: Vec<f32> = Vec::new();
    if let Some(n) = params.n_frames {
        let cap = (n as usize)
            .saturating_mul(usize::from(channels.max(1)))
            .min(1 << 30);
        float.reserve(cap);
        if let Some(v) = int.as_mut() {
            v.reserve(cap);
        }
    }
    let mut i32_buf: Option<SampleBuffer<i32>> = None;
    let mut f32_buf: Option<SampleBuffer<f32>> = None;
    let mut decoded_frames: u64 = 0;
    let corrupt = |frames: u64, reason: String| DecodeError::Corrupt {
        path: path.to_path_buf(),
        at_seconds: frames as f64 / f64::from(sample_rate),
        reason,
    };

    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => {
                return Err(DecodeError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "the stream changes its parameters midway".into(),
                });
            }
            Err(e) => return Err(corrupt(decoded_frames, describe(&e))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(a) => a,
            Err(e) => return Err(corrupt(decoded_frames, describe(&e))),
        };
        let spec = *audio.spec();
        let frames = audio.frames();
        if frames == 0 {
            continue;
        }
        let ch = spec.channels.count() as u16;
        if channels == 0 {
            channels = ch;
        }
        if ch != channels || spec.rate != sample_rate {
            return Err(DecodeError::Unsupported {
                path: path.to_path_buf(),
                reason: "channel count or sample rate changes midway".into(),
            });
        }
        if let (Some(bits), Some(out)) = (int_bits, int.as_mut()) {
            push_int(&audio, bits, &mut i32_buf, out);
        }
        let buf = f32_buf.get_or_insert_with(|| SampleBuffer::new(audio.capacity() as u64, spec));
        if buf.capacity() < frames * usize::from(ch) {
            *buf = SampleBuffer::new(audio.capacity() as u64, spec);
        }
        buf.copy_interleaved_ref(audio);
        float.extend_from_slice(buf.samples());
        decoded_frames += frames as u64;
    }
    let _ = decoder.finalize();

    if decoded_frames == 0 || channels == 0 {
        return Err(DecodeError::NoAudio {
            path: path.to_path_buf(),
        });
    }
    if let Some(expected) = params.n_frames {
        // Lossless containers announce an exact length; lossy ones may be a frame off.
        let slack = if lossless { 0 } else { expected / 50 };
        if decoded_frames + slack < expected {
            return Err(DecodeError::Truncated {
                path: path.to_path_buf(),
                expected,
                decoded: decoded_frames,
            });
        }
    }
    if codec == "aac"
        && let Some(trim) = super::gapless::mp4_trim(path)
    {
        // symphonia returns AAC's priming and padding; the edit list says what to present.
        let ch = usize::from(channels);
        super::gapless::apply(&mut float, ch, trim);
        if let Some(v) = int.as_mut() {
            super::gapless::apply(v, ch, trim);
        }
    }
    let source = match int_bits {
        Some(bits) => SourceSamples::Integer { bits },
        None => SourceSamples::Float,
    };
    Ok(Decoded {
        pcm: Pcm {
            sample_rate,
            channels,
            source,
            int,
            float,
        },
        tags,
        cover,
        codec,
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
