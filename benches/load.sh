#!/usr/bin/env bash
# Delivery under load: encore (token check on every request, segment cache hits) vs nginx
# (the same sealed files as static files), same load generator, same connections, ONE run on
# ONE machine, reported as a ratio.
#
#   benches/load.sh                      # from anywhere; results on stdout, progress on stderr
#   CONNS=64 THREADS=1 DURATION=10s RATE_DURATION=10s ROUNDS=5 PIN=1 benches/load.sh
#
# Needs: cargo, curl, jq, wrk, nginx, taskset, ss, pgrep (apt-get install wrk nginx-light jq).
# Steps (everything under a temp dir, removed on exit; every process started here is killed):
#   1. cargo build --release; throwaway keys; `encore ingest` of media/first-light;
#   2. encore serve (256 MiB segment cache, media watcher off) and nginx (root = the same
#      data/store folder; sendfile, tcp_nopush, keep-alive, access_log off, open_file_cache);
#   3. a play token from `encore token mint`; segment URLs from the lossless manifests of every
#      track, keeping segments of 100-500 KB (the same files' paths on disk for nginx);
#   4. warm-up (wrk 3 s per server: encore's cache and the page cache are hot afterwards);
#   5. ROUNDS interleaved rounds of `wrk -tTHREADS -cCONNS -dDURATION` against nginx then
#      encore; a Lua script rotates over the segment URLs and sends `Authorization: Bearer`
#      on every request to BOTH servers (nginx ignores it);
#   6. fixed rate at half of encore's peak req/s: the same wrk command with a think time per
#      connection (wrk has no rate limit; wrk2 is not packaged), calibrated in a 3 s run, then
#      ROUNDS interleaved rounds of RATE_DURATION: achieved rate, p50/p99.
# Every round's figures go to stderr. Other jobs on the machine are measured per round
# (/proc/stat minus the server and wrk); the tables show, per server, the median-req/s round
# among the clean ones (other jobs <= 0.05 cores), else the cleanest; the median req/s of all
# rounds is printed too.
# PIN=1 (default): servers run on the last CPU (taskset; nginx worker_processes 1, encore's
# runtime 1 worker thread) and wrk on the other CPUs, so the generator does not steal the
# servers' CPU and both servers get the same one-core budget. PIN=0: nothing pinned, nginx
# worker_processes = nproc, encore's default runtime (one worker per core); generator and
# server then share every core.
# Ratio: encore req/s / nginx req/s (>= 1.0: encore at least as fast). MB/s is 10^6 bytes/s
# of responses as wrk counts them (headers included). "server CPU µs/req" is the user + system
# time of the server's processes (/proc/PID/stat) over the run divided by its requests: a figure
# that holds even when other work shares the machine, where req/s does not.
set -euo pipefail

cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
PIN=${PIN:-1}
RATE_DURATION=${RATE_DURATION:-10s}
NPROC=$(nproc)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for tool in cargo curl jq wrk nginx taskset ss pgrep; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 2; }
done
case $ROUNDS in '' | *[!0-9]* | 0) echo "$0: ROUNDS must be >= 1" >&2; exit 2 ;; esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/encore-load.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

if [ "$PIN" = 1 ] && [ "$NPROC" -ge 2 ]; then
	SERVER_CPUS=$((NPROC - 1))
	LOAD_CPUS=0-$((NPROC - 2))
	SERVER_CORES=1
	SERVER_RUN=(taskset -c "$SERVER_CPUS")
	SERVER_ENV=(TOKIO_WORKER_THREADS=1)
	LOAD_RUN=(taskset -c "$LOAD_CPUS")
	LOAD_NCPU=$((NPROC - 1))
	PLACEMENT="pinned: servers on CPU $SERVER_CPUS, load generator on CPU(s) $LOAD_CPUS"
else
	PIN=0
	SERVER_CORES=$NPROC
	SERVER_RUN=()
	SERVER_ENV=()
	LOAD_RUN=()
	LOAD_NCPU=$NPROC
	PLACEMENT="not pinned: servers and load generator share all $NPROC CPU(s)"
fi
# One wrk thread per CPU it may use: two threads time-sharing one core add milliseconds to
# the tail (the fixed-rate p99 went from ~2 ms with -t1 to ~5-12 ms with -t2 on one core).
THREADS=${THREADS:-$LOAD_NCPU}

log "== machine: $NPROC CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
log "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
log "== $PLACEMENT; $(nginx -v 2>&1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"

log "== cargo build --release"
cargo build --release --quiet
ENCORE=$CARGO_TARGET_DIR/release/encore

mkdir -p "$TMP/keys" "$TMP/data" "$TMP/nginx/logs"
chmod 700 "$TMP/keys"
"$ENCORE" keys init --keys "$TMP/keys" >/dev/null 2>&1
log "== encore ingest media/first-light"
"$ENCORE" ingest --media media --keys "$TMP/keys" --data "$TMP/data" media/first-light >"$TMP/ingest.log" 2>&1 ||
	{ cat "$TMP/ingest.log" >&2; exit 1; }

# A loopback port nothing listens on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# ---- encore --------------------------------------------------------------------------------
cat >"$TMP/encore.toml" <<EOF
[server]
segment_cache_mb = 256
watch_media = false
EOF
ENCORE_PORT=$(free_port)
env "${SERVER_ENV[@]}" "${SERVER_RUN[@]}" "$ENCORE" serve \
	--config "$TMP/encore.toml" --media media --keys "$TMP/keys" --data "$TMP/data" \
	--listen "127.0.0.1:$ENCORE_PORT" >"$TMP/encore.out" 2>"$TMP/encore.err" &
PIDS+=($!)
ENCORE_URL=http://127.0.0.1:$ENCORE_PORT
for _ in $(seq 1 300); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$ENCORE_URL/readyz")" = 200 ] && break
	kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$TMP/encore.err" >&2; exit 1; }
	sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$ENCORE_URL/readyz")" = 200 ] ||
	{ log "encore did not become ready"; cat "$TMP/encore.err" >&2; exit 1; }

# ---- nginx (the same sealed files) ---------------------------------------------------------
# nginx's workers drop root privileges: let them read the store (the keys stay private).
chmod 755 "$TMP"
chmod -R a+rX "$TMP/data" "$TMP/nginx"
NGINX_PORT=$(free_port)
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $SERVER_CORES;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $TMP/data/store;
    }
}
EOF
"${SERVER_RUN[@]}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' \
	2>"$TMP/nginx/logs/stderr.log" &
PIDS+=($!)
NGINX_URL=http://127.0.0.1:$NGINX_PORT

# ---- token and segments --------------------------------------------------------------------
TOKEN=$("$ENCORE" token mint --sub load-test --album first-light --scope play --ttl 1h --keys "$TMP/keys")
: >"$TMP/encore.paths"
: >"$TMP/nginx.paths"
for track in 1 2 3 4; do
	curl -sf -H "Authorization: Bearer $TOKEN" \
		"$ENCORE_URL/v1/albums/first-light/tracks/$track/lossless/manifest" >"$TMP/manifest.json" || continue
	jq -r '.segments[] | select(.bytes >= 100000 and .bytes <= 500000) | "\(.url) \(.bytes)"' "$TMP/manifest.json" |
		while read -r url bytes; do
			# /v1/albums/A/tracks/N/R/G/F -> /A/NN/R/G/F under data/store
			IFS=/ read -r _ _ _ album _ n rendition generation file <<<"$url"
			disk=$(printf '/%s/%02d/%s/%s/%s' "$album" "$n" "$rendition" "$generation" "$file")
			[ "$(stat -c %s "$TMP/data/store$disk")" = "$bytes" ] || { log "size mismatch: $disk"; exit 1; }
			echo "$url" >>"$TMP/encore.paths"
			echo "$disk" >>"$TMP/nginx.paths"
			echo "$bytes" >>"$TMP/bytes"
		done
done
SEGMENTS=$(wc -l <"$TMP/encore.paths")
[ "$SEGMENTS" -gt 0 ] || { log "no lossless segment of 100-500 KB in the demo album"; exit 1; }
MEAN_BYTES=$(awk '{ s += $1 } END { printf "%d", s / NR }' "$TMP/bytes")
log "== $SEGMENTS segments of $(sort -n "$TMP/bytes" | head -1)-$(sort -n "$TMP/bytes" | tail -1) bytes (mean $MEAN_BYTES)"
# Both servers must send the same bytes.
for i in 1 "$SEGMENTS"; do
	a=$(curl -sf -H "Authorization: Bearer $TOKEN" "$ENCORE_URL$(sed -n "${i}p" "$TMP/encore.paths")" | sha256sum)
	b=$(curl -sf "$NGINX_URL$(sed -n "${i}p" "$TMP/nginx.paths")" | sha256sum)
	[ "$a" = "$b" ] || { log "encore and nginx disagree on segment $i"; exit 1; }
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$ENCORE_URL$(head -1 "$TMP/encore.paths")")" = 401 ] ||
	{ log "encore served a segment without a token"; exit 1; }

# ---- wrk -----------------------------------------------------------------------------------
# Requests are formatted once per thread (in init, once wrk has set Host); done() prints one
# machine-readable line.
cat >"$TMP/rotate.lua" <<'EOF'
local reqs, i = {}, 0
init = function(_)
  local token = os.getenv("LOAD_TOKEN")
  for path in io.lines(os.getenv("LOAD_PATHS")) do
    reqs[#reqs + 1] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
-- Fixed-rate runs: each connection waits a random 0..2*LOAD_DELAY_MS (whole ms, as wrk
-- takes it) after each response, so CONNS connections offer about CONNS / delay req/s.
local d = tonumber(os.getenv("LOAD_DELAY_MS") or "")
if d then
  delay = function() return math.floor(math.random() * 2 * d + 0.5) end
end
done = function(s, latency, _)
  io.write(string.format(
    "RESULT requests=%d bytes=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    s.requests, s.bytes, s.duration, latency:percentile(50), latency:percentile(99), latency.max,
    s.errors.status, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))
end
EOF

# CPU time (user + system, clock ticks) used so far by the given processes.
cpu_ticks() { local p t=0 v; for p in "$@"; do v=$(awk '{ print $14 + $15 }' "/proc/$p/stat"); t=$((t + v)); done; echo "$t"; }
# Busy clock ticks of the whole machine (user, nice, system, irq, softirq, steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# CPU seconds used by this shell's finished children (wrk included, once waited for). `times`
# must run in this shell, not in a $(...) subshell, which has no children of its own yet.
children_cpu() {
	times >"$TMP/times.$BASHPID"
	awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$TMP/times.$BASHPID"
}
TCK=$(getconf CLK_TCK)

DELAY_MS= # empty: no think time (peak runs)
# run_wrk NAME URL PATHS DURATION PID...
#   -> "req_s mb_s p50_ms p99_ms cpu_us_per_req server_cores other_cores wrk_cores"
# cpu_us_per_req: CPU the server's processes (PID...) used per request, user + system;
# server_cores: the same in cores (below the server's CPU budget: the load generator or other
# work was the limit); other_cores: CPU used meanwhile by everything but the server and wrk
# (other jobs on the machine; near 0 for a clean round); wrk_cores: the load generator's CPU.
run_wrk() {
	local name=$1 url=$2 paths=$3 dur=$4 line c0 c1 m0 m1 w0 w1
	shift 4
	c0=$(cpu_ticks "$@")
	m0=$(machine_ticks)
	children_cpu >"$TMP/w0.$BASHPID"
	line=$(LOAD_TOKEN=$TOKEN LOAD_PATHS=$paths LOAD_DELAY_MS=$DELAY_MS "${LOAD_RUN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$dur" \
		--timeout 5s -s "$TMP/rotate.lua" "$url" | grep '^RESULT') || { log "wrk failed against $name"; exit 1; }
	children_cpu >"$TMP/w1.$BASHPID"
	w0=$(<"$TMP/w0.$BASHPID")
	w1=$(<"$TMP/w1.$BASHPID")
	m1=$(machine_ticks)
	c1=$(cpu_ticks "$@")
	# shellcheck disable=SC2086
	set -- $line
	local -A r
	local kv
	for kv in "${@:2}"; do r[${kv%%=*}]=${kv#*=}; done
	if [ "${r[status_errors]}" != 0 ] || [ "${r[socket_errors]}" != 0 ]; then
		log "$name: ${r[status_errors]} non-2xx responses, ${r[socket_errors]} socket errors"
		exit 1
	fi
	awk -v n="${r[requests]}" -v b="${r[bytes]}" -v d="${r[duration_us]}" \
		-v p50="${r[p50_us]}" -v p99="${r[p99_us]}" -v cpu=$((c1 - c0)) -v all=$((m1 - m0)) \
		-v w0="$w0" -v w1="$w1" -v tck="$TCK" \
		'BEGIN {
			sec = d / 1e6; other = (all - cpu) / tck - (w1 - w0)
			printf "%.0f %.0f %.2f %.2f %.0f %.2f %.2f %.2f\n", n / sec, b / sec / 1e6, p50 / 1e3, p99 / 1e3,
				cpu / tck * 1e6 / n, cpu / tck / sec, (other > 0 ? other : 0) / sec, (w1 - w0) / sec
		}'
}

# pick FILE -> a round (line): of the clean rounds (other jobs used <= 0.05 cores, column 7),
# the one with the median req/s; with no clean round, the one with the least other load.
pick() {
	local clean
	clean=$(awk '$7 <= 0.05' "$1" | sort -n -k1,1)
	if [ -n "$clean" ]; then
		awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }' <<<"$clean"
	else
		sort -s -n -k7,7 "$1" | head -1
	fi
}
# median FILE -> the median of column 1.
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

log "== warm-up (3 s each)"
ENCORE_PID=${PIDS[0]}
mapfile -t NGINX_PIDS < <(echo "${PIDS[1]}"; pgrep -P "${PIDS[1]}")
run_wrk nginx "$NGINX_URL" "$TMP/nginx.paths" 3s "${NGINX_PIDS[@]}" >/dev/null
run_wrk encore "$ENCORE_URL" "$TMP/encore.paths" 3s "$ENCORE_PID" >/dev/null

COLS="req/s MB/s p50_ms p99_ms cpu_us/req server_cores other_cores wrk_cores"
log "== $ROUNDS round(s) of wrk -t$THREADS -c$CONNS -d$DURATION, nginx then encore"
for r in $(seq 1 "$ROUNDS"); do
	n=$(run_wrk nginx "$NGINX_URL" "$TMP/nginx.paths" "$DURATION" "${NGINX_PIDS[@]}")
	e=$(run_wrk encore "$ENCORE_URL" "$TMP/encore.paths" "$DURATION" "$ENCORE_PID")
	log "   round $r: nginx $n | encore $e   ($COLS)"
	echo "$n" >>"$TMP/peak.nginx"
	echo "$e" >>"$TMP/peak.encore"
done
read -r N_RPS N_MBS N_P50 N_P99 N_CPU N_BUSY N_OTHER N_WRK <<<"$(pick "$TMP/peak.nginx")"
read -r E_RPS E_MBS E_P50 E_P99 E_CPU E_BUSY E_OTHER E_WRK <<<"$(pick "$TMP/peak.encore")"
N_MED=$(median "$TMP/peak.nginx")
E_MED=$(median "$TMP/peak.encore")
RATIO=$(awk -v e="$E_RPS" -v n="$N_RPS" 'BEGIN { printf "%.2f", e / n }')
MED_RATIO=$(awk -v e="$E_MED" -v n="$N_MED" 'BEGIN { printf "%.2f", e / n }')
CPU_RATIO=$(awk -v e="$E_CPU" -v n="$N_CPU" 'BEGIN { printf "%.2f", e / n }')

# ---- fixed rate: half of encore's peak -----------------------------------------------------
# wrk has no rate limit (wrk2 is not packaged): each connection pauses between requests
# (think time, see rotate.lua), calibrated so the offered rate is half of encore's peak above.
# Closed loop: a slow response delays that connection's next request (coordinated omission),
# which at half load, with a few requests in flight on average, understates the tail slightly.
HALF=$((E_RPS / 2))
DELAY_MS=$(awk -v c="$CONNS" -v t="$HALF" 'BEGIN { printf "%.3f", c * 1000 / t }')
# rate ~ CONNS / (think + time per request): two 3 s runs correct the think time by
# achieved / target (kept within 0.5-1.5x of the first guess).
D0=$DELAY_MS
for _ in 1 2; do
	log "== fixed rate: calibrating the think time for $HALF req/s (3 s, ${DELAY_MS} ms)"
	res=$(run_wrk encore "$ENCORE_URL" "$TMP/encore.paths" 3s "$ENCORE_PID")
	read -r cal _ <<<"$res"
	DELAY_MS=$(awk -v d="$DELAY_MS" -v a="$cal" -v t="$HALF" -v d0="$D0" \
		'BEGIN { x = d * a / t; if (x < d0 / 2) x = d0 / 2; if (x > d0 * 1.5) x = d0 * 1.5; printf "%.3f", x }')
done
log "== fixed rate: $ROUNDS round(s) of wrk -t$THREADS -c$CONNS -d$RATE_DURATION, think time ${DELAY_MS} ms mean"
for r in $(seq 1 "$ROUNDS"); do
	n=$(run_wrk nginx "$NGINX_URL" "$TMP/nginx.paths" "$RATE_DURATION" "${NGINX_PIDS[@]}")
	e=$(run_wrk encore "$ENCORE_URL" "$TMP/encore.paths" "$RATE_DURATION" "$ENCORE_PID")
	log "   round $r: nginx $n | encore $e   ($COLS)"
	echo "$n" >>"$TMP/rate.nginx"
	echo "$e" >>"$TMP/rate.encore"
done
read -r NH_RPS _ NH_P50 NH_P99 NH_CPU NH_BUSY NH_OTHER NH_WRK <<<"$(pick "$TMP/rate.nginx")"
read -r EH_RPS _ EH_P50 EH_P99 EH_CPU EH_BUSY EH_OTHER EH_WRK <<<"$(pick "$TMP/rate.encore")"

log "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
cat <<EOF

Peak: wrk -t$THREADS -c$CONNS -d$DURATION, $SEGMENTS segments of ~$((MEAN_BYTES / 1000)) KB, token on every
request; $PLACEMENT. Per server: of $ROUNDS interleaved rounds, the median-req/s one among
those in which other jobs used <= 0.05 cores (else the cleanest one).

| server | req/s | MB/s | p50 ms | p99 ms | server CPU µs/req | server cores busy (of $SERVER_CORES) | wrk cores | other cores |
|--------|------:|-----:|-------:|-------:|------------------:|-----:|-----:|-----:|
| nginx  | $N_RPS | $N_MBS | $N_P50 | $N_P99 | $N_CPU | $N_BUSY | $N_WRK | $N_OTHER |
| encore | $E_RPS | $E_MBS | $E_P50 | $E_P99 | $E_CPU | $E_BUSY | $E_WRK | $E_OTHER |

encore / nginx: req/s ${RATIO}x (medians of all rounds: $E_MED / $N_MED = ${MED_RATIO}x); server CPU per request ${CPU_RATIO}x

Fixed rate at half of encore's peak: $HALF req/s offered (wrk -t$THREADS -c$CONNS -d$RATE_DURATION,
${DELAY_MS} ms mean think time per connection); rounds picked as above.

| server | achieved req/s | p50 ms | p99 ms | server CPU µs/req | server cores busy | wrk cores | other cores |
|--------|---------------:|-------:|-------:|------------------:|-----:|-----:|-----:|
| nginx  | $NH_RPS | $NH_P50 | $NH_P99 | $NH_CPU | $NH_BUSY | $NH_WRK | $NH_OTHER |
| encore | $EH_RPS | $EH_P50 | $EH_P99 | $EH_CPU | $EH_BUSY | $EH_WRK | $EH_OTHER |
EOF
