//! Durability under SIGKILL: purchases are sent while the real `encore serve` process is
//! killed at random moments and restarted. Every purchase that got a 2xx must be in the
//! ledger afterwards, the database must pass `PRAGMA integrity_check`, and orders retried
//! after a crash must not be doubled. The logs of every run carry an audit line per purchase
//! with its request id, and never the token. On the SQLite ledger and again on PostgreSQL
//! (a database of its own: run under `pg_virtualenv -v 15`, as `.ci/run` does).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use encore::license::Scope;
use serde_json::{Value, json};

use crate::pg::PgDatabase;
use crate::util::{self, Workspace};

const ALBUM: &str = "durable";
const SENDERS: usize = 3;
const CRASHES: usize = 5;

/// Starts `encore serve` on an ephemeral port, its ledger in `db` if given (else SQLite under
/// data/); its stderr lines are appended to `log`.
async fn start(
    ws: &Workspace,
    db: Option<&PgDatabase>,
    log: Arc<Mutex<Vec<String>>>,
) -> util::ServeProcess {
    let Some(db) = db else {
        return util::ServeProcess::start(ws, &[], log).await;
    };
    let config = ws.path().join("postgres.toml");
    std::fs::write(&config, format!("[ledger]\nurl = \"{}\"\n", db.url)).expect("config");
    let config = config.to_str().expect("utf-8");
    util::ServeProcess::start(ws, &["--config", config], log).await
}

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    u64::from_le_bytes(b) % n
}

fn purchase_body(order: &str) -> Value {
    json!({"order_id": order, "user": format!("user-{order}"), "album": ALBUM,
        "price": 1500, "currency": "CNY"})
}

#[derive(Default)]
struct Book {
    /// Order id -> the body of its first 2xx.
    acked: BTreeMap<String, String>,
    /// Orders whose request got no answer (the server died): outcome unknown.
    unknown: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_purchases_survive_sigkill() {
    survive_sigkill(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_purchases_survive_sigkill_on_postgres() {
    let db = PgDatabase::create().await;
    survive_sigkill(Some(&db)).await;
    db.drop_database().await;
}

async fn survive_sigkill(db: Option<&PgDatabase>) {
    let ws = util::packaged_album(ALBUM, 1, 2.0);
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let book = Arc::new(Mutex::new(Book::default()));
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut next_order = 0u64;

    for round in 0..=CRASHES {
        let mut server = start(&ws, db, log.clone()).await;
        let url = server.url.clone();

        // Retry what the previous crash left unanswered, and replay some acknowledged
        // orders: each must come back 201 (never committed) or 200 (committed), never a
        // second row.
        let unknown: Vec<String> = std::mem::take(&mut book.lock().expect("book").unknown)
            .into_iter()
            .collect();
        for order in unknown {
            let r = c
                .post(format!("{url}/v1/purchases"))
                .bearer_auth(&store)
                .json(&purchase_body(&order))
                .send()
                .await
                .expect("retry after restart");
            let status = r.status().as_u16();
            assert!(status == 200 || status == 201, "retry of {order}: {status}");
            let body = r.text().await.expect("body");
            book.lock().expect("book").acked.insert(order, body);
        }
        let sample: Vec<(String, String)> = book
            .lock()
            .expect("book")
            .acked
            .iter()
            .rev()
            .take(5)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (order, first_body) in sample {
            let r = c
                .post(format!("{url}/v1/purchases"))
                .bearer_auth(&store)
                .json(&purchase_body(&order))
                .send()
                .await
                .expect("replay");
            assert_eq!(r.status().as_u16(), 200, "replay of acknowledged {order}");
            assert_eq!(r.text().await.expect("body"), first_body, "{order}");
        }
        if round == CRASHES {
            let _ = server.child.start_kill();
            let _ = server.child.wait().await;
            break;
        }

        // Traffic, then SIGKILL at a random moment.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for sender in 0..SENDERS {
            let (c, url, store, book, stop) = (
                c.clone(),
                url.clone(),
                store.clone(),
                book.clone(),
                stop.clone(),
            );
            let first = next_order + sender as u64 * 1_000_000;
            senders.push(tokio::spawn(async move {
                let mut n = first;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let order = format!("r{round}-{n}");
                    n += 1;
                    let sent = c
                        .post(format!("{url}/v1/purchases"))
                        .bearer_auth(&store)
                        .json(&purchase_body(&order))
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(r) => {
                            let status = r.status();
                            r.text().await.ok().map(|b| (status, b))
                        }
                        Err(_) => None,
                    };
                    let mut book = book.lock().expect("book");
                    match answer {
                        Some((status, body)) if status.is_success() => {
                            book.acked.insert(order, body);
                        }
                        Some((status, body)) => panic!("{order}: {status} {body}"),
                        None => {
                            book.unknown.insert(order);
                            break;
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(150 + random_below(600))).await;
        server.child.start_kill().expect("SIGKILL");
        let _ = server.child.wait().await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in senders {
            s.await.expect("sender");
        }
        next_order += 10_000_000;
    }

    let book = std::mem::take(&mut *book.lock().expect("book"));
    assert!(
        book.acked.len() >= 20,
        "too little traffic to mean anything: {} purchases",
        book.acked.len()
    );
    let ledger = match db {
        Some(db) => encore::ledger::Ledger::open_url(&db.url, db.name.clone()).await,
        None => {
            encore::ledger::Ledger::open_sqlite(&ws.data().join(encore::ledger::LEDGER_FILE)).await
        }
    }
    .expect("open the ledger after the last SIGKILL");
    assert_eq!(ledger.integrity_check().await.expect("integrity"), "ok");
    let stored: Vec<String> = ledger.order_ids().await.expect("orders");
    let stored_set: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), stored_set.len());
    for order in book.acked.keys() {
        assert!(stored_set.contains(order), "acknowledged {order} was lost");
    }
    // Everything stored was eventually acknowledged (retries resolved every unknown).
    assert_eq!(stored.len(), book.acked.len());
    // Buyer numbers are 1..=N in order: a crash never burns or repeats one.
    let numbers: BTreeSet<i64> = book
        .acked
        .values()
        .map(|b| {
            serde_json::from_str::<Value>(b).expect("receipt")["buyer_number"]
                .as_i64()
                .expect("number")
        })
        .collect();
    assert_eq!(numbers, (1..=stored.len() as i64).collect());
    ledger.close().await;

    // Audit: one line per acknowledged purchase request with its request id; no token.
    let log = log.lock().expect("log");
    let audits: Vec<Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "encore::audit" && v["fields"]["action"] == "purchase")
        .collect();
    assert!(
        audits.len() >= book.acked.len(),
        "{} audit lines",
        audits.len()
    );
    for a in &audits {
        let id = a["fields"]["request_id"].as_str().unwrap_or_default();
        assert!(id.len() >= 8, "audit line without a request id: {a}");
    }
    let payload = store.split('.').nth(1).expect("payload");
    assert!(
        !log.iter().any(|l| l.contains(payload)),
        "a token reached the logs"
    );
    eprintln!(
        "{} purchases acknowledged across {CRASHES} SIGKILLs; ledger intact",
        book.acked.len()
    );
}
