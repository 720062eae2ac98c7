//! The packaged store under the data dir: per track and rendition a manifest and the sealed
//! segments, written so that a crash never leaves a half-written segment that would be served.
//!
//! Layout (under `<data>/store/`):
//! ```text
//! <album>/album.json                         AlbumRecord
//! <album>/cover.<ext>                        cover image, if any
//! <album>/extras/<id>.enc                    a sealed buyer-only extra (`extras`)
//! <album>/<NN>/track.json                    TrackRecord (written last: the re-run check)
//! <album>/<NN>/<rendition>/manifest.json     RenditionManifest
//! <album>/<NN>/<rendition>/<generation>/init.enc, 0001.enc, ...
//! ```
//! A generation folder is filled and synced before the manifest that names it is swapped in,
//! so readers only ever see complete generations. Folders no manifest names are debris of an
//! interrupted run and are removed by [`Store::collect_garbage`].

pub mod backed;
pub mod cache;
pub mod extras;
pub mod hot;
pub mod library;
pub mod manifest;
pub mod publish;
pub mod readthrough;
pub mod records;
pub mod remote;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use extras::{EXTRA_TRACK, extra_context, extra_slot};
pub use manifest::{
    AlbumRecord, ExtraRecord, MANIFEST_FORMAT, PreviewWindowRecord, RenditionManifest,
    RetiringGeneration, SegmentRecord, TrackRecord,
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

/// Default time a replaced generation stays served: the longest play token (7 days) plus
/// clock leeway, so every license issued before the switch has expired.
pub const DEFAULT_RETIRE_GRACE_SECONDS: u64 = 7 * 86_400 + 30;

/// Name of the store's lock file, flock'd around every manifest change.
const LOCK_FILE: &str = ".lock";

/// The packaged store rooted at `<data>/store`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    retire_grace_seconds: u64,
}

/// Holds the store's cross-process lock while alive.
pub struct StoreLock(fs::File);

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn check_name(name: &str) -> Result<&str, StoreError> {
    check_bytes(name, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
    })
}

/// `name` when it is 1 to 64 bytes, each one `allowed`: the one length rule for every name the
/// store puts in a path.
fn check_bytes(name: &str, allowed: impl Fn(u8) -> bool) -> Result<&str, StoreError> {
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(allowed) {
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

/// A fresh, random generation name: new packaging or a re-seal, new segment URLs.
pub fn new_generation() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a generation id: {e}"))?;
    Ok(format!("g{}", hex::encode(bytes)))
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
            retire_grace_seconds: DEFAULT_RETIRE_GRACE_SECONDS,
        }
    }

    /// The same store, serving replaced generations for `seconds` after the switch.
    pub fn with_retire_grace(mut self, seconds: u64) -> Self {
        self.retire_grace_seconds = seconds;
        self
    }

    /// How long a replaced generation stays served, seconds.
    pub fn retire_grace_seconds(&self) -> u64 {
        self.retire_grace_seconds
    }

    /// Takes the store's exclusive lock (blocking): every read-modify-write of a manifest
    /// holds it, so a re-package, a re-seal and a clean-up never lose each other's changes.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        durable::create_dir_all_durable(&self.root).map_err(io_err("create", &self.root))?;
        let path = self.root.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        file.lock().map_err(io_err("lock", &path))?;
        Ok(StoreLock(file))
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

    /// Path of a stored segment named by a manifest's current generation.
    pub fn segment_path(
        &self,
        manifest: &RenditionManifest,
        record: &SegmentRecord,
    ) -> Result<PathBuf, StoreError> {
        self.segment_path_in(manifest, &manifest.generation, record)
    }

    /// Path of a stored segment of `generation` (current or retiring) of a rendition.
    pub fn segment_path_in(
        &self,
        manifest: &RenditionManifest,
        generation: &str,
        record: &SegmentRecord,
    ) -> Result<PathBuf, StoreError> {
        Ok(self
            .generation_dir(
                &manifest.album,
                manifest.track,
                &manifest.rendition,
                generation,
            )?
            .join(check_file(&record.file)?))
    }

    /// Folder of one generation of a rendition.
    pub fn generation_dir(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        generation: &str,
    ) -> Result<PathBuf, StoreError> {
        Ok(self
            .rendition_dir(album, track, rendition)?
            .join(check_name(generation)?))
    }

    /// Writes a rendition: the segments into a new generation folder (each file synced),
    /// then, under the store lock, the manifest atomically, with the generation it replaces
    /// kept as retiring for [`retire_grace_seconds`](Self::retire_grace_seconds).
    /// `manifest.init`/`segments` are filled in from `sealed`.
    pub fn write_rendition(
        &self,
        manifest: RenditionManifest,
        sealed: Vec<SealedSegment>,
    ) -> Result<RenditionManifest, StoreError> {
        let manifest = self.write_generation(manifest, sealed)?;
        self.commit_rendition(manifest)
    }

    /// Writes the segments of `manifest`'s generation into its folder (each file synced) and
    /// fills in `init`/`segments` from `sealed`. Nothing serves them until a manifest names
    /// the generation.
    pub fn write_generation(
        &self,
        mut manifest: RenditionManifest,
        sealed: Vec<SealedSegment>,
    ) -> Result<RenditionManifest, StoreError> {
        let gen_dir = self.create_generation(
            &manifest.album,
            manifest.track,
            &manifest.rendition,
            &manifest.generation,
        )?;
        let mut records = Vec::with_capacity(sealed.len());
        for seg in sealed {
            records.push(self.write_segment_in(&gen_dir, &seg)?);
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
        Ok(manifest)
    }

    /// Creates (durably) the folder of a new generation and returns it. Nothing serves what
    /// is written there until a manifest names the generation; a generation no manifest
    /// names is debris, removed by the next packaging of the rendition.
    pub fn create_generation(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        generation: &str,
    ) -> Result<PathBuf, StoreError> {
        let gen_dir = self.generation_dir(album, track, rendition, generation)?;
        durable::create_dir_all_durable(&gen_dir).map_err(io_err("create", &gen_dir))?;
        Ok(gen_dir)
    }

    /// Writes one sealed segment into a generation folder made by
    /// [`create_generation`](Self::create_generation) (file synced) and returns its record.
    pub fn write_segment_in(
        &self,
        gen_dir: &Path,
        seg: &SealedSegment,
    ) -> Result<SegmentRecord, StoreError> {
        let file = segment_file_name(seg.index);
        let path = gen_dir.join(&file);
        durable::write_atomic(&path, &seg.bytes, 0o644).map_err(io_err("write", &path))?;
        Ok(SegmentRecord {
            index: seg.index,
            file,
            start: seg.start,
            duration: seg.duration,
            bytes: seg.bytes.len() as u64,
            sha256: sha256_hex(&seg.bytes),
        })
    }

    /// Makes `manifest`, whose segments are all written, the rendition's current one: under
    /// the store lock, atomically, with the generation it replaces kept as retiring.
    pub fn commit_rendition(
        &self,
        manifest: RenditionManifest,
    ) -> Result<RenditionManifest, StoreError> {
        let _lock = self.lock()?;
        let previous = self.read_manifest(&manifest.album, manifest.track, &manifest.rendition)?;
        self.commit_manifest_locked(manifest, previous.as_ref(), now_unix())
    }

    /// Makes `manifest` the rendition's current one (the caller holds [`lock`](Self::lock)
    /// and passes the manifest it replaces, read under that lock). The replaced generation
    /// joins the retiring ones until `now + retire grace`; retiring generations past their
    /// time and folders no manifest names (debris of interrupted runs) are deleted after the
    /// new manifest is durable.
    pub fn commit_manifest_locked(
        &self,
        mut manifest: RenditionManifest,
        previous: Option<&RenditionManifest>,
        now: u64,
    ) -> Result<RenditionManifest, StoreError> {
        let until = now.saturating_add(self.retire_grace_seconds);
        manifest.retiring.clear();
        if let Some(prev) = previous {
            manifest.retiring.extend(
                prev.retiring
                    .iter()
                    .filter(|r| r.serve_until_unix > now && r.generation != manifest.generation)
                    .cloned(),
            );
            if prev.generation != manifest.generation {
                manifest.retiring.push(RetiringGeneration::of(prev, until));
            }
        }
        self.write_manifest_locked(&manifest)?;
        self.collect_garbage_locked(&manifest)?;
        Ok(manifest)
    }

    /// Drops the retiring generations of a rendition whose time is up at `now`: the manifest
    /// first, then their folders. Returns the generations removed.
    pub fn expire_retiring(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        let _lock = self.lock()?;
        let Some(mut manifest) = self.read_manifest(album, track, rendition)? else {
            return Ok(Vec::new());
        };
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut manifest.retiring)
            .into_iter()
            .partition(|r| r.serve_until_unix <= now);
        manifest.retiring = kept;
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        self.write_manifest_locked(&manifest)?;
        self.collect_garbage_locked(&manifest)?;
        Ok(expired.into_iter().map(|r| r.generation).collect())
    }

    /// Writes `manifest` exactly as given (a copy of one published elsewhere: its retiring
    /// generations already decided) and deletes local generation folders it does not name.
    /// The caller holds [`lock`](Self::lock).
    pub fn mirror_manifest_locked(&self, manifest: &RenditionManifest) -> Result<(), StoreError> {
        // On an origin the rendition's folder may not exist yet: its segments come later.
        let dir = self.rendition_dir(&manifest.album, manifest.track, &manifest.rendition)?;
        durable::create_dir_all_durable(&dir).map_err(io_err("create", &dir))?;
        self.write_manifest_locked(manifest)?;
        self.collect_garbage_locked(manifest).map(|_| ())
    }

    fn write_manifest_locked(&self, manifest: &RenditionManifest) -> Result<(), StoreError> {
        let dir = self.rendition_dir(&manifest.album, manifest.track, &manifest.rendition)?;
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Corrupt {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let path = dir.join("manifest.json");
        durable::write_atomic(&path, &json, 0o644).map_err(io_err("write", &path))
    }

    fn collect_garbage_locked(&self, manifest: &RenditionManifest) -> Result<usize, StoreError> {
        let mut keep: Vec<&str> = vec![manifest.generation.as_str()];
        keep.extend(manifest.retiring.iter().map(|r| r.generation.as_str()));
        self.collect_garbage(&manifest.album, manifest.track, &manifest.rendition, &keep)
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

    /// Writes a track's lyrics (`lyrics.json` beside `track.json`).
    pub fn write_lyrics(
        &self,
        album: &str,
        track: u32,
        lyrics: &crate::media::lyrics::Lyrics,
    ) -> Result<(), StoreError> {
        write_json(&self.lyrics_path(album, track)?, lyrics)
    }

    /// Reads a track's lyrics, if it has some.
    pub fn read_lyrics(
        &self,
        album: &str,
        track: u32,
    ) -> Result<Option<crate::media::lyrics::Lyrics>, StoreError> {
        read_json(&self.lyrics_path(album, track)?)
    }

    /// Removes a track's lyrics (its `.lrc` is gone); none there is no error.
    pub fn remove_lyrics(&self, album: &str, track: u32) -> Result<(), StoreError> {
        let path = self.lyrics_path(album, track)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// Path of a track's `lyrics.json`.
    pub fn lyrics_path(&self, album: &str, track: u32) -> Result<PathBuf, StoreError> {
        Ok(self.track_dir(album, track)?.join("lyrics.json"))
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

    /// Removes generation folders of a rendition that `keep` does not name (the current and
    /// retiring generations; anything else was never committed or has expired).
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

/// A segment file name as the store writes them (`init.enc`, `0001.enc`): nothing that could
/// leave the generation folder.
fn check_file(name: &str) -> Result<&str, StoreError> {
    if name.starts_with('.') {
        return Err(StoreError::BadName(name.to_string()));
    }
    check_bytes(name, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
