#!/usr/bin/env bash
# encore vs ffmpeg (and openssl), measured in ONE run on ONE machine, reported as ratios.
#
#   benches/compare.sh [ROUNDS]        # from the repo root; ROUNDS defaults to 3
#
# Needs: cargo, ffmpeg/ffprobe (with libopus), openssl, jq. Builds `--release`, then:
#   1. criterion: `cargo bench --bench media` and `--bench seal` (per-stage figures, wall time);
#   2. ROUNDS interleaved rounds of, on the demo album (4 tracks, 114 s of audio):
#        encore ingest --force -j 1      vs  ffmpeg, one process per track, one after another
#        encore ingest --force -j NPROC  vs  the same ffmpeg commands, NPROC at a time (xargs -P)
#      Each ffmpeg process decodes its track once and writes the five renditions encore makes
#      (FLAC at the source depth, Opus 256k, Opus 128k, AAC-LC 256k, a 15 s faded Opus 128k
#      preview), each as fragmented MP4 with ~6 s fragments, single-threaded (-threads 1).
#      ffmpeg's AAC is its native encoder: Debian's ffmpeg has no libfdk_aac (FDK's licence
#      keeps it out of GPL builds), so that one encoder differs from encore's;
#   3. decode only, ROUNDS interleaved rounds per track: `ffmpeg -threads 1 -stream_loop 19
#      -i FILE -f null -` vs `loops decode FILE 20` (benches/loops.rs);
#   4. AES-256-GCM at 64 KiB and 1 MiB: `openssl speed -evp aes-256-gcm -seconds 2 -bytes N`
#      vs `loops seal N ...` (seal + open_in_place, in place), ROUNDS rounds.
# Every process is timed for wall seconds and CPU seconds (user + sys, children included). On a
# shared machine CPU seconds are the steadier measure (openssl speed itself counts CPU time),
# wall seconds are what a user waits for; both are printed, medians of the rounds, with the
# cores other jobs kept busy meanwhile (from /proc/stat; ~0 on a quiet machine). Ratios are
# ffmpeg / encore (>= 1.0: encore at least as fast) and, for AES, encore GB/s / openssl GB/s.
# REUSE_CRITERION=1 skips step 1 and prints the previous criterion results instead.
# Everything is written under a temp dir that is removed on exit.
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
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "== machine: $NPROC CPU(s), $CPU, $(date -u +%Y-%m-%dT%H:%MZ), load $LOAD0"

log "== cargo build --release"
cargo build --release --quiet
ENCORE=$CARGO_TARGET_DIR/release/encore
LOOPS_BIN=$(cargo bench --no-run --bench loops --message-format=json 2>/dev/null |
	jq -r 'select(.executable != null and .target.name == "loops") | .executable')
[ -x "$LOOPS_BIN" ] || { echo "$0: could not build benches/loops.rs" >&2; exit 1; }

if [ "${REUSE_CRITERION:-0}" = 1 ]; then
	log "== REUSE_CRITERION=1: the criterion table below is from an earlier run"
else
	log "== cargo bench --bench media / --bench seal (criterion)"
	for b in media seal; do
		cargo bench --quiet --bench "$b" >"$TMP/criterion-$b.txt" 2>&1 || { cat "$TMP/criterion-$b.txt" >&2; exit 1; }
	done
fi
crit_ns() { jq -r '.mean.point_estimate' "$CARGO_TARGET_DIR/criterion/$1/new/estimates.json"; }

# ---- helpers -------------------------------------------------------------------------------

# Busy CPU ticks of the whole machine (user, nice, system, irq, softirq, steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
HZ=$(getconf CLK_TCK)
# "WALL CPU OTHER" of a command (its output goes to $TMP/last.log): wall and CPU seconds, and
# OTHER = cores that the rest of the machine kept busy meanwhile (other people's jobs; a
# quiet machine gives ~0.0). Rounds with OTHER well above 0 are disturbed.
timed() {
	local TIMEFORMAT='%R %U %S' t m0 m1
	m0=$(machine_ticks)
	t=$({ time "$@" >"$TMP/last.log" 2>&1; } 2>&1) || { cat "$TMP/last.log" >&2; return 1; }
	m1=$(machine_ticks)
	awk -v busy="$(((m1 - m0)))" -v hz="$HZ" '{ cpu = $2 + $3; other = $1 > 0 ? (busy / hz - cpu) / $1 : 0
		printf "%.3f %.3f %.2f", $1, cpu, other < 0 ? 0 : other }' <<<"$t"
}
# Max of field $2 of the pairs in $1.
maxf() { tr ';' '\n' <<<"$1" | awk -v f="$2" 'NF && $f > m { m = $f } END { printf "%.2f", m }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Median of field $2 (1 = wall, 2 = cpu) of the "WALL CPU" pairs in $1 (separated by ';').
med() { tr ';' '\n' <<<"$1" | awk -v f="$2" 'NF { print $f }' | median; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { printf f, a / b }'; }

# ---- the transcodes ------------------------------------------------------------------------

# Same preview windows as album.toml: 15 s from 0:05, Paper Boats from 0:12.
preview_start() { case $(basename "$1") in 03-paper-boats.*) echo 12 ;; *) echo 5 ;; esac; }

# One track: decode once, write the five renditions as fMP4 (fragments of ~6 s).
ff_track() {
	local in=$1 out ss depth
	out=$2/$(basename "${1%.*}")
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
		-map 0:a -threads 1 -c:a aac -b:a 256k "${frag[@]}" "$out-aac.mp4" \
		-map 0:a -threads 1 -ss "$ss" -t 15 \
		-af "afade=t=in:st=$ss:d=0.5:curve=hsin,afade=t=out:st=$((ss + 14)).5:d=0.5:curve=hsin" \
		"${opus[@]}" -b:a 128k "${frag[@]}" "$out-preview.mp4"
}
export -f ff_track preview_start

TRACKS=()
for f in "$ALBUM"/*; do
	case $f in *.flac | *.mp3 | *.ogg) TRACKS+=("$f") ;; esac
done
[ ${#TRACKS[@]} -eq 4 ] || { echo "$0: expected the 4 demo tracks in $ALBUM" >&2; exit 1; }
LABELS=(flac-44k flac-48k mp3 vorbis)

"$ENCORE" keys init --keys "$TMP/keys" >/dev/null 2>&1
encore_run() { rm -rf "$TMP/data"; "$ENCORE" ingest --media media --keys "$TMP/keys" --data "$TMP/data" --force -j "$1" "$ALBUM"; }
ffmpeg_run() { rm -rf "$TMP/ff" && mkdir "$TMP/ff" && printf '%s\n' "${TRACKS[@]}" | xargs -d '\n' -P "$1" -I{} bash -c 'ff_track "$1" "$2"' _ {} "$TMP/ff"; }

declare -A T=()
DLOOPS=20
SIZES=(65536 1048576)
declare -A SEAL_N=([65536]=16000 [1048576]=1000) # 2 GiB through AES per run
for ((r = 1; r <= ROUNDS; r++)); do
	log "== round $r/$ROUNDS: packaging"
	for k in e1 f1 eN fN; do
		j=$([ "${k:1}" = 1 ] && echo 1 || echo "$NPROC")
		v=$(timed "$([ "${k:0:1}" = e ] && echo encore_run || echo ffmpeg_run)" "$j")
		[ "$k" = e1 ] && summary=$(grep 'realtime' "$TMP/last.log" || true)
		T[$k]+="$v;"
		log "   $([ "${k:0:1}" = e ] && echo encore || echo ffmpeg) -j $j: wall/CPU/other cores $v"
	done
	log "== round $r/$ROUNDS: decode, AES"
	for i in "${!LABELS[@]}"; do
		T[de$i]+="$(timed "$LOOPS_BIN" decode "${TRACKS[$i]}" $DLOOPS);"
		T[df$i]+="$(timed ffmpeg -nostdin -v error -threads 1 -stream_loop $((DLOOPS - 1)) -i "${TRACKS[$i]}" -f null -);"
	done
	for s in "${SIZES[@]}"; do
		T[ae$s]+="$(timed "$LOOPS_BIN" seal "$s" "${SEAL_N[$s]}");"
		openssl speed -evp aes-256-gcm -seconds 2 -bytes "$s" 2>/dev/null >"$TMP/ossl.txt"
		T[ao$s]+="$(awk '/^(AES|aes)-256-(GCM|gcm)/ { v = $NF } END { sub(/k$/, "", v); printf "%.3f", v * 1000 / 1e9 }' "$TMP/ossl.txt");"
	done
done
enc_mb=$(du -sm "$TMP/data" | cut -f1)
ff_mb=$(du -sm "$TMP/ff" | cut -f1)
audio=$(sed -n 's/.* \([0-9.]*\) s of audio.*/\1/p' <<<"$summary")

# ---- report ------------------------------------------------------------------------------
row() { printf '| %-34s | %11s | %12s | %13s |\n' "$@"; }
rule() { printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..12}):" "$(printf -- '-%.0s' {1..13}):" "$(printf -- '-%.0s' {1..14}):"; }
echo
echo "machine: $NPROC CPU(s), $CPU; $(date -u +%Y-%m-%d); load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "album: $ALBUM, ${#TRACKS[@]} tracks, ${audio:-?} s of audio; $ROUNDS rounds, medians"
echo "encore's own summary (last -j 1 run): $summary"
echo "output: encore ${enc_mb} MB sealed store, ffmpeg ${ff_mb} MB of fMP4"
echo
row "package the album" "encore" "ffmpeg" "ffmpeg/encore"
rule
for j in 1 N; do
	n=$([ $j = 1 ] && echo 1 || echo "$NPROC")
	ew=$(med "${T[e$j]}" 1) ec=$(med "${T[e$j]}" 2) fw=$(med "${T[f$j]}" 1) fc=$(med "${T[f$j]}" 2)
	row "$n job(s): wall s" "$ew" "$fw" "$(div "$fw" "$ew")"
	row "$n job(s): CPU s" "$ec" "$fc" "$(div "$fc" "$ec")"
	row "$n job(s): × realtime (wall)" "$(div "${audio:-0}" "$ew" %.1f)" "$(div "${audio:-0}" "$fw" %.1f)" ""
	row "$n job(s): other cores (med/max)" "$(med "${T[e$j]}" 3)/$(maxf "${T[e$j]}" 3)" "$(med "${T[f$j]}" 3)/$(maxf "${T[f$j]}" 3)" ""
done
echo
row "decode one track ($DLOOPS× per process)" "encore ms" "ffmpeg ms" "ffmpeg/encore"
rule
for i in "${!LABELS[@]}"; do
	for k in 2 1; do
		e=$(div "$(med "${T[de$i]}" $k)" "$DLOOPS" %.6f | awk '{ printf "%.1f", $1 * 1000 }')
		f=$(div "$(med "${T[df$i]}" $k)" "$DLOOPS" %.6f | awk '{ printf "%.1f", $1 * 1000 }')
		row "${LABELS[$i]}: $([ $k = 2 ] && echo CPU || echo wall)" "$e" "$f" "$(div "$f" "$e")"
	done
done
echo
row "AES-256-GCM, 1 thread, CPU time" "encore GB/s" "openssl GB/s" "enc/ossl"
rule
for s in "${SIZES[@]}"; do
	bytes=$((2 * s * SEAL_N[$s]))
	e=$(div "$bytes" "$(med "${T[ae$s]}" 2)" | awk '{ printf "%.2f", $1 / 1e9 }')
	o=$(tr ';' '\n' <<<"${T[ao$s]}" | grep . | median)
	row "seal+open $((s / 1024)) KiB" "$e" "$(printf %.2f "$o")" "$(div "$e" "$o")"
done
echo
echo "criterion, one thread, mean wall time (GB/s = 1e9 B/s; × realtime = audio s / s):"
row "stage" "time" "rate" ""
rule
for id in decode/{flac-44k,flac-48k,mp3,vorbis} flac_encode/{16bit,24bit-from-mp3} resample/44k1-to-48k \
	opus_encode/{256k,128k} aac_encode/256k segment_package/{flac,opus-256k}; do
	ms=$(jq -r '.throughput.Elements' "$CARGO_TARGET_DIR/criterion/$id/new/benchmark.json")
	ns=$(crit_ns "$id")
	row "$id" "$(div "$ns" 1e6 %.2f) ms" "$(awk -v ms="$ms" -v ns="$ns" 'BEGIN { printf "%.1f x", ms * 1e6 / ns }')" ""
done
for op in seal seal_copy open open_in_place raw_gcm; do
	for s in 64KiB:65536 256KiB:262144 1MiB:1048576; do
		ns=$(crit_ns "seal/$op/${s%%:*}")
		row "seal/$op/${s%%:*}" "$(div "$ns" 1e3 %.1f) µs" "$(div "${s##*:}" "$ns" %.2f) GB/s" ""
	done
done
