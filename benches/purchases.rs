//! Purchases and play-token exchanges under load, over real HTTP on loopback, each beside a
//! baseline measured in the same run:
//!
//! - `healthz`: `GET /healthz` through the same client and connections (the HTTP floor);
//! - `raw commit`: one-row `BEGIN IMMEDIATE; INSERT; COMMIT` transactions on a bare SQLite
//!   file in the same folder with the ledger's settings (WAL, `synchronous=FULL`): the
//!   durability ceiling of the disk;
//! - `purchases`: `POST /v1/purchases` with fresh order ids (durable before the 201);
//! - `exchanges`: `POST /v1/play-tokens` (account token verified from the cache, a ledger
//!   read, an Ed25519 signature).
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench purchases [-- SECONDS CONCURRENCY]`
//! (defaults: 5 s per phase, 16 concurrent clients). Prints req/s, p50, p99 and max per
//! phase and the ratios purchases / raw commits and exchanges / healthz. Figures and the
//! machine are in `docs/PERFORMANCE.md` ("Purchases and token exchange").

mod common;
#[path = "common/phase.rs"]
mod phase;
use phase::drive;

use std::time::Duration;

use encore::keys::account_keys::{dev_account_key, init_dev_account_key};
use encore::ledger::{LEDGER_FILE, Ledger};
use encore::license::{Clock, MintRequest, Scope, SystemClock, mint};
use sqlx::Executor;

const ALBUM: &str = "first-light";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(seconds, concurrency));
}

async fn run(seconds: u64, concurrency: usize) {
    let common::Packaged {
        dir,
        keyring,
        config,
        data,
        store,
    } = common::package_first_track(ALBUM, |keys| {
        init_dev_account_key(keys).expect("account key");
    })
    .await;
    let ledger = Ledger::open_sqlite(&data.join(LEDGER_FILE))
        .await
        .expect("ledger");
    let app = common::ready_app(store, keyring.clone(), ledger, &config);
    let url = common::serve(app.clone()).await;

    let now = SystemClock.now_unix();
    let store_token = mint(
        &keyring.signing_key().expect("key"),
        &MintRequest::new("payments", Scope::Store),
        now,
    )
    .expect("mint");
    let account = mint(
        &dev_account_key(&dir.path().join("keys"))
            .expect("read")
            .expect("account key"),
        &MintRequest {
            issuer: config.server.ledger.account_issuer.clone(),
            ..MintRequest::new("bench-fan", Scope::Account)
        },
        now,
    )
    .expect("mint account");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");

    println!(
        "purchases bench: {seconds} s per phase, {concurrency} concurrent clients, {} CPU(s), ledger in {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.path().display()
    );

    let (c, u) = (client.clone(), url.clone());
    let healthz = drive("healthz", seconds, concurrency, move |_| {
        let (c, u) = (c.clone(), u.clone());
        async move {
            let r = c
                .get(format!("{u}/healthz"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            r.bytes().await.map_err(|e| e.to_string())?;
            Ok(())
        }
    })
    .await;

    // The disk's durability ceiling: same pragmas as the ledger, one row per transaction.
    let raw_path = dir.path().join("raw.sqlite");
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&raw_path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10)),
        )
        .await
        .expect("raw sqlite");
    pool.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .expect("table");
    let raw = drive("raw commit", seconds, concurrency, move |i| {
        let pool = pool.clone();
        async move {
            let mut tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind(format!("k{i}"))
                .bind(i as i64)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())
        }
    })
    .await;

    let (c, u, t) = (client.clone(), url.clone(), store_token.clone());
    let purchases = drive("purchases", seconds, concurrency, move |i| {
        let (c, u, t) = (c.clone(), u.clone(), t.clone());
        async move {
            let body = serde_json::json!({"order_id": format!("bench-{i}"),
                "user": format!("fan-{}", i % 1000), "album": ALBUM, "price": 1500,
                "currency": "CNY"});
            let r = c
                .post(format!("{u}/v1/purchases"))
                .bearer_auth(&t)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status() != reqwest::StatusCode::CREATED {
                return Err(format!("status {}", r.status()));
            }
            r.bytes().await.map_err(|e| e.to_string())?;
            Ok(())
        }
    })
    .await;

    // The exchanging user owns the album.
    let body = serde_json::json!({"order_id": "fan-order", "user": "bench-fan",
        "album": ALBUM, "price": 1500, "currency": "CNY"});
    let r = client
        .post(format!("{url}/v1/purchases"))
        .bearer_auth(&store_token)
        .json(&body)
        .send()
        .await
        .expect("purchase");
    assert!(r.status().is_success());
    let (c, u, t) = (client.clone(), url.clone(), account.clone());
    let exchanges = drive("exchanges", seconds, concurrency, move |_| {
        let (c, u, t) = (c.clone(), u.clone(), t.clone());
        async move {
            let r = c
                .post(format!("{u}/v1/play-tokens"))
                .bearer_auth(&t)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status() != reqwest::StatusCode::CREATED {
                return Err(format!("status {}", r.status()));
            }
            r.bytes().await.map_err(|e| e.to_string())?;
            Ok(())
        }
    })
    .await;

    for p in [&healthz, &raw, &purchases, &exchanges] {
        p.print();
    }
    println!(
        "ratio purchases / raw durable commits: {:.2}",
        purchases.rate() / raw.rate()
    );
    println!(
        "ratio exchanges / healthz:             {:.2}",
        exchanges.rate() / healthz.rate()
    );
    let stored = app.ledger.order_ids().await.expect("orders").len() as u64;
    assert_eq!(
        stored,
        purchases.ops + 1,
        "every acknowledged purchase is stored"
    );
    assert_eq!(app.ledger.integrity_check().await.expect("check"), "ok");
}
