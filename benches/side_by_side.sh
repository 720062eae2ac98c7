#!/usr/bin/env bash
# A/B of encore builds against nginx, side by side on the set-up `HOLD=1 benches/load.sh`
# leaves running: what docs/PERFORMANCE.md calls "side by side".
#
#   HOLD=1 benches/load.sh &                          # wait for "== holding"
#   benches/side_by_side.sh before=/tmp/encore-old after=target/release/encore
#   ROUNDS=10 DURATION=4 CONNS=64 benches/side_by_side.sh [NAME=BINARY[:CONFIG]...]
#   benches/side_by_side.sh nolane=target/release/encore:/tmp/nolane.toml
#
# Each BINARY is started as one more `encore serve` on the held store, with load.sh's config
# (or CONFIG, a config file of its own: e.g. load.sh's "$TMP/encore.toml" with
# `express_lane = false` added under `[server]`, to measure one build both ways) and pinning (same CPU, TOKIO_WORKER_THREADS=1 when pinned). Then ROUNDS rounds of closed-loop
# `loadgen` (CONNS connections, DURATION s measured after 1 s of warm-up, a token on every
# request) run against nginx, load.sh's own encore ("held") and each build, in an order that
# rotates by one every round. Printed per round and server: req/s, then user and system CPU µs
# per request (/proc/PID/stat over the run, warm-up included, divided by the requests made at
# the measured rate); at the end the medians, and each server's ratio to nginx round by round.
# Rounds on a shared guest move by ±10 % as a whole, so compare medians of many short rounds
# side by side rather than runs made minutes apart.
# VERSUS=S (seconds; unset: rounds as above): instead of rounds, `loadgen --versus` runs of S s
# in 0.1 s slices (docs/PERFORMANCE.md, "interleaved") for every pair in order: nginx against
# held, then each build against nginx and against held; printed per pair: B/A req/s with its
# 95 % interval and the blocks B was ahead in. A 120 s pair resolves about ±0.8 %.
set -euo pipefail

HOLD_ENV=${HOLD_ENV:-${TMPDIR:-/tmp}/encore-load.env}
ROUNDS=${ROUNDS:-10}
VERSUS=${VERSUS:-}
DURATION=${DURATION:-4}
CONNS=${CONNS:-64}
[ -r "$HOLD_ENV" ] || { echo "$0: no $HOLD_ENV: start HOLD=1 benches/load.sh first" >&2; exit 2; }
# shellcheck source=/dev/null
. "$HOLD_ENV"
for v in TMP ENCORE_PID NGINX_PID LOADGEN TOKEN MEDIA SERVER_RUN_CPUS; do
	[ -n "${!v:-}" ] || { echo "$0: $HOLD_ENV lacks $v (written by an older load.sh?)" >&2; exit 2; }
done
kill -0 "$ENCORE_PID" "$NGINX_PID" 2>/dev/null || { echo "$0: the held servers are gone" >&2; exit 2; }

LOAD_RUN=()
SERVER_RUN=()
SERVER_ENV=()
if [ "$SERVER_RUN_CPUS" != all ]; then
	SERVER_RUN=(taskset -c "$SERVER_RUN_CPUS")
	SERVER_ENV=(TOKIO_WORKER_THREADS=1)
	LOAD_RUN=(taskset -c "$LOAD_RUN_CPUS")
fi

OWN=()
cleanup() {
	local p
	for p in "${OWN[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${OWN[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SERVERS=("nginx:$NGINX_PID:$TMP/nginx.urls" "held:$ENCORE_PID:$TMP/encore.urls")
for spec in "$@"; do
	name=${spec%%=*}
	binary=${spec#*=}
	config=$TMP/encore.toml
	case $binary in *:*) config=${binary#*:} binary=${binary%%:*} ;; esac
	[ -r "$config" ] || { echo "$0: $config is not a readable config" >&2; exit 2; }
	case $name in '' | *[!A-Za-z0-9_-]* | nginx | held)
		echo "$0: '$name': a name is letters, digits, - and _, not nginx or held" >&2; exit 2 ;;
	esac
	[ -x "$binary" ] || { echo "$0: $binary is not an executable" >&2; exit 2; }
	while :; do
		port=$((20000 + RANDOM % 30000))
		ss -Hltn "sport = :$port" | grep -q . || break
	done
	env "${SERVER_ENV[@]}" "${SERVER_RUN[@]}" "$binary" serve --config "$config" \
		--media "$MEDIA" --keys "$TMP/keys" --data "$TMP/data" --listen "127.0.0.1:$port" \
		>"$TMP/side.$name.out" 2>"$TMP/side.$name.err" &
	OWN+=($!)
	for _ in $(seq 1 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && break
		sleep 0.1
	done
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] ||
		{ echo "$0: $name did not become ready" >&2; cat "$TMP/side.$name.err" >&2; exit 1; }
	sed "s|^|http://127.0.0.1:$port|" "$TMP/encore.paths" >"$TMP/side.$name.urls"
	SERVERS+=("$name:${OWN[-1]}:$TMP/side.$name.urls")
done

TCK=$(getconf CLK_TCK)
# median FILE COL -> the median of column COL.
median() { sort -g -k"$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }
# One closed-loop run against NAME (process PID, URL file URLS) -> "NAME req/s user_us sys_us".
measure() {
	local name=$1 pid=$2 urls=$3 u0 s0 u1 s1 t0 t1
	read -r u0 s0 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
	t0=$(date +%s.%N)
	"${LOAD_RUN[@]}" "$LOADGEN" --urls "$urls" --header "Authorization: Bearer $TOKEN" \
		--connections "$CONNS" --duration "$DURATION" --warmup 1 --json "$TMP/side.json" \
		>/dev/null 2>"$TMP/side.gen.err" ||
		{ echo "$0: loadgen failed against $name" >&2; cat "$TMP/side.gen.err" >&2; exit 1; }
	t1=$(date +%s.%N)
	read -r u1 s1 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
	jq -r '.req_per_s' "$TMP/side.json" |
		awk -v n="$name" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v tck="$TCK" -v t0="$t0" -v t1="$t1" \
			'{ reqs = $1 * (t1 - t0); printf "%s %.0f %.2f %.2f\n", n, $1, u / tck * 1e6 / reqs, s / tck * 1e6 / reqs }'
}

if [ -n "$VERSUS" ]; then
	# versus A B -> one line: "B / A" and loadgen's verdict.
	versus() {
		local a=${1%%:*} b=${2%%:*}
		"${LOAD_RUN[@]}" "$LOADGEN" --urls "${1##*:}" --versus "${2##*:}" \
			--header "Authorization: Bearer $TOKEN" --connections "$CONNS" --warmup 2 \
			--duration "$VERSUS" --slice 0.1 --json "$TMP/side.json" >/dev/null 2>"$TMP/side.gen.err" ||
			{ echo "$0: loadgen --versus failed ($a, $b)" >&2; cat "$TMP/side.gen.err" >&2; exit 1; }
		jq -r --arg a "$a" --arg b "$b" '"\($b) / \($a): \(.ratio_b_over_a * 1000 | round / 1000) (95 % \(.ratio_ci95[0] * 1000 | round / 1000)-\(.ratio_ci95[1] * 1000 | round / 1000)), \($b) ahead in \(.blocks_b_ahead) of \(.blocks) blocks; \(.a.req_per_s | round) / \(.b.req_per_s | round) req/s"' "$TMP/side.json"
	}
	pair() { IFS=: read -r _ _ u <<<"$1"; echo "${1%%:*}:$u"; }
	versus "$(pair "${SERVERS[0]}")" "$(pair "${SERVERS[1]}")"
	for spec in "${SERVERS[@]:2}"; do
		versus "$(pair "${SERVERS[0]}")" "$(pair "$spec")"
		versus "$(pair "${SERVERS[1]}")" "$(pair "$spec")"
	done
	exit 0
fi

: >"$TMP/side.all"
echo "round server req/s user_us/req sys_us/req"
for r in $(seq 1 "$ROUNDS"); do
	k=$(((r - 1) % ${#SERVERS[@]}))
	for spec in "${SERVERS[@]:k}" "${SERVERS[@]:0:k}"; do
		IFS=: read -r name pid urls <<<"$spec"
		line=$(measure "$name" "$pid" "$urls")
		echo "$r $line" | tee -a "$TMP/side.all"
	done
done

echo
echo "medians over $ROUNDS rounds, and each round's req/s against nginx's in the same round:"
for spec in "${SERVERS[@]}"; do
	name=${spec%%:*}
	awk -v n="$name" '$2 == n' "$TMP/side.all" >"$TMP/side.one"
	ratios=$(awk -v n="$name" '$2 == "nginx" { base[$1] = $3 } $2 == n { r[$1] = $3 }
		END { for (i = 1; i in r; i++) printf "%s%.2f", (i > 1 ? " " : ""), r[i] / base[i] }' "$TMP/side.all")
	printf '%-10s req/s %s  user %s  sys %s µs/req   vs nginx: %s\n' "$name" \
		"$(median "$TMP/side.one" 3)" "$(median "$TMP/side.one" 4)" "$(median "$TMP/side.one" 5)" "$ratios"
done
