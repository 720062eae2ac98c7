//! Issue 23 over real HTTP: launches (`on_sale_at`, with the clock passed in), copies, gifts
//! and fan clubs. Each on the SQLite ledger and again on PostgreSQL (a database of its own:
//! run under `pg_virtualenv -v 15`), as `tests/purchases.rs` does.

use std::sync::Arc;

use encore::clock::ManualClock;
use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pg::PgDatabase;
use crate::util::{self, TestServer, Workspace};

/// A fixed launch moment: 2030-01-01T00:00:00Z.
const LAUNCH: u64 = 1_893_456_000;

/// A workspace with `albums` (id, extra album.toml lines), one 2-second track each, ingested.
fn workspace(albums: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::new();
    for (album, extra) in albums {
        let dir = ws.album_dir(album);
        let artist = if extra.contains("artist =") {
            ""
        } else {
            "artist = \"The Lantern Choir\"\n"
        };
        std::fs::write(
            dir.join("album.toml"),
            format!(
                "title = \"T {album}\"\n{artist}preview_seconds = 1\n\
                 price = 1500\ncurrency = \"CNY\"\n{extra}\n"
            ),
        )
        .expect("album.toml");
        util::make_fixture(&dir.join("01.flac"), 44_100, 2, 2.0, &["-c:a", "flac"]);
    }
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    ws
}

/// An in-process server reading `clock`, its ledger in `db` if given (else SQLite).
async fn server(ws: &Workspace, db: Option<&PgDatabase>, clock: Arc<ManualClock>) -> TestServer {
    let mut raw = encore::config::RawConfig::default();
    // Every chart read sees the purchases before it (the single flight stays).
    raw.ledger.chart_refresh_ms = Some(0);
    if let Some(db) = db {
        raw.ledger.url = Some(db.url.clone());
    }
    let limits = encore::http::Limits {
        shutdown_grace: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    TestServer::start_with_clock(ws, limits, raw, Some(clock)).await
}

/// Declares `$name` (SQLite) and `$on_postgres` (a fresh PostgreSQL database), both running
/// `$body(Option<&PgDatabase>)`.
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
    a_launch_opens_at_its_second, a_launch_opens_at_its_second_on_postgres
        => a_launch_opens_at_its_second_on;
    copies_and_gifts_and_their_refunds, copies_and_gifts_and_their_refunds_on_postgres
        => copies_and_gifts_and_their_refunds_on;
    clubs_count_copies_bought_while_members, clubs_count_copies_bought_while_members_on_postgres
        => clubs_count_copies_bought_while_members_on;
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(s: &TestServer) -> Client {
        Client {
            http: reqwest::Client::new(),
            url: s.url.clone(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("GET");
        let status = r.status();
        (status, r.json().await.expect("json"))
    }

    async fn post(&self, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("POST");
        let status = r.status();
        (status, r.json().await.expect("json"))
    }
}

/// A purchase body at 1500 CNY per copy with `extra` fields merged in.
fn order(order: &str, user: &str, album: &str, extra: Value) -> Value {
    let mut body = json!({"order_id": order, "user": user, "album": album, "price": 1500,
        "currency": "CNY"});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    body
}

/// The chart's albums as (album, units).
async fn chart(c: &Client, window: &str) -> Vec<(String, i64)> {
    let (status, v) = c
        .get(&format!("/v1/charts/albums?window={window}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["albums"]
        .as_array()
        .expect("albums")
        .iter()
        .map(|e| {
            (
                e["album"].as_str().expect("album").to_owned(),
                e["units"].as_i64().expect("units"),
            )
        })
        .collect()
}

/// One second before `on_sale_at` the album is in the catalog with its time and artist id,
/// a purchase is 409 `not-on-sale` naming the time, and the chart does not list it; at the
/// second itself the same purchase is 201 and the chart lists it.
async fn a_launch_opens_at_its_second_on(db: Option<&PgDatabase>) {
    let ws = workspace(&[
        ("launch", "on_sale_at = \"2030-01-01T08:00:00+08:00\""),
        ("open", ""),
    ]);
    let clock = ManualClock::new(LAUNCH - 1);
    let s = server(&ws, db, clock.clone()).await;
    let c = Client::new(&s);
    let store = util::token(&ws, "payments", Scope::Store, &[]);

    let (status, album) = c.get("/v1/albums/launch", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(album["on_sale_at"], "2030-01-01T00:00:00Z");
    assert_eq!(album["artist_id"], "the-lantern-choir");
    let (_, list) = c.get("/v1/albums", None).await;
    let open = list["albums"]
        .as_array()
        .expect("albums")
        .iter()
        .find(|a| a["id"] == "open")
        .expect("open listed");
    assert_eq!(open["on_sale_at"], Value::Null);

    let (status, problem) = c
        .post(
            "/v1/purchases",
            &store,
            Some(order("o1", "fan", "launch", json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:encore:problem:not-on-sale");
    assert_eq!(problem["on_sale_at"], "2030-01-01T00:00:00Z");
    // The demo store obeys the launch too (it needs no token).
    let dev = |body: Value| {
        let (http, url) = (c.http.clone(), c.url.clone());
        async move {
            let r = http
                .post(format!("{url}/v1/dev/purchases"))
                .json(&body)
                .send()
                .await
                .expect("dev purchase");
            let status = r.status();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (status, problem) = dev(json!({"user": "demo", "album": "launch"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:encore:problem:not-on-sale");
    let (status, _) = c
        .post(
            "/v1/purchases",
            &store,
            Some(order("o2", "fan", "open", json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(chart(&c, "all").await, vec![("open".to_owned(), 1)]);

    clock.set(LAUNCH);
    let (status, receipt) = c
        .post(
            "/v1/purchases",
            &store,
            Some(order("o1", "fan", "launch", json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["buyer_number"], 1);
    assert_eq!(receipt["purchased_at"], "2030-01-01T00:00:00Z");
    let (status, gift) = dev(json!({"user": "demo", "album": "launch", "quantity": 2,
        "gift_to": "friend", "gift_from_visible": true}))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{gift}");
    assert_eq!(gift["order_id"], "dev:demo:launch:gift:friend");
    assert_eq!(
        (gift["quantity"].clone(), gift["gift_to"].clone()),
        (json!(2), json!("friend"))
    );
    let listed = chart(&c, "24h").await;
    assert!(listed.contains(&("launch".to_owned(), 3)), "{listed:?}");
    // Movement: "open" sold in the hour before the launch's, so it had a rank then; the
    // launch did not exist on that chart. An hour on, both have one.
    let previous = |v: &Value, album: &str| {
        v["albums"]
            .as_array()
            .expect("albums")
            .iter()
            .find(|e| e["album"] == album)
            .map(|e| (e["previous_rank"].clone(), e["buyers"].clone()))
    };
    let (_, v) = c.get("/v1/charts/albums?window=24h", None).await;
    assert_eq!(previous(&v, "launch"), Some((Value::Null, json!(2))));
    assert_eq!(previous(&v, "open"), Some((json!(1), json!(1))));
    clock.advance(3600);
    // A chart is kept up to 10 s without sales; the manual clock moved an hour in none.
    s.app.charts.invalidate();
    let (_, v) = c.get("/v1/charts/albums?window=24h", None).await;
    assert_eq!(previous(&v, "launch").map(|p| p.0), Some(json!(1)));
    assert_eq!(previous(&v, "open").map(|p| p.0), Some(json!(2)));
}

/// An account token from the development account service (the real CLI).
fn account(ws: &Workspace, user: &str) -> String {
    let out = ws.encore(&["token", "mint", "--scope", "account", "--sub", user]);
    assert!(out.status.success(), "{}", util::text(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// The user's play token from the exchange, and the albums it names.
async fn play_token(c: &Client, account: &str) -> (String, Value) {
    let (status, grant) = c.post("/v1/play-tokens", account, None).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    (
        grant["token"].as_str().expect("token").to_owned(),
        grant["albums"].clone(),
    )
}

/// Why a license for track 1 of `album` holds the preview key only (Null: the full keys).
async fn preview_only(c: &Client, play: &str, album: &str) -> Value {
    let (status, license) = c
        .post(
            "/v1/licenses",
            play,
            Some(json!({"album": album, "track": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{license}");
    license["preview_only"].clone()
}

/// The chart line of `album` in the all-time window: (units, buyers), None when not listed.
async fn chart_line(c: &Client, album: &str) -> Option<(i64, i64)> {
    let (_, v) = c.get("/v1/charts/albums?window=all", None).await;
    v["albums"]
        .as_array()
        .expect("albums")
        .iter()
        .find(|e| e["album"] == album)
        .map(|e| {
            (
                e["units"].as_i64().expect("units"),
                e["buyers"].as_i64().expect("buyers"),
            )
        })
}

/// A multi-copy order counts its copies (chart, receipt, nameplate) and its refund takes them
/// all back; a gift belongs to its recipient (play token, license, nameplate naming the buyer
/// only when allowed), counts as a sale, is listed on both sides, is refused to a stranger's
/// decline, and its refund or decline takes it from the recipient at once; the decline window
/// closes on the clock.
async fn copies_and_gifts_and_their_refunds_on(db: Option<&PgDatabase>) {
    const ALBUM: &str = "first-light";
    let ws = workspace(&[(ALBUM, "")]);
    let start = util::now();
    let clock = ManualClock::new(start);
    let s = server(&ws, db, clock.clone()).await;
    let c = Client::new(&s);
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let (fan_a, fan_b, fan_c) = (
        account(&ws, "fan-a"),
        account(&ws, "fan-b"),
        account(&ws, "fan-c"),
    );

    // Twelve copies: one order, one buyer number, twelve units; replayed byte for byte, and
    // the same order id with another quantity is a conflict.
    let twelve = order("c1", "fan-a", ALBUM, json!({"quantity": 12}));
    let (status, receipt) = c.post("/v1/purchases", &store, Some(twelve.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(
        (receipt["quantity"].clone(), receipt["gift_to"].clone()),
        (json!(12), Value::Null)
    );
    let (status, again) = c.post("/v1/purchases", &store, Some(twelve)).await;
    assert_eq!((status, &again), (StatusCode::OK, &receipt));
    let (status, conflict) = c
        .post(
            "/v1/purchases",
            &store,
            Some(order("c1", "fan-a", ALBUM, json!({"quantity": 3}))),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    for bad in [
        json!({"quantity": 0}),
        json!({"quantity": 100}),
        json!({"gift_to": "fan-a"}),
    ] {
        let (status, p) = c
            .post(
                "/v1/purchases",
                &store,
                Some(order("x", "fan-a", ALBUM, bad)),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
        assert_eq!(p["type"], "urn:encore:problem:invalid-field");
    }
    assert_eq!(chart_line(&c, ALBUM).await, Some((12, 1)));
    let (_, plates) = c.get("/v1/users/fan-a/albums", Some(&fan_a)).await;
    assert_eq!(plates["albums"][0]["copies"], 12);
    assert_eq!(
        plates["albums"][0]["nameplate"],
        "No. 1 buyer of T first-light · 12 copies"
    );

    // A visible gift of two copies to fan-b: fan-b owns it, the chart counts it for fan-a.
    let (status, gift) = c
        .post(
            "/v1/purchases",
            &store,
            Some(order(
                "g1",
                "fan-a",
                ALBUM,
                json!({"quantity": 2, "gift_to": "fan-b", "gift_from_visible": true}),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gift}");
    assert_eq!(
        (gift["gift_to"].clone(), gift["buyer_number"].clone()),
        (json!("fan-b"), json!(2))
    );
    assert_eq!(chart_line(&c, ALBUM).await, Some((14, 1)));
    let (play_b, albums) = play_token(&c, &fan_b).await;
    assert_eq!(albums, json!([ALBUM]));
    assert_eq!(preview_only(&c, &play_b, ALBUM).await, Value::Null);
    let (_, plates) = c.get("/v1/users/fan-b/albums", Some(&fan_b)).await;
    assert_eq!(plates["albums"][0]["gift_from"], "fan-a");
    assert_eq!(plates["albums"][0]["copies"], 2);
    let (_, received) = c.get("/v1/users/fan-b/gifts", Some(&fan_b)).await;
    assert_eq!(received["received"][0]["order_id"], "g1");
    assert_eq!(received["received"][0]["from"], "fan-a");
    let (_, sent) = c.get("/v1/users/fan-a/gifts", Some(&fan_a)).await;
    assert_eq!(sent["sent"][0]["to"], "fan-b");
    let (status, _) = c.get("/v1/users/fan-b/gifts", Some(&fan_a)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = c.post("/v1/gifts/g1/decline", &fan_c, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(p["type"], "urn:encore:problem:not-your-gift");

    // The store refunds the gift: fan-b's play token stops opening it at once.
    let (status, refunded) = c.post("/v1/purchases/g1/refund", &store, None).await;
    assert_eq!(status, StatusCode::OK, "{refunded}");
    assert_eq!(refunded["gift_to"], "fan-b");
    assert_eq!(preview_only(&c, &play_b, ALBUM).await, "purchase-refunded");
    assert_eq!(play_token(&c, &fan_b).await.1, json!([]));
    assert_eq!(chart_line(&c, ALBUM).await, Some((12, 1)));

    // A hidden gift: the nameplate does not name the buyer; declined within the window.
    let (status, _) = c
        .post(
            "/v1/purchases",
            &store,
            Some(order("g2", "fan-c", ALBUM, json!({"gift_to": "fan-b"}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, plates) = c.get("/v1/users/fan-b/albums", Some(&fan_b)).await;
    assert_eq!(plates["albums"][0]["gift_from"], Value::Null);
    assert_eq!(
        plates["albums"][0]["nameplate"],
        "No. 3 buyer of T first-light"
    );
    let (_, received) = c.get("/v1/users/fan-b/gifts", Some(&fan_b)).await;
    let g2 = received["received"]
        .as_array()
        .expect("received")
        .iter()
        .find(|g| g["order_id"] == "g2")
        .expect("g2 listed");
    assert_eq!(g2["from"], Value::Null);
    let (play_b, _) = play_token(&c, &fan_b).await;
    clock.advance(7 * 86_400);
    let (status, declined) = c.post("/v1/gifts/g2/decline", &fan_b, None).await;
    assert_eq!(status, StatusCode::OK, "{declined}");
    assert_eq!(preview_only(&c, &play_b, ALBUM).await, "purchase-refunded");
    assert_eq!(chart_line(&c, ALBUM).await, Some((12, 1)));

    // One second past the window: the decline is refused and the gift stays.
    let (status, _) = c
        .post(
            "/v1/purchases",
            &store,
            Some(order("g3", "fan-c", ALBUM, json!({"gift_to": "fan-b"}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    clock.advance(7 * 86_400 + 1);
    let (status, p) = c.post("/v1/gifts/g3/decline", &fan_b, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["type"], "urn:encore:problem:decline-window-closed");
    assert_eq!(play_token(&c, &fan_b).await.1, json!([ALBUM]));

    // Refunding the twelve-copy order takes every copy back.
    let (status, _) = c.post("/v1/purchases/c1/refund", &store, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chart_line(&c, ALBUM).await, Some((1, 1)));
    let (_, plates) = c.get("/v1/users/fan-a/albums", Some(&fan_a)).await;
    assert_eq!(plates["albums"], json!([]));
}

/// The club chart of one artist per window.
async fn club_chart(c: &Client, window: &str) -> Vec<(String, i64, i64)> {
    let (status, v) = c
        .get(
            &format!("/v1/charts/clubs?artist_id=the-lantern-choir&window={window}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["artist_id"], "the-lantern-choir");
    v["clubs"]
        .as_array()
        .expect("clubs")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["members"].as_i64().expect("members"),
                e["units"].as_i64().expect("units"),
            )
        })
        .collect()
}

/// Clubs: names validated and unique per artist (without case), one club per artist per
/// user (joining another leaves the first), and the chart counts the copies of the artist's
/// albums (not another artist's) that members bought while members, per window.
async fn clubs_count_copies_bought_while_members_on(db: Option<&PgDatabase>) {
    // b1 is another artist's album.
    let ws = workspace(&[("a1", ""), ("a2", ""), ("b1", "artist = \"Other Band\"")]);
    let start = util::now();
    let clock = ManualClock::new(start);
    let s = server(&ws, db, clock.clone()).await;
    let c = Client::new(&s);
    let (_, b1) = c.get("/v1/albums/b1", None).await;
    assert_eq!(b1["artist_id"], "other-band");
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let (fan_a, fan_b, fan_c) = (
        account(&ws, "fan-a"),
        account(&ws, "fan-b"),
        account(&ws, "fan-c"),
    );
    let buy = |n: &str, user: &str, album: &str, q: i64| {
        let body = order(n, user, album, json!({"quantity": q}));
        let (c, store) = (&c, &store);
        async move {
            let (status, r) = c.post("/v1/purchases", store, Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{r}");
        }
    };

    let club = |name: &str| json!({"artist_id": "the-lantern-choir", "name": name});
    let (status, lights) = c
        .post("/v1/clubs", &fan_a, Some(club("  Lantern Lights ")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lights}");
    assert_eq!(
        (lights["name"].clone(), lights["members"].clone()),
        (json!("Lantern Lights"), json!(1))
    );
    let lights = lights["id"].as_str().expect("id").to_owned();
    let (status, p) = c
        .post("/v1/clubs", &fan_b, Some(club("lantern LIGHTS")))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_eq!(p["type"], "urn:encore:problem:club-name-taken");
    let (status, p) = c.post("/v1/clubs", &fan_b, Some(club("<script>"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(
        (p["type"].clone(), p["field"].clone()),
        (json!("urn:encore:problem:invalid-field"), json!("name"))
    );
    let (status, corner) = c
        .post("/v1/clubs", &fan_b, Some(club("Choir Corner")))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let corner = corner["id"].as_str().expect("id").to_owned();
    let store_club = c.post("/v1/clubs", &store, Some(club("Store Club"))).await;
    assert_eq!(
        store_club.0,
        StatusCode::FORBIDDEN,
        "only an account token speaks for a fan"
    );

    // Bought before joining: counts for no club.
    buy("o1", "fan-c", "a1", 5).await;
    clock.advance(10);
    let (status, m) = c
        .post(&format!("/v1/clubs/{lights}/join"), &fan_c, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(
        (m["member"].clone(), m["members"].clone()),
        (json!(true), json!(2))
    );
    clock.advance(10);
    buy("o2", "fan-c", "a1", 3).await;
    buy("o3", "fan-c", "b1", 4).await;
    buy("o4", "fan-b", "a2", 2).await;
    assert_eq!(
        club_chart(&c, "7d").await,
        vec![
            ("Lantern Lights".to_owned(), 2, 3),
            ("Choir Corner".to_owned(), 1, 2)
        ]
    );

    // fan-c moves to Choir Corner (leaving Lantern Lights) and buys one more.
    clock.advance(10);
    let (status, m) = c
        .post(&format!("/v1/clubs/{corner}/join"), &fan_c, None)
        .await;
    assert_eq!((status, m["members"].clone()), (StatusCode::OK, json!(2)));
    clock.advance(10);
    buy("o5", "fan-c", "a1", 1).await;
    assert_eq!(
        club_chart(&c, "all").await,
        vec![
            ("Choir Corner".to_owned(), 2, 3),
            ("Lantern Lights".to_owned(), 1, 3)
        ]
    );
    let (_, plates) = c.get("/v1/users/fan-c/albums", Some(&fan_c)).await;
    let a1 = plates["albums"]
        .as_array()
        .expect("albums")
        .iter()
        .find(|e| e["album"] == "a1")
        .expect("a1");
    assert_eq!(a1["club"]["name"], "Choir Corner");
    let b1 = plates["albums"]
        .as_array()
        .expect("albums")
        .iter()
        .find(|e| e["album"] == "b1")
        .expect("b1");
    assert_eq!(b1["club"], Value::Null);

    // Two days on: the 24h window holds only the newest purchase; 7d and all hold every one.
    clock.advance(2 * 86_400);
    buy("o6", "fan-b", "a1", 1).await;
    assert_eq!(
        club_chart(&c, "24h").await,
        vec![
            ("Choir Corner".to_owned(), 2, 1),
            ("Lantern Lights".to_owned(), 1, 0)
        ]
    );
    assert_eq!(
        club_chart(&c, "7d").await,
        vec![
            ("Choir Corner".to_owned(), 2, 4),
            ("Lantern Lights".to_owned(), 1, 3)
        ]
    );
    // A refund takes its copies off the club's count.
    let (status, _) = c.post("/v1/purchases/o2/refund", &store, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        club_chart(&c, "all").await,
        vec![
            ("Choir Corner".to_owned(), 2, 4),
            ("Lantern Lights".to_owned(), 1, 0)
        ]
    );
    let (status, m) = c
        .post(&format!("/v1/clubs/{corner}/leave"), &fan_c, None)
        .await;
    assert_eq!(
        (status, m["member"].clone(), m["members"].clone()),
        (StatusCode::OK, json!(false), json!(1))
    );
    let (_, list) = c.get("/v1/clubs?artist_id=the-lantern-choir", None).await;
    assert_eq!(list["clubs"].as_array().map(Vec::len), Some(2));
    let (status, _) = c.post("/v1/clubs/club-nope/join", &fan_a, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
