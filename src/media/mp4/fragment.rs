//! Media segments: `styp` + `moof` + `mdat`.

use super::init::TRACK_ID;
use super::writer::{BoxWriter, FourCc};
use super::{Mp4Error, SampleInfo};

/// Frozen: `styp` major brand. `msdh` = DASH media segment. Changing this changes stored data.
const STYP_MAJOR: FourCc = *b"msdh";
/// Frozen: `styp` compatible brands. `msdh` repeats the major brand; `cmfs`/`cmff`: each
/// media segment is exactly one CMAF fragment and so also a CMAF segment. `msix` is NOT
/// claimed since no `sidx` is written. Changing this changes stored data.
const STYP_COMPATIBLE: [FourCc; 3] = [*b"msdh", *b"cmfs", *b"cmff"];

/// Frozen: tfhd flags = default-base-is-moof: offsets are relative to this moof, so a
/// segment is position independent. Changing this changes stored data.
const TFHD_FLAGS: u32 = 0x02_0000;
/// Frozen: trun flags = data-offset-present | sample-duration-present | sample-size-present.
/// Sample flags come from trex (all sync). Changing this changes stored data.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200;

/// Builds one media segment: styp + moof{mfhd(sequence_number), traf{tfhd
/// (default-base-is-moof), tfdt version 1 (base_media_decode_time), trun (data_offset +
/// per-sample duration and size)}} + mdat(payload).
///
/// `payload` is the concatenation of the samples' bytes in order; its length must equal the
/// sum of sizes (else Err).
pub fn media_segment(
    sequence_number: u32,
    base_media_decode_time: u64,
    samples: &[SampleInfo],
    payload: &[u8],
) -> Result<Vec<u8>, Mp4Error> {
    if samples.is_empty() {
        return Err(Mp4Error::NoSamples);
    }
    let expected: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    let actual = payload.len() as u64;
    if expected != actual {
        return Err(Mp4Error::PayloadSizeMismatch { expected, actual });
    }
    let sample_count = u32::try_from(samples.len()).map_err(|_| Mp4Error::TooLarge {
        what: "more than 2^32 samples in one segment",
    })?;

    let mut w = BoxWriter::new();
    w.plain(*b"styp", |w| {
        w.bytes(&STYP_MAJOR);
        w.u32(0); // minor_version
        for brand in STYP_COMPATIBLE {
            w.bytes(&brand);
        }
        Ok(())
    })?;

    let moof_start = w.len();
    let mut data_offset_pos = 0;
    w.plain(*b"moof", |w| {
        w.full(*b"mfhd", 0, 0, |w| {
            w.u32(sequence_number);
            Ok(())
        })?;
        w.plain(*b"traf", |w| {
            w.full(*b"tfhd", 0, TFHD_FLAGS, |w| {
                w.u32(TRACK_ID);
                Ok(())
            })?;
            w.full(*b"tfdt", 1, 0, |w| {
                w.u64(base_media_decode_time);
                Ok(())
            })?;
            w.full(*b"trun", 0, TRUN_FLAGS, |w| {
                w.u32(sample_count);
                data_offset_pos = w.len();
                w.i32(0); // data_offset, patched once the moof size is known
                for s in samples {
                    w.u32(s.duration);
                    w.u32(s.size);
                }
                Ok(())
            })
        })
    })?;
    let moof_len = w.len() - moof_start;

    // mdat: a 64-bit largesize only when the payload does not fit the 32-bit size.
    let mdat_header_len = if actual + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let data_offset =
        i32::try_from(moof_len + mdat_header_len).map_err(|_| Mp4Error::TooLarge {
            what: "moof too large for a 32-bit data_offset",
        })?;
    w.patch_i32(data_offset_pos, data_offset);

    if mdat_header_len == 16 {
        w.u32(1);
        w.bytes(b"mdat");
        w.u64(actual + 16);
    } else {
        w.u32((actual + 8) as u32);
        w.bytes(b"mdat");
    }
    w.bytes(payload);
    Ok(w.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{children, find, find_path};
    use super::*;

    #[test]
    fn segment_layout() {
        let samples = [
            SampleInfo {
                size: 3,
                duration: 4096,
            },
            SampleInfo {
                size: 2,
                duration: 1000,
            },
        ];
        let payload = [1, 2, 3, 4, 5];
        let seg = media_segment(7, 0x1_0000_0002, &samples, &payload).unwrap();
        let top = children(&seg);
        let names: Vec<_> = top.iter().map(|(t, _)| *t).collect();
        assert_eq!(names, [*b"styp", *b"moof", *b"mdat"]);
        assert_eq!(top[0].1, b"msdh\0\0\0\0msdhcmfscmff");

        let mfhd = find_path(&seg, &[*b"moof", *b"mfhd"]).unwrap();
        assert_eq!(mfhd, &[0, 0, 0, 0, 0, 0, 0, 7]);
        let traf = find_path(&seg, &[*b"moof", *b"traf"]).unwrap();
        let traf_names: Vec<_> = children(traf).iter().map(|(t, _)| *t).collect();
        assert_eq!(traf_names, [*b"tfhd", *b"tfdt", *b"trun"]);
        assert_eq!(find(traf, *b"tfhd").unwrap(), &[0, 2, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            find(traf, *b"tfdt").unwrap(),
            &[1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        let trun = find(traf, *b"trun").unwrap();
        assert_eq!(&trun[0..4], &[0, 0, 3, 1]);
        assert_eq!(&trun[4..8], &2u32.to_be_bytes());
        let data_offset = i32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        assert_eq!(
            &trun[12..],
            &[0, 0, 0x10, 0, 0, 0, 0, 3, 0, 0, 0x03, 0xE8, 0, 0, 0, 2]
        );

        // data_offset is measured from the first byte of moof to the first payload byte.
        let moof_start = 8 + top[0].1.len();
        assert_eq!(&seg[moof_start + 4..moof_start + 8], b"moof");
        assert_eq!(&seg[moof_start + data_offset..], &payload);
        assert_eq!(top[2].1, &payload);
    }

    #[test]
    fn payload_size_mismatch_is_an_error() {
        let samples = [SampleInfo {
            size: 4,
            duration: 960,
        }];
        assert_eq!(
            media_segment(1, 0, &samples, &[0; 5]),
            Err(Mp4Error::PayloadSizeMismatch {
                expected: 4,
                actual: 5
            })
        );
        assert_eq!(media_segment(1, 0, &[], &[]), Err(Mp4Error::NoSamples));
    }
}
