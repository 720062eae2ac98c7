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
//! - `token/verify_memo`: the same through a connection's memo
//!   ([`TokenCache::verify_memo`](encore::license::TokenCache::verify_memo)), what a
//!   keep-alive connection's later requests cost;
//! - `step/lookup` (the catalog's URL → segment: the rendition cache, then the segment by
//!   generation and number), `step/lookup_url_table` (the same from one hash table of every
//!   URL, as the catalog held them before it loaded renditions on demand: the baseline), `step/authorize`
//!   ([`authorize_segment`]), `step/cache_get` (the segment cache hit),
//!   `step/respond` ([`ops::segment::get`]: validators, range logic, headers);
//! - `path/hit`: all of it as `encore::http::handle` chains it for a segment URL (lookup,
//!   authenticate through the memo with metrics, authorize, cache, response, CORS headers,
//!   request metrics);
//! - `lane/read_head`: the express lane reading the request head `benches/load.sh` sends
//!   (request line, `Host`, `Authorization` with the token) with `httparse`;
//! - `lane/hit_encoded`: what the express lane does between reading a head and handing the
//!   socket the head and body: the same lookup, token, entitlement and cache hit as
//!   `path/hit`, with the answer's head encoded straight from its typed fields (no header
//!   map, no `Response`);
//! - `runtime/block_on_empty`: what `rt.block_on` of an empty future costs (async steps are
//!   driven with `block_on` on a current-thread runtime, once per iteration; criterion's
//!   `async_tokio` feature is not enabled), to subtract from `cache_get`, `respond` and `hit`.
//!
//! No bytes are copied on a hit (the body is a clone of the cached `Bytes`), so the size of the
//! segment does not matter here; sending it is the socket's business (`benches/load.sh`).
//!
//! Figures: `docs/PERFORMANCE.md`, "Segment path micro-benchmarks and the store integrity check".

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use encore::config::{Config, Overrides};
use encore::http::ops::segment::Conditions;
use encore::http::router::SEGMENT_ROUTE;
use encore::http::{App, Limits, auth, express_bench, ops, respond};
use encore::ingest::{IngestJob, progress::LogLines};
use encore::keys::Keyring;
use encore::license::{Clock, MintRequest, Scope, SystemClock, TokenMemo, authorize_segment, mint};
use encore::store::Store;
use encore::store::library::ServedSegment;
use http::{HeaderValue, Method, Request, header};

const ALBUM: &str = "first-light";
const TRACK: u32 = 1;
const RENDITION: &str = "lossless";

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    app: Arc<App>,
    token: String,
    request: Request<()>,
    memo: TokenMemo,
    url: String,
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
    let request = Request::builder()
        .method(Method::GET)
        .uri(&url)
        .header(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        )
        .body(())
        .expect("request");
    let f = Fixture {
        _dir: dir,
        rt,
        app,
        token,
        request,
        memo: TokenMemo::default(),
        url,
    };
    // Warm both caches: the token and the segment are hits from here on.
    let resp = f.rt.block_on(hit(&f));
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(f.app.keys().tokens.stats().misses, 1);
    f
}

/// The segment, as `handle` resolves its URL.
fn lookup(f: &Fixture) -> ServedSegment {
    f.app
        .library
        .load()
        .served_segment(&f.url, || 0)
        .expect("segment in the catalog")
}

/// What `encore::http::handle` does for a segment URL, between hyper's request and response.
async fn hit(f: &Fixture) -> http::Response<respond::Body> {
    let started = std::time::Instant::now();
    let seg = lookup(f);
    let token = auth::bearer(f.request.headers(), f.request.uri().query());
    let conditions = Conditions::from_headers(f.request.headers());
    let mut resp = encore::http::segment(&f.app, &f.memo, seg, token.as_deref(), &conditions)
        .await
        .expect("response")
        .into_response();
    respond::cors(resp.headers_mut());
    f.app.metrics.record_request(
        SEGMENT_ROUTE,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// What the express lane does for a segment URL once it has read the head: the same segment
/// path, then the answer encoded without a header map.
async fn lane_hit(f: &Fixture, out: &mut Vec<u8>) -> bytes::Bytes {
    let started = std::time::Instant::now();
    let seg = lookup(f);
    let token = auth::bearer(f.request.headers(), None);
    let conditions = Conditions::from_headers(f.request.headers());
    let answer = encore::http::segment(&f.app, &f.memo, seg, token.as_deref(), &conditions)
        .await
        .expect("answer");
    f.app.metrics.record_request(
        SEGMENT_ROUTE,
        answer.status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    express_bench::encode_head(answer, out)
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let verified = f.app.keys().tokens.verify(&f.token).expect("token");
    let grant =
        authorize_segment(&verified, ALBUM, TRACK, RENDITION, &f.app.revocations).expect("grant");
    let seg = lookup(&f);

    let mut g = c.benchmark_group("token");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("verify_full", |b| {
        b.iter(|| f.app.keys().tokens.verifier().verify(black_box(&f.token)))
    });
    g.bench_function("verify_cached", |b| {
        b.iter(|| f.app.keys().tokens.verify(black_box(&f.token)))
    });
    g.bench_function("verify_memo", |b| {
        b.iter(|| {
            f.app
                .keys()
                .tokens
                .verify_memo(&f.memo, black_box(&f.token))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("step");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("lookup", |b| b.iter(|| lookup(black_box(&f))));
    // The same lookup as a catalog that held every segment URL in one hash table did it (the
    // design before renditions were loaded on demand): the baseline for `lookup`.
    let table: std::collections::HashMap<Box<str>, ServedSegment, foldhash::fast::RandomState> =
        std::iter::once((Box::from(f.url.as_str()), lookup(&f))).collect();
    g.bench_function("lookup_url_table", |b| {
        b.iter(|| table.get(black_box(f.url.as_str())).cloned())
    });
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
        b.iter(|| {
            f.rt.block_on(
                f.app
                    .segments
                    .get_checked(black_box(seg.path.clone()), seg.sha256),
            )
        })
    });
    // What a plain-TCP connection does before each `sendfile` of a cached body: find where
    // the buffer lies in the store file the body carries, and check that the file still holds
    // the bytes read.
    let cached =
        f.rt.block_on(f.app.segments.get(seg.path.clone()))
            .expect("cached segment");
    g.bench_function("file_slice", |b| {
        b.iter(|| cached.file_slice(black_box(&cached.bytes()[..])).is_some())
    });
    g.bench_function("respond", |b| {
        b.iter(|| {
            f.rt.block_on(ops::segment::get(
                &f.app,
                &grant,
                seg.clone(),
                &Conditions::from_headers(black_box(f.request.headers())),
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

    let mut g = c.benchmark_group("lane");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer {}\r\n\r\n",
        f.url, f.token
    );
    g.bench_function("read_head", |b| {
        b.iter(|| {
            express_bench::read_head_len(black_box(head.as_bytes()), 64)
                .expect("an express request")
        })
    });
    let mut out = Vec::with_capacity(512);
    g.bench_function("hit_encoded", |b| {
        b.iter(|| f.rt.block_on(lane_hit(black_box(&f), &mut out)))
    });
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
