//! Every source format: ingest with the real binary, open the seals, concatenate init +
//! fragments, decode with ffmpeg and compare with the source as ffmpeg decodes it.

use encore::media::aac;
use encore::media::resample::{OPUS_RATE, resampled_len};

use crate::util::{self, Workspace};

/// How the lossless rendition must relate to the source.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lossless {
    /// Integer source: equal sample for sample.
    Exact,
    /// Float source: rounded to 24-bit, so within one 24-bit step.
    Within24Bit,
    /// Lossy source: a different decoder than ffmpeg's, so same length and near-identical.
    SameLengthCorrelated,
}

struct Case {
    file: &'static str,
    rate: u32,
    channels: u16,
    seconds: f64,
    codec: &'static [&'static str],
    lossless: Lossless,
}

const PREVIEW_START: f64 = 2.0;
const PREVIEW_SECONDS: f64 = 3.0;

fn album_toml() -> String {
    format!(
        "title = \"Format Test\"\nartist = \"encore tests\"\nrelease_date = \"2026-11-27\"\nprice = 500\ncurrency = \"EUR\"\npreview_seconds = {PREVIEW_SECONDS}\npreview_start = {PREVIEW_START}\n"
    )
}

fn check(case: Case) {
    let ws = Workspace::new();
    let album = "format-test";
    let dir = ws.album_dir(album);
    std::fs::write(dir.join("album.toml"), album_toml()).expect("album.toml");
    let src = dir.join(case.file);
    util::make_fixture(&src, case.rate, case.channels, case.seconds, case.codec);

    let out = ws.init_and_ingest();
    assert!(out.status.success(), "ingest failed: {}", util::text(&out));

    let ch = usize::from(case.channels);
    let source_s32 = util::decode_s32(&src);
    // The generated signal's true length. Lossless containers give it back exactly; for lossy
    // ones it is what gapless decoding must present (ffmpeg 5.1 itself leaves AAC's end padding in).
    let source_frames = (case.seconds * f64::from(case.rate)).round() as usize;
    if case.lossless == Lossless::Exact {
        assert_eq!(
            source_s32.len(),
            source_frames * ch,
            "ffmpeg decodes the lossless source to its full length"
        );
    }

    // lossless
    let m = util::manifest(&ws, album, 1, "lossless");
    assert_eq!(m.codec, "flac");
    assert_eq!(m.sample_rate, case.rate, "lossless keeps the source rate");
    assert_eq!(usize::from(m.channels), ch);
    assert_eq!(
        m.duration_samples as usize, source_frames,
        "lossless presents the source's sample count"
    );
    check_timeline(&m, case.rate);
    let lossless = util::open_rendition(&ws, album, 1, "lossless");
    let got = util::decode_s32(&lossless);
    assert_eq!(
        got.len(),
        source_frames * ch,
        "{}: decoded sample count differs from the source",
        case.file
    );
    match case.lossless {
        Lossless::Exact => {
            assert_eq!(m.bit_exact, Some(true));
            let first_diff = got.iter().zip(&source_s32).position(|(a, b)| a != b);
            assert_eq!(
                first_diff, None,
                "{}: lossless differs from the source",
                case.file
            );
        }
        Lossless::Within24Bit => {
            assert_eq!(m.bit_exact, Some(false));
            let worst = got
                .iter()
                .zip(&source_s32)
                .map(|(a, b)| (i64::from(*a) - i64::from(*b)).abs())
                .max()
                .unwrap_or(0);
            assert!(
                worst <= 256,
                "{}: float source off by {worst} (> one 24-bit step)",
                case.file
            );
        }
        Lossless::SameLengthCorrelated => {
            let a: Vec<f32> = got.iter().map(|&s| s as f32 / 2_147_483_648.0).collect();
            let b: Vec<f32> = source_s32
                .iter()
                .map(|&s| s as f32 / 2_147_483_648.0)
                .collect();
            let n = a.len().min(b.len());
            let c = util::correlation(&a[..n], &b[..n]);
            assert!(
                c > 0.999,
                "{}: lossless of a lossy source correlates only {c}",
                case.file
            );
        }
    }

    // lossy tiers: reference = the source resampled to 48 kHz by ffmpeg (soxr), an
    // independent resampler, so alignment and content are checked end to end.
    let reference = util::decode_f32(&src, Some(OPUS_RATE));
    let expected = resampled_len(source_frames, case.rate, OPUS_RATE);
    for (rendition, min_corr) in [("high", 0.995), ("standard", 0.99)] {
        let m = util::manifest(&ws, album, 1, rendition);
        assert_eq!(m.codec, "opus");
        assert_eq!(m.sample_rate, OPUS_RATE);
        assert_eq!(
            m.duration_samples as usize, expected,
            "{rendition}: presented length must equal the resampled source length"
        );
        assert!(
            m.skip_samples > 0,
            "{rendition}: Opus pre-skip is signalled"
        );
        check_timeline(&m, OPUS_RATE);
        let file = util::open_rendition(&ws, album, 1, rendition);
        let pcm = util::decode_f32(&file, None);
        let frames = pcm.len() / ch;
        // ffmpeg 5.1 applies the pre-skip but not the edit list's end trim inside the last
        // packet, so it returns up to one frame of padding past the presented length.
        assert!(
            frames >= expected && frames < expected + 960,
            "{rendition}: ffmpeg decoded {frames} frames, presented length is {expected}"
        );
        let pcm = &pcm[..expected * ch];
        let c = util::correlation(pcm, &reference[..reference.len().min(pcm.len())]);
        let snr = util::snr_db(&reference[..reference.len().min(pcm.len())], pcm);
        eprintln!(
            "{} {rendition}: correlation {c:.5}, snr {snr:.1} dB",
            case.file
        );
        assert!(
            c > min_corr,
            "{rendition}: correlation with the source {c} <= {min_corr} (misaligned or damaged)"
        );
    }

    // aac: AAC-LC for Apple players at 44.1/48 kHz, buyer-only, gapless through its edit list.
    let m = util::manifest(&ws, album, 1, "aac");
    let aac_rate = aac::coded_rate(case.rate);
    assert_eq!(
        (m.codec.as_str(), m.codec_string.as_str()),
        ("aac", "mp4a.40.2")
    );
    assert_eq!(m.sample_rate, aac_rate);
    assert_eq!(usize::from(m.channels), ch, "mono stays mono");
    assert_eq!(
        m.bitrate,
        128_000 * u32::from(case.channels),
        "mono gets half"
    );
    assert_eq!(
        m.duration_samples as usize,
        resampled_len(source_frames, case.rate, aac_rate),
        "aac presents the source's length at its rate"
    );
    assert!(m.skip_samples > 0, "aac: the encoder delay is signalled");
    check_timeline(&m, aac_rate);
    let file = util::open_rendition(&ws, album, 1, "aac");
    let snr = util::check_aac(&file, &src, case.rate, case.channels, source_frames);
    eprintln!("{} aac at {aac_rate} Hz: snr {snr:.1} dB", case.file);

    // preview: its own key, the window from album.toml, faded ends
    let p = util::manifest(&ws, album, 1, "preview");
    let standard = util::manifest(&ws, album, 1, "standard");
    assert_ne!(
        p.key_id, standard.key_id,
        "preview must be sealed under its own key"
    );
    let window = p.preview.expect("preview window recorded");
    assert!((window.start_seconds - PREVIEW_START).abs() < 1e-3);
    assert!((window.seconds - PREVIEW_SECONDS).abs() < 1e-3);
    assert_eq!(
        p.duration_samples,
        (PREVIEW_SECONDS * f64::from(OPUS_RATE)) as u64
    );
    let file = util::open_rendition(&ws, album, 1, "preview");
    assert_eq!(p.codec, "aac", "the preview plays on every player");
    // AAC: the priming sits before time zero (edit list); start where the clip starts.
    let pcm = util::decode_f32_from_zero(&file);
    let start = (PREVIEW_START * f64::from(OPUS_RATE)) as usize * ch;
    let len = p.duration_samples as usize * ch;
    // Compare the unfaded middle of the clip with the same stretch of the source.
    let mid = (0.6 * f64::from(OPUS_RATE)) as usize * ch;
    let c = util::correlation(
        &pcm[mid..len - mid],
        &reference[start + mid..start + len - mid],
    );
    assert!(
        c > 0.99,
        "preview correlates {c} with its window of the source"
    );
    assert!(
        pcm[..ch].iter().all(|s| s.abs() < 0.02),
        "preview fades in from silence"
    );
}

/// Segments tile the timeline exactly: contiguous decode times of about the target length.
fn check_timeline(m: &encore::store::RenditionManifest, rate: u32) {
    let mut t = 0;
    for (i, s) in m.segments.iter().enumerate() {
        assert_eq!(s.index as usize, i + 1);
        assert_eq!(
            s.start, t,
            "segment {} starts where the previous ended",
            s.index
        );
        t += s.duration;
        if i + 1 < m.segments.len() {
            let secs = s.duration as f64 / f64::from(rate);
            assert!(
                (6.0..7.0).contains(&secs),
                "segment {} lasts {secs} s",
                s.index
            );
        }
    }
    assert!(
        t >= m.duration_samples + m.skip_samples,
        "segments cover the presented duration"
    );
}

#[test]
fn flac_16_bit_stereo_44k() {
    check(Case {
        file: "a.flac",
        rate: 44_100,
        channels: 2,
        seconds: 8.0,
        codec: &["-c:a", "flac", "-sample_fmt", "s16"],
        lossless: Lossless::Exact,
    });
}

#[test]
fn flac_24_bit_stereo_96k() {
    check(Case {
        file: "a.flac",
        rate: 96_000,
        channels: 2,
        seconds: 7.0,
        codec: util::FLAC_24,
        lossless: Lossless::Exact,
    });
}

#[test]
fn flac_24_bit_stereo_192k() {
    check(Case {
        file: "a.flac",
        rate: 192_000,
        channels: 2,
        seconds: 7.0,
        codec: util::FLAC_24,
        lossless: Lossless::Exact,
    });
}

#[test]
fn wav_16_bit_mono_8k() {
    check(Case {
        file: "a.wav",
        rate: 8_000,
        channels: 1,
        seconds: 8.0,
        codec: &["-c:a", "pcm_s16le"],
        lossless: Lossless::Exact,
    });
}

#[test]
fn wav_24_bit_stereo_48k() {
    check(Case {
        file: "a.wav",
        rate: 48_000,
        channels: 2,
        seconds: 8.0,
        codec: &["-c:a", "pcm_s24le"],
        lossless: Lossless::Exact,
    });
}

/// A 32-bit integer WAV whose low byte carries signal (ffmpeg's s32 from a float source
/// uses all 32 bits) must come back bit for bit: the lossless rendition is 32-bit FLAC.
///
/// The decoder is not encore's, nor ffmpeg 5.1's (which refuses 32-bit FLAC): the reference
/// `flac` 1.4.2 from Debian (`flac -d`), fed the FLAC stream carried in the fMP4 (STREAMINFO
/// from `dfLa`, then every frame from the `mdat`s), which also checks STREAMINFO's MD5.
#[test]
fn wav_32_bit_integer_is_bit_exact() {
    let ws = Workspace::new();
    let album = "wide";
    let src = ws.album_dir(album).join("01.wav");
    let (rate, seconds) = (44_100u32, 7.0);
    util::make_fixture(&src, rate, 2, seconds, &["-c:a", "pcm_s32le"]);
    let source = util::decode_s32(&src);
    assert!(
        source.iter().filter(|s| *s & 0xFF != 0).count() > source.len() / 2,
        "the fixture uses the low byte"
    );
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "ingest failed: {}", util::text(&out));

    let m = util::manifest(&ws, album, 1, "lossless");
    assert_eq!(m.codec, "flac");
    assert_eq!(m.bits_per_sample, 32, "coded at the source's depth");
    assert_eq!(m.bit_exact, Some(true));
    assert_eq!(m.duration_samples, (seconds * f64::from(rate)) as u64);
    let fmp4 = std::fs::read(util::open_rendition(&ws, album, 1, "lossless")).expect("read");
    let native = ws.path().join("lossless.flac");
    std::fs::write(&native, util::flac_stream_of_fmp4(&fmp4)).expect("write .flac");
    let decoded = util::flac_decode_s32(&native);
    assert_eq!(decoded.len(), source.len(), "same sample count");
    let first_diff = decoded.iter().zip(&source).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "32-bit lossless differs from the source");
}

#[test]
fn wav_32_bit_float_stereo_44k() {
    check(Case {
        file: "a.wav",
        rate: 44_100,
        channels: 2,
        seconds: 7.0,
        codec: &["-c:a", "pcm_f32le"],
        lossless: Lossless::Within24Bit,
    });
}

#[test]
fn mp3_stereo_44k() {
    check(Case {
        file: "a.mp3",
        rate: 44_100,
        channels: 2,
        seconds: 8.0,
        codec: &["-c:a", "libmp3lame", "-b:a", "256k"],
        lossless: Lossless::SameLengthCorrelated,
    });
}

#[test]
fn aac_in_m4a_stereo_44k() {
    check(Case {
        file: "a.m4a",
        rate: 44_100,
        channels: 2,
        seconds: 8.0,
        codec: &["-c:a", "aac", "-b:a", "256k"],
        lossless: Lossless::SameLengthCorrelated,
    });
}

#[test]
fn alac_in_m4a_stereo_44k() {
    check(Case {
        file: "a.m4a",
        rate: 44_100,
        channels: 2,
        seconds: 7.0,
        codec: &["-c:a", "alac", "-sample_fmt", "s16p"],
        lossless: Lossless::Exact,
    });
}

#[test]
fn ogg_vorbis_stereo_44k() {
    check(Case {
        file: "a.ogg",
        rate: 44_100,
        channels: 2,
        seconds: 8.0,
        codec: &["-c:a", "libvorbis", "-q:a", "8"],
        lossless: Lossless::SameLengthCorrelated,
    });
}

#[test]
fn flac_24_bit_noise_is_exact_and_never_larger_than_raw() {
    // Loud 24-bit noise defeats flacenc's Rice coder (parameter capped at 14); encore falls
    // back to verbatim frames, so the rendition stays exact and no larger than raw PCM.
    let ws = Workspace::new();
    let dir = ws.album_dir("noise");
    let src = dir.join("01.flac");
    util::make_noise_flac(&src, 96_000, 0.9, 3.0);
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    let m = util::manifest(&ws, "noise", 1, "lossless");
    let raw = 3 * 96_000 * 2 * 3;
    let coded: u64 = m.segments.iter().map(|s| s.bytes).sum();
    assert!(
        coded <= raw + raw / 50,
        "lossless is {coded} bytes for {raw} bytes of raw PCM"
    );
    let file = util::open_rendition(&ws, "noise", 1, "lossless");
    assert_eq!(
        util::decode_s32(&file),
        util::decode_s32(&src),
        "verbatim fallback frames decode exactly"
    );
}
