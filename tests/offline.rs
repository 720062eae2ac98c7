//! Issue 24 item 3 over real HTTP and the real `encore` binary: devices (limit, removal),
//! offline licenses (issue, renewal, refused after a refund or a removed device), an album
//! downloaded with `encore fetch --offline` and opened with `--from-offline` once the server
//! is stopped (refused past the expiry, with the clock passed in, and with another device's
//! key), and the format's test vector opened by an independent Python implementation.
//! Each on the SQLite ledger and on PostgreSQL (run under `pg_virtualenv -v 15`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use encore::clock::ManualClock;
use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pg::PgDatabase;
use crate::util::{self, TestServer, Workspace};

const ALBUM: &str = "night-drive";
/// `[ledger] offline_license_seconds` left at its default: 30 days.
const TTL: u64 = 30 * 86_400;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    let dir = ws.album_dir(ALBUM);
    std::fs::write(
        dir.join("album.toml"),
        "title = \"Night Drive\"\nartist = \"The Lantern Choir\"\npreview_seconds = 1\n\
         price = 1500\ncurrency = \"CNY\"\n",
    )
    .expect("album.toml");
    for n in 1..=2 {
        util::make_fixture(
            &dir.join(format!("{n:02}.flac")),
            44_100,
            2,
            2.0,
            &["-c:a", "flac"],
        );
    }
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    ws
}

/// The real `encore` binary, run without blocking the runtime that serves it.
async fn encore(ws: &Workspace, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .args(args)
        .env("ENCORE_MEDIA", ws.media())
        .env("ENCORE_KEYS", ws.keys())
        .env("ENCORE_DATA", ws.data())
        .env_remove("ENCORE_CONFIG")
        .env_remove("ENCORE_TOKEN")
        .env_remove("ENCORE_SERVER")
        .current_dir(ws.path())
        .output()
        .await
        .expect("run encore")
}

async fn account_token(ws: &Workspace, user: &str) -> String {
    let out = encore(ws, &["token", "mint", "--scope", "account", "--sub", user]).await;
    assert!(out.status.success(), "{}", util::text(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

async fn send(
    req: reqwest::RequestBuilder,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = req.bearer_auth(token);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn problem(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:encore:problem:")
}

/// A device key made by `encore device-key new`: its file is the owner's only; returns the
/// public key it printed.
async fn device_key(ws: &Workspace, file: &Path) -> String {
    let out = encore(ws, &["device-key", "new", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", util::text(&out));
    let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a device key file is the owner's only");
    let again = encore(ws, &["device-key", "new", file.to_str().unwrap()]).await;
    assert!(
        !again.status.success(),
        "an existing key file is never overwritten"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn offline_fetch(
    ws: &Workspace,
    s: &TestServer,
    token: &str,
    dir: &Path,
    key: &Path,
    device: &str,
) -> Output {
    encore(
        ws,
        &[
            "fetch",
            "--server",
            &s.url,
            "--token",
            token,
            "--album",
            ALBUM,
            "--offline",
            dir.to_str().unwrap(),
            "--device-key",
            key.to_str().unwrap(),
            "--device-id",
            device,
            "--retries",
            "0",
        ],
    )
    .await
}

async fn from_offline(ws: &Workspace, dir: &Path, key: &Path, out: &Path, now: u64) -> Output {
    encore(
        ws,
        &[
            "fetch",
            "--from-offline",
            dir.to_str().unwrap(),
            "--device-key",
            key.to_str().unwrap(),
            "--track",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--now",
            &now.to_string(),
        ],
    )
    .await
}

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
    offline_copies_bound_to_devices, offline_copies_bound_to_devices_on_postgres
        => offline_copies_on;
}

async fn offline_copies_on(db: Option<&PgDatabase>) {
    let ws = workspace();
    let t0 = util::now();
    let clock = ManualClock::new(t0);
    let mut raw = encore::config::RawConfig::default();
    raw.ledger.max_devices = Some(2);
    if let Some(db) = db {
        raw.ledger.url = Some(db.url.clone());
    }
    let limits = encore::http::Limits {
        shutdown_grace: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let mut s = TestServer::start_with_clock(&ws, limits, raw, Some(clock)).await;
    let c = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", s.url);
    let account = account_token(&ws, "fan1").await;
    let store = util::token(&ws, "store", Scope::Store, &[]);
    let play = util::token(&ws, "fan1", Scope::Play, &[ALBUM]);

    // Devices: two places; the third is refused until one is removed.
    let keys = ws.path().join("device-keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (k1, k2, k3) = (keys.join("phone"), keys.join("tablet"), keys.join("laptop"));
    let mut ids = Vec::new();
    for (name, file) in [("phone", &k1), ("tablet", &k2)] {
        let pk = device_key(&ws, file).await;
        let (st, v) = send(
            c.post(url("/v1/devices")),
            &account,
            Some(json!({"name": name, "public_key": pk})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let pk3 = device_key(&ws, &k3).await;
    let third = json!({"name": "laptop", "public_key": pk3});
    let (st, v) = send(c.post(url("/v1/devices")), &account, Some(third.clone())).await;
    assert_eq!(
        (st, problem(&v)),
        (StatusCode::CONFLICT, "device-limit-reached"),
        "{v}"
    );
    let (st, v) = send(c.get(url("/v1/devices")), &account, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["devices"].as_array().unwrap().len(), 2, "{v}");
    // Devices are the account's: a play token is refused, another account sees none.
    let (st, _) = send(c.get(url("/v1/devices")), &play, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let other = account_token(&ws, "fan2").await;
    let (st, _) = send(
        c.delete(url(&format!("/v1/devices/{}", ids[0]))),
        &other,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Not bought: the online license's 403, even with a token that names the album.
    let ask = |device: &str| json!({"album": ALBUM, "device_id": device});
    let (st, v) = send(
        c.post(url("/v1/offline-licenses")),
        &play,
        Some(ask(&ids[0])),
    )
    .await;
    assert_eq!(
        (st, problem(&v)),
        (StatusCode::FORBIDDEN, "not-purchased"),
        "{v}"
    );
    let buy = json!({"order_id": "o1", "user": "fan1", "album": ALBUM, "price": 1500,
        "currency": "CNY"});
    let (st, v) = send(c.post(url("/v1/purchases")), &store, Some(buy)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let stranger = util::token(&ws, "fan2", Scope::Play, &[]);
    let (st, v) = send(
        c.post(url("/v1/offline-licenses")),
        &stranger,
        Some(ask(&ids[0])),
    )
    .await;
    assert_eq!(
        (st, problem(&v)),
        (StatusCode::FORBIDDEN, "not-purchased"),
        "{v}"
    );

    // The online fetch of track 1, to compare the offline copy with.
    let online = ws.path().join("online.m4a");
    let out = encore(
        &ws,
        &[
            "fetch",
            "--server",
            &s.url,
            "--token",
            &play,
            "--album",
            ALBUM,
            "--track",
            "1",
            "--out",
            online.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", util::text(&out));

    // Download for the phone; a second run renews the same license.
    let d1 = ws.path().join("offline-phone");
    let out = offline_fetch(&ws, &s, &play, &d1, &k1, &ids[0]).await;
    assert!(out.status.success(), "{}", util::text(&out));
    assert!(util::text(&out).contains("issued"), "{}", util::text(&out));
    let id_of = |dir: &Path| -> (String, u64) {
        let l: Value =
            serde_json::from_slice(&std::fs::read(dir.join("license.json")).unwrap()).unwrap();
        let p = base64_url(l["payload"].as_str().unwrap());
        let p: Value = serde_json::from_slice(&p).unwrap();
        (
            p["license_id"].as_str().unwrap().to_string(),
            p["expires_at"].as_u64().unwrap(),
        )
    };
    let (license, expires_at) = id_of(&d1);
    assert_eq!(expires_at, t0 + TTL);
    let out = offline_fetch(&ws, &s, &play, &d1, &k1, &ids[0]).await;
    assert!(util::text(&out).contains("renewed"), "{}", util::text(&out));
    assert_eq!(id_of(&d1).0, license, "a renewal keeps the license id");
    // A license id is bound to its device: renewing it for the tablet is refused.
    let renew_elsewhere = json!({"album": ALBUM, "device_id": ids[1], "license_id": license});
    let (st, _) = send(
        c.post(url("/v1/offline-licenses")),
        &play,
        Some(renew_elsewhere),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The tablet downloads, is removed, and its renewal is refused; its place is free again.
    let d2 = ws.path().join("offline-tablet");
    let out = offline_fetch(&ws, &s, &play, &d2, &k2, &ids[1]).await;
    assert!(out.status.success(), "{}", util::text(&out));
    let (st, _) = send(
        c.delete(url(&format!("/v1/devices/{}", ids[1]))),
        &account,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let out = offline_fetch(&ws, &s, &play, &d2, &k2, &ids[1]).await;
    assert!(!out.status.success());
    assert!(
        util::text(&out).contains("device-removed"),
        "{}",
        util::text(&out)
    );
    let (st, v) = send(c.post(url("/v1/devices")), &account, Some(third)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // A refund: the phone's renewal is refused as the online license is.
    let (st, v) = send(c.post(url("/v1/purchases/o1/refund")), &store, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let out = offline_fetch(&ws, &s, &play, &d1, &k1, &ids[0]).await;
    assert!(!out.status.success());
    assert!(
        util::text(&out).contains("purchase-refunded"),
        "{}",
        util::text(&out)
    );

    // The server stops; the phone's copy still plays until its expiry (the documented
    // bound), and it is the audio the online fetch wrote.
    s.begin_shutdown();
    let _ = s.handle.await;
    let played = ws.path().join("offline.m4a");
    let out = from_offline(&ws, &d1, &k1, &played, expires_at - 1).await;
    assert!(out.status.success(), "{}", util::text(&out));
    assert_eq!(
        std::fs::read(&played).unwrap(),
        std::fs::read(&online).unwrap()
    );
    std::fs::remove_file(&played).unwrap();
    let out = from_offline(&ws, &d1, &k1, &played, expires_at).await;
    assert!(!out.status.success());
    assert!(util::text(&out).contains("expired"), "{}", util::text(&out));
    let out = from_offline(&ws, &d1, &k2, &played, t0).await;
    assert!(!out.status.success());
    assert!(
        util::text(&out).contains("does not open"),
        "{}",
        util::text(&out)
    );
    assert!(
        !played.exists(),
        "nothing is written when the license does not open"
    );
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

/// The test vector of docs/OFFLINE.md, opened by an independent implementation (Python,
/// pyhpke and cryptography). Fails, never skips, when Python or the package is missing.
#[test]
fn python_opens_the_test_vector() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("python3")
        .arg(Path::new(root).join("tests/offline_vector.py"))
        .arg(Path::new(root).join("tests/offline_vector.json"))
        .output()
        .expect("python3 is needed for this test: install it (Debian: apt-get install python3)");
    assert!(
        out.status.success(),
        "the Python opener failed (install its package with `pip install pyhpke==0.6.5`): {}",
        util::text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
}
