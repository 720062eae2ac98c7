//! The hot cache on the delivery path: sealed segments as `Bytes` in a moka cache weighted
//! by size, with single-flight loading so N concurrent misses read the disk once. The same
//! cache (and so the same byte budget) holds forms derived from a sealed segment, such as its
//! HLS form, keyed apart from the sealed bytes. Sealed segments keep their store file open
//! ([`super::backed`]) so a hit is sent to the socket from the page cache without a copy.
//! The sealed segments hit most recently are also kept in [`super::hot`], which answers a
//! repeat hit without moka's per-read bookkeeping; moka remains the cache of record.
//!
//! A segment's bytes are checked against its manifest's SHA-256 when they enter the cache
//! (once per load, on the blocking thread that reads them; hits are not checked again). Bytes
//! that fail are never cached nor served: the load fails as corrupt, with an error log naming
//! the file and a count in [`CacheStats::integrity_failures`].

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;

use super::backed::{self, FileBacked, LoadFailure};
use super::hot::HotSlots;
use super::readthrough::{ReadThrough, RemoteStats};

/// Counters moka does not keep for us (Prometheus counters, so /metrics exports them as they are).
#[derive(Debug, Default, Clone)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: Counter,
    /// Of `hits`, those the hot table answered without a moka lookup ([`super::hot`]).
    pub hot_hits: Counter,
    /// Lookups that had to load (or wait for a load).
    pub misses: Counter,
    /// Files actually read from disk.
    pub disk_reads: Counter,
    /// Bytes read from disk.
    pub disk_bytes: Counter,
    /// Segments too large to cache, served straight from disk.
    pub uncacheable: Counter,
    /// Derived (HLS) lookups answered from memory.
    pub derived_hits: Counter,
    /// Derived (HLS) lookups that had to build (or wait for a build).
    pub derived_misses: Counter,
    /// Derived (HLS) forms actually built from sealed bytes.
    pub derived_builds: Counter,
    /// Store files whose bytes did not match their manifest's SHA-256 when loaded.
    pub integrity_failures: Counter,
    /// The bucket read-through's counters ([`super::readthrough`]).
    pub remote: RemoteStats,
}

/// Why a segment could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read segment {path}: {reason}")]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub reason: String,
    /// True when the file does not exist.
    pub not_found: bool,
    /// True when the file was read but is not what its manifest says.
    pub corrupt: bool,
    /// True when the bucket behind the store could not be reached: worth a retry later.
    pub unavailable: bool,
}

/// Why a derived form could not be produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeriveError<E> {
    /// The sealed segment could not be read.
    #[error(transparent)]
    Load(LoadError),
    /// The sealed bytes were read, but building the derived form failed.
    #[error(transparent)]
    Build(E),
}

/// Why a load did not produce a cache entry.
enum Uncached<E> {
    /// The file could not be read.
    Failed(LoadError),
    /// The entry is larger than the whole cache: served as made, never inserted.
    TooLarge(FileBacked),
    /// The derived form could not be built.
    Build(E),
}

/// What an entry holds. Both kinds are keyed by the sealed file's path: a derived form is a
/// pure function of the sealed bytes (and of keys fixed by the id those bytes name), so it is
/// as immutable as the file.
#[derive(Debug, Clone)]
enum Entry {
    /// The sealed file as stored.
    Sealed(Arc<Path>),
    /// The form served to HLS players (see `crate::hls`).
    Derived(Arc<Path>),
}

impl Entry {
    /// The kind and the path's bytes. Keys compare and hash as bytes: `Path`'s own `Hash` and
    /// `Eq` walk components, which costs more on every hit, and store paths are built one way.
    fn parts(&self) -> (bool, &[u8]) {
        match self {
            Entry::Sealed(p) => (false, p.as_os_str().as_encoded_bytes()),
            Entry::Derived(p) => (true, p.as_os_str().as_encoded_bytes()),
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for Entry {}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

/// Hashes cache keys on every hit. Keys are store paths of catalogued segments, never chosen
/// by a request, so a fast hash needs no flood resistance.
type KeyHasher = foldhash::fast::RandomState;

/// Size-weighted segment cache.
#[derive(Clone)]
pub struct SegmentCache {
    cache: moka::future::Cache<Entry, FileBacked, KeyHasher>,
    /// Copies of moka's latest sealed hits; emptied as moka lets them go.
    hot: Arc<HotSlots<Path, FileBacked>>,
    capacity: u64,
    /// Loaded segments' store-file pages are locked in the page cache ([`super::backed`]).
    pin_pages: bool,
    /// The bucket a missing segment is fetched from, when the store is published there.
    read_through: Option<Arc<ReadThrough>>,
    stats: Arc<CacheStats>,
}

impl SegmentCache {
    /// A cache holding at most `capacity_bytes` of segments.
    pub fn new(capacity_bytes: u64) -> Self {
        let hot: Arc<HotSlots<Path, FileBacked>> = Arc::new(HotSlots::new());
        let listener_hot = Arc::clone(&hot);
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            // moka fixes an entry's weight at insert; segments never change, so that is exact.
            .weigher(|_k: &Entry, v: &FileBacked| {
                u32::try_from(v.bytes().len()).unwrap_or(u32::MAX)
            })
            // Whatever moka drops (evicted, replaced, invalidated) leaves the hot table too,
            // so the table holds no memory beyond moka's budget.
            .eviction_listener(move |entry: Arc<Entry>, _, _| {
                if let Entry::Sealed(path) = entry.as_ref() {
                    listener_hot.forget(&**path);
                }
            })
            .build_with_hasher(KeyHasher::default());
        SegmentCache {
            cache,
            hot,
            capacity: capacity_bytes,
            pin_pages: true,
            read_through: None,
            stats: Arc::new(CacheStats::default()),
        }
    }

    /// Segments missing from the local store are fetched through `read_through` (checked
    /// against their SHA-256, kept on local disk) instead of failing as not found.
    pub fn with_read_through(mut self, read_through: Arc<ReadThrough>) -> Self {
        self.read_through = Some(read_through);
        self
    }

    /// The bucket read-through, if the store is published to one.
    pub fn read_through(&self) -> Option<&Arc<ReadThrough>> {
        self.read_through.as_ref()
    }

    /// Whether segments loaded from now on have their store-file pages pinned (default on).
    pub fn with_page_pinning(mut self, on: bool) -> Self {
        self.pin_pages = on;
        self
    }

    /// The counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Bytes currently held (moka's estimate).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Returns the file's bytes, loading it at most once however many callers miss together.
    /// For files no manifest lists (covers); segments go through [`SegmentCache::get_checked`].
    pub async fn get(&self, path: impl Into<Arc<Path>>) -> Result<FileBacked, LoadError> {
        self.lookup(path.into(), None).await
    }

    /// Returns a segment's bytes as [`SegmentCache::get`] does, loaded only if their SHA-256 is
    /// `sha256` (checked when loaded, not on hits).
    pub async fn get_checked(
        &self,
        path: impl Into<Arc<Path>>,
        sha256: [u8; 32],
    ) -> Result<FileBacked, LoadError> {
        self.lookup(path.into(), Some(sha256)).await
    }

    async fn lookup(
        &self,
        path: Arc<Path>,
        expected: Option<[u8; 32]>,
    ) -> Result<FileBacked, LoadError> {
        if let Some(hit) = self.hot.get(&path) {
            self.stats.hits.inc();
            self.stats.hot_hits.inc();
            if hit.touch {
                self.touch(path).await;
            }
            return Ok(hit.value);
        }
        let key = Entry::Sealed(Arc::clone(&path));
        if let Some(b) = self.cache.get(&key).await {
            self.stats.hits.inc();
            self.hot.put(path, b.clone());
            return Ok(b);
        }
        // Boxed: the loading future is large, and every hit's future would carry its size.
        Box::pin(self.load(key, path, expected)).await
    }

    /// Reports a read answered by the hot table to moka, so its eviction policy sees the
    /// segment in use; empties the slot if moka no longer holds the segment.
    async fn touch(&self, path: Arc<Path>) {
        if self
            .cache
            .get(&Entry::Sealed(Arc::clone(&path)))
            .await
            .is_none()
        {
            self.hot.forget(&path);
        }
    }

    /// A sealed file's bytes on a miss (`key` names `load_path`): single-flight load, insert.
    async fn load(
        &self,
        key: Entry,
        load_path: Arc<Path>,
        expected: Option<[u8; 32]>,
    ) -> Result<FileBacked, LoadError> {
        self.stats.misses.inc();
        let stats = self.stats.clone();
        let capacity = self.capacity;
        let pin_pages = self.pin_pages;
        let through = self.read_through.clone();
        let loaded = self
            .cache
            .try_get_with(key, async move {
                let bytes = read(&load_path, &stats, pin_pages, expected, through.as_deref())
                    .await
                    .map_err(Uncached::Failed)?;
                if bytes.bytes().len() as u64 > capacity {
                    // moka would drop it silently; count it and hand the bytes already read
                    // to every waiter instead of inserting them.
                    stats.uncacheable.inc();
                    return Err(Uncached::<std::convert::Infallible>::TooLarge(bytes));
                }
                Ok(bytes)
            })
            .await;
        match loaded {
            Ok(b) => Ok(b),
            Err(e) => match &*e {
                Uncached::TooLarge(bytes) => Ok(bytes.clone()),
                Uncached::Failed(err) => Err(err.clone()),
                Uncached::Build(never) => match *never {},
            },
        }
    }

    /// Returns the form `build` derives from the sealed file at `path`, building it at most
    /// once however many callers miss together. The sealed bytes come from this cache when it
    /// holds them, else straight from disk without being inserted (a player fetching the
    /// derived form does not need both copies kept), and only if their SHA-256 is `sha256`.
    pub async fn get_derived<E, F, Fut>(
        &self,
        path: impl Into<Arc<Path>>,
        sha256: [u8; 32],
        build: F,
    ) -> Result<Bytes, DeriveError<E>>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce(Bytes) -> Fut + Send,
        Fut: Future<Output = Result<Bytes, E>> + Send,
    {
        let path = path.into();
        let key = Entry::Derived(Arc::clone(&path));
        if let Some(b) = self.cache.get(&key).await {
            self.stats.derived_hits.inc();
            return Ok(b.into_bytes());
        }
        self.stats.derived_misses.inc();
        let stats = self.stats.clone();
        let capacity = self.capacity;
        let cache = self.cache.clone();
        let through = self.read_through.clone();
        let loaded = self
            .cache
            .try_get_with(key, async move {
                let sealed = match cache.get(&Entry::Sealed(Arc::clone(&path))).await {
                    Some(b) => b.into_bytes(),
                    // Only read to be transformed: no sealed memory for a transient buffer.
                    None => read_heap(&path, &stats, sha256, through.as_deref())
                        .await
                        .map_err(Uncached::Failed)?,
                };
                let derived = build(sealed).await.map_err(Uncached::Build)?;
                stats.derived_builds.inc();
                if derived.len() as u64 > capacity {
                    stats.uncacheable.inc();
                    return Err(Uncached::TooLarge(FileBacked::in_memory(derived)));
                }
                Ok(FileBacked::in_memory(derived))
            })
            .await;
        match loaded {
            Ok(b) => Ok(b.into_bytes()),
            Err(e) => match &*e {
                Uncached::TooLarge(bytes) => Ok(bytes.bytes().clone()),
                Uncached::Failed(err) => Err(DeriveError::Load(err.clone())),
                Uncached::Build(err) => Err(DeriveError::Build(err.clone())),
            },
        }
    }

    /// Drops every cached segment (used when segments are deleted).
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
        // moka tells its listener later, when it gets round to removing them.
        self.hot.clear();
    }

    /// Drops the cached segments whose path `keep` refuses (those of generations the store
    /// deleted); returns how many. Runs after a catalog reload, never on the request path.
    pub async fn purge(&self, keep: impl Fn(&Path) -> bool) -> usize {
        let doomed: Vec<Arc<Entry>> = self
            .cache
            .iter()
            .filter(|(entry, _)| match entry.as_ref() {
                Entry::Sealed(path) | Entry::Derived(path) => !keep(path),
            })
            .map(|(entry, _)| entry)
            .collect();
        for entry in &doomed {
            self.cache.invalidate(entry.as_ref()).await;
            if let Entry::Sealed(path) = entry.as_ref() {
                self.hot.forget(path);
            }
        }
        doomed.len()
    }
}

/// Reads a sealed file and keeps it open (see [`super::backed`]), so hits go out by reference.
/// With a read-through, a checked segment missing locally is fetched first, and a local copy
/// that fails its check is deleted and fetched again once.
async fn read(
    path: &Path,
    stats: &CacheStats,
    pin_pages: bool,
    expected: Option<[u8; 32]>,
    through: Option<&ReadThrough>,
) -> Result<FileBacked, LoadError> {
    let (Some(through), Some(sha256)) = (through, expected) else {
        return counted(path, stats, backed::load(path, pin_pages, expected).await);
    };
    if let Err(e) = through.ensure_local(path, &sha256).await {
        return counted(path, stats, Err::<FileBacked, _>(e));
    }
    match backed::load(path, pin_pages, expected).await {
        Err(LoadFailure::Mismatch { .. }) => {
            tracing::warn!(file = %path.display(), "local copy is corrupt; fetching it again");
            through.discard(path);
            if let Err(e) = through.ensure_local(path, &sha256).await {
                return counted(path, stats, Err::<FileBacked, _>(e));
            }
            counted(path, stats, backed::load(path, pin_pages, expected).await)
        }
        other => counted(path, stats, other),
    }
}

/// Reads a sealed file onto the heap, if its SHA-256 is `expected` (fetched first through
/// `through` when missing locally).
async fn read_heap(
    path: &Path,
    stats: &CacheStats,
    expected: [u8; 32],
    through: Option<&ReadThrough>,
) -> Result<Bytes, LoadError> {
    if let Some(through) = through
        && let Err(e) = through.ensure_local(path, &expected).await
    {
        return counted(path, stats, Err::<Bytes, _>(e));
    }
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&owned)?;
        backed::check_digest(&bytes, &expected)?;
        Ok(Bytes::from(bytes))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(format!("reader task failed: {e}")).into()));
    counted(path, stats, read)
}

fn counted<T: AsRef<[u8]>>(
    path: &Path,
    stats: &CacheStats,
    read: Result<T, LoadFailure>,
) -> Result<T, LoadError> {
    match read {
        Ok(v) => {
            stats.disk_reads.inc();
            stats.disk_bytes.inc_by(v.as_ref().len() as u64);
            Ok(v)
        }
        Err(LoadFailure::Io(e)) => Err(LoadError {
            path: path.to_path_buf(),
            reason: e.to_string(),
            not_found: e.kind() == std::io::ErrorKind::NotFound,
            corrupt: false,
            unavailable: false,
        }),
        Err(LoadFailure::Unavailable(reason)) => {
            tracing::warn!(file = %path.display(), "segment not fetched from the bucket: {reason}");
            Err(LoadError {
                path: path.to_path_buf(),
                reason,
                not_found: false,
                corrupt: false,
                unavailable: true,
            })
        }
        Err(e @ LoadFailure::Mismatch { .. }) => {
            stats.disk_reads.inc();
            stats.integrity_failures.inc();
            tracing::error!(
                file = %path.display(),
                "store file does not match its manifest: {e}; not served"
            );
            Err(LoadError {
                path: path.to_path_buf(),
                reason: format!("does not match its manifest: {e}"),
                not_found: false,
                corrupt: true,
                unavailable: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes).into()
    }

    #[tokio::test]
    async fn bytes_that_fail_their_digest_are_counted_and_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let good = vec![3u8; 50_000];
        let mut bad = good.clone();
        bad[25_000] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let cache = SegmentCache::new(1 << 20);
        for n in 1..=2 {
            let e = cache
                .get_checked(path.clone(), sha(&good))
                .await
                .unwrap_err();
            assert!(e.corrupt && !e.not_found, "{e}");
            assert_eq!(
                cache.stats().integrity_failures.get(),
                n,
                "each load checks"
            );
        }
        let ok = |b: Bytes| async move { Ok::<_, String>(b) };
        let derived = cache.get_derived(path.clone(), sha(&good), ok).await;
        assert!(matches!(derived, Err(DeriveError::Load(e)) if e.corrupt));
        assert_eq!(cache.stats().integrity_failures.get(), 3);

        std::fs::write(&path, &good).unwrap();
        assert_eq!(
            cache
                .get_checked(path.clone(), sha(&good))
                .await
                .unwrap()
                .bytes()[..],
            good[..]
        );
        assert_eq!(
            cache.get_checked(path, sha(&good)).await.unwrap().bytes()[..],
            good[..]
        );
        assert_eq!(cache.stats().hits.get(), 1, "the good copy is cached");
        assert_eq!(cache.stats().integrity_failures.get(), 3);
    }

    #[tokio::test]
    async fn concurrent_misses_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let cache = SegmentCache::new(1 << 20);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (c, p) = (cache.clone(), path.clone());
                tokio::spawn(async move { c.get(p).await.map(|b| b.bytes().len()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 100_000);
        }
        assert_eq!(cache.stats().disk_reads.get(), 1);
        assert!(cache.get(path).await.is_ok());
        assert!(cache.stats().hits.get() >= 1);
    }

    #[tokio::test]
    async fn oversized_entries_are_served_uncached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![1u8; 5000]).unwrap();
        let cache = SegmentCache::new(1000);
        assert_eq!(cache.get(path.clone()).await.unwrap().bytes().len(), 5000);
        assert_eq!(cache.stats().uncacheable.get(), 1);
        assert_eq!(
            cache.stats().disk_reads.get(),
            1,
            "an oversized segment is read once"
        );
    }

    #[tokio::test]
    async fn derived_forms_are_built_once_and_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, b"sealed").unwrap();
        let cache = SegmentCache::new(1 << 20);
        let build = |b: Bytes| async move {
            let mut v = b.to_vec();
            v.extend_from_slice(b"+hls");
            Ok::<_, String>(Bytes::from(v))
        };
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (c, p) = (cache.clone(), path.clone());
                tokio::spawn(async move { c.get_derived(p, sha(b"sealed"), build).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(&t.await.unwrap().unwrap()[..], b"sealed+hls");
        }
        assert_eq!(cache.stats().derived_builds.get(), 1);
        assert_eq!(cache.stats().disk_reads.get(), 1);
        // The sealed form is its own entry, not the derived one, and was not inserted by the
        // derived load.
        assert_eq!(
            &cache.get(path.clone()).await.unwrap().bytes()[..],
            b"sealed"
        );
        assert_eq!(cache.stats().disk_reads.get(), 2);
        assert_eq!(
            &cache
                .get_derived(path, sha(b"sealed"), build)
                .await
                .unwrap()[..],
            b"sealed+hls"
        );
        assert!(cache.stats().derived_hits.get() >= 1);
    }

    #[tokio::test]
    async fn derived_build_errors_are_returned_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, b"sealed").unwrap();
        let cache = SegmentCache::new(1 << 20);
        let fail = |_b: Bytes| async { Err::<Bytes, _>("bad seal".to_string()) };
        assert!(matches!(
            cache.get_derived(path.clone(), sha(b"sealed"), fail).await,
            Err(DeriveError::Build(e)) if e == "bad seal"
        ));
        let ok = |b: Bytes| async move { Ok::<_, String>(b) };
        assert!(cache.get_derived(path, sha(b"sealed"), ok).await.is_ok());
        let missing = cache
            .get_derived(PathBuf::from("/nonexistent/x"), sha(b"sealed"), ok)
            .await;
        assert!(matches!(missing, Err(DeriveError::Load(e)) if e.not_found));
    }

    /// Writes `n` segment files of `len` bytes; their paths.
    fn segments(dir: &Path, n: usize, len: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("{i:05}.m4s"));
                std::fs::write(&p, vec![i as u8; len]).unwrap();
                p
            })
            .collect()
    }

    #[tokio::test]
    async fn a_repeat_hit_comes_from_the_hot_table_and_leaves_it_when_invalidated() {
        let dir = tempfile::tempdir().unwrap();
        let path = segments(dir.path(), 1, 1000).remove(0);
        let cache = SegmentCache::new(1 << 20);
        cache.get(path.clone()).await.unwrap();
        assert!(
            cache.hot.get(&path).is_none(),
            "a load does not fill the table"
        );
        cache.get(path.clone()).await.unwrap();
        assert!(cache.hot.get(&path).is_some(), "a moka hit does");
        assert_eq!(
            cache.stats().hot_hits.get(),
            0,
            "nor is the moka hit counted as hot"
        );
        let repeats = 2 * u64::from(crate::store::hot::TOUCH_EVERY);
        for _ in 0..repeats {
            assert_eq!(
                cache.get(path.clone()).await.unwrap().bytes()[..],
                [0u8; 1000]
            );
        }
        assert_eq!(cache.stats().disk_reads.get(), 1);
        assert_eq!(cache.stats().hot_hits.get(), repeats);
        assert_eq!(cache.stats().hits.get(), 1 + repeats);

        // Segments deleted: nothing is answered from memory any more.
        cache.invalidate_all();
        assert!(cache.hot.get(&path).is_none());
        cache.get(path.clone()).await.unwrap();
        assert_eq!(cache.stats().disk_reads.get(), 2);

        // A purged generation leaves the table at once.
        cache.get(path.clone()).await.unwrap();
        assert!(cache.hot.get(&path).is_some());
        assert_eq!(cache.purge(|_| false).await, 1);
        assert!(cache.hot.get(&path).is_none());
    }

    #[tokio::test]
    async fn what_moka_evicts_leaves_the_hot_table() {
        let dir = tempfile::tempdir().unwrap();
        // Room for four of the twelve segments.
        let paths = segments(dir.path(), 12, 10_000);
        let cache = SegmentCache::new(40_000);
        let first = paths[0].clone();
        cache.get(first.clone()).await.unwrap();
        cache.get(first.clone()).await.unwrap();
        assert!(cache.hot.get(&first).is_some());
        // The others, each read twice so moka's admission favours them over the first.
        for p in &paths[1..] {
            for _ in 0..3 {
                cache.get(p.clone()).await.unwrap();
            }
            cache.cache.run_pending_tasks().await;
        }
        cache.cache.run_pending_tasks().await;
        assert!(cache.weighted_size() <= 40_000);
        let held: Vec<_> = paths
            .iter()
            .filter(|p| cache.hot.get(p).is_some())
            .collect();
        assert!(!held.is_empty(), "recent hits are in the table");
        for p in held {
            assert!(
                cache
                    .cache
                    .contains_key(&Entry::Sealed(Arc::from(p.as_path()))),
                "{} is in the hot table but not in moka",
                p.display()
            );
        }
    }

    #[tokio::test]
    async fn page_pinning_follows_the_setting() {
        use crate::store::backed::tests::{drop_from_page_cache, resident_pages};
        // On the checkout's disk, not /tmp: tmpfs pages are not dropped by the advice.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let len = 128 * 1024;
        let path = segments(dir.path(), 1, len).remove(0);
        let probe = std::fs::File::open(&path).unwrap();
        probe.sync_all().unwrap();
        let pages = len / 4096;
        for pin in [true, false] {
            let cache = SegmentCache::new(1 << 20).with_page_pinning(pin);
            let bytes = cache.get(path.clone()).await.unwrap();
            drop_from_page_cache(&probe);
            let resident = resident_pages(&probe, len);
            if pin {
                assert_eq!(resident, pages, "pinned pages stay");
            } else {
                assert!(resident < pages, "unpinned pages can go");
            }
            drop(bytes);
        }
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let cache = SegmentCache::new(1000);
        let e = cache
            .get(PathBuf::from("/nonexistent/x"))
            .await
            .unwrap_err();
        assert!(e.not_found);
    }
}
