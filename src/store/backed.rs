//! Cached segments that remember the store file they were read from, so the socket can send
//! them from the page cache by reference.
//!
//! A cache hit used to be written to the socket from a heap `Bytes`: the kernel copied every
//! 313 KB body into socket buffers, most of the server's CPU per request, where nginx's
//! `sendfile` hands page-cache pages to TCP by reference. Here a segment loaded into the cache
//! is read into the heap as before (that copy is what HTTP/2, TLS and derived responses use),
//! and the open store file is kept beside it. [`crate::http::sendfile`] recognises a slice of
//! such a segment when hyper writes it and sends the same range with `sendfile(2)` from the
//! store file instead of copying the heap bytes.
//!
//! Why the store file and not a private copy: a sealed memfd (the first version of this) is
//! shmem, whose splice path looks every 4 KB page up on its own; a regular file's page cache is
//! read in batches. On the load benchmark the memfd cost about a tenth of the throughput
//! (docs/PERFORMANCE.md). Why not a mapping of the store file as the cached bytes: a mapped
//! file that someone truncates kills the reader with SIGBUS, and store files are on an
//! operator's disk. With the heap copy, a store file changed behind encore's back can only
//! make `sendfile` come up short, which ends that one response with an error (the client sees
//! a short body; a changed body fails its seal and hash at the client, as on a cache miss).
//!
//! The registry maps each live heap copy's address range to its store file. An entry is added
//! when a segment is loaded and removed before the file is closed, and a slice being written
//! borrows its `Bytes`, so the file the registry names stays open at least as long as the
//! write.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::RwLock;

use bytes::Bytes;

/// Live segments: heap start address -> (length, store file fd).
static REGISTRY: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());

/// Where a slice of a loaded segment lives on disk: the open store file and the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSlice {
    /// The store file (open while the slice's `Bytes` is alive).
    pub fd: RawFd,
    /// Offset of the slice's first byte in the file.
    pub offset: u64,
}

/// A segment's bytes and the open file they were read from; the owner of the cached `Bytes`.
struct FileBackedSegment {
    bytes: Box<[u8]>,
    // Kept open for `sendfile`; closed after the segment is unregistered (in `drop`).
    file: File,
}

impl AsRef<[u8]> for FileBackedSegment {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for FileBackedSegment {
    fn drop(&mut self) {
        // Before the fields drop: no writer can find the fd once it may be closed.
        if let Ok(mut registry) = REGISTRY.write() {
            registry.remove(&(self.bytes.as_ptr() as usize));
        }
    }
}

/// Reads `path` and returns its bytes, registered with the open file for zero-copy sends.
pub async fn load(path: &Path) -> io::Result<Bytes> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || load_blocking(&path)).await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(format!("loader task failed: {e}"))),
    }
}

fn load_blocking(path: &Path) -> io::Result<Bytes> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let len = usize::try_from(len).map_err(|_| io::Error::other("segment larger than memory"))?;
    let mut bytes = Vec::with_capacity(len);
    file.read_to_end(&mut bytes)?;
    if bytes.len() != len {
        return Err(io::Error::other(format!(
            "file changed while read: {} of {len} bytes",
            bytes.len()
        )));
    }
    if bytes.is_empty() {
        return Ok(Bytes::new());
    }
    let segment = FileBackedSegment {
        bytes: bytes.into_boxed_slice(),
        file,
    };
    let start = segment.bytes.as_ptr() as usize;
    let entry = (segment.bytes.len(), segment.file.as_raw_fd());
    match REGISTRY.write() {
        Ok(mut registry) => {
            registry.insert(start, entry);
        }
        Err(_) => return Err(io::Error::other("file-backed segment registry poisoned")),
    }
    Ok(Bytes::from_owner(segment))
}

/// The store file and offset of `slice` when it lies wholly inside a loaded segment.
pub fn lookup(slice: &[u8]) -> Option<FileSlice> {
    let start = slice.as_ptr() as usize;
    let registry = REGISTRY.read().ok()?;
    let (&base, &(len, fd)) = registry.range(..=start).next_back()?;
    let end = start.checked_add(slice.len())?;
    (end <= base + len).then_some(FileSlice {
        fd,
        offset: (start - base) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_and_registers_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let bytes = load(&path).await.unwrap();
        assert_eq!(&bytes[..], &data[..]);

        let whole = lookup(&bytes).expect("a loaded segment is registered");
        assert_eq!(whole.offset, 0);
        let inner = bytes.slice(1000..2000);
        assert_eq!(lookup(&inner).unwrap().offset, 1000);
        // Other memory is not mistaken for a loaded segment.
        assert!(lookup(&data[..]).is_none());

        // The registered fd reads the same bytes at the same offsets, even once the path is gone.
        std::fs::remove_file(&path).unwrap();
        let mut probe = [0u8; 1000];
        // SAFETY: test-only read from an fd owned by `bytes`, which is alive, into a local buffer.
        let read = unsafe { libc::pread(whole.fd, probe.as_mut_ptr().cast(), probe.len(), 1000) };
        assert_eq!(read, 1000);
        assert_eq!(&probe[..], &inner[..]);

        let clone = bytes.clone();
        drop(bytes);
        assert!(lookup(&clone).is_some(), "a clone keeps the segment alive");
        let ptr = clone.as_ptr() as usize;
        drop(inner);
        drop(clone);
        let registry = REGISTRY.read().unwrap();
        assert!(
            !registry.contains_key(&ptr),
            "dropped segments leave the registry"
        );
    }

    #[tokio::test]
    async fn empty_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        assert!(load(&path).await.unwrap().is_empty());
        let err = load(&dir.path().join("nope")).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
