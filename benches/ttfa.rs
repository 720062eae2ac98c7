//! Time to first audio (TTFA) over HLS, against the plain sealed-segment path measured in the
//! same run: what a player waits between asking for a track and holding its first decodable
//! audio, over real HTTP on loopback.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench ttfa [-- ROUNDS]` (default 30).
//!
//! Setup: track 1 of the demo album (`media/first-light`) is ingested into a temp dir with
//! throwaway keys; a `play` token that owns the album is minted. Each round, interleaved:
//!
//! - **HLS** (what an HLS player does, one request after another on one connection):
//!   `master.m3u8` → the `lossless` `index.m3u8` → the key → `init.mp4` → `0001.mp4`, then the
//!   segment is decrypted (AES-128-CBC) as the player would;
//! - **sealed** (what `encore fetch` and encore's own players do): `POST /v1/licenses` → the
//!   `lossless` manifest → `init.enc` → `0001.enc`, then both seals are opened (AES-256-GCM);
//!
//! each first **cold** (a fresh server over the same store: empty segment cache, empty
//! verified-token cache; a new client, so a new connection) and then **warm** (the same server
//! and connection again: token and segments cached). The OS page cache is warm in both: "cold"
//! is encore's caches, not the disk. Reported: per path and state, the median and the 10th and
//! 90th percentiles in ms, and the ratio HLS / sealed of the medians (and the median of the
//! per-round ratios). Figures in `docs/PERFORMANCE.md`, "HLS: time to first audio".
//!
//! Latest figures (2026-11-28, 2 vCPU Intel Xeon under KVM, machine busy with other builds at
//! load 5-6; `-- 200`; ms):
//!
//! | path   | cache | median | p10  | p90  |
//! |--------|-------|-------:|-----:|-----:|
//! | HLS    | cold  | 1.85   | 1.55 | 2.47 |
//! | HLS    | warm  | 0.60   | 0.50 | 0.95 |
//! | sealed | cold  | 1.29   | 1.12 | 1.87 |
//! | sealed | warm  | 0.70   | 0.64 | 1.07 |
//!
//! HLS / sealed: cold 1.43 (medians), warm 0.85.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use encore::config::{Config, Overrides};
use encore::hls::crypto::{HlsKey, decrypt_segment};
use encore::http::{App, Limits};
use encore::ingest::{IngestJob, progress::LogLines};
use encore::keys::Keyring;
use encore::license::{Clock, MintRequest, Scope, SystemClock, mint};
use encore::seal::{self, ContentKey, KeyId, SealContext, SegmentSlot};
use encore::store::Store;

const ALBUM: &str = "first-light";
const TRACK: u32 = 1;
const RENDITION: &str = "lossless";

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    token: String,
}

/// Ingests track 1 of the demo album into a temp dir and mints a buyer's token.
fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let album_dir = dir.path().join("media").join(ALBUM);
    std::fs::create_dir_all(&album_dir).expect("media dir");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("media")
        .join(ALBUM);
    let first = std::fs::read_dir(&demo)
        .expect("media/first-light (the demo album)")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| n.to_string_lossy().starts_with("01"))
        .min()
        .expect("track 1 of the demo album");
    std::fs::copy(demo.join(&first), album_dir.join(&first)).expect("copy track 1");
    let keys = dir.path().join("keys");
    Keyring::init(&keys).expect("keys init");
    let keyring = Arc::new(Keyring::open(&keys).expect("keys open"));
    let config = Config::from_raw(Default::default(), &Overrides::default()).expect("config");
    let report = rt.block_on(encore::ingest::run(
        IngestJob {
            media_dir: dir.path().join("media"),
            albums: vec![album_dir],
            settings: config.ingest.clone(),
            force: false,
        },
        keyring.clone(),
        Store::new(&dir.path().join("data")),
        Arc::new(LogLines),
    ));
    assert!(report.ok(), "ingest failed: {}", report.summary());
    let key = keyring.signing_key().expect("signing key");
    let mut req = MintRequest::new("bench", Scope::Play);
    req.albums = vec![ALBUM.into()];
    let token = mint(&key, &req, SystemClock.now_unix()).expect("mint");
    Fixture { dir, config, token }
}

/// A fresh server over the fixture's store and keys: every cache empty.
struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(f: &Fixture) -> Server {
    let data: PathBuf = f.dir.path().join("data");
    let keyring = Arc::new(Keyring::open(&f.dir.path().join("keys")).expect("keys"));
    let ledger = encore::ledger::Ledger::open_sqlite(&data.join(encore::ledger::LEDGER_FILE))
        .await
        .expect("ledger");
    let app = Arc::new(
        App::new(
            Store::new(&data),
            keyring,
            ledger,
            &f.config.server,
            Limits::default(),
        )
        .expect("app"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(encore::http::run(listener, app, None, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        shutdown: Some(tx),
        handle,
    }
}

impl Server {
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.handle.await;
    }
}

async fn get(c: &reqwest::Client, url: String, token: &str) -> bytes::Bytes {
    let r = c
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.bytes().await.expect("body")
}

/// The first `URI="..."` value of the line starting with `tag`.
fn attr_uri<'a>(text: &'a str, tag: &str) -> &'a str {
    let line = text
        .lines()
        .find(|l| l.starts_with(tag))
        .unwrap_or_else(|| panic!("no {tag} in\n{text}"));
    let start = line.find("URI=\"").expect("URI") + 5;
    let end = line[start..].find('"').expect("closing quote") + start;
    &line[start..end]
}

/// HLS: master → media playlist → key → init → first segment, decrypted. Returns the
/// plaintext length (so nothing is optimised away).
async fn hls(c: &reqwest::Client, base: &str, token: &str) -> usize {
    let master = get(
        c,
        format!("{base}/v1/albums/{ALBUM}/tracks/{TRACK}/master.m3u8"),
        token,
    )
    .await;
    let master = std::str::from_utf8(&master).expect("utf-8");
    let variant = master
        .lines()
        .skip_while(|l| {
            !(l.starts_with("#EXT-X-STREAM-INF") && l.contains(&format!("\"{RENDITION}\"")))
        })
        .nth(1)
        .expect("the lossless variant");
    let media = get(c, format!("{base}{variant}"), token).await;
    let media = std::str::from_utf8(&media).expect("utf-8");
    let key_line = media
        .lines()
        .find(|l| l.starts_with("#EXT-X-KEY:METHOD=AES-128"))
        .expect("key");
    let iv_hex = key_line.split("IV=0x").nth(1).expect("IV");
    let iv: [u8; 16] = hex::decode(iv_hex)
        .expect("hex")
        .try_into()
        .expect("16 bytes");
    let first = media
        .lines()
        .find(|l| l.starts_with('/'))
        .expect("first segment");
    let key = get(
        c,
        format!("{base}{}", attr_uri(media, "#EXT-X-KEY:METHOD=AES-128")),
        token,
    )
    .await;
    let key = HlsKey::from_bytes(key.as_ref().try_into().expect("16-byte key"));
    let init = get(c, format!("{base}{}", attr_uri(media, "#EXT-X-MAP")), token).await;
    let seg = get(c, format!("{base}{first}"), token).await;
    init.len()
        + decrypt_segment(&key, &iv, seg.to_vec())
            .expect("decrypt")
            .len()
}

/// Sealed: license → manifest → init.enc → 0001.enc, both seals opened.
async fn sealed(c: &reqwest::Client, base: &str, token: &str) -> usize {
    let license: serde_json::Value = c
        .post(format!("{base}/v1/licenses"))
        .bearer_auth(token)
        .json(&serde_json::json!({"album": ALBUM, "track": TRACK}))
        .send()
        .await
        .expect("license")
        .json()
        .await
        .expect("license json");
    let entry = license["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["rendition"] == RENDITION))
        .expect("lossless key");
    let id: KeyId = entry["key_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("key id");
    let bytes: [u8; 32] = hex::decode(entry["key"].as_str().expect("key"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let content = ContentKey::from_bytes(id, bytes);
    let manifest = get(
        c,
        format!("{base}/v1/albums/{ALBUM}/tracks/{TRACK}/{RENDITION}/manifest"),
        token,
    )
    .await;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    let init_url = manifest["init"]["url"].as_str().expect("init url");
    let seg_url = manifest["segments"][0]["url"]
        .as_str()
        .expect("segment url");
    let init = get(c, format!("{base}{init_url}"), token).await;
    let seg = get(c, format!("{base}{seg_url}"), token).await;
    let ctx = |slot| SealContext {
        album: ALBUM,
        track: TRACK,
        rendition: RENDITION,
        slot,
    };
    seal::open(&content, &ctx(SegmentSlot::Init), &init)
        .expect("open init")
        .len()
        + seal::open(&content, &ctx(SegmentSlot::Media(1)), &seg)
            .expect("open segment")
            .len()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Hls,
    Sealed,
}

async fn run(path: Flow, c: &reqwest::Client, base: &str, token: &str) -> Duration {
    let t = Instant::now();
    let n = match path {
        Flow::Hls => hls(c, base, token).await,
        Flow::Sealed => sealed(c, base, token).await,
    };
    let d = t.elapsed();
    assert!(n > 0);
    d
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = fixture(&rt);
    // [path][cold=0, warm=1] → samples in ms.
    let mut samples = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    let mut ratios = [Vec::new(), Vec::new()];
    let mut plain_bytes = 0;
    rt.block_on(async {
        // One untimed pass so that code and the page cache are warm for every timed one.
        for path in [Flow::Hls, Flow::Sealed] {
            let s = start(&f).await;
            let c = reqwest::Client::new();
            let base = format!("http://{}", s.addr);
            let n = match path {
                Flow::Hls => hls(&c, &base, &f.token).await,
                Flow::Sealed => sealed(&c, &base, &f.token).await,
            };
            s.stop().await;
            plain_bytes = n;
        }
        for _ in 0..rounds {
            let mut this = [[0.0; 2]; 2];
            for (pi, path) in [Flow::Hls, Flow::Sealed].into_iter().enumerate() {
                let s = start(&f).await;
                let base = format!("http://{}", s.addr);
                let c = reqwest::Client::new();
                let cold = ms(run(path, &c, &base, &f.token).await);
                let warm = ms(run(path, &c, &base, &f.token).await);
                s.stop().await;
                samples[pi][0].push(cold);
                samples[pi][1].push(warm);
                this[pi] = [cold, warm];
            }
            ratios[0].push(this[0][0] / this[1][0]);
            ratios[1].push(this[0][1] / this[1][1]);
        }
    });
    for v in samples.iter_mut().flatten().chain(ratios.iter_mut()) {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "time to first audio, track 1 of {ALBUM}, {RENDITION} (init + first segment: \
         {plain_bytes} bytes of plain fMP4), {rounds} rounds (ms)"
    );
    println!("| path   | cache | median | p10  | p90  |");
    println!("|--------|-------|-------:|-----:|-----:|");
    for (pi, name) in ["HLS", "sealed"].iter().enumerate() {
        for (si, state) in ["cold", "warm"].iter().enumerate() {
            let v = &samples[pi][si];
            println!(
                "| {name:<6} | {state:<5} | {:.2} | {:.2} | {:.2} |",
                pct(v, 0.5),
                pct(v, 0.1),
                pct(v, 0.9)
            );
        }
    }
    for (si, state) in ["cold", "warm"].iter().enumerate() {
        println!(
            "ratio HLS/sealed, {state}: {:.2} (medians), {:.2} (median of per-round ratios)",
            pct(&samples[0][si], 0.5) / pct(&samples[1][si], 0.5),
            pct(&ratios[si], 0.5)
        );
    }
}
