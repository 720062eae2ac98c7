//! Origin memory and start time by catalog size (issue 21 item 5's benchmark): a generated
//! store of N small albums (4 tracks, 4 renditions each, 7 segments per rendition: 112
//! media segments, 128 segment URLs with the init segments, per album), served by the real `encore serve`; reported per N: the time from
//! spawn to the first 200 from `/readyz`, and the process's resident memory then (VmRSS)
//! against the same server on an empty store, measured in the same run.
//!
//! ```text
//! cargo build --release && cargo bench --bench catalog_size -- 1000 10000
//! cargo build && cargo bench --profile dev --bench catalog_size -- 1000
//! ```
//!
//! Only records are generated (album, track and manifest JSON): a start reads those, never a
//! segment file. The `encore` binary is the one next to this bench's executable
//! (`target/<profile>/encore`): build it first. Results: `docs/PERFORMANCE.md`, "Catalog size".

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use encore::store::{
    AlbumRecord, MANIFEST_FORMAT, RenditionManifest, SegmentRecord, Store, TrackRecord,
    segment_file_name,
};

const TRACKS: u32 = 4;
const RENDITIONS: [&str; 4] = ["lossless", "high", "standard", "aac"];
const SEGMENTS: u32 = 7;

fn encore_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<bench>");
    let bin = profile_dir.join("encore");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build` (or `--release`) first",
        bin.display()
    );
    bin
}

fn segment(index: u32) -> SegmentRecord {
    SegmentRecord {
        index,
        file: segment_file_name(index),
        start: u64::from(index.saturating_sub(1)) * 264_600,
        duration: if index == 0 { 0 } else { 264_600 },
        bytes: 150_000,
        sha256: format!("{:064x}", u64::from(index) * 7 + 1),
    }
}

fn manifest(album: &str, track: u32, rendition: &str) -> RenditionManifest {
    RenditionManifest {
        format: MANIFEST_FORMAT,
        album: album.into(),
        track,
        rendition: rendition.into(),
        generation: format!("g{track}{rendition}0123456789abcdef"),
        codec: if rendition == "lossless" {
            "flac".into()
        } else {
            "opus".into()
        },
        codec_string: "flac".into(),
        sample_rate: 44_100,
        channels: 2,
        bits_per_sample: 16,
        duration_samples: u64::from(SEGMENTS) * 264_600,
        skip_samples: 0,
        bitrate: 900_000,
        key_id: format!("{:032x}", track),
        bit_exact: None,
        preview: None,
        init: segment(0),
        segments: (1..=SEGMENTS).map(segment).collect(),
        retiring: Vec::new(),
    }
}

/// Writes `albums` generated albums' records under `data`.
fn generate(data: &Path, albums: usize) {
    let store = Store::new(data);
    for a in 0..albums {
        let album = format!("album-{a:06}");
        for track in 1..=TRACKS {
            for rendition in RENDITIONS {
                let dir = store
                    .rendition_dir(&album, track, rendition)
                    .expect("rendition dir");
                std::fs::create_dir_all(&dir).expect("mkdir");
                let json = serde_json::to_vec(&manifest(&album, track, rendition)).expect("json");
                std::fs::write(dir.join("manifest.json"), json).expect("manifest");
            }
            store
                .write_track(&TrackRecord {
                    format: MANIFEST_FORMAT,
                    album: album.clone(),
                    track,
                    source_file: format!("{track:02}.flac"),
                    fingerprint: "0".repeat(64),
                    title: format!("Track {track}"),
                    artist: None,
                    source_codec: "flac".into(),
                    source_sample_rate: 44_100,
                    source_samples: u64::from(SEGMENTS) * 264_600,
                    channels: 2,
                    renditions: RENDITIONS.iter().map(|r| (*r).to_string()).collect(),
                })
                .expect("track record");
        }
        store
            .write_album(&AlbumRecord {
                format: MANIFEST_FORMAT,
                album: album.clone(),
                title: format!("Album {a}"),
                artist: Some("Generated".into()),
                release_date: None,
                price: Some(1500),
                currency: Some("CNY".into()),
                cover: None,
                cover_type: None,
                tracks: (1..=TRACKS).collect(),
            })
            .expect("album record");
    }
}

/// Starts `encore serve` on `data`; returns (seconds to ready, VmRSS in MiB then).
fn measure(encore: &Path, root: &Path, data: &Path) -> (f64, f64) {
    let keys = root.join("keys");
    if !keys.exists() {
        let init = Command::new(encore)
            .args(["keys", "init", "--keys"])
            .arg(&keys)
            .output()
            .expect("keys init");
        assert!(init.status.success(), "keys init failed");
    }
    let config = root.join("encore.toml");
    std::fs::write(&config, "[server]\nwatch_media = false\n").expect("config");
    std::fs::create_dir_all(root.join("media")).expect("media");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let started = Instant::now();
    let mut child = Command::new(encore)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--keys")
        .arg(&keys)
        .arg("--data")
        .arg(data)
        .arg("--media")
        .arg(root.join("media"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("encore serve");
    let ready = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                break started.elapsed().as_secs_f64();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not ready in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("/proc status");
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    let _ = child.kill();
    let _ = child.wait();
    (ready, rss_kib / 1024.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("album counts"))
        .collect();
    let sizes = if sizes.is_empty() { vec![1000] } else { sizes };
    let encore = encore_binary();
    println!(
        "catalog size bench: {} CPU(s), {} albums x {TRACKS} tracks x {} renditions x {SEGMENTS} segments",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        sizes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
        RENDITIONS.len()
    );
    let root = tempfile::tempdir().expect("temp dir");
    let empty = root.path().join("empty");
    let (empty_ready, empty_rss) = measure(&encore, root.path(), &empty);
    println!("| albums | segment URLs | generate s | ready s | RSS MiB | RSS / empty |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!("| 0 | 0 | | {empty_ready:.2} | {empty_rss:.1} | 1.0 |");
    for n in sizes {
        let data = root.path().join(format!("data-{n}"));
        let t = Instant::now();
        generate(&data, n);
        let generated = t.elapsed().as_secs_f64();
        let (ready, rss) = measure(&encore, root.path(), &data);
        let urls = n as u64 * u64::from(TRACKS) * RENDITIONS.len() as u64 * u64::from(SEGMENTS + 1);
        println!(
            "| {n} | {urls} | {generated:.1} | {ready:.2} | {rss:.1} | {:.1} |",
            rss / empty_rss
        );
        let _ = std::fs::remove_dir_all(&data);
    }
}
