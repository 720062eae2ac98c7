//! Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.
//!
//! After [`write_atomic`] returns `Ok`, a reader sees either the old file or the new one, never a
//! mix, and the new one survives a crash or power loss. Every fsync error is returned (fail
//! closed): a write we cannot make durable is reported as failed, never acknowledged.
//!
//! Unix only: modes and directory fsync come from `std::os::unix`.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode for directories created by [`create_dir_all_durable`].
pub const DIR_MODE: u32 = 0o755;
/// Mode for a directory only its owner may enter (the data folder: the ledger is in it).
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode for files only their owner may read (the ledger's: user and order ids).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// How many temp names to try before giving up; each clash means a stale temp file from an
/// earlier process with the same pid, so more than a handful is a sign of something odd.
const TEMP_ATTEMPTS: u32 = 64;

/// Per-process counter so concurrent writers in one process never pick the same temp name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes`, atomically and durably, leaving the file with exactly `mode`
/// (e.g. `0o600` for secrets, `0o644` for public files).
///
/// The temp file is created with `O_EXCL` and `mode` (so a secret is never readable by others,
/// whatever the old file's mode was), then set to exactly `mode` regardless of the umask,
/// written, fsynced, renamed over `path`; finally the directory is fsynced so the rename itself
/// is durable. On error the temp file is removed and `path` is left as it was (unless only the
/// final directory fsync failed: the new content may then be visible but is not known durable).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let (tmp_path, file) = create_temp(dir, name, mode)?;
    let result = fill_and_commit(file, &tmp_path, path, bytes, mode);
    if result.is_err() {
        // Best effort: after a successful rename the temp name no longer exists.
        let _ = fs::remove_file(&tmp_path);
    }
    result.and_then(|()| sync_dir(dir))
}

/// Replaces `path` with `bytes` atomically (a reader sees the old file or the new one whole)
/// but not durably: no fsync, so after a crash the file may be old, new, or empty. Only for
/// copies of something kept elsewhere that are checked against it when used (an origin's
/// records fetched from the bucket), where an fsync costs more than fetching again.
pub fn replace_unsynced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let (tmp_path, mut file) = create_temp(parent_dir(path), name, mode)?;
    let result = file
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp_path, path)
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

fn fill_and_commit(
    mut file: File,
    tmp_path: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> io::Result<()> {
    // The umask may have cleared bits of `mode` at creation; fchmod sets it exactly.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp_path, path)
}

/// Creates a fresh temp file next to the target: `.<name>.tmp.<pid>.<n>`, with `O_EXCL`.
fn create_temp(dir: &Path, name: &std::ffi::OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut last_err = None;
    for _ in 0..TEMP_ATTEMPTS {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp.{pid}.{n}"));
        let tmp_path = dir.join(tmp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp_path)
        {
            Ok(file) => return Ok((tmp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not pick a temp file name")))
}

/// Creates `path` and any missing ancestors (mode [`DIR_MODE`]), fsyncing each new directory
/// and the parent it was created in, so the new tree survives a crash.
pub fn create_dir_all_durable(path: &Path) -> io::Result<()> {
    create_dir_all_durable_with_mode(path, DIR_MODE)
}

/// Like [`create_dir_all_durable`], but the last component, if it has to be created, gets
/// exactly `mode` (e.g. `0o700` for a directory of secrets). Missing ancestors get
/// [`DIR_MODE`]. An existing directory is left as it is.
pub fn create_dir_all_durable_with_mode(path: &Path, mode: u32) -> io::Result<()> {
    // Walk up to the first ancestor that exists, then create downwards.
    let mut missing = Vec::new();
    let mut cur = path;
    loop {
        match fs::metadata(cur) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", cur.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(cur);
                match cur.parent() {
                    Some(p) if !p.as_os_str().is_empty() => cur = p,
                    _ => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    for (i, dir) in missing.iter().rev().enumerate() {
        let is_leaf = i + 1 == missing.len();
        let dir_mode = if is_leaf { mode } else { DIR_MODE };
        match DirBuilder::new().mode(dir_mode).create(dir) {
            Ok(()) => {
                // Exact mode despite the umask, then make the entry and the inode durable.
                fs::set_permissions(dir, Permissions::from_mode(dir_mode))?;
                sync_dir(dir)?;
                sync_dir(parent_dir(dir))?;
            }
            // Someone else created it between our check and now: fine if it is a directory.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes `path` readable and writable by its owner only: created empty with
/// [`PRIVATE_FILE_MODE`] when absent, narrowed to it when it exists with more (a file made
/// by an older version); also each of `companions` (`path` with that suffix) that exists.
/// A database opened afterwards then finds its file private, and SQLite gives the `-wal` and
/// `-shm` files it creates the database file's mode.
pub fn make_private(path: &Path, companions: &[&str]) -> io::Result<()> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path);
    match created {
        Ok(file) => {
            file.sync_all()?;
            sync_dir(parent_dir(path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let mut all = vec![path.to_path_buf()];
    all.extend(companions.iter().map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }));
    for file in all {
        match fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o7777 != PRIVATE_FILE_MODE => {
                fs::set_permissions(&file, Permissions::from_mode(PRIVATE_FILE_MODE))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fsyncs the directory `path`, making renames and creations inside it durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The directory holding `path`; `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn write_atomic_creates_with_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.json");
        write_atomic(&secret, b"s3cret", 0o600).unwrap();
        assert_eq!(fs::read(&secret).unwrap(), b"s3cret");
        assert_eq!(mode_of(&secret), 0o600);

        let public = dir.path().join("public.pem");
        write_atomic(&public, b"pub", 0o644).unwrap();
        assert_eq!(mode_of(&public), 0o644);
    }

    #[test]
    fn write_atomic_replaces_and_resets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old content", 0o644).unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn write_atomic_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5u8 {
            write_atomic(&dir.path().join("f"), &[i], 0o600).unwrap();
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("f")]);
    }

    #[test]
    fn write_atomic_fails_without_directory_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("f");
        assert!(write_atomic(&path, b"x", 0o600).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn write_atomic_rejects_a_path_without_file_name() {
        let err = write_atomic(Path::new("/"), b"x", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn concurrent_writers_never_tear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, &[t; 4096], 0o600).unwrap();
                    }
                });
            }
        });
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]));
    }

    #[test]
    fn create_dir_all_durable_makes_tree_with_leaf_mode() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir.path().join("a").join("b").join("keys");
        create_dir_all_durable_with_mode(&leaf, 0o700).unwrap();
        assert!(leaf.is_dir());
        assert_eq!(mode_of(&leaf), 0o700);
        assert_eq!(mode_of(&dir.path().join("a")), DIR_MODE);
        // Idempotent, and an existing directory keeps its mode.
        create_dir_all_durable(&leaf).unwrap();
        assert_eq!(mode_of(&leaf), 0o700);
    }

    #[test]
    fn create_dir_all_durable_refuses_a_file_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(create_dir_all_durable(&file.join("sub")).is_err());
    }

    #[test]
    fn sync_dir_reports_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync_dir(&dir.path().join("nope")).is_err());
        sync_dir(dir.path()).unwrap();
    }
}
