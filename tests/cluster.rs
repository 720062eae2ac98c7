//! Several origins on one PostgreSQL ledger, as real `encore serve` processes: a refund
//! acknowledged by one is refused by the other (the `NOTIFY` path), a re-purchase plays again
//! on both, and a refund whose notification is lost (every listener's connection ended while
//! the database refuses new connections) still reaches the other origin through the timed
//! catch-up. Each origin has its own `--data` (a copy of one packaged store) and both share
//! the keys folder, as nodes of one deployment would.
//!
//! Needs PostgreSQL 15: `pg_virtualenv -v 15 cargo test --test integration cluster` (or
//! `ENCORE_TEST_POSTGRES_URL=postgres://USER:PASS@HOST:PORT/postgres`); `.ci/run` does it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::pg::PgDatabase;
use crate::util::{self, ServeProcess, Workspace};

const ALBUM: &str = "shared";

/// Two `encore serve` origins on `db`: each with its own data dir (a copy of the packaged
/// store), the same keys and media, and `[ledger] catch_up_ms = catch_up_ms`.
pub async fn two_origins(
    ws: &Workspace,
    db: &PgDatabase,
    catch_up_ms: u64,
    log: Arc<Mutex<Vec<String>>>,
) -> (ServeProcess, ServeProcess) {
    let config = ws.path().join("encore.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\nurl = \"{}\"\ncatch_up_ms = {catch_up_ms}\n\n[server]\nwatch_media = false\n",
            db.url
        ),
    )
    .expect("config");
    let mut origins = Vec::new();
    for name in ["data-a", "data-b"] {
        let data = ws.path().join(name);
        let copy = std::process::Command::new("cp")
            .arg("-a")
            .arg(ws.data())
            .arg(&data)
            .status()
            .expect("cp");
        assert!(copy.success(), "copying the packaged store");
        let data = data.to_str().expect("utf-8").to_owned();
        let config = config.to_str().expect("utf-8").to_owned();
        origins.push(
            ServeProcess::start(ws, &["--config", &config, "--data", &data], log.clone()).await,
        );
    }
    let b = origins.pop().expect("b");
    let a = origins.pop().expect("a");
    (a, b)
}

/// The URL path of track 1's first lossless media segment (read once with an edge token).
pub async fn segment_path(c: &reqwest::Client, origin: &str, ws: &Workspace) -> String {
    let edge = util::token(ws, "edge-1", Scope::Edge, &[]);
    let m: Value = c
        .get(format!(
            "{origin}/v1/albums/{ALBUM}/tracks/1/lossless/manifest"
        ))
        .bearer_auth(&edge)
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("manifest json");
    m["segments"][0]["url"].as_str().expect("url").to_owned()
}

/// The status and problem type of `path` on `origin` for `token`.
async fn status(
    c: &reqwest::Client,
    origin: &str,
    path: &str,
    token: &str,
) -> (StatusCode, String) {
    let r = c
        .get(format!("{origin}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("segment");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let kind = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, kind)
}

/// Asks until `origin` answers `want` (at most 20 s, a bound for a hung test, not a
/// performance goal: `benches/revocation.rs` measures the time); returns how long it took.
async fn until(
    c: &reqwest::Client,
    origin: &str,
    path: &str,
    token: &str,
    want: StatusCode,
) -> Duration {
    let start = Instant::now();
    loop {
        let (got, kind) = status(c, origin, path, token).await;
        if got == want {
            if want == StatusCode::FORBIDDEN {
                assert_eq!(kind, "urn:encore:problem:purchase-refunded");
            }
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{origin} still answers {got} ({kind}), not {want}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub async fn buy(c: &reqwest::Client, origin: &str, store: &str, order: &str, user: &str) {
    let body = json!({"order_id": order, "user": user, "album": ALBUM, "price": 1500,
        "currency": "CNY"});
    let r = c
        .post(format!("{origin}/v1/purchases"))
        .bearer_auth(store)
        .json(&body)
        .send()
        .await
        .expect("purchase");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
}

pub async fn refund(c: &reqwest::Client, origin: &str, store: &str, order: &str) {
    let r = c
        .post(format!("{origin}/v1/purchases/{order}/refund"))
        .bearer_auth(store)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
}

/// The notification path alone: the timed catch-up is set to an hour, so what reaches the
/// other origin within the test came through `NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_through_one_origin_is_refused_by_the_other() {
    let ws = util::packaged_album(ALBUM, 1, 6.0);
    let db = PgDatabase::create().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = two_origins(&ws, &db, 3_600_000, log.clone()).await;
    let c = reqwest::Client::new();
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let path = segment_path(&c, &a.url, &ws).await;
    // Both origins have applied their start-up catch-up (each connected its listener).
    while db.listeners().await < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Bought through A, played through B (and A).
    buy(&c, &a.url, &store, "order-1", "fan-1").await;
    let play = util::token(&ws, "fan-1", Scope::Play, &[ALBUM]);
    assert_eq!(status(&c, &b.url, &path, &play).await.0, StatusCode::OK);
    assert_eq!(status(&c, &a.url, &path, &play).await.0, StatusCode::OK);

    // Refunded through B: B refuses at once (before its 200), A as soon as it hears.
    refund(&c, &b.url, &store, "order-1").await;
    assert_eq!(
        status(&c, &b.url, &path, &play).await.0,
        StatusCode::FORBIDDEN
    );
    let took = until(&c, &a.url, &path, &play, StatusCode::FORBIDDEN).await;
    eprintln!("refund through B refused by A after {took:?}");

    // Bought again through A: the same token plays again on both.
    buy(&c, &a.url, &store, "order-2", "fan-1").await;
    assert_eq!(status(&c, &a.url, &path, &play).await.0, StatusCode::OK);
    until(&c, &b.url, &path, &play, StatusCode::OK).await;

    // And a second refund (of the new order) through A reaches B.
    refund(&c, &a.url, &store, "order-2").await;
    until(&c, &b.url, &path, &play, StatusCode::FORBIDDEN).await;
    drop((a, b));
    db.drop_database().await;
}

/// A lost notification: new connections refused, every listener's connection ended (so no
/// origin can hear anything), then a refund through B: A still refuses the album, through the
/// timed catch-up on the connections its pool already holds. Once connections are allowed
/// again the listeners come back by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_notification_is_lost_still_reaches_the_other_origin() {
    let ws = util::packaged_album(ALBUM, 1, 6.0);
    let db = PgDatabase::create().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = two_origins(&ws, &db, 250, log.clone()).await;
    let c = reqwest::Client::new();
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let path = segment_path(&c, &a.url, &ws).await;
    while db.listeners().await < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    buy(&c, &a.url, &store, "order-1", "fan-1").await;
    let play = util::token(&ws, "fan-1", Scope::Play, &[ALBUM]);
    assert_eq!(status(&c, &a.url, &path, &play).await.0, StatusCode::OK);

    db.allow_connections(false).await;
    assert_eq!(db.terminate_listeners().await, 2);
    while db.listeners().await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    refund(&c, &b.url, &store, "order-1").await;
    let took = until(&c, &a.url, &path, &play, StatusCode::FORBIDDEN).await;
    eprintln!("refund with no listener refused by A after {took:?}");
    assert_eq!(db.listeners().await, 0, "a listener reconnected meanwhile");

    db.allow_connections(true).await;
    let back = async {
        while db.listeners().await < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), back)
        .await
        .expect("the listeners did not reconnect by themselves");
    buy(&c, &b.url, &store, "order-2", "fan-1").await;
    until(&c, &a.url, &path, &play, StatusCode::OK).await;
    let lines = log.lock().expect("log").join("\n");
    assert!(
        lines.contains("change listener"),
        "the lost connection was not logged"
    );
    drop((a, b));
    db.drop_database().await;
}

/// A name part no other run on this server is using: process id, clock and a counter.
/// A TCP forwarder between encore and PostgreSQL that the test can cut (every forwarded
/// connection closed, new ones closed at once) and heal: the database unreachable, as a
/// network partition or a restarting server makes it, without stopping the suite's server.
struct Partition {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    async fn start(upstream: (String, u16)) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (cut, watching) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *watching.borrow() {
                    continue; // dropped: closed at once
                }
                let mut cut = watching.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect((upstream.0.as_str(), upstream.1)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Partition { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// A 503 `ledger-unavailable` problem with a `Retry-After` in seconds.
async fn assert_unavailable(r: reqwest::Response, what: &str) {
    let status = r.status();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(retry_after.is_some_and(|s| s > 0), "{what}: no Retry-After");
    assert_eq!(
        body["type"], "urn:encore:problem:ledger-unavailable",
        "{what}"
    );
}

/// PostgreSQL unreachable for a while (every connection cut, new ones refused) under a running
/// `encore serve`: purchases and refunds get 503 with `Retry-After`, `/readyz` 503; once it is
/// reachable again, without a restart, `/readyz` is 200, the same purchases are recorded, and
/// every purchase acknowledged before, during or after is in the database exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_gives_503_with_retry_after_and_the_pool_recovers() {
    let ws = util::packaged_album(ALBUM, 1, 2.0);
    let db = PgDatabase::create().await;
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().expect("url");
    let host = options.get_host().to_owned();
    assert!(
        !host.starts_with('/'),
        "this test forwards TCP: give the PostgreSQL server as host:port, not a socket dir"
    );
    let partition = Partition::start((host, options.get_port())).await;
    // The same URL with the forwarder as the server.
    let (credentials, _) = db.url.split_once('@').expect("user@host in the URL");
    let through = format!("{credentials}@127.0.0.1:{}/{}", partition.port, db.name);
    let config = ws.path().join("encore.toml");
    std::fs::write(
        &config,
        format!("[ledger]\nurl = \"{through}\"\n\n[server]\nwatch_media = false\n"),
    )
    .expect("config");
    let log = Arc::new(Mutex::new(Vec::new()));
    let config = config.to_str().expect("utf-8").to_owned();
    let s = ServeProcess::start(&ws, &["--config", &config], log.clone()).await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let purchase = |order: String| {
        let (c, url, store) = (c.clone(), s.url.clone(), store.clone());
        async move {
            let body = json!({"order_id": order, "user": format!("fan-{order}"),
                "album": ALBUM, "price": 1500, "currency": "CNY"});
            c.post(format!("{url}/v1/purchases"))
                .bearer_auth(&store)
                .json(&body)
                .send()
                .await
                .expect("purchase answered (no hang)")
        }
    };
    let ready = || async {
        c.get(format!("{}/readyz", s.url))
            .send()
            .await
            .expect("readyz")
            .status()
    };
    assert_eq!(
        purchase("before".into()).await.status(),
        StatusCode::CREATED
    );

    partition.set_cut(true);
    let during: Vec<_> = (0..8)
        .map(|i| tokio::spawn(purchase(format!("during-{i}"))))
        .collect();
    for (i, t) in during.into_iter().enumerate() {
        assert_unavailable(t.await.expect("task"), &format!("purchase during-{i}")).await;
    }
    let r = c
        .post(format!("{}/v1/purchases/before/refund", s.url))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund answered");
    assert_unavailable(r, "refund while unreachable").await;
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);

    partition.set_cut(false);
    let back = async {
        while ready().await != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), back)
        .await
        .expect("/readyz never came back without a restart");
    for i in 0..8 {
        let r = purchase(format!("during-{i}")).await;
        assert_eq!(r.status(), StatusCode::CREATED, "retry of during-{i}");
    }
    for i in 0..8 {
        let r = purchase(format!("after-{i}")).await;
        assert_eq!(r.status(), StatusCode::CREATED, "after-{i}");
    }

    // The database itself refuses connections (55000) and ends every one it had: the same
    // 503s, not a 500 for an error that a query would make a fault.
    db.allow_connections(false).await;
    assert!(db.terminate_all().await > 0);
    for i in 0..4 {
        let r = purchase(format!("refused-{i}")).await;
        assert_unavailable(r, &format!("purchase refused-{i}")).await;
    }
    db.allow_connections(true).await;
    let back = async {
        while ready().await != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), back)
        .await
        .expect("/readyz never came back after connections were allowed again");
    for i in 0..4 {
        let r = purchase(format!("refused-{i}")).await;
        assert_eq!(r.status(), StatusCode::CREATED, "retry of refused-{i}");
    }
    let rows: Vec<String> = sqlx::query("SELECT order_id FROM purchases ORDER BY order_id")
        .fetch_all(&sqlx::AnyPool::connect(&db.url).await.expect("connect"))
        .await
        .expect("rows")
        .iter()
        .map(|r| r.try_get("order_id").expect("order_id"))
        .collect();
    let mut expected: Vec<String> = std::iter::once("before".to_owned())
        .chain((0..8).map(|i| format!("during-{i}")))
        .chain((0..8).map(|i| format!("after-{i}")))
        .chain((0..4).map(|i| format!("refused-{i}")))
        .collect();
    expected.sort();
    assert_eq!(rows, expected, "every acknowledged purchase, once");
    drop(s);
    db.drop_database().await;
}
