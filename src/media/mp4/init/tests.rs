//! Init segments box by box: brands, durations, edits, each codec's sample entry, and the
//! specs refused.

use super::super::CodecConfig;
use super::super::testutil::{children, find, find_path};
use super::sample_entry::flac_entry_rate;
use super::*;

/// A STREAMINFO body for the given format (block size 4096, no frame sizes, no MD5).
pub(crate) fn streaminfo(rate: u32, channels: u8, bits: u8, total: u64) -> Vec<u8> {
    let mut s = vec![0u8; 34];
    s[0..2].copy_from_slice(&4096u16.to_be_bytes());
    s[2..4].copy_from_slice(&4096u16.to_be_bytes());
    let packed: u64 = (u64::from(rate) << 44)
        | (u64::from(channels - 1) << 41)
        | (u64::from(bits - 1) << 36)
        | total;
    s[10..18].copy_from_slice(&packed.to_be_bytes());
    s
}

fn flac_spec(rate: u32, bits: u16) -> InitSpec {
    InitSpec {
        codec: CodecConfig::Flac {
            metadata_blocks: vec![
                (0, streaminfo(rate, 2, bits as u8, 1000)),
                (4, b"vendor".to_vec()),
            ],
        },
        sample_rate: rate,
        channels: 2,
        bits_per_sample: bits,
        edit: None,
        media_duration: 12_288,
        language: *b"und",
    }
}

fn opus_spec() -> InitSpec {
    InitSpec {
        codec: CodecConfig::Opus {
            pre_skip: 312,
            input_sample_rate: 44_100,
            output_gain: -256,
        },
        sample_rate: 48_000,
        channels: 2,
        bits_per_sample: 16,
        edit: Some(Edit {
            media_time: 312,
            duration: 4000,
        }),
        media_duration: 4800,
        language: *b"eng",
    }
}

#[test]
fn flac_init_layout() {
    let init = init_segment(&flac_spec(44_100, 16)).unwrap();
    let top = children(&init);
    let names: Vec<_> = top.iter().map(|(t, _)| *t).collect();
    assert_eq!(names, [*b"ftyp", *b"moov"]);
    // Top-level boxes tile the whole buffer.
    let total: usize = top.iter().map(|(_, b)| b.len() + 8).sum();
    assert_eq!(total, init.len());
    assert_eq!(top[0].1, b"iso6\0\0\0\0iso6isomcmfcdash");

    let moov = find(&init, *b"moov").unwrap();
    let moov_names: Vec<_> = children(moov).iter().map(|(t, _)| *t).collect();
    assert_eq!(moov_names, [*b"mvhd", *b"trak", *b"mvex"]);
    let trak = find(moov, *b"trak").unwrap();
    let trak_names: Vec<_> = children(trak).iter().map(|(t, _)| *t).collect();
    assert_eq!(trak_names, [*b"tkhd", *b"mdia"], "no edts without an edit");

    let mvhd = find(moov, *b"mvhd").unwrap();
    assert_eq!(mvhd.len(), 100); // v0 mvhd body incl. version/flags
    assert_eq!(&mvhd[12..16], &44_100u32.to_be_bytes()); // timescale
    assert_eq!(&mvhd[16..20], &12_288u32.to_be_bytes()); // duration = media_duration
    assert_eq!(&mvhd[96..100], &2u32.to_be_bytes()); // next_track_ID

    let tkhd = find(trak, *b"tkhd").unwrap();
    assert_eq!(tkhd.len(), 84);
    assert_eq!(&tkhd[0..4], &[0, 0, 0, 3]);
    assert_eq!(&tkhd[12..16], &1u32.to_be_bytes()); // track_ID
    assert_eq!(&tkhd[36..38], &0x0100u16.to_be_bytes()); // volume

    let mdhd = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"mdhd"]).unwrap();
    assert_eq!(&mdhd[12..16], &44_100u32.to_be_bytes());
    // "und" = 0x55C4
    assert_eq!(&mdhd[20..22], &[0x55, 0xC4]);

    let hdlr = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"hdlr"]).unwrap();
    assert_eq!(&hdlr[8..12], b"soun");

    let url = find_path(
        &init,
        &[
            *b"moov", *b"trak", *b"mdia", *b"minf", *b"dinf", *b"dref", *b"url ",
        ],
    );
    assert_eq!(url.unwrap(), &[0, 0, 0, 1]);

    let stbl = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"minf", *b"stbl"]).unwrap();
    let stbl_names: Vec<_> = children(stbl).iter().map(|(t, _)| *t).collect();
    assert_eq!(
        stbl_names,
        [*b"stsd", *b"stts", *b"stsc", *b"stsz", *b"stco"]
    );
    assert_eq!(find(stbl, *b"stsz").unwrap(), &[0u8; 12]);

    let stsd = find(stbl, *b"stsd").unwrap();
    assert_eq!(&stsd[4..8], &1u32.to_be_bytes());
    let entry = find(&stsd[8..], *b"fLaC").unwrap();
    assert_eq!(&entry[6..8], &1u16.to_be_bytes()); // data_reference_index
    assert_eq!(&entry[16..18], &2u16.to_be_bytes()); // channelcount
    assert_eq!(&entry[18..20], &16u16.to_be_bytes()); // samplesize
    assert_eq!(&entry[24..28], &(44_100u32 << 16).to_be_bytes());
    let dfla = find(&entry[28..], *b"dfLa").unwrap();
    assert_eq!(&dfla[0..4], &[0, 0, 0, 0]); // version/flags
    assert_eq!(&dfla[4..8], &[0x00, 0, 0, 34]); // STREAMINFO, not last
    assert_eq!(&dfla[42..46], &[0x84, 0, 0, 6]); // VORBIS_COMMENT, last
    assert_eq!(&dfla[46..], b"vendor");

    let mvex = find(moov, *b"mvex").unwrap();
    let mehd = find(mvex, *b"mehd").unwrap();
    assert_eq!(mehd, &[0, 0, 0, 0, 0, 0, 0x30, 0x00]);
    let trex = find(mvex, *b"trex").unwrap();
    assert_eq!(
        trex,
        &[
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]
    );
}

#[test]
fn opus_init_layout_and_edit() {
    let init = init_segment(&opus_spec()).unwrap();
    let trak = find_path(&init, &[*b"moov", *b"trak"]).unwrap();
    let names: Vec<_> = children(trak).iter().map(|(t, _)| *t).collect();
    assert_eq!(names, [*b"tkhd", *b"edts", *b"mdia"]);
    let elst = find_path(trak, &[*b"edts", *b"elst"]).unwrap();
    assert_eq!(
        elst,
        &[
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x0F, 0xA0, 0, 0, 0x01, 0x38, 0, 1, 0, 0
        ]
    );
    let tkhd = find(trak, *b"tkhd").unwrap();
    assert_eq!(&tkhd[20..24], &4000u32.to_be_bytes()); // duration = edit duration
    let stsd = find_path(trak, &[*b"mdia", *b"minf", *b"stbl", *b"stsd"]).unwrap();
    let entry = find(&stsd[8..], *b"Opus").unwrap();
    assert_eq!(&entry[16..18], &2u16.to_be_bytes());
    assert_eq!(&entry[18..20], &16u16.to_be_bytes());
    assert_eq!(&entry[24..28], &(48_000u32 << 16).to_be_bytes());
    let dops = find(&entry[28..], *b"dOps").unwrap();
    assert_eq!(dops, &[0, 2, 0x01, 0x38, 0, 0, 0xAC, 0x44, 0xFF, 0x00, 0]);
    let mdhd = find_path(trak, &[*b"mdia", *b"mdhd"]).unwrap();
    assert_eq!(&mdhd[20..22], &[0x15, 0xC7]); // "eng"
}

fn aac_spec() -> InitSpec {
    InitSpec {
        codec: CodecConfig::Aac {
            audio_specific_config: vec![0x11, 0x90],
            buffer_size: 1536,
            max_bitrate: 270_000,
            avg_bitrate: 256_000,
        },
        sample_rate: 48_000,
        channels: 2,
        bits_per_sample: 16,
        edit: Some(Edit {
            media_time: 2048,
            duration: 48_000,
        }),
        media_duration: 51_200,
        language: *b"und",
    }
}

#[test]
fn aac_init_layout_esds_and_edit() {
    let init = init_segment(&aac_spec()).unwrap();
    let trak = find_path(&init, &[*b"moov", *b"trak"]).unwrap();
    let elst = find_path(trak, &[*b"edts", *b"elst"]).unwrap();
    let mut want = vec![0, 0, 0, 0, 0, 0, 0, 1];
    want.extend_from_slice(&48_000u32.to_be_bytes()); // segment_duration
    want.extend_from_slice(&2048u32.to_be_bytes()); // media_time = priming
    want.extend_from_slice(&[0, 1, 0, 0]); // rate 1.0
    assert_eq!(elst, want.as_slice());
    let stsd = find_path(trak, &[*b"mdia", *b"minf", *b"stbl", *b"stsd"]).unwrap();
    let entry = find(&stsd[8..], *b"mp4a").unwrap();
    assert_eq!(&entry[16..18], &2u16.to_be_bytes()); // channelcount
    assert_eq!(&entry[18..20], &16u16.to_be_bytes()); // samplesize
    assert_eq!(&entry[24..28], &(48_000u32 << 16).to_be_bytes());
    let esds = find(&entry[28..], *b"esds").unwrap();
    let mut want = vec![0, 0, 0, 0]; // version, flags
    want.extend_from_slice(&[0x03, 25, 0, 0, 0]); // ES_Descriptor, ES_ID 0, flags 0
    want.extend_from_slice(&[0x04, 17, 0x40, 0x15]); // DecoderConfig: MPEG-4 audio stream
    want.extend_from_slice(&[0x00, 0x06, 0x00]); // bufferSizeDB 1536
    want.extend_from_slice(&270_000u32.to_be_bytes());
    want.extend_from_slice(&256_000u32.to_be_bytes());
    want.extend_from_slice(&[0x05, 2, 0x11, 0x90]); // DecoderSpecificInfo = the ASC
    want.extend_from_slice(&[0x06, 1, 0x02]); // SLConfig predefined 2
    assert_eq!(esds, want.as_slice());
}

#[test]
fn aac_rejects_what_mp4a_40_2_cannot_say() {
    let mut s = aac_spec();
    s.sample_rate = 96_000;
    assert_eq!(init_segment(&s), Err(Mp4Error::AacSampleRate(96_000)));
    let mut s = aac_spec();
    s.channels = 6;
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::UnsupportedChannels { .. })
    ));
    for asc in [vec![], vec![0x11], vec![0x29, 0x90], vec![0x11; 65]] {
        let mut s = aac_spec();
        s.codec = CodecConfig::Aac {
            audio_specific_config: asc.clone(),
            buffer_size: 0,
            max_bitrate: 0,
            avg_bitrate: 0,
        };
        assert_eq!(init_segment(&s), Err(Mp4Error::BadAudioSpecificConfig(asc)));
    }
}

#[test]
fn wide_values_switch_to_version_1() {
    let mut spec = opus_spec();
    let big = u64::from(u32::MAX) + 10;
    spec.media_duration = big + 312;
    spec.edit = Some(Edit {
        media_time: 312,
        duration: big,
    });
    let init = init_segment(&spec).unwrap();
    let elst = find_path(&init, &[*b"moov", *b"trak", *b"edts", *b"elst"]).unwrap();
    assert_eq!(elst[0], 1);
    assert_eq!(&elst[8..16], &big.to_be_bytes());
    assert_eq!(&elst[16..24], &312i64.to_be_bytes());
    let mvhd = find_path(&init, &[*b"moov", *b"mvhd"]).unwrap();
    assert_eq!(mvhd[0], 1);
    assert_eq!(mvhd.len(), 112);
    assert_eq!(&mvhd[24..32], &big.to_be_bytes());
    let tkhd = find_path(&init, &[*b"moov", *b"trak", *b"tkhd"]).unwrap();
    assert_eq!((tkhd[0], tkhd.len()), (1, 96));
    let mehd = find_path(&init, &[*b"moov", *b"mvex", *b"mehd"]).unwrap();
    assert_eq!(mehd[0], 1);
    assert_eq!(&mehd[4..12], &(big + 312).to_be_bytes());
}

#[test]
fn high_sample_rates() {
    assert_eq!(flac_entry_rate(44_100), 44_100);
    assert_eq!(flac_entry_rate(65_535), 65_535);
    assert_eq!(flac_entry_rate(88_200), 44_100);
    assert_eq!(flac_entry_rate(96_000), 48_000);
    assert_eq!(flac_entry_rate(176_400), 44_100);
    assert_eq!(flac_entry_rate(192_000), 48_000);
    assert_eq!(flac_entry_rate(384_000), 48_000);
    assert_eq!(flac_entry_rate(65_537), 65_535); // no regular division

    let init = init_segment(&flac_spec(192_000, 24)).unwrap();
    let stsd = find_path(
        &init,
        &[*b"moov", *b"trak", *b"mdia", *b"minf", *b"stbl", *b"stsd"],
    )
    .unwrap();
    let entry = find(&stsd[8..], *b"fLaC").unwrap();
    assert_eq!(&entry[18..20], &24u16.to_be_bytes());
    assert_eq!(&entry[24..28], &(48_000u32 << 16).to_be_bytes());
    // The true rate is the timescale.
    let mdhd = find_path(&init, &[*b"moov", *b"trak", *b"mdia", *b"mdhd"]).unwrap();
    assert_eq!(&mdhd[12..16], &192_000u32.to_be_bytes());
    let mvhd = find_path(&init, &[*b"moov", *b"mvhd"]).unwrap();
    assert_eq!(&mvhd[12..16], &192_000u32.to_be_bytes());
}

#[test]
fn rejects_bad_specs() {
    let mut s = flac_spec(44_100, 16);
    s.sample_rate = 0;
    assert_eq!(init_segment(&s), Err(Mp4Error::ZeroSampleRate));

    let mut s = flac_spec(44_100, 16);
    s.codec = CodecConfig::Flac {
        metadata_blocks: vec![],
    };
    assert_eq!(init_segment(&s), Err(Mp4Error::EmptyFlacMetadata));

    let mut s = flac_spec(44_100, 16);
    s.codec = CodecConfig::Flac {
        metadata_blocks: vec![(4, vec![0; 34])],
    };
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::BadStreamInfo { .. })
    ));

    let mut s = flac_spec(44_100, 16);
    if let CodecConfig::Flac { metadata_blocks } = &mut s.codec {
        metadata_blocks.push((127, vec![]));
    }
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::BadMetadataBlock { index: 2, .. })
    ));

    let mut s = flac_spec(44_100, 16);
    s.sample_rate = 48_000;
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::StreamInfoMismatch {
            field: "sample rate",
            ..
        })
    ));
    let mut s = flac_spec(44_100, 16);
    s.bits_per_sample = 24;
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::StreamInfoMismatch {
            field: "bits per sample",
            ..
        })
    ));
    let mut s = flac_spec(44_100, 16);
    s.channels = 9;
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::UnsupportedChannels { .. })
    ));

    let mut s = opus_spec();
    s.channels = 3;
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::UnsupportedChannels { .. })
    ));
    let mut s = opus_spec();
    s.sample_rate = 44_100;
    assert_eq!(init_segment(&s), Err(Mp4Error::OpusSampleRate(44_100)));
    let mut s = opus_spec();
    s.edit = Some(Edit {
        media_time: 312,
        duration: 4800,
    });
    assert!(matches!(
        init_segment(&s),
        Err(Mp4Error::EditOutOfRange { .. })
    ));
    let mut s = opus_spec();
    s.language = *b"EN1";
    assert_eq!(init_segment(&s), Err(Mp4Error::InvalidLanguage));
}

#[test]
fn output_is_deterministic() {
    assert_eq!(
        init_segment(&opus_spec()).unwrap(),
        init_segment(&opus_spec()).unwrap()
    );
}
