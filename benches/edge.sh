#!/usr/bin/env bash
# Players through a CDN edge (nginx running `encore edge-config`'s output) against the same
# players straight to the origin, and the edge's cache-hit path against nginx serving the same
# files statically (the price of the check at the edge). One run on one machine, interleaved
# rounds, reported as ratios (docs/PERFORMANCE.md, "CDN edge").
#
#   benches/edge.sh                        # results on stdout, progress on stderr
#   ENCORE_BIN=path/to/encore CONNS=32 THREADS=2 DURATION=10s ROUNDS=3 TOKENS=100 \
#       AUTH_TTL=10s benches/edge.sh
#
# Needs: cargo (unless ENCORE_BIN is given), nginx, wrk, curl, jq (apt-get install nginx wrk
# curl jq). Everything under a temp dir, removed on exit; every process started here is killed.
#   1. encore (ENCORE_BIN, else `cargo build --release`); throwaway keys; `encore ingest` of
#      media/first-light;
#   2. encore serve; an edge from `encore edge-config --auth-ttl AUTH_TTL` in front of it; a
#      static nginx whose root is the same store, its URLs mapped onto the stored files;
#   3. TOKENS play tokens of buyers; the lossless segment URLs of every track; both paths must
#      answer 200 with the same bytes;
#   4. warm-up: every URL once through the edge (its cache holds them all afterwards);
#   5. ROUNDS rounds of wrk (THREADS threads, CONNS connections, DURATION), each round
#      origin, edge, static in a rotated order: every request takes the next URL and the next
#      token (`Authorization: Bearer`; nginx static ignores it);
#   6. per round: req/s and p99 of each, and the origin's requests during the edge's run
#      (`encore_http_requests_total` summed over routes from /metrics) per 1,000 player
#      requests.
set -euo pipefail

CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
TOKENS=${TOKENS:-100}
AUTH_TTL=${AUTH_TTL:-10s}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in nginx wrk curl jq; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install nginx wrk curl jq)" >&2; exit 1; }
done
if [[ -z ${ENCORE_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release >&2)
    ENCORE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/encore
fi

TMP=$(mktemp -d /tmp/encore-edge-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export ENCORE_MEDIA=$TMP/media ENCORE_KEYS=$TMP/keys ENCORE_DATA=$TMP/data
mkdir -p "$ENCORE_MEDIA"
cp -r "$ROOT/media/first-light" "$ENCORE_MEDIA/"
echo "== keys and ingest" >&2
"$ENCORE_BIN" keys init >/dev/null 2>&1
"$ENCORE_BIN" ingest >/dev/null 2>&1

# nginx's workers (nobody) read the store and write the edge's folders under here.
chmod 755 "$TMP"
chmod -R a+rX "$ENCORE_DATA"
O_PORT=$(free_port)
printf '[server]\nwatch_media = false\nsegment_cache_mb = 256\n' >"$TMP/encore.toml"
"$ENCORE_BIN" serve --config "$TMP/encore.toml" --listen "127.0.0.1:$O_PORT" >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
ORIGIN=http://127.0.0.1:$O_PORT
for _ in $(seq 200); do curl -sf "$ORIGIN/readyz" >/dev/null && break; sleep 0.1; done

start_nginx() { # prefix conf port
    mkdir -p "$1/logs" "$1/cache"
    chmod 777 "$1/logs" "$1/cache"
    nginx -p "$1" -c "$2" -e "$1/logs/error.log" -g "daemon off; pid $1/nginx.pid;" &
    PIDS+=($!)
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$3/" && return; sleep 0.05; done
    echo "nginx on $3 never listened: $(cat "$1/logs/error.log")" >&2; exit 1
}
E_PORT=$(free_port)
"$ENCORE_BIN" edge-config --origin "$ORIGIN" --listen "127.0.0.1:$E_PORT" \
    --cache-dir "$TMP/edge/cache" --log-dir "$TMP/edge/logs" --auth-ttl "$AUTH_TTL" \
    >"$TMP/edge.conf"
# The access log is part of an edge's cost, as deployed.
start_nginx "$TMP/edge" "$TMP/edge.conf" "$E_PORT"
EDGE=http://127.0.0.1:$E_PORT

# nginx serving the store's files: a segment URL's last two parts are the stored file.
S_PORT=$(free_port)
cat >"$TMP/static.conf" <<EOF
worker_processes auto;
events { worker_connections 4096; }
http {
    client_body_temp_path $TMP/static/body; proxy_temp_path $TMP/static/proxy;
    fastcgi_temp_path $TMP/static/fastcgi; uwsgi_temp_path $TMP/static/uwsgi;
    scgi_temp_path $TMP/static/scgi;
    sendfile on; tcp_nopush on; keepalive_timeout 65s; open_file_cache max=10000;
    access_log $TMP/static/logs/access.log;
    server {
        listen 127.0.0.1:$S_PORT;
        root $ENCORE_DATA/store;
        location / { try_files \$uri =404; }
    }
}
EOF
start_nginx "$TMP/static" "$TMP/static.conf" "$S_PORT"
STATIC=http://127.0.0.1:$S_PORT

echo "== tokens and URLs" >&2
: >"$TMP/tokens"
for i in $(seq "$TOKENS"); do
    "$ENCORE_BIN" token mint --sub "fan-$i" --album first-light --ttl 1h >>"$TMP/tokens"
done
TOKEN=$(head -1 "$TMP/tokens")
: >"$TMP/urls"
: >"$TMP/static-urls"
tracks=$(curl -sf "$ORIGIN/v1/albums/first-light" | jq '.tracks | length')
for n in $(seq "$tracks"); do
    m=$(curl -sf -H "Authorization: Bearer $TOKEN" "$ORIGIN/v1/albums/first-light/tracks/$n/lossless/manifest")
    echo "$m" | jq -r '.segments[].url' >>"$TMP/urls"
done
# The store keeps a segment at <album>/<track>/<rendition>/<generation>/<file>: find each.
while read -r url; do
    file=${url##*/}; rest=${url%/*}; gen=${rest##*/}
    path=$(cd "$ENCORE_DATA/store" && find . -path "*/$gen/$file" | head -1)
    [[ -n $path ]] || { echo "no stored file for $url" >&2; exit 1; }
    echo "${path#.}" >>"$TMP/static-urls"
done <"$TMP/urls"
first=$(head -1 "$TMP/urls"); first_static=$(head -1 "$TMP/static-urls")
a=$(curl -sf -H "Authorization: Bearer $TOKEN" "$EDGE$first" | sha256sum)
b=$(curl -sf "$STATIC$first_static" | sha256sum)
c=$(curl -sf -H "Authorization: Bearer $TOKEN" "$ORIGIN$first" | sha256sum)
[[ $a == "$b" && $a == "$c" ]] || { echo "the three paths answer different bytes" >&2; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' "$EDGE$first") == 401 ]] || { echo "the edge answered without a token" >&2; exit 1; }
echo "== $(wc -l <"$TMP/urls") segment URLs, $TOKENS tokens; warming the edge" >&2
while read -r url; do curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$EDGE$url"; done <"$TMP/urls"

cat >"$TMP/rotate.lua" <<'EOF'
local urls, tokens, i = {}, {}, 0
function init(args)
    for l in io.lines(args[1]) do urls[#urls + 1] = l end
    for l in io.lines(args[2]) do tokens[#tokens + 1] = l end
    i = math.random(#urls * #tokens)
end
function request()
    i = i + 1
    local h = { ["Authorization"] = "Bearer " .. tokens[i % #tokens + 1] }
    return wrk.format("GET", urls[i % #urls + 1], h)
end
function done(summary, latency, requests)
    io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
        summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF
origin_requests() {
    curl -sf "$ORIGIN/metrics" | awk '/^encore_http_requests_total/ {s += $NF} END {printf "%d", s}'
}
run() { # name base urls
    local before after out
    before=$(origin_requests)
    out=$(wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" -s "$TMP/rotate.lua" "$2" -- "$3" "$TMP/tokens" | grep '^RESULT')
    after=$(origin_requests)
    # The /metrics scrape itself is one request.
    read -r _ rps p50 p99 n errors <<<"$out"
    [[ $errors == 0 ]] || { echo "$1: $errors errors (non-2xx or socket)" >&2; exit 1; }
    awk -v name="$1" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v n="$n" -v o=$((after - before - 1)) \
        'BEGIN { printf "%-7s %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  origin requests per 1,000: %7.2f\n", name, rps, p50, p99, 1000 * o / n }'
}
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) CPUs; $ENCORE_BIN; wrk -t$THREADS -c$CONNS -d$DURATION; $TOKENS tokens; auth-ttl $AUTH_TTL"
for r in $(seq "$ROUNDS"); do
    echo "## round $r" 
    order=("origin $ORIGIN $TMP/urls" "edge $EDGE $TMP/urls" "static $STATIC $TMP/static-urls")
    for k in 0 1 2; do
        # shellcheck disable=SC2086
        run ${order[$(((k + r) % 3))]}
    done
done
