//! Trust domains: which key may vouch for which scope, on every route that takes a token.
//! encore's own signing keys vouch for `play`, `edge`, `store` and `admin`; the account
//! service's keys (`keys/accounts/`) for `account` alone. The table below is the whole
//! scope × issuer × route matrix, sent to a real server.

use encore::license::{MintRequest, Scope, mint};
use encore::seal::SigningKeyPair;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::util::{self, Workspace};

const ALBUM: &str = "trust";
const USER: &str = "fan-1";

/// Who signed a token.
#[derive(Clone, Copy, Debug)]
enum Issuer {
    /// encore's active signing key, `iss` = encore.
    Encore,
    /// An account-service key in `keys/accounts/`, `iss` = encore-accounts.
    AccountService,
}

/// The columns of the table, in its order.
const COLUMNS: [(Issuer, Scope); 10] = [
    (Issuer::Encore, Scope::Play),
    (Issuer::Encore, Scope::Edge),
    (Issuer::Encore, Scope::Store),
    (Issuer::Encore, Scope::Admin),
    (Issuer::Encore, Scope::Account),
    (Issuer::AccountService, Scope::Play),
    (Issuer::AccountService, Scope::Edge),
    (Issuer::AccountService, Scope::Store),
    (Issuer::AccountService, Scope::Admin),
    (Issuer::AccountService, Scope::Account),
];

/// A new account-service key pair; its public half goes to `keys/accounts/NAME.pub.pem`.
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

fn token(ws: &Workspace, accounts: &SigningKeyPair, issuer: Issuer, scope: Scope) -> String {
    match issuer {
        Issuer::Encore => util::token(ws, USER, scope, &[]),
        Issuer::AccountService => {
            let mut req = MintRequest::new(USER, scope);
            req.issuer = "encore-accounts".into();
            mint(accounts, &req, util::now()).expect("mint")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_issuer_route_matrix() {
    let ws = util::packaged_album(ALBUM, 1, 6.0);
    let accounts = add_account_key(&ws, "partner");
    let s = util::TestServer::start(&ws).await;
    let c = reqwest::Client::new();

    // Where the preview rendition's files live (read with an edge token, outside the table).
    let edge = util::token(&ws, "edge-1", Scope::Edge, &[]);
    let manifest: Value = c
        .get(format!(
            "{}/v1/albums/{ALBUM}/tracks/1/preview/manifest",
            s.url
        ))
        .bearer_auth(&edge)
        .send()
        .await
        .expect("manifest")
        .json()
        .await
        .expect("manifest json");
    let segment = manifest["segments"][0]["url"]
        .as_str()
        .expect("segment url")
        .to_owned();
    let (generation_dir, _) = segment.rsplit_once('/').expect("segment dir");
    let generation = generation_dir.rsplit('/').next().expect("generation");
    let hls = format!("/v1/albums/{ALBUM}/tracks/1/preview/hls/{generation}");

    // Expected status per column (encore: play edge store admin account | account service:
    // play edge store admin account). The last two rows change state; they run last.
    const U: u16 = 401;
    const F: u16 = 403;
    // Past the scope check, refused on entitlement: 403 `not-purchased`.
    const N: u16 = 1403;
    let rows: Vec<(Method, String, Option<Value>, [u16; 10])> = vec![
        (
            Method::POST,
            "/v1/licenses".into(),
            Some(json!({"album": ALBUM, "track": 1})),
            [200, F, F, F, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/purchases".into(),
            Some(
                json!({"order_id": "o-1", "user": USER, "album": ALBUM, "price": 100,
                "currency": "CNY"}),
            ),
            [F, F, 201, F, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/purchases/no-such-order/refund".into(),
            None,
            [F, F, 404, F, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/play-tokens".into(),
            None,
            [F, F, F, F, U, U, U, U, U, 201],
        ),
        (
            Method::GET,
            format!("/v1/users/{USER}/albums"),
            None,
            [F, F, 200, F, U, U, U, U, U, 200],
        ),
        (
            Method::GET,
            "/v1/devices".into(),
            None,
            [F, F, F, F, U, U, U, U, U, 200],
        ),
        (
            Method::POST,
            "/v1/offline-licenses".into(),
            Some(json!({"album": ALBUM, "device_id": "dev-0123456789abcdef"})),
            [N, F, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("/v1/albums/{ALBUM}/tracks/1/preview/manifest"),
            None,
            [200, 200, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            segment.clone(),
            None,
            [200, 200, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("{generation_dir}/9999.enc"),
            None,
            [404, 404, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("/v1/albums/{ALBUM}/tracks/1/master.m3u8"),
            None,
            [200, 200, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("/v1/albums/{ALBUM}/tracks/1/preview/index.m3u8"),
            None,
            [200, 200, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("/v1/albums/{ALBUM}/master.m3u8"),
            None,
            [200, 200, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("/v1/albums/{ALBUM}/preview/index.m3u8"),
            None,
            [200, 200, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("{hls}/init.mp4"),
            None,
            [200, 200, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            format!("{hls}/key"),
            None,
            [200, F, F, F, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            "/v1/admin/keys".into(),
            None,
            [F, F, F, 200, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/admin/keys/signing/0000000000000000/revoke".into(),
            None,
            [F, F, F, 404, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/admin/keys/content/rotate".into(),
            Some(json!({"album": "no-such-album"})),
            [F, F, F, 404, U, U, U, U, U, F],
        ),
        (
            Method::GET,
            "/v1/admin/jobs/999".into(),
            None,
            [F, F, F, 404, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/admin/keys/maintain".into(),
            None,
            [F, F, F, 200, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/admin/keys/kek/rotate".into(),
            None,
            [F, F, F, 200, U, U, U, U, U, F],
        ),
        (
            Method::POST,
            "/v1/admin/keys/signing/rotate".into(),
            None,
            [F, F, F, 200, U, U, U, U, U, F],
        ),
    ];

    let tokens: Vec<String> = COLUMNS
        .iter()
        .map(|&(issuer, scope)| token(&ws, &accounts, issuer, scope))
        .collect();
    let mut wrong = Vec::new();
    for (method, path, body, expected) in &rows {
        for (col, token) in tokens.iter().enumerate() {
            let mut req = c
                .request(method.clone(), format!("{}{path}", s.url))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.expect("request");
            let status = r.status();
            let (issuer, scope) = COLUMNS[col];
            let (want, forbidden) = match expected[col] {
                N => (403, "urn:encore:problem:not-purchased"),
                code => (code, "urn:encore:problem:scope-not-allowed"),
            };
            if status.as_u16() != want {
                wrong.push(format!(
                    "{method} {path} with {issuer:?}/{scope}: {status}, expected {want}"
                ));
            }
            if status == StatusCode::UNAUTHORIZED {
                let p: Value = r.json().await.expect("problem");
                assert_eq!(p["type"], "urn:encore:problem:token-invalid", "{path}");
            } else if status == StatusCode::FORBIDDEN {
                let p: Value = r.json().await.expect("problem");
                assert_eq!(p["type"], forbidden, "{path} with {issuer:?}/{scope}");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_tokens_open_only_their_own_library() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let accounts = add_account_key(&ws, "partner");
    let s = util::TestServer::start(&ws).await;
    let mine = token(&ws, &accounts, Issuer::AccountService, Scope::Account);
    let r = reqwest::Client::new()
        .get(format!("{}/v1/users/someone-else/albums", s.url))
        .bearer_auth(&mine)
        .send()
        .await
        .expect("library");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let p: Value = r.json().await.expect("problem");
    assert_eq!(p["type"], "urn:encore:problem:not-your-library");
}
