//! `encore serve` as a newcomer runs it: a fresh folder with the demo album and no keys.
//! Also HTTPS (rustls) and HTTP/2 cleartext on one port.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{self, TestServer};

/// Copies a folder with its subfolders (the demo album has `extras/`).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_serve_creates_dev_keys_packages_prints_tokens_and_picks_up_new_albums() {
    let ws = util::Workspace::new();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("media/first-light"),
        &ws.media().join("first-light"),
    );
    let mut serve = ws.serve_command(&["--listen", "127.0.0.1:0"]);
    // A small soft locked-memory limit under a larger hard one, as on many hosts: encore
    // raises it to pin cached segments' pages.
    // SAFETY: setrlimit is async-signal-safe and touches only the child about to exec.
    unsafe {
        serve.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = limit.rlim_max.min(64 * 1024);
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = serve
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn encore serve");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut url = None;
    let mut warned = false;
    while url.is_none() {
        let line = tokio::time::timeout_at(deadline.into(), stderr.next_line())
            .await
            .expect("server start timed out")
            .expect("read")
            .expect("stderr closed");
        warned |= line.contains("DEVELOPMENT keys");
        if let Some(rest) = line.split("encore listening on ").nth(1) {
            url = Some(rest.trim().to_string());
        }
    }
    let url = url.expect("url");
    assert!(warned, "creating dev keys is said loudly");
    let pid = child.id().expect("pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let memlock: Vec<&str> = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max locked memory"))
        .expect("a locked-memory line")
        .split_whitespace()
        .collect();
    assert_eq!(
        memlock[0], memlock[1],
        "the soft locked-memory limit is raised to the hard one: {memlock:?}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    // stdout: the welcome with a buyer's and a non-buyer's token and the fetch command.
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains(" fetch --server")) {
        let line = tokio::time::timeout_at(deadline.into(), stdout.next_line())
            .await
            .expect("welcome timed out")
            .expect("read")
            .expect("stdout closed");
        lines.push(line);
    }
    let after = |marker: &str| -> String {
        let i = lines
            .iter()
            .position(|l| l.trim_start().starts_with(marker))
            .unwrap_or_else(|| panic!("no {marker:?} in {lines:?}"));
        lines[i + 1].trim().to_string()
    };
    let buyer = after("buyer token");
    let listener = after("non-buyer token");
    assert!(ws.keys().join("keyring.json").exists());

    let c = reqwest::Client::new();
    let albums: serde_json::Value = c
        .get(format!("{url}/v1/albums"))
        .send()
        .await
        .expect("albums")
        .json()
        .await
        .expect("json");
    assert_eq!(albums["albums"][0]["id"], "first-light");
    assert_eq!(albums["albums"][0]["tracks"], 4);
    // A request has been answered, so the connection threads are up: they serve them.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect();
    assert!(
        threads.iter().any(|t| t == "encore-conn-0"),
        "no connection thread among {threads:?}"
    );

    let m = |t: &str, r: &str| {
        c.get(format!("{url}/v1/albums/first-light/tracks/1/{r}/manifest"))
            .bearer_auth(t.to_string())
            .send()
    };
    assert_eq!(m(&buyer, "lossless").await.expect("m").status(), 200);
    assert_eq!(m(&listener, "lossless").await.expect("m").status(), 403);
    assert_eq!(m(&listener, "preview").await.expect("m").status(), 200);

    // An album dropped into media/ later is packaged and served without a restart.
    let dir = ws.media().join("late-arrival");
    std::fs::create_dir_all(&dir).expect("mkdir");
    util::make_fixture(&dir.join("01.flac"), 44_100, 2, 2.0, &["-c:a", "flac"]);
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let v: serde_json::Value = c
            .get(format!("{url}/v1/albums"))
            .send()
            .await
            .expect("albums")
            .json()
            .await
            .expect("json");
        if v["albums"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == "late-arrival"))
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "the new album was not picked up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // SIGTERM: a clean, prompt exit.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exit after SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_rustls_and_h2c_on_the_plain_port() {
    let ws = util::packaged_album("tls-test", 1, 2.0);
    // h2c (HTTP/2 with prior knowledge) and HTTP/1.1 on the same plain port.
    let s = TestServer::start(&ws).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = h2
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .expect("h2c");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .expect("h1");
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // HTTPS with a self-signed certificate made by openssl.
    let (cert, key) = util::self_signed(&ws);
    let (addr, tx, server) = util::serve_tls(s.app.clone(), &cert, &key).await;
    let pem = std::fs::read(&cert).expect("cert");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .build()
        .expect("client");
    let r = client
        .get(format!("https://localhost:{}/v1/albums", addr.port()))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    let _ = tx.send(());
    server.await.expect("server task").expect("server");
}
