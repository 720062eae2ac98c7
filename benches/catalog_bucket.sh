#!/usr/bin/env bash
# Origin start and cold albums by catalog size with the store in a bucket (docs/PERFORMANCE.md,
# "Catalog size"): starts Garage (built by .ci/garage) on loopback, then runs the catalog_size
# bench with ENCORE_BENCH_BUCKET, which publishes each generated catalog there and serves it
# from an origin with an empty --data.
#
#   cargo build --release && benches/catalog_bucket.sh 1000 10000
#   PROFILE=dev benches/catalog_bucket.sh 1000          # with `cargo build` (dev) binaries
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh

garage_binary >/dev/null
with_cleanup encore-catalog-bucket
start_garage "$TMP/garage"
PIDS+=("$GARAGE_PID")
PROFILE=${PROFILE:-release}
args=(--bench catalog_size)
[ "$PROFILE" = release ] || args+=(--profile "$PROFILE")
# Garage answers a moment after it listens: the bench's first PUT retries within 3 s.
ENCORE_BENCH_BUCKET=s3://encore/catalog cargo bench "${args[@]}" -- "${@:-1000}"
