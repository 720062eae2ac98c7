//! Property tests of the MP4 boxes encore writes and reads back: the edit list of an init
//! segment reads back as the trim it describes; any box tree, however its sizes lie, is
//! walked without a panic; a media segment's `trun` points at its own samples.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use proptest::prelude::*;

use super::gapless::{Trim, mp4_trim};
use super::mp4::{CodecConfig, Edit, InitSpec, SampleInfo, init_segment, media_segment};

fn opus_spec(edit: Option<Edit>, media_duration: u64) -> InitSpec {
    InitSpec {
        codec: CodecConfig::Opus {
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
        },
        sample_rate: 48_000,
        channels: 2,
        bits_per_sample: 16,
        edit,
        media_duration,
        language: *b"und",
    }
}

/// Reads the trim of `bytes` as ingest reads a source file's.
fn trim_of(bytes: &[u8]) -> Option<Trim> {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
    }
    DIR.with(|dir| {
        let path = dir.path().join("source.m4a");
        std::fs::write(&path, bytes).unwrap();
        mp4_trim(&path)
    })
}

/// Box trees with honest and lying sizes (0: to the end, 1: a 64-bit size, too small, too
/// large), nested to a few levels, with the box types the edit-list reader looks for.
fn box_tree() -> impl Strategy<Value = Vec<u8>> {
    let kind = proptest::sample::select(vec![
        *b"moov", *b"mvhd", *b"trak", *b"mdia", *b"hdlr", *b"mdhd", *b"edts", *b"elst", *b"free",
    ]);
    let body = proptest::collection::vec(any::<u8>(), 0..40);
    let leaf = (kind.clone(), body).prop_map(|(k, b)| (k, b, None::<u32>));
    let tree = leaf.prop_recursive(4, 24, 4, move |inner| {
        (
            kind.clone(),
            proptest::collection::vec(inner, 0..4),
            proptest::option::weighted(
                0.2,
                prop_oneof![Just(0u32), Just(1), Just(7), any::<u32>()],
            ),
        )
            .prop_map(|(k, children, size)| {
                let body: Vec<u8> = children
                    .into_iter()
                    .flat_map(|(k, b, s)| encode(k, &b, s))
                    .collect();
                (k, body, size)
            })
    });
    proptest::collection::vec(tree, 0..3).prop_map(|boxes| {
        boxes
            .into_iter()
            .flat_map(|(k, b, s)| encode(k, &b, s))
            .collect()
    })
}

fn encode(kind: [u8; 4], body: &[u8], size: Option<u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    match size {
        Some(1) => {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&kind);
            out.extend_from_slice(&(body.len() as u64 + 16).to_be_bytes());
        }
        Some(s) => {
            out.extend_from_slice(&s.to_be_bytes());
            out.extend_from_slice(&kind);
        }
        None => {
            out.extend_from_slice(&(body.len() as u32 + 8).to_be_bytes());
            out.extend_from_slice(&kind);
        }
    }
    out.extend_from_slice(body);
    out
}

proptest! {
    #![proptest_config(crate::fuzzing::config(128))]

    /// The edit an init segment is written with reads back as the same trim.
    #[test]
    fn an_init_segments_edit_reads_back_as_its_trim(
        media_time in prop_oneof![0u64..5_000, Just(u64::from(u32::MAX)), Just(i64::MAX as u64 / 2)],
        duration in prop_oneof![0u64..10_000_000, Just(u64::from(u32::MAX) + 1)],
        slack in 0u64..1_000,
    ) {
        let media_duration = media_time + duration + slack;
        let init = init_segment(&opus_spec(Some(Edit { media_time, duration }), media_duration)).unwrap();
        prop_assert_eq!(
            trim_of(&init),
            Some(Trim { skip: media_time, keep: (duration > 0).then_some(duration) })
        );
        prop_assert_eq!(trim_of(&init_segment(&opus_spec(None, media_duration)).unwrap()), None);
    }

    /// An init segment with bytes changed, and box trees whose sizes lie, are read without a
    /// panic; a trim read from them never skips a negative time.
    #[test]
    fn any_boxes_are_read_safely(
        tree in box_tree(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let _ = trim_of(&tree);
        let mut init = init_segment(&opus_spec(Some(Edit { media_time: 312, duration: 48_000 }), 50_000)).unwrap();
        for (at, byte) in flips {
            let at = at % init.len();
            init[at] = byte;
        }
        if let Some(trim) = trim_of(&init) {
            prop_assert!(i64::try_from(trim.skip).is_ok());
        }
        init.truncate(cut % (init.len() + 1));
        let _ = trim_of(&init);
    }

    /// A media segment's boxes nest exactly, and its `trun` data offset points at its own
    /// samples.
    #[test]
    fn a_media_segments_offsets_point_at_its_samples(
        sequence in any::<u32>(),
        decode_time in any::<u64>(),
        sizes in proptest::collection::vec((0u32..200, any::<u32>()), 1..20),
    ) {
        let samples: Vec<SampleInfo> = sizes.iter().map(|&(size, duration)| SampleInfo { size, duration }).collect();
        let payload: Vec<u8> = (0..sizes.iter().map(|s| s.0 as usize).sum::<usize>()).map(|i| i as u8).collect();
        let segment = media_segment(sequence, decode_time, &samples, &payload).unwrap();
        let top = super::mp4::testutil::children(&segment);
        let kinds: Vec<[u8; 4]> = top.iter().map(|(k, _)| *k).collect();
        prop_assert_eq!(kinds, vec![*b"styp", *b"moof", *b"mdat"]);
        prop_assert_eq!(top[2].1, &payload[..]);
        let moof_start = 8 + top[0].1.len();
        let traf = super::mp4::testutil::find(top[1].1, *b"traf").unwrap();
        let trun = super::mp4::testutil::find(traf, *b"trun").unwrap();
        let data_offset = i32::from_be_bytes(trun[8..12].try_into().unwrap());
        let data_at = moof_start + usize::try_from(data_offset).unwrap();
        prop_assert_eq!(&segment[data_at..], &payload[..]);
        prop_assert_eq!(u32::from_be_bytes(trun[4..8].try_into().unwrap()) as usize, samples.len());
    }
}
