//! The output file: written under a temp name in the output's folder, fsynced and renamed
//! into place only once every segment passed; removed on any error or cancellation, so no
//! partial or unverified audio is ever left behind and an older file at the path survives.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::error::FetchError;

/// Temp names to try before giving up; a clash means a stale temp file from an earlier
/// process that had the same pid.
const TEMP_ATTEMPTS: u32 = 64;

/// Per-process counter so concurrent fetches in one process never pick the same temp name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written; dropped without [`PartialFile::commit`], it is removed.
pub(crate) struct PartialFile {
    dest: PathBuf,
    dir: PathBuf,
    tmp: PathBuf,
    file: File,
    committed: bool,
}

impl PartialFile {
    /// Creates the temp file next to `dest`. Done before any download, so an unwritable
    /// output fails fast.
    pub async fn create(dest: &Path) -> Result<Self, FetchError> {
        let name = dest.file_name().ok_or_else(|| FetchError::InvalidRequest {
            reason: format!("the output path {} does not name a file", dest.display()),
        })?;
        if tokio::fs::metadata(dest).await.is_ok_and(|m| m.is_dir()) {
            return Err(FetchError::InvalidRequest {
                reason: format!(
                    "the output path {} is a folder: give a file name, e.g. track.m4a",
                    dest.display()
                ),
            });
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut last_clash = None;
        for _ in 0..TEMP_ATTEMPTS {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(
                ".{}.{}-{n}.part",
                name.to_string_lossy(),
                std::process::id()
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .await
            {
                Ok(file) => {
                    return Ok(Self {
                        dest: dest.to_path_buf(),
                        dir,
                        tmp,
                        file,
                        committed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_clash = Some(e),
                Err(source) => {
                    return Err(FetchError::Output {
                        action: "create a temp file in",
                        path: dir,
                        source,
                    });
                }
            }
        }
        Err(FetchError::Output {
            action: "create a temp file in",
            path: dir,
            source: last_clash.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()),
        })
    }

    /// Appends `bytes`.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|source| FetchError::Output {
                action: "write",
                path: self.tmp.clone(),
                source,
            })
    }

    /// Makes the file durable and moves it to its final path.
    pub async fn commit(mut self) -> Result<(), FetchError> {
        let tmp = self.tmp.clone();
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchError::Output {
                action,
                path,
                source,
            }
        };
        self.file.flush().await.map_err(io("write", &tmp))?;
        self.file.sync_all().await.map_err(io("sync", &tmp))?;
        tokio::fs::rename(&self.tmp, &self.dest)
            .await
            .map_err(io("rename into place", &self.dest))?;
        self.committed = true;
        // The rename is only durable once the folder is synced.
        let dir = File::open(&self.dir)
            .await
            .map_err(io("open the folder", &self.dir))?;
        dir.sync_all()
            .await
            .map_err(io("sync the folder", &self.dir))
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: there is nobody left to tell about a failure here.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn commit_renames_and_drop_removes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.m4a");
        let mut f = PartialFile::create(&dest).await.unwrap();
        f.write(b"hello ").await.unwrap();
        f.write(b"world").await.unwrap();
        assert!(!dest.exists());
        f.commit().await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
        assert_eq!(names(dir.path()), vec!["a.m4a"]);

        let mut g = PartialFile::create(&dest).await.unwrap();
        g.write(b"partial").await.unwrap();
        drop(g);
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
        assert_eq!(names(dir.path()), vec!["a.m4a"]);
    }

    #[tokio::test]
    async fn a_folder_or_missing_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = PartialFile::create(dir.path()).await.err().unwrap();
        assert!(err.to_string().contains("is a folder"), "{err}");
        let err = PartialFile::create(&dir.path().join("nope/a.m4a"))
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("cannot create a temp file in"),
            "{err}"
        );
    }
}
