use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

use super::*;

/// Where the recorded test vector lives (`docs/OFFLINE.md`; opened in Python by
/// `tests/offline_vector.py`).
const VECTOR: &str = include_str!("../../../tests/offline_vector.json");
const VECTOR_PATH: &str = "tests/offline_vector.json";

fn signer_from_seed(seed: [u8; 32]) -> SigningKeyPair {
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    SigningKeyPair::from_pkcs8_pem(&pem).unwrap()
}

fn terms() -> LicenseTerms {
    LicenseTerms {
        license_id: "lic-00112233445566778899aabbccddeeff".into(),
        user: "fan-1".into(),
        album: "first-light".into(),
        device_id: "dev-0123456789abcdef".into(),
        issued_at: 1_893_456_000,
        expires_at: 1_893_456_000 + 30 * 86_400,
    }
}

fn keys() -> Vec<OfflineKey> {
    let mut out = Vec::new();
    for (track, rendition, fill) in [
        (1, "lossless", 0x11u8),
        (1, "preview", 0x22),
        (2, "lossless", 0x33),
    ] {
        let mut id = [0u8; 16];
        id[15] = fill;
        let id: KeyId = hex::encode(id).parse().unwrap();
        out.push(OfflineKey::of(
            track,
            rendition,
            &ContentKey::from_bytes(id, [fill; 32]),
        ));
    }
    out
}

fn lookup(signer: &SigningKeyPair) -> impl Fn(&SigningKid) -> Option<VerifyingKey> + '_ {
    move |kid| (*kid == signer.kid()).then(|| signer.verifying_key())
}

#[test]
fn opens_on_its_device_before_expiry_only() {
    let signer = SigningKeyPair::generate().unwrap();
    let device = DeviceSecret::generate().unwrap();
    let t = terms();
    let license = issue(&t, keys(), &device.public(), &signer).unwrap();
    let opened = open(&license, lookup(&signer), &device, t.issued_at).unwrap();
    assert_eq!(opened.terms, t);
    assert_eq!(opened.keys, keys());
    assert_eq!(opened.keys_for(1, "lossless").len(), 1);
    let last = t.expires_at - 1;
    assert!(open(&license, lookup(&signer), &device, last).is_ok());
    assert!(matches!(
        open(&license, lookup(&signer), &device, t.expires_at),
        Err(OfflineError::Expired { expires_at }) if expires_at == t.expires_at
    ));
    let other = DeviceSecret::generate().unwrap();
    assert!(matches!(
        open(&license, lookup(&signer), &other, t.issued_at),
        Err(OfflineError::WrongDevice { .. })
    ));
    let stranger = SigningKeyPair::generate().unwrap();
    assert!(matches!(
        open(&license, lookup(&stranger), &device, t.issued_at),
        Err(OfflineError::UnknownSigner(_))
    ));
}

/// A payload changed after signing fails the signature; terms re-signed by the server's key
/// around another license's ciphertext (a longer expiry, another album or device) fail HPKE,
/// because the terms are the AEAD's associated data.
#[test]
fn terms_cannot_be_changed_or_moved() {
    let signer = SigningKeyPair::generate().unwrap();
    let device = DeviceSecret::generate().unwrap();
    let t = terms();
    let license = issue(&t, keys(), &device.public(), &signer).unwrap();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&license.payload).unwrap()).unwrap();
    payload["expires_at"] = (t.expires_at + 86_400).into();
    let mut tampered = license.clone();
    tampered.payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    assert!(matches!(
        open(&tampered, lookup(&signer), &device, t.issued_at),
        Err(OfflineError::BadSignature)
    ));
    for field in ["expires_at", "album", "device_id", "license_id"] {
        let mut p = payload.clone();
        p["expires_at"] = t.expires_at.into();
        p[field] = match field {
            "expires_at" => (t.expires_at + 86_400).into(),
            _ => "other".into(),
        };
        let bytes = serde_json::to_vec(&p).unwrap();
        let mut signed = SIGNING_CONTEXT.to_vec();
        signed.extend_from_slice(&bytes);
        let resigned = SignedLicense {
            payload: URL_SAFE_NO_PAD.encode(&bytes),
            signature: URL_SAFE_NO_PAD.encode(signer.signing_key().sign(&signed).to_bytes()),
            ..license.clone()
        };
        assert!(
            matches!(
                open(&resigned, lookup(&signer), &device, t.issued_at),
                Err(OfflineError::WrongDevice { .. })
            ),
            "{field}"
        );
    }
}

#[test]
fn device_key_files_round_trip_and_refuse_a_mismatched_x() {
    let device = DeviceSecret::generate().unwrap();
    let jwk = device.to_jwk();
    let back = DeviceSecret::from_jwk(&jwk).unwrap();
    assert_eq!(back.public(), device.public());
    assert!(
        !format!("{device:?}").contains(&*URL_SAFE_NO_PAD.encode(device.hpke_private().to_bytes()))
    );
    let other = DeviceSecret::generate().unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    v["x"] = other.public().to_string().into();
    assert!(DeviceSecret::from_jwk(&v.to_string()).is_err());
    assert_eq!(
        DevicePublicKey::parse(&device.public().to_string()).unwrap(),
        device.public()
    );
    assert!(DevicePublicKey::parse("AAAA").is_err());
    assert!(DevicePublicKey::parse(&URL_SAFE_NO_PAD.encode([0u8; 32])).is_err());
}

/// The vector as this code makes it now, from fixed inputs.
fn make_vector() -> serde_json::Value {
    let device_ikm = [0x42u8; 32];
    let device = DeviceSecret::derive(&device_ikm);
    let hpke_seed = [0x07u8; 32];
    let signing_seed = [0x5au8; 32];
    let signer = signer_from_seed(signing_seed);
    let t = terms();
    let license = issue_seeded(
        &t,
        keys(),
        &device.public(),
        &signer,
        Zeroizing::new(hpke_seed),
    )
    .unwrap();
    let mut h = Sha256::new();
    h.update(hpke_seed);
    h.update(0u64.to_be_bytes());
    let ikm_e = h.finalize();
    let device_jwk: serde_json::Value = serde_json::from_str(&device.to_jwk()).unwrap();
    serde_json::json!({
        "description": "encore offline license test vector (docs/OFFLINE.md): open `license` with `device_jwk` at `now`; `expected_keys` is the plaintext's `keys`",
        "device_ikm": hex::encode(device_ikm),
        "device_jwk": device_jwk,
        "hpke_seed": hex::encode(hpke_seed),
        "ikm_e": hex::encode(ikm_e),
        "signing_seed": hex::encode(signing_seed),
        "server_jwk": {
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": signer.kid().to_string(),
            "x": URL_SAFE_NO_PAD.encode(signer.verifying_key().to_bytes()),
        },
        "now": t.issued_at + 3600,
        "aad": String::from_utf8(t.aad()).unwrap(),
        "license": license,
        "expected_terms": t,
        "expected_keys": keys(),
    })
}

/// The committed vector is what this code makes from its fixed inputs, byte for byte (the
/// HPKE ephemeral key comes from `hpke_seed`, Ed25519 signatures are deterministic), and it
/// opens. `ENCORE_WRITE_VECTOR=1` rewrites the file after a deliberate format change.
#[test]
fn the_recorded_vector_is_reproduced_and_opens() {
    let made = serde_json::to_string_pretty(&make_vector()).unwrap() + "\n";
    if std::env::var_os("ENCORE_WRITE_VECTOR").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(VECTOR_PATH);
        std::fs::write(path, &made).unwrap();
        return;
    }
    assert_eq!(
        made, VECTOR,
        "run with ENCORE_WRITE_VECTOR=1 after a format change"
    );
    let v: serde_json::Value = serde_json::from_str(VECTOR).unwrap();
    let device = DeviceSecret::from_jwk(&v["device_jwk"].to_string()).unwrap();
    let license: SignedLicense = serde_json::from_value(v["license"].clone()).unwrap();
    let x = URL_SAFE_NO_PAD
        .decode(v["server_jwk"]["x"].as_str().unwrap())
        .unwrap();
    let server = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
    let opened = open(
        &license,
        |_| Some(server),
        &device,
        v["now"].as_u64().unwrap(),
    )
    .unwrap();
    assert_eq!(opened.keys, keys());
}
