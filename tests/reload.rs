//! Hot reload of keys: a running server picks up a changed keys folder (file watch, SIGHUP or
//! `App::reload_keys`) without a restart, swaps the set whole, and keeps the old set when the
//! new one does not load.

use std::process::Stdio;
use std::time::Duration;

use encore::license::{MintRequest, Scope, mint};
use encore::seal::SigningKeyPair;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{self, TestServer, Workspace};

/// A new account-service key pair; its public half is written to `keys/accounts/NAME.pub.pem`.
fn add_account_key(ws: &Workspace, name: &str) -> SigningKeyPair {
    let pair = SigningKeyPair::generate().expect("key");
    let pem = pair
        .public()
        .and_then(|p| p.to_spki_pem())
        .expect("public pem");
    std::fs::write(
        ws.keys().join("accounts").join(format!("{name}.pub.pem")),
        pem,
    )
    .expect("write public key");
    pair
}

fn account_token(key: &SigningKeyPair, user: &str) -> String {
    let mut req = MintRequest::new(user, Scope::Account);
    req.issuer = "encore-accounts".into();
    mint(key, &req, util::now()).expect("mint")
}

async fn exchange_status(url: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{url}/v1/play-tokens"))
        .bearer_auth(token)
        .send()
        .await
        .expect("exchange")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_whole_sets_and_keeps_the_old_one_on_failure() {
    let ws = util::packaged_album("reload", 1, 2.0);
    let s = TestServer::start(&ws).await;
    let key = add_account_key(&ws, "partner");
    let token = account_token(&key, "fan-1");
    assert_eq!(
        exchange_status(&s.url, &token).await,
        StatusCode::UNAUTHORIZED
    );
    s.app.reload_keys().expect("reload");
    assert_eq!(exchange_status(&s.url, &token).await, StatusCode::CREATED);

    // A broken keys folder is refused whole: the running set keeps serving.
    let play = util::token(&ws, "fan-1", Scope::Play, &[]);
    let state = ws.keys().join("keyring.json");
    let good = std::fs::read(&state).expect("state");
    std::fs::write(&state, b"{ not json").expect("corrupt");
    assert!(s.app.reload_keys().is_err());
    assert_eq!(exchange_status(&s.url, &token).await, StatusCode::CREATED);
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v1/albums/reload/tracks/1/preview/manifest",
            s.url
        ))
        .bearer_auth(&play)
        .send()
        .await
        .expect("manifest");
    assert_eq!(r.status(), StatusCode::OK);
    std::fs::write(&state, good).expect("restore");

    // Removing the key and reloading stops trusting it at once (cached verification or not).
    std::fs::remove_file(ws.keys().join("accounts").join("partner.pub.pem")).expect("rm");
    s.app.reload_keys().expect("reload");
    assert_eq!(
        exchange_status(&s.url, &token).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_server_reloads_on_file_change_and_sighup() {
    let ws = util::packaged_album("reload-bin", 1, 2.0);
    let mut child = ws
        .serve_command(&["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("server output")
            .expect("read")
            .expect("server exited");
        if let Some(at) = line.find("encore listening on ") {
            break line[at + "encore listening on ".len()..].trim().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let c = reqwest::Client::new();
    for _ in 0..600 {
        if c.get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wait_for = |want: StatusCode, token: String| {
        let url = url.clone();
        async move {
            for _ in 0..100 {
                if exchange_status(&url, &token).await == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the server never answered {want}");
        }
    };

    // A new account-service key is trusted once the file lands, without a restart.
    let key = add_account_key(&ws, "partner");
    let token = account_token(&key, "fan-1");
    wait_for(StatusCode::CREATED, token.clone()).await;

    // SIGHUP reloads too: after removing the key, it is distrusted.
    std::fs::remove_file(ws.keys().join("accounts").join("partner.pub.pem")).expect("rm");
    let pid = child.id().expect("pid").to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_for(StatusCode::UNAUTHORIZED, token).await;
    let _ = child.start_kill();
}
