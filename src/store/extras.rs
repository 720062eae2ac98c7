//! Buyer-only extras in the store: `<album>/extras/<id>.enc`, each one sealed file in the
//! segment format (docs/SEALING.md, "Extras") under a content key of its own.

use std::path::PathBuf;

use super::{Store, StoreError, check_name, io_err, sha256_hex};
use crate::durable;
use crate::seal::{SealContext, SegmentSlot};

/// Track number of an extra's key slot and seal: no track has it (tracks start at 1), so an
/// extra's key and AAD never equal a segment's. DO NOT CHANGE: stored extras are sealed with it.
pub const EXTRA_TRACK: u32 = 0;

/// Folder of an album's sealed extras inside its store folder.
pub const EXTRAS_FOLDER: &str = "extras";

/// The "rendition" name of extra `id` in its key slot and AAD (`extra:<id>`; no rendition
/// name has a colon). DO NOT CHANGE: stored extras are sealed with it.
pub fn extra_slot(id: &str) -> String {
    format!("extra:{id}")
}

/// Where extra `slot` (see [`extra_slot`]) of `album` belongs: bound into its seal's AAD, so
/// it opens only as that extra of that album.
pub fn extra_context<'a>(album: &'a str, slot: &'a str) -> SealContext<'a> {
    SealContext {
        album,
        track: EXTRA_TRACK,
        rendition: slot,
        slot: SegmentSlot::Media(1),
    }
}

impl Store {
    /// Path of a sealed extra's file `file` (as its record names it) of `album`.
    pub fn extra_path(&self, album: &str, file: &str) -> Result<PathBuf, StoreError> {
        let stem = file
            .strip_suffix(".enc")
            .ok_or_else(|| StoreError::BadName(file.to_string()))?;
        check_name(stem)?;
        Ok(self.album_dir(album)?.join(EXTRAS_FOLDER).join(file))
    }

    /// Writes extra `id`'s sealed bytes durably; returns its file name and SHA-256.
    pub fn write_extra(
        &self,
        album: &str,
        id: &str,
        sealed: &[u8],
    ) -> Result<(String, String), StoreError> {
        let file = format!("{}.enc", check_name(id)?);
        let path = self.extra_path(album, &file)?;
        if let Some(dir) = path.parent() {
            durable::create_dir_all_durable(dir).map_err(io_err("create", dir))?;
        }
        durable::write_atomic(&path, sealed, 0o644).map_err(io_err("write", &path))?;
        Ok((file, sha256_hex(sealed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_files_stay_in_the_extras_folder() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = Store::new(tmp.path());
        let (file, sha) = store.write_extra("a", "letter", b"sealed").expect("write");
        assert_eq!(file, "letter.enc");
        assert_eq!(sha, sha256_hex(b"sealed"));
        let path = store.extra_path("a", &file).expect("path");
        assert_eq!(std::fs::read(path).expect("read"), b"sealed");
        for bad in ["../x.enc", "x", "X.enc", ".enc", "a/b.enc"] {
            assert!(store.extra_path("a", bad).is_err(), "{bad}");
        }
        assert!(store.write_extra("a", "../up", b"x").is_err());
    }
}
