//! A public read must never stop sales: purchases/s from 2 store clients with and without 20
//! clients refreshing the sales chart as fast as they can, on a ledger of 1,000,000 purchases
//! (spread over 60 days, 20 albums), over real HTTP on loopback. Phases alternate (without,
//! with, without, with, ...) so the shared machine's drift hits both alike; the report is
//! purchases/s per phase, the ratio with/without, and the chart's p50/p99. Server, chart
//! readers and buyers each run on a runtime of their own, as three processes would.
//!
//! The readers' threads run at nice 19 (see [`lower_priority_of_this_thread`]) unless
//! `--readers-same-priority` is given.
//!
//! Run: `cargo bench --bench chart_load [-- SECONDS ROUNDS PURCHASES]
//! [--readers-same-priority] [--read=chart|catalog|nameplates]` (defaults 5 s per phase, 2 rounds, 1,000,000 purchases).
//! Figures in `docs/PERFORMANCE.md`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use encore::http::App;
use encore::ledger::{LEDGER_FILE, Ledger};
use encore::license::{Clock, MintRequest, Scope, SystemClock, mint};
use sqlx::Executor;

const ALBUM: &str = "first-light";
const BUYERS: usize = 2;
const READERS: usize = 20;

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let purchases: i64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let same_priority = std::env::args().any(|a| a == "--readers-same-priority");
    let read = match std::env::args().find_map(|a| a.strip_prefix("--read=").map(str::to_owned)) {
        None => Read::Chart,
        Some(r) if r == "chart" => Read::Chart,
        Some(r) if r == "catalog" => Read::Catalog,
        Some(r) if r == "nameplates" => Read::Nameplates,
        Some(other) => panic!("--read={other}: expected chart, catalog or nameplates"),
    };
    // The server (its ledger writer included) and the clients on runtimes of their own, as
    // with a load generator in another process: 22 busy client tasks must not queue ahead of
    // the purchase writer in one runtime's run queue.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            if !same_priority {
                lower_priority_of_this_thread();
            }
        })
        .build()
        .expect("client runtime");
    // The store's buyers are another service than the fans refreshing the chart: a runtime
    // (and connections) of their own, as a store backend in its own process would have.
    let buyer_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("buyer runtime");
    let server = server_rt.block_on(serve(purchases));
    client_rt.block_on(run(
        &server,
        buyer_rt.handle(),
        seconds,
        rounds,
        purchases,
        same_priority,
        read,
    ));
}

/// Makes the calling thread yield the CPU to every other (nice 19). The readers' load
/// generator shares this machine's two cores with the server; a generator on another machine
/// (where fans are) takes none of the server's CPU, and at nice 19 this one takes only what the
/// server leaves. `--readers-same-priority` keeps it an equal competitor instead.
fn lower_priority_of_this_thread() {
    // SAFETY: setpriority has no memory effects; `who = 0` is the calling thread on Linux.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if rc != 0 {
        eprintln!(
            "chart_load: cannot lower the readers' priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// What the readers repeat.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// `GET /v1/charts/albums`, the four windows in turn (public).
    Chart,
    /// `GET /v1/albums` (public).
    Catalog,
    /// `GET /v1/users/{user}/albums`, one user per reader (a store token).
    Nameplates,
}

/// The server under test and what the clients need to reach it.
struct Server {
    dir: tempfile::TempDir,
    url: String,
    app: Arc<App>,
    store_token: String,
}

/// Fills the ledger with `n` purchases of 20 albums over the last 60 days (one SQL statement)
/// and rebuilds the hourly totals from them, as the migration's backfill does.
async fn fill(path: &Path, n: i64, now: i64) {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .expect("ledger file");
    let started = Instant::now();
    pool.execute(
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
             INSERT INTO purchases (order_id, user_id, album, price, currency, purchased_at, \
             recorded_at, buyer_number, request_hash, response, request_id, refunded_at) \
             SELECT 'seed-' || i, 'fan-' || (i % 50000), 'album-' || (i % 20), 1500, 'CNY', \
             {now} - (i * 5184) % 5184000, {now}, i, 'h', '{{}}', 'seed', \
             CASE WHEN i % 50 = 0 THEN {now} END FROM n"
        )
        .as_str(),
    )
    .await
    .expect("seed purchases");
    pool.execute(
        "DELETE FROM sales_hourly; \
         INSERT INTO sales_hourly (album, currency, hour, units, revenue) \
         SELECT album, currency, purchased_at - (purchased_at % 3600), COUNT(*), SUM(price) \
         FROM purchases WHERE refunded_at IS NULL \
         GROUP BY album, currency, purchased_at - (purchased_at % 3600)",
    )
    .await
    .expect("hourly totals");
    pool.close().await;
    println!(
        "seeded {n} purchases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Ingests one track, seeds the ledger with `n` purchases and starts serving.
async fn serve(n: i64) -> Server {
    let common::Packaged {
        dir,
        keyring,
        config,
        data,
        store,
    } = common::package_first_track(ALBUM, |_| {}).await;
    let now = SystemClock.now_unix();
    let path = data.join(LEDGER_FILE);
    // Create the schema, then fill it behind the ledger's back, then open it for real.
    Ledger::open_sqlite(&path)
        .await
        .expect("ledger")
        .close()
        .await;
    fill(&path, n, i64::try_from(now).expect("now")).await;
    let ledger = Ledger::open_sqlite(&path).await.expect("ledger");
    let app = common::ready_app(store, keyring.clone(), ledger, &config);
    let url = common::serve(app.clone()).await;
    let store_token = mint(
        &keyring.signing_key().expect("key"),
        &MintRequest::new("payments", Scope::Store),
        now,
    )
    .expect("mint");
    Server {
        dir,
        url,
        app,
        store_token,
    }
}

async fn run(
    server: &Server,
    buyers: &tokio::runtime::Handle,
    seconds: u64,
    rounds: usize,
    n: i64,
    same_priority: bool,
    read: Read,
) {
    let (url, app, store_token) = (
        server.url.clone(),
        server.app.clone(),
        server.store_token.clone(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(BUYERS + READERS)
        .build()
        .expect("client");
    let buyer_client = reqwest::Client::builder()
        .pool_max_idle_per_host(BUYERS)
        .build()
        .expect("buyer client");
    println!(
        "chart_load: {seconds} s per phase, {rounds} round(s), {BUYERS} buyers, {READERS} readers of {read:?} ({}), {} CPU(s), ledger of {n} purchases in {}",
        if same_priority {
            "same priority as the server"
        } else {
            "nice 19"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        server.dir.path().display()
    );
    let order = Arc::new(AtomicU64::new(0));
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut chart_latencies: Vec<u64> = Vec::new();
    let mut chart_reads = 0u64;
    for round in 0..rounds {
        for readers in [0, READERS] {
            let stop = Arc::new(AtomicBool::new(false));
            let mut reader_tasks = Vec::new();
            for r in 0..readers {
                let (c, u, stop, t) = (
                    client.clone(),
                    url.clone(),
                    stop.clone(),
                    store_token.clone(),
                );
                reader_tasks.push(tokio::spawn(async move {
                    let window = ["24h", "7d", "30d", "all"][r % 4];
                    let mut lat = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let request = match read {
                            Read::Chart => c.get(format!("{u}/v1/charts/albums?window={window}")),
                            Read::Catalog => c.get(format!("{u}/v1/albums")),
                            // Each reader reloads one user's page (seeded users own 20
                            // albums each; the buyers buy for the first thousand).
                            Read::Nameplates => c
                                .get(format!("{u}/v1/users/fan-{r}/albums"))
                                .bearer_auth(&t),
                        };
                        let resp = request.send().await.expect("chart");
                        assert!(resp.status().is_success(), "{read:?} {}", resp.status());
                        resp.bytes().await.expect("read body");
                        lat.push(t0.elapsed().as_micros() as u64);
                    }
                    lat
                }));
            }
            let started = Instant::now();
            let deadline = started + Duration::from_secs(seconds);
            let mut buyer_tasks = Vec::new();
            for _ in 0..BUYERS {
                let (c, u, t, order) = (
                    buyer_client.clone(),
                    url.clone(),
                    store_token.clone(),
                    order.clone(),
                );
                buyer_tasks.push(buyers.spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let i = order.fetch_add(1, Ordering::Relaxed);
                        let body = serde_json::json!({"order_id": format!("bench-{i}"),
                            "user": format!("fan-{}", i % 1000), "album": ALBUM,
                            "price": 1500, "currency": "CNY"});
                        let r = c
                            .post(format!("{u}/v1/purchases"))
                            .bearer_auth(&t)
                            .json(&body)
                            .send()
                            .await
                            .expect("purchase");
                        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
                        r.bytes().await.expect("receipt");
                        done += 1;
                    }
                    done
                }));
            }
            let mut done = 0;
            for t in buyer_tasks {
                done += t.await.expect("buyer");
            }
            let rate = done as f64 / started.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            let mut reads = 0;
            for t in reader_tasks {
                let lat = t.await.expect("reader");
                reads += lat.len() as u64;
                chart_latencies.extend(lat);
            }
            chart_reads += reads;
            println!(
                "round {round} {:>2} readers: {rate:>7.0} purchases/s  ({done} purchases, {reads} reads)",
                readers
            );
            if readers == 0 {
                without.push(rate);
            } else {
                with.push(rate);
            }
        }
    }
    chart_latencies.sort_unstable();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "purchases/s without readers {:.0}, with {READERS} readers {:.0}: ratio {:.3}",
        mean(&without),
        mean(&with),
        mean(&with) / mean(&without)
    );
    println!(
        "{read:?}: {chart_reads} reads, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} computations",
        pct(&chart_latencies, 0.5),
        pct(&chart_latencies, 0.99),
        pct(&chart_latencies, 1.0),
        app.charts.computations()
    );
}
