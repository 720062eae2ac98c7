//! An exclusive advisory lock (`flock`) on the keys directory, so two processes (say, two
//! `encore ingest` runs, or ingest and a rotation) never read-modify-write key files at once:
//! a lost update there would lose a content key, and with it the music sealed under it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::KeyError;
use super::layout::LOCK_FILE;

/// Held while alive; closing the file releases the lock (also when the process dies).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Blocks until this process holds the lock file `path` (created 0600 if missing).
    pub(crate) fn acquire(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // std's `File::lock` is flock(LOCK_EX) on Unix.
        file.lock()?;
        Ok(Self { _file: file })
    }
}

/// Takes the lock of the keys directory `dir` (`keyring.lock`), blocking until it is free.
pub(crate) fn lock_keys_dir(dir: &Path) -> Result<DirLock, KeyError> {
    let path = dir.join(LOCK_FILE);
    DirLock::acquire(&path).map_err(KeyError::io("lock", &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn lock_excludes_other_holders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let inside = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        // Separate opens = separate open file descriptions, as in two processes.
                        let _lock = DirLock::acquire(&path).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
    }
}
