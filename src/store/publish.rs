//! Publication of packaged albums to the bucket, and their mirror on an origin.
//!
//! `encore ingest` packages an album locally, then [`publish_album`] copies it out in an order
//! that lets an origin never see half an album: first every segment of every generation the
//! manifests name (immutable objects: a present one with the right SHA-256 is skipped, never
//! rewritten), then each manifest under a name made of its own SHA-256, then the cover and the
//! sealed extras, and last `.published/<album>.json`, which names the manifests by hash. One PUT replaces the
//! publication record whole, so a reader sees the old album or the new one. An unchanged
//! album gives the same bytes, and nothing is written.
//!
//! An origin reads only publication records ([`super::records`]): objects no record names
//! (generations uploaded by an ingest that has not published yet) are invisible.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::extras::EXTRAS_FOLDER;
use super::remote::{Remote, RemoteError};
use super::{
    AlbumRecord, MANIFEST_FORMAT, RenditionManifest, SegmentRecord, Store, StoreError, TrackRecord,
    sha256_hex,
};

/// Name of an album's publication record in an origin's local store (in the bucket it is
/// [`super::remote::published_record`]).
pub const PUBLICATION_FILE: &str = "publication.json";

/// Segment uploads and downloads in flight at once for one album.
const CONCURRENT_OBJECTS: usize = 8;

/// Why an album could not be published or mirrored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bucket failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The album has no complete local packaging to publish.
    #[error("album {0} is not packaged in the local store")]
    NotPackaged(String),
    /// A local file to publish does not match its record (never published).
    #[error("{what} does not match its record: {reason}; not published")]
    LocalMismatch {
        /// The file.
        what: String,
        /// How.
        reason: String,
    },
    /// An object in the bucket is not what its publication says (never used).
    #[error("s3 object {key} is not what its publication names: {reason}")]
    Corrupt {
        /// The object's key under the prefix.
        key: String,
        /// How.
        reason: String,
    },
}

/// A file published under a name made of its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedFile {
    /// Key under the prefix.
    pub object: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// One track as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedTrack {
    /// The track's record.
    pub record: TrackRecord,
    /// Rendition name → its manifest object.
    pub manifests: BTreeMap<String, PublishedFile>,
    /// The track's lyrics (`lyrics.json`), carried in the record: a few kilobytes, and an
    /// origin needs them with the track's record anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyrics: Option<crate::media::lyrics::Lyrics>,
}

/// An album's publication record: the album as an origin serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    /// [`MANIFEST_FORMAT`] at the time of writing.
    pub format: u32,
    /// The album's record.
    pub album: AlbumRecord,
    /// The cover object, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<PublishedFile>,
    /// Extra id → its sealed object (`super::extras`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, PublishedFile>,
    /// The tracks, in order.
    pub tracks: Vec<PublishedTrack>,
}

/// What one [`publish_album`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// Objects written (segments, manifests, cover, publication record).
    pub objects_put: usize,
    /// Objects found present with the right SHA-256 and left as they were.
    pub objects_present: usize,
    /// Whether a new publication record was written.
    pub published: bool,
}

fn rendition_prefix(album: &str, track: u32, rendition: &str) -> String {
    format!("{album}/{track:02}/{rendition}")
}

/// Publishes the locally packaged `album` to `remote` (see the module doc for the order).
pub async fn publish_album(
    store: &Store,
    remote: &Remote,
    album: &str,
) -> Result<PublishReport, PublishError> {
    let mut report = PublishReport::default();
    let record = store
        .read_album(album)?
        .ok_or_else(|| PublishError::NotPackaged(album.to_owned()))?;
    let mut tracks = Vec::new();
    for &n in &record.tracks {
        let track = store
            .read_track(album, n)?
            .ok_or_else(|| PublishError::NotPackaged(album.to_owned()))?;
        let mut manifests = BTreeMap::new();
        for name in &track.renditions {
            let Some(manifest) = store.read_manifest(album, n, name)? else {
                return Err(PublishError::NotPackaged(album.to_owned()));
            };
            let manifest = publish_generations(store, remote, manifest, &mut report).await?;
            let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
                path: store.rendition_dir(album, n, name).unwrap_or_default(),
                reason: e.to_string(),
            })?;
            let sha256 = sha256_hex(&json);
            let object = format!(
                "{}/manifest-{sha256}.json",
                rendition_prefix(album, n, name)
            );
            ensure(remote, &object, Bytes::from(json), &sha256, &mut report).await?;
            manifests.insert(name.clone(), PublishedFile { object, sha256 });
        }
        tracks.push(PublishedTrack {
            lyrics: store.read_lyrics(album, n)?,
            record: track,
            manifests,
        });
    }
    let cover = match &record.cover {
        None => None,
        Some(name) => {
            let path = store.album_dir(album)?.join(name);
            let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            let sha256 = sha256_hex(&bytes);
            let ext = name.rsplit_once('.').map_or("bin", |(_, e)| e);
            let object = format!("{album}/cover-{sha256}.{ext}");
            ensure(remote, &object, Bytes::from(bytes), &sha256, &mut report).await?;
            Some(PublishedFile { object, sha256 })
        }
    };
    let extras = publish_extras(store, remote, &record, &mut report).await?;
    let publication = Publication {
        format: MANIFEST_FORMAT,
        album: record,
        cover,
        extras,
        tracks,
    };
    let json = serde_json::to_vec_pretty(&publication).map_err(|e| StoreError::Corrupt {
        path: store.album_dir(album).unwrap_or_default(),
        reason: e.to_string(),
    })?;
    let key = super::remote::published_record(album);
    if remote.get(&key).await?.as_deref() == Some(&json[..]) {
        report.objects_present += 1;
    } else {
        let sha256 = sha256_hex(&json);
        remote.put(&key, Bytes::from(json), &sha256).await?;
        report.objects_put += 1;
        report.published = true;
    }
    Ok(report)
}

/// Uploads the album's sealed extras the bucket lacks (`<album>/extras/<id>-<sha256>.enc`,
/// immutable like segments), each checked against its record first; returns id → object.
async fn publish_extras(
    store: &Store,
    remote: &Remote,
    record: &AlbumRecord,
    report: &mut PublishReport,
) -> Result<BTreeMap<String, PublishedFile>, PublishError> {
    let mut published = BTreeMap::new();
    for e in &record.extras {
        let path = store.extra_path(&record.album, &e.file)?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|source| StoreError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
        let sha256 = sha256_hex(&bytes);
        if sha256 != e.sha256 {
            return Err(PublishError::LocalMismatch {
                what: path.display().to_string(),
                reason: format!("SHA-256 {sha256}, album record says {}", e.sha256),
            });
        }
        let object = format!("{}/{EXTRAS_FOLDER}/{}-{sha256}.enc", record.album, e.id);
        ensure(remote, &object, Bytes::from(bytes), &sha256, report).await?;
        published.insert(e.id.clone(), PublishedFile { object, sha256 });
    }
    Ok(published)
}

/// Uploads every segment of the manifest's generations that the bucket lacks. A retiring
/// generation whose local files are gone and that the bucket does not hold either is left
/// out of the manifest published (nothing could serve it).
async fn publish_generations(
    store: &Store,
    remote: &Remote,
    mut manifest: RenditionManifest,
    report: &mut PublishReport,
) -> Result<RenditionManifest, PublishError> {
    let current = manifest.generation.clone();
    upload_generation(store, remote, &manifest, &current, true, report).await?;
    let mut kept = Vec::new();
    for old in std::mem::take(&mut manifest.retiring) {
        let mut view = manifest.clone();
        view.init = old.init.clone();
        view.segments = old.segments.clone();
        if upload_generation(store, remote, &view, &old.generation, false, report).await? {
            kept.push(old);
        } else {
            tracing::warn!(
                album = %manifest.album,
                track = manifest.track,
                rendition = %manifest.rendition,
                generation = %old.generation,
                "retiring generation is neither local nor in the bucket; not published"
            );
        }
    }
    manifest.retiring = kept;
    Ok(manifest)
}

/// Uploads the segments of one generation (`view`'s init and segments); false when a
/// segment is missing both locally and in the bucket and `required` is false.
async fn upload_generation(
    store: &Store,
    remote: &Remote,
    view: &RenditionManifest,
    generation: &str,
    required: bool,
    report: &mut PublishReport,
) -> Result<bool, PublishError> {
    let prefix = format!(
        "{}/{generation}",
        rendition_prefix(&view.album, view.track, &view.rendition)
    );
    let records: Vec<&SegmentRecord> = std::iter::once(&view.init).chain(&view.segments).collect();
    let outcomes: Vec<Upload> = stream::iter(records)
        .map(|record| {
            let key = format!("{prefix}/{}", record.file);
            let path = store.segment_path_in(view, generation, record);
            async move { upload_segment(remote, key, path?, record, required).await }
        })
        .buffer_unordered(CONCURRENT_OBJECTS)
        .try_collect()
        .await?;
    let mut complete = true;
    for outcome in outcomes {
        match outcome {
            Upload::Put => report.objects_put += 1,
            Upload::Present => report.objects_present += 1,
            Upload::Unavailable => complete = false,
        }
    }
    Ok(complete)
}

enum Upload {
    Put,
    Present,
    Unavailable,
}

async fn upload_segment(
    remote: &Remote,
    key: String,
    path: std::path::PathBuf,
    record: &SegmentRecord,
    required: bool,
) -> Result<Upload, PublishError> {
    if let Some(present) = remote.head(&key).await?
        && present.size == record.bytes
        && present.sha256.as_deref() == Some(record.sha256.as_str())
    {
        return Ok(Upload::Present);
    }
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Upload::Unavailable);
        }
        Err(source) => {
            return Err(StoreError::Io {
                action: "read",
                path,
                source,
            }
            .into());
        }
    };
    let actual = sha256_hex(&bytes);
    if actual != record.sha256 {
        return Err(PublishError::LocalMismatch {
            what: path.display().to_string(),
            reason: format!("SHA-256 {actual}, manifest says {}", record.sha256),
        });
    }
    remote.put(&key, Bytes::from(bytes), &record.sha256).await?;
    Ok(Upload::Put)
}

/// Writes `bytes` at `key` unless the object there already has SHA-256 `sha256`.
async fn ensure(
    remote: &Remote,
    key: &str,
    bytes: Bytes,
    sha256: &str,
    report: &mut PublishReport,
) -> Result<(), PublishError> {
    match remote.head(key).await? {
        Some(p) if p.size == bytes.len() as u64 && p.sha256.as_deref() == Some(sha256) => {
            report.objects_present += 1;
        }
        _ => {
            remote.put(key, bytes, sha256).await?;
            report.objects_put += 1;
        }
    }
    Ok(())
}
