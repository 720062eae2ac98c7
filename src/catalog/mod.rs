//! The albums on disk: album folders, track order, `album.toml` and cover art (no decoding).
//!
//! - [`slug`]: [`AlbumId`], the lowercase slug naming an album.
//! - [`album_toml`]: the optional `album.toml`, parsed and validated into [`AlbumInfo`].
//! - [`scan`]: [`scan_media_dir`] and [`load_album`], giving [`AlbumSource`]s.
//! - [`fingerprint`]: hashes of sources and settings, to detect what changed since ingest.
//! - [`error`]: the error type, [`CatalogError`].

pub mod album_toml;
pub mod error;
pub mod fingerprint;
#[cfg(test)]
mod proptests;
pub mod scan;
pub mod slug;

pub use album_toml::{
    ALBUM_TOML, AlbumInfo, Currency, DEFAULT_PREVIEW_SECONDS, EXTRAS_DIR, ExtraKind, ExtraSpec,
    MAX_PREVIEW_SECONDS, PreviewWindow, Price, ReleaseDate, TrackOverride, TrackRef,
};
pub use error::CatalogError;
pub use fingerprint::{NO_ALBUM_TOML, album_info_fingerprint, file_sha256_hex, source_fingerprint};
pub use scan::{
    AUDIO_EXTENSIONS, AlbumSource, COVER_CANDIDATES, TrackSource, load_album, scan_media_dir,
};
pub use slug::{AlbumId, MAX_ALBUM_ID_LEN, slugify};
