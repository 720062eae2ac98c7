//! Re-running ingest on an unchanged album does no work; a changed source is re-packaged.

use crate::util::{self, Workspace};

fn modified(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn unchanged_album_is_skipped_and_changed_track_repackaged() {
    let ws = Workspace::new();
    let dir = ws.album_dir("rerun");
    util::make_fixture(&dir.join("01.flac"), 44_100, 2, 3.0, &["-c:a", "flac"]);
    util::make_fixture(&dir.join("02.flac"), 44_100, 2, 3.0, &["-c:a", "flac"]);
    let first = ws.init_and_ingest();
    assert!(first.status.success(), "{}", util::text(&first));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("2 track(s) packaged"),
        "{}",
        util::text(&first)
    );
    let album_loudness = || ws.store().read_album("rerun").unwrap().unwrap().loudness;
    let first_loudness = album_loudness().expect("the album's loudness is measured");

    let m1 = util::manifest(&ws, "rerun", 1, "lossless");
    let m2 = util::manifest(&ws, "rerun", 2, "high");
    let manifest_path = ws
        .store()
        .rendition_dir("rerun", 1, "lossless")
        .expect("dir")
        .join("manifest.json");
    let before = modified(&manifest_path);

    let second = ws.encore(&["ingest"]);
    let out = String::from_utf8_lossy(&second.stdout).to_string();
    assert!(second.status.success(), "{}", util::text(&second));
    assert!(out.contains("0 track(s) packaged, 2 unchanged"), "{out}");
    assert!(
        out.contains("loudness measured on 0 track(s)"),
        "an unchanged album measures nothing: {out}"
    );
    assert_eq!(
        modified(&manifest_path),
        before,
        "an unchanged track's files are not rewritten"
    );
    assert_eq!(util::manifest(&ws, "rerun", 1, "lossless"), m1);
    assert_eq!(album_loudness(), Some(first_loudness));

    // Change track 2's source: only it is re-packaged, under new segment URLs (a new generation).
    util::make_fixture(&dir.join("02.flac"), 44_100, 2, 4.0, &["-c:a", "flac"]);
    let third = ws.encore(&["ingest"]);
    let out = String::from_utf8_lossy(&third.stdout).to_string();
    assert!(third.status.success(), "{}", util::text(&third));
    assert!(out.contains("1 track(s) packaged, 1 unchanged"), "{out}");
    // The album's loudness is gated over both tracks' blocks: the unchanged one is measured
    // again (decoded, not encoded) for it.
    assert!(out.contains("loudness measured on 2 track(s)"), "{out}");
    let m2b = util::manifest(&ws, "rerun", 2, "high");
    assert_ne!(
        m2b.generation, m2.generation,
        "re-packaged segments get new names"
    );
    assert!(m2b.duration_samples > m2.duration_samples);
    assert_eq!(util::manifest(&ws, "rerun", 1, "lossless"), m1);
}

#[test]
fn interrupted_generation_is_never_served_and_is_cleaned() {
    let ws = Workspace::new();
    let dir = ws.album_dir("crashy");
    util::make_fixture(&dir.join("01.flac"), 44_100, 1, 2.0, &["-c:a", "flac"]);
    let first = ws.init_and_ingest();
    assert!(first.status.success(), "{}", util::text(&first));
    let m = util::manifest(&ws, "crashy", 1, "standard");
    // Simulate a crash mid-write: a generation folder with a partial segment and no manifest naming it.
    let rdir = ws
        .store()
        .rendition_dir("crashy", 1, "standard")
        .expect("dir");
    let debris = rdir.join("gdeadbeefdeadbeef");
    std::fs::create_dir_all(&debris).expect("mkdir");
    std::fs::write(debris.join("0001.enc"), b"ENCS half").expect("write");
    assert_eq!(
        util::manifest(&ws, "crashy", 1, "standard"),
        m,
        "the manifest still names the complete generation"
    );
    let forced = ws.encore(&["ingest", "--force"]);
    assert!(forced.status.success(), "{}", util::text(&forced));
    assert!(!debris.exists(), "debris of an interrupted run is removed");
}
