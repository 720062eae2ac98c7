#!/usr/bin/env bash
# Peak memory of packaging one long track, by track length, beside ffmpeg's on the same file.
#
#   benches/ingest_memory.sh BIN [MINUTES ...]       # from the repo root; default 5 20 60
#   OTHER=/path/to/older/encore benches/ingest_memory.sh BIN 5 20   # also measure an older build
#
# For each length it makes (once, under ${WORK:-/tmp/encore-memory}) a 24-bit/96 kHz stereo
# FLAC with sox: a slow sine sweep on each channel plus low-level noise, so that the FLAC
# encoder has real work and the file is not trivially small. Then, each under
# `/usr/bin/time -v` (maximum resident set size, wall clock):
#   - `BIN ingest -j 1 --force` of an album holding that one track, into a fresh store;
#   - `OTHER ingest ...` the same, when OTHER is set (an older build, for the before/after);
#   - `ffmpeg -i track.flac -c:a libopus -b:a 256k` (one transcode of the same file), the
#     reference for what a streaming transcoder holds.
# Files are multi-GB at 60 minutes: keep WORK on a disk with room, never in the repository.
set -euo pipefail

cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BIN [MINUTES ...]" >&2; exit 2; }
BIN=$(realpath "$1")
shift
MINUTES=("$@")
[ ${#MINUTES[@]} -gt 0 ] || MINUTES=(5 20 60)
WORK=${WORK:-/tmp/encore-memory}
mkdir -p "$WORK"
"$BIN" keys init --keys "$WORK/keys" >/dev/null 2>&1 || true

measure() { # LABEL COMMAND... ; prints "LABEL  peak MB  wall s  cpu s"
	local label=$1 log
	shift
	log=$(mktemp "$WORK/time.XXXXXX")
	/usr/bin/time -v "$@" >/dev/null 2>"$log" || { tail -20 "$log" >&2; rm -f "$log"; return 1; }
	awk -v label="$label" -F': ' '
		/Maximum resident set size/ { rss = $2 }
		/Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = (n == 3 ? p[1] * 3600 + p[2] * 60 + p[3] : p[1] * 60 + p[2]) }
		/User time|System time/ { cpu += $2 }
		END { printf "%-28s peak RSS %8.1f MB   wall %7.1f s   cpu %7.1f s\n", label, rss / 1024, wall, cpu }' "$log"
	rm -f "$log"
}

ingest() { # LABEL BIN ALBUM_MEDIA
	rm -rf "$WORK/data"
	measure "$1" "$2" ingest --media "$3" --keys "$WORK/keys" --data "$WORK/data" --force -j 1
}

echo "machine: $(nproc) CPU(s),$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(date -u +%FT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${MINUTES[@]}"; do
	media="$WORK/media-$m"
	src="$media/long-$m/01.flac"
	if [ ! -s "$src" ]; then
		mkdir -p "$(dirname "$src")"
		secs=$((m * 60))
		sox -n -r 96000 -b 24 -c 2 "$src" synth "$secs" sine 50:5000 sine 70:7000 synth "$secs" whitenoise amod 0.02 0.01 2>/dev/null ||
			sox -n -r 96000 -b 24 -c 2 "$src" synth "$secs" sine 50:5000 sine 70:7000
	fi
	echo "== $m min of 24-bit/96 kHz stereo FLAC ($(du -m "$src" | cut -f1) MB)"
	ingest "encore ingest -j 1" "$BIN" "$media"
	if [ -n "${OTHER:-}" ]; then
		ingest "older encore ingest -j 1" "$(realpath "$OTHER")" "$media"
	fi
	measure "ffmpeg -> opus 256k" ffmpeg -nostdin -v error -y -i "$src" -c:a libopus -b:a 256k "$WORK/out.opus"
done
rm -rf "$WORK/data" "$WORK/out.opus"
