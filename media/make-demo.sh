#!/usr/bin/env bash
# Regenerates the demo album media/first-light/ from nothing but synthesis, so the repository
# ships audio that is ours to give away (no recordings of anyone else).
#
#   media/make-demo.sh            # writes media/first-light/
#
# Needs: sox (14.4), ffmpeg (with libmp3lame and libvorbis), ImageMagick `convert`.
# Deterministic for a given tool set: sox runs with -R (fixed seed for the pluck noise) and -D
# (no dither), ffmpeg with bitexact flags (no version strings, fixed Ogg serials), the cover is
# written without timestamps. Other versions of the tools may produce different bytes (the
# music is the same), so re-run only when the album should change, and then re-ingest.
#
# The album exercises what encore must handle: two FLAC tracks (one 44.1 kHz, one 48 kHz),
# an MP3 and an Ogg Vorbis track, all stereo, file names that sort into track order, tags,
# an album.toml with a per-track preview override, a cover image, and buyer-only extras
# (two photo cards and a PDF letter).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/first-light"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ARTIST="Nightjar & Loom"
ALBUM="First Light"
DATE="2025-03-21"

for tool in sox ffmpeg ffprobe convert; do
  command -v "$tool" >/dev/null || { echo "make-demo.sh: $tool is not installed" >&2; exit 1; }
done

sx() { sox -R -D -q "$@"; }

# arp OUT RATE BAR_SECONDS NOTE...: the notes plucked one after another, evenly across the bar,
# each ringing to the end of the bar (one sox channel per note, delayed, then mixed to mono).
arp() {
  local out=$1 rate=$2 dur=$3; shift 3
  local n=$# step delays=() synth=() i=0
  step=$(echo "scale=4; $dur / $n" | bc)
  for note in "$@"; do
    synth+=(pl "$note")
    delays+=("$(echo "scale=4; $i * $step" | bc)")
    i=$((i + 1))
  done
  sx -r "$rate" -c "$n" -n -c 1 "$out" synth "$dur" "${synth[@]}" delay "${delays[@]}" \
    remix - fade 0 "$dur" 0.15
}

# strum OUT RATE BAR_SECONDS NOTE...: a strummed chord (30 ms between strings).
strum() {
  local out=$1 rate=$2 dur=$3; shift 3
  local n=$# delays=() synth=() i=0
  for note in "$@"; do
    synth+=(pl "$note")
    delays+=("$(echo "scale=3; $i * 0.03" | bc)")
    i=$((i + 1))
  done
  sx -r "$rate" -c "$n" -n -c 1 "$out" synth "$dur" "${synth[@]}" delay "${delays[@]}" \
    remix - fade 0 "$dur" 0.2
}

# pad OUT RATE BAR_SECONDS NOTE...: a soft sine chord that swells in and out.
pad() {
  local out=$1 rate=$2 dur=$3; shift 3
  local n=$# synth=()
  for note in "$@"; do synth+=(sine "$note"); done
  sx -r "$rate" -c "$n" -n -c 1 "$out" synth "$dur" "${synth[@]}" remix - \
    fade q "$(echo "scale=3; $dur * 0.4" | bc)" "$dur" "$(echo "scale=3; $dur * 0.5" | bc)"
}

# bass OUT RATE BAR_SECONDS NOTE: one low pluck on the downbeat and one half way.
bass() {
  local out=$1 rate=$2 dur=$3 note=$4
  sx -r "$rate" -c 2 -n -c 1 "$out" synth "$dur" pl "$note" pl "$note" \
    delay 0 "$(echo "scale=3; $dur / 2" | bc)" remix - fade 0 "$dur" 0.1
}

# concat OUT IN...: the inputs one after another.
concat() { local out=$1; shift; sx "$@" "$out"; }

# stereo OUT LEFTISH RIGHTISH CENTRE [REVERB]: three mono layers placed in a stereo field,
# a little room around them, peak-normalised to -3 dBFS, short fades at both ends.
stereo() {
  local out=$1 a=$2 b=$3 c=$4 rev=${5:-40}
  local len
  len=$(soxi -D "$a")
  sx -M "$a" "$b" "$c" -b 16 "$out" \
    remix 1v0.60,2v0.22,3v0.45 1v0.40,2v0.36,3v0.45 \
    reverb "$rev" 50 80 100 12 lowpass 5000 \
    trim 0 "$len" fade 0.05 "$len" 1.2 gain -n -3
}

# layer OUTPREFIX RATE BAR_SECONDS KIND CHORDS...: one bar per chord; a chord is
# "root:note,note,..." (root for the bass, notes for the arpeggio or strum and the pad).
layers() {
  local prefix=$1 rate=$2 dur=$3 kind=$4; shift 4
  local arps=() pads=() basses=() k=0 chord root notes
  for chord in "$@"; do
    root=${chord%%:*}
    IFS=, read -r -a notes <<<"${chord#*:}"
    "$kind" "$work/${prefix}-a$k.wav" "$rate" "$dur" "${notes[@]}"
    pad "$work/${prefix}-p$k.wav" "$rate" "$dur" "${notes[@]:0:3}"
    bass "$work/${prefix}-b$k.wav" "$rate" "$dur" "$root"
    arps+=("$work/${prefix}-a$k.wav")
    pads+=("$work/${prefix}-p$k.wav")
    basses+=("$work/${prefix}-b$k.wav")
    k=$((k + 1))
  done
  concat "$work/${prefix}-arp.wav" "${arps[@]}"
  concat "$work/${prefix}-pad.wav" "${pads[@]}"
  concat "$work/${prefix}-bass.wav" "${basses[@]}"
}

# Chords. Arpeggio voicings go up and back down; pads use the first three notes.
C=C2:C4,E4,G4,C5,E5,C5,G4,E4
Am=A1:A3,C4,E4,A4,C5,A4,E4,C4
F=F2:F3,A3,C4,F4,A4,F4,C4,A3
G=G2:G3,B3,D4,G4,B4,G4,D4,B3
Csus=C2:C4,F4,G4,C5,F5,C5,G4,F4

Dm=D2:D3,F3,A3,D4
Bb=A#1:A#2,D3,F3,A#3
Fd=F2:F3,A3,C4,F4
Cd=C2:C3,E3,G3,C4
A7=A1:A2,C#3,E3,G3

Gg=G2:G4,B4,D5,G5,D5,B4
Em=E2:E4,G4,B4,E5,B4,G4
Cg=C2:C4,E4,G4,C5,G4,E4
Dg=D2:D4,F#4,A4,D5,A4,F#4

Ama=A1:A2,E3,A3,C4,E4,A4
Fa=F1:F2,C3,F3,A3,C4,F4
Ca=C2:C3,G3,C4,E4,G4,C5
E=E1:E2,B2,E3,G#3,B3,E4
AM=A1:A2,E3,A3,C#4,E4,A4

echo "synthesising..." >&2
# 1. Dawn Chorus: C Am F G, 2 s bars, 44.1 kHz.
layers t1 44100 2 arp $C $Am $F $G $C $Am $F $G $Csus $C $F $G $C $C
stereo "$work/t1.wav" "$work/t1-arp.wav" "$work/t1-pad.wav" "$work/t1-bass.wav" 45
# 2. Low Tide: slow strummed D minor, 4 s bars, 48 kHz.
layers t2 48000 4 strum $Dm $Bb $Fd $Cd $Dm $A7
stereo "$work/t2.wav" "$work/t2-pad.wav" "$work/t2-arp.wav" "$work/t2-bass.wav" 70
# 3. Paper Boats: quick G major arpeggios, 1.6 s bars, 44.1 kHz.
layers t3 44100 1.6 arp $Gg $Em $Cg $Dg $Gg $Em $Cg $Dg $Em $Cg $Gg $Dg $Em $Cg $Dg $Gg $Cg $Dg $Gg $Gg
stereo "$work/t3.wav" "$work/t3-arp.wav" "$work/t3-pad.wav" "$work/t3-bass.wav" 35
# 4. Long Shadows: A minor strums with a Picardy ending, 2.5 s bars, 44.1 kHz.
layers t4 44100 2.5 strum $Ama $Fa $Ca $E $Ama $Fa $Ca $E $Fa $E $AM $AM
stereo "$work/t4.wav" "$work/t4-arp.wav" "$work/t4-pad.wav" "$work/t4-bass.wav" 60

rm -rf "$out"
mkdir -p "$out"

# encode IN OUT TRACK TITLE CODEC-ARGS...
encode() {
  local in=$1 outfile=$2 track=$3 title=$4; shift 4
  ffmpeg -hide_banner -loglevel error -nostdin -y -i "$in" -map_metadata -1 \
    -fflags +bitexact -flags:a +bitexact \
    -metadata title="$title" -metadata artist="$ARTIST" -metadata album_artist="$ARTIST" \
    -metadata album="$ALBUM" -metadata track="$track/4" -metadata date="$DATE" \
    -metadata genre="Ambient" \
    "$@" "$outfile"
}

echo "encoding..." >&2
encode "$work/t1.wav" "$out/01-dawn-chorus.flac" 1 "Dawn Chorus" -c:a flac -compression_level 12
encode "$work/t2.wav" "$out/02-low-tide.flac" 2 "Low Tide" -c:a flac -compression_level 12
encode "$work/t3.wav" "$out/03-paper-boats.mp3" 3 "Paper Boats" -c:a libmp3lame -b:a 128k -id3v2_version 3
encode "$work/t4.wav" "$out/04-long-shadows.ogg" 4 "Long Shadows" -c:a libvorbis -q:a 3

# Synced lyrics for Paper Boats (words written for this demo), an .lrc beside the track.
cat > "$out/03-paper-boats.lrc" <<'LRC'
[ti:Paper Boats]
[ar:Nightjar & Loom]
[by:encore demo; words written for this demo, free to redistribute]
[00:00.00]
[00:02.50]Fold the morning into squares
[00:06.00]Set it on the gutter stream
[00:09.50]Every corner holds a name
[00:13.00]Every crease a half-kept dream
[00:16.50]Paper boats, paper boats
[00:20.00]Drifting where the drains run deep
[00:23.50][00:30.00]Carry what I could not keep
[00:27.00]Paper boats, paper boats
LRC

echo "drawing the cover..." >&2
# A sunrise: night-blue to amber sky, a low sun, a dark sea with light on it.
font=()
if convert -list font 2>/dev/null | grep -q "Font: DejaVu-Sans$"; then
  font=(-font DejaVu-Sans)
fi
convert -size 600x600 gradient:'#14213d'-'#f4a261' \
  -fill '#ffd166' -draw 'circle 300,400 300,330' \
  -fill '#0b132b' -draw 'rectangle 0,400 600,600' \
  -fill '#f4a26188' -draw 'rectangle 250,420 350,426' -draw 'rectangle 220,450 380,455' \
  -draw 'rectangle 265,485 335,489' -draw 'rectangle 240,520 360,523' \
  "${font[@]}" -fill '#fefae0' -gravity north -pointsize 54 -annotate +0+70 "$ALBUM" \
  -pointsize 26 -annotate +0+140 "$ARTIST" \
  -strip -quality 85 -sampling-factor 4:2:0 "$out/cover.jpg"

echo "making the extras..." >&2
# Buyer-only extras: two small photo cards (ffmpeg) and a one-page letter (a hand-written PDF with a
# computed xref, so no PDF tool is needed), all a few kilobytes.
mkdir -p "$out/extras"
# card OUT TOP BOTTOM SUN-X SUN-Y SUN-SIZE: a sky gradient with a square sun (ffmpeg draws it).
card() {
  ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi \
    -i "gradients=s=240x320:c0=$2:c1=$3:x0=0:y0=0:x1=0:y1=320:seed=1,drawbox=x=$4:y=$5:w=$6:h=$6:color=0xffd166:t=fill" \
    -frames:v 1 -fflags +bitexact -flags +bitexact "$1"
}
card "$out/extras/card-dawn.jpg" 0xf4a261 0x14213d 80 70 80
card "$out/extras/card-tide.png" 0x0b132b 0x2a9d8f 150 40 40
pdf_letter() {
  local text="BT /F1 14 Tf 50 760 Td (Dear listener,) Tj 0 -24 Td (Thank you for buying First Light.) Tj 0 -24 Td (We recorded it one morning at a time.) Tj 0 -24 Td (- $ARTIST) Tj ET"
  local objs=(
    "<< /Type /Catalog /Pages 2 0 R >>"
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
    "<< /Length ${#text} >>\nstream\n$text\nendstream"
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
  )
  local body="%PDF-1.4\n" offsets=() i
  for i in "${!objs[@]}"; do
    offsets+=("$(printf '%b' "$body" | wc -c)")
    body+="$((i + 1)) 0 obj\n${objs[$i]}\nendobj\n"
  done
  local xref
  xref=$(printf '%b' "$body" | wc -c)
  body+="xref\n0 $(( ${#objs[@]} + 1 ))\n0000000000 65535 f \n"
  for i in "${offsets[@]}"; do body+="$(printf '%010d' "$i") 00000 n \n"; done
  body+="trailer\n<< /Size $(( ${#objs[@]} + 1 )) /Root 1 0 R >>\nstartxref\n$xref\n%%EOF\n"
  printf '%b' "$body"
}
pdf_letter >"$out/extras/letter.pdf"

cat >"$out/album.toml" <<EOF
# Demo album, generated by media/make-demo.sh. All music synthesised; free to redistribute.
title = "$ALBUM"
artist = "$ARTIST"
release_date = "$DATE"
# Minor units: 499 = 4.99 EUR.
price = 499
currency = "EUR"
# Non-buyers hear 15 seconds from 0:05 of each track...
preview_seconds = 15
preview_start = 5
cover = "cover.jpg"

# ...except Paper Boats, whose tune starts later.
[[tracks]]
file = "03-paper-boats.mp3"
preview_start = 12

# Buyer-only extras: listed for everyone, opened by buyers only.
[[extras]]
file = "extras/letter.pdf"
title = "A letter from $ARTIST"

[[extras]]
file = "extras/card-dawn.jpg"
title = "Photo card: Dawn"

[[extras]]
file = "extras/card-tide.png"
title = "Photo card: Low Tide"
EOF

echo "checking..." >&2
for f in "$out"/0*.flac "$out"/0*.mp3 "$out"/0*.ogg; do
  ffprobe -v error -show_entries format=duration:stream=codec_name,sample_rate,channels \
    -of compact=p=0:nk=1 "$f" | tr '\n' ' '
  echo " $(basename "$f")"
done
du -sh "$out"
