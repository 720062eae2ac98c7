#!/usr/bin/env bash
# Soak: every kind of client at once for a long time against one `encore serve`, at about half
# of the peak the same clients reach, while the server's RSS, open file descriptors, threads and
# pinned segment bytes are sampled every 10 s (benches/soak.rs is the driver).
#
#   benches/soak.sh                         # 30 minutes; results under OUT
#   DURATION=1800 RATE= OUT=docs/soak benches/soak.sh
#   DURATION=300 SOAK_ARGS="--rotate-every 20 --sighup-every 20" OUT=/tmp/s benches/soak.sh
#
# Goal (docs/PERFORMANCE.md, "Soak"): zero 5xx and zero failed client requests; RSS and fd count
# flat (mean of the last 10 minutes within 10 % of minutes 5-10). Exit code 0 only then.
# Writes OUT/soak.csv (the samples), OUT/soak.json (the summary) and OUT/soak.png (the plot,
# gnuplot); installs gnuplot-nox with apt-get when it is missing.
# Steps: cargo build --release and the driver; throwaway keys (with the development account
# service); ingest media/first-light; encore serve (256 MiB segment cache, media watcher off,
# key maintenance every 60 s); tokens: store, admin, and 8 players' account tokens whose users
# buy the album; segment URLs from every rendition's manifest; then the driver.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
DURATION=${DURATION:-1800}
RATE=${RATE:-0}
OUT=${OUT:-$PWD/docs/soak}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for tool in cargo curl jq ss; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 2; }
done
if ! command -v gnuplot >/dev/null; then
	SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
	$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gnuplot-nox >/dev/null
fi

with_cleanup encore-soak
log() { printf '%s\n' "$*" >&2; }

log "== machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
# ENCORE=… DRIVER=…: binaries already built (e.g. the dev profile's, for a quick check of the
# script); default: release builds.
if [ -z "${ENCORE:-}" ]; then
	log "== cargo build --release"
	cargo build --release --quiet
	ENCORE=$CARGO_TARGET_DIR/release/encore
fi
if [ -z "${DRIVER:-}" ]; then
	DRIVER=$(cargo bench --quiet --bench soak --no-run --message-format=json |
		jq -r 'select(.executable != null and .target.name == "soak") | .executable')
fi
[ -x "$DRIVER" ] || { log "could not build benches/soak.rs"; exit 1; }

mkdir -p "$TMP/keys" "$TMP/data" "$OUT"
chmod 700 "$TMP/keys"
"$ENCORE" keys init --keys "$TMP/keys" --dev-accounts >/dev/null 2>&1
log "== encore ingest media/first-light"
"$ENCORE" ingest --media media --keys "$TMP/keys" --data "$TMP/data" media/first-light >"$TMP/ingest.log" 2>&1 ||
	{ cat "$TMP/ingest.log" >&2; exit 1; }

cat >"$TMP/encore.toml" <<EOF
[server]
segment_cache_mb = 256
watch_media = false
EOF
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
"$ENCORE" serve --config "$TMP/encore.toml" --media media --keys "$TMP/keys" --data "$TMP/data" \
	--listen "127.0.0.1:$PORT" >"$TMP/encore.out" 2>"$TMP/encore.err" &
SERVER=$!
PIDS+=("$SERVER")
wait_ready "$URL" "$SERVER" "$TMP/encore.err"

mint() { "$ENCORE" token mint --keys "$TMP/keys" --ttl 3h "$@"; }
STORE=$(mint --scope store --sub soak-store)
{
	echo "store $STORE"
	echo "admin $(mint --scope admin --sub soak-admin)"
	for i in $(seq 1 8); do
		user=soak-fan-$i
		echo "account $user $(mint --scope account --sub "$user")"
		curl -sf -o /dev/null -X POST "$URL/v1/purchases" -H "Authorization: Bearer $STORE" \
			-d "{\"order_id\":\"soak-fan-$i\",\"user\":\"$user\",\"album\":\"first-light\",\"price\":1500,\"currency\":\"CNY\"}"
	done
} >"$TMP/tokens"

PLAY=$(mint --sub soak-fan-1 --album first-light)
TRACKS=$(curl -sf "$URL/v1/albums/first-light" | jq '.tracks | length')
for n in $(seq 1 "$TRACKS"); do
	for r in lossless high standard aac preview; do
		curl -sf -H "Authorization: Bearer $PLAY" "$URL/v1/albums/first-light/tracks/$n/$r/manifest" |
			jq -r '(.init | "\(.url) \(.bytes)"), (.segments[] | "\(.url) \(.bytes)")'
	done
done >"$TMP/urls"
log "== $(wc -l <"$TMP/urls") URLs, $TRACKS tracks; soaking for $DURATION s"

set +e
"$DRIVER" --server "$URL" --pid "$SERVER" --tokens "$TMP/tokens" --urls "$TMP/urls" \
	--duration "$DURATION" --rate "$RATE" --csv "$OUT/soak.csv" --json "$OUT/soak.json" \
	${SOAK_ARGS:-}
STATUS=$?
set -e
grep -E ' (ERROR|WARN) ' "$TMP/encore.err" | head -20 >&2 || true

gnuplot <<EOF
set terminal pngcairo size 1000,700 font ",10"
set output "$OUT/soak.png"
set datafile separator ","
set key autotitle columnhead
set multiplot layout 3,1 title "encore soak: $(date -u +%Y-%m-%d), ${DURATION} s, $(nproc) CPUs"
set xlabel "minutes"
set ylabel "RSS (MiB)"
plot "$OUT/soak.csv" using (\$1/60):(\$2/1024) with lines title "RSS", "" using (\$1/60):(\$5/1048576) with lines title "pinned segment pages (MiB)"
set ylabel "count"
plot "$OUT/soak.csv" using (\$1/60):3 with lines title "open fds", "" using (\$1/60):4 with lines title "threads"
set ylabel "requests"
plot "$OUT/soak.csv" using (\$1/60):6 with lines title "answered as expected", "" using (\$1/60):7 with lines title "failed", "" using (\$1/60):8 with lines title "5xx"
unset multiplot
EOF
log "== $OUT/soak.png, $OUT/soak.csv, $OUT/soak.json"
exit "$STATUS"
