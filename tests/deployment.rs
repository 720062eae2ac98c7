//! Several origins behind a load balancer, as docs/DEPLOY.md deploys them: two real
//! `encore serve` processes on one PostgreSQL database behind a real nginx, one SIGKILLed
//! while players and the store's backend keep coming.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use encore::license::Scope;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::nginx::{Nginx, free_port};
use crate::pg::PgDatabase;
use crate::util::{self, ServeProcess, Workspace};

const ALBUM: &str = "first-light";

/// The load balancer of docs/DEPLOY.md: every request may go to the next origin when one
/// cannot be reached or answers 502/503/504 before a byte of its answer was sent; POSTs too,
/// because a purchase or refund repeated with its order id is answered from the ledger, never
/// recorded twice.
fn balancer_block(port: u16, origins: &[&str]) -> String {
    let servers: String = origins
        .iter()
        .map(|o| {
            let host = o.trim_start_matches("http://");
            format!("server {host} max_fails=1 fail_timeout=10s;\n")
        })
        .collect();
    format!(
        "log_format upstreams '$status $request_method $upstream_addr $upstream_status';\n\
         access_log logs/access.log upstreams;\n\
         upstream origins {{\n{servers} keepalive 32;\n}}\n\
         server {{\n\
           listen 127.0.0.1:{port};\n\
           location / {{\n\
             proxy_pass http://origins;\n\
             proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n\
             proxy_set_header Host $host;\n\
             proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;\n\
             proxy_next_upstream_tries 3;\n\
             proxy_connect_timeout 1s;\n\
           }}\n\
         }}\n"
    )
}

/// `encore serve` with `config`, its store in `data`, ready.
async fn origin(
    ws: &Workspace,
    config: &Path,
    data: &Path,
    log: Arc<Mutex<Vec<String>>>,
) -> ServeProcess {
    let mut cmd = ws.serve_command(&[
        "--listen",
        "127.0.0.1:0",
        "--log-json",
        "--config",
        config.to_str().expect("utf-8 path"),
    ]);
    cmd.env("ENCORE_DATA", data);
    ServeProcess::ready(cmd, log).await
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success(), "cp -a {from:?} {to:?}");
}

/// One origin SIGKILLed under load behind nginx: every player request and every purchase the
/// clients make is answered (the balancer sends what the dead origin cannot take to the other
/// one), and every purchase acknowledged to the store is in the ledger afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_killed_under_load_fails_no_request_and_loses_no_purchase() {
    let ws = util::packaged_album(ALBUM, 1, 20.0);
    let db = PgDatabase::create().await;
    let config = ws.path().join("encore.toml");
    std::fs::write(
        &config,
        format!(
            "[ledger]\nurl = \"{}\"\n[server]\nwatch_media = false\n",
            db.url
        ),
    )
    .expect("config");
    // Each origin has a store of its own (the same packaged album), as on two machines.
    let data_b = ws.path().join("data-b");
    copy_tree(&ws.data(), &data_b);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut a = origin(&ws, &config, &ws.data(), log.clone()).await;
    let b = origin(&ws, &config, &data_b, log.clone()).await;
    let prefix = tempfile::tempdir().expect("nginx prefix");
    let port = free_port();
    let lb = Nginx::start(
        prefix.path(),
        port,
        &balancer_block(port, &[&a.url, &b.url]),
    );

    let manifest = util::manifest(&ws, ALBUM, 1, "high");
    let segments: Arc<Vec<(String, String)>> = Arc::new(
        std::iter::once(&manifest.init)
            .chain(&manifest.segments)
            .map(|s| {
                let path = encore::store::library::segment_url(
                    ALBUM,
                    1,
                    "high",
                    &manifest.generation,
                    &s.file,
                );
                (format!("{}{path}", lb.url), s.sha256.clone())
            })
            .collect(),
    );
    let play = util::token(&ws, "listener", Scope::Play, &[ALBUM]);
    let store = util::token(&ws, "store-backend", Scope::Store, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let played = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (stop, failures, played) = (stop.clone(), failures.clone(), played.clone());
        let (segments, play) = (segments.clone(), play.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                for (url, sha256) in segments.iter() {
                    let answer = c.get(url).bearer_auth(&play).send().await;
                    let outcome = match answer {
                        Ok(r) if r.status() == 200 => match r.bytes().await {
                            Ok(body) if hex::encode(Sha256::digest(&body)) == *sha256 => Ok(()),
                            Ok(_) => Err("wrong bytes".to_string()),
                            Err(e) => Err(format!("body: {e}")),
                        },
                        Ok(r) => Err(format!("status {}", r.status())),
                        Err(e) => Err(format!("request: {e}")),
                    };
                    match outcome {
                        Ok(()) => played.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failures
                                .lock()
                                .expect("failures")
                                .push(format!("GET {url}: {e}"));
                            0
                        }
                    };
                }
            }
        }));
    }
    let acknowledged = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let mut buyers = Vec::new();
    for buyer in 0..2 {
        let (stop, failures, acknowledged) = (stop.clone(), failures.clone(), acknowledged.clone());
        let (url, store) = (format!("{}/v1/purchases", lb.url), store.clone());
        buyers.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let order = format!("order-{buyer}-{n}");
                let body = json!({"order_id": order, "user": format!("fan-{buyer}-{n}"),
                    "album": ALBUM, "price": 1500, "currency": "CNY"});
                match c.post(&url).bearer_auth(&store).json(&body).send().await {
                    Ok(r) if r.status() == 201 || r.status() == 200 => {
                        acknowledged.lock().expect("acknowledged").insert(order);
                    }
                    Ok(r) => failures
                        .lock()
                        .expect("failures")
                        .push(format!("POST {order}: status {}", r.status())),
                    Err(e) => failures
                        .lock()
                        .expect("failures")
                        .push(format!("POST {order}: {e}")),
                }
            }
        }));
    }

    // Both origins take traffic before one dies.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before_kill = played.load(Ordering::Relaxed);
    a.child.start_kill().expect("SIGKILL origin A");
    a.child.wait().await.expect("origin A gone");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks.into_iter().chain(buyers) {
        t.await.expect("client task");
    }

    let failures = failures.lock().expect("failures").clone();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let after_kill = played.load(Ordering::Relaxed) - before_kill;
    assert!(
        before_kill > 0 && after_kill > 0,
        "players played before ({before_kill}) and after ({after_kill}) the kill"
    );
    // The kill was felt: the balancer moved at least one request from A to B, and A had
    // answered requests before it died.
    let access = lb.log("access.log");
    let a_host = a.url.trim_start_matches("http://");
    assert!(
        access.lines().any(|l| l.contains(&format!("{a_host}, "))),
        "no request was retried away from the killed origin:\n{}",
        access.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(
        access
            .lines()
            .any(|l| l.ends_with(" 200") && l.contains(&format!(" {a_host} "))),
        "the killed origin answered nothing before it died"
    );

    let acknowledged = acknowledged.lock().expect("acknowledged").clone();
    assert!(!acknowledged.is_empty(), "no purchase was acknowledged");
    let mut conn = db.connect().await;
    let recorded: Vec<(String,)> = sqlx::query_as("SELECT order_id FROM purchases")
        .fetch_all(&mut conn)
        .await
        .expect("read the ledger");
    let recorded: BTreeSet<String> = recorded.into_iter().map(|(o,)| o).collect();
    let lost: Vec<_> = acknowledged.difference(&recorded).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not in the ledger: {lost:?}"
    );
    // Buyer numbers stay dense across the two origins and the kill.
    let numbers: Vec<(i64,)> =
        sqlx::query_as("SELECT buyer_number FROM purchases ORDER BY buyer_number")
            .fetch_all(&mut conn)
            .await
            .expect("read buyer numbers");
    let numbers: Vec<i64> = numbers.into_iter().map(|(n,)| n).collect();
    let dense: Vec<i64> = (1..=i64::try_from(numbers.len()).expect("count")).collect();
    assert_eq!(numbers, dense, "buyer numbers 1..=N");
    drop(conn);
    drop(b);
    drop(lb);
    db.drop_database().await;
}
