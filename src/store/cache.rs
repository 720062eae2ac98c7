//! The hot cache on the delivery path: sealed segments as `Bytes` in a moka cache weighted
//! by size, with single-flight loading so N concurrent misses read the disk once.

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use std::path::PathBuf;
use std::sync::Arc;

/// Counters moka does not keep for us (Prometheus counters, so /metrics exports them as they are).
#[derive(Debug, Default, Clone)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: Counter,
    /// Lookups that had to load (or wait for a load).
    pub misses: Counter,
    /// Files actually read from disk.
    pub disk_reads: Counter,
    /// Bytes read from disk.
    pub disk_bytes: Counter,
    /// Segments too large to cache, served straight from disk.
    pub uncacheable: Counter,
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
}

/// Why a load did not produce a cache entry.
enum Uncached {
    /// The file could not be read.
    Failed(LoadError),
    /// The file is larger than the whole cache: served as read, never inserted.
    TooLarge(Bytes),
}

/// Size-weighted segment cache.
#[derive(Clone)]
pub struct SegmentCache {
    cache: moka::future::Cache<PathBuf, Bytes>,
    capacity: u64,
    stats: Arc<CacheStats>,
}

impl SegmentCache {
    /// A cache holding at most `capacity_bytes` of segments.
    pub fn new(capacity_bytes: u64) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity_bytes)
            // moka fixes an entry's weight at insert; segments never change, so that is exact.
            .weigher(|_k: &PathBuf, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .build();
        SegmentCache {
            cache,
            capacity: capacity_bytes,
            stats: Arc::new(CacheStats::default()),
        }
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
    pub async fn get(&self, path: PathBuf) -> Result<Bytes, LoadError> {
        if let Some(b) = self.cache.get(&path).await {
            self.stats.hits.inc();
            return Ok(b);
        }
        self.stats.misses.inc();
        let stats = self.stats.clone();
        let capacity = self.capacity;
        let load_path = path.clone();
        let loaded = self
            .cache
            .try_get_with(path, async move {
                let bytes = read(&load_path, &stats).await.map_err(Uncached::Failed)?;
                if bytes.len() as u64 > capacity {
                    // moka would drop it silently; count it and hand the bytes already read
                    // to every waiter instead of inserting them.
                    stats.uncacheable.inc();
                    return Err(Uncached::TooLarge(bytes));
                }
                Ok(bytes)
            })
            .await;
        match loaded {
            Ok(b) => Ok(b),
            Err(e) => match &*e {
                Uncached::TooLarge(bytes) => Ok(bytes.clone()),
                Uncached::Failed(err) => Err(err.clone()),
            },
        }
    }

    /// Drops every cached segment (used when segments are deleted).
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Drops the cached segments whose path `keep` refuses (those of generations the store
    /// deleted); returns how many. Runs after a catalog reload, never on the request path.
    pub async fn purge(&self, keep: impl Fn(&std::path::Path) -> bool) -> usize {
        let doomed: Vec<Arc<PathBuf>> = self
            .cache
            .iter()
            .filter(|(path, _)| !keep(path))
            .map(|(path, _)| path)
            .collect();
        for path in &doomed {
            self.cache.invalidate(path.as_ref()).await;
        }
        doomed.len()
    }
}

async fn read(path: &std::path::Path, stats: &CacheStats) -> Result<Bytes, LoadError> {
    match tokio::fs::read(path).await {
        Ok(v) => {
            stats.disk_reads.inc();
            stats.disk_bytes.inc_by(v.len() as u64);
            Ok(Bytes::from(v))
        }
        Err(e) => Err(LoadError {
            path: path.to_path_buf(),
            reason: e.to_string(),
            not_found: e.kind() == std::io::ErrorKind::NotFound,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_misses_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let cache = SegmentCache::new(1 << 20);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (c, p) = (cache.clone(), path.clone());
                tokio::spawn(async move { c.get(p).await.map(|b| b.len()) })
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
        assert_eq!(cache.get(path.clone()).await.unwrap().len(), 5000);
        assert_eq!(cache.stats().uncacheable.get(), 1);
        assert_eq!(
            cache.stats().disk_reads.get(),
            1,
            "an oversized segment is read once"
        );
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
