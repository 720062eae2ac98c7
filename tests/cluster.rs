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

/// How a test's deployment is set up.
struct Setup {
    /// `encore serve` origins, each with its own `--data` (a copy of one packaged store).
    origins: usize,
    /// `[ledger] catch_up_ms`; `None` keeps the default.
    catch_up_ms: Option<u64>,
    /// The origins reach PostgreSQL through a [`Partition`] the test can cut.
    partitioned: bool,
    /// Length of the album's one track, seconds.
    seconds: f64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            origins: 2,
            catch_up_ms: None,
            partitioned: false,
            seconds: 6.0,
        }
    }
}

/// One test's deployment: a packaged album, a database of its own, origins on it sharing the
/// keys folder and media, a client, the payment backend's store token and the origins' log.
struct Cluster {
    ws: Workspace,
    db: PgDatabase,
    partition: Option<Partition>,
    origins: Vec<ServeProcess>,
    c: reqwest::Client,
    store: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    async fn start(setup: Setup) -> Cluster {
        let ws = util::packaged_album(ALBUM, 1, setup.seconds);
        let db = PgDatabase::create().await;
        let (partition, url) = if setup.partitioned {
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
            (Some(partition), through)
        } else {
            (None, db.url.clone())
        };
        let catch_up = setup
            .catch_up_ms
            .map(|ms| format!("catch_up_ms = {ms}\n"))
            .unwrap_or_default();
        let config = ws.path().join("encore.toml");
        std::fs::write(
            &config,
            format!("[ledger]\nurl = \"{url}\"\n{catch_up}\n[server]\nwatch_media = false\n"),
        )
        .expect("config");
        let config = config.to_str().expect("utf-8").to_owned();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut origins = Vec::new();
        for i in 0..setup.origins {
            let data = ws.path().join(format!("data-{i}"));
            let copy = std::process::Command::new("cp")
                .arg("-a")
                .arg(ws.data())
                .arg(&data)
                .status()
                .expect("cp");
            assert!(copy.success(), "copying the packaged store");
            let data = data.to_str().expect("utf-8").to_owned();
            origins.push(
                ServeProcess::start(&ws, &["--config", &config, "--data", &data], log.clone())
                    .await,
            );
        }
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let store = util::token(&ws, "payments", Scope::Store, &[]);
        Cluster {
            ws,
            db,
            partition,
            origins,
            c,
            store,
            log,
        }
    }

    /// Origin `i`'s base URL.
    fn url(&self, i: usize) -> &str {
        &self.origins[i].url
    }

    /// The forwarder between the origins and the database (a partitioned setup only).
    fn partition(&self) -> &Partition {
        self.partition
            .as_ref()
            .expect("Setup { partitioned: true, .. }")
    }

    /// Waits until every origin's listener is connected (each has applied its start-up
    /// catch-up).
    async fn listening(&self) {
        let n = i64::try_from(self.origins.len()).expect("count");
        while self.db.listeners().await < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A play token for `user` naming the album.
    fn play(&self, user: &str) -> String {
        util::token(&self.ws, user, Scope::Play, &[ALBUM])
    }

    /// Origin `i`'s `/readyz` status.
    async fn ready(&self, i: usize) -> StatusCode {
        self.c
            .get(format!("{}/readyz", self.url(i)))
            .send()
            .await
            .expect("readyz")
            .status()
    }

    /// Asks origin `i`'s `/readyz` until it answers `want` (at most `bound`, a bound for a
    /// hung test).
    async fn until_ready_is(&self, i: usize, want: StatusCode, bound: Duration, what: &str) {
        let wait = async {
            while self.ready(i).await != want {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(bound, wait).await.is_err() {
            // Copied out first: a panic holding the lock would poison it for the log readers.
            let log = self.log.lock().expect("log").join("\n");
            panic!("{what}: /readyz of origin {i} never answered {want}; log:\n{log}");
        }
    }

    /// Stops the origins and drops the database.
    async fn stop(mut self) {
        self.origins.clear();
        self.db.drop_database().await;
    }
}

impl Cluster {
    /// The URL path of track 1's first lossless media segment (read once with an edge token).
    async fn segment_path(&self) -> String {
        let edge = util::token(&self.ws, "edge-1", Scope::Edge, &[]);
        let m: Value = self
            .c
            .get(format!(
                "{}/v1/albums/{ALBUM}/tracks/1/lossless/manifest",
                self.url(0)
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

    /// The status and problem type of `path` on origin `i` for `token`.
    async fn status(&self, i: usize, path: &str, token: &str) -> (StatusCode, String) {
        let r = self
            .c
            .get(format!("{}{path}", self.url(i)))
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

    /// Asks until origin `i` answers `want` (at most 20 s, a bound for a hung test, not a
    /// performance goal: `benches/revocation.rs` measures the time); returns how long it took.
    async fn until(&self, i: usize, path: &str, token: &str, want: StatusCode) -> Duration {
        let start = Instant::now();
        loop {
            let (got, kind) = self.status(i, path, token).await;
            if got == want {
                if want == StatusCode::FORBIDDEN {
                    assert_eq!(kind, "urn:encore:problem:purchase-refunded");
                }
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "origin {i} still answers {got} ({kind}), not {want}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `POST /v1/purchases` of the album through origin `i`, as the payment backend.
    async fn purchase(&self, i: usize, order: &str, user: &str) -> reqwest::Response {
        let body = json!({"order_id": order, "user": user, "album": ALBUM, "price": 1500,
            "currency": "CNY"});
        self.c
            .post(format!("{}/v1/purchases", self.url(i)))
            .bearer_auth(&self.store)
            .json(&body)
            .send()
            .await
            .expect("purchase answered (no hang)")
    }

    /// A gift of the album from `user` to `recipient` through origin `i`, recorded.
    async fn gift(&self, i: usize, order: &str, user: &str, recipient: &str) {
        let body = json!({"order_id": order, "user": user, "album": ALBUM, "price": 1500,
            "currency": "CNY", "gift_to": recipient});
        let r = self
            .c
            .post(format!("{}/v1/purchases", self.url(i)))
            .bearer_auth(&self.store)
            .json(&body)
            .send()
            .await
            .expect("purchase answered (no hang)");
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }

    /// `POST /v1/purchases/{order}/refund` through origin `i`.
    async fn refund(&self, i: usize, order: &str) -> reqwest::Response {
        self.c
            .post(format!("{}/v1/purchases/{order}/refund", self.url(i)))
            .bearer_auth(&self.store)
            .send()
            .await
            .expect("refund answered (no hang)")
    }

    /// A purchase through origin `i` that must be recorded.
    async fn buy(&self, i: usize, order: &str, user: &str) {
        let r = self.purchase(i, order, user).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    }

    /// A refund through origin `i` that must be recorded.
    async fn refunded(&self, i: usize, order: &str) {
        let r = self.refund(i, order).await;
        assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    }
}

const A: usize = 0;
const B: usize = 1;

/// The notification path alone: the timed catch-up is set to an hour, so what reaches the
/// other origin within the test came through `NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_through_one_origin_is_refused_by_the_other() {
    let cl = Cluster::start(Setup {
        catch_up_ms: Some(3_600_000),
        ..Setup::default()
    })
    .await;
    let path = cl.segment_path().await;
    cl.listening().await;

    // Bought through A, played through B (and A).
    cl.buy(A, "order-1", "fan-1").await;
    let play = cl.play("fan-1");
    assert_eq!(cl.status(B, &path, &play).await.0, StatusCode::OK);
    assert_eq!(cl.status(A, &path, &play).await.0, StatusCode::OK);

    // Refunded through B: B refuses at once (before its 200), A as soon as it hears.
    cl.refunded(B, "order-1").await;
    assert_eq!(cl.status(B, &path, &play).await.0, StatusCode::FORBIDDEN);
    let took = cl.until(A, &path, &play, StatusCode::FORBIDDEN).await;
    eprintln!("refund through B refused by A after {took:?}");

    // Bought again through A: the same token plays again on both.
    cl.buy(A, "order-2", "fan-1").await;
    assert_eq!(cl.status(A, &path, &play).await.0, StatusCode::OK);
    cl.until(B, &path, &play, StatusCode::OK).await;

    // And a second refund (of the new order) through A reaches B.
    cl.refunded(A, "order-2").await;
    cl.until(B, &path, &play, StatusCode::FORBIDDEN).await;
    cl.stop().await;
}

/// A gift is revoked from its recipient, not its buyer: refunded through A, the recipient's
/// play token is refused by B as soon as B hears (the notification path alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_refunded_through_one_origin_is_refused_to_its_recipient_by_the_other() {
    let cl = Cluster::start(Setup {
        catch_up_ms: Some(3_600_000),
        ..Setup::default()
    })
    .await;
    let path = cl.segment_path().await;
    cl.listening().await;

    cl.gift(A, "gift-1", "fan-1", "fan-2").await;
    let recipient = cl.play("fan-2");
    assert_eq!(cl.status(B, &path, &recipient).await.0, StatusCode::OK);

    cl.refunded(A, "gift-1").await;
    assert_eq!(
        cl.status(A, &path, &recipient).await.0,
        StatusCode::FORBIDDEN
    );
    let took = cl.until(B, &path, &recipient, StatusCode::FORBIDDEN).await;
    eprintln!("gift refunded through A refused to its recipient by B after {took:?}");
    cl.stop().await;
}

/// A lost notification: new connections refused, every listener's connection ended (so no
/// origin can hear anything), then a refund through B: A still refuses the album, through the
/// timed catch-up on the connections its pool already holds. Once connections are allowed
/// again the listeners come back by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_notification_is_lost_still_reaches_the_other_origin() {
    let cl = Cluster::start(Setup {
        catch_up_ms: Some(250),
        ..Setup::default()
    })
    .await;
    let path = cl.segment_path().await;
    cl.listening().await;
    cl.buy(A, "order-1", "fan-1").await;
    let play = cl.play("fan-1");
    assert_eq!(cl.status(A, &path, &play).await.0, StatusCode::OK);

    cl.db.allow_connections(false).await;
    assert_eq!(cl.db.terminate_listeners().await, 2);
    while cl.db.listeners().await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cl.refunded(B, "order-1").await;
    let took = cl.until(A, &path, &play, StatusCode::FORBIDDEN).await;
    eprintln!("refund with no listener refused by A after {took:?}");
    assert_eq!(
        cl.db.listeners().await,
        0,
        "a listener reconnected meanwhile"
    );

    cl.db.allow_connections(true).await;
    tokio::time::timeout(Duration::from_secs(30), cl.listening())
        .await
        .expect("the listeners did not reconnect by themselves");
    cl.buy(B, "order-2", "fan-1").await;
    cl.until(A, &path, &play, StatusCode::OK).await;
    let lines = cl.log.lock().expect("log").join("\n");
    assert!(
        lines.contains("change listener"),
        "the lost connection was not logged"
    );
    cl.stop().await;
}

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
    let cl = Cluster::start(Setup {
        origins: 1,
        partitioned: true,
        seconds: 2.0,
        ..Setup::default()
    })
    .await;
    let fan = |order: &str| format!("fan-{order}");
    cl.buy(A, "before", &fan("before")).await;

    cl.partition().set_cut(true);
    let during: Vec<_> = (0..8)
        .map(|i| {
            let order = format!("during-{i}");
            let cl = &cl;
            async move { cl.purchase(A, &order, &fan(&order)).await }
        })
        .collect();
    for (i, r) in futures_util::future::join_all(during)
        .await
        .into_iter()
        .enumerate()
    {
        assert_unavailable(r, &format!("purchase during-{i}")).await;
    }
    assert_unavailable(cl.refund(A, "before").await, "refund while unreachable").await;
    assert_eq!(cl.ready(A).await, StatusCode::SERVICE_UNAVAILABLE);

    cl.partition().set_cut(false);
    cl.until_ready_is(
        A,
        StatusCode::OK,
        Duration::from_secs(60),
        "after the cut healed",
    )
    .await;
    for i in 0..8 {
        let order = format!("during-{i}");
        let r = cl.purchase(A, &order, &fan(&order)).await;
        assert_eq!(r.status(), StatusCode::CREATED, "retry of {order}");
    }
    for i in 0..8 {
        cl.buy(A, &format!("after-{i}"), &fan(&format!("after-{i}")))
            .await;
    }

    // The database itself refuses connections (55000) and ends every one it had: the same
    // 503s, not a 500 for an error that a query would make a fault.
    cl.db.allow_connections(false).await;
    assert!(cl.db.terminate_all().await > 0);
    for i in 0..4 {
        let order = format!("refused-{i}");
        let r = cl.purchase(A, &order, &fan(&order)).await;
        assert_unavailable(r, &format!("purchase {order}")).await;
    }
    cl.db.allow_connections(true).await;
    cl.until_ready_is(
        A,
        StatusCode::OK,
        Duration::from_secs(60),
        "after connections were allowed again",
    )
    .await;
    for i in 0..4 {
        let order = format!("refused-{i}");
        let r = cl.purchase(A, &order, &fan(&order)).await;
        assert_eq!(r.status(), StatusCode::CREATED, "retry of {order}");
    }
    let rows: Vec<String> = sqlx::query("SELECT order_id FROM purchases ORDER BY order_id")
        .fetch_all(&sqlx::AnyPool::connect(&cl.db.url).await.expect("connect"))
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
    cl.stop().await;
}

/// An origin that cannot read the change feed leaves the load balancer's rotation even when
/// nobody buys through it (no failed write to notice): with the database cut off, `/readyz`
/// answers 503 within a few catch-up periods, saying why, and 200 again once it is reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_cannot_hear_the_change_feed_leaves_rotation() {
    let cl = Cluster::start(Setup {
        origins: 1,
        catch_up_ms: Some(250),
        partitioned: true,
        seconds: 2.0,
    })
    .await;
    assert_eq!(cl.ready(A).await, StatusCode::OK);

    cl.partition().set_cut(true);
    cl.until_ready_is(
        A,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(20),
        "while the database is cut off",
    )
    .await;
    let body =
        cl.c.get(format!("{}/readyz", cl.url(A)))
            .send()
            .await
            .expect("readyz")
            .text()
            .await
            .expect("body");
    assert!(body.contains("change feed"), "{body}");

    cl.partition().set_cut(false);
    cl.until_ready_is(
        A,
        StatusCode::OK,
        Duration::from_secs(60),
        "after the cut healed",
    )
    .await;
    cl.stop().await;
}
