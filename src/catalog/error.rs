//! The one error type of the catalog: what is wrong with which file or folder, in plain words.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading albums from disk.
///
/// Every message names the file or folder at fault first and then says why, so an operator
/// can fix the media folder from the message alone (`media/Bad Name: ...`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A string that should be an album id is not a lowercase slug.
    #[error("invalid album id {id:?}: {reason}")]
    InvalidAlbumId {
        /// The rejected text.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// An album folder whose name cannot be an album id.
    #[error(
        "{}: folder name is not a valid album id: {reason} (use lowercase letters, digits and single hyphens, e.g. \"first-light\")",
        dir.display()
    )]
    BadAlbumFolder {
        /// The folder.
        dir: PathBuf,
        /// Why its name was rejected.
        reason: &'static str,
    },

    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder being read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// `album.toml` is not valid TOML or does not match the schema (wrong type, unknown key).
    #[error("{}: {message}", path.display())]
    AlbumTomlSyntax {
        /// The `album.toml` file.
        path: PathBuf,
        /// The parser's message, which names the key and shows the line.
        message: String,
    },

    /// `album.toml` parsed, but a value is out of range or malformed.
    #[error("{}: {field}: {reason}", path.display())]
    AlbumTomlInvalid {
        /// The `album.toml` file.
        path: PathBuf,
        /// The key at fault, e.g. `release_date` or `tracks[2].preview_start`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `album.toml` names a cover file that is not in the album folder.
    #[error("{}: album.toml names cover {cover:?}, but {} is not a file", dir.display(), path.display())]
    CoverMissing {
        /// The album folder.
        dir: PathBuf,
        /// The `cover` value from `album.toml`.
        cover: String,
        /// The path that was looked for.
        path: PathBuf,
    },

    /// An album folder without a single audio file we can decode.
    #[error(
        "{}: no audio files in this album folder (looked for .{})",
        dir.display(),
        super::scan::AUDIO_EXTENSIONS.join(", .")
    )]
    EmptyAlbum {
        /// The album folder.
        dir: PathBuf,
    },

    /// An audio file whose name is not valid UTF-8 (track file names are shown to people and
    /// matched against `album.toml`, so they must be text).
    #[error("{}: audio file name is not valid UTF-8; rename the file", path.display())]
    NonUtf8FileName {
        /// The file, printed lossily.
        path: PathBuf,
    },
}

impl CatalogError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CatalogError::Io {
            path: path.into(),
            source,
        }
    }
}
