//! Key rotation while fans listen: a real `encore serve` process, several clients running
//! `encore fetch` and raw segment requests in a loop, while staff rotate the signing key
//! (`encore keys`), the KEK (`encore keys`) and one album's content keys (admin API), then
//! revoke the superseded signing key. Also the JWKS timeline, and SIGKILL at every step of
//! `rotate kek` and `rotate content` followed by a restart and a re-run.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::Value;

use crate::util::{self, ServeProcess, Workspace};

/// Short lifetimes so the whole timeline fits in a test: tokens live at most 8 s, a new
/// signing key signs 2 s after it is published, maintenance runs every second.
const CONFIG: &str = "\
[keys]
signing_propagation_seconds = 2
max_token_seconds = 8
token_leeway_seconds = 1
maintenance_interval_seconds = 1

[ledger]
max_play_token_seconds = 8
play_token_seconds = 8
";

fn write_config(ws: &Workspace) -> String {
    let path = ws.path().join("rotation.toml");
    std::fs::write(&path, CONFIG).expect("config");
    path.display().to_string()
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let bytes = base64_url(header);
    let v: Value = serde_json::from_slice(&bytes).expect("header json");
    v["kid"].as_str().expect("kid").to_owned()
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

async fn jwks_kids(c: &reqwest::Client, url: &str) -> BTreeSet<String> {
    let v: Value = c
        .get(format!("{url}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn status(c: &reqwest::Client, url: &str, token: &str) -> StatusCode {
    c.get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

/// Polls until `check` holds (every 100 ms, up to `secs`).
async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A fan's player: fetches whole tracks with `encore fetch` and checks they decode; a CDN-ish
/// puller: fetches manifests and every segment. Counts every failure.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    fetched: Arc<AtomicUsize>,
    segments: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(ws: &Workspace, url: &str, album: &str, tracks: u32, source: Vec<Vec<i32>>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let fetched = Arc::new(AtomicUsize::new(0));
        let segments = Arc::new(AtomicUsize::new(0));
        let source = Arc::new(source);
        let mut tasks = Vec::new();
        let keys = ws.keys();
        for client in 0..2u32 {
            let (stop, failures, fetched) = (stop.clone(), failures.clone(), fetched.clone());
            let (url, album, keys, source) = (
                url.to_owned(),
                album.to_owned(),
                keys.clone(),
                source.clone(),
            );
            let out_dir = ws.path().join(format!("fetch-{client}"));
            std::fs::create_dir_all(&out_dir).expect("out dir");
            tasks.push(tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let track = 1 + (n + client) % tracks;
                    n += 1;
                    // A fresh token each time, signed with whatever key signs now.
                    let token = mint(&keys, &album);
                    let out = out_dir.join(format!("t{n}.m4a"));
                    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
                        .args([
                            "fetch", "--server", &url, "--token", &token, "--album", &album,
                        ])
                        .args(["--track", &track.to_string(), "--rendition", "lossless"])
                        .arg("--out")
                        .arg(&out)
                        .output()
                        .await
                        .expect("run encore fetch");
                    if !run.status.success() {
                        failures.lock().expect("failures").push(format!(
                            "fetch of track {track} failed: {}",
                            String::from_utf8_lossy(&run.stderr)
                        ));
                        continue;
                    }
                    let decoded = tokio::task::spawn_blocking({
                        let out = out.clone();
                        move || util::decode_s32(&out)
                    })
                    .await
                    .expect("decode");
                    if decoded != source[(track - 1) as usize] {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("track {track} did not decode to the source PCM"));
                    }
                    let _ = std::fs::remove_file(&out);
                    fetched.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for rendition in ["high", "preview"] {
            let (stop, failures, segments) = (stop.clone(), failures.clone(), segments.clone());
            let (url, album, keys) = (url.to_owned(), album.to_owned(), keys.clone());
            tasks.push(tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let track = 1 + n % tracks;
                    n += 1;
                    let token = mint(&keys, &album);
                    let sent = c
                        .get(format!(
                            "{url}/v1/albums/{album}/tracks/{track}/{rendition}/manifest"
                        ))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    let m = match sent {
                        Ok(m) => m,
                        Err(e) => {
                            failures
                                .lock()
                                .expect("failures")
                                .push(format!("manifest: {e}"));
                            continue;
                        }
                    };
                    if m.status() != StatusCode::OK {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("manifest: {}", m.status()));
                        continue;
                    }
                    let m: Value = m.json().await.expect("manifest json");
                    let mut urls = vec![m["init"]["url"].as_str().expect("init").to_owned()];
                    for s in m["segments"].as_array().expect("segments") {
                        urls.push(s["url"].as_str().expect("url").to_owned());
                    }
                    for u in urls {
                        // A player may take its time between segments: the old generation
                        // must still be there.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let sent = c.get(format!("{url}{u}")).bearer_auth(&token).send().await;
                        match sent.map(|r| r.status()) {
                            Ok(StatusCode::OK) => {
                                segments.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(st) => failures
                                .lock()
                                .expect("failures")
                                .push(format!("segment {u}: {st}")),
                            Err(e) => failures
                                .lock()
                                .expect("failures")
                                .push(format!("segment {u}: {e}")),
                        }
                    }
                }
            }));
        }
        Load {
            stop,
            failures,
            fetched,
            segments,
            tasks,
        }
    }

    async fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
        let failures = self.failures.lock().expect("failures").clone();
        (
            self.fetched.load(Ordering::Relaxed),
            self.segments.load(Ordering::Relaxed),
            failures,
        )
    }
}

/// A buyer's play token signed with the key that signs now (read from the keys folder, as a
/// store backend sharing it would).
fn mint(keys: &std::path::Path, album: &str) -> String {
    let keyring = encore::keys::Keyring::open(keys).expect("keyring");
    let key = keyring.signing_key().expect("signing key");
    let mut req = encore::license::MintRequest::new("fan", Scope::Play);
    req.albums = vec![album.to_owned()];
    req.ttl_seconds = 8;
    encore::license::mint(&key, &req, util::now()).expect("mint")
}

fn keys_cli(ws: &Workspace, config: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config]);
    ws.encore(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_every_key_under_load_fails_no_request() {
    let album = "rotate-live";
    let ws = util::packaged_album(album, 2, 3.0);
    let config = write_config(&ws);
    let source: Vec<Vec<i32>> = (1..=2)
        .map(|n| util::decode_s32(&ws.media().join(album).join(format!("{n:02}.flac"))))
        .collect();
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = ServeProcess::start(&ws, &["--config", &config], log.clone()).await;
    let url = server.url.clone();
    let c = reqwest::Client::new();
    let k1 = ws.keyring().active_signing_kid().to_string();
    assert_eq!(jwks_kids(&c, &url).await, BTreeSet::from([k1.clone()]));

    // A token signed with the first key, before any rotation.
    let old_token = mint(&ws.keys(), album);
    assert_eq!(kid_of(&old_token), k1);
    let manifest_url = format!("{url}/v1/albums/{album}/tracks/1/lossless/manifest");
    let before: Value = c
        .get(&manifest_url)
        .bearer_auth(&old_token)
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("json");
    let old_segment = format!(
        "{url}{}",
        before["segments"][0]["url"].as_str().expect("url")
    );

    let load = Load::start(&ws, &url, album, 2, source);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. Signing key: published first, signing only after the propagation delay.
    let out = keys_cli(&ws, &config, &["rotate", "signing", "--json"]);
    assert!(out.status.success(), "{}", util::text(&out));
    let rot: Value = serde_json::from_slice(&out.stdout).expect("rotation json");
    let k2 = rot["kid"].as_str().expect("kid").to_owned();
    eventually("the new key in the JWKS", 10, || {
        let (c, url, k1, k2) = (c.clone(), url.clone(), k1.clone(), k2.clone());
        async move { jwks_kids(&c, &url).await == BTreeSet::from([k1, k2]) }
    })
    .await;
    let activates = rot["activates_unix"].as_u64().expect("activates");
    if util::now() < activates {
        assert_eq!(
            kid_of(&mint(&ws.keys(), album)),
            k1,
            "signs only after the delay"
        );
    }
    eventually("the new key signing", 10, || {
        let (keys, k2) = (ws.keys(), k2.clone());
        async move { kid_of(&mint(&keys, album)) == k2 }
    })
    .await;
    // Tokens the old key signed still verify until they expire.
    assert_eq!(status(&c, &manifest_url, &old_token).await, StatusCode::OK);

    // 2. KEK.
    let out = keys_cli(&ws, &config, &["rotate", "kek", "--json"]);
    assert!(out.status.success(), "{}", util::text(&out));
    let kek: Value = serde_json::from_slice(&out.stdout).expect("kek json");
    assert!(kek["rewrapped"].as_u64().expect("rewrapped") >= 8, "{kek}");

    // 3. Content keys of the album, over the admin API, re-sealed in the background.
    let admin = mint_admin(&ws);
    let r = c
        .post(format!("{url}/v1/admin/keys/content/rotate"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "album": album }))
        .send()
        .await
        .expect("rotate content");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_url = format!(
        "{url}{}",
        r.headers()["location"].to_str().expect("location")
    );
    let mut job = Value::Null;
    for _ in 0..300 {
        job = c
            .get(&job_url)
            .bearer_auth(mint_admin(&ws))
            .send()
            .await
            .expect("job")
            .json()
            .await
            .expect("job json");
        if job["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    let after: Value = c
        .get(&manifest_url)
        .bearer_auth(mint(&ws.keys(), album))
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("json");
    assert_ne!(after["key_id"], before["key_id"], "new content key");
    assert_ne!(
        after["segments"][0]["url"], before["segments"][0]["url"],
        "new segment URLs"
    );
    // The old generation keeps serving players that listed it.
    assert_eq!(
        status(&c, &old_segment, &mint(&ws.keys(), album)).await,
        StatusCode::OK
    );

    // 4. Revoke the superseded key: its tokens fail at once, nobody else's do, also on a
    // keep-alive connection whose memo of its last token holds one of them (the body is read
    // so the connection goes back to the pool and the next request reuses it).
    let player = reqwest::Client::new();
    let r = player
        .get(&old_segment)
        .bearer_auth(&old_token)
        .send()
        .await
        .expect("segment");
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.expect("segment body");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = c
        .post(format!("{url}/v1/admin/keys/signing/{k1}/revoke"))
        .bearer_auth(mint_admin(&ws))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    assert_eq!(
        status(&c, &manifest_url, &old_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&player, &old_segment, &old_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(jwks_kids(&c, &url).await, BTreeSet::from([k2.clone()]));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (fetched, segments, failures) = load.finish().await;
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert!(
        fetched >= 4 && segments >= 20,
        "too little traffic: {fetched} fetches, {segments} segments"
    );

    // 5. Once every license issued before the switch has expired, the old generation and
    // key are deleted and the old URLs are gone.
    let old_dir_gone = || {
        let store = ws.store();
        let before = before.clone();
        async move {
            let generation = before["segments"][0]["url"]
                .as_str()
                .and_then(|u| u.rsplit('/').nth(1))
                .map(str::to_owned)
                .unwrap_or_default();
            !store
                .rendition_dir(album, 1, "lossless")
                .expect("dir")
                .join(generation)
                .exists()
        }
    };
    eventually("the old generation deleted", 30, old_dir_gone).await;
    assert_eq!(
        status(&c, &old_segment, &mint(&ws.keys(), album)).await,
        StatusCode::NOT_FOUND
    );

    // Every operation is in the audit log, with who did it and no key material.
    let audit = std::fs::read_to_string(ws.keys().join("audit.jsonl")).expect("audit log");
    let ops: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line"))
        .collect();
    let names: Vec<&str> = ops
        .iter()
        .map(|o| o["operation"].as_str().expect("operation"))
        .collect();
    for want in [
        "rotate-signing",
        "rotate-kek",
        "rotate-content",
        "revoke-signing",
    ] {
        assert!(names.contains(&want), "{want} not audited: {names:?}");
    }
    let revoke = ops
        .iter()
        .find(|o| o["operation"] == "revoke-signing")
        .expect("revoke line");
    assert_eq!(revoke["actor"]["sub"], "licensing-staff");
    assert_eq!(revoke["details"]["kid"], k1.as_str());
    assert!(
        ops.iter().all(|o| o["result"] == "ok"),
        "an operation failed: {audit}"
    );
    for secret in key_material(&ws) {
        assert!(!audit.contains(&secret), "key material in the audit log");
    }
    drop(server);
}

fn mint_admin(ws: &Workspace) -> String {
    let keyring = encore::keys::Keyring::open(&ws.keys()).expect("keyring");
    let key = keyring.signing_key().expect("signing key");
    let mut req = encore::license::MintRequest::new("licensing-staff", Scope::Admin);
    req.ttl_seconds = 8;
    encore::license::mint(&key, &req, util::now()).expect("mint")
}

/// The hex of every KEK in the keys folder (what must never leak).
fn key_material(ws: &Workspace) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(ws.keys()).expect("keys dir") {
        let p = e.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("kek-") {
            let v: Value =
                serde_json::from_slice(&std::fs::read(&p).expect("kek")).expect("kek json");
            out.push(v["key"].as_str().expect("key").to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_publishes_before_signing_and_drops_after_retirement() {
    let ws = util::packaged_album("jwks-timeline", 1, 1.0);
    let config = ws.path().join("short.toml");
    std::fs::write(
        &config,
        "[keys]\nsigning_propagation_seconds = 2\nmax_token_seconds = 3\ntoken_leeway_seconds = 0\n\
         maintenance_interval_seconds = 1\n[ledger]\nmax_play_token_seconds = 3\nplay_token_seconds = 3\n",
    )
    .expect("config");
    let config = config.display().to_string();
    let server = ServeProcess::start(
        &ws,
        &["--config", &config],
        Arc::new(Mutex::new(Vec::new())),
    )
    .await;
    let c = reqwest::Client::new();
    let k1 = ws.keyring().active_signing_kid().to_string();

    let out = keys_cli(&ws, &config, &["rotate", "signing", "--json"]);
    assert!(out.status.success(), "{}", util::text(&out));
    let rot: Value = serde_json::from_slice(&out.stdout).expect("json");
    let k2 = rot["kid"].as_str().expect("kid").to_owned();
    let activates = rot["activates_unix"].as_u64().expect("activates");
    let retires = rot["superseded"][0]["retires_unix"]
        .as_u64()
        .expect("retires");
    assert_eq!(
        retires,
        activates + 3,
        "activation + longest token + leeway"
    );

    // Published before it signs.
    let (url, c2) = (server.url.clone(), c.clone());
    eventually("both keys published", 10, || {
        let (url, c, want) = (
            url.clone(),
            c2.clone(),
            BTreeSet::from([k1.clone(), k2.clone()]),
        );
        async move { jwks_kids(&c, &url).await == want }
    })
    .await;
    let listing = keys_cli(&ws, &config, &["list", "--json"]);
    let listing: Value = serde_json::from_slice(&listing.stdout).expect("list json");
    let state_of = |kid: &str| {
        listing["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["id"] == kid)
            .map(|k| k["state"].as_str().unwrap_or("").to_owned())
    };
    if util::now() < activates {
        assert_eq!(state_of(&k2).as_deref(), Some("pending"));
        assert_eq!(state_of(&k1).as_deref(), Some("active"));
    }
    // Removed after retirement; the superseded private key is deleted by maintenance.
    let (url, c2) = (server.url.clone(), c.clone());
    eventually("the old key retired from the JWKS", 15, || {
        let (url, c, want) = (url.clone(), c2.clone(), BTreeSet::from([k2.clone()]));
        async move { jwks_kids(&c, &url).await == want }
    })
    .await;
    assert!(util::now() >= retires);
    assert!(
        !ws.keys().join(format!("signing-{k1}.key.pem")).exists(),
        "the superseded private key is deleted"
    );
    let listing = keys_cli(&ws, &config, &["list"]);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains(&k1) && l.contains("retired")),
        "{text}"
    );
}

/// Fetches every track of `album` as a buyer (lossless and preview) through `server`.
async fn every_track_plays(ws: &Workspace, url: &str, album: &str, tracks: u32) {
    let token = util::token(ws, "fan", Scope::Play, &[album]);
    for n in 1..=tracks {
        for rendition in ["lossless", "preview"] {
            let out = ws.path().join(format!("{album}-{n}-{rendition}.m4a"));
            let run = ws.encore(&[
                "fetch",
                "--server",
                url,
                "--token",
                &token,
                "--album",
                album,
                "--track",
                &n.to_string(),
                "--rendition",
                rendition,
                "--out",
                out.to_str().expect("path"),
            ]);
            assert!(
                run.status.success(),
                "{album} {n} {rendition}: {}",
                util::text(&run)
            );
            assert!(!util::decode_s32(&out).is_empty());
        }
    }
}

fn crash_at(ws: &Workspace, point: &str, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .arg("keys")
        .args(args)
        .env("ENCORE_MEDIA", ws.media())
        .env("ENCORE_KEYS", ws.keys())
        .env("ENCORE_DATA", ws.data())
        .env("ENCORE_CRASH_AT", point)
        .env_remove("ENCORE_CONFIG")
        .current_dir(ws.path())
        .output()
        .expect("run encore keys");
    assert_eq!(
        out.status.signal(),
        Some(9),
        "expected SIGKILL at {point}: {}",
        util::text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_rotation_step_then_restart_and_rerun() {
    let ws = util::packaged_album("crash-a", 2, 1.5);
    // A second album, so a crash can fall between two albums' re-wraps.
    util::make_fixture(
        &ws.album_dir("crash-b").join("01.flac"),
        48_000,
        1,
        1.5,
        &["-c:a", "flac"],
    );
    let out = ws.encore(&["ingest"]);
    assert!(out.status.success(), "{}", util::text(&out));
    let albums = [("crash-a", 2), ("crash-b", 1)];

    for point in [
        "rotate-kek:kek-written",
        "rotate-kek:state-written",
        "rotate-kek:album-rewrapped",
        "rotate-kek:old-dropped",
    ] {
        crash_at(&ws, point, &["rotate", "kek"]);
        let server = ServeProcess::start(&ws, &[], Arc::new(Mutex::new(Vec::new()))).await;
        for (album, tracks) in albums {
            every_track_plays(&ws, &server.url, album, tracks).await;
        }
        drop(server);
        let rerun = ws.encore(&["keys", "rotate", "kek", "--json"]);
        assert!(rerun.status.success(), "{point}: {}", util::text(&rerun));
        let r: Value = serde_json::from_slice(&rerun.stdout).expect("json");
        // A crash after the state named the new KEK is finished, not restarted. (After a
        // crash once the old KEK was dropped, the server's maintenance may already have
        // deleted its file, and the re-run then rotates again: either way one KEK is left.)
        match point {
            "rotate-kek:kek-written" => assert_eq!(r["resumed"], false, "{point}: {r}"),
            "rotate-kek:old-dropped" => {}
            _ => assert_eq!(r["resumed"], true, "{point}: {r}"),
        }
        let kek_files = std::fs::read_dir(ws.keys())
            .expect("keys dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("kek-"))
            })
            .count();
        assert_eq!(kek_files, 1, "{point}: one KEK file left");
        let keyring = ws.keyring();
        let kek = keyring.active_kek_id();
        assert_eq!(
            keyring
                .list()
                .iter()
                .filter(|e| e.kind == encore::keys::KeyKind::Kek)
                .count(),
            1,
            "{point}: one KEK left"
        );
        for (album, _) in albums {
            assert!(
                keyring
                    .content_keys_for_album(album)
                    .expect("keys")
                    .iter()
                    .all(|k| k.kek == kek),
                "{point}: {album} fully re-wrapped"
            );
        }
    }

    for point in [
        "rotate-content:keys-written",
        "rotate-content:generation-written",
        "rotate-content:manifest-switched",
        "rotate-content:old-key-retired",
    ] {
        let before = util::manifest(&ws, "crash-a", 1, "lossless");
        crash_at(&ws, point, &["rotate", "content", "--album", "crash-a"]);
        let server = ServeProcess::start(&ws, &[], Arc::new(Mutex::new(Vec::new()))).await;
        for (album, tracks) in albums {
            every_track_plays(&ws, &server.url, album, tracks).await;
        }
        drop(server);
        let rerun = ws.encore(&["keys", "rotate", "content", "--album", "crash-a", "--json"]);
        assert!(rerun.status.success(), "{point}: {}", util::text(&rerun));
        let r: Value = serde_json::from_slice(&rerun.stdout).expect("json");
        assert_eq!(r["resumed"], true, "{point}: the re-run finishes, {r}");
        // Every rendition of the album now sealed under its newest key, the old ones retiring.
        let keyring = ws.keyring();
        let keys = keyring.content_keys_for_album("crash-a").expect("keys");
        for n in 1..=2 {
            for rendition in encore::media::Rendition::ALL.map(|r| r.as_str()) {
                let m = util::manifest(&ws, "crash-a", n, rendition);
                let slot: Vec<_> = keys
                    .iter()
                    .filter(|k| k.track == n && k.rendition == rendition)
                    .collect();
                let newest = slot.last().expect("a key");
                assert_eq!(m.key_id, newest.id.to_string(), "{point}: {n} {rendition}");
                assert!(
                    slot[..slot.len() - 1]
                        .iter()
                        .all(|k| k.retires_unix.is_some()),
                    "{point}: older keys retiring"
                );
            }
        }
        let after = util::manifest(&ws, "crash-a", 1, "lossless");
        assert_ne!(after.generation, before.generation, "{point}");
        assert!(
            after
                .retiring
                .iter()
                .any(|r| r.generation == before.generation),
            "{point}: the old generation is still served"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_admin_scope_and_explains_refusals() {
    let album = "admin-api";
    let ws = util::packaged_album(album, 2, 1.0);
    let s = util::TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let admin = util::token(&ws, "staff", Scope::Admin, &[]);
    let fan = util::token(&ws, "fan", Scope::Play, &[album]);

    // A fan's token is valid but not entitled; no token is a 401.
    let r = c
        .post(format!("{}/v1/admin/keys/kek/rotate", s.url))
        .bearer_auth(&fan)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.headers()["content-type"].to_str().expect("type"),
        "application/problem+json"
    );
    let r = c
        .get(format!("{}/v1/admin/keys", s.url))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Listing: states, no key material.
    let listing: Value = c
        .get(format!("{}/v1/admin/keys", s.url))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listing["keys"].as_array().expect("keys").len(),
        2,
        "{listing}"
    );
    assert_eq!(
        listing["content"].as_array().expect("content").len(),
        2 * encore::media::Rendition::ALL.len()
    );
    let text = listing.to_string();
    for secret in key_material(&ws) {
        assert!(!text.contains(&secret));
    }

    // Unknown things are 404 problems; bad bodies are 400; big bodies are 413.
    let post = |path: &str, body: Value| {
        c.post(format!("{}{path}", s.url))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let refusals = [
        (
            "/v1/admin/keys/content/rotate",
            serde_json::json!({"album": "nope"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/admin/keys/content/rotate",
            serde_json::json!({"album": album, "track": 9}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/admin/keys/content/rotate",
            serde_json::json!({"album": album, "bogus": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/keys/content/rotate",
            serde_json::json!({"album": "x".repeat(20_000)}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/v1/admin/keys/signing/00000000000000aa/revoke",
            Value::Null,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (path, body, want) in refusals {
        let r = post(path, body).await.expect("request");
        assert_eq!(r.status(), want, "{path}");
        assert_eq!(
            r.headers()["content-type"].to_str().expect("type"),
            "application/problem+json"
        );
    }

    // One track only: track 2 is re-sealed, track 1 untouched.
    let t1 = util::manifest(&ws, album, 1, "lossless");
    let t2 = util::manifest(&ws, album, 2, "lossless");
    let r = post(
        "/v1/admin/keys/content/rotate",
        serde_json::json!({"album": album, "track": 2}),
    )
    .await
    .expect("request");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_url = format!(
        "{}{}",
        s.url,
        r.headers()["location"].to_str().expect("loc")
    );
    let mut job = Value::Null;
    for _ in 0..300 {
        job = c
            .get(&job_url)
            .bearer_auth(&admin)
            .send()
            .await
            .expect("job")
            .json()
            .await
            .expect("json");
        if job["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["actor"]["sub"], "staff");
    assert_eq!(
        util::manifest(&ws, album, 1, "lossless").generation,
        t1.generation
    );
    let t2_after = util::manifest(&ws, album, 2, "lossless");
    assert_ne!(t2_after.generation, t2.generation);
    assert_ne!(t2_after.key_id, t2.key_id);
    // This server serves the switched manifest at once (the job reloaded the catalog).
    let m: Value = c
        .get(format!(
            "{}/v1/albums/{album}/tracks/2/lossless/manifest",
            s.url
        ))
        .bearer_auth(&fan)
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("json");
    assert_eq!(m["key_id"], t2_after.key_id.as_str());
    // A license during the overlap carries both keys of the rendition, newest first.
    let lic: Value = c
        .post(format!("{}/v1/licenses", s.url))
        .bearer_auth(&fan)
        .json(&serde_json::json!({"album": album, "track": 2}))
        .send()
        .await
        .expect("license")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = lic["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["rendition"] == "lossless")
        .map(|k| k["key_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![t2_after.key_id.as_str(), t2.key_id.as_str()]);
}
