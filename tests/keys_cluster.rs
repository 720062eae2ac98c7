//! One truth for keys across origins (issue 21 item 3): two real `encore serve` processes on
//! one PostgreSQL database (`[keys] store = "database"`), each with its own keys folder
//! holding only the KEK, sharing one `--data` folder. Players fetch through both while staff
//! rotate the signing key and an album's content keys through origin A's admin API and the
//! KEK with `encore keys` on A's host: no request fails, both origins serve the same JWKS
//! after each rotation, origin B without the new KEK keeps serving (and says so) until its
//! file arrives, and no private key is in the database in the clear nor on a node's disk.
//!
//! Run with `pg_virtualenv -v 15 cargo test --test integration keys_cluster` (a PostgreSQL 15
//! cluster of its own), or with `ENCORE_TEST_POSTGRES_URL` naming a server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use encore::keys::{KeyDb, KeyDir, Keyring};
use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::Value;

use crate::util::{self, ServeProcess, Workspace};

/// Short lifetimes, so retirements happen within the test; keys in the database.
fn write_config(ws: &Workspace, url: &str) -> String {
    let path = ws.path().join("cluster.toml");
    std::fs::write(
        &path,
        format!(
            "[keys]\nstore = \"database\"\nsigning_propagation_seconds = 2\n\
             max_token_seconds = 30\ntoken_leeway_seconds = 1\nmaintenance_interval_seconds = 1\n\n\
             [ledger]\nurl = \"{url}\"\nmax_play_token_seconds = 20\nplay_token_seconds = 20\n"
        ),
    )
    .expect("config");
    path.display().to_string()
}

/// A token signed by the key that signs now, read from the database as a store backend would.
/// Reading the state and then its KEK file is not one step: a KEK rotation between the two
/// (the old file deleted after the commit) fails the read, which a backend simply repeats.
fn mint(keys: &KeyDir, scope: Scope, album: &str) -> String {
    let mut attempts = 0;
    let keyring = loop {
        match Keyring::open_in(keys) {
            Ok(k) => break k,
            Err(_) if attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("keyring: {e:?}"),
        }
    };
    let key = keyring.signing_key().expect("signing key");
    let mut req = encore::license::MintRequest::new("fan", scope);
    if scope == Scope::Play {
        req.albums = vec![album.to_owned()];
    }
    req.ttl_seconds = 20;
    encore::license::mint(&key, &req, util::now()).expect("mint")
}

async fn jwks(c: &reqwest::Client, url: &str) -> BTreeSet<String> {
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
        .map(|k| k.to_string())
        .collect()
}

async fn text_of(c: &reqwest::Client, url: &str) -> String {
    c.get(url)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text")
}

/// Polls `check` every 50 ms until it holds; returns how long that took (a measurement for
/// the report, never asserted: the machine may be busy).
async fn until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    for _ in 0..600 {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Players on both origins: `encore fetch` (license, manifest, every segment, each seal opened
/// with the licensed keys) and raw manifest + segment requests. Every failure is kept.
struct Players {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Players {
    fn start(ws: &Workspace, keys: &KeyDir, origins: &[String], album: &str) -> Players {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (i, origin) in origins.iter().enumerate() {
            let out_dir = ws.path().join(format!("fetch-{i}"));
            std::fs::create_dir_all(&out_dir).expect("out dir");
            let (stop_, failures_, done_) = (stop.clone(), failures.clone(), done.clone());
            let (origin_, album_id, dir) = (origin.clone(), album.to_owned(), keys.clone());
            tasks.push(tokio::spawn(async move {
                let (stop, failures, done, origin) = (stop_, failures_, done_, origin_);
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let track = 1 + n % 2;
                    let token = mint(&dir, Scope::Play, &album_id);
                    let out = out_dir.join(format!("t{n}.m4a"));
                    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
                        .args(["fetch", "--server", &origin, "--token", &token])
                        .args(["--album", &album_id, "--track", &track.to_string()])
                        .args(["--rendition", "lossless", "--out"])
                        .arg(&out)
                        .output()
                        .await
                        .expect("run encore fetch");
                    if run.status.success() {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.lock().expect("failures").push(format!(
                            "{origin}: fetch of track {track}: {}",
                            String::from_utf8_lossy(&run.stderr)
                        ));
                    }
                    let _ = std::fs::remove_file(&out);
                }
            }));
            let (stop_, failures_, done_) = (stop.clone(), failures.clone(), done.clone());
            let (origin_, album_id, dir) = (origin.clone(), album.to_owned(), keys.clone());
            tasks.push(tokio::spawn(async move {
                let (stop, failures, done, origin) = (stop_, failures_, done_, origin_);
                let c = reqwest::Client::new();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let track = 1 + n % 2;
                    let token = mint(&dir, Scope::Play, &album_id);
                    let fail = |what: String| failures.lock().expect("failures").push(what);
                    let url = format!("{origin}/v1/albums/{album_id}/tracks/{track}/high/manifest");
                    let m = match c.get(&url).bearer_auth(&token).send().await {
                        Ok(m) if m.status() == StatusCode::OK => m,
                        Ok(m) => {
                            fail(format!("{url}: {}", m.status()));
                            continue;
                        }
                        Err(e) => {
                            fail(format!("{url}: {e}"));
                            continue;
                        }
                    };
                    let m: Value = m.json().await.expect("manifest json");
                    let mut urls = vec![m["init"]["url"].as_str().expect("init").to_owned()];
                    for s in m["segments"].as_array().expect("segments") {
                        urls.push(s["url"].as_str().expect("url").to_owned());
                    }
                    for u in urls {
                        match c
                            .get(format!("{origin}{u}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                        {
                            Ok(r) if r.status() == StatusCode::OK => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => fail(format!("{origin}{u}: {}", r.status())),
                            Err(e) => fail(format!("{origin}{u}: {e}")),
                        }
                    }
                }
            }));
        }
        Players {
            stop,
            failures,
            done,
            tasks,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("player task");
        }
        let failures = self.failures.lock().expect("failures").clone();
        (self.done.load(Ordering::Relaxed), failures)
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn kek_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("keys folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kek-"))
        .collect();
    names.sort();
    names
}

async fn rotate_over_admin(c: &reqwest::Client, origin: &str, admin: &str, what: &str) -> Value {
    let r = c
        .post(format!("{origin}/v1/admin/keys/{what}/rotate"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("rotate");
    assert_eq!(r.status(), StatusCode::OK, "{what}");
    r.json().await.expect("rotation json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_origins_share_every_key_rotation() {
    let db = crate::pg::PgDatabase::create().await;
    let album = "cluster-keys";
    let ws = Workspace::new();
    let dir = ws.album_dir(album);
    std::fs::write(
        dir.join("album.toml"),
        "title = \"Cluster\"\nartist = \"Tests\"\npreview_seconds = 2\n",
    )
    .expect("album.toml");
    for n in 1..=2 {
        util::make_fixture(
            &dir.join(format!("{n:02}.flac")),
            44_100,
            2,
            3.0,
            &["-c:a", "flac"],
        );
    }
    let config = write_config(&ws, &db.url);
    let keys_a = ws.keys();
    let keys_b = ws.path().join("keys-b");
    std::fs::create_dir_all(&keys_b).expect("keys-b");

    // Keys made once, in the database; the KEK file goes to every node.
    let out = ws.encore(&["keys", "init", "--config", &config]);
    assert!(out.status.success(), "{}", util::text(&out));
    let keks = kek_files(&keys_a);
    assert_eq!(keks.len(), 1);
    std::fs::copy(keys_a.join(&keks[0]), keys_b.join(&keks[0])).expect("copy KEK");
    let out = ws.encore(&["ingest", "--config", &config]);
    assert!(out.status.success(), "{}", util::text(&out));

    let log = Arc::new(Mutex::new(Vec::new()));
    let a = ServeProcess::start(&ws, &["--config", &config], log.clone()).await;
    let keys_b_arg = keys_b.display().to_string();
    let b = ServeProcess::start(
        &ws,
        &["--config", &config, "--keys", &keys_b_arg],
        log.clone(),
    )
    .await;
    let origins = vec![a.url.clone(), b.url.clone()];
    let c = reqwest::Client::new();
    let shared = KeyDir::database(&keys_a, KeyDb::open(&db.url, "test").expect("key db"));
    assert_eq!(jwks(&c, &a.url).await, jwks(&c, &b.url).await);

    let players = Players::start(&ws, &shared, &origins, album);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut report = Vec::new();

    // 1. Signing key, through A's admin API: B publishes it too.
    let before = jwks(&c, &b.url).await;
    let rot = rotate_over_admin(&c, &a.url, &mint(&shared, Scope::Admin, album), "signing").await;
    let kid = rot["kid"].as_str().expect("kid").to_owned();
    let took = until("the same JWKS on both origins with the new key", || {
        let (c, a, b, kid) = (c.clone(), a.url.clone(), b.url.clone(), kid.clone());
        async move {
            let (ja, jb) = (jwks(&c, &a).await, jwks(&c, &b).await);
            ja == jb && jb.iter().any(|k| k.contains(&kid))
        }
    })
    .await;
    report.push(format!("signing: same JWKS on both origins after {took:?}"));
    assert_ne!(jwks(&c, &b.url).await, before);

    // 2. The album's content keys, through A's admin API: B serves the new generation too.
    let manifest = |origin: &str, track: u32| {
        format!("{origin}/v1/albums/{album}/tracks/{track}/lossless/manifest")
    };
    let key_of = |c: reqwest::Client, url: String, token: String| async move {
        let v: Value = c
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("manifest")
            .json()
            .await
            .expect("manifest json");
        v["key_id"].as_str().expect("key id").to_owned()
    };
    let old_key = key_of(
        c.clone(),
        manifest(&b.url, 1),
        mint(&shared, Scope::Play, album),
    )
    .await;
    let r = c
        .post(format!("{}/v1/admin/keys/content/rotate", a.url))
        .bearer_auth(mint(&shared, Scope::Admin, album))
        .json(&serde_json::json!({ "album": album }))
        .send()
        .await
        .expect("rotate content");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_url = format!(
        "{}{}",
        a.url,
        r.headers()["location"].to_str().expect("location")
    );
    until("the content rotation job", || {
        let (c, job_url, admin) = (
            c.clone(),
            job_url.clone(),
            mint(&shared, Scope::Admin, album),
        );
        async move {
            let job: Value = c
                .get(&job_url)
                .bearer_auth(admin)
                .send()
                .await
                .expect("job")
                .json()
                .await
                .expect("job json");
            assert_ne!(job["state"], "failed", "{job}");
            job["state"] == "succeeded"
        }
    })
    .await;
    let new_key = key_of(
        c.clone(),
        manifest(&a.url, 1),
        mint(&shared, Scope::Play, album),
    )
    .await;
    assert_ne!(new_key, old_key, "a new content key");
    let took = until("origin B serving the new content key", || {
        let (c, url, token, new_key) = (
            c.clone(),
            manifest(&b.url, 1),
            mint(&shared, Scope::Play, album),
            new_key.clone(),
        );
        async move { key_of(c, url, token).await == new_key }
    })
    .await;
    report.push(format!("content: origin B on the new key after {took:?}"));

    // 3. The KEK, with `encore keys` on A's host, before the new KEK file reached B: B keeps
    // serving with the keys it has, and says so; once the file is there it catches up.
    let jwks_before = jwks(&c, &b.url).await;
    let out = ws.encore(&["keys", "rotate", "kek", "--json", "--config", &config]);
    assert!(out.status.success(), "{}", util::text(&out));
    let kek: Value = serde_json::from_slice(&out.stdout).expect("kek json");
    let new_kek = format!("kek-{}.json", kek["kek"].as_str().expect("kek"));
    assert_eq!(
        kek_files(&keys_a),
        vec![new_kek.clone()],
        "old KEK deleted on A"
    );
    until("origin B reporting stale keys", || {
        let (c, url) = (c.clone(), format!("{}/readyz", b.url));
        async move { text_of(&c, &url).await.contains("keys: stale") }
    })
    .await;
    let metrics = text_of(&c, &format!("{}/metrics", b.url)).await;
    assert!(metrics.contains("encore_key_state_stale 1"), "{metrics}");
    assert_eq!(jwks(&c, &b.url).await, jwks_before);
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::copy(keys_a.join(&new_kek), keys_b.join(&new_kek)).expect("copy the new KEK");
    let took = until("origin B caught up with the new KEK", || {
        let (c, url) = (c.clone(), format!("{}/readyz", b.url));
        async move { text_of(&c, &url).await == "ready\n" }
    })
    .await;
    report.push(format!(
        "kek: origin B caught up {took:?} after its KEK file arrived"
    ));
    for old in kek_files(&keys_b).into_iter().filter(|k| *k != new_kek) {
        std::fs::remove_file(keys_b.join(old)).expect("remove the old KEK on B");
    }
    assert_eq!(jwks(&c, &a.url).await, jwks(&c, &b.url).await);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (done, failures) = players.finish().await;
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert!(done >= 10, "the players barely ran ({done})");
    eprintln!("{}", report.join("\n"));

    // No private key material in the database in the clear, nor on any node's disk.
    let rows = shared.db().expect("db").raw_rows().expect("rows");
    assert!(rows.iter().any(|(n, _)| n.ends_with(".key.pem")));
    let kek_hex: Vec<String> = [&keys_a, &keys_b]
        .iter()
        .flat_map(|d| kek_files(d).into_iter().map(move |k| d.join(k)))
        .map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(p).expect("kek")).expect("json");
            v["key"].as_str().expect("key").to_owned()
        })
        .collect();
    for (name, body) in &rows {
        assert!(!body.contains("PRIVATE KEY"), "{name} in the clear");
        assert!(
            kek_hex.iter().all(|k| !body.contains(k)),
            "{name} holds a KEK"
        );
    }
    for file in files_under(ws.path()) {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            !(name.starts_with("signing-") || name == "keyring.json"),
            "{} written to a node's disk",
            file.display()
        );
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
                "{} holds a private key",
                file.display()
            );
        }
    }
    drop((a, b));
    db.drop_database().await;
}
