#!/usr/bin/env python3
"""An independent opener of encore's offline license (docs/OFFLINE.md), in Python with pyhpke
(RFC 9180) and cryptography (Ed25519). Run by tests/offline.rs on tests/offline_vector.json:

    python3 tests/offline_vector.py tests/offline_vector.json

Needs `pip install pyhpke==0.6.5` (which brings `cryptography`). Exits non-zero with a message
on any failure; prints "ok" and the keys it opened on success.
"""

import base64
import json
import sys

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey
except ImportError as e:  # never a silent skip: say how to get it
    sys.exit(f"missing Python package ({e}): pip install pyhpke==0.6.5")

FORMAT = "encore-offline-license-1"
SUITE = "0x0020/0x0001/0x0003"
HPKE_INFO = b"encore offline license v1"
SIGNING_CONTEXT = b"encore-offline-license-v1\x00"
TERMS = ["license_id", "user", "album", "device_id", "issued_at", "expires_at"]


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def open_license(license, server_jwk, device_jwk, now):
    if license["format"] != FORMAT:
        raise ValueError("format")
    if license["kid"] != server_jwk["kid"]:
        raise ValueError("unknown signer")
    payload = b64url(license["payload"])
    server = Ed25519PublicKey.from_public_bytes(b64url(server_jwk["x"]))
    server.verify(b64url(license["signature"]), SIGNING_CONTEXT + payload)
    p = json.loads(payload)
    if p["v"] != 1 or p["suite"] != SUITE:
        raise ValueError("version or suite")
    if now >= p["expires_at"]:
        raise ValueError("expired")
    aad = "encore-offline-license-v1" + "".join(f"\n{k}={p[k]}" for k in TERMS)
    suite = CipherSuite.new(
        KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305
    )
    sk = KEMKey.from_jwk(device_jwk)
    ctx = suite.create_recipient_context(b64url(p["enc"]), sk, info=HPKE_INFO)
    plaintext = ctx.open(b64url(p["ciphertext"]), aad=aad.encode())
    return {k: p[k] for k in TERMS}, aad, json.loads(plaintext)["keys"]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/offline_vector.json"
    with open(path) as f:
        v = json.load(f)
    terms, aad, keys = open_license(v["license"], v["server_jwk"], v["device_jwk"], v["now"])
    assert aad == v["aad"], (aad, v["aad"])
    assert terms == v["expected_terms"], terms
    assert keys == v["expected_keys"], keys
    # Past the expiry, with another device's key and with a tampered payload: refused.
    for case, args in [
        ("expired", (v["license"], v["server_jwk"], v["device_jwk"], terms["expires_at"])),
        (
            "another device",
            (
                v["license"],
                v["server_jwk"],
                KEMKey.from_pyca_cryptography_key(X25519PrivateKey.generate()),
                v["now"],
            ),
        ),
        (
            "tampered",
            (dict(v["license"], payload=v["license"]["payload"][:-4] + "AAAA"),
             v["server_jwk"], v["device_jwk"], v["now"]),
        ),
    ]:
        try:
            if case == "another device":
                lic, jwk, key, now = args
                p = json.loads(b64url(lic["payload"]))
                suite = CipherSuite.new(
                    KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305
                )
                ctx = suite.create_recipient_context(b64url(p["enc"]), key, info=HPKE_INFO)
                ctx.open(b64url(p["ciphertext"]), aad=aad.encode())
            else:
                open_license(*args)
        except Exception:
            continue
        sys.exit(f"the {case} license opened")
    print("ok", json.dumps([(k["track"], k["rendition"], k["key_id"]) for k in keys]))


if __name__ == "__main__":
    main()
