//! The ledger under faults, on a real `encore serve` process: writes that fail in the kernel
//! (a file-size limit set on the running server, so SQLite's commit gets `EFBIG` exactly as it
//! would get `ENOSPC` from a full disk) must give clean 503s with `Retry-After`, turn
//! `/readyz` to 503, and leave no damaged connection behind once the cause is gone.

use std::sync::{Arc, Mutex};

use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{self, ServeProcess, Workspace};

/// Sets the soft and hard `RLIMIT_FSIZE` of process `pid` (same user: no privilege needed
/// while the hard limit is not raised past what it was).
fn set_file_size_limit(pid: u32, soft: libc::rlim_t, hard: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: prlimit with a valid resource, a pointer to a local struct and no old-value
    // pointer; it touches only the kernel's limits of `pid`.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// `encore serve` with SIGXFSZ ignored (as a supervisor with a file-size limit would run
/// it), so a write past the limit fails with `EFBIG` instead of killing the process.
async fn serve(ws: &Workspace, log: Arc<Mutex<Vec<String>>>) -> (tokio::process::Child, String) {
    let mut cmd = ws.serve_command(&["--listen", "127.0.0.1:0", "--log-json"]);
    // SAFETY: signal(2) is async-signal-safe and allocates nothing, so it may run between
    // fork and exec; an ignored signal stays ignored across exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    ServeProcess::spawn(cmd, log).await
}

async fn purchase(c: &reqwest::Client, url: &str, store: &str, order: &str) -> reqwest::Response {
    let body = json!({"order_id": order, "user": format!("fan-{order}"), "album": "alpha",
        "price": 1500, "currency": "CNY"});
    c.post(format!("{url}/v1/purchases"))
        .bearer_auth(store)
        .json(&body)
        .send()
        .await
        .expect("purchase answered (no hang)")
}

/// A 503 `ledger-unavailable` problem with a `Retry-After` in seconds.
async fn assert_unavailable(r: reqwest::Response, what: &str) {
    let status = r.status();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "{what}: Retry-After missing"
    );
    assert_eq!(
        body["type"], "urn:encore:problem:ledger-unavailable",
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commits_give_503_and_leave_no_poisoned_connection() {
    let ws = util::packaged_album("alpha", 1, 2.0);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (child, url) = serve(&ws, log.clone()).await;
    let pid = child.id().expect("pid");
    let c = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client");
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let ready = |c: reqwest::Client, url: String| async move {
        c.get(format!("{url}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
    };
    // Ready once the catalog is loaded (after the listening line), as `ServeProcess` waits.
    let mut up = false;
    for _ in 0..600 {
        if ready(c.clone(), url.clone()).await == StatusCode::OK {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "server never became ready");
    let r = purchase(&c, &url, &store, "before").await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // The disk "fills": every write the server makes from now on fails in the kernel.
    set_file_size_limit(pid, 0, libc::RLIM_INFINITY);
    let mut during = Vec::new();
    for i in 0..8 {
        let (c, url, store) = (c.clone(), url.clone(), store.clone());
        during.push(tokio::spawn(async move {
            purchase(&c, &url, &store, &format!("during-{i}")).await
        }));
    }
    for (i, t) in during.into_iter().enumerate() {
        assert_unavailable(t.await.expect("task"), &format!("purchase during-{i}")).await;
    }
    let r = c
        .post(format!("{url}/v1/purchases/before/refund"))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund answered");
    assert_unavailable(r, "refund during the outage").await;
    assert_eq!(
        ready(c.clone(), url.clone()).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz while the ledger cannot commit"
    );

    // Space is freed: the next requests succeed without a restart.
    set_file_size_limit(pid, libc::RLIM_INFINITY, libc::RLIM_INFINITY);
    assert_eq!(
        ready(c.clone(), url.clone()).await,
        StatusCode::OK,
        "/readyz once the ledger can commit again"
    );
    for i in 0..8 {
        let r = purchase(&c, &url, &store, &format!("during-{i}")).await;
        assert_eq!(r.status(), StatusCode::CREATED, "retry of during-{i}");
    }
    for i in 0..20 {
        let r = purchase(&c, &url, &store, &format!("after-{i}")).await;
        let status = r.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "after-{i}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let r = c
        .post(format!("{url}/v1/purchases/before/refund"))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status(), StatusCode::OK);
    drop(child);
    let lines = log.lock().expect("log");
    assert!(
        !lines.iter().any(|l| l.contains("transaction depth")),
        "a connection was reused mid-transaction"
    );
}
