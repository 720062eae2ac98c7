//! `[[extras]]`: the album's buyer-only bonus files (a letter, photo cards, a short message),
//! checked as written; whether each file exists and is what its extension says is checked by
//! the ingest, which packages the rest of the album either way.

use std::path::{Component, Path};

use serde::Deserialize;

/// Folder inside the album folder that every extra lives in.
pub const EXTRAS_DIR: &str = "extras";

/// Longest an extra's id (its file stem) may be, in bytes.
pub const MAX_EXTRA_ID_LEN: usize = 64;

/// One `[[extras]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExtra {
    /// The file, `extras/<name>.<ext>` relative to the album folder.
    file: Option<String>,
    /// Title shown to fans.
    title: Option<String>,
}

/// What kind of file an extra is, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraKind {
    /// JPEG image.
    Jpeg,
    /// PNG image.
    Png,
    /// WebP image.
    Webp,
    /// PDF document (a letter).
    Pdf,
    /// MP4 video.
    Mp4,
    /// M4A (MP4 audio).
    M4a,
    /// MP3 audio.
    Mp3,
    /// Opus in Ogg.
    Opus,
}

impl ExtraKind {
    /// The kind an extension names (case-insensitive), if it is one encore accepts.
    pub fn from_extension(ext: &str) -> Option<ExtraKind> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => ExtraKind::Jpeg,
            "png" => ExtraKind::Png,
            "webp" => ExtraKind::Webp,
            "pdf" => ExtraKind::Pdf,
            "mp4" => ExtraKind::Mp4,
            "m4a" => ExtraKind::M4a,
            "mp3" => ExtraKind::Mp3,
            "opus" => ExtraKind::Opus,
            _ => return None,
        })
    }

    /// The MIME type the catalog lists and the delivery sends.
    pub fn mime(self) -> &'static str {
        match self {
            ExtraKind::Jpeg => "image/jpeg",
            ExtraKind::Png => "image/png",
            ExtraKind::Webp => "image/webp",
            ExtraKind::Pdf => "application/pdf",
            ExtraKind::Mp4 => "video/mp4",
            ExtraKind::M4a => "audio/mp4",
            ExtraKind::Mp3 => "audio/mpeg",
            ExtraKind::Opus => "audio/ogg",
        }
    }

    /// The most bytes an extra of this kind may have: images and letters are small, a short
    /// video or audio message is bounded so one album cannot fill the store.
    pub fn max_bytes(self) -> u64 {
        match self {
            ExtraKind::Jpeg | ExtraKind::Png | ExtraKind::Webp | ExtraKind::Pdf => 20 << 20,
            ExtraKind::Mp4 | ExtraKind::M4a | ExtraKind::Mp3 | ExtraKind::Opus => 100 << 20,
        }
    }

    /// Whether `bytes` start the way a file of this kind does (its magic number), so a file
    /// renamed to the wrong extension is refused at ingest rather than served as what it is not.
    pub fn matches(self, bytes: &[u8]) -> bool {
        match self {
            ExtraKind::Jpeg => bytes.starts_with(&[0xff, 0xd8, 0xff]),
            ExtraKind::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            ExtraKind::Webp => {
                bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP"
            }
            ExtraKind::Pdf => bytes.starts_with(b"%PDF-"),
            ExtraKind::Mp4 | ExtraKind::M4a => bytes.len() >= 8 && &bytes[4..8] == b"ftyp",
            ExtraKind::Mp3 => {
                bytes.starts_with(b"ID3")
                    || (bytes.len() >= 2 && bytes[0] == 0xff && bytes[1] >= 0xe0)
            }
            ExtraKind::Opus => bytes.starts_with(b"OggS"),
        }
    }
}

/// A validated `[[extras]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraSpec {
    /// The extra's id: its file stem, a lowercase slug, unique in the album.
    pub id: String,
    /// The file relative to the album folder (`extras/letter.pdf`).
    pub file: String,
    /// Title shown to fans (never empty).
    pub title: String,
    /// Its kind, from the extension.
    pub kind: ExtraKind,
}

/// Validates the `[[extras]]` entries; `Err` is (field, reason) for `AlbumTomlInvalid`.
pub(super) fn parse(raw: Vec<RawExtra>) -> Result<Vec<ExtraSpec>, (String, String)> {
    let mut out: Vec<ExtraSpec> = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        let field = |key: &str| format!("[[extras]] entry {}, {key}", i + 1);
        let file = e.file.ok_or_else(|| {
            (
                field("file"),
                "is missing (e.g. file = \"extras/letter.pdf\")".into(),
            )
        })?;
        let (id, kind) = check_file(&file).map_err(|r| (field("file"), r))?;
        let title = match e.title {
            Some(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => return Err((field("title"), "is missing or empty".into())),
        };
        if let Some(j) = out.iter().position(|o| o.id == id) {
            return Err((
                field("file"),
                format!(
                    "has the id {id:?} of entry {} (ids are file names without the extension)",
                    j + 1
                ),
            ));
        }
        out.push(ExtraSpec {
            id,
            file,
            title,
            kind,
        });
    }
    Ok(out)
}

/// `extras/<slug>.<known extension>`: the id and kind, or why not.
fn check_file(file: &str) -> Result<(String, ExtraKind), String> {
    let p = Path::new(file);
    let parts: Vec<Component<'_>> = p.components().collect();
    let name = match parts.as_slice() {
        [Component::Normal(dir), Component::Normal(name)]
            if *dir == EXTRAS_DIR && !file.contains('\\') =>
        {
            name.to_str().unwrap_or_default()
        }
        _ => {
            return Err(format!(
                "is {file:?}; an extra is a file directly in the album's {EXTRAS_DIR}/ folder"
            ));
        }
    };
    let (stem, ext) = name
        .rsplit_once('.')
        .ok_or_else(|| format!("is {file:?}, which has no extension"))?;
    let kind = ExtraKind::from_extension(ext).ok_or_else(|| {
        format!("is {file:?}; extras are jpg, png, webp, pdf, mp4, m4a, mp3 or opus files")
    })?;
    let slug = !stem.is_empty()
        && stem.len() <= MAX_EXTRA_ID_LEN
        && !stem.starts_with('-')
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !slug {
        return Err(format!(
            "is {file:?}; the name before the extension is the extra's id: lowercase letters, \
             digits and '-', at most {MAX_EXTRA_ID_LEN} bytes"
        ));
    }
    Ok((stem.to_owned(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(file: &str, title: &str) -> RawExtra {
        RawExtra {
            file: Some(file.into()),
            title: Some(title.into()),
        }
    }

    #[test]
    fn accepts_files_in_the_extras_folder() {
        let got = parse(vec![
            raw("extras/letter.pdf", " A letter "),
            raw("extras/card-1.PNG", "Card"),
        ])
        .expect("valid");
        assert_eq!(got[0].id, "letter");
        assert_eq!(got[0].title, "A letter");
        assert_eq!(got[0].kind, ExtraKind::Pdf);
        assert_eq!(got[1].kind.mime(), "image/png");
    }

    #[test]
    fn refuses_paths_kinds_ids_and_duplicates() {
        for bad in [
            "letter.pdf",
            "extras/../letter.pdf",
            "/extras/letter.pdf",
            "extras/sub/letter.pdf",
            "extras/letter.exe",
            "extras/Letter.pdf",
            "extras/letter",
        ] {
            let err = parse(vec![raw(bad, "x")]).expect_err(bad);
            assert!(err.0.ends_with("file"), "{bad}: {err:?}");
        }
        let err = parse(vec![raw("extras/a.pdf", "x"), raw("extras/a.png", "y")]).expect_err("dup");
        assert!(err.1.contains("entry 1"), "{err:?}");
        let err = parse(vec![raw("extras/a.pdf", "  ")]).expect_err("title");
        assert!(err.0.ends_with("title"), "{err:?}");
    }

    #[test]
    fn magic_numbers_match_their_kinds() {
        assert!(ExtraKind::Pdf.matches(b"%PDF-1.4\n"));
        assert!(!ExtraKind::Pdf.matches(b"\x89PNG\r\n\x1a\n"));
        assert!(ExtraKind::Png.matches(b"\x89PNG\r\n\x1a\n...."));
        assert!(ExtraKind::Webp.matches(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(ExtraKind::M4a.matches(b"\0\0\0\x20ftypM4A "));
        assert!(ExtraKind::Opus.matches(b"OggS\0"));
        assert!(!ExtraKind::Jpeg.matches(b""));
    }
}
