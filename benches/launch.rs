//! The launch spike: hundreds of concurrent clients buying one album as fast as the server
//! acknowledges, over real HTTP on loopback, on the SQLite ledger and on PostgreSQL, beside a
//! `GET /healthz` baseline through the same clients in the same run.
//!
//! Run: `CARGO_TARGET_DIR=... cargo bench --bench launch [-- SECONDS CONCURRENCY]` (defaults:
//! 10 s, 400 clients). PostgreSQL: `ENCORE_BENCH_POSTGRES_URL=postgres://USER:PASS@HOST:PORT/postgres`
//! (or `PGHOST`/`PGPORT`/`PGUSER`/`PGPASSWORD`, as `pg_virtualenv -v 15` sets them); without
//! either the PostgreSQL phase fails with a message saying so. Per ledger, two phases: closed
//! loop (as fast as answered) and open loop at the goal rate (20,000/s SQLite, 5,000/s
//! PostgreSQL); each prints purchases/s and p50, p99 and max acknowledgement latency. Then
//! every acknowledged purchase is checked stored (zero lost) and buyer numbers exactly 1..N.

mod common;
#[path = "common/lean.rs"]
mod lean;
#[path = "common/phase.rs"]
mod phase;
use phase::{Phase, drive, drive_at_rate};

use std::sync::Arc;

use encore::config::Config;
use encore::keys::Keyring;
use encore::ledger::{LEDGER_FILE, Ledger};
use encore::license::{Clock, MintRequest, Scope, SystemClock, mint};
use encore::store::Store;
use sqlx::{Executor, Row};

const ALBUM: &str = "first-light";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(400);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(seconds, concurrency));
}

/// The admin URL of the PostgreSQL server to use.
fn postgres_admin_url() -> String {
    std::env::var("ENCORE_BENCH_POSTGRES_URL").unwrap_or_else(|_| {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: the PostgreSQL phase needs a server; run under \
                     `pg_virtualenv -v 15` or set ENCORE_BENCH_POSTGRES_URL"
                )
            })
        };
        format!(
            "postgres://{}:{}@{}:{}/postgres",
            var("PGUSER"),
            var("PGPASSWORD"),
            var("PGHOST"),
            std::env::var("PGPORT").unwrap_or_else(|_| "5432".to_owned())
        )
    })
}

/// The goals: purchases/s each ledger must sustain with p99 ≤ 20 ms.
const GOAL_RATE_SQLITE: u64 = 20_000;
const GOAL_RATE_POSTGRES: u64 = 5_000;

/// Purchases of one album from `concurrency` clients on `ledger`: as fast as the server
/// answers (closed loop), then at `goal_rate` (open loop); then the checks over both.
#[allow(clippy::too_many_arguments)]
async fn launch(
    name: &str,
    store: Store,
    keyring: Arc<Keyring>,
    ledger: Ledger,
    config: &Config,
    check_url: &str,
    seconds: u64,
    concurrency: usize,
    goal_rate: u64,
) -> (Phase, Phase) {
    let app = common::ready_app(store, keyring.clone(), ledger, config);
    let url = common::serve(app.clone()).await;
    let token = mint(
        &keyring.signing_key().expect("key"),
        &MintRequest::new("payments", Scope::Store),
        SystemClock.now_unix(),
    )
    .expect("mint");
    let client = Arc::new(lean::Lean::new(&url));
    client.connect(concurrency).await.expect("connect");
    let buy = move |phase: &'static str| {
        let (client, token) = (client.clone(), token.clone());
        move |i: u64| {
            let (c, t) = (client.clone(), token.clone());
            async move {
                let body = serde_json::json!({"order_id": format!("launch-{phase}-{i}"),
                        "user": format!("fan-{phase}-{i}"), "album": ALBUM, "price": 1500,
                        "currency": "CNY"})
                .to_string();
                let request = lean::request("POST", "/v1/purchases", Some(&t), Some(&body));
                let (status, _) = c.send(&request).await?;
                if status != 201 {
                    return Err(format!("status {status}"));
                }
                Ok(())
            }
        }
    };
    let most = drive(format!("launch {name}"), seconds, concurrency, buy("most")).await;
    let paced = drive_at_rate(
        format!("{name} at {goal_rate}/s"),
        seconds,
        goal_rate,
        concurrency,
        buy("paced"),
    )
    .await;
    app.ledger.close().await;
    // Zero lost, buyer numbers dense: read back on a connection of its own.
    let pool = sqlx::AnyPool::connect(check_url).await.expect("check pool");
    let row = pool
        .fetch_one(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT buyer_number) AS d, \
             MIN(buyer_number) AS lo, MAX(buyer_number) AS hi FROM purchases",
        )
        .await
        .expect("check");
    let (n, d, lo, hi): (i64, i64, i64, i64) = (
        row.try_get("n").expect("n"),
        row.try_get("d").expect("d"),
        row.try_get("lo").expect("lo"),
        row.try_get("hi").expect("hi"),
    );
    assert_eq!(
        n as u64,
        most.ops + paced.ops,
        "{name}: every acknowledged purchase stored"
    );
    assert_eq!(
        (d, lo, hi),
        (n, 1, n),
        "{name}: buyer numbers are exactly 1..N"
    );
    println!("{name}: {n} purchases stored, buyer numbers 1..{n} each once");
    pool.close().await;
    (most, paced)
}

async fn run(seconds: u64, concurrency: usize) {
    sqlx::any::install_default_drivers();
    let common::Packaged {
        dir,
        keyring,
        config,
        data,
        store,
    } = common::package_first_track(ALBUM, |_| {}).await;
    println!(
        "launch bench: {seconds} s per ledger, {concurrency} concurrent clients, one album, {} CPU(s), data in {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.path().display()
    );

    // Baseline: the HTTP floor through the same number of clients.
    let ledger = Ledger::open_sqlite(&data.join("baseline.sqlite"))
        .await
        .expect("ledger");
    let app = common::ready_app(store.clone(), keyring.clone(), ledger, &config);
    let url = common::serve(app).await;
    let client = Arc::new(lean::Lean::new(&url));
    client.connect(concurrency).await.expect("connect");
    let healthz = drive("healthz", seconds.min(5), concurrency, move |_| {
        let c = client.clone();
        async move {
            let (status, _) = c
                .send(&lean::request("GET", "/healthz", None, None))
                .await?;
            if status != 200 {
                return Err(format!("status {status}"));
            }
            Ok(())
        }
    })
    .await;

    let path = data.join(LEDGER_FILE);
    let ledger = Ledger::open_sqlite(&path).await.expect("ledger");
    let sqlite = launch(
        "sqlite",
        store.clone(),
        keyring.clone(),
        ledger,
        &config,
        &format!("sqlite://{}", path.display()),
        seconds,
        concurrency,
        GOAL_RATE_SQLITE,
    )
    .await;

    let admin_url = postgres_admin_url();
    let admin = sqlx::AnyPool::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    let db = format!("encore_launch_{}", std::process::id());
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    let pg_url = format!("{base}/{db}");
    let ledger = Ledger::open_url(&pg_url, "bench database".into())
        .await
        .expect("ledger");
    let postgres = launch(
        "postgres",
        store,
        keyring,
        ledger,
        &config,
        &pg_url,
        seconds,
        concurrency,
        GOAL_RATE_POSTGRES,
    )
    .await;
    admin
        .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
        .await
        .expect("drop database");

    for p in [&healthz, &sqlite.0, &sqlite.1, &postgres.0, &postgres.1] {
        p.print();
    }
    println!(
        "ratio launch sqlite / healthz:   {:.3}",
        sqlite.0.rate() / healthz.rate()
    );
    println!(
        "ratio launch postgres / healthz: {:.3}",
        postgres.0.rate() / healthz.rate()
    );
}
