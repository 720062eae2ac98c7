#!/usr/bin/env bash
# Ingest speed of two encore builds, A then B, interleaved round by round on the same machine.
#
#   benches/ingest_ab.sh A_BIN B_BIN [ROUNDS]     # from the repo root; ROUNDS defaults to 5
#
# Each round packages the demo album (media/first-light, 4 tracks, 114 s of audio) with
# `ingest --force -j 1` and `-j NPROC`, A then B, into a fresh store under one temp dir, and
# prints wall seconds, CPU seconds (user + sys), the cores other jobs kept busy meanwhile
# (from /proc/stat; ~0 on a quiet machine) and encore's own "x realtime" figure. On a shared
# machine compare CPU seconds, and wall seconds only from rounds where "other" is ~0.
# Used for the cost of the `aac` rendition in docs/PERFORMANCE.md (A = main before it).
# B_ARGS adds arguments to B's ingest only: `B_ARGS=--no-loudness benches/ingest_ab.sh BIN BIN`
# measures the loudness pass with one build (PERFORMANCE.md, "Loudness at ingest").
set -euo pipefail

cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 A_BIN B_BIN [ROUNDS]" >&2; exit 2; }
A=$1 B=$2 ROUNDS=${3:-5} NPROC=$(nproc)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/encore-ab.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
"$A" keys init --keys "$TMP/keys" >/dev/null 2>&1
HZ=$(getconf CLK_TCK)
ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
run() { # BIN JOBS [EXTRA INGEST ARGS...]
	local TIMEFORMAT='%R %U %S' t m0 m1 rt
	rm -rf "$TMP/data"
	m0=$(ticks)
	t=$({ time "$1" ingest --media media --keys "$TMP/keys" --data "$TMP/data" --force -j "$2" "${@:3}" media/first-light >"$TMP/log" 2>&1; } 2>&1) ||
		{ cat "$TMP/log" >&2; return 1; }
	m1=$(ticks)
	rt=$(grep -o '[0-9.]*x realtime' "$TMP/log" || true)
	awk -v busy=$((m1 - m0)) -v hz="$HZ" -v rt="$rt" '{ cpu = $2 + $3; other = $1 > 0 ? (busy / hz - cpu) / $1 : 0
		printf "wall %.2f s  cpu %.2f s  other %.2f  %s", $1, cpu, other < 0 ? 0 : other, rt }' <<<"$t"
}
echo "machine: $NPROC CPU(s),$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(date -u +%FT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
	for j in 1 "$NPROC"; do
		echo "round $r -j $j A: $(run "$A" "$j")"
		# shellcheck disable=SC2086 # B_ARGS is a list of words
		echo "round $r -j $j B: $(run "$B" "$j" ${B_ARGS:-})"
	done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
