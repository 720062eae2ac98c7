//! HLS playlists (RFC 8216, `EXT-X-VERSION:7`) written from the store's manifests: the
//! multivariant playlist of a track or an album, and the media playlist of a rendition of a
//! track, or of every track of an album one after the other. Which renditions a token may
//! see is the caller's decision (`http::ops::hls`); this file only writes text.
//!
//! URIs are absolute paths on the same origin, as in the JSON manifests. When the player sent
//! its token as the `access_token` query parameter, every URI carries it too, since such a
//! player cannot send it any other way; with a header token no URI carries one.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::HlsFile;
use super::crypto::{encrypted_len, segment_iv};
use crate::seal::OVERHEAD;
use crate::store::{RenditionManifest, SegmentRecord};

/// Version written in `EXT-X-VERSION`: 7 covers fMP4 with `EXT-X-MAP` in media playlists (6),
/// explicit `IV`s (2) and decimal `EXTINF` durations (3).
pub const VERSION: u32 = 7;

/// The token to repeat in every URI, or none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Carry<'a>(Option<&'a str>);

impl<'a> Carry<'a> {
    /// URIs carry `token` as `?access_token=`.
    pub fn token(token: &'a str) -> Carry<'a> {
        Carry(Some(token))
    }

    /// URIs carry no token (the player sends a header).
    pub fn none() -> Carry<'static> {
        Carry(None)
    }

    /// `path` with the query the token needs, if any.
    pub fn uri(&self, path: &str) -> String {
        match self.0 {
            None => path.to_owned(),
            Some(t) => format!("{path}?access_token={}", percent_encode(t)),
        }
    }
}

/// Percent-encodes everything outside RFC 3986's unreserved set. A verified JWT never has such
/// bytes, so this only guards the playlist syntax (a `"` or a line break would break it).
fn percent_encode(s: &str) -> Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if s.bytes().all(unreserved) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// `/v1/albums/{album}/tracks/{n}/master.m3u8`.
pub fn track_master_path(album: &str, track: u32) -> String {
    format!("/v1/albums/{album}/tracks/{track}/master.m3u8")
}

/// `/v1/albums/{album}/tracks/{n}/{rendition}/index.m3u8`.
pub fn track_media_path(album: &str, track: u32, rendition: &str) -> String {
    format!("/v1/albums/{album}/tracks/{track}/{rendition}/index.m3u8")
}

/// `/v1/albums/{album}/master.m3u8`.
pub fn album_master_path(album: &str) -> String {
    format!("/v1/albums/{album}/master.m3u8")
}

/// `/v1/albums/{album}/{rendition}/index.m3u8`.
pub fn album_media_path(album: &str, rendition: &str) -> String {
    format!("/v1/albums/{album}/{rendition}/index.m3u8")
}

/// `/v1/albums/{album}/tracks/{n}/{rendition}/hls/{generation}/{file}`: immutable, like the
/// sealed segments' URLs, because the generation is in it.
pub fn file_path(m: &RenditionManifest, file: HlsFile) -> String {
    format!(
        "/v1/albums/{}/tracks/{}/{}/hls/{}/{}",
        m.album,
        m.track,
        m.rendition,
        m.generation,
        file.name()
    )
}

/// The `CODECS` value of a rendition. The manifest's `codec_string` is the MSE spelling; HLS
/// (RFC 6381 as Apple and the RFC 8216 examples use it) names ISO BMFF audio by its sample
/// entry, so `flac` becomes `fLaC` and `opus` becomes `Opus`; anything else (`mp4a.40.2`, ...)
/// is already in that form and passes through.
pub fn codecs(codec_string: &str) -> Cow<'_, str> {
    if codec_string.eq_ignore_ascii_case("flac") {
        Cow::Borrowed("fLaC")
    } else if codec_string.eq_ignore_ascii_case("opus") {
        Cow::Borrowed("Opus")
    } else {
        Cow::Borrowed(codec_string)
    }
}

/// `BANDWIDTH` and `AVERAGE-BANDWIDTH` of a variant, bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    /// The highest bit rate of any one media segment, rounded up (RFC 8216 §4.3.4.2).
    pub peak: u64,
    /// All media segments' bits over their total duration, rounded up.
    pub average: u64,
}

/// Size in bytes of a media segment's HLS form, from its sealed size: the seal's overhead off,
/// the CBC padding on.
pub fn hls_bytes(rec: &SegmentRecord) -> u64 {
    let plain = usize::try_from(rec.bytes)
        .unwrap_or(usize::MAX)
        .saturating_sub(OVERHEAD);
    encrypted_len(plain) as u64
}

/// The bandwidth of playing `tracks` (one rendition of each) one after another.
pub fn bandwidth(tracks: &[&RenditionManifest]) -> Bandwidth {
    let mut peak = 0u64;
    let (mut bits, mut seconds) = (0u128, 0f64);
    for m in tracks {
        let rate = u64::from(m.sample_rate.max(1));
        for s in &m.segments {
            let b = u128::from(hls_bytes(s)) * 8;
            bits += b;
            seconds += s.duration as f64 / rate as f64;
            if s.duration > 0 {
                // bits / (duration / rate), rounded up, in integers.
                let d = u128::from(s.duration);
                let p = (b * u128::from(rate)).div_ceil(d);
                peak = peak.max(u64::try_from(p).unwrap_or(u64::MAX));
            }
        }
    }
    let average = if seconds > 0.0 {
        (bits as f64 / seconds).ceil() as u64
    } else {
        0
    };
    Bandwidth {
        peak,
        average: average.min(peak),
    }
}

/// One entry of a multivariant playlist.
#[derive(Debug, Clone)]
pub struct Variant<'a> {
    /// The rendition, in every track the variant plays (one for a track's playlist).
    pub tracks: Vec<&'a RenditionManifest>,
    /// Path of its media playlist.
    pub path: String,
}

/// What a multivariant playlist says besides its variants.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// `EXT-X-SESSION-DATA` entries: `DATA-ID` and `VALUE` (the gains, docs/HLS.md §3).
    pub data: Vec<(&'static str, String)>,
    /// Path of the lyrics' WebVTT media playlist, when the track has lyrics.
    pub subtitles: Option<String>,
}

/// `GROUP-ID` of the lyrics' `EXT-X-MEDIA:TYPE=SUBTITLES` rendition.
pub const LYRICS_GROUP: &str = "lyrics";

/// `EXT-X-SESSION-DATA` `DATA-ID`s of the loudness figures (ReplayGain 2.0, -18 LUFS).
pub mod data_id {
    /// Track gain, dB, two decimals.
    pub const TRACK_GAIN: &str = "org.encore.replaygain.track_gain";
    /// Track true peak, linear (1.0 = full scale).
    pub const TRACK_PEAK: &str = "org.encore.replaygain.track_peak";
    /// Album gain, dB.
    pub const ALBUM_GAIN: &str = "org.encore.replaygain.album_gain";
    /// Album true peak, linear.
    pub const ALBUM_PEAK: &str = "org.encore.replaygain.album_peak";
    /// The reference level the gains aim at, LUFS.
    pub const REFERENCE: &str = "org.encore.replaygain.reference_loudness";
}

/// A multivariant playlist listing `variants` (highest bandwidth first, the order players
/// start from). Each names its rendition in `STABLE-VARIANT-ID`, an attribute players that do
/// not know it ignore. `session` adds `EXT-X-SESSION-DATA` lines and the lyrics' subtitles
/// rendition, which every variant then names in `SUBTITLES`.
pub fn multivariant(variants: &[Variant<'_>], session: &Session, carry: Carry<'_>) -> String {
    let mut rows: Vec<(Bandwidth, &Variant<'_>)> =
        variants.iter().map(|v| (bandwidth(&v.tracks), v)).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0.peak));
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
    let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
    for (id, value) in &session.data {
        // Values are numbers encore formats: never a quote or a line break.
        let _ = writeln!(
            out,
            "#EXT-X-SESSION-DATA:DATA-ID=\"{id}\",VALUE=\"{value}\""
        );
    }
    let subtitles = match &session.subtitles {
        Some(path) => {
            // DEFAULT=YES with AUTOSELECT: Apple's players show lyrics of an audio-only
            // stream as they show subtitles; FORCED=NO since they are optional text.
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{LYRICS_GROUP}\",NAME=\"Lyrics\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI=\"{}\"",
                carry.uri(path)
            );
            format!(",SUBTITLES=\"{LYRICS_GROUP}\"")
        }
        None => String::new(),
    };
    for (bw, v) in rows {
        let Some(first) = v.tracks.first() else {
            continue;
        };
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\",STABLE-VARIANT-ID=\"{}\"{subtitles}",
            bw.peak,
            bw.average,
            codecs(&first.codec_string),
            first.rendition
        );
        let _ = writeln!(out, "{}", carry.uri(&v.path));
    }
    out
}

/// `/v1/albums/{album}/tracks/{n}/lyrics/index.m3u8`: the lyrics' subtitles playlist.
pub fn lyrics_media_path(album: &str, track: u32) -> String {
    format!("/v1/albums/{album}/tracks/{track}/lyrics/index.m3u8")
}

/// `/v1/albums/{album}/tracks/{n}/lyrics/lyrics.vtt`: the lyrics as one WebVTT file.
pub fn lyrics_vtt_path(album: &str, track: u32) -> String {
    format!("/v1/albums/{album}/tracks/{track}/lyrics/lyrics.vtt")
}

/// The lyrics' subtitles media playlist: one WebVTT segment as long as the track. One
/// segment, not one per audio segment: the whole text is a few kilobytes, and a player
/// fetches it once.
pub fn lyrics_media(album: &str, track: u32, seconds: f64, carry: Carry<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
    let _ = writeln!(
        out,
        "#EXT-X-TARGETDURATION:{}",
        seconds.ceil().max(1.0) as u64
    );
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:1");
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:VOD");
    let _ = writeln!(out, "#EXTINF:{seconds:.6},");
    let _ = writeln!(out, "{}", carry.uri(&lyrics_vtt_path(album, track)));
    let _ = writeln!(out, "#EXT-X-ENDLIST");
    out
}

/// The exact duration of a segment in seconds, as written in `EXTINF`: six decimals are a
/// microsecond, finer than one sample at any rate up to 192 kHz (5.2 µs), so the sample count
/// `round(EXTINF × sample_rate)` is recovered exactly.
pub fn extinf(duration: u64, sample_rate: u32) -> String {
    format!("{:.6}", duration as f64 / f64::from(sample_rate.max(1)))
}

/// A VOD media playlist of `tracks` (the same rendition of each, in play order; one for a
/// track's playlist). Between tracks: `EXT-X-DISCONTINUITY` (each track's timeline starts at
/// 0), the next track's `EXT-X-MAP`, preceded by `EXT-X-KEY:METHOD=NONE` so the init segment
/// is not read as encrypted under the previous track's key. Every media segment gets its own
/// `EXT-X-KEY` because its IV is its own.
pub fn media(tracks: &[&RenditionManifest], carry: Carry<'_>) -> String {
    let target = tracks
        .iter()
        .flat_map(|m| {
            let rate = u64::from(m.sample_rate.max(1));
            m.segments.iter().map(move |s| s.duration.div_ceil(rate))
        })
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:1");
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:VOD");
    let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
    for (i, m) in tracks.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
            let _ = writeln!(out, "#EXT-X-KEY:METHOD=NONE");
        }
        let _ = writeln!(
            out,
            "#EXT-X-MAP:URI=\"{}\"",
            carry.uri(&file_path(m, HlsFile::Init))
        );
        let key_uri = carry.uri(&file_path(m, HlsFile::Key));
        for s in &m.segments {
            let iv = segment_iv(&m.generation, s.index);
            let _ = writeln!(
                out,
                "#EXT-X-KEY:METHOD=AES-128,URI=\"{key_uri}\",IV=0x{}",
                hex::encode(iv)
            );
            let _ = writeln!(out, "#EXTINF:{},", extinf(s.duration, m.sample_rate));
            let _ = writeln!(out, "{}", carry.uri(&file_path(m, HlsFile::Media(s.index))));
        }
    }
    let _ = writeln!(out, "#EXT-X-ENDLIST");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MANIFEST_FORMAT;

    fn rec(index: u32, duration: u64, bytes: u64) -> SegmentRecord {
        SegmentRecord {
            index,
            file: crate::store::segment_file_name(index),
            start: 0,
            duration,
            bytes,
            sha256: String::new(),
        }
    }

    fn manifest(
        track: u32,
        rendition: &str,
        codec: &str,
        segs: &[(u64, u64)],
    ) -> RenditionManifest {
        RenditionManifest {
            format: MANIFEST_FORMAT,
            album: "a".into(),
            track,
            rendition: rendition.into(),
            generation: format!("g{track}"),
            codec: codec.into(),
            codec_string: codec.into(),
            sample_rate: 44_100,
            channels: 2,
            bits_per_sample: 16,
            duration_samples: segs.iter().map(|s| s.0).sum(),
            skip_samples: 0,
            bitrate: 0,
            key_id: "00".repeat(16),
            bit_exact: None,
            preview: None,
            init: rec(0, 0, 700),
            segments: segs
                .iter()
                .enumerate()
                .map(|(i, &(d, b))| rec(i as u32 + 1, d, b))
                .collect(),
            retiring: Vec::new(),
        }
    }

    #[test]
    fn media_playlist_has_exact_durations_and_every_uri_carries_the_token() {
        let m = manifest(
            1,
            "lossless",
            "flac",
            &[(264_600, 400_049), (100_000, 100_049)],
        );
        let text = media(&[&m], Carry::token("t.o-k_en"));
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
        assert!(text.contains("#EXT-X-TARGETDURATION:6\n"), "{text}");
        assert!(text.contains("#EXTINF:6.000000,\n"));
        assert!(text.contains("#EXTINF:2.267574,\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        let uris: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with('/') || l.contains("URI=\""))
            .collect();
        assert_eq!(uris.len(), 1 + 2 * 2, "{text}");
        for l in uris {
            assert!(l.contains("?access_token=t.o-k_en"), "{l}");
        }
        let plain = media(&[&m], Carry::none());
        assert!(!plain.contains("access_token"));
        assert!(plain.contains("/v1/albums/a/tracks/1/lossless/hls/g1/0002.mp4\n"));
        assert!(
            plain.contains("#EXT-X-MAP:URI=\"/v1/albums/a/tracks/1/lossless/hls/g1/init.mp4\"")
        );
    }

    #[test]
    fn target_duration_rounds_up() {
        let m = manifest(1, "lossless", "flac", &[(264_601, 1000)]);
        assert!(media(&[&m], Carry::none()).contains("#EXT-X-TARGETDURATION:7\n"));
    }

    #[test]
    fn album_playlist_marks_each_track_boundary() {
        let a = manifest(1, "high", "opus", &[(44_100, 1000)]);
        let b = manifest(2, "high", "opus", &[(44_100, 1000)]);
        let text = media(&[&a, &b], Carry::none());
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2);
        let none_at = text.find("#EXT-X-KEY:METHOD=NONE").unwrap();
        let second_map = text.rfind("#EXT-X-MAP:").unwrap();
        assert!(
            none_at < second_map,
            "the second map is declared in the clear"
        );
    }

    #[test]
    fn multivariant_lists_highest_bandwidth_first() {
        let lossless = manifest(1, "lossless", "flac", &[(441_000, 500_049)]);
        let high = manifest(1, "high", "opus", &[(441_000, 160_049)]);
        let variants = [
            Variant {
                tracks: vec![&high],
                path: track_media_path("a", 1, "high"),
            },
            Variant {
                tracks: vec![&lossless],
                path: track_media_path("a", 1, "lossless"),
            },
        ];
        let text = multivariant(&variants, &Session::default(), Carry::token("tok"));
        let lossless_at = text.find("STABLE-VARIANT-ID=\"lossless\"").unwrap();
        let high_at = text.find("STABLE-VARIANT-ID=\"high\"").unwrap();
        assert!(lossless_at < high_at, "{text}");
        assert!(text.contains("CODECS=\"fLaC\""));
        assert!(text.contains("CODECS=\"Opus\""));
        assert!(text.contains("/v1/albums/a/tracks/1/lossless/index.m3u8?access_token=tok\n"));
        // 500 000 plaintext bytes padded to 500 016, over 10 s.
        assert!(text.contains("BANDWIDTH=400013,"), "{text}");
    }

    #[test]
    fn session_data_and_lyrics_rendition_are_announced_to_every_variant() {
        let high = manifest(1, "high", "opus", &[(441_000, 160_049)]);
        let variants = [Variant {
            tracks: vec![&high],
            path: track_media_path("a", 1, "high"),
        }];
        let session = Session {
            data: vec![(data_id::TRACK_GAIN, "-4.20".into())],
            subtitles: Some(lyrics_media_path("a", 1)),
        };
        let text = multivariant(&variants, &session, Carry::none());
        assert!(text.contains(
            "#EXT-X-SESSION-DATA:DATA-ID=\"org.encore.replaygain.track_gain\",VALUE=\"-4.20\"\n"
        ));
        assert!(
            text.contains("TYPE=SUBTITLES,GROUP-ID=\"lyrics\""),
            "{text}"
        );
        assert!(text.contains("URI=\"/v1/albums/a/tracks/1/lyrics/index.m3u8\""));
        assert!(text.contains("STABLE-VARIANT-ID=\"high\",SUBTITLES=\"lyrics\"\n"));
        let media = lyrics_media("a", 1, 187.25, Carry::token("t"));
        assert!(media.contains("#EXT-X-TARGETDURATION:188\n"), "{media}");
        assert!(media.contains(
            "#EXTINF:187.250000,\n/v1/albums/a/tracks/1/lyrics/lyrics.vtt?access_token=t\n"
        ));
        assert!(media.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn codecs_use_sample_entry_spelling() {
        assert_eq!(codecs("flac"), "fLaC");
        assert_eq!(codecs("opus"), "Opus");
        assert_eq!(codecs("mp4a.40.2"), "mp4a.40.2");
    }

    #[test]
    fn odd_tokens_cannot_break_the_playlist() {
        let c = Carry::token("a\"b\nc d");
        assert_eq!(c.uri("/x"), "/x?access_token=a%22b%0Ac%20d");
    }

    #[test]
    fn extinf_recovers_the_sample_count() {
        for rate in [8_000u32, 44_100, 48_000, 96_000, 192_000] {
            for samples in [1u64, 4096, 266_240, 288_001, 1_151_999] {
                let secs: f64 = extinf(samples, rate).parse().unwrap();
                assert_eq!(
                    (secs * f64::from(rate)).round() as u64,
                    samples,
                    "{rate} {samples}"
                );
            }
        }
    }
}
