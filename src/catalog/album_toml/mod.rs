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
//! on_sale_at = "2026-12-24T00:00:00Z"  # a launch: purchases refused before it
//!
//! [[tracks]]
//! file = "03-tide-pools.mp3"         # or: number = 3
//! title = "Tide Pools"
//! preview_start = 12.5
//!
//! [[extras]]                         # buyer-only; id = file stem, type from the extension
//! file = "extras/letter.pdf"
//! title = "A letter from the band"
//! ```
//!
//! The values with a syntax of their own: [`ReleaseDate`] in `date`, [`Price`] and
//! [`Currency`] in `price`.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::Deserialize;

use super::{CatalogError, TrackSource};

mod date;
mod extras;
mod launch;
mod price;

pub use date::ReleaseDate;
pub use extras::{EXTRAS_DIR, ExtraKind, ExtraSpec, MAX_EXTRA_ID_LEN};
pub use price::{Currency, Price};

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
    /// When sales open (launches): an RFC 3339 time, as a TOML string or offset datetime.
    on_sale_at: Option<toml::Value>,
    /// Buyer-only bonus files, `[[extras]]` tables (`extras.rs`).
    #[serde(default)]
    extras: Vec<extras::RawExtra>,
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
    /// When sales open, Unix seconds (None: on sale now).
    pub on_sale_at: Option<i64>,
    /// Buyer-only bonus files, in file order.
    pub extras: Vec<ExtraSpec>,
    /// Per-track overrides, in file order.
    tracks: Vec<TrackOverride>,
    /// Track number → index into `tracks`. Holds `number = N` entries from parsing on, and
    /// `file = "..."` entries once [`AlbumInfo::bind_tracks`] has matched them to files.
    resolved: BTreeMap<u32, usize>,
}

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
            on_sale_at: None,
            extras: Vec::new(),
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

        let on_sale_at = raw
            .on_sale_at
            .as_ref()
            .map(launch::on_sale_at)
            .transpose()
            .map_err(|r| invalid("on_sale_at", r))?;
        let extras = extras::parse(raw.extras).map_err(|(f, r)| invalid(&f, r))?;

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
            on_sale_at,
            extras,
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
mod tests;
