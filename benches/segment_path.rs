//! The in-process segment path on a cache hit, without sockets: what one
//! `GET /v1/albums/{album}/tracks/{n}/{rendition}/{generation}/{file}` costs encore between
//! hyper handing over the request and hyper taking the response.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench segment_path`
//!
//! Setup: track 1 of the demo album (`media/first-light`) is ingested into a temp dir with
//! throwaway keys, an [`App`] is built over that store as `encore serve` builds it, a `play`
//! token for the album is minted, and one lossless segment of 100-500 KB is picked (the
//! largest otherwise) and loaded into the segment cache once.
//!
//! - `token/verify_full`: signature and claim checks of the token (what a cache miss costs);
//! - `token/verify_cached`: [`TokenCache::verify`](encore::license::TokenCache::verify) on the
//!   cached token (size check, SHA-256 of the token, cache lookup, time check);
//! - `step/route`, `step/lookup` (catalog lookup and path), `step/authorize`
//!   ([`authorize_segment`]), `step/cache_get` (the segment cache hit),
//!   `step/respond` ([`ops::segment::get`]: validators, range logic, headers);
//! - `path/hit`: all of it as `encore::http::dispatch` chains it for a segment (route,
//!   authenticate with metrics, lookup, authorize, cache, response, CORS headers);
//! - `runtime/block_on_empty`: what `rt.block_on` of an empty future costs (async steps are
//!   driven with `block_on` on a current-thread runtime, once per iteration; criterion's
//!   `async_tokio` feature is not enabled), to subtract from `cache_get`, `respond` and `hit`.
//!
//! No bytes are copied on a hit (the body is a clone of the cached `Bytes`), so the size of the
//! segment does not matter here; sending it is the socket's business (`benches/load.sh`).
//!
//! Latest figures (2026-11-28, 2 vCPU Intel Xeon under KVM, quiet machine; means; see
//! `docs/PERFORMANCE.md`, "Delivery: encore vs nginx"):
//!
//! | benchmark                | time    |
//! |--------------------------|--------:|
//! | `token/verify_full`      | 44.3 µs |
//! | `token/verify_cached`    | 0.55 µs |
//! | `step/route`             | 0.30 µs |
//! | `step/lookup`            | 0.43 µs |
//! | `step/authorize`         | 0.04 µs |
//! | `step/cache_get`         | 0.65 µs (0.44 µs without `block_on`) |
//! | `step/respond`           | 1.08 µs (0.87 µs without `block_on`) |
//! | `path/hit`               | 2.88 µs (~2.7 µs without `block_on`: ~350k hits/s on a core) |
//! | `runtime/block_on_empty` | 0.21 µs |

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use encore::config::{Config, Overrides};
use encore::http::ops::segment::SegmentRef;
use encore::http::router::{Endpoint, route};
use encore::http::{App, Limits, auth, ops, respond};
use encore::ingest::{IngestJob, progress::LogLines};
use encore::license::{Clock, MintRequest, Scope, SystemClock, authorize_segment, mint};
use encore::seal::Keyring;
use encore::store::Store;
use http::{HeaderMap, HeaderValue, Method, header};

const ALBUM: &str = "first-light";
const TRACK: u32 = 1;
const RENDITION: &str = "lossless";

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    app: Arc<App>,
    token: String,
    headers: HeaderMap,
    url: String,
    generation: String,
    file: String,
}

/// Ingests track 1 of the demo album and builds the app, as `encore serve` would.
fn fixture() -> Fixture {
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Store::new(&dir.path().join("data"));
    let report = rt.block_on(encore::ingest::run(
        IngestJob {
            media_dir: dir.path().join("media"),
            albums: vec![album_dir],
            settings: config.ingest.clone(),
            force: false,
        },
        keyring.clone(),
        store.clone(),
        Arc::new(LogLines),
    ));
    assert!(report.ok(), "ingest failed: {}", report.summary());
    let ledger = rt
        .block_on(encore::ledger::Ledger::open_sqlite(
            &dir.path().join("data").join(encore::ledger::LEDGER_FILE),
        ))
        .expect("ledger");
    let app = Arc::new(
        App::new(
            store,
            keyring.clone(),
            ledger,
            &config.server,
            Limits::default(),
        )
        .expect("app"),
    );
    let key = keyring.signing_key().expect("signing key");
    let mut req = MintRequest::new("bench", Scope::Play);
    req.albums = vec![ALBUM.into()];
    let token = mint(&key, &req, SystemClock.now_unix()).expect("mint");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let (generation, file, bytes) = {
        let lib = app.library.load();
        let m = lib.manifest(ALBUM, TRACK, RENDITION).expect("manifest");
        let rec = m
            .segments
            .iter()
            .find(|s| (100_000..=500_000).contains(&s.bytes))
            .or_else(|| m.segments.iter().max_by_key(|s| s.bytes))
            .expect("a segment");
        (m.generation.clone(), rec.file.clone(), rec.bytes)
    };
    let url = format!("/v1/albums/{ALBUM}/tracks/{TRACK}/{RENDITION}/{generation}/{file}");
    eprintln!("segment_path: {url} ({bytes} bytes)");
    let f = Fixture {
        _dir: dir,
        rt,
        app,
        token,
        headers,
        url,
        generation,
        file,
    };
    // Warm both caches: the token and the segment are hits from here on.
    let resp = f.rt.block_on(hit(&f));
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(f.app.keys().tokens.stats().misses, 1);
    f
}

/// The segment's path on disk, as the handler resolves it.
fn lookup(f: &Fixture) -> SegmentRef {
    SegmentRef::locate(&f.app, ALBUM, TRACK, RENDITION, &f.generation, &f.file, 0)
        .expect("segment in the catalog")
}

/// The `GetSegment` arm of `encore::http::dispatch`, plus the CORS headers `handle` adds.
async fn hit(f: &Fixture) -> http::Response<respond::Body> {
    let Endpoint::GetSegment {
        album,
        track,
        rendition,
        generation,
        file,
    } = route(&Method::GET, &f.url)
    else {
        panic!("not a segment route");
    };
    let token = auth::authenticate(&f.app, &f.headers, None).expect("token");
    let seg = SegmentRef::locate(&f.app, &album, track, &rendition, &generation, &file, 0)
        .expect("segment");
    let grant =
        authorize_segment(&token, &album, track, &rendition, &f.app.revocations).expect("entitled");
    let mut resp = ops::segment::get(&f.app, &grant, seg, &f.headers)
        .await
        .expect("response");
    respond::cors(resp.headers_mut());
    resp
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let verified = f.app.keys().tokens.verify(&f.token).expect("token");
    let grant =
        authorize_segment(&verified, ALBUM, TRACK, RENDITION, &f.app.revocations).expect("grant");
    let seg = lookup(&f);
    let (path, sha256): (PathBuf, String) = (seg.path, seg.sha256);

    let mut g = c.benchmark_group("token");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("verify_full", |b| {
        b.iter(|| f.app.keys().tokens.verifier().verify(black_box(&f.token)))
    });
    g.bench_function("verify_cached", |b| {
        b.iter(|| f.app.keys().tokens.verify(black_box(&f.token)))
    });
    g.finish();

    let mut g = c.benchmark_group("step");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("route", |b| {
        b.iter(|| route(&Method::GET, black_box(&f.url)))
    });
    g.bench_function("lookup", |b| b.iter(|| lookup(black_box(&f))));
    g.bench_function("authorize", |b| {
        b.iter(|| {
            authorize_segment(
                black_box(&verified),
                ALBUM,
                TRACK,
                RENDITION,
                &f.app.revocations,
            )
        })
    });
    g.bench_function("cache_get", |b| {
        b.iter(|| f.rt.block_on(f.app.segments.get(black_box(path.clone()))))
    });
    g.bench_function("respond", |b| {
        b.iter(|| {
            f.rt.block_on(ops::segment::get(
                &f.app,
                &grant,
                SegmentRef {
                    path: path.clone(),
                    sha256: sha256.clone(),
                },
                black_box(&f.headers),
            ))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("path");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    g.bench_function("hit", |b| b.iter(|| f.rt.block_on(hit(black_box(&f)))));
    g.finish();

    let mut g = c.benchmark_group("runtime");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g.bench_function("block_on_empty", |b| {
        b.iter(|| f.rt.block_on(async { black_box(1) }))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
