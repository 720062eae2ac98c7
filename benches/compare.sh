#!/usr/bin/env bash
# encore vs ffmpeg (and openssl), measured in ONE run on ONE machine, reported as ratios.
#
#   benches/compare.sh [ROUNDS]        # from the repo root; ROUNDS defaults to 3
#
# Needs: cargo, ffmpeg/ffprobe (with libopus), openssl, jq. Builds `--release`, then:
#   1. criterion: `cargo bench --bench media` and `--bench seal` (decode and seal figures);
#   2. ROUNDS interleaved rounds of, on the demo album (4 tracks, 114 s of audio):
#        encore ingest --force -j 1      vs  ffmpeg, one process per track, one after another
#        encore ingest --force -j NPROC  vs  the same ffmpeg commands, NPROC at a time (xargs -P)
#      Each ffmpeg process decodes its track once and writes the four renditions encore makes
#      (FLAC at the source depth, Opus 256k, Opus 128k, a 15 s faded Opus 128k preview), each
#      as fragmented MP4 with ~6 s fragments, single-threaded (-threads 1). Medians are kept;
#   3. decode only: `ffmpeg -threads 1 -stream_loop 19 -i FILE -f null -` (its own -benchmark
#      rtime / 20, so process start-up is not counted) vs criterion's decode/* means;
#   4. `openssl speed -evp aes-256-gcm -seconds 2` (16 KiB blocks) vs criterion's seal/open.
# REUSE_CRITERION=1 skips step 1 and reads the previous criterion results (for quick re-runs;
# the ratios are then no longer from one run).
# Ratios are ffmpeg time / encore time (>= 1.0: encore at least as fast) and, for AES,
# encore GB/s / openssl GB/s. Everything is written under a temp dir that is removed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
case $ROUNDS in '' | *[!0-9]* | 0) echo "usage: $0 [ROUNDS>=1]" >&2; exit 2 ;; esac
NPROC=$(nproc)
ALBUM=media/first-light
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for tool in cargo ffmpeg ffprobe openssl jq; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 2; }
done
[[ $(ffmpeg -hide_banner -encoders 2>/dev/null) == *libopus* ]] || { echo "$0: ffmpeg lacks libopus" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/encore-compare.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

log() { printf '%s\n' "$*" >&2; }

log "== machine: $NPROC CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(date -u +%Y-%m-%dT%H:%MZ)"
log "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
log "== ffmpeg: $(ffmpeg -version | head -1 | cut -d' ' -f1-3); $(openssl version)"

log "== cargo build --release"
cargo build --release --quiet
ENCORE=$CARGO_TARGET_DIR/release/encore

if [ "${REUSE_CRITERION:-0}" = 1 ]; then
	log "== REUSE_CRITERION=1: reading the last criterion results (not from this run)"
else
	log "== cargo bench --bench media / --bench seal (criterion)"
	for b in media seal; do
		cargo bench --quiet --bench "$b" >"$TMP/criterion-$b.txt" 2>&1 || { cat "$TMP/criterion-$b.txt" >&2; exit 1; }
	done
fi
# Mean time of one criterion benchmark, in ns.
crit_ns() { jq -r '.mean.point_estimate' "$CARGO_TARGET_DIR/criterion/$1/new/estimates.json"; }

# ---- the transcodes ------------------------------------------------------------------------

# Same preview windows as album.toml: 15 s from 0:05, Paper Boats from 0:12.
preview_start() { case $(basename "$1") in 03-paper-boats.*) echo 12 ;; *) echo 5 ;; esac; }

# One track: decode once, write the four renditions as fMP4 (fragments of ~6 s).
ff_track() {
	local in=$1 out=$2/$(basename "${1%.*}") ss depth
	ss=$(preview_start "$in")
	# Lossless at the source's depth; lossy sources become 24-bit, as encore quantises them.
	case $(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name -of csv=p=0 "$in") in
		flac | alac | pcm_*) depth=() ;;
		*) depth=(-sample_fmt s32 -bits_per_raw_sample 24) ;;
	esac
	local frag=(-movflags +frag_keyframe+empty_moov+default_base_moof -frag_duration 6000000)
	local opus=(-ar 48000 -c:a libopus -vbr on -compression_level 10 -application audio)
	ffmpeg -nostdin -v error -y -threads 1 -filter_threads 1 -i "$in" \
		-map 0:a -threads 1 -c:a flac -compression_level 5 "${depth[@]}" -strict -2 "${frag[@]}" "$out-lossless.mp4" \
		-map 0:a -threads 1 "${opus[@]}" -b:a 256k "${frag[@]}" "$out-high.mp4" \
		-map 0:a -threads 1 "${opus[@]}" -b:a 128k "${frag[@]}" "$out-standard.mp4" \
		-map 0:a -threads 1 -ss "$ss" -t 15 \
		-af "afade=t=in:st=$ss:d=0.5:curve=hsin,afade=t=out:st=$((ss + 14)).5:d=0.5:curve=hsin" \
		"${opus[@]}" -b:a 128k "${frag[@]}" "$out-preview.mp4"
}
export -f ff_track preview_start

TRACKS=()
for f in "$ALBUM"/*; do
	case $f in *.flac | *.mp3 | *.ogg | *.opus | *.m4a | *.wav | *.aif | *.aiff) TRACKS+=("$f") ;; esac
done
[ ${#TRACKS[@]} -gt 0 ] || { echo "$0: no tracks in $ALBUM" >&2; exit 1; }

"$ENCORE" keys init --keys "$TMP/keys" >/dev/null 2>&1

# Wall seconds of a command (stdout and stderr to $TMP/last.log).
wall() {
	local t0=$EPOCHREALTIME
	"$@" >"$TMP/last.log" 2>&1 || { cat "$TMP/last.log" >&2; return 1; }
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}
encore_run() { rm -rf "$TMP/data"; "$ENCORE" ingest --media media --keys "$TMP/keys" --data "$TMP/data" --force -j "$1" "$ALBUM"; }
ffmpeg_run() { rm -rf "$TMP/ff" && mkdir "$TMP/ff" && printf '%s\n' "${TRACKS[@]}" | xargs -d '\n' -P "$1" -I{} bash -c 'ff_track "$1" "$2"' _ {} "$TMP/ff"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A T
for ((r = 1; r <= ROUNDS; r++)); do
	log "== round $r/$ROUNDS"
	T[e1]+="$(wall encore_run 1) "
	summary=$(grep 'realtime' "$TMP/last.log" || true)
	T[f1]+="$(wall ffmpeg_run 1) "
	T[eN]+="$(wall encore_run "$NPROC") "
	T[fN]+="$(wall ffmpeg_run "$NPROC") "
done
enc_mb=$(du -sm "$TMP/data" | cut -f1)
ff_mb=$(du -sm "$TMP/ff" | cut -f1)
declare -A M
for k in e1 f1 eN fN; do M[$k]=$(tr ' ' '\n' <<<"${T[$k]}" | grep . | median); done

# ---- decode only ---------------------------------------------------------------------------
LOOPS=20
declare -A DEC_FF DEC_EN
labels=(flac-44k flac-48k mp3 vorbis)
for i in "${!labels[@]}"; do
	f=${TRACKS[$i]}
	rt=$(ffmpeg -nostdin -hide_banner -threads 1 -benchmark -stream_loop $((LOOPS - 1)) -i "$f" -f null - 2>&1 |
		sed -n 's/.*rtime=\([0-9.]*\)s.*/\1/p')
	DEC_FF[${labels[$i]}]=$(awk -v t="$rt" -v n=$LOOPS 'BEGIN { printf "%.2f", t / n * 1000 }')
	DEC_EN[${labels[$i]}]=$(awk -v t="$(crit_ns "decode/${labels[$i]}")" 'BEGIN { printf "%.2f", t / 1e6 }')
done

# ---- AES ---------------------------------------------------------------------------------
ossl=$(openssl speed -evp aes-256-gcm -seconds 2 2>/dev/null | awk '/^AES-256-GCM|^aes-256-gcm/ { print $NF }' | tail -1)
ossl_gbs=$(awk -v k="${ossl%k}" 'BEGIN { printf "%.2f", k * 1000 / 1e9 }')
gbs() { awk -v ns="$(crit_ns "seal/$1/$2")" -v b="$3" 'BEGIN { printf "%.2f", b / ns }'; }

# ---- report ------------------------------------------------------------------------------
audio=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "audio") print $(i - 2) }' <<<"$summary" | head -1)
ratio() { awk -v f="$1" -v e="$2" 'BEGIN { printf "%.2f", f / e }'; }
xrt() { awk -v a="$audio" -v t="$1" 'BEGIN { printf "%.1f", a / t }'; }
echo
echo "machine: $NPROC CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(date -u +%Y-%m-%d); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "album: $ALBUM, ${#TRACKS[@]} tracks, ${audio:-?} s of audio; $ROUNDS rounds, medians (all: ${T[e1]}| ${T[f1]}| ${T[eN]}| ${T[fN]})"
echo "encore last -j1 summary: $summary"
echo "output: encore ${enc_mb} MB sealed store, ffmpeg ${ff_mb} MB of fMP4"
echo
printf '| %-32s | %12s | %12s | %22s |\n' "task" "encore" "ffmpeg" "ratio ffmpeg/encore"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "$(printf -- '-%.0s' {1..13}):" "$(printf -- '-%.0s' {1..13}):" "$(printf -- '-%.0s' {1..23}):"
printf '| %-32s | %10s s | %10s s | %22s |\n' "package album, 1 job" "${M[e1]}" "${M[f1]}" "$(ratio "${M[f1]}" "${M[e1]}")"
printf '| %-32s | %10s s | %10s s | %22s |\n' "package album, $NPROC jobs" "${M[eN]}" "${M[fN]}" "$(ratio "${M[fN]}" "${M[eN]}")"
printf '| %-32s | %10s x | %10s x | %22s |\n' "  as × realtime, 1 job" "$(xrt "${M[e1]}")" "$(xrt "${M[f1]}")" ""
printf '| %-32s | %10s x | %10s x | %22s |\n' "  as × realtime, $NPROC jobs" "$(xrt "${M[eN]}")" "$(xrt "${M[fN]}")" ""
for l in "${labels[@]}"; do
	printf '| %-32s | %9s ms | %9s ms | %22s |\n' "decode $l (one track)" "${DEC_EN[$l]}" "${DEC_FF[$l]}" "$(ratio "${DEC_FF[$l]}" "${DEC_EN[$l]}")"
done
echo
printf '| %-32s | %12s | %12s | %22s |\n' "AES-256-GCM, 1 thread" "encore GB/s" "openssl GB/s" "ratio encore/openssl"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "$(printf -- '-%.0s' {1..13}):" "$(printf -- '-%.0s' {1..13}):" "$(printf -- '-%.0s' {1..23}):"
for s in 64KiB:65536 256KiB:262144 1MiB:1048576; do
	for op in seal open; do
		v=$(gbs "$op" "${s%%:*}" "${s##*:}")
		printf '| %-32s | %12s | %12s | %22s |\n' "$op ${s%%:*}" "$v" "$ossl_gbs" "$(ratio "$v" "$ossl_gbs")"
	done
done
v=$(gbs raw_gcm 1MiB 1048576)
printf '| %-32s | %12s | %12s | %22s |\n' "aes-gcm crate alone, 1MiB" "$v" "$ossl_gbs" "$(ratio "$v" "$ossl_gbs")"
echo
echo "criterion media stages (one thread, mean):"
printf '| %-32s | %10s | %12s |\n' "stage" "time" "× realtime"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "$(printf -- '-%.0s' {1..11}):" "$(printf -- '-%.0s' {1..13}):"
for id in decode/{flac-44k,flac-48k,mp3,vorbis} flac_encode/{16bit,24bit-from-mp3} resample/44k1-to-48k \
	opus_encode/{256k,128k} segment_package/{flac,opus-256k}; do
	ms=$(jq -r '.throughput.Elements' "$CARGO_TARGET_DIR/criterion/$id/new/benchmark.json")
	awk -v id="$id" -v ns="$(crit_ns "$id")" -v ms="$ms" \
		'BEGIN { printf "| %-32s | %7.2f ms | %12.1f |\n", id, ns / 1e6, ms * 1e6 / ns }'
done
