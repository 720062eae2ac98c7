//! Cached segments that remember the store file they were read from, so the socket can send
//! them from the page cache by reference.
//!
//! Written from a heap `Bytes`, a cache hit makes the kernel copy every 313 KB body into socket
//! buffers, most of the server's CPU per request, where `sendfile` (as nginx uses it) hands
//! page-cache pages to TCP by reference. So a segment loaded into the cache is read into the
//! heap (the copy HTTP/2, TLS and derived responses use), and the open store file is kept
//! beside it. A plain-TCP connection (`http::sendfile`) sends a body that is a slice of such a
//! segment with `sendfile(2)` from the store file, over the same range, instead of copying the
//! heap bytes.
//!
//! Why the store file and not a private copy: a sealed memfd is shmem, whose splice path looks
//! every 4 KB page up on its own, where a regular file's page cache is read in batches; on the
//! load benchmark a memfd costs about a tenth of the throughput (docs/PERFORMANCE.md). Why not
//! a mapping of the store file as the cached bytes: a mapped
//! file that someone truncates kills the reader with SIGBUS, and store files are on an
//! operator's disk. With the heap copy, a store file changed behind encore's back can only
//! make `sendfile` come up short, which ends that one response with an error (the client sees
//! a short body; a changed body fails its seal and hash at the client, as on a cache miss).
//!
//! The store file's pages are also pinned while the segment is cached (`mlock` of a mapping
//! that is never read through): `sendfile` reads the page cache, and a page the kernel dropped
//! in the meantime (memory pressure, or proactive reclaim such as DAMON's `pageout`, which the
//! benchmark guest runs) would be read back from disk inside the send, stalling every
//! connection on that worker. Pinned, a cache hit never waits for the disk. The pinned pages
//! are the cached segments' own, so they are bounded by the cache's byte budget (memory for
//! a cached segment is its heap copy plus its pinned pages). Pinning can fail (no
//! `CAP_IPC_LOCK` and `RLIMIT_MEMLOCK` reached, or the mapping cap below); the segment is
//! then served as before, unpinned, and [`pinned_bytes`] shows how much is held.
//!
//! The open file travels with the bytes: a cached segment is a [`FileBacked`], its heap copy
//! and a shared handle on the store file ([`StoreFile`]), and whoever sends it takes the file
//! from the segment it is sending. The file is closed (and its pages unpinned) when the last
//! clone of the segment is dropped, so a send in progress always holds the file it reads.
//!
//! A segment is checked once, when it is loaded: the heap copy's SHA-256 against its
//! manifest's. `sendfile` then sends the store file, not the heap copy, so the file must still
//! hold the checked bytes: [`FileBacked::file_slice`] compares the open file's size, mtime
//! and ctime with those it had when it was read (one `fstat` per send) and, once they differ,
//! hands out no file slice for that segment again, so the connection writes the checked heap
//! copy instead. A write cannot leave ctime as it was, so a file changed in place or cut short is caught; one
//! replaced by a rename is not a change at all (the open file is the old one). What this cannot
//! see is a write that lands between the `fstat` and the moment TCP sends the pages (the
//! kernel sends page-cache pages by reference): a window of one send, for a writer racing it.
//! The seal still fails at the client in that case, as for any changed byte.

use std::fs::File;
use std::io::{self, Read};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;

/// Bytes read from a store file: in memory, and when they were loaded for the segment cache,
/// with the open file they were read from, so a plain-TCP socket can send them from the page
/// cache by reference. Clones share both.
#[derive(Debug, Clone, Default)]
pub struct FileBacked {
    bytes: Bytes,
    /// The store file and the offset in it of `bytes`' first byte; `None` for bytes held only
    /// in memory (derived forms, bytes made in place).
    source: Option<(Arc<StoreFile>, u64)>,
}

impl FileBacked {
    /// Bytes with no store file behind them: always written from memory.
    pub fn in_memory(bytes: Bytes) -> Self {
        FileBacked {
            bytes,
            source: None,
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The bytes, without the file.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The bytes were read from a store file that is kept open with them.
    pub fn has_file(&self) -> bool {
        self.source.is_some()
    }

    /// `range` of the bytes, still backed by the same file at the matching offset.
    pub fn slice(&self, range: RangeInclusive<usize>) -> Self {
        let start = *range.start() as u64;
        FileBacked {
            bytes: self.bytes.slice(range),
            source: self
                .source
                .as_ref()
                .map(|(file, offset)| (Arc::clone(file), offset + start)),
        }
    }

    /// Where `buf` lies in the store file, when `buf` lies wholly inside these bytes and the
    /// file still holds the bytes read from it (see the module doc); `None` otherwise, and the
    /// caller writes `buf` from memory.
    pub fn file_slice(&self, buf: &[u8]) -> Option<FileSlice<'_>> {
        let (file, offset) = self.source.as_ref()?;
        let base = self.bytes.as_ptr() as usize;
        let start = (buf.as_ptr() as usize).checked_sub(base)?;
        if start.checked_add(buf.len())? > self.bytes.len() || !file.unchanged() {
            return None;
        }
        Some(FileSlice {
            fd: file.file.as_fd(),
            offset: offset + start as u64,
        })
    }
}

impl AsRef<[u8]> for FileBacked {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A store file held open for the cached segment read from it.
#[derive(Debug)]
pub struct StoreFile {
    file: File,
    /// The file as it was when the heap copy was read from it.
    stamp: Stamp,
    /// The file no longer matches `stamp`: never send from it again.
    changed: AtomicBool,
    /// For the log line when it changes.
    path: Box<Path>,
    // Unpinned when the last segment sharing the file is dropped.
    _pinned: Option<PinnedPages>,
}

impl StoreFile {
    /// The file still holds the bytes read from it: one `fstat` per call, until it does not
    /// (then never again, and a warning names it once).
    fn unchanged(&self) -> bool {
        if self.changed.load(Ordering::Relaxed) {
            return false;
        }
        if Stamp::of(self.file.as_raw_fd()).ok() == Some(self.stamp) {
            return true;
        }
        if !self.changed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                file = %self.path.display(),
                "store file changed or removed after it was checked and cached; the checked \
                 copy is sent from memory until it leaves the cache"
            );
        }
        false
    }
}

/// What changes when a file's bytes do: its size, and its mtime and ctime (a write always sets
/// ctime to the current time, and no caller can set it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The open file's stamp now.
    fn of(fd: RawFd) -> io::Result<Stamp> {
        // SAFETY: fstat fills the zeroed `stat` it is given for an fd we hold open.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `st` outlives the call.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Stamp {
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        })
    }
}

/// Why a segment could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    /// The file could not be read (or changed while it was).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bucket behind the store could not be reached (a retry later may succeed).
    #[error("the bucket could not be reached: {0}")]
    Unavailable(String),
    /// The bytes read are not those the manifest names.
    #[error("its SHA-256 is {actual}, its manifest's is {expected}")]
    Mismatch {
        /// The manifest's, hex.
        expected: String,
        /// The file's, hex.
        actual: String,
    },
}

/// Checks `bytes` against the SHA-256 a manifest gives for them.
pub(crate) fn check_digest(bytes: &[u8], expected: &[u8; 32]) -> Result<(), LoadFailure> {
    use sha2::Digest as _;
    let actual: [u8; 32] = sha2::Sha256::digest(bytes).into();
    if &actual == expected {
        Ok(())
    } else {
        Err(LoadFailure::Mismatch {
            expected: hex::encode(expected),
            actual: hex::encode(actual),
        })
    }
}

/// Where a slice of a loaded segment lives on disk: the open store file and the offset.
#[derive(Debug, Clone, Copy)]
pub struct FileSlice<'a> {
    /// The store file, open as long as the segment it came from.
    pub fd: BorrowedFd<'a>,
    /// Offset of the slice's first byte in the file.
    pub offset: u64,
}

/// Each pin is a mapping, and a process has `vm.max_map_count` mappings for everything, malloc
/// and thread stacks included: pins may use a quarter of them.
const PINNED_SHARE_OF_MAP_COUNT: usize = 4;
/// The cap when `vm.max_map_count` cannot be read: a quarter of its usual default (65 530).
const DEFAULT_MAX_PINNED_SEGMENTS: usize = 16_384;

/// At most this many segments are pinned at once (read once).
fn max_pinned_segments() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|text| pin_cap_for_map_count(&text))
            .unwrap_or(DEFAULT_MAX_PINNED_SEGMENTS)
    })
}

/// The pin cap for the text of `/proc/sys/vm/max_map_count`; `None` if it is not a count.
fn pin_cap_for_map_count(text: &str) -> Option<usize> {
    let count: usize = text.trim().parse().ok()?;
    Some((count / PINNED_SHARE_OF_MAP_COUNT).max(1))
}

// Process-wide because the limits they enforce are: `vm.max_map_count` and
// `RLIMIT_MEMLOCK` count every mapping and locked page of the process, whichever cache holds
// them. They are counters only; no segment is found through them.
static PINNED_SEGMENTS: AtomicUsize = AtomicUsize::new(0);
static PINNED_BYTES: AtomicU64 = AtomicU64::new(0);
static PIN_FAILURE_REPORTED: std::sync::Once = std::sync::Once::new();

/// Bytes of store files currently pinned in the page cache for cached segments.
pub fn pinned_bytes() -> u64 {
    PINNED_BYTES.load(Ordering::Relaxed)
}

/// A store file's pages, mapped and locked so the page cache keeps them. The mapping is never
/// read through (a file truncated behind encore's back would make such a read a SIGBUS); it
/// exists only to hold the lock, and unmapping it releases the pages.
#[derive(Debug)]
struct PinnedPages {
    addr: *mut libc::c_void,
    len: usize,
    /// The lock took (and the bytes are counted in [`PINNED_BYTES`]).
    locked: bool,
}

// SAFETY: the mapping is only ever passed to munmap, once, by whoever drops it.
unsafe impl Send for PinnedPages {}
// SAFETY: shared references never touch the mapping.
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// Maps and locks the first `len` bytes of `file`; `None` when the kernel refuses either.
    fn pin(file: &File, len: usize) -> Option<Self> {
        let max = max_pinned_segments();
        if PINNED_SEGMENTS.fetch_add(1, Ordering::Relaxed) >= max {
            PINNED_SEGMENTS.fetch_sub(1, Ordering::Relaxed);
            report_pin_failure(&format!(
                "{max} segments are pinned already (a quarter of vm.max_map_count)"
            ));
            return None;
        }
        let addr = match map_unread(file, len) {
            Ok(addr) => addr,
            Err(e) => {
                PINNED_SEGMENTS.fetch_sub(1, Ordering::Relaxed);
                report_pin_failure(&format!("mmap: {e}"));
                return None;
            }
        };
        let mut pinned = PinnedPages {
            addr,
            len,
            locked: false,
        };
        // SAFETY: `addr..addr + len` is the mapping just made; locking faults its pages in
        // without reading them into this process.
        if unsafe { libc::mlock(addr, len) } != 0 {
            report_pin_failure(&format!("mlock: {}", io::Error::last_os_error()));
            return None; // `pinned` unmaps on drop.
        }
        pinned.locked = true;
        PINNED_BYTES.fetch_add(len as u64, Ordering::Relaxed);
        Some(pinned)
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `pin`, unmapped exactly once; this also unlocks it.
        unsafe { libc::munmap(self.addr, self.len) };
        PINNED_SEGMENTS.fetch_sub(1, Ordering::Relaxed);
        if self.locked {
            PINNED_BYTES.fetch_sub(self.len as u64, Ordering::Relaxed);
        }
    }
}

/// A shared read-only mapping of `file`'s first `len` bytes, for holding or inspecting its
/// pages; nothing reads through it.
fn map_unread(file: &File, len: usize) -> io::Result<*mut libc::c_void> {
    // SAFETY: a fresh mapping of an open file at an address the kernel chooses, so no
    // existing memory is replaced.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(addr)
    }
}

/// Once per process: pinning is a safeguard, so its failure is a warning, not an error.
fn report_pin_failure(reason: &str) {
    PIN_FAILURE_REPORTED.call_once(|| {
        tracing::warn!(
            reason,
            "cannot pin cached segments' pages: hits on unpinned segments may wait for the \
             disk if the kernel drops their pages; raise LimitMEMLOCK (or RLIMIT_MEMLOCK) to \
             the segment cache size"
        );
    });
}

/// Reads `path` and returns its bytes with the open file, for zero-copy sends; with `pin_pages`, the file's pages stay in the page cache while the bytes live. With
/// `expected`, bytes whose SHA-256 differs are refused (hashed on the blocking thread that
/// reads them, once per load).
pub(crate) async fn load(
    path: &Path,
    pin_pages: bool,
    expected: Option<[u8; 32]>,
) -> Result<FileBacked, LoadFailure> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || load_blocking(&path, pin_pages, expected)).await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(format!("loader task failed: {e}")).into()),
    }
}

fn load_blocking(
    path: &Path,
    pin_pages: bool,
    expected: Option<[u8; 32]>,
) -> Result<FileBacked, LoadFailure> {
    let mut file = File::open(path)?;
    let before = Stamp::of(file.as_raw_fd())?;
    let len =
        usize::try_from(before.size).map_err(|_| io::Error::other("segment larger than memory"))?;
    let mut bytes = Vec::with_capacity(len);
    file.read_to_end(&mut bytes)?;
    let stamp = Stamp::of(file.as_raw_fd())?;
    if bytes.len() != len || stamp != before {
        return Err(io::Error::other(format!(
            "file changed while read ({} of {len} bytes read)",
            bytes.len()
        ))
        .into());
    }
    if let Some(expected) = &expected {
        check_digest(&bytes, expected)?;
    }
    if bytes.is_empty() {
        return Ok(FileBacked::default());
    }
    let pinned = if pin_pages {
        PinnedPages::pin(&file, len)
    } else {
        None
    };
    let file = StoreFile {
        file,
        stamp,
        changed: AtomicBool::new(false),
        path: path.into(),
        _pinned: pinned,
    };
    Ok(FileBacked {
        bytes: Bytes::from(bytes),
        source: Some((Arc::new(file), 0)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[tokio::test]
    async fn loads_and_keeps_its_file_until_the_last_clone_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let segment = load(&path, true, None).await.unwrap();
        assert_eq!(&segment.bytes()[..], &data[..]);

        let bytes = segment.bytes();
        let whole = segment
            .file_slice(bytes)
            .expect("a loaded segment has its file");
        assert_eq!(whole.offset, 0);
        assert_eq!(segment.file_slice(&bytes[1000..2000]).unwrap().offset, 1000);
        let ranged = segment.slice(1000..=1999);
        assert_eq!(ranged.file_slice(ranged.bytes()).unwrap().offset, 1000);
        assert_eq!(
            ranged.file_slice(&ranged.bytes()[10..]).unwrap().offset,
            1010
        );
        // Other memory is not mistaken for the segment's, nor is a slice reaching past it.
        assert!(segment.file_slice(&data[..]).is_none());
        assert!(ranged.file_slice(&bytes[1000..2001]).is_none());
        assert!(ranged.file_slice(&bytes[999..1999]).is_none());
        assert!(
            FileBacked::in_memory(bytes.clone())
                .file_slice(bytes)
                .is_none()
        );

        // The file reads the same bytes at the same offsets, even once the path is gone.
        std::fs::remove_file(&path).unwrap();
        let mut probe = [0u8; 1000];
        // SAFETY: test-only read from an fd the segment holds open, into a local buffer.
        let read = unsafe {
            libc::pread(
                whole.fd.as_raw_fd(),
                probe.as_mut_ptr().cast(),
                probe.len(),
                1000,
            )
        };
        assert_eq!(read, 1000);
        assert_eq!(&probe[..], &bytes[1000..2000]);
        // But the file changed (its link count, so its ctime): it is no longer sent from.
        assert!(
            segment.file_slice(bytes).is_none(),
            "a changed store file is not sent from"
        );

        let file = Arc::downgrade(&segment.source.as_ref().expect("file-backed").0);
        let clone = segment.clone();
        drop(segment);
        assert!(file.upgrade().is_some(), "a clone keeps the file open");
        drop(clone);
        assert!(file.upgrade().is_some(), "so does a slice");
        drop(ranged);
        assert!(file.upgrade().is_none(), "the last one closes it");
    }

    #[tokio::test]
    async fn bytes_that_fail_their_digest_are_refused_and_a_file_written_after_load_is_not_sent_from()
     {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data = vec![9u8; 64 * 1024];
        std::fs::write(&path, &data).unwrap();
        let digest: [u8; 32] = {
            use sha2::Digest as _;
            sha2::Sha256::digest(&data).into()
        };
        let mut other = digest;
        other[0] ^= 1;
        let refused = load(&path, true, Some(other)).await.unwrap_err();
        assert!(matches!(refused, LoadFailure::Mismatch { .. }), "{refused}");

        let segment = load(&path, true, Some(digest)).await.unwrap();
        let bytes = segment.bytes();
        assert!(segment.file_slice(bytes).is_some());
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(100)).unwrap();
        f.write_all(&[1]).unwrap();
        assert!(
            segment.file_slice(bytes).is_none(),
            "written in place: no file slice"
        );
        assert!(segment.file_slice(bytes).is_none(), "nor later");
        assert_eq!(&bytes[..], &data[..], "the checked copy is unchanged");
    }

    /// Residency of each page of `file`'s first `len` bytes in the page cache (mincore on a
    /// mapping of our own, which it does not fault in).
    pub(crate) fn resident_pages(file: &File, len: usize) -> usize {
        let addr = map_unread(file, len).expect("mapping the file");
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `vec` has one byte per page of the mapping (4 KiB pages on Linux x86-64/arm64
        // defaults; a larger page size only leaves bytes unused).
        assert_eq!(unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) }, 0);
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(addr, len) };
        vec.iter().filter(|&&v| v & 1 == 1).count()
    }

    /// Asks the kernel to drop the file's clean pages from the page cache, as reclaim would.
    pub(crate) fn drop_from_page_cache(file: &File) {
        // SAFETY: advice on an open fd; it changes no memory of ours.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
    }

    #[tokio::test]
    async fn a_cached_segment_keeps_its_pages_in_the_page_cache_until_dropped() {
        // On the checkout's disk, not /tmp: tmpfs pages are not dropped by the advice.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("seg");
        let len = 256 * 1024;
        let data: Vec<u8> = (0..len as u32).map(|i| (i % 241) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let probe = File::open(&path).unwrap();
        // Clean pages only: dirty ones are not dropped by the advice.
        probe.sync_all().unwrap();
        let pages = len / 4096;

        let bytes = load(&path, true, None).await.unwrap();
        assert!(pinned_bytes() >= len as u64);
        drop_from_page_cache(&probe);
        assert_eq!(
            resident_pages(&probe, len),
            pages,
            "a pinned segment's pages stay"
        );

        drop(bytes);
        drop_from_page_cache(&probe);
        assert!(
            resident_pages(&probe, len) < pages,
            "once the segment is gone its pages can go (else this test proves nothing)"
        );

        // `server.pin_segment_pages = false`: the pages are the kernel's to drop.
        let unpinned = load(&path, false, None).await.unwrap();
        assert_eq!(&unpinned.bytes()[..], &data[..]);
        drop_from_page_cache(&probe);
        assert!(resident_pages(&probe, len) < pages, "unpinned pages can go");
    }

    #[test]
    fn the_pin_cap_is_a_quarter_of_the_map_count() {
        assert_eq!(pin_cap_for_map_count("65530\n"), Some(16_382));
        assert_eq!(pin_cap_for_map_count("1048576"), Some(262_144));
        assert_eq!(pin_cap_for_map_count("2"), Some(1));
        assert_eq!(pin_cap_for_map_count("lots"), None);
        let here = std::fs::read_to_string("/proc/sys/vm/max_map_count").expect("Linux");
        assert_eq!(Some(max_pinned_segments()), pin_cap_for_map_count(&here));
    }

    #[tokio::test]
    async fn empty_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        assert!(load(&path, true, None).await.unwrap().bytes().is_empty());
        let err = load(&dir.path().join("nope"), true, None)
            .await
            .unwrap_err();
        assert!(matches!(err, LoadFailure::Io(e) if e.kind() == io::ErrorKind::NotFound));
    }
}
