#!/usr/bin/env bash
# The store on S3-compatible object storage, on loopback (docs/PERFORMANCE.md, "Object store"):
#
#   bash .ci/garage && benches/objectstore.sh
#   ROUNDS=5 VERSUS=30 CONNS=32 benches/objectstore.sh
#
# 1. Starts Garage (built by .ci/garage) on free loopback ports in a temp dir, packages and
#    publishes media/first-light with `encore ingest` to s3://encore/bench.
# 2. Starts two origins of the same release build, same keys, same settings: "local" serves the
#    packaging from its own --data (no bucket); "bucket" starts from an empty --data and reads
#    through from the bucket.
# 3. Cold segment: every segment URL of the album once, one at a time, from each origin (curl's
#    time_total): on "bucket" a GET from Garage, SHA-256 check, atomic write into the local
#    store, then the normal load; on "local" the normal load from the (page-cached) store file.
#    Prints p50/p99/max of each and the ratio of the medians.
# 4. Hot path, both warm: ROUNDS rounds (default 3), each restarting both origins, of
#    `loadgen --versus` runs of VERSUS s (default 20) in 0.1 s slices, CONNS connections
#    (default 16), closed loop, a play token on every request, every segment URL at random:
#    bucket against local req/s, then with the roles swapped; each round's geometric mean of
#    the two, and the geometric mean over the rounds (goal >= 0.95); the same for a twin of
#    the local origin (same files, same code) as the control: how far apart two origins that
#    should be equal land in this run.
# Results and the raw samples go to $OUT (default docs/perf-log/objectstore-<date>.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh

VERSUS=${VERSUS:-20}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-16}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
garage_binary >/dev/null
OUT=${OUT:-docs/perf-log/objectstore-$(date -u +%Y-%m-%d).txt}
with_cleanup encore-objectstore
log() { echo "$*" | tee -a "$TMP/report"; }

wait_http() {
	for _ in $(seq 1 600); do
		curl -fs -o /dev/null "$1" && return 0
		sleep 0.05
	done
	echo "$0: $1 never answered" >&2
	exit 1
}

log "== objectstore bench $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r)"
log "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# ENCORE=… LOADGEN=…: binaries already built (e.g. the dev profile's); default: release builds.
if [ -z "${ENCORE:-}" ]; then
	cargo build --release --quiet --bin encore
	ENCORE=$CARGO_TARGET_DIR/release/encore
fi
if [ -z "${LOADGEN:-}" ]; then
	LOADGEN=$(cargo bench --quiet --bench loadgen --no-run --message-format=json |
		jq -r 'select(.executable != null and .target.name == "loadgen") | .executable')
fi
log "== encore: $ENCORE; loadgen: $LOADGEN"

# ---- Garage ---------------------------------------------------------------------------------
start_garage "$TMP/garage"
PIDS+=("$GARAGE_PID")

# ---- package and publish --------------------------------------------------------------------
mkdir -p "$TMP/keys" "$TMP/local" "$TMP/bucket"
chmod 700 "$TMP/keys"
"$ENCORE" keys init --keys "$TMP/keys" >/dev/null 2>&1
printf '[server]\nwatch_media = false\n' >"$TMP/local.toml"
printf '[server]\nwatch_media = false\n[store]\nurl = "s3://encore/bench"\n' >"$TMP/bucket.toml"
for _ in $(seq 1 600); do
	"$ENCORE" ingest --config "$TMP/bucket.toml" --media media --keys "$TMP/keys" \
		--data "$TMP/local" media/first-light >"$TMP/ingest.log" 2>&1 && break
	# Garage not answering yet (the bucket appears a moment after it listens): try again.
	sleep 0.2
done
grep -q "first-light: published" "$TMP/ingest.log" || { cat "$TMP/ingest.log" >&2; exit 1; }
log "== published: $(grep 'first-light: published' "$TMP/ingest.log")"

# ---- two origins ----------------------------------------------------------------------------
# Not called in $(…): the PID must reach PIDS in this shell, or cleanup would leave it running.
start_origin() { # name config data -> ORIGIN (its base URL), ORIGIN_PID
	local port
	port=$(free_port)
	"$ENCORE" serve --config "$2" --media media --keys "$TMP/keys" --data "$3" \
		--listen "127.0.0.1:$port" >"$TMP/$1.out" 2>"$TMP/$1.err" &
	ORIGIN_PID=$!
	PIDS+=("$ORIGIN_PID")
	wait_http "http://127.0.0.1:$port/readyz"
	ORIGIN="http://127.0.0.1:$port"
}
start_origin local "$TMP/local.toml" "$TMP/local"
LOCAL=$ORIGIN LOCAL_PID=$ORIGIN_PID
start_origin bucket "$TMP/bucket.toml" "$TMP/bucket"
BUCKET=$ORIGIN BUCKET_PID=$ORIGIN_PID
TOKEN=$("$ENCORE" token mint --sub bench --album first-light --ttl 1h --keys "$TMP/keys")

# Every segment URL of the album, from the manifests the local store holds.
find "$TMP/local/store/first-light" -name manifest.json | sort | while read -r m; do
	jq -r '"/v1/albums/\(.album)/tracks/\(.track)/\(.rendition)/\(.generation)/\(.init.file)",
	       (.segments[] as $s | "/v1/albums/\(.album)/tracks/\(.track)/\(.rendition)/\(.generation)/\($s.file)")' "$m"
done >"$TMP/paths"
log "== $(wc -l <"$TMP/paths") segment URLs, $(du -sb "$TMP/local/store/first-light" | cut -f1) bytes packaged"

# ---- cold ------------------------------------------------------------------------------------
cold() { # base -> one time_total (s) per line
	while read -r p; do
		curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$1$p"
	done <"$TMP/paths"
}
cold "$LOCAL" >"$TMP/cold.local"
cold "$BUCKET" >"$TMP/cold.bucket"
pct() { # file p -> value in ms
	sort -g "$1" | awk -v p="$2" '{v[NR]=$1} END {i=int((NR-1)*p/100)+1; printf "%.2f", v[i]*1000}'
}
for side in local bucket; do
	log "== cold segment, $side: p50 $(pct "$TMP/cold.$side" 50) ms, p99 $(pct "$TMP/cold.$side" 99) ms, max $(pct "$TMP/cold.$side" 100) ms ($(wc -l <"$TMP/cold.$side") requests)"
done
log "== cold p50 bucket/local: $(awk -v a="$(pct "$TMP/cold.bucket" 50)" -v b="$(pct "$TMP/cold.local" 50)" 'BEGIN {printf "%.2f", a/b}')x"
log "== bucket origin metrics: $(curl -fs "$BUCKET/metrics" | grep -E '^encore_store_(remote|local)_[a-z_]+_total ' | tr '\n' ' ')"

# ---- hot ------------------------------------------------------------------------------------
# Two origins of one build on the same files differ by up to ~15 % in req/s from one start to
# the next (where the kernel places their threads and how their accept loops split the
# connections), so one pair of processes says little. Each round restarts the origins (the
# bucket one reopens at once on its warm --data) and runs `loadgen --versus` in both orders,
# bucket against local and, as the control, "twin" (a second local-store origin on a copy of
# local's files: the same code and bytes) against local. A round's ratio is the geometric mean
# of its two orders; the result is the geometric mean over the rounds, beside the control's.
cp -a "$TMP/local" "$TMP/twin"
start_origin twin "$TMP/local.toml" "$TMP/twin"
TWIN=$ORIGIN TWIN_PID=$ORIGIN_PID
restart_origins() {
	for p in "$LOCAL_PID" "$BUCKET_PID" "$TWIN_PID"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	start_origin local "$TMP/local.toml" "$TMP/local"
	LOCAL=$ORIGIN LOCAL_PID=$ORIGIN_PID
	start_origin bucket "$TMP/bucket.toml" "$TMP/bucket"
	BUCKET=$ORIGIN BUCKET_PID=$ORIGIN_PID
	start_origin twin "$TMP/local.toml" "$TMP/twin"
	TWIN=$ORIGIN TWIN_PID=$ORIGIN_PID
	write_urls
}
write_urls() {
	sed "s|^|$LOCAL|" "$TMP/paths" >"$TMP/urls.local"
	sed "s|^|$BUCKET|" "$TMP/paths" >"$TMP/urls.bucket"
	sed "s|^|$TWIN|" "$TMP/paths" >"$TMP/urls.twin"
}
write_urls
versus() { # a b out -> loadgen JSON in out
	"$LOADGEN" --urls "$TMP/urls.$1" --versus "$TMP/urls.$2" --header "Authorization: Bearer $TOKEN" \
		--connections "$CONNS" --duration "$VERSUS" --warmup 1 >"$3" 2>&1 ||
		{ cat "$3" >&2; exit 1; }
}
# ratio_of SIDE ROUND: SIDE's req/s over local's, both orders of this round; logs them and
# appends the round's geometric mean to $TMP/SIDE.ratios.
ratio_of() {
	local first="$TMP/$1.$2.second.out" swapped="$TMP/$1.$2.first.out" ratio
	versus local "$1" "$first"
	versus "$1" local "$swapped"
	cat "$first" "$swapped" >>"$TMP/raw"
	ratio=$(jq -rn --slurpfile a "$first" --slurpfile b "$swapped" '($a[0].ratio_b_over_a / $b[0].ratio_b_over_a) | sqrt')
	echo "$ratio" >>"$TMP/$1.ratios"
	log "== round $2: $1/local req/s $(jq -r .ratio_b_over_a "$first") ($1 second, $(jq -r '.a.req_per_s|floor' "$first") vs $(jq -r '.b.req_per_s|floor' "$first") req/s), $(jq -r '1 / .ratio_b_over_a' "$swapped") ($1 first); geometric mean $ratio"
}
summary() { # SIDE
	log "== $1/local req/s over $ROUNDS round(s): geometric mean $(awk '{s+=log($1); n++} END {printf "%.3f", exp(s/n)}' "$TMP/$1.ratios"), rounds from $(sort -g "$TMP/$1.ratios" | head -1 | xargs printf '%.3f') to $(sort -g "$TMP/$1.ratios" | tail -1 | xargs printf '%.3f')"
}
log "== hot path, warm: $ROUNDS round(s) of loadgen --versus ${VERSUS}s each way, $CONNS connections, every origin restarted per round"
for round in $(seq 1 "$ROUNDS"); do
	[ "$round" -gt 1 ] && restart_origins
	ratio_of bucket "$round"
	ratio_of twin "$round"
done
summary bucket
summary twin

mkdir -p "$(dirname "$OUT")"
{
	cat "$TMP/report"
	echo "== raw loadgen answers, per round: bucket second, bucket first, twin second, twin first:"
	cat "$TMP/raw"
	echo "== raw cold samples (s), local then bucket:"
	paste "$TMP/cold.local" "$TMP/cold.bucket"
} >"$OUT"
echo "== written to $OUT"
