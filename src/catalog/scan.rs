//! Finding albums on disk: album folders, their tracks in order, `album.toml` and cover art.
//!
//! Layout: `media/<album-id>/` holds the audio files of one album. Tracks are the files with a
//! decodable audio extension, sorted by file name in byte order (so `01-…` < `02-…` < `10-…`,
//! but `10-…` < `2-…`: zero-pad track prefixes) and numbered from 1. Track numbers are part of
//! every segment URL and seal, so this order is a contract: DO NOT CHANGE the sort.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::album_toml::{ALBUM_TOML, AlbumInfo, PreviewWindow};
use super::slug::slug_problem;
use super::{AlbumId, CatalogError};

/// File extensions (lowercase, matched case-insensitively) of the audio files that are tracks:
/// the containers our symphonia build can open and decode.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "flac", "wav", "wave", "mp3", "m4a", "aac", "ogg", "oga", "aif", "aiff", "aifc", "caf",
];

/// Audio formats we recognise but cannot decode (Opus has no symphonia decoder; the rest have
/// no demuxer or decoder in our build). They are skipped with a warning rather than silently,
/// so a missing track is explained in the log.
const UNSUPPORTED_AUDIO_EXTENSIONS: &[&str] = &[
    "opus", "wma", "ape", "wv", "mka", "webm", "mpc", "dsf", "dff", "tta", "mp4",
];

/// Cover art looked for, in this order, when `album.toml` names none (case-insensitive).
pub const COVER_CANDIDATES: &[&str] = &[
    "cover.jpg",
    "cover.jpeg",
    "cover.png",
    "folder.jpg",
    "folder.png",
    "front.jpg",
];

/// One album folder as found on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct AlbumSource {
    /// The album id: the folder name.
    pub id: AlbumId,
    /// The album folder.
    pub dir: PathBuf,
    /// The validated `album.toml`, if the folder has one.
    pub info: Option<AlbumInfo>,
    /// The tracks, in file-name order, numbered from 1. Never empty.
    pub tracks: Vec<TrackSource>,
    /// The cover image: `album.toml`'s `cover`, else the first of [`COVER_CANDIDATES`].
    pub cover: Option<PathBuf>,
}

/// One audio file of an album.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackSource {
    /// Track number, from 1, in file-name order.
    pub number: u32,
    /// Full path of the audio file.
    pub path: PathBuf,
    /// The file name alone (what `[[tracks]] file = ...` in `album.toml` matches).
    pub file_name: String,
}

impl AlbumSource {
    /// Track `number` (from 1), if the album has it.
    pub fn track(&self, number: u32) -> Option<&TrackSource> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        self.tracks.get(index)
    }

    /// The preview window of track `number`: from `album.toml`, else the default (first 30 s).
    pub fn preview_window(&self, number: u32) -> PreviewWindow {
        self.info
            .as_ref()
            .map_or(PreviewWindow::DEFAULT, |i| i.preview_window(number))
    }

    /// Where this album's `album.toml` is (whether or not it exists).
    pub fn album_toml_path(&self) -> PathBuf {
        self.dir.join(ALBUM_TOML)
    }
}

/// Scans `media` for album folders: every non-hidden directory directly inside it.
///
/// Returns one result per album folder, in folder-name (byte) order: the album, or why that
/// folder is not one (bad name, invalid `album.toml`, no audio, unreadable). Per-folder results
/// mean one bad folder neither hides the others nor goes unreported; callers serve the `Ok`s
/// and report the `Err`s. Plain files and hidden entries (names starting with `.`) at the top
/// level are skipped silently. Fails as a whole only when `media` itself cannot be listed.
pub fn scan_media_dir(
    media: &Path,
) -> Result<Vec<Result<AlbumSource, CatalogError>>, CatalogError> {
    let entries = fs::read_dir(media).map_err(|e| CatalogError::io(media, e))?;
    let mut candidates = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CatalogError::io(media, e))?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            tracing::debug!(path = %entry.path().display(), "skipping hidden entry");
            continue;
        }
        candidates.push((name, entry.path()));
    }
    // OsString order is byte order on Unix: the same order on every machine and every run.
    candidates.sort();

    let mut results = Vec::with_capacity(candidates.len());
    for (name, path) in candidates {
        // Follow symlinks: an album folder linked in from elsewhere is still an album.
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_dir() => {
                tracing::debug!(path = %path.display(), "skipping non-folder");
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                results.push(Err(CatalogError::io(&path, e)));
                continue;
            }
        }
        let problem = match name.to_str() {
            None => Some("it is not valid UTF-8"),
            Some(s) => slug_problem(s),
        };
        results.push(match problem {
            Some(reason) => Err(CatalogError::BadAlbumFolder { dir: path, reason }),
            None => load_album(&path),
        });
    }
    Ok(results)
}

/// Loads one album folder: id from the folder name, tracks, `album.toml`, cover.
///
/// Only the folder's own files are looked at (no recursion). Skipped: hidden files, `*.tmp`
/// (partial copies), `album.toml`, images and anything else without an audio extension.
pub fn load_album(dir: &Path) -> Result<AlbumSource, CatalogError> {
    let id = album_id_of(dir)?;
    let entries = fs::read_dir(dir).map_err(|e| CatalogError::io(dir, e))?;

    let mut audio = Vec::new();
    // Lowercased file name → real file name, for case-insensitive cover lookup.
    let mut files_by_lower: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| CatalogError::io(dir, e))?;
        let path = entry.path();
        let os_name = entry.file_name();
        if os_name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let meta = fs::metadata(&path).map_err(|e| CatalogError::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let Some(name) = os_name.to_str() else {
            if AUDIO_EXTENSIONS.contains(&ext.as_str()) {
                return Err(CatalogError::NonUtf8FileName { path });
            }
            continue;
        };
        files_by_lower
            .entry(name.to_lowercase())
            .and_modify(|kept| {
                if name < kept.as_str() {
                    *kept = name.to_owned();
                }
            })
            .or_insert_with(|| name.to_owned());
        if ext == "tmp" || name == ALBUM_TOML {
            continue;
        }
        if AUDIO_EXTENSIONS.contains(&ext.as_str()) {
            audio.push(name.to_owned());
        } else if UNSUPPORTED_AUDIO_EXTENSIONS.contains(&ext.as_str()) {
            tracing::warn!(
                path = %path.display(),
                "skipping audio file in a format encore cannot decode (use FLAC, WAV, MP3, AAC/M4A or Ogg Vorbis)"
            );
        }
    }

    let toml_path = dir.join(ALBUM_TOML);
    let mut info = match fs::read_to_string(&toml_path) {
        Ok(text) => Some(AlbumInfo::parse(&text, &toml_path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(CatalogError::io(&toml_path, e)),
    };

    if audio.is_empty() {
        return Err(CatalogError::EmptyAlbum {
            dir: dir.to_owned(),
        });
    }
    // String order is byte order: see the module doc.
    audio.sort();
    let tracks: Vec<TrackSource> = (1u32..)
        .zip(audio)
        .map(|(number, file_name)| TrackSource {
            number,
            path: dir.join(&file_name),
            file_name,
        })
        .collect();

    if let Some(info) = info.as_mut() {
        info.bind_tracks(&toml_path, &tracks)?;
    }

    let cover = match info.as_ref().and_then(|i| i.cover.as_deref()) {
        Some(cover) => {
            let path = dir.join(cover);
            if !path.is_file() {
                return Err(CatalogError::CoverMissing {
                    dir: dir.to_owned(),
                    cover: cover.to_owned(),
                    path,
                });
            }
            Some(path)
        }
        None => COVER_CANDIDATES
            .iter()
            .find_map(|c| files_by_lower.get(*c))
            .map(|name| dir.join(name)),
    };

    Ok(AlbumSource {
        id,
        dir: dir.to_owned(),
        info,
        tracks,
        cover,
    })
}

/// The album id a folder's name gives, or why it gives none.
fn album_id_of(dir: &Path) -> Result<AlbumId, CatalogError> {
    let bad = |reason| CatalogError::BadAlbumFolder {
        dir: dir.to_owned(),
        reason,
    };
    let name = dir
        .file_name()
        .ok_or_else(|| bad("the path does not end in a folder name"))?;
    let name = name.to_str().ok_or_else(|| bad("it is not valid UTF-8"))?;
    match slug_problem(name) {
        Some(reason) => Err(bad(reason)),
        None => AlbumId::parse(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(dir: &Path, name: &str) {
        fs::write(dir.join(name), name.as_bytes()).unwrap();
    }

    fn album(media: &Path, id: &str, files: &[&str]) -> PathBuf {
        let dir = media.join(id);
        fs::create_dir_all(&dir).unwrap();
        for f in files {
            touch(&dir, f);
        }
        dir
    }

    fn names(a: &AlbumSource) -> Vec<(u32, &str)> {
        a.tracks
            .iter()
            .map(|t| (t.number, t.file_name.as_str()))
            .collect()
    }

    #[test]
    fn tracks_sorted_by_byte_order_and_numbered_from_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = album(
            tmp.path(),
            "alpha",
            &[
                "02-b.MP3",
                "01-a.flac",
                "10-j.ogg",
                "B-upper.wav",
                "a-lower.m4a",
                "03-c.Flac",
                "album.toml",
                "cover.png",
                ".hidden.flac",
                "04-d.flac.tmp",
                "notes.txt",
                "05-e.opus",
            ],
        );
        fs::write(dir.join("album.toml"), "title = \"Alpha\"").unwrap();
        fs::create_dir(dir.join("sub.flac")).unwrap();
        let a = load_album(&dir).unwrap();
        assert_eq!(a.id.as_str(), "alpha");
        assert_eq!(
            names(&a),
            [
                (1, "01-a.flac"),
                (2, "02-b.MP3"),
                (3, "03-c.Flac"),
                (4, "10-j.ogg"),
                (5, "B-upper.wav"),
                (6, "a-lower.m4a"),
            ]
        );
        assert_eq!(a.tracks[0].path, dir.join("01-a.flac"));
        assert_eq!(a.track(2).unwrap().file_name, "02-b.MP3");
        assert!(a.track(0).is_none() && a.track(7).is_none());
        assert_eq!(a.info.unwrap().title.as_deref(), Some("Alpha"));
    }

    #[test]
    fn scan_reports_bad_folders_and_keeps_good_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tmp.path();
        album(m, "b-album", &["01.flac"]);
        album(m, "a-album", &["01.mp3"]);
        album(m, "Bad Name", &["01.flac"]);
        album(m, "empty", &["cover.jpg", "album.toml.tmp"]);
        album(m, ".hidden", &["01.flac"]);
        album(m, "broken-toml", &["01.flac", "album.toml"]);
        touch(m, "README.md");
        touch(m, ".DS_Store");

        let scan = scan_media_dir(m).unwrap();
        let ids: Vec<_> = scan
            .iter()
            .map(|r| match r {
                Ok(a) => a.id.to_string(),
                Err(e) => format!("error: {e}"),
            })
            .collect();
        assert_eq!(ids.len(), 5, "{ids:#?}");
        // Folder-name byte order: "Bad Name" < "a-album" < "b-album" < "broken-toml" < "empty".
        assert!(
            ids[0].starts_with(&format!(
                "error: {}: folder name is not a valid album id: it contains uppercase letters",
                m.join("Bad Name").display()
            )),
            "{}",
            ids[0]
        );
        assert_eq!(ids[1..3], ["a-album", "b-album"]);
        assert!(matches!(scan[0], Err(CatalogError::BadAlbumFolder { .. })));
        assert!(matches!(scan[3], Err(CatalogError::AlbumTomlSyntax { .. })));
        assert!(ids[3].contains("album.toml"), "{}", ids[3]);
        assert!(matches!(scan[4], Err(CatalogError::EmptyAlbum { .. })));
    }

    #[test]
    fn bad_folder_names() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            "Caps",
            "under_score",
            "-lead",
            "trail-",
            "dou--ble",
            "sp ace",
        ] {
            let dir = album(tmp.path(), name, &["01.flac"]);
            let e = load_album(&dir).unwrap_err();
            assert!(
                matches!(e, CatalogError::BadAlbumFolder { .. }),
                "{name}: {e}"
            );
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn empty_album_is_an_error_that_names_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = album(tmp.path(), "quiet", &["cover.jpg", "x.opus"]);
        fs::write(dir.join("album.toml"), "title = \"Quiet\"").unwrap();
        let e = load_album(&dir).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: no audio files", dir.display())),
            "{e}"
        );
        assert!(e.contains(".flac, .wav"), "{e}");
    }

    #[test]
    fn missing_media_dir_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let e = scan_media_dir(&tmp.path().join("nope")).unwrap_err();
        assert!(matches!(e, CatalogError::Io { .. }));
    }

    #[test]
    fn cover_discovery_order_and_case() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tmp.path();

        let dir = album(
            m,
            "c1",
            &["01.flac", "front.jpg", "Folder.PNG", "Cover.JPG"],
        );
        assert_eq!(load_album(&dir).unwrap().cover, Some(dir.join("Cover.JPG")));

        let dir = album(m, "c2", &["01.flac", "front.jpg", "folder.png"]);
        assert_eq!(
            load_album(&dir).unwrap().cover,
            Some(dir.join("folder.png"))
        );

        let dir = album(m, "c3", &["01.flac", "art.png"]);
        assert_eq!(load_album(&dir).unwrap().cover, None);
    }

    #[test]
    fn cover_from_album_toml() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = album(tmp.path(), "c4", &["01.flac", "cover.jpg"]);
        fs::create_dir(dir.join("art")).unwrap();
        touch(&dir.join("art"), "sleeve.png");
        fs::write(dir.join("album.toml"), "cover = \"art/sleeve.png\"").unwrap();
        assert_eq!(
            load_album(&dir).unwrap().cover,
            Some(dir.join("art/sleeve.png"))
        );

        fs::write(dir.join("album.toml"), "cover = \"gone.png\"").unwrap();
        let e = load_album(&dir).unwrap_err();
        assert!(matches!(e, CatalogError::CoverMissing { .. }), "{e}");
        assert!(e.to_string().contains("\"gone.png\""), "{e}");
    }

    #[test]
    fn album_toml_overrides_bind_to_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = album(tmp.path(), "o", &["01-a.flac", "02-b.mp3"]);
        fs::write(
            dir.join("album.toml"),
            "preview_start = 5\npreview_seconds = 15\n[[tracks]]\nfile = \"02-b.mp3\"\npreview_start = 9",
        )
        .unwrap();
        let a = load_album(&dir).unwrap();
        assert_eq!(a.preview_window(1).start_seconds, 5.0);
        assert_eq!(a.preview_window(2).start_seconds, 9.0);
        assert_eq!(a.preview_window(2).seconds, 15.0);

        fs::write(dir.join("album.toml"), "[[tracks]]\nfile = \"03-c.mp3\"").unwrap();
        let e = load_album(&dir).unwrap_err().to_string();
        assert!(e.contains("album.toml") && e.contains("03-c.mp3"), "{e}");
    }

    #[test]
    fn no_album_toml_means_default_preview() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = album(tmp.path(), "plain", &["01.flac"]);
        let a = load_album(&dir).unwrap();
        assert!(a.info.is_none());
        assert_eq!(a.preview_window(1), PreviewWindow::DEFAULT);
    }

    /// The demo album shipped in `media/` (made by `media/make-demo.sh`) must load as
    /// intended. Located from this file so it works from any crate that mounts the module.
    #[test]
    fn shipped_demo_album_loads() {
        let here = Path::new(file!()).parent().unwrap();
        let media = here.join("../../media");
        let scan = scan_media_dir(&media).unwrap();
        let albums: Vec<_> = scan.into_iter().map(Result::unwrap).collect();
        let a = albums
            .iter()
            .find(|a| a.id.as_str() == "first-light")
            .unwrap();
        assert_eq!(
            names(a),
            [
                (1, "01-dawn-chorus.flac"),
                (2, "02-low-tide.flac"),
                (3, "03-paper-boats.mp3"),
                (4, "04-long-shadows.ogg"),
            ]
        );
        assert_eq!(a.cover, Some(a.dir.join("cover.jpg")));
        let info = a.info.as_ref().unwrap();
        assert_eq!(info.title.as_deref(), Some("First Light"));
        assert_eq!(info.price.as_ref().unwrap().minor_units, 499);
        assert_eq!(
            a.preview_window(1),
            PreviewWindow {
                start_seconds: 5.0,
                seconds: 15.0
            }
        );
        assert_eq!(a.preview_window(3).start_seconds, 12.0);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_audio_name_is_an_error() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = album(tmp.path(), "bytes", &["01.flac"]);
        fs::write(dir.join(OsStr::from_bytes(b"02-\xff.flac")), b"x").unwrap();
        let e = load_album(&dir).unwrap_err();
        assert!(matches!(e, CatalogError::NonUtf8FileName { .. }), "{e}");
        fs::remove_file(dir.join(OsStr::from_bytes(b"02-\xff.flac"))).unwrap();
        fs::write(dir.join(OsStr::from_bytes(b"\xff.txt")), b"x").unwrap();
        assert_eq!(load_album(&dir).unwrap().tracks.len(), 1);
    }
}
