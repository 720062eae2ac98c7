//! `/.well-known/jwks.json`: the token-signing public keys, so edges verify tokens themselves.

use base64::Engine;
use http::Response;

use crate::http::app::App;
use crate::http::respond::{Body, json};

/// The JWKS document (RFC 7517, OKP keys per RFC 8037): every key trusted now, the pending one
/// (published before it signs) included, retired and revoked ones left out.
pub fn jwks(app: &App) -> Response<Body> {
    let keys: Vec<serde_json::Value> = app
        .keys()
        .keyring
        .public_keys()
        .into_iter()
        .map(|trusted| {
            let key = trusted.key;
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": key.kid().to_string(),
                "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            })
        })
        .collect();
    json(&serde_json::json!({ "keys": keys }), "public, max-age=300")
}
