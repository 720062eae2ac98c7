//! The init segment: `ftyp` + `moov`.
//!
//! - `validate`: what an [`InitSpec`] must hold before a byte is written.
//! - `sample_entry`: the codec's sample entry (`fLaC`/`dfLa`, `Opus`/`dOps`, `mp4a`/`esds`).

use super::writer::{BoxWriter, FourCc};
use super::{Edit, InitSpec, Mp4Error};

mod sample_entry;
mod validate;

use sample_entry::write_sample_entry;
use validate::validate;

/// Frozen: `ftyp` major brand. `iso6` is the ISO-BMFF brand that covers everything used
/// here (movie fragments, `tfdt`, `default-base-is-moof`, `styp`). Changing this changes
/// stored data.
const FTYP_MAJOR: FourCc = *b"iso6";
/// Frozen: `ftyp` compatible brands. `iso6` repeats the major brand (readers only look at
/// this list); `isom` is the minimum the FLAC-in-ISOBMFF spec asks for; `cmfc` declares a
/// CMAF track structure (one track, fragmented, tfdt, moof-relative offsets, single
/// sample entry) which is what MSE/HLS/DASH players expect; `dash` marks a DASH-usable init.
/// Changing this changes stored data.
const FTYP_COMPATIBLE: [FourCc; 4] = [*b"iso6", *b"isom", *b"cmfc", *b"dash"];

/// Frozen: the only track. Changing this changes stored data.
pub(crate) const TRACK_ID: u32 = 1;
/// Frozen: `trex` default_sample_flags. 0 = sample_is_non_sync_sample 0, i.e. every audio
/// sample is a sync sample (FLAC spec 3.3.6.1; Opus and AAC access units are all sync
/// samples too, their decoder pre-roll being the player's business).
/// Changing this changes stored data.
const DEFAULT_SAMPLE_FLAGS: u32 = 0;
/// Frozen: the `hdlr` name (NUL-terminated). Changing this changes stored data.
const HANDLER_NAME: &[u8] = b"SoundHandler\0";

/// 16.16 identity matrix for mvhd/tkhd.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Builds the init segment: ftyp + moov (mvhd, trak{tkhd, [edts/elst], mdia{mdhd,
/// hdlr 'soun', minf{smhd, dinf/dref(url self-contained), stbl{stsd, empty stts, stsc, stsz,
/// stco}}}}, mvex{mehd, trex}).
pub fn init_segment(spec: &InitSpec) -> Result<Vec<u8>, Mp4Error> {
    validate(spec)?;
    let presentation_duration = spec
        .edit
        .as_ref()
        .map_or(spec.media_duration, |e| e.duration);

    let mut w = BoxWriter::new();
    w.plain(*b"ftyp", |w| {
        w.bytes(&FTYP_MAJOR);
        w.u32(0); // minor_version
        for brand in FTYP_COMPATIBLE {
            w.bytes(&brand);
        }
        Ok(())
    })?;
    w.plain(*b"moov", |w| {
        write_mvhd(w, spec.sample_rate, presentation_duration)?;
        w.plain(*b"trak", |w| {
            write_tkhd(w, presentation_duration)?;
            if let Some(edit) = &spec.edit {
                write_edts(w, edit)?;
            }
            w.plain(*b"mdia", |w| {
                write_mdhd(w, spec)?;
                w.full(*b"hdlr", 0, 0, |w| {
                    w.u32(0); // pre_defined
                    w.bytes(b"soun");
                    w.zeros(12); // reserved
                    w.bytes(HANDLER_NAME);
                    Ok(())
                })?;
                w.plain(*b"minf", |w| {
                    w.full(*b"smhd", 0, 0, |w| {
                        w.i16(0); // balance
                        w.u16(0); // reserved
                        Ok(())
                    })?;
                    w.plain(*b"dinf", |w| {
                        w.full(*b"dref", 0, 0, |w| {
                            w.u32(1); // entry_count
                            // flags 1: media data is in the same file.
                            w.full(*b"url ", 0, 1, |_| Ok(()))
                        })
                    })?;
                    write_stbl(w, spec)
                })
            })
        })?;
        w.plain(*b"mvex", |w| {
            let (version, wide) = version_for(spec.media_duration);
            w.full(*b"mehd", version, 0, |w| {
                put_u32_or_u64(w, wide, spec.media_duration);
                Ok(())
            })?;
            w.full(*b"trex", 0, 0, |w| {
                w.u32(TRACK_ID);
                w.u32(1); // default_sample_description_index
                w.u32(0); // default_sample_duration (every trun carries durations)
                w.u32(0); // default_sample_size (every trun carries sizes)
                w.u32(DEFAULT_SAMPLE_FLAGS);
                Ok(())
            })
        })
    })?;
    Ok(w.into_bytes())
}

/// Version 1 (64-bit fields) only when a value does not fit in 32 bits.
fn version_for(v: u64) -> (u8, bool) {
    if v > u64::from(u32::MAX) {
        (1, true)
    } else {
        (0, false)
    }
}

fn put_u32_or_u64(w: &mut BoxWriter, wide: bool, v: u64) {
    match u32::try_from(v) {
        Ok(narrow) if !wide => w.u32(narrow),
        _ => w.u64(v),
    }
}

fn write_mvhd(w: &mut BoxWriter, timescale: u32, duration: u64) -> Result<(), Mp4Error> {
    let (version, wide) = version_for(duration);
    w.full(*b"mvhd", version, 0, |w| {
        put_u32_or_u64(w, wide, 0); // creation_time (0: not stamped, keeps output deterministic)
        put_u32_or_u64(w, wide, 0); // modification_time
        w.u32(timescale);
        put_u32_or_u64(w, wide, duration);
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(2 + 8); // reserved
        for m in MATRIX {
            w.u32(m);
        }
        w.zeros(24); // pre_defined
        w.u32(TRACK_ID + 1); // next_track_ID
        Ok(())
    })
}

fn write_tkhd(w: &mut BoxWriter, duration: u64) -> Result<(), Mp4Error> {
    let (version, wide) = version_for(duration);
    // flags: track_enabled | track_in_movie
    w.full(*b"tkhd", version, 0x00_0003, |w| {
        put_u32_or_u64(w, wide, 0); // creation_time
        put_u32_or_u64(w, wide, 0); // modification_time
        w.u32(TRACK_ID);
        w.u32(0); // reserved
        put_u32_or_u64(w, wide, duration);
        w.zeros(8); // reserved
        w.i16(0); // layer
        w.i16(0); // alternate_group
        w.u16(0x0100); // volume 1.0 (audio)
        w.u16(0); // reserved
        for m in MATRIX {
            w.u32(m);
        }
        w.u32(0); // width
        w.u32(0); // height
        Ok(())
    })
}

fn write_edts(w: &mut BoxWriter, edit: &Edit) -> Result<(), Mp4Error> {
    // Version 0 holds segment_duration as u32 and media_time as i32 (-1 = empty edit).
    let narrow = u32::try_from(edit.duration)
        .ok()
        .zip(i32::try_from(edit.media_time).ok());
    w.plain(*b"edts", |w| {
        w.full(*b"elst", u8::from(narrow.is_none()), 0, |w| {
            w.u32(1); // entry_count
            match narrow {
                Some((duration, media_time)) => {
                    w.u32(duration);
                    w.i32(media_time);
                }
                None => {
                    w.u64(edit.duration);
                    // Checked in validate().
                    w.i64(i64::try_from(edit.media_time).unwrap_or(i64::MAX));
                }
            }
            w.i16(1); // media_rate_integer
            w.i16(0); // media_rate_fraction
            Ok(())
        })
    })
}

fn write_mdhd(w: &mut BoxWriter, spec: &InitSpec) -> Result<(), Mp4Error> {
    // Duration 0: every sample lives in the fragments; mehd carries the total.
    w.full(*b"mdhd", 0, 0, |w| {
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(spec.sample_rate); // timescale
        w.u32(0); // duration
        let [a, b, c] = spec.language.map(|ch| u16::from(ch - 0x60));
        w.u16((a << 10) | (b << 5) | c); // pad(1) + 3 x 5-bit letters
        w.u16(0); // pre_defined
        Ok(())
    })
}

fn write_stbl(w: &mut BoxWriter, spec: &InitSpec) -> Result<(), Mp4Error> {
    w.plain(*b"stbl", |w| {
        w.full(*b"stsd", 0, 0, |w| {
            w.u32(1); // entry_count
            write_sample_entry(w, spec)
        })?;
        // Empty sample tables: all samples are in movie fragments.
        w.full(*b"stts", 0, 0, |w| {
            w.u32(0);
            Ok(())
        })?;
        w.full(*b"stsc", 0, 0, |w| {
            w.u32(0);
            Ok(())
        })?;
        w.full(*b"stsz", 0, 0, |w| {
            w.u32(0); // sample_size
            w.u32(0); // sample_count
            Ok(())
        })?;
        w.full(*b"stco", 0, 0, |w| {
            w.u32(0);
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests;
