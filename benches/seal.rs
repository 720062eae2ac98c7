//! Segment sealing (AES-256-GCM with encore's header and AAD) and opening, in GB/s.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/bench-target cargo bench --bench seal`
//!
//! `seal` is measured on its zero-copy path (the plaintext has `OVERHEAD` spare capacity, as
//! a buffer sized for it would); `seal_copy` on its other path (exact-capacity plaintext, one
//! output allocation). `open` allocates the plaintext; `open_in_place` does not. `raw_gcm` is
//! the `aes-gcm` crate alone on the same bytes, so the seal format's own cost is the gap
//! between the two. `openssl speed -evp aes-256-gcm` is the machine's AES ceiling
//! (`benches/compare.sh` runs it beside these).
//!
//! Latest figures, 2026-11-28, 2 vCPU Intel Xeon (family 6 model 207, AES-NI, VAES), mean
//! wall time, GB/s = 10^9 bytes/s (`openssl speed -evp aes-256-gcm -bytes N` on the same
//! machine: 4.72 GB/s at 64 KiB, 4.71 GB/s at 1 MiB; see `docs/PERFORMANCE.md`):
//!
//! | size    | seal | seal_copy | open | open_in_place | raw_gcm |
//! |---------|-----:|----------:|-----:|--------------:|--------:|
//! | 64 KiB  | 2.74 |      2.74 | 2.79 |          2.71 |    2.90 |
//! | 256 KiB | 2.79 |      2.80 | 2.82 |          2.79 |    2.95 |
//! | 1 MiB   | 2.74 |      1.51 | 2.77 |          2.73 |    2.95 |

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use encore::seal::{ContentKey, OVERHEAD, SealContext, SegmentSlot, open, open_in_place, seal};

const SIZES: [(&str, usize); 3] = [
    ("64KiB", 64 << 10),
    ("256KiB", 256 << 10),
    ("1MiB", 1 << 20),
];

fn ctx() -> SealContext<'static> {
    SealContext {
        album: "first-light",
        track: 1,
        rendition: "lossless",
        slot: SegmentSlot::Media(3),
    }
}

/// Deterministic, incompressible-looking bytes.
fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `data` copied into a buffer with room for the seal's header and tag.
fn with_headroom(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + OVERHEAD);
    v.extend_from_slice(data);
    v
}

fn bench_seal(c: &mut Criterion) {
    let key = ContentKey::generate().expect("randomness");
    let raw = Aes256Gcm::new(key.expose_bytes().into());
    let mut g = c.benchmark_group("seal");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (label, len) in SIZES {
        let data = payload(len);
        let sealed = seal(&key, &ctx(), data.clone()).expect("seals");
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("seal", label), &data, |b, d| {
            b.iter_batched(
                || with_headroom(d),
                |p| seal(&key, black_box(&ctx()), p).expect("seals"),
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("seal_copy", label), &data, |b, d| {
            b.iter_batched(
                || d.clone(),
                |p| seal(&key, black_box(&ctx()), p).expect("seals"),
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, s| {
            b.iter(|| open(&key, black_box(&ctx()), black_box(s)).expect("opens"))
        });
        g.bench_with_input(BenchmarkId::new("open_in_place", label), &sealed, |b, s| {
            b.iter_batched(
                || s.clone(),
                |s| open_in_place(&key, black_box(&ctx()), s).expect("opens"),
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("raw_gcm", label), &data, |b, d| {
            let nonce = Nonce::from([7u8; 12]);
            b.iter_batched_ref(
                || d.clone(),
                |p| {
                    raw.encrypt_inout_detached(&nonce, b"aad", p.as_mut_slice().into())
                        .expect("encrypts")
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_seal);
criterion_main!(benches);
