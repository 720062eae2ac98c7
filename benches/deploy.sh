#!/usr/bin/env bash
# The deployment of docs/DEPLOY.md, brought up on loopback: a PostgreSQL 15 cluster (Debian's;
# the ledger and the key state), Garage (the S3 bucket of packaged albums, built by
# `bash .ci/garage`), the demo album packaged and published by `encore ingest` as a job,
# ORIGINS `encore serve` origins (default 2) each starting from an empty --data, and nginx as
# the load balancer in front; torn down when this script ends.
#
#   benches/deploy.sh               up, print the URLs, hold until stopped (Ctrl-C / TERM)
#   BENCH=1 benches/deploy.sh       up, measure, down: players through the balancer with all
#                                   origins behind it against the same balancer with one origin
#
# Needs: cargo, curl, jq, nginx, taskset, ss, PostgreSQL 15 (/usr/lib/postgresql/15/bin),
# Garage (`bash .ci/garage`).
# Settings: ENCORE and LOADGEN (binaries already built; default: release builds), ORIGINS (2), DURATION (60 s, the whole interleaved run), CONNS (64 per target),
# PIN (1: origin i runs on CPU (i-1) mod nproc with one connection thread, so "one origin"
# is one core's worth of origin and "two origins" two; nginx and the generator are not
# pinned), STATE (a file the URLs and PIDs are written to, default $TMPDIR/encore-deploy.env).
#
# The measurement: benches/loadgen.rs --versus, alternating 0.1 s slices between
#   A: http://LB1/... (upstream: origin 1)   and   B: http://LB/... (upstream: every origin)
# both the same nginx, the same segments (lossless, 100-500 KB, the demo album), the same play
# token. Reported: req/s of each and the ratio B / A (all origins over one); the machine, date and command go with it
# into docs/PERFORMANCE.md "Deployment".
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
ORIGINS=${ORIGINS:-2}
DURATION=${DURATION:-60}
DURATION=${DURATION%s}
CONNS=${CONNS:-64}
PIN=${PIN:-1}
BENCH=${BENCH:-0}
STATE=${STATE:-${TMPDIR:-/tmp}/encore-deploy.env}
NPROC=$(nproc)
PGBIN=/usr/lib/postgresql/15/bin
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for tool in cargo curl jq nginx taskset ss; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is required (apt-get install $tool)" >&2; exit 2; }
done
[ -x "$PGBIN/pg_ctl" ] || { echo "$0: PostgreSQL 15 is required (apt-get install postgresql-15)" >&2; exit 2; }
garage_binary >/dev/null
case $ORIGINS in '' | *[!0-9]* | 0) echo "$0: ORIGINS must be >= 1" >&2; exit 2 ;; esac

PG_UP=0
AS_PG=()
[ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
# After the origins are gone (with_cleanup ends them first): the database they used, and the
# state file that names them.
extra_cleanup() {
	if [ "$PG_UP" = 1 ]; then
		"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m fast stop >/dev/null 2>&1 || true
	fi
	rm -f "$STATE"
}
with_cleanup encore-deploy
log() { printf '%s\n' "$*" >&2; }

log "== machine: $NPROC CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
# ENCORE=… LOADGEN=…: binaries already built (e.g. the dev profile's); default: release builds.
if [ -z "${ENCORE:-}" ]; then
	log "== cargo build --release"
	cargo build --release --quiet
	ENCORE=$CARGO_TARGET_DIR/release/encore
fi

# ---- PostgreSQL: a cluster of its own, socket and data in $TMP -------------------------------
chmod 711 "$TMP"
mkdir -p "$TMP/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$TMP/pg"
PG_PORT=$(free_port)
"${AS_PG[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -U encore --auth=trust >"$TMP/initdb.log" 2>&1 ||
	{ cat "$TMP/initdb.log" >&2; exit 1; }
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -w \
	-o "-p $PG_PORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
PG_UP=1
"${AS_PG[@]}" "$PGBIN/psql" -qAt -h 127.0.0.1 -p "$PG_PORT" -U encore -d postgres \
	-c 'CREATE DATABASE encore' >/dev/null
LEDGER_URL="postgres://encore@127.0.0.1:$PG_PORT/encore"
log "== PostgreSQL 15 on 127.0.0.1:$PG_PORT"

# ---- Garage: the bucket -----------------------------------------------------------------------
start_garage "$TMP/garage"
PIDS+=("$GARAGE_PID")
log "== Garage: s3://encore at $AWS_ENDPOINT_URL"

# ---- every origin's configuration, and the ingest job's --------------------------------------
cat >"$TMP/encore.toml" <<EOF
[ledger]
url = "$LEDGER_URL"
[keys]
store = "database"
[store]
url = "s3://encore/deploy"
[server]
watch_media = false
EOF
[ "$PIN" = 1 ] && echo "connection_threads = 1" >>"$TMP/encore.toml"

# ---- keys: the state in PostgreSQL, the KEK a file every node has ------------------------------
mkdir -p "$TMP/keys"
chmod 700 "$TMP/keys"
"$ENCORE" keys init --config "$TMP/encore.toml" --keys "$TMP/keys" >"$TMP/keys-init.log" 2>&1 ||
	{ cat "$TMP/keys-init.log" >&2; exit 1; }

# ---- the album, packaged and published once (docs/DEPLOY.md, "The ingest job") ---------------
log "== encore ingest media/first-light (publishes to the bucket)"
for _ in $(seq 1 300); do
	"$ENCORE" ingest --config "$TMP/encore.toml" --media media --keys "$TMP/keys" \
		--data "$TMP/ingest" media/first-light >"$TMP/ingest.log" 2>&1 && break
	# Garage not answering yet (the bucket appears a moment after it listens): try again.
	sleep 0.2
done
grep -q "first-light: published" "$TMP/ingest.log" || { cat "$TMP/ingest.log" >&2; exit 1; }

# ---- the origins: each from an empty --data, reading the bucket through -----------------------
ORIGIN_URLS=()
ORIGIN_PIDS=()
for i in $(seq 1 "$ORIGINS"); do
	mkdir -p "$TMP/data-$i"
	port=$(free_port)
	run=(env)
	[ "$PIN" = 1 ] && run=(env TOKIO_WORKER_THREADS=1 taskset -c $(((i - 1) % NPROC)))
	"${run[@]}" "$ENCORE" serve --config "$TMP/encore.toml" \
		--media media --keys "$TMP/keys" --data "$TMP/data-$i" --listen "127.0.0.1:$port" \
		>"$TMP/origin-$i.out" 2>"$TMP/origin-$i.err" &
	PIDS+=($!)
	ORIGIN_PIDS+=($!)
	ORIGIN_URLS+=("http://127.0.0.1:$port")
	wait_ready "http://127.0.0.1:$port" "$!" "$TMP/origin-$i.err"
	log "== origin $i on 127.0.0.1:$port"
done

# ---- nginx, the load balancer (docs/DEPLOY.md) -----------------------------------------------
mkdir -p "$TMP/nginx/logs"
for d in body proxy fastcgi uwsgi scgi; do mkdir -p "$TMP/nginx/$d"; chmod 777 "$TMP/nginx/$d"; done
LB_PORT=$(free_port)
LB1_PORT=$(free_port)
servers=""
for u in "${ORIGIN_URLS[@]}"; do servers+="        server ${u#http://} max_fails=1 fail_timeout=10s;"$'\n'; done
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $NPROC;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # A load generator keeps its connections for the whole run (nginx closes a client
    # connection after 1,000 requests by default, which it would count as failures).
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream origins {
$servers        keepalive 64;
    }
    upstream origin1 {
        server ${ORIGIN_URLS[0]#http://};
        keepalive 64;
    }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$host;
    proxy_connect_timeout 1s;
    # Purchases and refunds carry their order id: repeated on the next origin they are
    # answered from the ledger, never recorded twice, so even POSTs may move on.
    proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
    proxy_next_upstream_tries 3;
    server {
        listen 127.0.0.1:$LB_PORT;
        location / { proxy_pass http://origins; }
        # Key rotations are not idempotent: never repeated on another origin.
        location /v1/admin/ {
            proxy_pass http://origins;
            proxy_next_upstream off;
        }
    }
    server {
        listen 127.0.0.1:$LB1_PORT;
        location / { proxy_pass http://origin1; }
    }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' 2>"$TMP/nginx/logs/stderr.log" &
PIDS+=($!)
LB_URL=http://127.0.0.1:$LB_PORT
LB1_URL=http://127.0.0.1:$LB1_PORT
wait_ready "$LB_URL" "$!" "$TMP/nginx/logs/stderr.log"
log "== nginx: $LB_URL (all origins), $LB1_URL (origin 1 only)"

mint() { "$ENCORE" token mint --config "$TMP/encore.toml" --keys "$TMP/keys" --ttl 1h "$@"; }
TOKEN=$(mint --sub deploy-bench --album first-light --scope play)
STORE_TOKEN=$(mint --sub store-backend --scope store)
ADMIN_TOKEN=$(mint --sub licensing-staff --scope admin)
printf 'TMP=%s\nLEDGER_URL=%s\nBUCKET_ENDPOINT=%s\nLB_URL=%s\nLB1_URL=%s\nORIGIN_URLS="%s"\nORIGIN_PIDS="%s"\nPLAY_TOKEN=%s\nSTORE_TOKEN=%s\nADMIN_TOKEN=%s\n' \
	"$TMP" "$LEDGER_URL" "$AWS_ENDPOINT_URL" "$LB_URL" "$LB1_URL" "${ORIGIN_URLS[*]}" "${ORIGIN_PIDS[*]}" \
	"$TOKEN" "$STORE_TOKEN" "$ADMIN_TOKEN" >"$STATE"

if [ "$BENCH" != 1 ]; then
	log "== up; $STATE has the URLs, PIDs and tokens; stop this script to tear it down"
	while :; do sleep 3600 & wait $!; done
fi

# ---- measurement -----------------------------------------------------------------------------
if [ -z "${LOADGEN:-}" ]; then
	LOADGEN=$(cargo bench --quiet --bench loadgen --no-run --message-format=json |
		jq -r 'select(.executable != null and .target.name == "loadgen") | .executable')
fi
: >"$TMP/paths"
for track in 1 2 3 4; do
	curl -sf -H "Authorization: Bearer $TOKEN" "$LB_URL/v1/albums/first-light/tracks/$track/lossless/manifest" |
		jq -r '.segments[] | select(.bytes >= 100000 and .bytes <= 500000) | .url' >>"$TMP/paths" || true
done
[ -s "$TMP/paths" ] || { log "no lossless segment of 100-500 KB in the demo album"; exit 1; }
sed "s|^|$LB_URL|" "$TMP/paths" >"$TMP/all.urls"
sed "s|^|$LB1_URL|" "$TMP/paths" >"$TMP/one.urls"
log "== $(wc -l <"$TMP/paths") segments; loadgen --versus for $DURATION s, $CONNS connections each"
"$LOADGEN" --urls "$TMP/one.urls" --versus "$TMP/all.urls" --header "Authorization: Bearer $TOKEN" \
	--connections "$CONNS" --duration "$DURATION" --warmup 2 --json "$TMP/versus.json" >&2
jq -c '{one_origin_req_s: .a.req_per_s, all_origins_req_s: .b.req_per_s,
	all_over_one: .ratio_b_over_a, ratio_ci95, one_p99_ms: .a.p99_ms, all_p99_ms: .b.p99_ms,
	failures, errors}' "$TMP/versus.json"
