//! `album.toml`: the optional per-album settings file, parsed raw and then validated.
//!
//! Every key is optional; an album folder without `album.toml` is still an album (tags and the
//! folder name fill in title and artist elsewhere). A full example:
//!
//! ```toml
//! title = "First Light"
//! artist = "The Lantern Choir"
//! release_date = 2025-03-21          # or "2025-03-21"
//! price = 999                        # minor units: 9.99
//! currency = "EUR"
//! preview_seconds = 15
//! preview_start = 5
//! cover = "cover.png"
//!
//! [[tracks]]
//! file = "03-tide-pools.mp3"         # or: number = 3
//! title = "Tide Pools"
//! preview_start = 12.5
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path};

use serde::Deserialize;

use super::{CatalogError, TrackSource};

/// Name of the settings file inside an album folder.
pub const ALBUM_TOML: &str = "album.toml";

/// Preview length when `album.toml` does not say (the product promise: 30 s).
pub const DEFAULT_PREVIEW_SECONDS: f64 = 30.0;

/// Longest preview we agree to cut: ten minutes is most of any song, and a longer "preview"
/// would be the full track for a non-buyer.
pub const MAX_PREVIEW_SECONDS: f64 = 600.0;

/// `album.toml` exactly as written. Unknown keys are refused so a typo (`preview_secs`) is an
/// error instead of a silently ignored setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlbumToml {
    /// Album title shown to fans; overrides the tags.
    title: Option<String>,
    /// Album artist shown to fans; overrides the tags.
    artist: Option<String>,
    /// Release date, `YYYY-MM-DD`, as a TOML string or a bare TOML local date.
    release_date: Option<toml::Value>,
    /// Price in minor units of `currency` (999 = 9.99 EUR); needs `currency`.
    price: Option<i64>,
    /// ISO 4217 code, three uppercase letters (`EUR`, `CNY`); needs `price`.
    currency: Option<String>,
    /// Length of the preview clip in seconds; default 30, must be > 0 and ≤ 600.
    preview_seconds: Option<f64>,
    /// Where the preview clip starts, in seconds from the track start; default 0, ≥ 0.
    preview_start: Option<f64>,
    /// Cover image, a relative path inside the album folder (no `..`, not absolute).
    cover: Option<String>,
    /// Per-track overrides, `[[tracks]]` tables.
    #[serde(default)]
    tracks: Vec<RawTrack>,
}

/// One `[[tracks]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrack {
    /// The track's audio file name in the album folder; give this or `number`.
    file: Option<String>,
    /// The track number (1 = first file in name order); give this or `file`.
    number: Option<i64>,
    /// Track title shown to fans; overrides the tags.
    title: Option<String>,
    /// Preview start for this track, seconds; overrides the album's `preview_start`.
    preview_start: Option<f64>,
    /// Preview length for this track, seconds; overrides the album's `preview_seconds`.
    preview_seconds: Option<f64>,
}

/// Validated contents of `album.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlbumInfo {
    /// Album title, if set (never empty).
    pub title: Option<String>,
    /// Album artist, if set (never empty).
    pub artist: Option<String>,
    /// Release date, if set.
    pub release_date: Option<ReleaseDate>,
    /// Price and currency, if set (they are set together or not at all).
    pub price: Option<Price>,
    /// Album-wide preview length in seconds: finite, > 0, ≤ [`MAX_PREVIEW_SECONDS`].
    pub preview_seconds: f64,
    /// Album-wide preview start in seconds: finite, ≥ 0.
    pub preview_start: f64,
    /// Cover image path relative to the album folder, as written (checked to stay inside it).
    pub cover: Option<String>,
    /// Per-track overrides, in file order.
    tracks: Vec<TrackOverride>,
    /// Track number → index into `tracks`. Holds `number = N` entries from parsing on, and
    /// `file = "..."` entries once [`AlbumInfo::bind_tracks`] has matched them to files.
    resolved: BTreeMap<u32, usize>,
}

/// A calendar date, `YYYY-MM-DD`, checked to exist (no February 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseDate {
    /// Year, 1..=9999.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31 as the month allows.
    pub day: u8,
}

/// An album price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    /// Amount in minor units of the currency (999 with EUR = 9.99 €). Integer so no rounding
    /// ever touches money.
    pub minor_units: u64,
    /// The currency.
    pub currency: Currency,
}

/// An ISO 4217 alphabetic code: exactly three ASCII uppercase letters. The format is checked,
/// not membership in the ISO list, which changes; the payment backend is the authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

/// Which track a `[[tracks]]` entry is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackRef {
    /// By audio file name in the album folder.
    File(String),
    /// By track number, from 1.
    Number(u32),
}

/// A validated `[[tracks]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackOverride {
    /// The track it applies to.
    pub target: TrackRef,
    /// Track title, if set (never empty).
    pub title: Option<String>,
    /// Preview start for this track, seconds, finite and ≥ 0.
    pub preview_start: Option<f64>,
    /// Preview length for this track, seconds, finite, > 0 and ≤ [`MAX_PREVIEW_SECONDS`].
    pub preview_seconds: Option<f64>,
}

/// The part of a track a non-buyer may hear.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PreviewWindow {
    /// Start, seconds from the beginning of the track.
    pub start_seconds: f64,
    /// Length in seconds.
    pub seconds: f64,
}

impl PreviewWindow {
    /// The window used without `album.toml`: the first 30 seconds.
    pub const DEFAULT: PreviewWindow = PreviewWindow {
        start_seconds: 0.0,
        seconds: DEFAULT_PREVIEW_SECONDS,
    };

    /// End of the window, seconds from the beginning of the track.
    pub fn end_seconds(&self) -> f64 {
        self.start_seconds + self.seconds
    }

    /// Fits the window into a track of `duration_seconds`.
    ///
    /// The window keeps its length where it can: if it runs past the end it slides back
    /// (never before 0), so a preview start set for a long track still yields a full-length
    /// clip on a short one. A track shorter than the window gives the whole track — acceptable,
    /// since such a track is shorter than the preview length the store chose to give away.
    pub fn clamp_to(&self, duration_seconds: f64) -> PreviewWindow {
        let duration = if duration_seconds.is_finite() {
            duration_seconds.max(0.0)
        } else {
            0.0
        };
        let seconds = self.seconds.min(duration);
        let start_seconds = self.start_seconds.min(duration - seconds).max(0.0);
        PreviewWindow {
            start_seconds,
            seconds,
        }
    }
}

impl Default for AlbumInfo {
    /// What an album without `album.toml` gets: no metadata, 30-second previews from 0.
    fn default() -> Self {
        AlbumInfo {
            title: None,
            artist: None,
            release_date: None,
            price: None,
            preview_seconds: DEFAULT_PREVIEW_SECONDS,
            preview_start: 0.0,
            cover: None,
            tracks: Vec::new(),
            resolved: BTreeMap::new(),
        }
    }
}

impl AlbumInfo {
    /// Reads and validates the `album.toml` at `path`.
    pub fn load(path: &Path) -> Result<AlbumInfo, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogError::io(path, e))?;
        AlbumInfo::parse(&text, path)
    }

    /// Parses and validates `album.toml` text; `path` is used only in error messages.
    ///
    /// `[[tracks]]` entries given by `file` take effect once [`AlbumInfo::bind_tracks`] has
    /// matched them to the folder's files (`load_album` does this).
    pub fn parse(text: &str, path: &Path) -> Result<AlbumInfo, CatalogError> {
        let raw: RawAlbumToml =
            toml::from_str(text).map_err(|e| CatalogError::AlbumTomlSyntax {
                path: path.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
        let invalid = |field: &str, reason: String| CatalogError::AlbumTomlInvalid {
            path: path.to_owned(),
            field: field.to_owned(),
            reason,
        };

        let title = non_empty(raw.title, "title").map_err(|(f, r)| invalid(f, r))?;
        let artist = non_empty(raw.artist, "artist").map_err(|(f, r)| invalid(f, r))?;
        let release_date = raw
            .release_date
            .map(|v| ReleaseDate::from_toml(&v))
            .transpose()
            .map_err(|r| invalid("release_date", r))?;
        let price = match (raw.price, raw.currency) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "price",
                    "is set but `currency` is missing (e.g. currency = \"EUR\")".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "currency",
                    "is set but `price` is missing (e.g. price = 999 for 9.99)".into(),
                ));
            }
            (Some(amount), Some(code)) => {
                let minor_units = u64::try_from(amount)
                    .map_err(|_| invalid("price", format!("is {amount}; it must be 0 or more")))?;
                let currency = Currency::parse(&code).map_err(|r| invalid("currency", r))?;
                Some(Price {
                    minor_units,
                    currency,
                })
            }
        };
        let preview_seconds = match raw.preview_seconds {
            None => DEFAULT_PREVIEW_SECONDS,
            Some(s) => check_preview_seconds(s).map_err(|r| invalid("preview_seconds", r))?,
        };
        let preview_start = match raw.preview_start {
            None => 0.0,
            Some(s) => check_preview_start(s).map_err(|r| invalid("preview_start", r))?,
        };
        let cover = raw
            .cover
            .map(|c| check_cover(&c).map(|()| c))
            .transpose()
            .map_err(|r| invalid("cover", r))?;

        let mut tracks = Vec::with_capacity(raw.tracks.len());
        for (i, t) in raw.tracks.into_iter().enumerate() {
            let entry = |key: &str| format!("[[tracks]] entry {}, {key}", i + 1);
            let target = match (t.file, t.number) {
                (Some(file), None) => {
                    check_plain_file_name(&file).map_err(|r| invalid(&entry("file"), r))?;
                    TrackRef::File(file)
                }
                (None, Some(n)) => match u32::try_from(n) {
                    Ok(n) if n >= 1 => TrackRef::Number(n),
                    _ => {
                        return Err(invalid(
                            &entry("number"),
                            format!("is {n}; track numbers start at 1"),
                        ));
                    }
                },
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &entry("file"),
                        "and `number` are both set; give one of them".into(),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        &entry("file"),
                        "is missing: say which track, with file = \"...\" or number = N".into(),
                    ));
                }
            };
            let title = non_empty(t.title, "title").map_err(|(f, r)| invalid(&entry(f), r))?;
            let preview_start = t
                .preview_start
                .map(check_preview_start)
                .transpose()
                .map_err(|r| invalid(&entry("preview_start"), r))?;
            let preview_seconds = t
                .preview_seconds
                .map(check_preview_seconds)
                .transpose()
                .map_err(|r| invalid(&entry("preview_seconds"), r))?;
            tracks.push(TrackOverride {
                target,
                title,
                preview_start,
                preview_seconds,
            });
        }

        let mut resolved = BTreeMap::new();
        for (i, t) in tracks.iter().enumerate() {
            if let TrackRef::Number(n) = t.target
                && let Some(first) = resolved.insert(n, i)
            {
                return Err(invalid(
                    &format!("[[tracks]] entry {}, number", i + 1),
                    format!("is {n}, already used by entry {}", first + 1),
                ));
            }
        }

        Ok(AlbumInfo {
            title,
            artist,
            release_date,
            price,
            preview_seconds,
            preview_start,
            cover,
            tracks,
            resolved,
        })
    }

    /// Matches the `[[tracks]]` entries to the album's tracks: `file` entries to their track
    /// numbers, and every entry checked to name a track that exists, at most once.
    pub fn bind_tracks(&mut self, path: &Path, tracks: &[TrackSource]) -> Result<(), CatalogError> {
        let invalid = |field: String, reason: String| CatalogError::AlbumTomlInvalid {
            path: path.to_owned(),
            field,
            reason,
        };
        let mut resolved = BTreeMap::new();
        for (i, t) in self.tracks.iter().enumerate() {
            let (key, number) = match &t.target {
                TrackRef::Number(n) => {
                    if *n as usize > tracks.len() {
                        return Err(invalid(
                            format!("[[tracks]] entry {}, number", i + 1),
                            format!("is {n}, but the album has {} track(s)", tracks.len()),
                        ));
                    }
                    ("number", *n)
                }
                TrackRef::File(f) => match tracks.iter().find(|s| s.file_name == *f) {
                    Some(s) => ("file", s.number),
                    None => {
                        return Err(invalid(
                            format!("[[tracks]] entry {}, file", i + 1),
                            format!("names {f:?}, which is not an audio file in this album"),
                        ));
                    }
                },
            };
            if let Some(first) = resolved.insert(number, i) {
                return Err(invalid(
                    format!("[[tracks]] entry {}, {key}", i + 1),
                    format!("is track {number} again (entry {} is too)", first + 1),
                ));
            }
        }
        self.resolved = resolved;
        Ok(())
    }

    /// The `[[tracks]]` entries, in file order.
    pub fn track_overrides(&self) -> &[TrackOverride] {
        &self.tracks
    }

    /// The `[[tracks]]` entry for track `number` (from 1), if any.
    pub fn track_override(&self, number: u32) -> Option<&TrackOverride> {
        self.resolved.get(&number).and_then(|&i| self.tracks.get(i))
    }

    /// The title `album.toml` gives track `number`, if any.
    pub fn track_title(&self, number: u32) -> Option<&str> {
        self.track_override(number)?.title.as_deref()
    }

    /// The preview window of track `number` (from 1): the track's own `preview_start` and
    /// `preview_seconds` where given, else the album's. Not yet fitted to the track's length:
    /// see [`PreviewWindow::clamp_to`].
    pub fn preview_window(&self, track_number: u32) -> PreviewWindow {
        let o = self.track_override(track_number);
        PreviewWindow {
            start_seconds: o
                .and_then(|o| o.preview_start)
                .unwrap_or(self.preview_start),
            seconds: o
                .and_then(|o| o.preview_seconds)
                .unwrap_or(self.preview_seconds),
        }
    }
}

impl ReleaseDate {
    /// Parses `YYYY-MM-DD` and checks the day exists.
    pub fn parse(s: &str) -> Result<ReleaseDate, String> {
        let bad = || format!("is {s:?}; want a real date as YYYY-MM-DD, e.g. \"2025-03-21\"");
        let b = s.as_bytes();
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return Err(bad());
        }
        // Only ASCII digits remain in these ranges, so the parses cannot fail.
        let year: u16 = s[0..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..7].parse().map_err(|_| bad())?;
        let day: u8 = s[8..10].parse().map_err(|_| bad())?;
        if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(bad());
        }
        Ok(ReleaseDate { year, month, day })
    }

    /// Accepts a TOML string or a bare TOML local date (`release_date = 2025-03-21`).
    fn from_toml(v: &toml::Value) -> Result<ReleaseDate, String> {
        match v {
            toml::Value::String(s) => ReleaseDate::parse(s),
            toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                ReleaseDate::parse(&dt.to_string())
            }
            other => Err(format!(
                "is {other}; want a date as YYYY-MM-DD, e.g. \"2025-03-21\""
            )),
        }
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

impl fmt::Display for ReleaseDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Currency {
    /// Checks `code` is a current ISO 4217 code, from the table purchases are checked
    /// against (an album priced in a code no purchase may carry could never be bought).
    pub fn parse(code: &str) -> Result<Currency, String> {
        match code.as_bytes() {
            &[a, b, c] if crate::ledger::purchase::is_iso_4217(code) => Ok(Currency([a, b, c])),
            _ => Err(format!(
                "is {code:?}; want a current ISO 4217 code in uppercase, e.g. \"EUR\""
            )),
        }
    }

    /// The code, e.g. `"EUR"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn non_empty(
    v: Option<String>,
    key: &'static str,
) -> Result<Option<String>, (&'static str, String)> {
    match v {
        Some(s) if s.trim().is_empty() => Err((
            key,
            "is empty; leave the key out to use the audio tags instead".into(),
        )),
        other => Ok(other),
    }
}

fn check_preview_seconds(s: f64) -> Result<f64, String> {
    if s.is_finite() && s > 0.0 && s <= MAX_PREVIEW_SECONDS {
        Ok(s)
    } else {
        Err(format!(
            "is {s}; it must be more than 0 and at most {MAX_PREVIEW_SECONDS} seconds"
        ))
    }
}

fn check_preview_start(s: f64) -> Result<f64, String> {
    if s.is_finite() && s >= 0.0 {
        Ok(s)
    } else {
        Err(format!(
            "is {s}; it must be 0 or more seconds from the start of the track"
        ))
    }
}

/// A cover path must stay inside the album folder: relative, and only plain components.
fn check_cover(c: &str) -> Result<(), String> {
    let p = Path::new(c);
    if c.is_empty() {
        return Err("is empty".into());
    }
    if p.is_absolute() || c.starts_with('/') || c.starts_with('\\') {
        return Err(format!(
            "is {c:?}, an absolute path; give a file name inside the album folder"
        ));
    }
    if !p.components().all(|k| matches!(k, Component::Normal(_))) {
        return Err(format!(
            "is {c:?}; it must stay inside the album folder (no \"..\" or \".\")"
        ));
    }
    Ok(())
}

/// A `[[tracks]]` `file` is a bare file name in the album folder, since tracks are never read
/// from subfolders.
fn check_plain_file_name(f: &str) -> Result<(), String> {
    let mut parts = Path::new(f).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if !f.contains('\\') => Ok(()),
        _ => Err(format!(
            "is {f:?}; give the bare file name of a track in the album folder"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(text: &str) -> Result<AlbumInfo, CatalogError> {
        AlbumInfo::parse(text, Path::new("media/x/album.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn track(number: u32, name: &str) -> TrackSource {
        TrackSource {
            number,
            path: PathBuf::from("media/x").join(name),
            file_name: name.into(),
        }
    }

    const FULL: &str = r#"
title = "First Light"
artist = "The Lantern Choir"
release_date = "2024-02-29"
price = 999
currency = "EUR"
preview_seconds = 15
preview_start = 5
cover = "art/cover.png"

[[tracks]]
file = "03-c.mp3"
title = "Tide Pools"
preview_start = 12.5

[[tracks]]
number = 2
preview_seconds = 20
"#;

    #[test]
    fn valid_full_file() {
        let mut info = parse(FULL).unwrap();
        assert_eq!(info.title.as_deref(), Some("First Light"));
        assert_eq!(info.artist.as_deref(), Some("The Lantern Choir"));
        assert_eq!(info.release_date.unwrap().to_string(), "2024-02-29");
        let price = info.price.clone().unwrap();
        assert_eq!(price.minor_units, 999);
        assert_eq!(price.currency.as_str(), "EUR");
        assert_eq!(info.preview_seconds, 15.0);
        assert_eq!(info.preview_start, 5.0);
        assert_eq!(info.cover.as_deref(), Some("art/cover.png"));
        assert_eq!(info.track_overrides().len(), 2);

        let tracks = [
            track(1, "01-a.flac"),
            track(2, "02-b.flac"),
            track(3, "03-c.mp3"),
        ];
        info.bind_tracks(Path::new("album.toml"), &tracks).unwrap();
        let w = |n| info.preview_window(n);
        assert_eq!(
            w(1),
            PreviewWindow {
                start_seconds: 5.0,
                seconds: 15.0
            }
        );
        assert_eq!(
            w(2),
            PreviewWindow {
                start_seconds: 5.0,
                seconds: 20.0
            }
        );
        assert_eq!(
            w(3),
            PreviewWindow {
                start_seconds: 12.5,
                seconds: 15.0
            }
        );
        assert_eq!(info.track_title(3), Some("Tide Pools"));
        assert_eq!(info.track_title(1), None);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let info = parse("").unwrap();
        assert_eq!(info, AlbumInfo::default());
        assert_eq!(info.preview_window(1), PreviewWindow::DEFAULT);
    }

    #[test]
    fn bare_toml_date_is_accepted() {
        let info = parse("release_date = 2025-03-21").unwrap();
        assert_eq!(
            info.release_date,
            Some(ReleaseDate {
                year: 2025,
                month: 3,
                day: 21
            })
        );
        let e = err("release_date = 2025-03-21T10:00:00Z");
        assert!(e.contains("release_date"), "{e}");
    }

    #[test]
    fn bad_dates() {
        for d in [
            "2023-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-00-10",
            "0000-01-01",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "2024-01-01 ",
            "+024-01-01",
        ] {
            let e = err(&format!("release_date = {d:?}"));
            assert!(
                e.starts_with("media/x/album.toml: release_date: is"),
                "{d}: {e}"
            );
        }
        assert!(parse("release_date = \"1900-02-28\"").is_ok());
        assert!(parse("release_date = \"2000-02-29\"").is_ok());
        assert!(parse("release_date = \"1900-02-29\"").is_err());
    }

    #[test]
    fn bad_currency_and_price() {
        for c in ["eur", "EURO", "E1R", "", "€", "ABC", "XXX"] {
            let e = err(&format!("price = 1\ncurrency = {c:?}"));
            assert!(e.contains("currency: is"), "{c}: {e}");
        }
        let e = err("price = -1\ncurrency = \"EUR\"");
        assert!(e.contains("price: is -1"), "{e}");
        assert!(err("price = 1").contains("`currency` is missing"));
        assert!(err("currency = \"EUR\"").contains("`price` is missing"));
        let e = err("price = 9.99\ncurrency = \"EUR\"");
        assert!(e.contains("album.toml") && e.contains("price"), "{e}");
        assert_eq!(
            parse("price = 0\ncurrency = \"CNY\"")
                .unwrap()
                .price
                .unwrap()
                .minor_units,
            0
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err("title = \"x\"\npreview_secs = 10");
        assert!(e.starts_with("media/x/album.toml: "), "{e}");
        assert!(e.contains("preview_secs"), "{e}");
        let e = err("[[tracks]]\nnumber = 1\nstart = 3");
        assert!(e.contains("album.toml") && e.contains("start"), "{e}");
    }

    #[test]
    fn syntax_error_names_the_file() {
        let e = err("title = ");
        assert!(e.starts_with("media/x/album.toml: "), "{e}");
    }

    #[test]
    fn preview_ranges() {
        let e = err("preview_start = -1");
        assert_eq!(
            e,
            "media/x/album.toml: preview_start: is -1; it must be 0 or more seconds from the start of the track"
        );
        assert!(err("preview_start = nan").contains("preview_start"));
        assert!(err("preview_seconds = 0").contains("preview_seconds"));
        assert!(err("preview_seconds = 601").contains("preview_seconds"));
        assert!(err("preview_seconds = inf").contains("preview_seconds"));
        assert_eq!(
            parse("preview_seconds = 600").unwrap().preview_seconds,
            600.0
        );
        assert_eq!(parse("preview_start = 2.5").unwrap().preview_start, 2.5);
        let e = err("[[tracks]]\nnumber = 1\npreview_start = -0.5");
        assert!(
            e.contains("[[tracks]] entry 1, preview_start: is -0.5"),
            "{e}"
        );
    }

    #[test]
    fn cover_must_stay_inside() {
        for c in [
            "../cover.png",
            "/etc/passwd",
            "a/../../b.png",
            "./cover.png",
            "",
        ] {
            let e = err(&format!("cover = {c:?}"));
            assert!(e.contains("cover: is"), "{c}: {e}");
        }
    }

    #[test]
    fn empty_title_is_refused() {
        assert!(err("title = \"  \"").contains("title: is empty"));
    }

    #[test]
    fn track_entry_rules() {
        assert!(err("[[tracks]]\ntitle = \"x\"").contains("entry 1, file: is missing"));
        assert!(err("[[tracks]]\nfile = \"a.flac\"\nnumber = 1").contains("both set"));
        assert!(err("[[tracks]]\nnumber = 0").contains("start at 1"));
        assert!(err("[[tracks]]\nfile = \"sub/a.flac\"").contains("bare file name"));
        let e = err("[[tracks]]\nnumber = 2\n[[tracks]]\nnumber = 2");
        assert!(
            e.contains("entry 2, number: is 2, already used by entry 1"),
            "{e}"
        );
    }

    #[test]
    fn number_overrides_work_before_binding() {
        let info = parse("preview_start = 1\n[[tracks]]\nnumber = 2\npreview_start = 7").unwrap();
        assert_eq!(info.preview_window(2).start_seconds, 7.0);
        assert_eq!(info.preview_window(1).start_seconds, 1.0);
    }

    #[test]
    fn binding_checks_targets() {
        let tracks = [track(1, "01-a.flac"), track(2, "02-b.flac")];
        let p = Path::new("media/x/album.toml");

        let mut info = parse("[[tracks]]\nfile = \"nope.flac\"").unwrap();
        let e = info.bind_tracks(p, &tracks).unwrap_err().to_string();
        assert!(
            e.contains("\"nope.flac\", which is not an audio file"),
            "{e}"
        );

        let mut info = parse("[[tracks]]\nnumber = 3").unwrap();
        let e = info.bind_tracks(p, &tracks).unwrap_err().to_string();
        assert!(e.contains("is 3, but the album has 2 track(s)"), "{e}");

        let mut info = parse("[[tracks]]\nnumber = 2\n[[tracks]]\nfile = \"02-b.flac\"").unwrap();
        let e = info.bind_tracks(p, &tracks).unwrap_err().to_string();
        assert!(e.contains("entry 2, file: is track 2 again"), "{e}");
    }

    #[test]
    fn clamp_keeps_length_when_it_can() {
        let w = PreviewWindow {
            start_seconds: 25.0,
            seconds: 15.0,
        };
        assert_eq!(w.clamp_to(60.0), w);
        assert_eq!(
            w.clamp_to(30.0),
            PreviewWindow {
                start_seconds: 15.0,
                seconds: 15.0
            }
        );
        assert_eq!(
            w.clamp_to(10.0),
            PreviewWindow {
                start_seconds: 0.0,
                seconds: 10.0
            }
        );
        assert_eq!(
            w.clamp_to(f64::NAN),
            PreviewWindow {
                start_seconds: 0.0,
                seconds: 0.0
            }
        );
    }
}
