//! The packaged store on S3-compatible object storage, against a real Garage: `encore ingest`
//! publishes to the bucket, an origin with an empty `--data` reads through from it (one GET
//! per cold segment however many ask, checked against the manifest, kept on local disk within
//! its bound), corrupt objects are refused, unpublished objects are invisible, and a new
//! publication reaches a running origin.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use encore::license::Scope;
use encore::store::library::segment_url;
use encore::store::sha256_hex;
use reqwest::StatusCode;

use crate::garage::Garage;
use crate::util::{self, ServeProcess, Workspace, text};

/// Runs the real `encore` binary in `ws` with the bucket's `AWS_*` settings.
fn encore(ws: &Workspace, garage: &Garage, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encore"))
        .args(args)
        .env("ENCORE_MEDIA", ws.media())
        .env("ENCORE_KEYS", ws.keys())
        .env("ENCORE_DATA", ws.data())
        .env_remove("ENCORE_CONFIG")
        .envs(garage.env())
        .current_dir(ws.path())
        .output()
        .expect("run encore")
}

/// A workspace whose `encore.toml` publishes to `prefix` in the bucket, with `album` of
/// `tracks` tracks of `seconds` (white noise in 1 s segments when `noise`: many segments
/// that do not compress), packaged and published by `encore ingest`.
fn published(
    garage: &Garage,
    prefix: &str,
    album: &str,
    tracks: u32,
    seconds: f64,
    noise: bool,
) -> Workspace {
    let ws = Workspace::new();
    let ingest = if noise {
        "[ingest]\nsegment_seconds = 1.0\n"
    } else {
        ""
    };
    std::fs::write(
        ws.path().join("encore.toml"),
        format!("{ingest}[store]\nurl = \"{}\"\n", garage.url(prefix)),
    )
    .expect("encore.toml");
    add_album(&ws, album, tracks, seconds, noise);
    let init = ws.encore(&["keys", "init", "--dev-accounts"]);
    assert!(init.status.success(), "{}", text(&init));
    let out = encore(&ws, garage, &["ingest"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{album}: published")),
        "{}",
        text(&out)
    );
    ws
}

/// The buyer-only extra every album here has.
const LETTER: &[u8] = b"%PDF-1.4\n% published through the bucket\n%%EOF\n";

fn add_album(ws: &Workspace, album: &str, tracks: u32, seconds: f64, noise: bool) {
    let dir = ws.album_dir(album);
    std::fs::write(
        dir.join("album.toml"),
        "title = \"Bucketed\"\nartist = \"Tests\"\npreview_seconds = 2\npreview_start = 0\n\
         [[extras]]\nfile = \"extras/letter.pdf\"\ntitle = \"A letter\"\n",
    )
    .expect("album.toml");
    std::fs::create_dir_all(dir.join("extras")).expect("extras dir");
    std::fs::write(dir.join("extras/letter.pdf"), LETTER).expect("letter");
    // Track 1 has lyrics: they travel in the publication record.
    std::fs::write(dir.join("01.lrc"), "[00:00.50]Carried in the bucket\n").expect("lrc");
    for n in 1..=tracks {
        let path = dir.join(format!("{n:02}.flac"));
        if noise {
            util::make_noise_flac(&path, 44_100, 1.0, seconds);
        } else {
            util::make_fixture(&path, 44_100, 2, seconds, &["-c:a", "flac"]);
        }
    }
}

/// An `encore serve` on its own empty data dir, reading the bucket under `prefix` with the
/// keys of `source`; `store_toml` adds `[store]` keys.
async fn origin(
    garage: &Garage,
    source: &Workspace,
    prefix: &str,
    store_toml: &str,
) -> (ServeProcess, Workspace) {
    let ws = Workspace::new();
    let served = origin_in(&ws, garage, source, prefix, store_toml).await;
    (served, ws)
}

/// An `encore serve` on `ws`'s data dir (empty or not), as [`origin`] starts one.
async fn origin_in(
    ws: &Workspace,
    garage: &Garage,
    source: &Workspace,
    prefix: &str,
    store_toml: &str,
) -> ServeProcess {
    std::fs::write(
        ws.path().join("encore.toml"),
        format!("[store]\nurl = \"{}\"\n{store_toml}", garage.url(prefix)),
    )
    .expect("encore.toml");
    let mut cmd = ws.serve_command(&["--listen", "127.0.0.1:0", "--log-json"]);
    cmd.env("ENCORE_KEYS", source.keys()).envs(garage.env());
    ServeProcess::ready(cmd, Arc::new(Mutex::new(Vec::new()))).await
}

/// `GET /v1/albums` of the origin at `url`, as text.
async fn catalog(url: &str) -> String {
    reqwest::get(format!("{url}/v1/albums"))
        .await
        .expect("albums")
        .text()
        .await
        .expect("body")
}

/// Whether `album` shows in the origin's catalog within `tries` looks 50 ms apart.
async fn listed_within(url: &str, album: &str, tries: u32) -> bool {
    for _ in 0..tries {
        if catalog(url).await.contains(&format!("\"{album}\"")) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// The status of `GET {base}{path}` with `token`.
async fn status_of(base: &str, path: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
        .status()
}

async fn metric(url: &str, name: &str) -> u64 {
    let body = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("encore_{name}_total ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no encore_{name}_total in /metrics"))
}

/// Every segment URL of a rendition with its sealed bytes, as packaged in `ws`.
fn segments(ws: &Workspace, album: &str, track: u32, rendition: &str) -> Vec<(String, Vec<u8>)> {
    let m = util::manifest(ws, album, track, rendition);
    std::iter::once(&m.init)
        .chain(&m.segments)
        .map(|r| {
            let path = ws.store().segment_path(&m, r).expect("path");
            (
                segment_url(album, track, rendition, &m.generation, &r.file),
                std::fs::read(path).expect("sealed segment"),
            )
        })
        .collect()
}

/// Bytes of segment files (`*.enc`) under a data dir's store.
fn local_segment_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p: PathBuf = e.path();
            if p.is_dir() {
                walk(&p, total);
            } else if p.extension().is_some_and(|x| x == "enc") {
                *total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mut total = 0;
    walk(&dir.join("store"), &mut total);
    total
}

fn fetch_track(ws: &Workspace, server: &str, token: &str, album: &str, out: &Path) {
    let o = ws.encore(&[
        "fetch",
        "--server",
        server,
        "--token",
        token,
        "--album",
        album,
        "--track",
        "1",
        "--rendition",
        "lossless",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "fetch from {server}: {}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_with_empty_data_plays_a_published_track_bit_exact_and_a_rerun_publishes_nothing()
{
    let garage = Garage::start().await;
    let ws = published(&garage, "one", "bucketed", 2, 5.0, false);
    let (remote_origin, remote_ws) = origin(&garage, &ws, "one", "").await;
    // The same packaging served from its local store, without the bucket.
    std::fs::write(ws.path().join("local.toml"), "").expect("local.toml");
    let local = ServeProcess::start(&ws, &["--config", "local.toml"], Default::default()).await;

    let token = util::token(&ws, "fan", Scope::Play, &["bucketed"]);
    let (a, b) = (ws.path().join("remote.m4a"), ws.path().join("local.m4a"));
    fetch_track(&ws, &remote_origin.url, &token, "bucketed", &a);
    fetch_track(&ws, &local.url, &token, "bucketed", &b);
    let (a, b) = (std::fs::read(a).expect("a"), std::fs::read(b).expect("b"));
    assert!(!a.is_empty());
    assert!(
        a == b,
        "the track through the bucket differs from the local one"
    );
    let played = segments(&ws, "bucketed", 1, "lossless").len() as u64;
    assert_eq!(
        metric(&remote_origin.url, "store_remote_fetches").await,
        played
    );
    assert_eq!(
        metric(&remote_origin.url, "store_remote_verify_failures").await,
        0
    );
    assert!(
        local_segment_bytes(&remote_ws.data()) > 0,
        "copies kept on local disk"
    );
    // The extra reaches the origin with the publication, and opens for a buyer.
    let letter = ws.path().join("letter.pdf");
    let o = ws.encore(&[
        "fetch",
        "--server",
        &remote_origin.url,
        "--token",
        &token,
        "--album",
        "bucketed",
        "--extra",
        "letter",
        "--out",
        letter.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&letter).expect("letter"), LETTER);
    // So do the lyrics.
    let lyrics = reqwest::Client::new()
        .get(format!(
            "{}/v1/albums/bucketed/tracks/1/lyrics",
            remote_origin.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("lyrics");
    assert_eq!(lyrics.status(), StatusCode::OK);
    assert_eq!(
        lyrics.text().await.expect("lyrics text"),
        "{\"t_ms\":500,\"text\":\"Carried in the bucket\"}\n"
    );

    // Nothing changed: nothing is written to the bucket again.
    let again = encore(&ws, &garage, &["ingest"]);
    assert!(again.status.success(), "{}", text(&again));
    let out = text(&again);
    assert!(
        out.contains("bucketed: unchanged") && out.contains(" 0 object(s) written"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_a_cold_segment_make_one_get() {
    let garage = Garage::start().await;
    let ws = published(&garage, "flight", "bucketed", 1, 5.0, false);
    let (o, _data) = origin(&garage, &ws, "flight", "").await;
    let (url, sealed) = segments(&ws, "bucketed", 1, "lossless").remove(1);
    let token = util::token(&ws, "fan", Scope::Play, &["bucketed"]);
    let c = reqwest::Client::new();
    let gets = (0..32).map(|_| {
        let req = c.get(format!("{}{url}", o.url)).bearer_auth(&token);
        async move {
            let r = req.send().await.expect("get");
            (r.status(), r.bytes().await.expect("body"))
        }
    });
    for (status, body) in futures_util::future::join_all(gets).await {
        assert_eq!(status, StatusCode::OK);
        assert!(body[..] == sealed[..]);
    }
    assert_eq!(
        metric(&o.url, "store_remote_fetches").await,
        1,
        "one GET for 32 misses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_object_is_refused_never_kept_and_a_good_copy_is_served_later() {
    let garage = Garage::start().await;
    let ws = published(&garage, "rot", "bucketed", 1, 5.0, false);
    let (o, data) = origin(&garage, &ws, "rot", "").await;
    let m = util::manifest(&ws, "bucketed", 1, "lossless");
    let record = &m.segments[0];
    let url = segment_url("bucketed", 1, "lossless", &m.generation, &record.file);
    let key = format!("bucketed/01/lossless/{}/{}", m.generation, record.file);
    let good = std::fs::read(ws.store().segment_path(&m, record).expect("path")).expect("good");
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0xff;
    let remote = garage.remote("rot");
    remote
        .put(&key, Bytes::from(bad.clone()), &sha256_hex(&bad))
        .await
        .expect("overwrite");

    let token = util::token(&ws, "fan", Scope::Play, &["bucketed"]);
    let c = reqwest::Client::new();
    for n in 1..=2 {
        let r = c
            .get(format!("{}{url}", o.url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert!(r.status().is_server_error(), "status {}", r.status());
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(
            metric(&o.url, "store_remote_verify_failures").await,
            n,
            "every fetch checks"
        );
    }
    let local = data.store().segment_path(&m, record).expect("local path");
    assert!(!local.exists(), "a corrupt object is never kept");

    remote
        .put(&key, Bytes::from(good.clone()), &record.sha256)
        .await
        .expect("repair");
    let r = c
        .get(format!("{}{url}", o.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.expect("body")[..] == good[..]);
    assert_eq!(std::fs::read(&local).expect("kept"), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_without_a_publication_are_invisible_and_a_new_publication_reaches_a_running_origin()
 {
    let garage = Garage::start().await;
    let ws = published(&garage, "news", "bucketed", 1, 3.0, false);
    // Refresh by SIGHUP only, so what the origin sees changes when the test says.
    let (o, _data) = origin(&garage, &ws, "news", "refresh_seconds = 3600\n").await;
    assert!(catalog(&o.url).await.contains("\"bucketed\""));

    // A second album's objects, uploaded as an interrupted ingest leaves them: everything but
    // the publication record.
    add_album(&ws, "pending", 1, 3.0, false);
    std::fs::write(ws.path().join("local.toml"), "").expect("local.toml");
    let packaged = ws.encore(&["ingest", "--config", "local.toml"]);
    assert!(packaged.status.success(), "{}", text(&packaged));
    let remote = garage.remote("news");
    let m = util::manifest(&ws, "pending", 1, "lossless");
    for r in std::iter::once(&m.init).chain(&m.segments) {
        let bytes = std::fs::read(ws.store().segment_path(&m, r).expect("path")).expect("seg");
        let key = format!("pending/01/lossless/{}/{}", m.generation, r.file);
        remote
            .put(&key, Bytes::from(bytes), &r.sha256)
            .await
            .expect("put");
    }
    let token = util::token(&ws, "fan", Scope::Play, &["pending"]);
    let url = segment_url("pending", 1, "lossless", &m.generation, &m.segments[0].file);
    let hup = |pid| {
        // SAFETY: kill(2) on the child's pid with a plain signal.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };
    let pid = o.child.id().expect("pid") as i32;
    hup(pid);
    // The refresh after SIGHUP has nothing to show; give it a moment, then look.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !catalog(&o.url).await.contains("\"pending\""),
        "unpublished album listed"
    );
    assert_eq!(
        status_of(&o.url, &url, &token).await,
        StatusCode::NOT_FOUND,
        "unpublished segment served"
    );

    // Published: the running origin serves it after SIGHUP.
    let out = encore(&ws, &garage, &["ingest"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pending: published"), "{}", text(&out));
    hup(pid);
    assert!(
        listed_within(&o.url, "pending", 200).await,
        "a new publication never reached the running origin"
    );
    assert_eq!(status_of(&o.url, &url, &token).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_restarted_on_its_data_fetches_only_what_changed_meanwhile() {
    let garage = Garage::start().await;
    let ws = published(&garage, "again", "bucketed", 1, 3.0, false);
    let store_toml = "refresh_seconds = 1\n";
    let (first, data) = origin(&garage, &ws, "again", store_toml).await;
    let token = util::token(&ws, "fan", Scope::Play, &["bucketed", "later"]);
    let m = util::manifest(&ws, "bucketed", 1, "lossless");
    let url = segment_url(
        "bucketed",
        1,
        "lossless",
        &m.generation,
        &m.segments[0].file,
    );
    // Played once, so the origin holds the album's records and the rendition's manifest.
    assert_eq!(status_of(&first.url, &url, &token).await, StatusCode::OK);
    drop(first);
    let manifest = data
        .store()
        .rendition_dir("bucketed", 1, "lossless")
        .expect("dir")
        .join("manifest.json");
    let mirrored_at = std::fs::metadata(&manifest)
        .and_then(|m| m.modified())
        .expect("mirrored");
    // A local copy cut short (the copies are not fsynced: a crash can leave one empty) is
    // fetched again when it does not load.
    let album_json = data
        .store()
        .album_dir("bucketed")
        .expect("dir")
        .join("album.json");
    std::fs::write(&album_json, b"").expect("truncate album.json");

    // Published while the origin was down.
    add_album(&ws, "later", 1, 3.0, false);
    let out = encore(&ws, &garage, &["ingest"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("later: published"), "{}", text(&out));

    let again = origin_in(&data, &garage, &ws, "again", store_toml).await;
    assert_eq!(
        status_of(&again.url, &url, &token).await,
        StatusCode::OK,
        "what it mirrored before is served"
    );
    assert!(
        listed_within(&again.url, "later", 300).await,
        "what was published meanwhile never reached the restarted origin"
    );
    // The unchanged album was not fetched and written again.
    let now = std::fs::metadata(&manifest)
        .and_then(|m| m.modified())
        .expect("manifest");
    assert_eq!(now, mirrored_at, "an unchanged album was mirrored again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_lists_the_bucket_at_start_and_fetches_only_the_records_requests_need() {
    let garage = Garage::start().await;
    let ws = published(&garage, "lazy", "bucketed", 2, 3.0, false);
    add_album(&ws, "other", 1, 3.0, false);
    let out = encore(&ws, &garage, &["ingest"]);
    assert!(text(&out).contains("other: published"), "{}", text(&out));
    // Refresh by SIGHUP only, so the test decides when the bucket is listed again.
    let (o, data) = origin(&garage, &ws, "lazy", "refresh_seconds = 3600\n").await;
    let records = || metric(&o.url, "store_remote_records");
    assert_eq!(records().await, 0, "records fetched before any request");
    assert!(
        !data.store().album_dir("bucketed").expect("dir").exists(),
        "an album's records were written before any request"
    );

    // The catalog page needs the albums' records, not their manifests.
    let listed = catalog(&o.url).await;
    assert!(
        listed.contains("\"bucketed\"") && listed.contains("\"other\""),
        "{listed}"
    );
    assert_eq!(
        records().await,
        2,
        "one publication record per album listed"
    );
    // Playing one rendition fetches its manifest, and no other.
    let token = util::token(&ws, "fan", Scope::Play, &["bucketed"]);
    let m = util::manifest(&ws, "bucketed", 1, "lossless");
    let url = segment_url(
        "bucketed",
        1,
        "lossless",
        &m.generation,
        &m.segments[0].file,
    );
    assert_eq!(status_of(&o.url, &url, &token).await, StatusCode::OK);
    assert_eq!(records().await, 3, "one manifest for one rendition played");
    let manifests = |album: &str| {
        util::files_under(&data.store().album_dir(album).expect("dir"))
            .into_iter()
            .filter(|p| p.ends_with("manifest.json"))
            .count()
    };
    assert_eq!(manifests("bucketed"), 1);
    assert_eq!(manifests("other"), 0);

    // A publication that changes reaches the running origin with one fetch: the bucket is
    // listed (no GET of an unchanged record), and only the changed record is fetched.
    std::fs::write(
        ws.album_dir("other").join("album.toml"),
        "title = \"Renamed\"\nartist = \"Tests\"\npreview_seconds = 2\npreview_start = 0\n",
    )
    .expect("album.toml");
    let out = encore(&ws, &garage, &["ingest"]);
    assert!(text(&out).contains("other: published"), "{}", text(&out));
    let pid = o.child.id().expect("pid") as i32;
    // SAFETY: kill(2) on the child's pid with a plain signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let mut renamed = false;
    for _ in 0..200 {
        if catalog(&o.url).await.contains("\"Renamed\"") {
            renamed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(renamed, "the changed publication never reached the origin");
    assert_eq!(
        records().await,
        4,
        "a refresh fetched more than the changed record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_disk_cache_stays_within_its_bound_while_a_larger_catalog_plays() {
    let garage = Garage::start().await;
    // About 4 MB of lossless noise in ~250 KB segments against a 1 MiB bound.
    let ws = published(&garage, "big", "bucketed", 2, 8.0, true);
    let bound = 1024 * 1024;
    let (o, data) = origin(&garage, &ws, "big", "local_cache_mb = 1\n").await;
    let token = util::token(&ws, "fan", Scope::Play, &["bucketed"]);
    let c = reqwest::Client::new();
    let mut total = 0;
    for track in 1..=2 {
        for (url, sealed) in segments(&ws, "bucketed", track, "lossless") {
            let r = c
                .get(format!("{}{url}", o.url))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), StatusCode::OK);
            assert!(r.bytes().await.expect("body")[..] == sealed[..]);
            total += sealed.len() as u64;
            let held = local_segment_bytes(&data.data());
            assert!(held <= bound, "{held} bytes on local disk, bound {bound}");
        }
    }
    assert!(
        total > 2 * bound,
        "the catalog played ({total} bytes) must exceed the bound"
    );
    assert!(metric(&o.url, "store_local_evictions").await > 0);
}

/// Content keys of an album in a bucket are rotated where `encore ingest` runs, and the
/// re-sealed generation reaches origins by its publication: an origin's admin API refuses the
/// rotation (its mirror is not what origins serve), the CLI rotation plus `encore ingest`
/// publish the new generation, and the running origin then serves it under the new key, the
/// same track as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_keys_rotate_where_ingest_runs_and_reach_origins_by_publication() {
    let garage = Garage::start().await;
    let ws = published(&garage, "rotate", "bucketed", 1, 4.0, false);
    let (o, _data) = origin(&garage, &ws, "rotate", "refresh_seconds = 3600\n").await;
    let token = util::token(&ws, "fan", Scope::Play, &["bucketed"]);
    let before = ws.path().join("before.m4a");
    fetch_track(&ws, &o.url, &token, "bucketed", &before);
    let old = util::manifest(&ws, "bucketed", 1, "lossless");

    let admin = util::token(&ws, "licensing", Scope::Admin, &[]);
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/admin/keys/content/rotate", o.url))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"album": "bucketed"}))
        .send()
        .await
        .expect("rotate");
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let problem: serde_json::Value = refused.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("encore ingest")),
        "{problem}"
    );

    let rotated = encore(
        &ws,
        &garage,
        &["keys", "rotate", "content", "--album", "bucketed"],
    );
    assert!(rotated.status.success(), "{}", text(&rotated));
    let new = util::manifest(&ws, "bucketed", 1, "lossless");
    assert_ne!(
        new.generation, old.generation,
        "a re-seal is a new generation"
    );
    assert_ne!(new.key_id, old.key_id, "under a new content key");
    let out = encore(&ws, &garage, &["ingest"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("bucketed: published"), "{}", text(&out));

    // SAFETY: kill(2) on the child's pid with a plain signal.
    assert_eq!(
        unsafe { libc::kill(o.child.id().expect("pid") as i32, libc::SIGHUP) },
        0
    );
    let manifest_url = format!("{}/v1/albums/bucketed/tracks/1/lossless/manifest", o.url);
    let mut switched = false;
    for _ in 0..200 {
        let body = reqwest::Client::new()
            .get(&manifest_url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("manifest")
            .text()
            .await
            .expect("body");
        if body.contains(&new.generation) {
            switched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(switched, "the origin never served the re-sealed generation");
    let after = ws.path().join("after.m4a");
    fetch_track(&ws, &o.url, &token, "bucketed", &after);
    assert!(
        std::fs::read(&before).expect("before") == std::fs::read(&after).expect("after"),
        "the re-sealed track plays differently"
    );
}

/// A miss while the bucket is down is a 503 with `Retry-After` (try again, or another origin),
/// not a 500 and not a wait for the request deadline; segments already local keep playing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_while_the_bucket_is_down_is_503_with_retry_after() {
    let mut garage = Garage::start().await;
    let ws = published(&garage, "down", "bucketed", 1, 4.0, false);
    let (o, _data) = origin(&garage, &ws, "down", "refresh_seconds = 3600\n").await;
    let token = util::token(&ws, "fan", Scope::Play, &["bucketed"]);
    let urls: Vec<String> = segments(&ws, "bucketed", 1, "lossless")
        .into_iter()
        .map(|(url, _)| format!("{}{url}", o.url))
        .collect();
    let c = reqwest::Client::new();
    let get = |url: String| {
        let (c, token) = (c.clone(), token.clone());
        async move { c.get(url).bearer_auth(token).send().await.expect("get") }
    };
    assert_eq!(get(urls[0].clone()).await.status(), StatusCode::OK);

    garage.stop();
    let r = get(urls[1].clone()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    let problem: serde_json::Value = r.json().await.expect("problem");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("store-unavailable")),
        "{problem}"
    );
    assert!(
        !problem.to_string().contains("127.0.0.1"),
        "the bucket's address leaked: {problem}"
    );
    // Fetched before the bucket went down: still served.
    assert_eq!(get(urls[0].clone()).await.status(), StatusCode::OK);
}
