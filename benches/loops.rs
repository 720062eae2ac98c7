//! Fixed-work loops that `benches/compare.sh` times as whole processes, beside ffmpeg and
//! openssl timed the same way (CPU seconds of the process), so that a shared, busy machine
//! skews both sides alike.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench loops` (defaults below), or
//! `.../release/deps/loops-* decode FILE N` and `... seal BYTES N` as compare.sh does.
//!
//! - `decode FILE N`: `decode_file` N times (what `ffmpeg -threads 1 -stream_loop N-1 -i FILE
//!   -f null -` does).
//! - `seal BYTES N`: N rounds of seal then `open_in_place` on one buffer (both in place, no
//!   allocation), i.e. 2·N·BYTES bytes through AES-256-GCM (what `openssl speed -evp
//!   aes-256-gcm -bytes BYTES` does).
//!
//! Without arguments it runs every demo track ×5 and 1 MiB ×500 and prints wall-clock
//! figures.
//!
//! Latest figures (`benches/compare.sh 5`, 2026-11-28, 2 vCPU Intel Xeon, CPU time, medians;
//! full tables in `docs/PERFORMANCE.md`):
//!
//! | loop                      | encore    | ffmpeg / openssl | ratio |
//! |---------------------------|----------:|-----------------:|------:|
//! | decode FLAC 44.1k (28 s)  |   52.0 ms |          38.1 ms |  0.73 |
//! | decode FLAC 48k (24 s)    |   49.5 ms |          32.9 ms |  0.66 |
//! | decode MP3 (32 s)         |   34.2 ms |          36.0 ms |  1.05 |
//! | decode Vorbis (30 s)      |   31.6 ms |          26.8 ms |  0.85 |
//! | seal+open 64 KiB          | 2.62 GB/s |        4.59 GB/s |  0.57 |
//! | seal+open 1 MiB           | 2.74 GB/s |        4.76 GB/s |  0.58 |

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use encore::media::decode::decode_file;
use encore::seal::{ContentKey, OVERHEAD, SealContext, SegmentSlot, open_in_place, seal};

const DEMO: [&str; 4] = [
    "01-dawn-chorus.flac",
    "02-low-tide.flac",
    "03-paper-boats.mp3",
    "04-long-shadows.ogg",
];

/// Decodes `path` `n` times; returns the seconds of audio decoded.
fn decode_loop(path: &Path, n: u32) -> Result<f64, String> {
    let mut audio = 0.0;
    for _ in 0..n {
        let d = decode_file(path).map_err(|e| e.to_string())?;
        audio += std::hint::black_box(d).pcm.seconds();
    }
    Ok(audio)
}

/// Seals and opens one `bytes`-long buffer `n` times; returns the bytes processed.
fn seal_loop(bytes: usize, n: u32) -> Result<u64, String> {
    let key = ContentKey::generate().map_err(|e| e.to_string())?;
    let ctx = SealContext {
        album: "first-light",
        track: 1,
        rendition: "lossless",
        slot: SegmentSlot::Media(1),
    };
    let mut buf = Vec::with_capacity(bytes + OVERHEAD);
    buf.resize(bytes, 0x5a);
    for _ in 0..n {
        let sealed = seal(&key, &ctx, buf).map_err(|e| e.to_string())?;
        buf = open_in_place(&key, &ctx, std::hint::black_box(sealed)).map_err(|e| e.to_string())?;
    }
    Ok(2 * bytes as u64 * u64::from(n))
}

fn parse<T: std::str::FromStr>(s: Option<&String>, what: &str) -> Result<T, String> {
    s.ok_or(format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what}"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("decode") => {
            let audio = decode_loop(
                Path::new(&parse::<String>(args.get(1), "FILE")?),
                parse(args.get(2), "N")?,
            )?;
            println!("decoded {audio:.3} s of audio");
        }
        Some("seal") => {
            let n = seal_loop(parse(args.get(1), "BYTES")?, parse(args.get(2), "N")?)?;
            println!("sealed and opened {n} bytes");
        }
        Some(other) => {
            return Err(format!(
                "unknown mode {other}; use `decode FILE N` or `seal BYTES N`"
            ));
        }
        None => {
            let album = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media/first-light");
            for file in DEMO {
                let t = Instant::now();
                let audio = decode_loop(&album.join(file), 5)?;
                println!(
                    "decode {file:<22} {:7.1} × realtime",
                    audio / t.elapsed().as_secs_f64()
                );
            }
            let t = Instant::now();
            let bytes = seal_loop(1 << 20, 500)?;
            println!(
                "seal+open 1 MiB        {:7.2} GB/s",
                bytes as f64 / t.elapsed().as_secs_f64() / 1e9
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; ignore flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loops: {e}");
            ExitCode::from(2)
        }
    }
}
