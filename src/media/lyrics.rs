//! Lyrics of a track: an `.lrc` file (parsed with the `lrc` crate) or a lyrics tag (ID3
//! `USLT`, Vorbis `LYRICS`/`UNSYNCEDLYRICS`, as symphonia reads them) made into timed or
//! untimed lines, and the WebVTT form HLS players read.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The most bytes an `.lrc` file or a lyrics tag may hold: a song's lyrics are a few
/// kilobytes; anything this big is not lyrics.
pub const MAX_BYTES: usize = 256 * 1024;

/// Why an `.lrc` file was refused. The message names what is wrong, not the file (the
/// caller names it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LyricsError {
    /// Not UTF-8 (with or without a byte-order mark).
    #[error("not UTF-8 text (invalid byte at offset {0}); save the .lrc as UTF-8")]
    NotUtf8(usize),
    /// Larger than [`MAX_BYTES`].
    #[error("{0} bytes, more than the {MAX_BYTES} a lyrics file may hold")]
    TooLarge(usize),
    /// A line the LRC parser refused (a malformed time tag, a control character).
    #[error("not valid LRC: {0}")]
    Syntax(String),
    /// No `[mm:ss.xx]` time tag at all.
    #[error("no timed line ([mm:ss.xx] tags): not an LRC file")]
    NoTimedLine,
}

/// Where a track's lyrics came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LyricsSource {
    /// An `.lrc` file beside the track.
    Lrc,
    /// A tag in the audio file.
    Tags,
}

/// One line of lyrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// When the line starts, milliseconds from the track's start (`None` when unsynced).
    pub t_ms: Option<u64>,
    /// The text (empty: an instrumental gap, which ends the line before it).
    pub text: String,
}

/// A track's lyrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lyrics {
    /// True when every line has a time.
    pub synced: bool,
    /// Where they came from.
    pub source: LyricsSource,
    /// The lines in time order (synced) or file order.
    pub lines: Vec<Line>,
}

/// Parses an `.lrc` file: UTF-8 with or without a BOM, `[mm:ss.xx]` tags (several per line
/// allowed), `[offset:±ms]` applied (positive: lyrics earlier, as LRC defines it), metadata
/// tags (`[ar:]`, `[ti:]`...) read and dropped, untimed lines dropped.
pub fn parse_lrc(bytes: &[u8]) -> Result<Lyrics, LyricsError> {
    if bytes.len() > MAX_BYTES {
        return Err(LyricsError::TooLarge(bytes.len()));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| LyricsError::NotUtf8(e.valid_up_to()))?;
    let lines = timed_lines(text)?.ok_or(LyricsError::NoTimedLine)?;
    Ok(Lyrics {
        synced: true,
        source: LyricsSource::Lrc,
        lines,
    })
}

/// The timed lines of LRC text, `None` when it has no time tag.
fn timed_lines(text: &str) -> Result<Option<Vec<Line>>, LyricsError> {
    let parsed = lrc::Lyrics::from_str(text).map_err(|e| LyricsError::Syntax(e.to_string()))?;
    // The crate reads a tag it cannot take for a time (`[00:0x.10]`) as metadata and drops
    // the line; a metadata label of digits is a mistyped time tag, and the line would be
    // lost without a word.
    if let Some(tag) = parsed.metadata.iter().find(|t| {
        let label = t.label().trim().trim_start_matches('-');
        !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit())
    }) {
        return Err(LyricsError::Syntax(format!(
            "malformed time tag [{}:{}]",
            tag.label(),
            tag.text()
        )));
    }
    let timed = parsed.get_timed_lines();
    if timed.is_empty() {
        return Ok(None);
    }
    let offset: i64 = parsed
        .metadata
        .get_text("offset")
        .and_then(|o| o.trim().trim_start_matches('+').parse().ok())
        .unwrap_or(0);
    Ok(Some(
        timed
            .iter()
            .map(|(tag, text)| Line {
                // A line the offset moves before the start shows from the start.
                t_ms: Some(u64::try_from(tag.get_timestamp().saturating_sub(offset)).unwrap_or(0)),
                text: text.trim().to_string(),
            })
            .collect(),
    ))
}

/// Lyrics from a tag's text: LRC text (some taggers store synced lyrics so) gives synced
/// lines, anything else unsynced lines. `None` for an empty or oversized tag, or LRC-looking
/// text the parser refuses (a tag is not worth failing a track over).
pub fn from_tag(text: &str) -> Option<Lyrics> {
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() || text.len() > MAX_BYTES {
        return None;
    }
    if let Ok(Some(lines)) = timed_lines(text) {
        return Some(Lyrics {
            synced: true,
            source: LyricsSource::Tags,
            lines,
        });
    }
    let lines: Vec<Line> = text
        .lines()
        .map(|l| Line {
            t_ms: None,
            text: l.trim().to_string(),
        })
        .collect();
    Some(Lyrics {
        synced: false,
        source: LyricsSource::Tags,
        lines,
    })
}

/// What a track record says of its lyrics (the lines themselves are in their own file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// True when every line has a time.
    pub synced: bool,
    /// Where they came from.
    pub source: LyricsSource,
    /// Number of lines.
    pub lines: usize,
}

/// Synced lyrics from an ID3v2 `SYLT` frame (symphonia skips the frame, so the `id3` crate
/// reads it): the first one with millisecond times. `None` when the file has no ID3v2 tag,
/// no such frame, or one timed in MPEG frames (not converted: rare, and the frame length
/// differs by layer and rate).
pub fn from_id3_sylt(path: &std::path::Path) -> Option<Lyrics> {
    let tag = id3::Tag::read_from_path(path).ok()?;
    let sylt = tag
        .synchronised_lyrics()
        .find(|s| s.timestamp_format == id3::frame::TimestampFormat::Ms && !s.content.is_empty())?;
    let mut lines: Vec<Line> = sylt
        .content
        .iter()
        .take(MAX_SYLT_LINES)
        .map(|(ms, text)| Line {
            t_ms: Some(u64::from(*ms)),
            text: text.trim().to_string(),
        })
        .collect();
    // Stable: lines at the same time keep the frame's order.
    lines.sort_by_key(|l| l.t_ms);
    Some(Lyrics {
        synced: true,
        source: LyricsSource::Tags,
        lines,
    })
}

/// The most lines taken from a `SYLT` frame (a song has tens; the frame is a tag's size).
const MAX_SYLT_LINES: usize = 10_000;

impl Lyrics {
    /// The summary a track record holds.
    pub fn summary(&self) -> Summary {
        Summary {
            synced: self.synced,
            source: self.source,
            lines: self.lines.len(),
        }
    }

    /// The lyrics as WebVTT for an HLS subtitles rendition, `None` when unsynced. Each line
    /// is a cue until the next line's time (or `end_ms`, the track's length); empty lines only
    /// end the cue before them. `X-TIMESTAMP-MAP` ties cue time 0 to media time 0: encore's
    /// fMP4 segments start their timeline at 0 (`tfdt`), so cue times are track times.
    pub fn webvtt(&self, end_ms: u64) -> Option<String> {
        if !self.synced {
            return None;
        }
        let mut out = String::from("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n");
        let mut cue = 0;
        for (i, line) in self.lines.iter().enumerate() {
            let start = line.t_ms.unwrap_or(0);
            let end = self
                .lines
                .get(i + 1)
                .and_then(|n| n.t_ms)
                .unwrap_or(end_ms)
                .max(start);
            if line.text.is_empty() || end <= start {
                continue;
            }
            cue += 1;
            let _ = write!(
                out,
                "\n{cue}\n{} --> {}\n{}\n",
                vtt_time(start),
                vtt_time(end),
                vtt_escape(&line.text)
            );
        }
        Some(out)
    }
}

fn vtt_time(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text is markup: `&`, `<` and `>` escaped (which also keeps `-->` out of a cue).
fn vtt_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lrc_with_bom_offset_metadata_and_repeated_tags() {
        let text = "\u{feff}[ar:Nobody]\n[ti:Test]\n[offset:+500]\n[00:01.00]one\n[00:10.50][00:03.25]chorus\n[00:05.00]\n";
        let l = parse_lrc(text.as_bytes()).unwrap();
        assert!(l.synced);
        let got: Vec<(Option<u64>, &str)> =
            l.lines.iter().map(|x| (x.t_ms, x.text.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(500), "one"),
                (Some(2750), "chorus"),
                (Some(4500), ""),
                (Some(10_000), "chorus"),
            ]
        );
        let vtt = l.webvtt(12_000).unwrap();
        assert!(vtt.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"));
        assert!(
            vtt.contains("\n1\n00:00:00.500 --> 00:00:02.750\none\n"),
            "{vtt}"
        );
        assert!(
            vtt.contains("\n2\n00:00:02.750 --> 00:00:04.500\nchorus\n"),
            "{vtt}"
        );
        assert!(
            vtt.contains("\n3\n00:00:10.000 --> 00:00:12.000\nchorus\n"),
            "{vtt}"
        );
    }

    #[test]
    fn bad_lrc_is_refused_with_a_reason() {
        assert!(matches!(
            parse_lrc(b"[00:01.00]ok\n\xff\xfe"),
            Err(LyricsError::NotUtf8(_))
        ));
        assert_eq!(
            parse_lrc(b"just words\nno tags"),
            Err(LyricsError::NoTimedLine)
        );
        assert!(matches!(
            parse_lrc(b"[00:0x.10]broken tag"),
            Err(LyricsError::Syntax(_))
        ));
    }

    #[test]
    fn tag_text_is_unsynced_unless_it_is_lrc() {
        let plain = from_tag("first line\nsecond <line>").unwrap();
        assert!(!plain.synced);
        assert_eq!(plain.lines[1].text, "second <line>");
        assert_eq!(plain.webvtt(1000), None);
        let timed = from_tag("[00:02.00]hello").unwrap();
        assert!(timed.synced);
        assert_eq!(timed.source, LyricsSource::Tags);
        assert_eq!(from_tag("  \n"), None);
        let vtt = Lyrics {
            synced: true,
            source: LyricsSource::Lrc,
            lines: vec![Line {
                t_ms: Some(0),
                text: "a --> b & <c>".into(),
            }],
        }
        .webvtt(1000)
        .unwrap();
        assert!(vtt.contains("a --&gt; b &amp; &lt;c&gt;"), "{vtt}");
    }

    proptest! {
        #![proptest_config(crate::fuzzing::config(256))]

        /// Any bytes: an answer, never a panic; accepted lyrics are in time order and make
        /// WebVTT whose cues never run backwards.
        #[test]
        fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(l) = parse_lrc(&bytes) {
                let times: Vec<u64> = l.lines.iter().filter_map(|x| x.t_ms).collect();
                prop_assert!(times.windows(2).all(|w| w[0] <= w[1]));
                prop_assert!(l.webvtt(u64::MAX / 2).is_some());
            }
        }

        /// LRC-shaped text with random tags and text parses to exactly the tags given.
        #[test]
        fn generated_lrc_round_trips(
            rows in proptest::collection::vec((0u64..600_000, "[a-zA-Z ,.'!?]{0,30}"), 1..40)
        ) {
            let mut text = String::new();
            for (ms, words) in &rows {
                text.push_str(&format!("[{:02}:{:02}.{:02}]{}\n", ms / 60_000, ms / 1000 % 60, ms / 10 % 100, words));
            }
            let l = parse_lrc(text.as_bytes()).unwrap();
            prop_assert_eq!(l.lines.len(), rows.len());
            let mut want: Vec<u64> = rows.iter().map(|(ms, _)| ms / 10 * 10).collect();
            want.sort_unstable();
            let got: Vec<u64> = l.lines.iter().map(|x| x.t_ms.unwrap()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
