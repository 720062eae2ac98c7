//! Fingerprints of album sources, so ingest can tell which tracks and settings changed.
//!
//! Both fingerprints are stored by the packaged store and compared on the next ingest; a
//! change of format makes every album look changed and forces a full re-ingest, so the
//! formats (lowercase hex SHA-256 of the raw bytes; the literal `none`) are frozen:
//! DO NOT CHANGE.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{AlbumSource, TrackSource};

/// Read size for hashing: large enough to keep syscalls cheap, small enough to stay in cache.
const BUF_SIZE: usize = 64 * 1024;

/// What [`album_info_fingerprint`] returns for an album without `album.toml`.
pub const NO_ALBUM_TOML: &str = "none";

/// SHA-256 of the track's file bytes, lowercase hex (64 characters). Streams the file, so
/// memory use does not grow with the file.
pub fn source_fingerprint(track: &TrackSource) -> io::Result<String> {
    file_sha256_hex(&track.path)
}

/// SHA-256 of the album's `album.toml` bytes as they are on disk now, lowercase hex; or
/// [`NO_ALBUM_TOML`] when the album has no `album.toml`.
pub fn album_info_fingerprint(album: &AlbumSource) -> io::Result<String> {
    match file_sha256_hex(&album.album_toml_path()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(NO_ALBUM_TOML.to_owned()),
        other => other,
    }
}

/// SHA-256 of a file's bytes, lowercase hex.
pub fn file_sha256_hex(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::load_album;
    use std::fs;

    #[test]
    fn known_digests() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("01.flac");
        fs::write(&p, b"abc").unwrap();
        let t = TrackSource {
            number: 1,
            path: p.clone(),
            file_name: "01.flac".into(),
        };
        assert_eq!(
            source_fingerprint(&t).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Larger than one buffer, so the streaming loop runs more than once.
        fs::write(&p, vec![0u8; BUF_SIZE * 2 + 7]).unwrap();
        let whole = hex::encode(Sha256::digest(vec![0u8; BUF_SIZE * 2 + 7]));
        assert_eq!(source_fingerprint(&t).unwrap(), whole);
    }

    #[test]
    fn album_toml_fingerprint_tracks_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fp");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("01.flac"), b"x").unwrap();
        let album = load_album(&dir).unwrap();
        assert_eq!(album_info_fingerprint(&album).unwrap(), "none");

        fs::write(dir.join("album.toml"), "title = \"A\"").unwrap();
        let a = album_info_fingerprint(&album).unwrap();
        fs::write(dir.join("album.toml"), "title = \"B\"").unwrap();
        let b = album_info_fingerprint(&album).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn missing_track_is_an_io_error() {
        let t = TrackSource {
            number: 1,
            path: "/nonexistent/01.flac".into(),
            file_name: "01.flac".into(),
        };
        assert!(source_fingerprint(&t).is_err());
    }
}
