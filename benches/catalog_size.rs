//! Origin memory and start time by catalog size: a generated store of N small albums (4
//! tracks, 4 renditions each, 7 segments per rendition: 112 media segments, 128 segment URLs
//! with the init segments, per album), served by the real `encore serve`. Reported per N: the
//! time from spawn to the first 200 from `/readyz`, the process's resident memory then
//! (VmRSS) against the same server on an empty store, measured in the same run; then the
//! first request for a segment of each of `PROBES` albums spread over the catalog (each one
//! cold: nothing of the album in memory yet) against the second request for the same URL
//! (warm), on one keep-alive connection, as p50/p99 and their ratio; and the RSS after.
//!
//! ```text
//! cargo build --release && cargo bench --bench catalog_size -- 1000 10000
//! cargo build && cargo bench --profile dev --bench catalog_size -- 1000
//! benches/catalog_bucket.sh 1000 10000      # the same catalogs published to Garage
//! ```
//!
//! With `ENCORE_BENCH_BUCKET=s3://bucket/prefix` (and the `AWS_*` variables encore reads, as
//! `benches/catalog_bucket.sh` sets them for a Garage it starts), each catalog is published to
//! the bucket instead (publication records, manifests, the probed segments) and served by an
//! origin with an empty `--data` reading it: its start is one listing of the bucket, and a
//! cold probe fetches the album's record, the rendition's manifest and the segment.
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
/// Albums whose first segment is requested cold, then warm.
const PROBES: usize = 200;
/// Bytes of the one segment file every probe fetches (the same bytes for each album).
const PROBE_BYTES: usize = 150_000;

/// The probed segment's content: what its records' SHA-256 names.
fn probe_content() -> Vec<u8> {
    (0..PROBE_BYTES).map(|i| (i * 31 % 251) as u8).collect()
}

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
        bytes: PROBE_BYTES as u64,
        sha256: if index == 1 {
            encore::store::sha256_hex(&probe_content())
        } else {
            format!("{:064x}", u64::from(index) * 7 + 1)
        },
    }
}

/// The albums probed in a catalog of `albums`: spread evenly over it.
fn probed(albums: usize) -> Vec<String> {
    let step = (albums / PROBES).max(1);
    (0..albums)
        .step_by(step)
        .take(PROBES)
        .map(|a| format!("album-{a:06}"))
        .collect()
}

/// The URL of the probed segment of `album` (track 1, lossless, segment 1).
fn probe_url(album: &str) -> String {
    let m = manifest(album, 1, "lossless");
    encore::store::library::segment_url(album, 1, "lossless", &m.generation, &m.segments[0].file)
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

/// Writes `albums` generated albums' records under `data`, and the probed segment's file of
/// each probed album.
fn generate(data: &Path, albums: usize) {
    let store = Store::new(data);
    let content = probe_content();
    for album in probed(albums) {
        let m = manifest(&album, 1, "lossless");
        let path = store
            .segment_path(&m, &m.segments[0])
            .expect("segment path");
        std::fs::create_dir_all(path.parent().expect("generation dir")).expect("mkdir");
        std::fs::write(path, &content).expect("segment file");
    }
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
            // Plain writes, not the store's durable ones: a generated catalog needs no fsync,
            // and 100,000 albums are two million files.
            let track_json = serde_json::to_vec(&TrackRecord {
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
                loudness: None,
                lyrics: None,
            })
            .expect("track json");
            let path = store
                .track_dir(&album, track)
                .expect("track dir")
                .join("track.json");
            std::fs::write(path, track_json).expect("track record");
        }
        let album_json = serde_json::to_vec(&AlbumRecord {
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
            on_sale_at: None,
            extras: Vec::new(),
            loudness: None,
        })
        .expect("album json");
        let path = store
            .album_dir(&album)
            .expect("album dir")
            .join("album.json");
        std::fs::write(path, album_json).expect("album record");
    }
}

/// Publishes the generated catalog under `data` to the bucket as `encore ingest` would: the
/// probed segments, every manifest, and last each album's publication record.
fn publish(data: &Path, albums: usize, location: &encore::config::BucketLocation) {
    use encore::store::publish::{Publication, PublishedFile, PublishedTrack};
    use futures_util::stream::{self, StreamExt};
    let remote = encore::store::remote::Remote::from_env(location).expect("bucket settings");
    let store = Store::new(data);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let put = |key: String, bytes: Vec<u8>| {
        let remote = remote.clone();
        async move {
            let sha = encore::store::sha256_hex(&bytes);
            remote.put(&key, bytes.into(), &sha).await.expect("put");
        }
    };
    let content = probe_content();
    runtime.block_on(async {
        stream::iter(probed(albums))
            .map(|album| {
                let m = manifest(&album, 1, "lossless");
                let key = format!(
                    "{album}/01/lossless/{}/{}",
                    m.generation, m.segments[0].file
                );
                put(key, content.clone())
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        stream::iter(0..albums)
            .map(|a| {
                let album = format!("album-{a:06}");
                let record = store
                    .read_album(&album)
                    .expect("album")
                    .expect("album record");
                let mut tracks = Vec::new();
                let mut uploads = Vec::new();
                for track in 1..=TRACKS {
                    let mut manifests = std::collections::BTreeMap::new();
                    for rendition in RENDITIONS {
                        let json = serde_json::to_vec_pretty(&manifest(&album, track, rendition))
                            .expect("json");
                        let sha256 = encore::store::sha256_hex(&json);
                        let object =
                            format!("{album}/{track:02}/{rendition}/manifest-{sha256}.json");
                        uploads.push(put(object.clone(), json));
                        manifests.insert(rendition.to_string(), PublishedFile { object, sha256 });
                    }
                    tracks.push(PublishedTrack {
                        record: store
                            .read_track(&album, track)
                            .expect("track")
                            .expect("track record"),
                        manifests,
                        lyrics: None,
                    });
                }
                let publication = Publication {
                    format: MANIFEST_FORMAT,
                    album: record,
                    cover: None,
                    extras: Default::default(),
                    tracks,
                };
                let json = serde_json::to_vec_pretty(&publication).expect("publication");
                let key = encore::store::remote::published_record(&album);
                async move {
                    futures_util::future::join_all(uploads).await;
                    put(key, json).await;
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    });
}

/// What one served catalog measured.
struct Measured {
    ready_seconds: f64,
    rss_mib: f64,
    /// Cold and warm segment latencies, ms (empty without probes).
    cold_ms: Vec<f64>,
    warm_ms: Vec<f64>,
    rss_after_mib: f64,
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// One GET on a keep-alive connection; the body is read and checked for its length.
fn timed_get(conn: &mut std::net::TcpStream, url: &str, token: &str) -> f64 {
    use std::io::{BufRead, BufReader, Read, Write};
    let t = Instant::now();
    conn.write_all(
        format!("GET {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .expect("send");
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{url}: {line}");
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("content-length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    assert_eq!(length, PROBE_BYTES, "{url}");
    t.elapsed().as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Starts `encore serve` on `data` and measures it (probing `probes`' segments).
fn measure(
    encore: &Path,
    root: &Path,
    data: &Path,
    probes: &[String],
    bucket: Option<&str>,
) -> Measured {
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
    let store = bucket.map_or(String::new(), |url| format!("[store]\nurl = \"{url}\"\n"));
    std::fs::write(&config, format!("[server]\nwatch_media = false\n{store}")).expect("config");
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
    let rss = rss_mib(child.id());
    let mut cold_ms = Vec::new();
    let mut warm_ms = Vec::new();
    if !probes.is_empty() {
        let mint = Command::new(encore)
            .args([
                "token",
                "mint",
                "--sub",
                "bench-edge",
                "--scope",
                "edge",
                "--keys",
            ])
            .arg(&keys)
            .output()
            .expect("token mint");
        assert!(mint.status.success(), "token mint failed");
        let token = String::from_utf8(mint.stdout)
            .expect("token")
            .trim()
            .to_owned();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        conn.set_nodelay(true).expect("nodelay");
        for album in probes {
            let url = probe_url(album);
            cold_ms.push(timed_get(&mut conn, &url, &token));
            warm_ms.push(timed_get(&mut conn, &url, &token));
        }
        cold_ms.sort_by(f64::total_cmp);
        warm_ms.sort_by(f64::total_cmp);
    }
    let rss_after_mib = rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    Measured {
        ready_seconds: ready,
        rss_mib: rss,
        cold_ms,
        warm_ms,
        rss_after_mib,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("album counts"))
        .collect();
    let sizes = if sizes.is_empty() { vec![1000] } else { sizes };
    let encore = encore_binary();
    let bucket = std::env::var("ENCORE_BENCH_BUCKET").ok();
    let location = bucket.as_deref().map(|url| {
        let rest = url
            .strip_prefix("s3://")
            .expect("ENCORE_BENCH_BUCKET: s3://bucket/prefix");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        encore::config::BucketLocation {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    });
    if let Some(url) = &bucket {
        println!("published to {url}: origins start on an empty --data and read the bucket");
    }
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
    let empty_run = measure(&encore, root.path(), &empty, &[], None);
    let empty_rss = empty_run.rss_mib;
    println!(
        "| albums | segment URLs | generate s | ready s | RSS MiB | RSS / empty | cold p50 / p99 ms | warm p50 / p99 ms | cold p99 / warm p99 | RSS after {PROBES} albums MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| 0 | 0 | | {:.2} | {empty_rss:.1} | 1.0 | | | | |",
        empty_run.ready_seconds
    );
    for n in sizes {
        let data = root.path().join(format!("data-{n}"));
        let t = Instant::now();
        generate(&data, n);
        let (served, bucket_url) = match &location {
            Some(location) => {
                // A prefix per catalog: each origin lists only its own.
                let prefix = format!("{}/{n}", location.prefix);
                let location = encore::config::BucketLocation {
                    bucket: location.bucket.clone(),
                    prefix: prefix.trim_start_matches('/').to_owned(),
                };
                publish(&data, n, &location);
                let url = format!("s3://{}/{}", location.bucket, location.prefix);
                (root.path().join(format!("origin-{n}")), Some(url))
            }
            None => (data.clone(), None),
        };
        let generated = t.elapsed().as_secs_f64();
        let run = measure(
            &encore,
            root.path(),
            &served,
            &probed(n),
            bucket_url.as_deref(),
        );
        let urls = n as u64 * u64::from(TRACKS) * RENDITIONS.len() as u64 * u64::from(SEGMENTS + 1);
        let (cold, warm) = (&run.cold_ms, &run.warm_ms);
        println!(
            "| {n} | {urls} | {generated:.1} | {:.2} | {:.1} | {:.1} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} | {:.1} |",
            run.ready_seconds,
            run.rss_mib,
            run.rss_mib / empty_rss,
            percentile(cold, 0.5),
            percentile(cold, 0.99),
            percentile(warm, 0.5),
            percentile(warm, 0.99),
            percentile(cold, 0.99) / percentile(warm, 0.99),
            run.rss_after_mib,
        );
        let _ = std::fs::remove_dir_all(&data);
    }
}
