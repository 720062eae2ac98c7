//! The packaged library as the server sees it: which albums the store holds (their ids, read
//! at start), and what requests touch, loaded from the store on demand into bounded caches:
//! album records with their tracks' records, and rendition manifests with their segment
//! lookups. An origin's memory so follows its traffic, not the catalog's size, and a start
//! reads one folder listing, however many albums there are. After an ingest, a re-seal or a
//! new publication the server swaps in a new index, whose caches start empty: nothing loaded
//! from the old files outlives the swap.

pub mod served;

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use moka::sync::Cache;

use super::hot::HotSlots;

pub use self::served::{LoadedRendition, ServedSegment};
use super::{AlbumRecord, RenditionManifest, Store, StoreError, TrackRecord};

/// The immutable URL of a stored segment: a new generation (re-seal, re-transcode) is a new
/// URL, so an edge never serves stale bytes under an old name.
pub fn segment_url(
    album: &str,
    track: u32,
    rendition: &str,
    generation: &str,
    file: &str,
) -> String {
    format!("/v1/albums/{album}/tracks/{track}/{rendition}/{generation}/{file}")
}

/// The path every segment URL starts with.
const ALBUMS_PREFIX: &str = "/v1/albums/";

/// How much of the library one index keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBounds {
    /// Estimated bytes of album records and loaded renditions together: a quarter for the
    /// albums, the rest for renditions.
    pub bytes: u64,
}

impl Default for CacheBounds {
    fn default() -> Self {
        CacheBounds {
            bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the library knows of one album without its manifests: its record and its tracks'.
#[derive(Debug, Clone)]
pub struct AlbumHead {
    /// What ingest recorded for the album.
    pub record: AlbumRecord,
    /// Track number → what ingest recorded for the track.
    pub tracks: BTreeMap<u32, TrackRecord>,
}

impl AlbumHead {
    /// The rendition names of track `n`, sorted.
    pub fn rendition_names(&self, n: u32) -> Option<Vec<&str>> {
        let mut names: Vec<&str> = self
            .tracks
            .get(&n)?
            .renditions
            .iter()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        Some(names)
    }

    /// Estimated bytes held, for the cache's bound.
    fn weight(&self) -> u32 {
        let r = &self.record;
        let record = std::mem::size_of::<AlbumRecord>()
            + r.album.len()
            + r.title.len()
            + r.artist.as_ref().map_or(0, String::len)
            + r.cover.as_ref().map_or(0, String::len)
            + 64
            + r.tracks.len() * 4;
        let tracks: usize = self
            .tracks
            .values()
            .map(|t| {
                std::mem::size_of::<TrackRecord>()
                    + 64
                    + t.album.len()
                    + t.source_file.len()
                    + t.fingerprint.len()
                    + t.title.len()
                    + t.artist.as_ref().map_or(0, String::len)
                    + t.renditions.iter().map(|n| 24 + n.len()).sum::<usize>()
            })
            .sum();
        u32::try_from(record + tracks + 128).unwrap_or(u32::MAX)
    }
}

/// Every packaged album, by id, with what requests touch loaded on demand.
pub struct LibraryIndex {
    store: Store,
    /// Every album folder's id, sorted. A folder may not (yet, or any more) hold an album:
    /// [`LibraryIndex::album`] says.
    ids: Vec<Box<str>>,
    /// Album id → its head; only ids in `ids` are ever loaded.
    heads: Cache<Box<str>, Arc<AlbumHead>, foldhash::fast::RandomState>,
    /// `<album>/tracks/<n>/<rendition>` (the part of a segment URL that names the rendition)
    /// → the rendition; only renditions an album's head lists are ever loaded. Keys are
    /// inserted after those checks only, so a fast hash needs no flood resistance.
    renditions: Cache<Box<str>, Arc<LoadedRendition>, foldhash::fast::RandomState>,
    /// The renditions moka answered last, consulted before it on the segment path (moka's
    /// read bookkeeping costs more than the rest of the lookup): `super::hot`, emptied of
    /// whatever moka drops, so it holds nothing beyond moka's bound.
    front: Arc<HotSlots<str, Arc<LoadedRendition>>>,
    /// Where records the local store lacks (or holds an old copy of) come from: the bucket,
    /// on an origin whose store is published there; `None` when the local store is the truth.
    source: Option<Arc<dyn RecordSource>>,
}

/// Where an album's records come from on an origin that does not package them itself: asked
/// before each load (cold ones only: what the caches hold is not asked again), it makes the
/// local store's copy present and current, so every load then reads local files as without
/// it. Called from connection threads: an implementation blocks while it fetches.
pub trait RecordSource: Send + Sync + std::fmt::Debug {
    /// Makes the album's record and its tracks' records present locally; `again`: fetched
    /// even if present (the local copy did not load).
    fn ensure_album(
        &self,
        store: &Store,
        album: &str,
        again: bool,
    ) -> Result<(), RecordSourceError>;
    /// Makes the local manifest of a rendition the album's record names the current one.
    fn ensure_rendition(
        &self,
        store: &Store,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Result<(), RecordSourceError>;
    /// Makes the records of `albums` present locally, as many at once as the source allows;
    /// failures are left to each album's own load (which asks again and logs).
    fn prefetch_albums(&self, store: &Store, albums: &[&str]) {
        for album in albums {
            let _ = self.ensure_album(store, album, false);
        }
    }
    /// Makes the local copy of a sealed extra the one the album's record names.
    fn ensure_extra(
        &self,
        store: &Store,
        album: &str,
        extra: &crate::store::ExtraRecord,
    ) -> Result<(), RecordSourceError>;
}

/// Why a [`RecordSource`] could not provide a record (the load then fails: logged, not served).
pub type RecordSourceError = Box<dyn std::error::Error + Send + Sync>;

impl std::fmt::Debug for LibraryIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibraryIndex")
            .field("store", &self.store)
            .field("albums", &self.ids.len())
            .finish_non_exhaustive()
    }
}

impl LibraryIndex {
    /// The index of `store` with the default cache bounds.
    pub fn load(store: &Store) -> Result<LibraryIndex, StoreError> {
        LibraryIndex::load_with(store, CacheBounds::default())
    }

    /// The index of `store`: its album ids (one folder listing; nothing else is read now).
    pub fn load_with(store: &Store, bounds: CacheBounds) -> Result<LibraryIndex, StoreError> {
        let mut index = LibraryIndex::empty(store, bounds);
        index.ids = album_ids(store)?
            .into_iter()
            .map(String::into_boxed_str)
            .collect();
        index.ids.sort_unstable();
        Ok(index)
    }

    /// An index with no albums (a store that cannot be read yet).
    pub fn empty(store: &Store, bounds: CacheBounds) -> LibraryIndex {
        let albums_bytes = (bounds.bytes / 4).max(1);
        let renditions_bytes = bounds.bytes.saturating_sub(albums_bytes).max(1);
        let front = Arc::new(HotSlots::new());
        let listener_front = Arc::clone(&front);
        LibraryIndex {
            front,
            store: store.clone(),
            ids: Vec::new(),
            source: None,
            heads: Cache::builder()
                .max_capacity(albums_bytes)
                .weigher(|_, head: &Arc<AlbumHead>| head.weight())
                .build_with_hasher(foldhash::fast::RandomState::default()),
            renditions: Cache::builder()
                .max_capacity(renditions_bytes)
                .weigher(|_, r: &Arc<LoadedRendition>| r.weight())
                .eviction_listener(move |key: Arc<Box<str>>, _, _| listener_front.forget(&**key))
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// The index of albums `ids` (sorted here), whose records `source` provides on demand:
    /// an origin reading a bucket's publications, which lists the albums without fetching any.
    pub fn with_source(
        store: &Store,
        bounds: CacheBounds,
        mut ids: Vec<Box<str>>,
        source: Arc<dyn RecordSource>,
    ) -> LibraryIndex {
        let mut index = LibraryIndex::empty(store, bounds);
        ids.sort_unstable();
        ids.dedup();
        index.ids = ids;
        index.source = Some(source);
        index
    }

    /// Every album folder's id, sorted (a folder may hold no album: see [`Self::album`]).
    pub fn ids(&self) -> &[Box<str>] {
        &self.ids
    }

    /// The album `id`, loaded on first use, or `None` if the store has no such album (or it
    /// cannot be read: logged).
    pub fn album(&self, id: &str) -> Option<Arc<AlbumHead>> {
        if let Some(head) = self.heads.get(id) {
            return Some(head);
        }
        if self.ids.binary_search_by(|k| (**k).cmp(id)).is_err() {
            return None;
        }
        self.heads
            .try_get_with(Box::from(id), || match self.ensure_album(id) {
                Ok(Some(head)) => Ok(Arc::new(head)),
                Ok(None) => Err(()),
                Err(e) => {
                    tracing::warn!(album = %id, "album not served, its records do not load: {e}");
                    Err(())
                }
            })
            .ok()
    }

    /// Up to `limit` albums in id order, starting after `after`; and whether ids remain.
    pub fn albums_after(&self, after: Option<&str>, limit: usize) -> (Vec<Arc<AlbumHead>>, bool) {
        let start = after.map_or(0, |a| self.ids.partition_point(|id| **id <= *a));
        if let Some(source) = &self.source {
            // The page's albums not in memory, fetched together rather than one after another.
            let cold: Vec<&str> = self.ids[start..]
                .iter()
                .take(limit)
                .map(|id| &**id)
                .filter(|id| !self.heads.contains_key(*id))
                .collect();
            if cold.len() > 1 {
                source.prefetch_albums(&self.store, &cold);
            }
        }
        let mut page = Vec::new();
        let mut ids = self.ids[start..].iter();
        for id in ids.by_ref() {
            if let Some(head) = self.album(id) {
                page.push(head);
                if page.len() == limit {
                    break;
                }
            }
        }
        (page, ids.next().is_some())
    }

    /// A rendition loaded for serving, or `None` if the album's records do not list it (or
    /// its manifest cannot be read: logged).
    pub fn rendition(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Option<Arc<LoadedRendition>> {
        let key = format!("{album}/tracks/{track}/{rendition}");
        self.cached_or_load(&key, album, track, rendition)
    }

    /// A rendition's manifest.
    pub fn manifest(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Option<Arc<RenditionManifest>> {
        self.rendition(album, track, rendition)
            .map(|r| Arc::clone(&r.manifest))
    }

    /// The manifests of every rendition of a track that loads, by rendition name; `None` when
    /// the album has no such track.
    pub fn track_manifests(&self, album: &str, track: u32) -> Option<Vec<Arc<RenditionManifest>>> {
        let head = self.album(album)?;
        let names = head.rendition_names(track)?;
        Some(
            names
                .into_iter()
                .filter_map(|name| self.manifest(album, track, name))
                .collect(),
        )
    }

    /// The segment at `url_path` (a URL from a manifest) if the library serves it at `now`:
    /// the rendition's current generation, or a retiring one still in its serving time.
    /// `now` (unix seconds) is asked only for a retiring generation. A rendition not in
    /// memory is loaded from the store first (blocking file reads: one manifest).
    pub fn served_segment(
        &self,
        url_path: &str,
        now: impl FnOnce() -> u64,
    ) -> Option<ServedSegment> {
        let url = SegmentUrl::parse(url_path)?;
        let key = url.rendition_key;
        let loaded = match self.front.get(key) {
            Some(hit) => {
                // moka hears of one read in a few, so its policy keeps seeing this rendition
                // in use; one it no longer holds leaves the table.
                if hit.touch && self.renditions.get(key).is_none() {
                    self.front.forget(key);
                }
                hit.value
            }
            None => {
                let track = served::parse_track(url.track)?;
                let loaded = self.cached_or_load(key, url.album, track, url.rendition)?;
                self.front.put(Arc::from(key), Arc::clone(&loaded));
                loaded
            }
        };
        loaded.find(url.generation, url.file, now).cloned()
    }

    /// Whether `generation` of the rendition is still served (current or retiring).
    pub fn serves_generation(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        generation: &str,
    ) -> bool {
        self.rendition(album, track, rendition)
            .is_some_and(|r| r.serves_generation(generation))
    }

    /// Makes the local copy of an extra of `album` (as its head lists it) present and current
    /// where a record source provides the records; nothing to do otherwise. Blocks while it
    /// fetches.
    pub fn ensure_extra(
        &self,
        album: &str,
        extra: &crate::store::ExtraRecord,
    ) -> Result<(), RecordSourceError> {
        match &self.source {
            Some(source) => source.ensure_extra(&self.store, album, extra),
            None => Ok(()),
        }
    }

    /// Albums and renditions in memory now, and their estimated bytes.
    pub fn cached(&self) -> CachedCounts {
        self.heads.run_pending_tasks();
        self.renditions.run_pending_tasks();
        CachedCounts {
            albums: self.heads.entry_count(),
            renditions: self.renditions.entry_count(),
            bytes: self.heads.weighted_size() + self.renditions.weighted_size(),
        }
    }

    /// The album's head from the local store, once the record source (if any) has made it
    /// present there.
    fn ensure_album(&self, id: &str) -> Result<Option<AlbumHead>, RecordSourceError> {
        let Some(source) = &self.source else {
            return Ok(load_head(&self.store, id)?);
        };
        source.ensure_album(&self.store, id, false)?;
        match load_head(&self.store, id) {
            Ok(head) => Ok(head),
            // A copy of the source's that does not load (e.g. cut short by a crash): once more.
            Err(e) => {
                tracing::warn!(album = %id, "album records do not load, fetching them again: {e}");
                source.ensure_album(&self.store, id, true)?;
                Ok(load_head(&self.store, id)?)
            }
        }
    }

    /// The rendition under `key` (`{album}/tracks/{track}/{rendition}`) from moka, else loaded.
    fn cached_or_load(
        &self,
        key: &str,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Option<Arc<LoadedRendition>> {
        self.renditions
            .get(key)
            .or_else(|| self.load_rendition(key.into(), album, track, rendition))
    }

    fn load_rendition(
        &self,
        key: Box<str>,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Option<Arc<LoadedRendition>> {
        // Only what the album's records list is loaded, so a request naming anything else
        // costs no file read and takes no room in the cache.
        let head = self.album(album)?;
        if !head
            .tracks
            .get(&track)?
            .renditions
            .iter()
            .any(|r| r == rendition)
        {
            return None;
        }
        self.renditions
            .try_get_with(key, || {
                if let Some(source) = &self.source
                    && let Err(e) = source.ensure_rendition(&self.store, album, track, rendition)
                {
                    tracing::warn!(
                        album = %album,
                        track,
                        rendition = %rendition,
                        "rendition not served, its manifest cannot be fetched: {e}"
                    );
                    return Err(());
                }
                match self.store.read_manifest(album, track, rendition) {
                    Ok(Some(m)) => Ok(Arc::new(LoadedRendition::build(&self.store, m))),
                    Ok(None) => Err(()),
                    Err(e) => {
                        tracing::warn!(
                            album = %album,
                            track,
                            rendition = %rendition,
                            "rendition not served, its manifest does not load: {e}"
                        );
                        Err(())
                    }
                }
            })
            .ok()
    }
}

/// What a [`LibraryIndex`] holds in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedCounts {
    /// Albums loaded.
    pub albums: u64,
    /// Renditions loaded.
    pub renditions: u64,
    /// Their estimated bytes.
    pub bytes: u64,
}

/// A segment URL taken apart: `/v1/albums/{album}/tracks/{n}/{rendition}/{generation}/{file}`.
struct SegmentUrl<'a> {
    album: &'a str,
    track: &'a str,
    rendition: &'a str,
    generation: &'a str,
    file: &'a str,
    /// `{album}/tracks/{n}/{rendition}`: the rendition cache's key.
    rendition_key: &'a str,
}

impl<'a> SegmentUrl<'a> {
    fn parse(url_path: &'a str) -> Option<SegmentUrl<'a>> {
        let rest = url_path.strip_prefix(ALBUMS_PREFIX)?;
        let mut parts = rest.split('/');
        let album = parts.next()?;
        if parts.next()? != "tracks" {
            return None;
        }
        let track = parts.next()?;
        let rendition = parts.next()?;
        let generation = parts.next()?;
        let file = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let key_len = album.len() + "/tracks/".len() + track.len() + 1 + rendition.len();
        Some(SegmentUrl {
            album,
            track,
            rendition,
            generation,
            file,
            rendition_key: &rest[..key_len],
        })
    }
}

/// The id of every album folder in the store (folders only, not dot-names).
pub fn album_ids(store: &Store) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(store.root()) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                action: "list",
                path: store.root().to_path_buf(),
                source,
            });
        }
    };
    Ok(entries
        .flatten()
        // The listing's own type: no stat per folder.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|id| !id.starts_with('.') && store.album_dir(id).is_ok())
        .collect())
}

fn load_head(store: &Store, id: &str) -> Result<Option<AlbumHead>, StoreError> {
    let Some(record) = store.read_album(id)? else {
        return Ok(None);
    };
    let mut tracks = BTreeMap::new();
    for &n in &record.tracks {
        if let Some(track) = store.read_track(id, n)? {
            tracks.insert(n, track);
        }
    }
    Ok(Some(AlbumHead { record, tracks }))
}

/// One packaged track with every rendition's manifest.
#[derive(Debug, Clone)]
pub struct TrackEntry {
    /// What ingest recorded for the track.
    pub record: TrackRecord,
    /// Rendition name → manifest.
    pub renditions: BTreeMap<String, Arc<RenditionManifest>>,
}

/// One packaged album, read whole: for jobs that walk the store (key maintenance and
/// rotation), one album at a time.
#[derive(Debug, Clone)]
pub struct AlbumEntry {
    /// What ingest recorded for the album.
    pub record: AlbumRecord,
    /// Track number → track.
    pub tracks: BTreeMap<u32, TrackEntry>,
}

/// Reads album `id` whole from the store; `Ok(None)` when the folder holds no album.
pub fn load_album(store: &Store, id: &str) -> Result<Option<AlbumEntry>, StoreError> {
    let Some(head) = load_head(store, id)? else {
        return Ok(None);
    };
    let mut tracks = BTreeMap::new();
    for (n, record) in head.tracks {
        let mut renditions = BTreeMap::new();
        for name in &record.renditions {
            if let Some(m) = store.read_manifest(id, n, name)? {
                renditions.insert(name.clone(), Arc::new(m));
            }
        }
        tracks.insert(n, TrackEntry { record, renditions });
    }
    Ok(Some(AlbumEntry {
        record: head.record,
        tracks,
    }))
}

#[cfg(test)]
mod tests;
