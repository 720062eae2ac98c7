//! The packaged store under the data dir: per track and rendition a manifest and the sealed
//! segments, written so that a crash never leaves a half-written segment that would be served.
//!
//! Layout (under `<data>/store/`):
//! ```text
//! <album>/album.json                         AlbumRecord
//! <album>/cover.<ext>                        cover image, if any
//! <album>/<NN>/track.json                    TrackRecord (written last: the re-run check)
//! <album>/<NN>/<rendition>/manifest.json     RenditionManifest
//! <album>/<NN>/<rendition>/<generation>/init.enc, 0001.enc, ...
//! ```
//! A generation folder is filled and synced before the manifest that names it is swapped in,
//! so readers only ever see complete generations. Folders no manifest names are debris of an
//! interrupted run and are removed by [`Store::collect_garbage`].

pub mod cache;
pub mod library;
pub mod manifest;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use manifest::{
    AlbumRecord, MANIFEST_FORMAT, PreviewWindowRecord, RenditionManifest, SegmentRecord,
    TrackRecord,
};

use crate::durable;

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A manifest or record could not be parsed.
    #[error("{path} is not a valid encore record: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A name that would escape the store.
    #[error("refusing unsafe store name {0:?}")]
    BadName(String),
}

/// A sealed segment ready to be stored.
pub struct SealedSegment {
    /// 0 for init, 1.. for media.
    pub index: u32,
    /// Decode time of the first sample.
    pub start: u64,
    /// Duration in timescale units.
    pub duration: u64,
    /// The sealed bytes.
    pub bytes: Vec<u8>,
}

/// The packaged store rooted at `<data>/store`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn check_name(name: &str) -> Result<&str, StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(StoreError::BadName(name.to_string()))
    }
}

/// File name of a stored segment: `init.enc` or a zero-padded index.
pub fn segment_file_name(index: u32) -> String {
    if index == 0 {
        "init.enc".to_string()
    } else {
        format!("{index:04}.enc")
    }
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Store {
    /// The store under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Store {
            root: data_dir.join("store"),
        }
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Folder of an album.
    pub fn album_dir(&self, album: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join(check_name(album)?))
    }

    /// Folder of a track.
    pub fn track_dir(&self, album: &str, track: u32) -> Result<PathBuf, StoreError> {
        Ok(self.album_dir(album)?.join(format!("{track:02}")))
    }

    /// Folder of a rendition.
    pub fn rendition_dir(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Result<PathBuf, StoreError> {
        Ok(self.track_dir(album, track)?.join(check_name(rendition)?))
    }

    /// Path of a stored segment named by a manifest.
    pub fn segment_path(
        &self,
        manifest: &RenditionManifest,
        record: &SegmentRecord,
    ) -> Result<PathBuf, StoreError> {
        Ok(self
            .rendition_dir(&manifest.album, manifest.track, &manifest.rendition)?
            .join(check_name(&manifest.generation)?)
            .join(&record.file))
    }

    /// Writes a rendition: the segments into a new generation folder (each file synced),
    /// then the manifest atomically. `manifest.init`/`segments` are filled in from `sealed`.
    pub fn write_rendition(
        &self,
        mut manifest: RenditionManifest,
        sealed: Vec<SealedSegment>,
    ) -> Result<RenditionManifest, StoreError> {
        let dir = self.rendition_dir(&manifest.album, manifest.track, &manifest.rendition)?;
        let gen_dir = dir.join(check_name(&manifest.generation)?);
        durable::create_dir_all_durable(&gen_dir).map_err(io_err("create", &gen_dir))?;
        let mut records = Vec::with_capacity(sealed.len());
        for seg in sealed {
            let file = segment_file_name(seg.index);
            let path = gen_dir.join(&file);
            durable::write_atomic(&path, &seg.bytes, 0o644).map_err(io_err("write", &path))?;
            records.push(SegmentRecord {
                index: seg.index,
                file,
                start: seg.start,
                duration: seg.duration,
                bytes: seg.bytes.len() as u64,
                sha256: sha256_hex(&seg.bytes),
            });
        }
        let mut records = records.into_iter();
        manifest.init =
            records
                .next()
                .filter(|r| r.index == 0)
                .ok_or_else(|| StoreError::Corrupt {
                    path: gen_dir.clone(),
                    reason: "the first sealed segment must be the init segment".into(),
                })?;
        manifest.segments = records.collect();
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let path = dir.join("manifest.json");
        durable::write_atomic(&path, &json, 0o644).map_err(io_err("write", &path))?;
        Ok(manifest)
    }

    /// Reads a rendition's manifest; `Ok(None)` when the rendition was never packaged.
    pub fn read_manifest(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Result<Option<RenditionManifest>, StoreError> {
        read_json(
            &self
                .rendition_dir(album, track, rendition)?
                .join("manifest.json"),
        )
    }

    /// Writes a track's record (the commit point of a track's packaging).
    pub fn write_track(&self, record: &TrackRecord) -> Result<(), StoreError> {
        write_json(
            &self
                .track_dir(&record.album, record.track)?
                .join("track.json"),
            record,
        )
    }

    /// Reads a track's record.
    pub fn read_track(&self, album: &str, track: u32) -> Result<Option<TrackRecord>, StoreError> {
        read_json(&self.track_dir(album, track)?.join("track.json"))
    }

    /// Writes an album's record.
    pub fn write_album(&self, record: &AlbumRecord) -> Result<(), StoreError> {
        write_json(&self.album_dir(&record.album)?.join("album.json"), record)
    }

    /// Reads an album's record.
    pub fn read_album(&self, album: &str) -> Result<Option<AlbumRecord>, StoreError> {
        read_json(&self.album_dir(album)?.join("album.json"))
    }

    /// Stores the album's cover image as `cover.<ext>`.
    pub fn write_cover(&self, album: &str, ext: &str, bytes: &[u8]) -> Result<String, StoreError> {
        let dir = self.album_dir(album)?;
        durable::create_dir_all_durable(&dir).map_err(io_err("create", &dir))?;
        let name = format!("cover.{}", check_name(ext)?);
        let path = dir.join(&name);
        durable::write_atomic(&path, bytes, 0o644).map_err(io_err("write", &path))?;
        Ok(name)
    }

    /// True when every file the manifest names exists with its recorded size.
    pub fn is_complete(&self, manifest: &RenditionManifest) -> bool {
        std::iter::once(&manifest.init)
            .chain(&manifest.segments)
            .all(|r| {
                self.segment_path(manifest, r)
                    .ok()
                    .and_then(|p| fs::metadata(p).ok())
                    .is_some_and(|m| m.len() == r.bytes)
            })
    }

    /// Removes generation folders of a rendition that neither `keep` names.
    ///
    /// The previous generation is kept so that a player midway through a track keeps
    /// working after a re-package; anything older, or never committed, goes.
    pub fn collect_garbage(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        keep: &[&str],
    ) -> Result<usize, StoreError> {
        let dir = self.rendition_dir(album, track, rendition)?;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(StoreError::Io {
                    action: "list",
                    path: dir,
                    source: e,
                });
            }
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if entry.path().is_dir() && !keep.contains(&name) {
                fs::remove_dir_all(entry.path()).map_err(io_err("remove", &entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        durable::create_dir_all_durable(parent).map_err(io_err("create", parent))?;
    }
    let json = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    durable::write_atomic(path, &json, 0o644).map_err(io_err("write", path))
}
