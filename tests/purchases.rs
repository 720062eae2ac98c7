//! Purchases become entitlements, over real HTTP: purchase, play-token exchange, playback
//! with `encore fetch`, refund, idempotency, the chart and buyer numbers under concurrency,
//! and bad bodies. Each on the SQLite ledger and again on PostgreSQL (a database of its own:
//! run under `pg_virtualenv -v 15`, as `.ci/run` does), as the ledger's unit tests are.

use std::collections::{BTreeMap, BTreeSet};

use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pg::PgDatabase;
use crate::util::{self, TestServer, Workspace};

/// An in-process server on the workspace with `raw`'s settings, its ledger in `db` if given
/// (else SQLite under the workspace's data/).
async fn server(
    ws: &Workspace,
    db: Option<&PgDatabase>,
    mut raw: encore::config::RawConfig,
) -> TestServer {
    if let Some(db) = db {
        raw.ledger.url = Some(db.url.clone());
    }
    let limits = encore::http::Limits {
        shutdown_grace: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    TestServer::start_configured(ws, limits, raw).await
}

/// Declares `$name` (on SQLite) and `$on_postgres` (on a fresh PostgreSQL database, dropped
/// afterwards), both running `$body(Option<&PgDatabase>)`.
macro_rules! on_both_ledgers {
    ($($name:ident, $on_postgres:ident => $body:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $body(None).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_postgres() {
            let db = PgDatabase::create().await;
            $body(Some(&db)).await;
            db.drop_database().await;
        }
    )*};
}

on_both_ledgers! {
    purchase_exchange_play_refund, purchase_exchange_play_refund_on_postgres
        => purchase_exchange_play_refund_on;
    idempotency_and_bad_bodies, idempotency_and_bad_bodies_on_postgres
        => idempotency_and_bad_bodies_on;
    chart_and_buyer_numbers_under_concurrency,
        chart_and_buyer_numbers_under_concurrency_on_postgres
        => chart_and_buyer_numbers_under_concurrency_on;
    chart_is_computed_at_most_once_per_interval,
        chart_is_computed_at_most_once_per_interval_on_postgres
        => chart_is_computed_at_most_once_per_interval_on;
    nameplates_show_a_purchase_and_a_refund_at_once,
        nameplates_show_a_purchase_and_a_refund_at_once_on_postgres
        => nameplates_show_a_purchase_and_a_refund_at_once_on;
    a_server_behind_a_pruned_feed_rebuilds_its_revocations,
        a_server_behind_a_pruned_feed_rebuilds_its_revocations_on_postgres
        => a_server_behind_a_pruned_feed_rebuilds_its_revocations_on;
}

/// A server whose change-feed cursor is behind rows another origin pruned (it was cut off
/// longer than the retention) rebuilds its revocation list from the ledger: a refund made
/// elsewhere that it never read is enforced, and an album it had revoked that was bought
/// back elsewhere meanwhile plays again. "Elsewhere" is a second handle on the same ledger,
/// as another origin's would be; the server's timer is set to an hour and (PostgreSQL) its
/// listener is cut off, so only the catch-up the test runs reads the feed.
async fn a_server_behind_a_pruned_feed_rebuilds_its_revocations_on(db: Option<&PgDatabase>) {
    const ALBUM: &str = "pruned";
    let ws = util::packaged_album(ALBUM, 1, 2.0);
    let mut raw = encore::config::RawConfig::default();
    raw.ledger.catch_up_ms = Some(3_600_000);
    let s = server(&ws, db, raw).await;
    let elsewhere = match db {
        Some(db) => encore::ledger::Ledger::open_url(&db.url, "elsewhere".into()).await,
        None => {
            encore::ledger::Ledger::open_sqlite(&ws.data().join(encore::ledger::LEDGER_FILE)).await
        }
    }
    .expect("a second handle on the ledger");
    let c = client();
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    for (order, user) in [("o1", "u1"), ("o2", "u2"), ("o3", "u3")] {
        assert_eq!(
            buy(&c, &s, &store, order, user, ALBUM).await.0,
            StatusCode::CREATED
        );
    }
    // Refunded through this server: revoked here at once (feed row 1).
    let r = c
        .post(format!("{}/v1/purchases/o3/refund", s.url))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status(), StatusCode::OK);
    let now = i64::try_from(util::now()).expect("now");
    let at = u64::try_from(now).expect("at");
    assert!(s.app.revocations.revokes("u3", ALBUM, at));

    // On PostgreSQL this server would hear of every change at once (NOTIFY): cut it off as a
    // partition would, its listener ended and new connections refused (the pools keep the
    // connections they opened at start, so both handles still read and write).
    if let Some(db) = db {
        while db.listeners().await < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        db.allow_connections(false).await;
        db.terminate_listeners().await;
        while db.listeners().await > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    // Elsewhere: u3 buys it back (2), u1 and u2 are refunded (3, 4); then rows before the
    // last are pruned, unread by this server.
    let again = serde_json::to_vec(&json!({"order_id": "o4", "user": "u3", "album": ALBUM,
        "price": 1500, "currency": "CNY"}))
    .expect("body");
    let again = encore::ledger::NewPurchase::parse(&again, now).expect("purchase");
    elsewhere
        .record_purchase(&again, now, "elsewhere")
        .await
        .expect("purchase elsewhere");
    for order in ["o1", "o2"] {
        elsewhere
            .refund(order, now, "elsewhere")
            .await
            .expect("refund elsewhere");
    }
    assert_eq!(elsewhere.last_entitlement_change().await.expect("last"), 4);
    assert_eq!(
        elsewhere
            .prune_entitlement_changes(now + 1)
            .await
            .expect("prune"),
        3
    );

    s.app.catch_up_entitlements().await.expect("catch up");
    assert!(
        s.app.revocations.revokes("u1", ALBUM, at),
        "a refund pruned unread"
    );
    assert!(s.app.revocations.revokes("u2", ALBUM, at));
    assert!(
        !s.app.revocations.revokes("u3", ALBUM, at),
        "bought back elsewhere"
    );
    // From there on the feed is read as usual: nothing missed, nothing applied twice.
    assert_eq!(s.app.catch_up_entitlements().await.expect("again"), 0);
    elsewhere.close().await;
    if let Some(db) = db {
        db.allow_connections(true).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// An account token from the development account service (`encore token mint --scope
/// account`, the real CLI).
fn account_token(ws: &Workspace, user: &str) -> String {
    let out = ws.encore(&["token", "mint", "--scope", "account", "--sub", user]);
    assert!(out.status.success(), "{}", util::text(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

async fn post(c: &reqwest::Client, url: String, token: &str, body: Value) -> reqwest::Response {
    c.post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST")
}

async fn buy(
    c: &reqwest::Client,
    s: &TestServer,
    store: &str,
    order: &str,
    user: &str,
    album: &str,
) -> (StatusCode, String) {
    let body = json!({"order_id": order, "user": user, "album": album, "price": 1500,
        "currency": "CNY"});
    let r = post(c, format!("{}/v1/purchases", s.url), store, body).await;
    let status = r.status();
    (status, r.text().await.expect("body"))
}

/// Exchanges an account token; returns the response JSON.
async fn exchange(
    c: &reqwest::Client,
    s: &TestServer,
    account: &str,
    body: Option<Value>,
) -> Value {
    let mut req = c
        .post(format!("{}/v1/play-tokens", s.url))
        .bearer_auth(account);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("exchange");
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.expect("json")
}

async fn problem(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.expect("problem json"))
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims json")
}

async fn fetch(
    ws: &Workspace,
    url: &str,
    token: &str,
    album: &str,
    rendition: &str,
) -> std::process::Output {
    let out = ws.path().join(format!("{rendition}.m4a"));
    tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .args([
            "fetch", "--server", url, "--token", token, "--album", album, "--track", "1",
        ])
        .args(["--rendition", rendition, "--out"])
        .arg(&out)
        .current_dir(ws.path())
        .output()
        .await
        .expect("run encore fetch")
}

/// Status and problem type of track 1's first media segment in `rendition` for `token` (the
/// segment URL comes from the manifest, read with an edge token).
async fn first_segment_status(
    c: &reqwest::Client,
    s: &TestServer,
    ws: &Workspace,
    token: &str,
    album: &str,
    rendition: &str,
) -> (StatusCode, String) {
    let edge = util::token(ws, "edge-1", Scope::Edge, &[]);
    let m: Value = c
        .get(format!(
            "{}/v1/albums/{album}/tracks/1/{rendition}/manifest",
            s.url
        ))
        .bearer_auth(&edge)
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("manifest json");
    let url = format!(
        "{}{}",
        s.url,
        m["segments"][0]["url"].as_str().expect("url")
    );
    let r = c.get(url).bearer_auth(token).send().await.expect("segment");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let kind = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, kind)
}

async fn purchase_exchange_play_refund_on(db: Option<&PgDatabase>) {
    const ALBUM: &str = "bought";
    let ws = util::packaged_album(ALBUM, 1, 8.0);
    let s = server(&ws, db, Default::default()).await;
    let c = client();
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let account = account_token(&ws, "fan-1");

    // Before buying: the exchanged token names nothing; lossless is refused.
    let before = exchange(&c, &s, &account, None).await;
    assert_eq!(before["albums"], json!([]));
    let early = before["token"].as_str().expect("token").to_string();
    assert_eq!(
        first_segment_status(&c, &s, &ws, &early, ALBUM, "lossless").await,
        (
            StatusCode::FORBIDDEN,
            "urn:encore:problem:not-purchased".into()
        )
    );

    // Buy: 201 with buyer number 1, then the same request replays byte for byte (200).
    let (status, first) = buy(&c, &s, &store, "order-1", "fan-1", ALBUM).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let receipt: Value = serde_json::from_str(&first).expect("receipt");
    assert_eq!(receipt["buyer_number"], 1);
    assert_eq!(receipt["album"], ALBUM);
    let (status, again) = buy(&c, &s, &store, "order-1", "fan-1", ALBUM).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));

    // Exchange: the play token names the album, is short-lived, and plays in full.
    let grant = exchange(&c, &s, &account, None).await;
    assert_eq!(grant["albums"], json!([ALBUM]));
    assert_eq!(grant["albums_complete"], true);
    let play = grant["token"].as_str().expect("token").to_string();
    let cl = claims(&play);
    assert_eq!(cl["sub"], "fan-1");
    assert_eq!(cl["scope"], "play");
    assert_eq!(
        cl["exp"].as_u64().unwrap() - cl["iat"].as_u64().unwrap(),
        3600
    );
    // `expires_at` is unix seconds, as in a license: the token's `exp`.
    assert_eq!(grant["expires_at"], cl["exp"]);
    let run = fetch(&ws, &s.url, &play, ALBUM, "lossless").await;
    assert!(run.status.success(), "{}", util::text(&run));
    assert_eq!(
        util::decode_s32(&ws.path().join("lossless.m4a")),
        util::decode_s32(&ws.media().join(ALBUM).join("01.flac")),
        "purchased lossless must decode to the source"
    );
    // Scoped exchange: only albums the user owns are kept.
    let scoped = exchange(
        &c,
        &s,
        &account,
        Some(json!({"albums": ["other-album", ALBUM]})),
    )
    .await;
    assert_eq!(scoped["albums"], json!([ALBUM]));

    // Nameplate.
    let r = c
        .get(format!("{}/v1/users/fan-1/albums", s.url))
        .bearer_auth(&account)
        .send()
        .await
        .expect("library");
    assert_eq!(r.status(), StatusCode::OK);
    let lib: Value = r.json().await.expect("json");
    assert_eq!(lib["albums"][0]["buyer_number"], 1);
    assert_eq!(lib["albums"][0]["nameplate"], "No. 1 buyer of Test");

    // Refund: the token issued before it is refused at the very next segment (it was
    // verified and cached already), the preview still plays, and new tokens lack the album.
    let r = c
        .post(format!("{}/v1/purchases/order-1/refund", s.url))
        .bearer_auth(&store)
        .header("x-request-id", "refund-req-1")
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "refund-req-1");
    let refund_body = r.text().await.expect("body");
    assert_eq!(
        first_segment_status(&c, &s, &ws, &play, ALBUM, "lossless").await,
        (
            StatusCode::FORBIDDEN,
            "urn:encore:problem:purchase-refunded".into()
        )
    );
    assert_eq!(
        first_segment_status(&c, &s, &ws, &play, ALBUM, "preview")
            .await
            .0,
        StatusCode::OK
    );
    let run = fetch(&ws, &s.url, &play, ALBUM, "high").await;
    assert!(
        !run.status.success(),
        "a refunded album must not play: {}",
        util::text(&run)
    );
    // The license says why it holds the preview's key only: refunded, not never bought.
    let license = |token: String| {
        c.post(format!("{}/v1/licenses", s.url))
            .bearer_auth(token)
            .json(&json!({"album": ALBUM, "track": 1}))
            .send()
    };
    let refunded: Value = license(play.clone())
        .await
        .expect("license")
        .json()
        .await
        .expect("json");
    assert_eq!(refunded["preview_only"], "purchase-refunded");
    assert_eq!(refunded["keys"].as_array().map(Vec::len), Some(1));
    let never: Value = license(early.clone())
        .await
        .expect("license")
        .json()
        .await
        .expect("json");
    assert_eq!(never["preview_only"], "not-purchased");
    let after = exchange(&c, &s, &account, None).await;
    assert_eq!(after["albums"], json!([]));
    // Refund is idempotent.
    let r = c
        .post(format!("{}/v1/purchases/order-1/refund", s.url))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.expect("body"), refund_body);
    let r = c
        .post(format!("{}/v1/purchases/no-such-order/refund", s.url))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A restarted server rebuilds the revocation list from the ledger before serving.
    let restarted = server(&ws, db, Default::default()).await;
    assert_eq!(
        first_segment_status(&c, &restarted, &ws, &play, ALBUM, "lossless").await,
        (
            StatusCode::FORBIDDEN,
            "urn:encore:problem:purchase-refunded".into()
        )
    );

    // Buying again restores access, even for the old token.
    let (status, _) = buy(&c, &s, &store, "order-2", "fan-1", ALBUM).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        first_segment_status(&c, &s, &ws, &play, ALBUM, "lossless")
            .await
            .0,
        StatusCode::OK
    );
}

async fn idempotency_and_bad_bodies_on(db: Option<&PgDatabase>) {
    const ALBUM: &str = "idem";
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = server(&ws, db, Default::default()).await;
    let c = client();
    let store = util::token(&ws, "payments", Scope::Store, &[]);

    let (status, first) = buy(&c, &s, &store, "dup", "u1", ALBUM).await;
    assert_eq!(status, StatusCode::CREATED);
    // Same order id, different body: 409.
    let body =
        json!({"order_id": "dup", "user": "u1", "album": ALBUM, "price": 1, "currency": "CNY"});
    let (status, p) =
        problem(post(&c, format!("{}/v1/purchases", s.url), &store, body).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(p["type"], "urn:encore:problem:order-conflict");

    // 32 concurrent duplicates of a new order: one 201, 31 replays, all the same body.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (c, url, store) = (c.clone(), s.url.clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"order_id": "storm", "user": "u2", "album": ALBUM,
                "price": 1500, "currency": "CNY"});
            let r = post(&c, format!("{url}/v1/purchases"), &store, body).await;
            (r.status(), r.text().await.expect("body"))
        }));
    }
    let mut statuses = BTreeMap::new();
    let mut bodies = BTreeSet::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        *statuses.entry(status.as_u16()).or_insert(0) += 1;
        bodies.insert(body);
    }
    assert_eq!(statuses, BTreeMap::from([(200, 31), (201, 1)]));
    assert_eq!(bodies.len(), 1);
    assert_eq!(s.app.ledger.count_orders("storm").await.expect("count"), 1);
    assert_eq!(s.app.ledger.order_ids().await.expect("ids").len(), 2);
    assert!(first.contains("\"buyer_number\":1"));

    // Bad bodies: 400 naming the field; unknown album 404; too large 413.
    let good =
        json!({"order_id": "b1", "user": "u3", "album": ALBUM, "price": 1500, "currency": "CNY"});
    let cases: Vec<(&str, Value)> = vec![
        ("order_id", json!("has space")),
        ("order_id", json!("x".repeat(200))),
        ("user", json!("")),
        ("album", json!("Not A Slug")),
        ("price", json!(15.5)),
        ("price", json!(-3)),
        ("currency", json!("usd")),
        ("purchased_at", json!("next tuesday")),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        body[field] = value.clone();
        let (status, p) =
            problem(post(&c, format!("{}/v1/purchases", s.url), &store, body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field} = {value}");
        assert_eq!(p["type"], "urn:encore:problem:invalid-field");
        assert_eq!(p["field"], field, "{p}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("currency");
    let (status, p) =
        problem(post(&c, format!("{}/v1/purchases", s.url), &store, missing).await).await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("currency"))
    );
    let r = c
        .post(format!("{}/v1/purchases", s.url))
        .bearer_auth(&store)
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut unknown = good.clone();
    unknown["album"] = json!("no-such-album");
    let (status, _) =
        problem(post(&c, format!("{}/v1/purchases", s.url), &store, unknown).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut huge = good.clone();
    huge["order_id"] = json!("y".repeat(64 * 1024));
    let r = post(&c, format!("{}/v1/purchases", s.url), &store, huge).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Who may record purchases: the store only.
    let play = util::token(&ws, "u3", Scope::Play, &[ALBUM]);
    let (status, p) =
        problem(post(&c, format!("{}/v1/purchases", s.url), &play, good.clone()).await).await;
    assert_eq!(
        (status, p["type"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("urn:encore:problem:scope-not-allowed")
        )
    );
    let account = account_token(&ws, "u3");
    let (status, _) = problem(
        post(
            &c,
            format!("{}/v1/purchases", s.url),
            &account,
            good.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an account token is valid, but not for purchases"
    );
    let r = c
        .post(format!("{}/v1/purchases", s.url))
        .json(&good)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // And a play token cannot be exchanged: only account tokens can.
    let r = c
        .post(format!("{}/v1/play-tokens", s.url))
        .bearer_auth(&play)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.app.ledger.order_ids().await.expect("ids").len(),
        2,
        "no refused request wrote"
    );
}

async fn chart_and_buyer_numbers_under_concurrency_on(db: Option<&PgDatabase>) {
    // Two albums in one workspace.
    let ws = Workspace::new();
    for album in ["alpha", "beta"] {
        let dir = ws.album_dir(album);
        std::fs::write(
            dir.join("album.toml"),
            format!("title = \"{album} title\"\nartist = \"Tests\"\n"),
        )
        .expect("album.toml");
        util::make_fixture(&dir.join("01.flac"), 44_100, 2, 2.0, &["-c:a", "flac"]);
    }
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    // No refresh interval: every chart read after a purchase sees it (the interval has its
    // own test below).
    let mut raw = encore::config::RawConfig::default();
    raw.ledger.chart_refresh_ms = Some(0);
    let s = server(&ws, db, raw).await;
    let c = client();
    let store = util::token(&ws, "payments", Scope::Store, &[]);

    // 40 concurrent purchases: 25 of alpha (CNY), 15 of beta (10 CNY, 5 USD).
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (c, url, store) = (c.clone(), s.url.clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            let (album, currency) = match i {
                0..25 => ("alpha", "CNY"),
                25..35 => ("beta", "CNY"),
                _ => ("beta", "USD"),
            };
            let body = json!({"order_id": format!("o{i}"), "user": format!("user{i}"),
                "album": album, "price": 1000 + i, "currency": currency});
            let r = post(&c, format!("{url}/v1/purchases"), &store, body).await;
            assert_eq!(r.status(), StatusCode::CREATED);
            r.json::<Value>().await.expect("receipt")
        }));
    }
    // Charts read while the purchases land: each must be a consistent snapshot, and none
    // may be served stale once the purchases are acknowledged (checked below).
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (c, url) = (c.clone(), s.url.clone());
        readers.push(tokio::spawn(async move {
            for _ in 0..10 {
                let v: Value = c
                    .get(format!("{url}/v1/charts/albums?window=all"))
                    .send()
                    .await
                    .expect("chart")
                    .json()
                    .await
                    .expect("json");
                let total: i64 = v["albums"]
                    .as_array()
                    .expect("albums")
                    .iter()
                    .map(|e| e["units"].as_i64().unwrap_or(0))
                    .sum();
                assert!((0..=40).contains(&total), "{v}");
            }
        }));
    }
    let mut numbers: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in readers {
        r.await.expect("reader");
    }
    for t in tasks {
        let receipt = t.await.expect("task");
        numbers
            .entry(receipt["album"].as_str().expect("album").to_string())
            .or_default()
            .push(receipt["buyer_number"].as_i64().expect("number"));
    }
    for (album, mut n) in numbers {
        n.sort_unstable();
        let want: Vec<i64> = (1..=n.len() as i64).collect();
        assert_eq!(n, want, "{album}: buyer numbers must be 1..=N, each once");
    }

    let chart = |window: &'static str| {
        let (c, url) = (c.clone(), s.url.clone());
        async move {
            let r = c
                .get(format!("{url}/v1/charts/albums?window={window}"))
                .send()
                .await
                .expect("chart");
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.expect("json")
        }
    };
    let all = chart("all").await;
    assert_eq!(all["albums"][0]["album"], "alpha");
    assert_eq!(all["albums"][0]["rank"], 1);
    assert_eq!(all["albums"][0]["units"], 25);
    assert_eq!(all["albums"][0]["title"], "alpha title");
    assert_eq!(all["albums"][1]["units"], 15);
    let cny_beta: i64 = (25..35).map(|i| 1000 + i).sum();
    let usd_beta: i64 = (35..40).map(|i| 1000 + i).sum();
    assert_eq!(
        all["albums"][1]["revenue"],
        json!({"CNY": cny_beta, "USD": usd_beta})
    );

    // Refunds subtract at once (the cached chart is invalidated) and renumber nobody.
    for i in 0..12 {
        let r = c
            .post(format!("{}/v1/purchases/o{i}/refund", s.url))
            .bearer_auth(&store)
            .send()
            .await
            .expect("refund");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let all = chart("all").await;
    assert_eq!(all["albums"][0]["album"], "beta");
    assert_eq!(all["albums"][0]["units"], 15);
    assert_eq!(all["albums"][1]["units"], 13);

    // Windows: a purchase dated 10 days ago counts in 30d and all, not in 7d or 24h.
    let ten_days_ago = encore::ledger::time::format_rfc3339(util::now() as i64 - 10 * 86_400);
    let body = json!({"order_id": "old", "user": "user-old", "album": "alpha", "price": 900,
        "currency": "CNY", "purchased_at": ten_days_ago});
    assert_eq!(
        post(&c, format!("{}/v1/purchases", s.url), &store, body)
            .await
            .status(),
        StatusCode::CREATED
    );
    let units = |v: &Value, album: &str| {
        v["albums"]
            .as_array()
            .expect("albums")
            .iter()
            .find(|e| e["album"] == album)
            .map_or(0, |e| e["units"].as_i64().unwrap_or(0))
    };
    assert_eq!(units(&chart("24h").await, "alpha"), 13);
    assert_eq!(units(&chart("7d").await, "alpha"), 13);
    assert_eq!(units(&chart("30d").await, "alpha"), 14);
    assert_eq!(units(&chart("all").await, "alpha"), 14);
    let r = c
        .get(format!("{}/v1/charts/albums?window=1y", s.url))
        .send()
        .await
        .expect("chart");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Nameplates: the user's own account token or the store; nobody else.
    let user20 = account_token(&ws, "user20");
    let r = c
        .get(format!("{}/v1/users/user20/albums", s.url))
        .bearer_auth(&user20)
        .send()
        .await
        .expect("library");
    assert_eq!(r.status(), StatusCode::OK);
    let lib: Value = r.json().await.expect("json");
    let n = lib["albums"][0]["buyer_number"].as_i64().expect("number");
    assert!((1..=25).contains(&n));
    assert_eq!(
        lib["albums"][0]["nameplate"],
        format!("No. {n} buyer of alpha title")
    );
    let r = c
        .get(format!("{}/v1/users/user21/albums", s.url))
        .bearer_auth(&user20)
        .send()
        .await
        .expect("library");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .get(format!("{}/v1/users/user21/albums", s.url))
        .bearer_auth(&store)
        .send()
        .await
        .expect("library");
    assert_eq!(r.status(), StatusCode::OK);
    let forged = util::token(&ws, "user20", Scope::Account, &[]);
    let r = c
        .get(format!("{}/v1/users/user20/albums", s.url))
        .bearer_auth(&forged)
        .send()
        .await
        .expect("library");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "encore's key never vouches for an account token"
    );
    let play = util::token(&ws, "user20", Scope::Play, &[]);
    let r = c
        .get(format!("{}/v1/users/user20/albums", s.url))
        .bearer_auth(&play)
        .send()
        .await
        .expect("library");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A refunded buyer's library is empty.
    let user0 = account_token(&ws, "user0");
    let r = c
        .get(format!("{}/v1/users/user0/albums", s.url))
        .bearer_auth(&user0)
        .send()
        .await
        .expect("library");
    let lib: Value = r.json().await.expect("json");
    assert_eq!(lib["albums"], json!([]));
}

async fn chart_is_computed_at_most_once_per_interval_on(db: Option<&PgDatabase>) {
    let ws = util::packaged_album("alpha", 1, 2.0);
    let mut raw = encore::config::RawConfig::default();
    raw.ledger.chart_refresh_ms = Some(3_600_000);
    let s = server(&ws, db, raw).await;
    let c = client();
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let chart = |c: reqwest::Client, url: String| async move {
        let r = c
            .get(format!("{url}/v1/charts/albums?window=7d"))
            .send()
            .await
            .expect("chart");
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.expect("json")
    };
    let first = chart(c.clone(), s.url.clone()).await;
    assert_eq!(first["albums"], json!([]));
    // A launch: every purchase followed by readers, sequentially and then all at once.
    for i in 0..10 {
        let (status, body) = buy(&c, &s, &store, &format!("o{i}"), &format!("u{i}"), "alpha").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        chart(c.clone(), s.url.clone()).await;
    }
    let mut readers = Vec::new();
    for _ in 0..20 {
        readers.push(tokio::spawn(chart(c.clone(), s.url.clone())));
    }
    for r in readers {
        r.await.expect("reader");
    }
    assert_eq!(
        s.app.charts.computations(),
        1,
        "one computation per window and interval, whatever the purchases and readers"
    );
}

/// Nameplates are cached per user, but a purchase or a refund on this server shows on the
/// next reload, however often the page was read before.
async fn nameplates_show_a_purchase_and_a_refund_at_once_on(db: Option<&PgDatabase>) {
    let ws = util::packaged_album("alpha", 1, 2.0);
    let s = server(&ws, db, Default::default()).await;
    let c = client();
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let fan = account_token(&ws, "fan-7");
    let albums = |c: reqwest::Client| {
        let (url, fan) = (s.url.clone(), fan.clone());
        async move {
            let r = c
                .get(format!("{url}/v1/users/fan-7/albums"))
                .bearer_auth(&fan)
                .send()
                .await
                .expect("library");
            assert_eq!(r.status(), StatusCode::OK);
            let lib: Value = r.json().await.expect("json");
            lib["albums"]
                .as_array()
                .expect("albums")
                .iter()
                .map(|a| a["order_id"].as_str().expect("order").to_owned())
                .collect::<Vec<_>>()
        }
    };
    for _ in 0..5 {
        assert!(albums(c.clone()).await.is_empty());
    }
    let (status, body) = buy(&c, &s, &store, "np-1", "fan-7", "alpha").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(albums(c.clone()).await, ["np-1"]);
    assert_eq!(albums(c.clone()).await, ["np-1"]);
    let r = post(
        &c,
        format!("{}/v1/purchases/np-1/refund", s.url),
        &store,
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(albums(c.clone()).await.is_empty());
}
