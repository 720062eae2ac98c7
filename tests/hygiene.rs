//! Hygiene: the ledger's files are the owner's alone, problem details never carry a
//! filesystem path, and a token `sub` that could forge a log line is refused.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{self, ServeProcess, TestServer, Workspace};

const ALBUM: &str = "hygiene";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_the_ledger_are_private() {
    // `encore ingest` makes the data folder; `encore serve` the ledger in it.
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    assert_eq!(mode(&ws.data()), 0o700, "data folder");
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = ServeProcess::start(&ws, &[], log).await;
    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/purchases", server.url))
        .bearer_auth(&store)
        .json(
            &json!({"order_id": "o-1", "user": "fan-1", "album": ALBUM, "price": 100,
            "currency": "CNY"}),
        )
        .send()
        .await
        .expect("purchase");
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut seen = 0;
    for entry in std::fs::read_dir(ws.data()).expect("data folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("ledger.sqlite") {
            assert_eq!(mode(&path), 0o600, "{name}");
            seen += 1;
        }
    }
    assert!(seen >= 2, "the database and its WAL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_world_readable_ledger_is_narrowed() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.data()).expect("data");
    let path = ws.data().join(encore::ledger::LEDGER_FILE);
    std::fs::write(&path, b"").expect("empty ledger");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let _ledger = encore::ledger::Ledger::open_sqlite(&path)
        .await
        .expect("open");
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_details_carry_no_paths() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let admin = util::token(&ws, "ops", Scope::Admin, &[]);
    let root = ws.path().to_str().expect("utf-8 path").to_owned();
    let cases = [
        (
            "/v1/admin/keys/signing/0000000000000000/revoke",
            Value::Null,
        ),
        (
            "/v1/admin/keys/content/rotate",
            json!({"album": "no-such-album"}),
        ),
        (
            "/v1/admin/keys/content/rotate",
            json!({"album": ALBUM, "track": 9}),
        ),
    ];
    for (path, body) in cases {
        let mut req = c.post(format!("{}{path}", s.url)).bearer_auth(&admin);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await.expect("admin");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} {body}");
        let text = r.text().await.expect("body");
        assert!(!text.contains(&root), "{path}: {text}");
        assert!(!text.contains("/tmp/"), "{path}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_that_could_forge_a_log_line_is_refused() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let s = TestServer::start(&ws).await;
    let key = ws.keyring().signing_key().expect("signing key");
    let now = util::now();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid().to_string());
    let der = key.to_pkcs8_der().expect("der");
    let sign = |sub: &str| {
        let claims = json!({"iss": "encore", "aud": "encore", "sub": sub, "iat": now,
            "exp": now + 600, "jti": "00112233445566778899aabbccddeeff", "scope": "admin"});
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&der),
        )
        .expect("sign")
    };
    let c = reqwest::Client::new();
    let get = |token: String| {
        c.get(format!("{}/v1/admin/keys", s.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(get(sign("ops")).await.expect("ok").status(), StatusCode::OK);
    for sub in [
        "ops\n2026-12-05T00:00:00Z INFO encore::audit: action=\"grant\"",
        "ops\r",
        "ops two",
    ] {
        let r = get(sign(sub)).await.expect("refused");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{sub:?}");
    }
    // `encore token mint` refuses to make one.
    let out = ws.encore(&["token", "mint", "--scope", "admin", "--sub", "ops\nforged"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}
