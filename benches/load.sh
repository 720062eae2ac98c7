#!/usr/bin/env bash
# Delivery under load: encore (token check on every request, segment cache hits) vs nginx
# (the same sealed files as static files), same load generator (benches/loadgen.rs), same
# connections, ONE run on ONE machine, reported as a ratio; then the latency of both at a fixed
# rate, open loop.
#
#   benches/load.sh                      # from anywhere; results on stdout, progress on stderr
#   CONNS=64 DURATION=10s RATE_DURATION=10s WARMUP=1 ROUNDS=7 PIN=1 RATE= RCVBUF=0 \
#       INTERLEAVE=120 RATE_INTERLEAVE=120 SLICE=0.1 benches/load.sh
#
# Needs: cargo, curl, jq, nginx, taskset, ss, pgrep (apt-get install nginx-light jq).
# Steps (everything under a temp dir, removed on exit; every process started here is killed):
#   1. cargo build --release and the load generator (`cargo bench --bench loadgen --no-run`);
#      throwaway keys; `encore ingest` of media/first-light;
#   2. encore serve (256 MiB segment cache, media watcher off) and nginx (root = the same
#      data/store folder; sendfile, tcp_nopush, keep-alive, access_log off, open_file_cache);
#   3. a play token from `encore token mint`; segment URLs from the lossless manifests of every
#      track, keeping segments of 100-500 KB (the same files' paths on disk for nginx); both
#      servers must return the same bytes, and encore must refuse a request without a token;
#   4. warm-up (3 s per server: encore's cache and the page cache are hot afterwards);
#   5. peak: ROUNDS interleaved rounds of loadgen with CONNS connections, closed loop (each
#      connection sends its next request when the previous response is read), WARMUP s not
#      counted then DURATION s measured, against both servers (nginx first in odd rounds,
#      encore first in even ones); each request takes one of the URLs at random and carries
#      `Authorization: Bearer <token>` to BOTH servers (nginx ignores it); any non-200
#      response, short body or socket error aborts the run;
#   5b. interleaved (INTERLEAVE s, default 120; 0 skips it): ONE loadgen drives both servers,
#      CONNS kept-alive connections to each, in SLICE s slices (default 0.1) that alternate
#      nginx, encore, encore, nginx, ... (loadgen --versus): the machine's interference comes and
#      goes over seconds, so within a block of four slices it lands on both alike, where whole
#      rounds seconds apart each get their own share of it. Reported: encore / nginx req/s as
#      the ratio of the totals, its 95 % bootstrap interval over the blocks, and the blocks in
#      which encore was ahead. This is the ratio the goal is judged by;
#   6. fixed rate (open loop) at RATE req/s, by default half of encore's peak req/s (the
#      reported round): ROUNDS interleaved rounds of loadgen --rate RATE. Its clock (a thread
#      of its own, sub-ms sleeps) makes request k due at t0 + k / RATE and hands it to whichever
#      connection is free; the latency is measured from the due time to the last body byte, so
#      a slow response delays nothing else's start (no coordinated omission). Requests due in
#      the first WARMUP s (connections opening, TCP windows growing) are left out; p50/p99/
#      p99.9 are exact order statistics of the rest. "clock late p99" is how late the clock
#      queued requests against the schedule (a health figure of the generator);
#   6b. interleaved at the fixed rate (RATE_INTERLEAVE s, default 120; 0 skips it): ONE loadgen
#      --versus --rate offers RATE req/s to each server during its own SLICE s slices, in the
#      order of 5b. Per server, over all its requests of the run: p50, p99 and p99.9, and the
#      share over 2 ms, with 95 % intervals from resampling whole blocks, and the interval of
#      encore's p99 minus nginx's, paired block by block. A 10 s round's p99 is decided by
#      whether one of this guest's 10-50 ms stalls falls in it (docs/PERFORMANCE.md); pooled over
#      minutes of interleaved slices, both servers meet the same stalls. This is the p99 the goal
#      is judged by;
#   7. the reference: ROUNDS rounds of nginx alone at half of ITS OWN peak (the reported round).
# RCVBUF (default 0: the kernel's autotuning): SO_RCVBUF the generator sets on its sockets
# before connecting, the same for both servers. It mattered with oha, which reads bodies slowly
# enough for windows to close (docs/PERFORMANCE.md); loadgen drains each socket as data arrives,
# and 4 MiB gave the same figures within noise.
# HOLD=1: stop after step 3 with both servers up (pinned as for the rounds) and write their
# PIDs, the URL files, the generator, the token and the pinning as shell variables to HOLD_ENV
# (default /tmp/encore-load.env), for perf profiles, ad-hoc loadgen rounds and
# benches/side_by_side.sh (A/B of encore builds against nginx); stop the script to end.
# DUMP=PREFIX: write every measured request (due µs, latency µs, connection) to PREFIX.NAME.N.
# Before each round the script waits (up to QUIET_WAIT s, default 300) for 2 s in which the
# machine's other jobs use < 0.05 cores (QUIET_WAIT=0: no wait). Other jobs are also measured
# per round (/proc/stat minus the server and the generator); the tables show, per server, the
# median-req/s round (peak) or median-p99 round (fixed rate) among the clean ones (other jobs
# <= 0.05 cores), else the cleanest; every round's figures go to stderr.
# PIN=1 (default): servers run on the last CPU (taskset; nginx worker_processes 1, encore's
# runtime 1 worker thread) and the generator on the other CPUs, so it does not steal the
# servers' CPU and both servers get the same one-core budget. PIN=0: nothing pinned, nginx
# worker_processes = nproc, encore's defaults (one connection thread per core); generator and
# server then share every core.
# Ratio: encore req/s / nginx req/s (>= 1.0: encore at least as fast), of the reported rounds,
# of the medians, and round by round (each round's encore run against the nginx run just before). MB/s is 10^6 bytes/s of
# response bodies (headers not included). "server CPU µs/req" is the user + system time of the
# server's processes (/proc/PID/stat) over the run divided by its requests: a figure that holds
# even when other work shares the machine, where req/s does not.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-7}
PIN=${PIN:-1}
RATE_DURATION=${RATE_DURATION:-10s}
RATE_DURATION=${RATE_DURATION%s}
WARMUP=${WARMUP:-1}
RATE=${RATE:-}
QUIET_WAIT=${QUIET_WAIT:-300}
RCVBUF=${RCVBUF:-0}
DUMP=${DUMP:-}
HOLD=${HOLD:-0}
INTERLEAVE=${INTERLEAVE:-120}
INTERLEAVE=${INTERLEAVE%s}
SLICE=${SLICE:-0.1}
RATE_INTERLEAVE=${RATE_INTERLEAVE:-120}
RATE_INTERLEAVE=${RATE_INTERLEAVE%s}
HOLD_ENV=${HOLD_ENV:-${TMPDIR:-/tmp}/encore-load.env}
DUMP_N=0
NPROC=$(nproc)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for tool in cargo curl jq nginx taskset ss pgrep; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 2; }
done
case $ROUNDS in '' | *[!0-9]* | 0) echo "$0: ROUNDS must be >= 1" >&2; exit 2 ;; esac

with_cleanup encore-load

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

log "== machine: $NPROC CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
log "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
log "== $PLACEMENT; $(nginx -v 2>&1); loadgen SO_RCVBUF ${RCVBUF}"

# ENCORE=… LOADGEN=…: binaries already built (e.g. the dev profile's, for a quick check of the
# script); default: release builds.
if [ -z "${ENCORE:-}" ]; then
	log "== cargo build --release"
	cargo build --release --quiet
	ENCORE=$CARGO_TARGET_DIR/release/encore
fi
if [ -z "${LOADGEN:-}" ]; then
	LOADGEN=$(cargo bench --quiet --bench loadgen --no-run --message-format=json |
		jq -r 'select(.executable != null and .target.name == "loadgen") | .executable')
fi
[ -x "$LOADGEN" ] || { log "could not build benches/loadgen.rs"; exit 1; }

mkdir -p "$TMP/keys" "$TMP/data" "$TMP/nginx/logs"
chmod 700 "$TMP/keys"
"$ENCORE" keys init --keys "$TMP/keys" >/dev/null 2>&1
log "== encore ingest media/first-light"
"$ENCORE" ingest --media media --keys "$TMP/keys" --data "$TMP/data" media/first-light >"$TMP/ingest.log" 2>&1 ||
	{ cat "$TMP/ingest.log" >&2; exit 1; }

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
wait_ready "$ENCORE_URL" "${PIDS[0]}" "$TMP/encore.err"

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

# ---- load -----------------------------------------------------------------------------------
sed "s|^|$ENCORE_URL|" "$TMP/encore.paths" >"$TMP/encore.urls"
sed "s|^|$NGINX_URL|" "$TMP/nginx.paths" >"$TMP/nginx.urls"

if [ "$HOLD" = 1 ]; then
	# For profiles and ad-hoc rounds: both servers stay up until this script is stopped.
	printf 'TMP=%s\nENCORE_PID=%s\nNGINX_PID=%s\nLOADGEN=%s\nTOKEN=%s\nMEDIA=%s\nSERVER_RUN_CPUS=%s\nLOAD_RUN_CPUS=%s\n' \
		"$TMP" "${PIDS[0]}" "$(pgrep -P "${PIDS[1]}" -n || echo "${PIDS[1]}")" "$LOADGEN" "$TOKEN" \
		"$PWD/media" "$([ "$PIN" = 1 ] && echo "$SERVER_CPUS" || echo all)" \
		"$([ "$PIN" = 1 ] && echo "$LOAD_CPUS" || echo all)" >"$HOLD_ENV"
	log "== holding: servers up, see $HOLD_ENV; stop this script (TERM/INT) to end"
	while :; do sleep 3600 & wait $!; done
fi

# CPU time (user + system, clock ticks) used so far by the given processes.
cpu_ticks() { local p t=0 v; for p in "$@"; do v=$(awk '{ print $14 + $15 }' "/proc/$p/stat"); t=$((t + v)); done; echo "$t"; }
# Busy clock ticks of the whole machine (user, nice, system, irq, softirq, steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# CPU seconds used by this shell's finished children (the generator included, once waited for). `times`
# must run in this shell, not in a $(...) subshell, which has no children of its own yet.
children_cpu() {
	times >"$TMP/times.$BASHPID"
	awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$TMP/times.$BASHPID"
}
TCK=$(getconf CLK_TCK)

# Waits (up to QUIET_WAIT s) for 2 s in which the machine is idle (< 0.05 cores busy): nothing
# of ours runs between rounds, so whatever is busy then is other jobs.
wait_quiet() {
	local t0=$SECONDS m0 m1
	[ "$QUIET_WAIT" -gt 0 ] || return 0
	while [ $((SECONDS - t0)) -lt "$QUIET_WAIT" ]; do
		m0=$(machine_ticks)
		sleep 2
		m1=$(machine_ticks)
		[ $((m1 - m0)) -le $((TCK / 10)) ] && return 0
	done
	log "   (machine not quiet after ${QUIET_WAIT} s; measuring anyway)"
}

# run_gen NAME URLS SECONDS RATE PID...
#   peak (RATE empty): -> "req_s mb_s p50_ms p99_ms cpu_us_per_req server_cores other_cores gen_cores"
#   fixed rate:        -> "req_s p50_ms p99_ms p999_ms cpu_us_per_req server_cores other_cores gen_cores clock_late_p99_ms over_2ms_pct"
# SECONDS are measured after WARMUP seconds that are run but not counted. cpu_us_per_req: CPU
# the server's processes (PID...) used per request, user + system, over the whole run (warm-up
# included, so divided by all its requests: measured ones scaled by (WARMUP + SECONDS) /
# SECONDS); server_cores: the same in cores; other_cores: CPU used meanwhile by everything but
# the server and the generator (other jobs on the machine; near 0 for a clean round);
# gen_cores: the load generator's CPU.
run_gen() {
	local name=$1 urls=$2 secs=$3 rate=$4 c0 c1 m0 m1 w0 w1 t0 t1 extra=() out=$TMP/gen.json
	shift 4
	[ -n "$rate" ] && extra=(--rate "$rate")
	[ -n "$DUMP" ] && extra+=(--dump "$DUMP.$name.$((++DUMP_N))")
	c0=$(cpu_ticks "$@")
	m0=$(machine_ticks)
	children_cpu >"$TMP/w0.$BASHPID"
	t0=$(date +%s.%N)
	"${LOAD_RUN[@]}" "$LOADGEN" --urls "$urls" --header "Authorization: Bearer $TOKEN" \
		--connections "$CONNS" --duration "$secs" --warmup "$WARMUP" --rcvbuf "$RCVBUF" \
		--json "$out" "${extra[@]}" 2>"$TMP/gen.err" ||
		{ log "loadgen failed against $name"; cat "$TMP/gen.err" >&2; exit 1; }
	t1=$(date +%s.%N)
	children_cpu >"$TMP/w1.$BASHPID"
	m1=$(machine_ticks)
	c1=$(cpu_ticks "$@")
	w0=$(<"$TMP/w0.$BASHPID")
	w1=$(<"$TMP/w1.$BASHPID")
	local busy=$((c1 - c0)) all=$((m1 - m0))
	jq -r '"\(.requests) \(.req_per_s) \(.mb_per_s) \(.p50_ms) \(.p99_ms) \(.p999_ms) \(.clock_late_p99_ms // 0) \(.over_2ms)"' "$out" |
		awk -v cpu="$busy" -v all="$all" -v w0="$w0" -v w1="$w1" -v tck="$TCK" -v secs="$secs" \
			-v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v rate="$rate" '{
			other = (all - cpu) / tck - (w1 - w0)
			# requests over the whole run, warm-up included, at the measured rate
			n = $2 * wall
			if (rate == "")
				printf "%.0f %.0f %.2f %.2f %.0f %.2f %.2f %.2f\n", $2, $3, $4, $5,
					cpu / tck * 1e6 / n, cpu / tck / wall, (other > 0 ? other : 0) / wall, (w1 - w0) / wall
			else
				printf "%.0f %.2f %.2f %.2f %.0f %.2f %.2f %.2f %.2f %.2f\n", $2, $4, $5, $6,
					cpu / tck * 1e6 / n, cpu / tck / wall, (other > 0 ? other : 0) / wall,
					(w1 - w0) / wall, $7, $8 * 100 / $1
		}'
}

# pick FILE COL ORDER -> a round (line): of the clean rounds (other jobs used <= 0.05 cores,
# column 7), the one with the median of column COL; with no clean round, the least disturbed.
pick() {
	local clean
	clean=$(awk '$7 <= 0.05' "$1" | sort -g -k"$2,$2")
	if [ -n "$clean" ]; then
		awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }' <<<"$clean"
	else
		sort -s -g -k7,7 "$1" | head -1
	fi
}
# median FILE COL -> the median of column COL over all rounds.
median() { sort -g -k"$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }
# column FILE COL -> the values of column COL, round by round, comma-separated.
column() { awk -v c="$2" '{ printf "%s%s", (NR > 1 ? ", " : ""), $c }' "$1"; }

log "== warm-up (3 s each)"
ENCORE_PID=${PIDS[0]}
mapfile -t NGINX_PIDS < <(echo "${PIDS[1]}"; pgrep -P "${PIDS[1]}")
run_gen nginx "$TMP/nginx.urls" 3 "" "${NGINX_PIDS[@]}" >/dev/null
run_gen encore "$TMP/encore.urls" 3 "" "$ENCORE_PID" >/dev/null
log "== encore after warm-up: $(curl -s "$ENCORE_URL/metrics" | awk '/^encore_segment_cache_bytes / { c = $2 } /^encore_segment_pages_pinned_bytes / { p = $2 } END { printf "%d bytes cached, %d of them pinned in the page cache", c, p }')"

DURATION=${DURATION%s}
COLS="req/s MB/s p50_ms p99_ms cpu_us/req server_cores other_cores gen_cores"
log "== peak: $ROUNDS round(s) of loadgen --connections $CONNS --warmup $WARMUP --duration $DURATION (closed loop), nginx first in odd rounds, encore first in even ones"
for r in $(seq 1 "$ROUNDS"); do
	wait_quiet
	# Alternating who goes first cancels any advantage of a position in the pair.
	if [ $((r % 2)) = 1 ]; then
		n=$(run_gen nginx "$TMP/nginx.urls" "$DURATION" "" "${NGINX_PIDS[@]}")
		e=$(run_gen encore "$TMP/encore.urls" "$DURATION" "" "$ENCORE_PID")
	else
		e=$(run_gen encore "$TMP/encore.urls" "$DURATION" "" "$ENCORE_PID")
		n=$(run_gen nginx "$TMP/nginx.urls" "$DURATION" "" "${NGINX_PIDS[@]}")
	fi
	log "   round $r: nginx $n | encore $e   ($COLS)"
	echo "$n" >>"$TMP/peak.nginx"
	echo "$e" >>"$TMP/peak.encore"
done
read -r N_RPS N_MBS N_P50 N_P99 N_CPU N_BUSY N_OTHER N_WRK <<<"$(pick "$TMP/peak.nginx" 1)"
read -r E_RPS E_MBS E_P50 E_P99 E_CPU E_BUSY E_OTHER E_WRK <<<"$(pick "$TMP/peak.encore" 1)"
N_MED=$(median "$TMP/peak.nginx" 1)
E_MED=$(median "$TMP/peak.encore" 1)
RATIO=$(awk -v e="$E_RPS" -v n="$N_RPS" 'BEGIN { printf "%.2f", e / n }')
MED_RATIO=$(awk -v e="$E_MED" -v n="$N_MED" 'BEGIN { printf "%.2f", e / n }')
CPU_RATIO=$(awk -v e="$E_CPU" -v n="$N_CPU" 'BEGIN { printf "%.2f", e / n }')
# Each round's own ratio: its two runs are back to back, so a drift of the machine between
# rounds (this guest's CPU time per request moves by 10-20 % over minutes) cancels out.
paste -d' ' "$TMP/peak.encore" "$TMP/peak.nginx" | awk '{ printf "%.2f\n", $1 / $9 }' >"$TMP/peak.ratio"
ROUND_RATIOS=$(column "$TMP/peak.ratio" 1)
ROUND_MED=$(median "$TMP/peak.ratio" 1)

# ---- interleaved: both servers in alternating slices of one run ----------------------------
# run_versus SECONDS JSON [ARG...]: one loadgen --versus run, nginx as A and encore as B, with
# the run's header, connections and slices; the extra ARGs (--rate R) are passed on.
run_versus() {
	local secs=$1 json=$2
	shift 2
	"${LOAD_RUN[@]}" "$LOADGEN" --urls "$TMP/nginx.urls" --versus "$TMP/encore.urls" "$@" \
		--header "Authorization: Bearer $TOKEN" --connections "$CONNS" --rcvbuf "$RCVBUF" \
		--slice "$SLICE" --warmup 2 --duration "$secs" --json "$json" 2>"$TMP/gen.err" ||
		{ log "loadgen --versus $* failed"; cat "$TMP/gen.err" >&2; exit 1; }
}
IL_LINE="interleaved: skipped (INTERLEAVE=0)"
if [ "$INTERLEAVE" != 0 ]; then
	log "== interleaved: loadgen --urls nginx --versus encore --connections $CONNS (each) --slice $SLICE --warmup 2 --duration $INTERLEAVE"
	wait_quiet
	run_versus "$INTERLEAVE" "$TMP/versus.json"
	IL_LINE=$(jq -r '"encore / nginx req/s \(.ratio_b_over_a * 1000 | round / 1000)x (95 % interval \(.ratio_ci95[0] * 1000 | round / 1000)-\(.ratio_ci95[1] * 1000 | round / 1000)), encore ahead in \(.blocks_b_ahead) of \(.blocks) blocks; nginx \(.a.req_per_s | round) req/s, encore \(.b.req_per_s | round) req/s, each over \(.a.seconds) s of slices"' "$TMP/versus.json")
	log "   $IL_LINE"
fi

# ---- fixed rate, open loop -----------------------------------------------------------------
HALF=${RATE:-$((E_RPS / 2))}
RCOLS="req/s p50_ms p99_ms p99.9_ms cpu_us/req server_cores other_cores gen_cores clock_late_p99_ms over_2ms_%"
log "== fixed rate: $ROUNDS round(s) of loadgen --connections $CONNS --rate $HALF --warmup $WARMUP --duration $RATE_DURATION"
for r in $(seq 1 "$ROUNDS"); do
	wait_quiet
	if [ $((r % 2)) = 1 ]; then
		n=$(run_gen nginx "$TMP/nginx.urls" "$RATE_DURATION" "$HALF" "${NGINX_PIDS[@]}")
		wait_quiet
		e=$(run_gen encore "$TMP/encore.urls" "$RATE_DURATION" "$HALF" "$ENCORE_PID")
	else
		e=$(run_gen encore "$TMP/encore.urls" "$RATE_DURATION" "$HALF" "$ENCORE_PID")
		wait_quiet
		n=$(run_gen nginx "$TMP/nginx.urls" "$RATE_DURATION" "$HALF" "${NGINX_PIDS[@]}")
	fi
	log "   round $r: nginx $n | encore $e   ($RCOLS)"
	echo "$n" >>"$TMP/rate.nginx"
	echo "$e" >>"$TMP/rate.encore"
done
read -r NH_RPS NH_P50 NH_P99 NH_P999 NH_CPU NH_BUSY NH_OTHER NH_WRK NH_LATE NH_OVER <<<"$(pick "$TMP/rate.nginx" 3)"
read -r EH_RPS EH_P50 EH_P99 EH_P999 EH_CPU EH_BUSY EH_OTHER EH_WRK EH_LATE EH_OVER <<<"$(pick "$TMP/rate.encore" 3)"
NH_ALL=$(column "$TMP/rate.nginx" 3)
EH_ALL=$(column "$TMP/rate.encore" 3)
NH_OTH=$(column "$TMP/rate.nginx" 7)
EH_OTH=$(column "$TMP/rate.encore" 7)

# ---- fixed rate, interleaved: both tails under the same interference ----------------------
IR_LINE="interleaved at a fixed rate: skipped (RATE_INTERLEAVE=0)"
if [ "$RATE_INTERLEAVE" != 0 ]; then
	log "== interleaved at a fixed rate: loadgen --urls nginx --versus encore --rate $HALF --connections $CONNS (each) --slice $SLICE --warmup 2 --duration $RATE_INTERLEAVE"
	wait_quiet
	run_versus "$RATE_INTERLEAVE" "$TMP/versus-rate.json" --rate "$HALF"
	IR_LINE=$(jq -r 'def r: . * 100 | round / 100;
		def tail(s): "p99 \(s.p99_ms) ms (95 % \(s.p99_ms_ci95[0] | r)-\(s.p99_ms_ci95[1] | r)), p99.9 \(s.p999_ms) ms, over 2 ms \(s.over_2ms_pct | r) % (95 % \(s.over_2ms_pct_ci95[0] | r)-\(s.over_2ms_pct_ci95[1] | r)), p50 \(s.p50_ms) ms, \(s.requests) requests";
		"encore \(tail(.b)); nginx \(tail(.a)); encore - nginx p99: 95 % \(.p99_diff_b_minus_a_ms_ci95[0] | r) to \(.p99_diff_b_minus_a_ms_ci95[1] | r) ms"' "$TMP/versus-rate.json")
	log "   $IR_LINE"
fi

# ---- the reference at half of ITS OWN peak ------------------------------------------------
# The goal is stated against encore's own peak; the same question asked of nginx at half of its
# peak says what this machine allows a server that does no work of its own per request.
NHALF=$((N_RPS / 2))
log "== nginx at half of its own peak: $ROUNDS round(s) of loadgen --rate $NHALF"
for r in $(seq 1 "$ROUNDS"); do
	wait_quiet
	n=$(run_gen nginx "$TMP/nginx.urls" "$RATE_DURATION" "$NHALF" "${NGINX_PIDS[@]}")
	log "   round $r: nginx $n   ($RCOLS)"
	echo "$n" >>"$TMP/own.nginx"
done
read -r NO_RPS NO_P50 NO_P99 NO_P999 NO_CPU NO_BUSY NO_OTHER NO_WRK NO_LATE NO_OVER <<<"$(pick "$TMP/own.nginx" 3)"
NO_ALL=$(column "$TMP/own.nginx" 3)

log "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
cat <<EOF

Peak: loadgen --connections $CONNS --rcvbuf $RCVBUF, closed loop, ${DURATION} s measured after ${WARMUP} s of warm-up;
$SEGMENTS segments of ~$((MEAN_BYTES / 1000)) KB, token on every request; $PLACEMENT. Per server: of
$ROUNDS interleaved rounds, the median-req/s one among those in which other jobs used <= 0.05 cores
(else the least disturbed one).

| server | req/s | MB/s | p50 ms | p99 ms | server CPU µs/req | server cores busy (of $SERVER_CORES) | generator cores | other cores |
|--------|------:|-----:|-------:|-------:|------------------:|-----:|-----:|-----:|
| nginx  | $N_RPS | $N_MBS | $N_P50 | $N_P99 | $N_CPU | $N_BUSY | $N_WRK | $N_OTHER |
| encore | $E_RPS | $E_MBS | $E_P50 | $E_P99 | $E_CPU | $E_BUSY | $E_WRK | $E_OTHER |

encore / nginx: req/s ${RATIO}x (medians of all rounds: $E_MED / $N_MED = ${MED_RATIO}x); server CPU per request ${CPU_RATIO}x
per round: $ROUND_RATIOS (median ${ROUND_MED}x)

Interleaved (one loadgen, $CONNS connections to each server, ${SLICE} s slices in the order nginx encore
encore nginx for ${INTERLEAVE} s after 2 s of warm-up): $IL_LINE

Fixed rate, open loop: $HALF req/s offered (loadgen --rate $HALF, $CONNS connections), ${RATE_DURATION} s measured
after ${WARMUP} s of warm-up, latency from each request's due time; per server the median-p99 round
among the clean ones (else the least disturbed).

| server | achieved req/s | p50 ms | p99 ms | p99.9 ms | > 2 ms | server CPU µs/req | server cores busy | generator cores | other cores | clock late p99 ms |
|--------|---------------:|-------:|-------:|---------:|-------:|------------------:|-----:|-----:|-----:|-----:|
| nginx  | $NH_RPS | $NH_P50 | $NH_P99 | $NH_P999 | $NH_OVER % | $NH_CPU | $NH_BUSY | $NH_WRK | $NH_OTHER | $NH_LATE |
| encore | $EH_RPS | $EH_P50 | $EH_P99 | $EH_P999 | $EH_OVER % | $EH_CPU | $EH_BUSY | $EH_WRK | $EH_OTHER | $EH_LATE |

p99 ms per round: nginx $NH_ALL (other cores $NH_OTH); encore $EH_ALL (other cores $EH_OTH)

Interleaved at the same rate (one loadgen offering $HALF req/s to each server in its own ${SLICE} s slices,
nginx encore encore nginx, for ${RATE_INTERLEAVE} s after 2 s of warm-up; percentiles over all of a server's
requests, intervals from resampling blocks): $IR_LINE

The same question asked of nginx: its p99 at half of its own peak, $NHALF req/s (median-p99 round):

| server | achieved req/s | p50 ms | p99 ms | p99.9 ms | > 2 ms | server CPU µs/req | server cores busy | generator cores | other cores | clock late p99 ms |
|--------|---------------:|-------:|-------:|---------:|-------:|------------------:|-----:|-----:|-----:|-----:|
| nginx  | $NO_RPS | $NO_P50 | $NO_P99 | $NO_P999 | $NO_OVER % | $NO_CPU | $NO_BUSY | $NO_WRK | $NO_OTHER | $NO_LATE |

p99 ms per round: nginx at half its own peak $NO_ALL
EOF
