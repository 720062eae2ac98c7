//! Verification end to end: minted and hand-made tokens, every header and claim refused.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::license::mint::{MintRequest, mint};
use crate::license::testutil::{Fixture, NOW, b64, sign_with};
use crate::seal::SigningKeyPair;

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

#[test]
fn minted_token_verifies() {
    let fx = Fixture::new();
    let token = fx.token("fan-1", Scope::Play, &["first-light", "second-wind"]);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid, Some(fx.key.kid().to_string()));

    let verified = fx.verifier().verify(&token).unwrap();
    let claims = verified.claims();
    assert_eq!(claims.sub, "fan-1");
    assert_eq!(claims.iss, "encore");
    assert_eq!(claims.aud, "encore");
    assert_eq!(claims.iat, NOW);
    assert_eq!(claims.exp, NOW + 3600);
    assert_eq!(claims.nbf, None);
    assert_eq!(claims.scope, Scope::Play);
    assert_eq!(claims.albums, ["first-light", "second-wind"]);
    assert_eq!(claims.jti.len(), 32);
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    assert_eq!(verified.token_hash(), &hash);
}

#[test]
fn raw_public_key_is_what_aws_lc_wants() {
    let fx = Fixture::new();
    let public = &fx.public[0];
    let token = fx.token("fan-1", Scope::Play, &[]);
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["encore"]);
    validation.validate_exp = false;
    let raw = DecodingKey::from_ed_der(public.verifying_key().as_bytes());
    assert!(jsonwebtoken::decode::<Value>(&token, &raw, &validation).is_ok());
    // aws-lc also takes SPKI DER (it switches on length); a wrong key does not verify.
    let spki = DecodingKey::from_ed_der(public.spki_der());
    assert!(jsonwebtoken::decode::<Value>(&token, &spki, &validation).is_ok());
    let other = SigningKeyPair::generate().unwrap().verifying_key();
    let wrong = DecodingKey::from_ed_der(other.as_bytes());
    let err = jsonwebtoken::decode::<Value>(&token, &wrong, &validation).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
    // The SPKI PEM route and the JWK `x` route land on the same 32 bytes.
    let pem = DecodingKey::from_ed_pem(public.to_spki_pem().unwrap().as_bytes()).unwrap();
    assert_eq!(pem.as_bytes(), public.verifying_key().as_bytes());
    let jwk = DecodingKey::from_ed_components(&b64(public.verifying_key().as_bytes())).unwrap();
    assert_eq!(jwk.as_bytes(), public.verifying_key().as_bytes());
}

#[test]
fn retired_keys_still_verify_and_kids_pick_the_key() {
    let fx = Fixture::new();
    let old = SigningKeyPair::generate().unwrap();
    let mut keys = fx.public.clone();
    keys.push(old.public().unwrap());
    let verifier = TokenVerifier::new(keys, VerifierConfig::default()).with_clock(fx.clock.clone());
    assert!(verifier.trusts(old.kid()) && verifier.trusts(fx.key.kid()));
    let req = MintRequest::new("fan-1", Scope::Play);
    verifier.verify(&mint(&old, &req, NOW).unwrap()).unwrap();
    verifier.verify(&fx.mint(&req)).unwrap();
}

#[test]
fn expired_with_leeway() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    let mut req = MintRequest::new("fan-1", Scope::Play);
    req.ttl_seconds = 3600;
    let long_ago = mint(&fx.key, &req, NOW - 7200).unwrap();
    let err = verifier.verify(&long_ago).unwrap_err();
    assert_eq!(err, TokenError::Expired);
    assert_eq!(err.problem_type(), "token-expired");

    // exp 10 s ago: inside the 30 s leeway. exp 30 s ago: out.
    req.ttl_seconds = 100;
    verifier
        .verify(&mint(&fx.key, &req, NOW - 110).unwrap())
        .unwrap();
    let at_edge = mint(&fx.key, &req, NOW - 130).unwrap();
    assert_eq!(verifier.verify(&at_edge), Err(TokenError::Expired));

    // The verifier reads its clock: the same fresh token expires as the clock moves.
    let fresh = fx.token("fan-1", Scope::Play, &[]);
    verifier.verify(&fresh).unwrap();
    fx.clock.set(NOW + 3600 + 30);
    assert_eq!(verifier.verify(&fresh), Err(TokenError::Expired));
}

#[test]
fn not_yet_valid() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    let mut req = MintRequest::new("fan-1", Scope::Play);
    req.not_before = Some(NOW + 600);
    let token = fx.mint(&req);
    let err = verifier.verify(&token).unwrap_err();
    assert_eq!(err, TokenError::NotYetValid);
    assert_eq!(err.problem_type(), "token-invalid");
    fx.clock.set(NOW + 600 - 30); // within leeway
    verifier.verify(&token).unwrap();

    // Issued in the future (iat beyond leeway) is refused too.
    fx.clock.set(NOW);
    let future = mint(&fx.key, &MintRequest::new("fan-1", Scope::Play), NOW + 600).unwrap();
    assert_eq!(verifier.verify(&future), Err(TokenError::NotYetValid));
}

#[test]
fn wrong_audience_and_issuer() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    let mut req = MintRequest::new("fan-1", Scope::Play);
    req.audience = "someone-else".into();
    assert_eq!(
        verifier.verify(&fx.mint(&req)),
        Err(TokenError::WrongAudience)
    );
    let mut req = MintRequest::new("fan-1", Scope::Play);
    req.issuer = "evil".into();
    assert_eq!(
        verifier.verify(&fx.mint(&req)),
        Err(TokenError::WrongIssuer)
    );
    // `aud` as an array containing ours is still refused (we mint a string).
    let claims = json!({"aud": ["encore", "x"]});
    let mut all = fx.claims_json();
    all["aud"] = claims["aud"].clone();
    assert!(
        verifier
            .verify(&fx.sign_raw(&fx.header_json(), &all))
            .is_err()
    );
}

#[test]
fn unknown_missing_or_garbage_kid() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    let stranger = SigningKeyPair::generate().unwrap();
    let token = mint(&stranger, &MintRequest::new("fan-1", Scope::Play), NOW).unwrap();
    assert_eq!(verifier.verify(&token), Err(TokenError::UnknownKid));

    let claims = fx.claims_json();
    for kid in ["../../etc/passwd", "", "0123456789ABCDEF"] {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
        let token = fx.sign_raw(&header, &claims);
        assert_eq!(
            verifier.verify(&token),
            Err(TokenError::UnknownKid),
            "{kid}"
        );
    }
    let header = json!({"alg": "EdDSA", "typ": "JWT"});
    assert_eq!(
        verifier.verify(&fx.sign_raw(&header, &claims)),
        Err(TokenError::MissingKid)
    );
}

#[test]
fn signature_by_another_key_under_our_kid() {
    let fx = Fixture::new();
    let stranger = SigningKeyPair::generate().unwrap();
    let token = sign_with(&stranger, &fx.header_json(), &fx.claims_json());
    assert_eq!(fx.verifier().verify(&token), Err(TokenError::BadSignature));
}

#[test]
fn tampered_payload() {
    let fx = Fixture::new();
    let token = fx.token("fan-1", Scope::Play, &[]);
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload = parts[1].to_owned().into_bytes();
    let mid = payload.len() / 2;
    payload[mid] = if payload[mid] == b'A' { b'B' } else { b'A' };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(payload).unwrap(),
        parts[2]
    );
    assert_eq!(
        fx.verifier().verify(&tampered),
        Err(TokenError::BadSignature)
    );

    // Granting oneself an album by re-encoding the claims fails the same way.
    let mut claims = fx.claims_json();
    claims["albums"] = json!(["first-light", "everything"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_eq!(fx.verifier().verify(&forged), Err(TokenError::BadSignature));
}

#[test]
fn alg_none_is_refused() {
    let fx = Fixture::new();
    let header = json!({"alg": "none", "typ": "JWT", "kid": fx.key.kid().to_string()});
    let unsigned = format!(
        "{}.{}.",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(&serde_json::to_vec(&fx.claims_json()).unwrap())
    );
    let err = fx.verifier().verify(&unsigned).unwrap_err();
    assert!(matches!(err, TokenError::Malformed(_)), "{err:?}");
    // Also with a signature part that is really an EdDSA signature over the same bytes.
    let signed = fx.sign_raw(&header, &fx.claims_json());
    assert!(fx.verifier().verify(&signed).is_err());
}

#[test]
fn hs256_with_the_public_key_as_secret_is_refused() {
    let fx = Fixture::new();
    let public = &fx.public[0];
    let pem = public.to_spki_pem().unwrap();
    let secrets: [&[u8]; 3] = [
        public.verifying_key().as_bytes(),
        public.spki_der(),
        pem.as_bytes(),
    ];
    for secret in secrets {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(fx.key.kid().to_string());
        let token = jsonwebtoken::encode(
            &header,
            &fx.claims_json(),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        // The forgery is well-formed: a verifier that trusted `alg` would accept it.
        let mut naive = Validation::new(Algorithm::HS256);
        naive.set_audience(&["encore"]);
        naive.validate_exp = false;
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(secret), &naive).unwrap();
        assert_eq!(
            fx.verifier().verify(&token),
            Err(TokenError::DisallowedAlgorithm)
        );
    }
}

#[test]
fn key_carrying_headers_are_refused() {
    let fx = Fixture::new();
    let x = b64(fx.public[0].verifying_key().as_bytes());
    let cases = [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jwk", json!({"kty": "OKP", "crv": "Ed25519", "x": x})),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUQ"])),
        ("crit", json!(["exp"])),
    ];
    for (name, value) in cases {
        let mut header = fx.header_json();
        header[name] = value;
        let token = fx.sign_raw(&header, &fx.claims_json());
        assert_eq!(
            fx.verifier().verify(&token),
            Err(TokenError::ForbiddenHeader(name)),
            "{name}"
        );
    }
}

#[test]
fn oversized_token_is_refused_before_parsing() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    // Garbage that parsing would call malformed: the size check comes first.
    let huge = "x".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
    assert_eq!(
        verifier.verify(&huge),
        Err(TokenError::TooLarge {
            len: DEFAULT_MAX_TOKEN_BYTES + 1,
            max: DEFAULT_MAX_TOKEN_BYTES
        })
    );
    // A validly signed token over the limit too.
    let albums: Vec<String> = (0..300).map(|i| format!("album-{i}")).collect();
    let albums: Vec<&str> = albums.iter().map(String::as_str).collect();
    let big = fx.token("fan-1", Scope::Play, &albums);
    assert!(big.len() > DEFAULT_MAX_TOKEN_BYTES);
    assert!(matches!(
        verifier.verify(&big),
        Err(TokenError::TooLarge { .. })
    ));
    let roomy = TokenVerifier::new(
        fx.public.clone(),
        VerifierConfig {
            max_token_bytes: 64 * 1024,
            ..VerifierConfig::default()
        },
    )
    .with_clock(fx.clock.clone());
    roomy.verify(&big).unwrap();
}

#[test]
fn missing_claims_are_named() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    for name in ["sub", "iat", "exp", "aud", "iss", "jti", "scope"] {
        let token = fx.sign_raw(&fx.header_json(), &without(fx.claims_json(), name));
        assert_eq!(
            verifier.verify(&token),
            Err(TokenError::MissingClaim(name.to_owned())),
            "{name}"
        );
    }
    // `albums` may be absent: nothing bought.
    let token = fx.sign_raw(&fx.header_json(), &without(fx.claims_json(), "albums"));
    assert!(verifier.verify(&token).unwrap().claims().albums.is_empty());
}

#[test]
fn bad_claim_values() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    let cases = [
        ("sub", json!("")),
        ("sub", json!("fan-1\nINFO encore::audit: forged")),
        ("sub", json!("fan 1")),
        ("sub", json!("x".repeat(129))),
        ("scope", json!("superuser")),
        ("exp", json!("tomorrow")),
        ("exp", json!(-5)),
        ("albums", json!("first-light")),
    ];
    for (name, value) in cases {
        let mut claims = fx.claims_json();
        claims[name] = value.clone();
        let err = verifier
            .verify(&fx.sign_raw(&fx.header_json(), &claims))
            .unwrap_err();
        assert!(
            matches!(err, TokenError::InvalidClaims(_)),
            "{name}: {err:?}"
        );
        // The message names no claim value.
        assert!(!err.to_string().contains("superuser"));
        assert!(!err.to_string().contains("tomorrow"));
    }
}

#[test]
fn keys_vouch_only_for_their_trust_domain() {
    let fx = Fixture::new();
    // encore's keys: every scope but `account`.
    for scope in Scope::ALL {
        let result = fx.verifier().verify(&fx.token("fan-1", scope, &[]));
        if scope == Scope::Account {
            assert_eq!(result, Err(TokenError::ScopeNotVouched));
        } else {
            result.unwrap();
        }
    }
    // An account-service verifier: `account` and nothing else, however well signed.
    let accounts = TokenVerifier::new(
        fx.public.clone(),
        VerifierConfig {
            scopes: ACCOUNT_SCOPES.to_vec(),
            ..VerifierConfig::default()
        },
    )
    .with_clock(fx.clock.clone());
    for scope in Scope::ALL {
        let result = accounts.verify(&fx.token("fan-1", scope, &[]));
        if scope == Scope::Account {
            result.unwrap();
        } else {
            let err = result.unwrap_err();
            assert_eq!(err, TokenError::ScopeNotVouched, "{scope}");
            assert_eq!(err.problem_type(), "token-invalid");
        }
    }
}

#[test]
fn garbage_is_malformed() {
    let verifier = Fixture::new().verifier();
    for token in ["", "abc", "a.b", "a.b.c", "!!!.e30.e30", "e30.e30.e30.e30"] {
        let err = verifier.verify(token).unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{token}: {err:?}");
    }
}
