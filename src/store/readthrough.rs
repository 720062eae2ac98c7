//! Read-through from the bucket for an origin whose store is published there: a segment the
//! local store lacks is fetched once, checked against its manifest's SHA-256, and written
//! atomically to its place under `<data>/store`, where it is served from as any local segment
//! (sendfile from the file). The local copies form a bounded disk cache: their sizes are kept
//! in a moka cache in least-recently-used order, and a copy it evicts is deleted.
//!
//! Single flight comes from the caller: [`super::cache::SegmentCache`] calls in from inside
//! moka's `try_get_with`, so concurrent misses of one segment make one GET. Recency is seen
//! on loads only (hits are answered from memory), so the disk cache's order follows the
//! segment cache's misses. A deleted copy still open in the segment cache stays readable
//! until that entry goes (Unix semantics); its disk space is freed then.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use super::Store;
use super::backed::{LoadFailure, check_digest};
use super::remote::Remote;
use crate::durable;

/// The read-through's counters (Prometheus counters: /metrics exports them as they are).
#[derive(Debug, Default, Clone)]
pub struct RemoteStats {
    /// Segments fetched from the bucket.
    pub fetches: Counter,
    /// Bytes fetched from the bucket.
    pub bytes: Counter,
    /// Objects fetched from the bucket that did not match their manifest (never kept).
    pub verify_failures: Counter,
    /// Local segment copies deleted to keep the local disk cache within its bound.
    pub local_evictions: Counter,
    /// Publication records and manifests fetched from the bucket (`super::records`).
    pub records: Counter,
}

/// The bucket behind a local store, and the bound on local segment copies.
pub struct ReadThrough {
    remote: Remote,
    root: PathBuf,
    /// Local segment copies → their size, least recently used evicted first.
    disk: moka::sync::Cache<Arc<Path>, u64>,
    fetches: Counter,
    fetch_bytes: Counter,
    verify_failures: Counter,
}

impl std::fmt::Debug for ReadThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadThrough")
            .field("remote", &self.remote)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ReadThrough {
    /// Reads through from `remote` into `store`, keeping at most `capacity_bytes` of local
    /// segment copies; counts into `stats` (remote fetches, bytes, verify failures, local
    /// evictions).
    pub fn new(remote: Remote, store: &Store, capacity_bytes: u64, stats: &RemoteStats) -> Self {
        let evictions = stats.local_evictions.clone();
        let disk = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|_: &Arc<Path>, size: &u64| u32::try_from(*size).unwrap_or(u32::MAX))
            .eviction_listener(move |path: Arc<Arc<Path>>, _, cause| {
                if cause.was_evicted() {
                    evictions.inc();
                    if let Err(e) = std::fs::remove_file(path.as_ref())
                        && e.kind() != io::ErrorKind::NotFound
                    {
                        tracing::warn!(file = %path.display(), "cannot delete evicted local copy: {e}");
                    }
                }
            })
            .build();
        ReadThrough {
            remote,
            root: store.root().to_path_buf(),
            disk,
            fetches: stats.fetches.clone(),
            fetch_bytes: stats.bytes.clone(),
            verify_failures: stats.verify_failures.clone(),
        }
    }

    /// The bucket.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Counts the segment copies already under the store (a restart keeps its disk cache and
    /// its bound): oldest first by modification time, so the bound evicts those first.
    /// Returns how many and their bytes.
    pub fn rescan(&self) -> io::Result<(usize, u64)> {
        let mut found = Vec::new();
        collect_segments(&self.root, 0, &mut found)?;
        found.sort_by_key(|(modified, _, _)| *modified);
        let (n, bytes) = (found.len(), found.iter().map(|(_, _, s)| *s).sum());
        for (_, path, size) in found {
            self.disk.insert(Arc::from(path), size);
        }
        self.disk.run_pending_tasks();
        Ok((n, bytes))
    }

    /// Bytes of local segment copies counted now.
    pub fn local_bytes(&self) -> u64 {
        self.disk.run_pending_tasks();
        self.disk.weighted_size()
    }

    /// Forgets copies whose files are gone (deleted with their generation by a mirror).
    pub fn forget_deleted(&self) {
        for (path, _) in self.disk.iter() {
            let key: &Arc<Path> = &path;
            if !key.exists() {
                self.disk.invalidate(key);
            }
        }
        self.disk.run_pending_tasks();
    }

    /// Makes sure the segment at `path` (under the store root) is on local disk with SHA-256
    /// `expected`: a present copy is only marked used; a missing one is fetched, checked and
    /// written atomically. Bytes that fail the check are never written (counted, logged).
    pub(crate) async fn ensure_local(
        &self,
        path: &Path,
        expected: &[u8; 32],
    ) -> Result<(), LoadFailure> {
        if let Ok(meta) = tokio::fs::metadata(path).await {
            let key: Arc<Path> = Arc::from(path);
            if self.disk.get(&key).is_none() {
                self.disk.insert(key, meta.len());
            }
            return Ok(());
        }
        let rel = path
            .strip_prefix(&self.root)
            .ok()
            .and_then(Path::to_str)
            .ok_or_else(|| io::Error::other(format!("{} is outside the store", path.display())))?;
        let bytes = self
            .remote
            .get(rel)
            .await
            .map_err(|e| LoadFailure::Unavailable(e.to_string()))?
            .ok_or_else(|| {
                // Named by a published manifest, so a server-side fault (500), not a 404.
                io::Error::other(format!(
                    "{} names s3 object {rel}, which is absent",
                    path.display()
                ))
            })?;
        self.fetches.inc();
        self.fetch_bytes.inc_by(bytes.len() as u64);
        if let Err(e) = check_digest(&bytes, expected) {
            self.verify_failures.inc();
            tracing::error!(
                object = %rel,
                bucket = %self.remote.url(),
                "s3 object does not match its manifest: {e}; not kept, not served"
            );
            return Err(e);
        }
        let owned = path.to_path_buf();
        let size = bytes.len() as u64;
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = owned.parent() {
                durable::create_dir_all_durable(dir)?;
            }
            durable::write_atomic(&owned, &bytes, 0o644)
        })
        .await
        .map_err(|e| io::Error::other(format!("writer task failed: {e}")))??;
        self.disk.insert(Arc::from(path), size);
        self.disk.run_pending_tasks();
        Ok(())
    }

    /// Deletes a local copy found corrupt, so the next load fetches it again.
    pub(crate) fn discard(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
        self.disk.invalidate(path);
    }
}

/// Depth of segment files under the store root: `<album>/<NN>/<rendition>/<generation>/<file>`.
const SEGMENT_DEPTH: usize = 4;

fn collect_segments(
    dir: &Path,
    depth: usize,
    found: &mut Vec<(std::time::SystemTime, PathBuf, u64)>,
) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        // Dot names: the lock file, and temp files of interrupted writes.
        if name.to_str().is_none_or(|n| n.starts_with('.')) {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_dir() && depth < SEGMENT_DEPTH {
            collect_segments(&entry.path(), depth + 1, found)?;
        } else if meta.is_file() && depth == SEGMENT_DEPTH {
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            found.push((modified, entry.path(), meta.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BucketLocation;

    fn through(store: &Store, capacity: u64, stats: &RemoteStats) -> ReadThrough {
        let location = BucketLocation {
            bucket: "encore".into(),
            prefix: String::new(),
        };
        let settings = [("AWS_REGION".to_owned(), "garage".to_owned())];
        let remote = Remote::from_env_with(&location, &settings).unwrap();
        ReadThrough::new(remote, store, capacity, stats)
    }

    #[test]
    fn a_restart_counts_the_copies_on_disk_and_evicts_the_oldest_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let gen_dir = store.generation_dir("a", 1, "lossless", "g1").unwrap();
        std::fs::create_dir_all(&gen_dir).unwrap();
        let mut paths = Vec::new();
        for i in 0..10u32 {
            let p = gen_dir.join(crate::store::segment_file_name(i));
            std::fs::write(&p, vec![0u8; 1000]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            // Oldest first, a second apart, so the order does not hang on the clock's grain.
            let at =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + u64::from(i));
            f.set_modified(at).unwrap();
            paths.push(p);
        }
        // Neither the lock file nor a temp file is a copy.
        std::fs::write(gen_dir.join(".0001.enc.tmp.1.1"), b"x").unwrap();
        let stats = RemoteStats::default();
        let t = through(&store, 4500, &stats);
        assert_eq!(t.rescan().unwrap(), (10, 10_000));
        assert!(t.local_bytes() <= 4500, "{}", t.local_bytes());
        let kept: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(
            kept,
            [
                false, false, false, false, false, false, true, true, true, true
            ]
        );
        assert_eq!(stats.local_evictions.get(), 6);
    }
}
