//! Gapless trimming for AAC in MP4, which symphonia leaves to the caller: the encoder's
//! priming and padding are described by the track's edit list (`elst`), read here.

use std::path::Path;

/// The presented part of a decoded track, in samples at the track's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// Samples to drop at the start (encoder priming).
    pub skip: u64,
    /// Samples to keep after that (`None`: to the end).
    pub keep: Option<u64>,
}

/// Reads the first audio track's single edit from an MP4 file, if it has one.
///
/// Only the common case is honoured: one edit (optionally after one empty edit is not
/// supported) with a non-negative media time at rate 1. Anything else returns `None` and
/// the decoded stream is used as it is.
pub fn mp4_trim(path: &Path) -> Option<Trim> {
    let data = std::fs::read(path).ok()?;
    let moov = find_box(&data, b"moov")?;
    let movie_timescale = {
        let mvhd = find_box(moov, b"mvhd")?;
        match mvhd.first()? {
            1 => be32(mvhd.get(20..24)?),
            _ => be32(mvhd.get(12..16)?),
        }
    };
    for trak in boxes(moov).filter(|(t, _)| t == b"trak").map(|(_, b)| b) {
        let mdia = find_box(trak, b"mdia")?;
        let hdlr = find_box(mdia, b"hdlr")?;
        if hdlr.get(8..12)? != b"soun" {
            continue;
        }
        let mdhd = find_box(mdia, b"mdhd")?;
        let media_timescale = match mdhd.first()? {
            1 => be32(mdhd.get(20..24)?),
            _ => be32(mdhd.get(12..16)?),
        };
        let elst = find_box(find_box(trak, b"edts")?, b"elst")?;
        let version = *elst.first()?;
        let count = be32(elst.get(4..8)?);
        if count != 1 || movie_timescale == 0 || media_timescale == 0 {
            return None;
        }
        let (duration, media_time, rate_at) = if version == 1 {
            (be64(elst.get(8..16)?), be64(elst.get(16..24)?) as i64, 24)
        } else {
            (
                u64::from(be32(elst.get(8..12)?)),
                i64::from(be32(elst.get(12..16)?) as i32),
                16,
            )
        };
        if media_time < 0 || be32(elst.get(rate_at..rate_at + 4)?) != 0x0001_0000 {
            return None;
        }
        let keep = (duration > 0).then(|| {
            ((u128::from(duration) * u128::from(media_timescale) + u128::from(movie_timescale) / 2)
                / u128::from(movie_timescale)) as u64
        });
        return Some(Trim {
            skip: media_time as u64,
            keep,
        });
    }
    None
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Iterates the boxes directly inside `data` as (type, body).
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = data.get(pos..pos + 8)?;
        let mut size = u64::from(be32(&header[0..4]));
        let kind = [header[4], header[5], header[6], header[7]];
        let mut body_start = pos + 8;
        if size == 1 {
            size = be64(data.get(pos + 8..pos + 16)?);
            body_start += 8;
        } else if size == 0 {
            size = (data.len() - pos) as u64;
        }
        let end = pos.checked_add(usize::try_from(size).ok()?)?;
        if end > data.len() || end < body_start {
            return None;
        }
        let body = &data[body_start..end];
        pos = end;
        Some((kind, body))
    })
}

fn find_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, b)| b)
}

/// Applies a trim to interleaved samples.
pub fn apply<T: Copy>(samples: &mut Vec<T>, channels: usize, trim: Trim) {
    let frames = samples.len() / channels.max(1);
    let skip = (trim.skip as usize).min(frames);
    let keep = trim
        .keep
        .map(|k| (k as usize).min(frames - skip))
        .unwrap_or(frames - skip);
    samples.drain(..skip * channels);
    samples.truncate(keep * channels);
}
