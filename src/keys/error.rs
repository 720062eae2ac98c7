//! [`KeyError`]: what can go wrong with the keys directory, with messages that name the file
//! and, where there is one, the fix.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::layout::{FORMAT, STATE_FILE};
use crate::seal::{ContextError, KeyId, RngError};

/// Something went wrong with the keys directory. Messages name the file and, where there is
/// one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No `keyring.json`.
    #[error("no keyring in {}: {} is missing; run `encore keys init --keys {}`", .dir.display(), .file.display(), .dir.display())]
    NotInitialized {
        /// The keys directory.
        dir: PathBuf,
        /// The missing state file.
        file: PathBuf,
    },
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        /// What we were doing, e.g. "read".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file does not parse or contradicts another.
    #[error("{} is not a valid {what}: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should be, e.g. "KEK file".
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A private key file that group or others can read.
    #[error(
        "{} has mode {mode:04o}, so other users can read this private key; \
         run `chmod 600 {}` (and consider rotating the key)",
        .path.display(), .path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A newer file format.
    #[error("{} has format {found}, but this build of encore reads format {FORMAT}; upgrade encore", .path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format it declares.
        found: u32,
    },
    /// A file the state lists is gone.
    #[error("{} is missing, but {} lists it; restore it from a backup", .path.display(), .listed_in.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// The file that names it.
        listed_in: PathBuf,
    },
    /// No randomness for a new key.
    #[error("cannot create a key: {0}")]
    Rng(#[from] RngError),
    /// An album id that cannot name a key file.
    #[error("{album:?} is not a usable album id for a key file: {reason}")]
    InvalidAlbum {
        /// The id given (cut to 80 characters).
        album: String,
        /// Why not.
        reason: &'static str,
    },
    /// A rendition name that cannot be bound into the AAD.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A wrapped content key names a KEK the keyring does not have.
    #[error(
        "the content key for {album} track {track} ({rendition}) in {} is wrapped under KEK \
         {kek}, which {} does not list",
        .path.display(), STATE_FILE
    )]
    UnknownKek {
        /// The album's content key file.
        path: PathBuf,
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
        /// Rendition name.
        rendition: String,
        /// The KEK id in the entry.
        kek: KeyId,
    },
    /// A wrapped content key did not unwrap.
    #[error(
        "cannot unwrap the content key for {album} track {track} ({rendition}) in {}: {reason}",
        .path.display()
    )]
    Unwrap {
        /// The album's content key file.
        path: PathBuf,
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
        /// Rendition name.
        rendition: String,
        /// Why.
        reason: String,
    },
    /// Every signing key is revoked or retired.
    #[error("no signing key in {} may sign now (all are revoked or retired); run `encore keys rotate signing --keys {}`", .dir.display(), .dir.display())]
    NoSigner {
        /// The keys directory.
        dir: PathBuf,
    },
    /// A signing key id that the keyring does not list.
    #[error("no signing key {kid} in {}; `encore keys list` shows the keys", .dir.display())]
    UnknownSigningKey {
        /// The kid asked for.
        kid: String,
        /// The keys directory.
        dir: PathBuf,
    },
    /// The database holding the shared key state failed or refused.
    #[error("the key state in the database ({location}): {reason}")]
    Database {
        /// The database, without credentials.
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// The database's key state is wrapped under a KEK this node has no file of.
    #[error(
        "this node has no KEK {kek}: copy {} from a node that has it (docs/KEYS.md, \
         \"How a KEK rotation reaches every node\"); until then it serves with the keys it had",
        .path.display()
    )]
    KekNotHere {
        /// Where the KEK file should be.
        path: PathBuf,
        /// The KEK.
        kek: KeyId,
    },
    /// An album with no content keys.
    #[error("album {album} has no content keys in {}; package it first (`encore ingest`)", .dir.display())]
    NoContentKeys {
        /// The album.
        album: String,
        /// The keys directory.
        dir: PathBuf,
    },
}

impl KeyError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeyError {
        let path = path.to_path_buf();
        move |source| KeyError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, what: &'static str, reason: impl fmt::Display) -> KeyError {
        KeyError::Corrupt {
            path: path.to_path_buf(),
            what,
            reason: reason.to_string(),
        }
    }
}
