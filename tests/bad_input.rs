//! Bad sources get a clear error naming the file; everything else is still packaged.

use crate::util::{self, Workspace};

#[test]
fn bad_files_fail_alone_with_named_reasons() {
    let ws = Workspace::new();
    let dir = ws.album_dir("mixed-bag");
    util::make_fixture(&dir.join("01-good.flac"), 44_100, 2, 3.0, &["-c:a", "flac"]);
    // Truncated: a valid FLAC cut in half.
    util::make_fixture(
        &dir.join("02-truncated.flac"),
        44_100,
        2,
        4.0,
        &["-c:a", "flac"],
    );
    let full = std::fs::read(dir.join("02-truncated.flac")).expect("read");
    std::fs::write(dir.join("02-truncated.flac"), &full[..full.len() / 2]).expect("truncate");
    // Random bytes with an audio extension.
    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("03-random.mp3"), noise).expect("random");
    // Empty.
    std::fs::write(dir.join("04-empty.wav"), b"").expect("empty");
    // Unsupported: a WAV header around a codec symphonia does not decode (A-law at 8 kHz is
    // fine, so use a text file with a .ogg name instead: no decoder claims it).
    std::fs::write(dir.join("05-text.ogg"), "this is not audio\n".repeat(100)).expect("text");

    // A second, healthy album must be untouched by the first one's problems.
    let other = ws.album_dir("healthy");
    util::make_fixture(
        &other.join("01.wav"),
        48_000,
        2,
        2.0,
        &["-c:a", "pcm_s16le"],
    );

    let out = ws.init_and_ingest();
    let all = util::text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code must be non-zero on failures: {all}"
    );
    for (file, words) in [
        ("02-truncated.flac", &["truncated", "corrupt"][..]),
        (
            "03-random.mp3",
            &["not an audio format", "corrupt", "unsupported"][..],
        ),
        ("04-empty.wav", &["empty"][..]),
        ("05-text.ogg", &["not an audio format", "unsupported"][..]),
    ] {
        let line = all
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("no error line names {file}: {all}"));
        assert!(
            words.iter().any(|w| line.to_lowercase().contains(w)),
            "the error for {file} does not say why: {line}"
        );
    }
    assert!(
        !all.contains("panicked at"),
        "no panic reaches the user: {all}"
    );
    assert!(
        ws.store()
            .read_track("mixed-bag", 1)
            .expect("read")
            .is_some(),
        "the good track is packaged"
    );
    for n in 2..=5 {
        assert!(
            ws.store()
                .read_track("mixed-bag", n)
                .expect("read")
                .is_none(),
            "bad track {n} is not packaged"
        );
    }
    assert!(
        ws.store().read_track("healthy", 1).expect("read").is_some(),
        "the other album is packaged"
    );
}

#[test]
fn bad_album_folder_names_are_reported() {
    let ws = Workspace::new();
    let dir = ws.album_dir("Not A Slug");
    util::make_fixture(&dir.join("01.wav"), 48_000, 1, 1.0, &["-c:a", "pcm_s16le"]);
    let good = ws.album_dir("fine");
    util::make_fixture(&good.join("01.wav"), 48_000, 1, 1.0, &["-c:a", "pcm_s16le"]);
    let out = ws.init_and_ingest();
    let all = util::text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("Not A Slug"), "{all}");
    assert!(ws.store().read_track("fine", 1).expect("read").is_some());
}
