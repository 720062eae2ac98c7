//! Revocation across origins: how long after a refund's 200 on origin A the first request
//! with the refunded token gets 403 on origin B, while players fetch segments from both.
//!
//! Two real `encore serve` processes (release build) on one PostgreSQL database, each with
//! its own data dir (a copy of one packaged store of `media/first-light`; the players fetch
//! tracks 1 and 2), the same keys.
//! Meanwhile `LOADERS` players per origin fetch the album's lossless segments as fast as they
//! can (closed loop, buyer tokens). Each sample: a fan buys through A, plays through B
//! (200), is refunded through A; from the refund's 200 the bench asks B for the segment
//! again and again (no pause) until it answers 403: that time is the sample. The baseline,
//! measured in the same run and the same way: the first 403 on A itself (the origin that
//! took the refund, which revokes before its 200), i.e. one request's round trip under the
//! same load.
//!
//! Run (PostgreSQL 15 from `pg_virtualenv`, or `ENCORE_TEST_POSTGRES_URL=postgres://...`):
//!
//! ```text
//! pg_virtualenv -v 15 cargo bench --bench revocation [-- SAMPLES LOADERS CATCH_UP_MS]
//! ```
//!
//! Defaults: 200 samples, 8 players per origin, `[ledger] catch_up_ms = 250`. Prints p50,
//! p99 and max of both, the ratio of the p99s, the players' req/s, and the 5 slowest samples
//! with their offset in the run. Results: `docs/PERFORMANCE.md`, "Revocation across origins".

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use encore::keys::Keyring;
use encore::license::{Clock, MintRequest, Scope, SystemClock, mint};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

// The tests' throwaway database on the suite's PostgreSQL server.
#[path = "../tests/pg.rs"]
mod pg;

const ALBUM: &str = "first-light";

fn encore(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .args(args)
        .env("ENCORE_MEDIA", dir.join("media"))
        .env("ENCORE_KEYS", dir.join("keys"))
        .env("ENCORE_DATA", dir.join("data"))
        .env_remove("ENCORE_CONFIG")
        .output()
        .expect("run encore");
    assert!(
        out.status.success(),
        "encore {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `encore serve` and returns the child and its URL once `/readyz` answers 200.
async fn serve(dir: &Path, config: &Path, data: &Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--log-json", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .env("ENCORE_MEDIA", dir.join("media"))
        .env("ENCORE_KEYS", dir.join("keys"))
        .env_remove("ENCORE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("encore serve");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .expect("stderr")
            .expect("encore serve exited before listening");
        if let Some(at) = line.find("encore listening on ") {
            let rest = &line[at + "encore listening on ".len()..];
            break rest.chars().take_while(|c| *c != '"').collect::<String>();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let c = reqwest::Client::new();
    for _ in 0..1200 {
        if let Ok(r) = c.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn get_status(c: &reqwest::Client, url: &str, token: &str) -> reqwest::StatusCode {
    let r = c.get(url).bearer_auth(token).send().await.expect("GET");
    let status = r.status();
    r.bytes().await.expect("body");
    status
}

async fn post(c: &reqwest::Client, url: String, token: &str, body: Option<Value>) {
    let mut req = c.post(url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("POST");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// The first 403 for `token` at `url`, asked back to back; its time since `from`.
async fn first_403(c: &reqwest::Client, url: &str, token: &str, from: Instant) -> Duration {
    loop {
        let status = get_status(c, url, token).await;
        if status == reqwest::StatusCode::FORBIDDEN {
            return from.elapsed();
        }
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(
            from.elapsed() < Duration::from_secs(30),
            "never refused at {url}"
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let samples: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let loaders: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let catch_up_ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(250);

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let dir = dir.path().to_path_buf();
    let album = dir.join("media").join(ALBUM);
    std::fs::create_dir_all(&album).expect("media");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("media")
        .join(ALBUM);
    for entry in std::fs::read_dir(&demo).expect("media/first-light") {
        let name = entry.expect("entry").file_name();
        std::fs::copy(demo.join(&name), album.join(&name)).expect("copy");
    }
    encore(&dir, &["keys", "init", "--dev-accounts"]);
    encore(&dir, &["ingest"]);

    let db = pg::PgDatabase::create().await;
    let config = dir.join("encore.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\nurl = \"{}\"\ncatch_up_ms = {catch_up_ms}\n\n[server]\nwatch_media = false\n",
            db.url
        ),
    )
    .expect("config");
    let mut datas: Vec<PathBuf> = Vec::new();
    for name in ["data-a", "data-b"] {
        let to = dir.join(name);
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(dir.join("data"))
            .arg(&to)
            .status()
            .expect("cp");
        assert!(ok.success());
        datas.push(to);
    }
    let (child_a, a) = serve(&dir, &config, &datas[0]).await;
    let (child_b, b) = serve(&dir, &config, &datas[1]).await;

    let keyring = Keyring::open(&dir.join("keys")).expect("keys");
    let key = keyring.signing_key().expect("signing key");
    let token = |sub: &str, scope: Scope, albums: &[&str]| {
        let mut req = MintRequest::new(sub, scope);
        req.albums = albums.iter().map(|s| s.to_string()).collect();
        mint(&key, &req, SystemClock.now_unix()).expect("mint")
    };
    let store = token("payments", Scope::Store, &[]);
    let edge = token("edge", Scope::Edge, &[]);
    let c = reqwest::Client::new();
    let mut paths = Vec::new();
    for track in [1, 2] {
        let m: Value = c
            .get(format!(
                "{a}/v1/albums/{ALBUM}/tracks/{track}/lossless/manifest"
            ))
            .bearer_auth(&edge)
            .send()
            .await
            .expect("manifest")
            .json()
            .await
            .expect("manifest json");
        for s in m["segments"].as_array().expect("segments") {
            paths.push(s["url"].as_str().expect("url").to_owned());
        }
    }
    let probe = paths[0].clone();

    // Players on both origins for the whole measurement.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let player = token("player", Scope::Play, &[ALBUM]);
    let mut tasks = Vec::new();
    for origin in [&a, &b] {
        for i in 0..loaders {
            let (stop, served, origin) = (stop.clone(), served.clone(), origin.clone());
            let (paths, player) = (paths.clone(), player.clone());
            tasks.push(tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut k = i;
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("{origin}{}", paths[k % paths.len()]);
                    k += 7;
                    assert_eq!(get_status(&c, &url, &player).await, reqwest::StatusCode::OK);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "revocation bench: {samples} samples, {loaders} players per origin, catch_up_ms {catch_up_ms}, {} CPU(s)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut across = Vec::with_capacity(samples);
    let mut offsets = Vec::with_capacity(samples);
    let mut same = Vec::with_capacity(samples);
    let (served_before, started) = (served.load(Ordering::Relaxed), Instant::now());
    for i in 0..samples {
        let user = format!("fan-{i}");
        let order = format!("order-{i}");
        let body = json!({"order_id": order, "user": user, "album": ALBUM, "price": 1500,
            "currency": "CNY"});
        post(&c, format!("{a}/v1/purchases"), &store, Some(body)).await;
        let play = token(&user, Scope::Play, &[ALBUM]);
        let (on_a, on_b) = (format!("{a}{probe}"), format!("{b}{probe}"));
        assert_eq!(get_status(&c, &on_b, &play).await, reqwest::StatusCode::OK);
        post(&c, format!("{a}/v1/purchases/{order}/refund"), &store, None).await;
        let at = Instant::now();
        offsets.push(started.elapsed().as_secs_f64());
        // Alternate which origin is asked first, so neither always pays the other's request.
        if i % 2 == 0 {
            across.push(first_403(&c, &on_b, &play, at).await);
            let at = Instant::now();
            same.push(first_403(&c, &on_a, &play, at).await);
        } else {
            let at_a = Instant::now();
            same.push(first_403(&c, &on_a, &play, at_a).await);
            across.push(first_403(&c, &on_b, &play, at).await);
        }
    }
    let rate =
        (served.load(Ordering::Relaxed) - served_before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("player");
    }
    let mut slowest: Vec<(Duration, usize)> = across.iter().copied().zip(0..).collect::<Vec<_>>();
    slowest.sort_unstable_by(|x, y| y.cmp(x));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(d, i)| {
            format!(
                "#{i} at {:.1} s: {:.1} ms",
                offsets[*i],
                d.as_secs_f64() * 1e3
            )
        })
        .collect();
    println!("slowest across: {}", slowest.join(", "));
    across.sort_unstable();
    same.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        ("refund's 200 on A → first 403 on B", &across),
        ("baseline: refund's 200 on A → first 403 on A", &same),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            ms(percentile(v, 50.0)),
            ms(percentile(v, 99.0)),
            ms(*v.last().expect("samples"))
        );
    }
    println!(
        "p99 across / p99 baseline: {:.1}x; players meanwhile: {rate:.0} segments/s over both origins",
        ms(percentile(&across, 99.0)) / ms(percentile(&same, 99.0)).max(1e-9)
    );
    drop((child_a, child_b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.drop_database().await;
}
