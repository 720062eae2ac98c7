//! The bucket's publications as an origin reads them: on demand, one album or one rendition
//! at a time.
//!
//! An origin lists `.published/` ([`Remote::list_published`]: album ids and a tag per record,
//! no GET) and serves at once: the catalog's index is that listing. An album's records come
//! into the local store the first time a request needs them ([`BucketRecords`], the
//! library's [`RecordSource`]): its publication record (album and track records, the cover,
//! and each rendition manifest's key and SHA-256) when the album is first asked for, a
//! rendition's manifest when that rendition is, checked against the hash the record gives.
//! So a start costs one listing whatever the catalog, and an origin's disk holds the records
//! of the albums it served, not every album's.
//!
//! A refresh ([`refresh`]) lists again and fetches only records whose tag changed and that
//! this origin holds; a rendition whose manifest changed is fetched again at its next load,
//! since every load compares the local manifest's hash with the record's.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use prometheus_client::metrics::counter::Counter;

use super::library::{RecordSource, RecordSourceError};
use super::publish::{PUBLICATION_FILE, Publication, PublishError, PublishedFile};
use super::remote::{Remote, published_record};
use super::{ExtraRecord, RenditionManifest, Store, StoreError, sha256_hex};

/// Publication records fetched at once by a refresh.
const CONCURRENT_RECORDS: usize = 16;

/// The longest a request waits for a record from the bucket (the bucket client retries within
/// it) before its album or rendition is not served this time.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a refresh found: each published album's record tag, as listed.
pub type Listed = BTreeMap<String, String>;

/// What one [`refresh`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    /// Albums published in the bucket.
    pub published: usize,
    /// Whether the set of published albums differs from the previous listing.
    pub albums_changed: bool,
    /// Albums held here whose publication changed and whose new records were written.
    pub changed: usize,
    /// Albums held here that are no longer published (their local records removed).
    pub withdrawn: usize,
    /// Albums whose new publication could not be used (kept as they were; logged).
    pub failed: usize,
}

impl RefreshReport {
    /// Whether the catalog must be reloaded to show what this refresh found.
    pub fn catalog_changed(&self) -> bool {
        self.albums_changed || self.changed + self.withdrawn > 0
    }
}

/// Lists the bucket's publications and brings the records this origin holds in line with
/// them: an album whose record's tag differs from `known`'s is fetched and, if its record
/// changed, written; albums held here but no longer published lose their records. Albums not
/// held here are only listed (their records come on demand). `known` becomes the listing.
pub async fn refresh(
    store: &Store,
    remote: &Remote,
    known: &mut Listed,
    fetched_records: &Counter,
) -> Result<RefreshReport, PublishError> {
    let listing = remote.list_published().await?;
    let mut report = RefreshReport {
        published: listing.len(),
        albums_changed: !listing.keys().eq(known.keys()),
        ..RefreshReport::default()
    };
    let stale: Vec<String> = listing
        .iter()
        .filter(|(album, tag)| known.get(*album) != Some(*tag) && holds(store, album))
        .map(|(album, _)| album.clone())
        .collect();
    let fetched = fetch_heads(remote.clone(), stale, fetched_records.clone()).await;
    for (album, head) in fetched {
        let outcome = match head {
            Ok(head) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || head.write_if_changed(&store, false))
                    .await
                    .map_err(|e| {
                        PublishError::Store(StoreError::Io {
                            action: "write",
                            path: Default::default(),
                            source: std::io::Error::other(e.to_string()),
                        })
                    })
                    .and_then(|written| written.map_err(PublishError::from))
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(true) => report.changed += 1,
            Ok(false) => {}
            Err(e) => {
                report.failed += 1;
                tracing::error!(album = %album, "publication not taken, previous state kept: {e}");
            }
        }
    }
    // Every album this origin holds was in `known` (the last listing, or what it held at
    // start): those no longer listed are withdrawn, with no scan of the store.
    for album in known.keys().filter(|a| !listing.contains_key(*a)) {
        if holds(store, album) && withdraw(store, album)? {
            report.withdrawn += 1;
        }
    }
    *known = listing;
    Ok(report)
}

/// The albums whose publication record the local store holds, with no tag (so the first
/// refresh compares each with the bucket's): what an origin restarted on its data serves
/// until it has listed the bucket.
pub fn held_listing(store: &Store) -> Listed {
    held_albums(store)
        .into_iter()
        .map(|album| (album, String::new()))
        .collect()
}

/// The publication records of `albums`, fetched 16 at once, each counted in `fetched`.
/// Owned names and handles: borrowed ones would make the future `Send` only for some
/// lifetimes, and the callers spawn it.
async fn fetch_heads(
    remote: Remote,
    albums: Vec<String>,
    fetched: Counter,
) -> Vec<(String, Result<Head, PublishError>)> {
    stream::iter(albums)
        .map(|album| {
            let (remote, fetched) = (remote.clone(), fetched.clone());
            async move {
                fetched.inc();
                let head = fetch_head(&remote, &album).await;
                (album, head)
            }
        })
        .buffer_unordered(CONCURRENT_RECORDS)
        .collect()
        .await
}

/// Whether the local store holds `album`'s publication record (it served the album).
fn holds(store: &Store, album: &str) -> bool {
    store
        .album_dir(album)
        .is_ok_and(|d| d.join(PUBLICATION_FILE).is_file())
}

/// Albums whose publication record the local store holds.
fn held_albums(store: &Store) -> Vec<String> {
    super::library::album_ids(store)
        .unwrap_or_default()
        .into_iter()
        .filter(|album| holds(store, album))
        .collect()
}

/// Removes an album's local records, publication record first (so an album published again
/// with the same record is fetched again, after a restart too); true if it was served.
fn withdraw(store: &Store, album: &str) -> Result<bool, StoreError> {
    let _lock = store.lock()?;
    let dir = store.album_dir(album)?;
    remove_if_present(&dir.join(PUBLICATION_FILE))?;
    remove_if_present(&dir.join("album.json"))
}

fn remove_if_present(path: &std::path::Path) -> Result<bool, StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// An album's publication record fetched and checked, with its cover.
struct Head {
    /// The record's bytes, as the bucket holds them.
    record: Bytes,
    publication: Publication,
    cover: Option<Bytes>,
}

async fn fetch_head(remote: &Remote, album: &str) -> Result<Head, PublishError> {
    let key = published_record(album);
    let corrupt = |reason: String| PublishError::Corrupt {
        key: key.clone(),
        reason,
    };
    let record = remote
        .get(&key)
        .await?
        .ok_or_else(|| corrupt("not published".into()))?;
    let publication: Publication =
        serde_json::from_slice(&record).map_err(|e| corrupt(e.to_string()))?;
    if publication.album.album != album {
        return Err(corrupt(format!("names album {}", publication.album.album)));
    }
    let cover = match (&publication.cover, &publication.album.cover) {
        (Some(file), Some(_)) => Some(fetch_checked(remote, file).await?),
        _ => None,
    };
    Ok(Head {
        record,
        publication,
        cover,
    })
}

impl Head {
    /// Writes the album's records into the local store under its lock (tracks, cover, album
    /// record, and last the publication record that says they are here), unless the local
    /// publication record is already this one (and `again` is false); true if written.
    ///
    /// The copies are replaced atomically but not fsynced: they are copies of the bucket's,
    /// compared with it after a restart (the first refresh reads every held record) and
    /// fetched again when they do not load, so a crash can cost a fetch, never a wrong
    /// answer; fsyncs were most of a cold album's time.
    fn write_if_changed(self, store: &Store, again: bool) -> Result<bool, StoreError> {
        let _lock = store.lock()?;
        let album = &self.publication.album;
        let path = store.album_dir(&album.album)?.join(PUBLICATION_FILE);
        if !again && std::fs::read(&path).is_ok_and(|held| held == self.record) {
            return Ok(false);
        }
        for t in &self.publication.tracks {
            let dir = store.track_dir(&album.album, t.record.track)?;
            put_copy(&dir.join("track.json"), &to_json(&t.record, &dir)?)?;
            match &t.lyrics {
                Some(l) => put_copy(&dir.join("lyrics.json"), &to_json(l, &dir)?)?,
                None => store.remove_lyrics(&album.album, t.record.track)?,
            }
        }
        if let (Some(bytes), Some(name)) = (&self.cover, &album.cover) {
            let ext = name.rsplit_once('.').map_or("bin", |(_, e)| e);
            store.write_cover(&album.album, ext, bytes)?;
        }
        let dir = store.album_dir(&album.album)?;
        put_copy(&dir.join("album.json"), &to_json(album, &dir)?)?;
        put_copy(&path, &self.record)?;
        Ok(true)
    }
}

fn to_json<T: serde::Serialize>(value: &T, dir: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes a local copy of a bucket record (see [`Head::write_if_changed`] for why unsynced).
fn put_copy(path: &std::path::Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |action: &'static str| {
        move |source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create"))?;
    }
    crate::durable::replace_unsynced(path, bytes, 0o644).map_err(io("write"))
}

/// The bytes of a published file, checked against its hash.
async fn fetch_checked(remote: &Remote, file: &PublishedFile) -> Result<Bytes, PublishError> {
    let bytes = remote
        .get(&file.object)
        .await?
        .ok_or_else(|| PublishError::Corrupt {
            key: file.object.clone(),
            reason: "named by the publication but absent".into(),
        })?;
    let actual = sha256_hex(&bytes);
    if actual != file.sha256 {
        return Err(PublishError::Corrupt {
            key: file.object.clone(),
            reason: format!("SHA-256 {actual}, publication says {}", file.sha256),
        });
    }
    Ok(bytes)
}

async fn fetch_manifest(
    remote: &Remote,
    album: &str,
    track: u32,
    rendition: &str,
    file: &PublishedFile,
) -> Result<(RenditionManifest, Bytes), PublishError> {
    let bytes = fetch_checked(remote, file).await?;
    let corrupt = |reason: String| PublishError::Corrupt {
        key: file.object.clone(),
        reason,
    };
    let m: RenditionManifest =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if m.album != album || m.track != track || m.rendition != rendition {
        return Err(corrupt("names another rendition".into()));
    }
    Ok((m, bytes))
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The library's [`RecordSource`] on an origin whose store is published to a bucket, and the
/// album ids the last listing found.
pub struct BucketRecords {
    remote: Remote,
    /// Published album ids, as last listed.
    ids: RwLock<Arc<Vec<Box<str>>>>,
    /// Fetches run on a runtime of their own (one thread): a connection thread asking for a
    /// record blocks on it, and so can a task of any other runtime without starving the one
    /// that would do the fetch.
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    /// Records fetched (`/metrics`), counted per request to the bucket.
    fetched: Counter,
}

impl std::fmt::Debug for BucketRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketRecords")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl BucketRecords {
    /// Records fetched from `remote` on a thread of their own.
    pub fn start(remote: Remote, fetched: Counter) -> std::io::Result<BucketRecords> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("encore-records".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })?;
        Ok(BucketRecords {
            remote,
            ids: RwLock::new(Arc::new(Vec::new())),
            jobs,
            fetched,
        })
    }

    /// The published album ids as last listed.
    pub fn ids(&self) -> Vec<Box<str>> {
        self.ids
            .read()
            .map(|ids| ids.as_ref().clone())
            .unwrap_or_default()
    }

    /// Records a new listing's album ids.
    pub fn set_listed(&self, listed: &Listed) {
        let ids: Vec<Box<str>> = listed.keys().map(|a| Box::from(a.as_str())).collect();
        if let Ok(mut held) = self.ids.write() {
            *held = Arc::new(ids);
        }
    }

    /// The bucket.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Runs `fetch` on the records thread and waits for it.
    fn run<T: Send + 'static>(
        &self,
        fetch: impl Future<Output = Result<T, PublishError>> + Send + 'static,
    ) -> Result<T, RecordSourceError> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::pin(async move {
            let _ = done.send(fetch.await);
        });
        self.jobs
            .send(job)
            .map_err(|_| RecordSourceError::from("the records thread has stopped"))?;
        match result.recv_timeout(FETCH_TIMEOUT) {
            Ok(outcome) => outcome.map_err(RecordSourceError::from),
            Err(_) => Err(format!(
                "no answer from {} within {} s",
                self.remote.url(),
                FETCH_TIMEOUT.as_secs()
            )
            .into()),
        }
    }
}

impl RecordSource for BucketRecords {
    fn ensure_album(
        &self,
        store: &Store,
        album: &str,
        again: bool,
    ) -> Result<(), RecordSourceError> {
        if !again && holds(store, album) {
            return Ok(());
        }
        let remote = self.remote.clone();
        let id = album.to_owned();
        let fetched = self.fetched.clone();
        let head = self.run(async move {
            fetched.inc();
            fetch_head(&remote, &id).await
        })?;
        head.write_if_changed(store, again)?;
        Ok(())
    }

    fn prefetch_albums(&self, store: &Store, albums: &[&str]) {
        let missing: Vec<String> = albums
            .iter()
            .filter(|a| !holds(store, a))
            .map(|a| (*a).to_owned())
            .collect();
        if missing.is_empty() {
            return;
        }
        let (remote, fetched) = (self.remote.clone(), self.fetched.clone());
        let heads = self.run(async move { Ok(fetch_heads(remote, missing, fetched).await) });
        for head in heads
            .into_iter()
            .flatten()
            .filter_map(|(_, head)| head.ok())
        {
            if let Err(e) = head.write_if_changed(store, false) {
                tracing::warn!("album records fetched but not written: {e}");
            }
        }
    }

    fn ensure_rendition(
        &self,
        store: &Store,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Result<(), RecordSourceError> {
        let dir = store.album_dir(album)?;
        let record = match std::fs::read(dir.join(PUBLICATION_FILE)) {
            Ok(bytes) => bytes,
            // Not a published album's copy (nothing to compare against): as without a bucket.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let publication: Publication = serde_json::from_slice(&record)?;
        let Some(file) = publication
            .tracks
            .iter()
            .find(|t| t.record.track == track)
            .and_then(|t| t.manifests.get(rendition))
        else {
            return Ok(());
        };
        let local = store
            .rendition_dir(album, track, rendition)?
            .join("manifest.json");
        if std::fs::read(&local).is_ok_and(|held| sha256_hex(&held) == file.sha256) {
            return Ok(());
        }
        let remote = self.remote.clone();
        let (id, name, file) = (album.to_owned(), rendition.to_owned(), file.clone());
        let fetched = self.fetched.clone();
        let (manifest, bytes) = self.run(async move {
            fetched.inc();
            fetch_manifest(&remote, &id, track, &name, &file).await
        })?;
        let _lock = store.lock()?;
        // The bytes as published, so the next load finds the record's hash.
        put_copy(&local, &bytes)?;
        let mut keep = vec![manifest.generation.as_str()];
        keep.extend(manifest.retiring.iter().map(|r| r.generation.as_str()));
        store.collect_garbage(album, track, rendition, &keep)?;
        Ok(())
    }

    fn ensure_extra(
        &self,
        store: &Store,
        album: &str,
        extra: &ExtraRecord,
    ) -> Result<(), RecordSourceError> {
        let local = store.extra_path(album, &extra.file)?;
        if std::fs::read(&local).is_ok_and(|held| sha256_hex(&held) == extra.sha256) {
            return Ok(());
        }
        let record = std::fs::read(store.album_dir(album)?.join(PUBLICATION_FILE))?;
        let publication: Publication = serde_json::from_slice(&record)?;
        let file = publication
            .extras
            .get(&extra.id)
            .filter(|f| f.sha256 == extra.sha256)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the publication of {album} names no extra {:?} with this hash",
                    extra.id
                )
            })?;
        let remote = self.remote.clone();
        let fetched = self.fetched.clone();
        let sealed = self.run(async move {
            fetched.inc();
            fetch_checked(&remote, &file).await
        })?;
        // Durable like ingest's: an extra can be large, and is checked here only by its hash.
        store.write_extra(album, &extra.id, &sealed)?;
        Ok(())
    }
}
