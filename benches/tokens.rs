//! Token verification: a full check (no cache) against a hit in [`TokenCache`].
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench tokens`
//!
//! `verify_cold` is [`TokenVerifier::verify`] with no cache, so every call does the size
//! check, header parse and policy, Ed25519 signature (aws-lc), claims JSON and checks.
//! `verify_cached` is [`TokenCache::verify`] on a token already in the cache: size check,
//! SHA-256 of the token, moka lookup, validity window re-checked against the clock. `mint`
//! signs one token. The token is a `play` token with two albums (~400 bytes).
//!
//! Latest figures (2026-11-28, shared 2-core x86-64 container under load ~3.5 from other
//! builds, so treat as upper bounds; see `docs/PERFORMANCE.md`):
//!
//! | bench         | time per token (estimate [95% CI])           |
//! |---------------|---------------------------------------------:|
//! | verify_cold   |                    55.0 µs [51.9 µs 58.9 µs] |
//! | verify_cached |                     654 ns [629 ns 682 ns]   |
//! | mint          |                    30.7 µs [29.5 µs 31.9 µs] |
//!
//! A cache hit is ~85× cheaper than a full verification.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use encore::keys::Keyring;
use encore::license::{
    CacheConfig, Clock, MintRequest, Scope, SystemClock, TokenCache, TokenVerifier, VerifierConfig,
    mint,
};

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    Keyring::init(&keys).expect("keyring init");
    let keyring = Keyring::open(&keys).expect("keyring open");
    let key = keyring.signing_key().expect("signing key");
    let mut req = MintRequest::new("fan-0001", Scope::Play);
    req.albums = vec!["first-light".into(), "second-wind".into()];
    let token = mint(&key, &req, SystemClock.now_unix()).expect("mint");

    let mut group = c.benchmark_group("tokens");
    group.measurement_time(Duration::from_secs(5));

    let verifier = TokenVerifier::from_keyring(&keyring, VerifierConfig::default());
    group.bench_function("verify_cold", |b| {
        b.iter(|| verifier.verify(black_box(&token)).expect("valid"))
    });

    let cache = TokenCache::new(
        TokenVerifier::from_keyring(&keyring, VerifierConfig::default()),
        CacheConfig::default(),
    );
    cache.verify(&token).expect("valid");
    group.bench_function("verify_cached", |b| {
        b.iter(|| cache.verify(black_box(&token)).expect("valid"))
    });
    let stats = cache.stats();
    assert!(stats.misses == 1 && stats.hits > 0, "{stats:?}");

    group.bench_function("mint", |b| {
        b.iter(|| mint(&key, black_box(&req), SystemClock.now_unix()).expect("mint"))
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
