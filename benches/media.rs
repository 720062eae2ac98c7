//! Media stages, one track at a time: decode, FLAC encode, resample, Opus and AAC encode,
//! fMP4 cut.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench media`
//!
//! Throughput is counted in milliseconds of audio (1 element = 1 ms), so criterion's
//! `Kelem/s` reads directly as "× realtime" (1 Kelem/s = one second of audio per second).
//! Inputs are the demo album in `media/first-light/` (16-bit stereo FLAC, 128k MP3, Ogg
//! Vorbis; 24–32 s each). Every stage runs on one thread, as ingest runs each track.
//!
//! Latest figures, 2026-11-28 05:03 UTC, 2 vCPU Intel Xeon (family 6 model 207, AVX-512),
//! quiet machine, from `benches/compare.sh 5`; mean wall time; see `docs/PERFORMANCE.md` for
//! the ffmpeg ratios. Opus is the system's C libopus 1.3.1, FLAC is flacenc at LPC order 8
//! (the AAC line is from 2026-11-28 11:41 UTC, `-- aac_encode`, Opus 256k at 315 ms then):
//!
//! | stage                                    |      time | × realtime |
//! |------------------------------------------|----------:|-----------:|
//! | decode FLAC 44.1 kHz (01-dawn-chorus)    |  50.2 ms  |        558 |
//! | decode FLAC 48 kHz (02-low-tide)         |  47.5 ms  |        505 |
//! | decode MP3 (03-paper-boats)              |  33.3 ms  |        962 |
//! | decode Vorbis (04-long-shadows)          |  30.6 ms  |        980 |
//! | FLAC encode, 16-bit (01)                 |   243 ms  |        115 |
//! | FLAC encode, 24-bit from MP3 (03)        |   318 ms  |        101 |
//! | resample 44.1 → 48 kHz (01)              |  39.5 ms  |        709 |
//! | Opus encode 256 kbit/s (01)              |   313 ms  |       89.5 |
//! | Opus encode 128 kbit/s (01)              |   258 ms  |        109 |
//! | AAC-LC encode 256 kbit/s (01, FDK AAC)   |   126 ms  |        221 |
//! | fMP4 package, FLAC rendition (01)        |  0.15 ms  |    190 000 |
//! | fMP4 package, Opus 256k rendition (01)   |  0.04 ms  |    706 000 |

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use encore::media::decode::decode_file;
use encore::media::pcm::Pcm;
use encore::media::resample::{OPUS_RATE, resample_interleaved};
use encore::media::{aac, flac, opus, segment};

/// The demo tracks, with a short label for the benchmark id.
const TRACKS: [(&str, &str); 4] = [
    ("flac-44k", "01-dawn-chorus.flac"),
    ("flac-48k", "02-low-tide.flac"),
    ("mp3", "03-paper-boats.mp3"),
    ("vorbis", "04-long-shadows.ogg"),
];

/// Bitrates of the `high` and `standard` tiers for stereo (the ingest defaults).
const HIGH: u32 = 256_000;
const STANDARD: u32 = 128_000;
/// Bitrate of the `aac` rendition for stereo (the ingest default).
const AAC: u32 = 256_000;

fn track_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("media/first-light")
        .join(file)
}

fn decode(file: &str) -> Pcm {
    decode_file(&track_path(file))
        .expect("demo track decodes")
        .pcm
}

/// Milliseconds of audio in `pcm`: the throughput unit of every benchmark here.
fn audio_ms(pcm: &Pcm) -> u64 {
    (pcm.seconds() * 1000.0).round() as u64
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (label, file) in TRACKS {
        let path = track_path(file);
        g.throughput(Throughput::Elements(audio_ms(&decode(file))));
        g.bench_function(label, |b| {
            b.iter(|| decode_file(black_box(&path)).expect("decodes"))
        });
    }
    g.finish();
}

fn bench_flac(c: &mut Criterion) {
    let mut g = c.benchmark_group("flac_encode");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (label, file) in [("16bit", TRACKS[0].1), ("24bit-from-mp3", TRACKS[2].1)] {
        let pcm = decode(file);
        g.throughput(Throughput::Elements(audio_ms(&pcm)));
        g.bench_function(label, |b| {
            b.iter(|| flac::encode(black_box(&pcm)).expect("encodes"))
        });
    }
    g.finish();
}

fn bench_resample(c: &mut Criterion) {
    let pcm = decode(TRACKS[0].1);
    let mut g = c.benchmark_group("resample");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(audio_ms(&pcm)));
    g.bench_function("44k1-to-48k", |b| {
        b.iter(|| {
            resample_interleaved(
                black_box(&pcm.float),
                pcm.channels,
                pcm.sample_rate,
                OPUS_RATE,
            )
            .expect("resamples")
        })
    });
    g.finish();
}

fn bench_opus(c: &mut Criterion) {
    let pcm = decode(TRACKS[0].1);
    let pcm48 = resample_interleaved(&pcm.float, pcm.channels, pcm.sample_rate, OPUS_RATE)
        .expect("resamples");
    let mut g = c.benchmark_group("opus_encode");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(audio_ms(&pcm)));
    for (label, rate) in [("256k", HIGH), ("128k", STANDARD)] {
        g.bench_function(label, |b| {
            b.iter(|| opus::encode(black_box(&pcm48), pcm.channels, rate).expect("encodes"))
        });
    }
    g.finish();
}

/// AAC-LC at the source's 44.1 kHz, as ingest codes a 44.1 kHz source (no resampling).
fn bench_aac(c: &mut Criterion) {
    let pcm = decode(TRACKS[0].1);
    let mut g = c.benchmark_group("aac_encode");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Elements(audio_ms(&pcm)));
    g.bench_function("256k", |b| {
        b.iter(|| {
            aac::encode(black_box(&pcm.float), pcm.channels, pcm.sample_rate, AAC).expect("encodes")
        })
    });
    g.finish();
}

fn bench_segment(c: &mut Criterion) {
    let pcm = decode(TRACKS[0].1);
    let (lossless, _) = flac::encode(&pcm).expect("encodes");
    let pcm48 = resample_interleaved(&pcm.float, pcm.channels, pcm.sample_rate, OPUS_RATE)
        .expect("resamples");
    let high = opus::encode(&pcm48, pcm.channels, HIGH).expect("encodes");
    let mut g = c.benchmark_group("segment_package");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(audio_ms(&pcm)));
    for (label, audio) in [("flac", &lossless), ("opus-256k", &high)] {
        g.bench_function(label, |b| {
            b.iter(|| segment::package(black_box(audio), 6.0).expect("packages"))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_flac,
    bench_resample,
    bench_opus,
    bench_aac,
    bench_segment
);
criterion_main!(benches);
