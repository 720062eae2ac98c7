//! Buyer-only extras over real HTTP: sealed at ingest (a missing or mislabelled file is an
//! error of its own and the album is still packaged), listed in the catalog for everyone,
//! refused to a non-buyer, opened bit-exact for a buyer (and by `encore fetch --extra`), and
//! refused again after a refund.

use encore::license::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{self, TestServer, Workspace};

const ALBUM: &str = "with-extras";

/// A one-track album with a PDF letter and a PNG card that are fine, one extra whose file is
/// missing and one whose bytes are not what its extension says.
fn album_with_extras() -> (Workspace, Vec<u8>, Vec<u8>) {
    let ws = Workspace::new();
    let dir = ws.album_dir(ALBUM);
    std::fs::create_dir_all(dir.join("extras")).expect("extras dir");
    std::fs::write(
        dir.join("album.toml"),
        r#"title = "Extras"
artist = "Tests"
preview_seconds = 2

[[extras]]
file = "extras/letter.pdf"
title = "A letter"

[[extras]]
file = "extras/card.png"
title = "A photo card"

[[extras]]
file = "extras/missing.pdf"
title = "Never written"

[[extras]]
file = "extras/fake.jpg"
title = "Not a JPEG"
"#,
    )
    .expect("album.toml");
    let letter = b"%PDF-1.4\n% a letter for buyers only\n%%EOF\n".to_vec();
    let mut card = b"\x89PNG\r\n\x1a\n".to_vec();
    card.extend((0..4000u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(dir.join("extras/letter.pdf"), &letter).expect("letter");
    std::fs::write(dir.join("extras/card.png"), &card).expect("card");
    std::fs::write(dir.join("extras/fake.jpg"), b"%PDF-1.4 renamed").expect("fake");
    util::make_fixture(&dir.join("01.flac"), 44_100, 2, 3.0, &["-c:a", "flac"]);
    (ws, letter, card)
}

fn account_token(ws: &Workspace, user: &str) -> String {
    let out = ws.encore(&["token", "mint", "--scope", "account", "--sub", user]);
    assert!(out.status.success(), "{}", util::text(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

async fn play_token(c: &reqwest::Client, s: &TestServer, account: &str) -> String {
    let r = c
        .post(format!("{}/v1/play-tokens", s.url))
        .bearer_auth(account)
        .send()
        .await
        .expect("exchange");
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    v["token"].as_str().expect("token").to_string()
}

/// Status, problem type (if any) and body of `GET` extra `id` with `token`.
async fn get_extra(
    c: &reqwest::Client,
    s: &TestServer,
    token: &str,
    id: &str,
) -> (StatusCode, String, Vec<u8>) {
    let r = c
        .get(format!("{}/v1/albums/{ALBUM}/extras/{id}", s.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("extra");
    let status = r.status();
    let body = r.bytes().await.expect("body").to_vec();
    let kind = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, kind, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_is_refused_to_a_non_buyer_opened_by_a_buyer_and_refused_after_a_refund() {
    let (ws, letter, card) = album_with_extras();
    let out = ws.init_and_ingest();
    let said = util::text(&out);
    assert!(!out.status.success(), "bad extras are failures: {said}");
    assert!(said.contains("extras/missing.pdf does not exist"), "{said}");
    assert!(
        said.contains("extras/fake.jpg is not a image/jpeg file"),
        "{said}"
    );

    // Sealed on disk: the store never holds an extra's plaintext.
    let sealed = std::fs::read(
        ws.data()
            .join("store")
            .join(ALBUM)
            .join("extras/letter.enc"),
    )
    .expect("sealed letter");
    assert_eq!(&sealed[..4], b"ENCS");
    assert_eq!(sealed.len(), letter.len() + encore::seal::OVERHEAD);
    assert!(!sealed.windows(8).any(|w| w == b"a letter"));

    let s = TestServer::start(&ws).await;
    let c = reqwest::Client::new();

    // Listed for everyone, the album packaged despite the two bad extras.
    let album: Value = c
        .get(format!("{}/v1/albums/{ALBUM}", s.url))
        .send()
        .await
        .expect("album")
        .json()
        .await
        .expect("album json");
    assert_eq!(album["tracks"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        album["extras"],
        json!([
            {"id": "letter", "title": "A letter", "type": "application/pdf",
             "size": letter.len(), "url": format!("/v1/albums/{ALBUM}/extras/letter")},
            {"id": "card", "title": "A photo card", "type": "image/png",
             "size": card.len(), "url": format!("/v1/albums/{ALBUM}/extras/card")},
        ])
    );

    let store = util::token(&ws, "payments", Scope::Store, &[]);
    let account = account_token(&ws, "fan-1");

    // Not bought: the license gate's 403, for a play token and for a token of another scope.
    let early = play_token(&c, &s, &account).await;
    let (status, kind, _) = get_extra(&c, &s, &early, "letter").await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::FORBIDDEN, "urn:encore:problem:not-purchased")
    );
    let (status, _, _) = get_extra(&c, &s, &store, "letter").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = get_extra(&c, &s, &early, "missing").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an extra not packaged is not listed"
    );
    let r = c
        .get(format!("{}/v1/albums/{ALBUM}/extras/letter", s.url))
        .send()
        .await
        .expect("no token");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Bought: opened, bit for bit, with its type and no shared caching.
    let r = c
        .post(format!("{}/v1/purchases", s.url))
        .bearer_auth(&store)
        .json(
            &json!({"order_id": "order-x1", "user": "fan-1", "album": ALBUM,
            "price": 100, "currency": "EUR"}),
        )
        .send()
        .await
        .expect("purchase");
    assert_eq!(r.status(), StatusCode::CREATED);
    let play = play_token(&c, &s, &account).await;
    let r = c
        .get(format!("{}/v1/albums/{ALBUM}/extras/card", s.url))
        .bearer_auth(&play)
        .send()
        .await
        .expect("card");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    assert_eq!(r.bytes().await.expect("card bytes").to_vec(), card);
    let got = ws.path().join("letter.pdf");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .args([
            "fetch", "--server", &s.url, "--token", &play, "--album", ALBUM,
        ])
        .args(["--extra", "letter", "--out"])
        .arg(&got)
        .output()
        .await
        .expect("encore fetch --extra");
    assert!(run.status.success(), "{}", util::text(&run));
    assert_eq!(std::fs::read(&got).expect("fetched letter"), letter);

    // Refunded: the token from before is refused at once, and a new one names nothing.
    let r = c
        .post(format!("{}/v1/purchases/order-x1/refund", s.url))
        .bearer_auth(&store)
        .send()
        .await
        .expect("refund");
    assert_eq!(r.status(), StatusCode::OK);
    let (status, kind, _) = get_extra(&c, &s, &play, "letter").await;
    assert_eq!(
        (status, kind.as_str()),
        (
            StatusCode::FORBIDDEN,
            "urn:encore:problem:purchase-refunded"
        )
    );
    let after = play_token(&c, &s, &account).await;
    let (status, kind, _) = get_extra(&c, &s, &after, "card").await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::FORBIDDEN, "urn:encore:problem:not-purchased")
    );
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"))
        .args([
            "fetch", "--server", &s.url, "--token", &after, "--album", ALBUM,
        ])
        .args(["--extra", "letter", "--out"])
        .arg(ws.path().join("refused.pdf"))
        .output()
        .await
        .expect("encore fetch --extra");
    assert!(!run.status.success());
    assert!(!ws.path().join("refused.pdf").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_extra_is_not_sealed_again() {
    let (ws, _, _) = album_with_extras();
    let _ = ws.init_and_ingest();
    let path = ws.data().join("store").join(ALBUM).join("extras/card.enc");
    let first = std::fs::read(&path).expect("sealed card");
    let _ = ws.encore(&["ingest"]);
    assert_eq!(std::fs::read(&path).expect("sealed card"), first);
    // A changed source is sealed again (a fresh nonce: never the same bytes).
    let src = ws.album_dir(ALBUM).join("extras/card.png");
    let mut bytes = std::fs::read(&src).expect("card");
    bytes.push(1);
    std::fs::write(&src, &bytes).expect("card");
    let _ = ws.encore(&["ingest"]);
    let again = std::fs::read(&path).expect("sealed card");
    assert_ne!(again, first);
    assert_eq!(again.len(), bytes.len() + encore::seal::OVERHEAD);
}
