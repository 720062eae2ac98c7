//! Cached segments kept in sealed memory files, so the socket can send them by reference.
//!
//! A cache hit used to be written to the socket from a heap `Bytes`: the kernel copied every
//! 313 KB body into socket buffers, most of the server's CPU per request, where nginx's
//! `sendfile` hands page-cache pages to TCP by reference. Here a segment loaded into the cache
//! is copied once into a `memfd` (in the kernel, `copy_file_range`), sealed against any change
//! (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) and mapped read-only; the
//! `Bytes` the cache holds borrow that mapping. [`crate::http::sendfile`] recognises a slice
//! of such a mapping when hyper writes it and sends it with `sendfile(2)` from the memfd
//! instead of copying it.
//!
//! Why a sealed memfd and not the store file itself: a mapped file that someone truncates
//! kills the reader with SIGBUS, and store files are on an operator's disk. A sealed memfd
//! cannot change size or content while it exists, so neither the mapping nor pages already
//! handed to TCP can change under a response.
//!
//! The registry maps each live mapping's address range to its memfd. An entry is added when a
//! mapping is made and removed before it is unmapped, and a slice being written borrows its
//! `Bytes`, so the mapping (and the fd the registry names) lives at least as long as the write.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::Path;
use std::sync::RwLock;

use bytes::Bytes;

/// Live mappings: start address -> (length, memfd).
static REGISTRY: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());

/// Where a slice of a sealed mapping lives: the memfd and the slice's offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedSlice {
    /// The sealed memfd (valid while the slice's `Bytes` is alive).
    pub fd: RawFd,
    /// Offset of the slice's first byte in the memfd.
    pub offset: u64,
}

/// The memfd and its mapping; the owner of the cached `Bytes`.
struct SealedMemory {
    map: memmap2::Mmap,
    // Kept open for `sendfile`; closed after the mapping is unregistered (field drop order).
    _file: File,
}

impl AsRef<[u8]> for SealedMemory {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for SealedMemory {
    fn drop(&mut self) {
        // Before the fields drop: no writer can find the fd once it may be closed.
        if let Ok(mut registry) = REGISTRY.write() {
            registry.remove(&(self.map.as_ptr() as usize));
        }
    }
}

/// Reads `path` into sealed memory and returns its bytes. Falls back to an ordinary heap read
/// where memfds are not available (the bytes are the same; only the zero-copy send is lost).
pub async fn load(path: &Path) -> io::Result<Bytes> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || load_blocking(&path)).await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(format!("loader task failed: {e}"))),
    }
}

fn load_blocking(path: &Path) -> io::Result<Bytes> {
    let mut source = File::open(path)?;
    let len = source.metadata()?.len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    let mut memfd = match create_memfd() {
        Ok(f) => f,
        // Not Linux, an old kernel or a sandbox that forbids memfd_create: serve from the heap.
        Err(_) => return std::fs::read(path).map(Bytes::from),
    };
    let copied = io::copy(&mut source, &mut memfd)?;
    if copied != len {
        return Err(io::Error::other(format!(
            "file changed while read: {copied} of {len} bytes"
        )));
    }
    seal(&memfd)?;
    // SAFETY: the memfd is sealed against writes, shrinking and growing and is private to
    // this process, so the mapped bytes cannot change or vanish while mapped.
    let map = unsafe { memmap2::Mmap::map(&memfd)? };
    let memory = SealedMemory { map, _file: memfd };
    let start = memory.map.as_ptr() as usize;
    let entry = (memory.map.len(), memory._file.as_raw_fd());
    match REGISTRY.write() {
        Ok(mut registry) => {
            registry.insert(start, entry);
        }
        Err(_) => return Err(io::Error::other("mapped-segment registry poisoned")),
    }
    Ok(Bytes::from_owner(memory))
}

fn create_memfd() -> io::Result<File> {
    // SAFETY: a valid NUL-terminated name and flags; the returned fd is owned by the File.
    let fd = unsafe {
        libc::memfd_create(
            c"encore-segment".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn seal(file: &File) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on an fd we own with an integer argument.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The memfd and offset of `slice` when it lies wholly inside a sealed mapping.
pub fn lookup(slice: &[u8]) -> Option<MappedSlice> {
    let start = slice.as_ptr() as usize;
    let registry = REGISTRY.read().ok()?;
    let (&base, &(len, fd)) = registry.range(..=start).next_back()?;
    let end = start.checked_add(slice.len())?;
    (end <= base + len).then_some(MappedSlice {
        fd,
        offset: (start - base) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_sealed_and_registers_until_dropped() {
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
        // Heap memory is not mistaken for a mapping.
        assert!(lookup(&data[..]).is_none());

        // The memfd cannot be written or resized.
        let fd = whole.fd;
        // SAFETY: test-only probe of an fd owned by `bytes`, which is alive.
        let written = unsafe { libc::pwrite(fd, b"x".as_ptr().cast(), 1, 0) };
        assert!(written < 0, "a sealed memfd refused the write");
        assert_eq!(unsafe { libc::ftruncate(fd, 10) }, -1);

        let clone = bytes.clone();
        drop(bytes);
        assert!(lookup(&clone).is_some(), "a clone keeps the mapping alive");
        let ptr = clone.as_ptr() as usize;
        drop(inner);
        drop(clone);
        let registry = REGISTRY.read().unwrap();
        assert!(
            !registry.contains_key(&ptr),
            "dropped mappings leave the registry"
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
