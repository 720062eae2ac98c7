//! `album.toml` parsed and validated: every key, every refusal and its message.

use super::*;
use std::path::PathBuf;

fn parse(text: &str) -> Result<AlbumInfo, CatalogError> {
    AlbumInfo::parse(text, Path::new("media/x/album.toml"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn track(number: u32, name: &str) -> TrackSource {
    TrackSource {
        number,
        path: PathBuf::from("media/x").join(name),
        file_name: name.into(),
    }
}

const FULL: &str = r#"
title = "First Light"
artist = "The Lantern Choir"
release_date = "2024-02-29"
price = 999
currency = "EUR"
preview_seconds = 15
preview_start = 5
cover = "art/cover.png"

[[tracks]]
file = "03-c.mp3"
title = "Tide Pools"
preview_start = 12.5

[[tracks]]
number = 2
preview_seconds = 20
"#;

#[test]
fn valid_full_file() {
    let mut info = parse(FULL).unwrap();
    assert_eq!(info.title.as_deref(), Some("First Light"));
    assert_eq!(info.artist.as_deref(), Some("The Lantern Choir"));
    assert_eq!(info.release_date.unwrap().to_string(), "2024-02-29");
    let price = info.price.clone().unwrap();
    assert_eq!(price.minor_units, 999);
    assert_eq!(price.currency.as_str(), "EUR");
    assert_eq!(info.preview_seconds, 15.0);
    assert_eq!(info.preview_start, 5.0);
    assert_eq!(info.cover.as_deref(), Some("art/cover.png"));
    assert_eq!(info.track_overrides().len(), 2);

    let tracks = [
        track(1, "01-a.flac"),
        track(2, "02-b.flac"),
        track(3, "03-c.mp3"),
    ];
    info.bind_tracks(Path::new("album.toml"), &tracks).unwrap();
    let w = |n| info.preview_window(n);
    assert_eq!(
        w(1),
        PreviewWindow {
            start_seconds: 5.0,
            seconds: 15.0
        }
    );
    assert_eq!(
        w(2),
        PreviewWindow {
            start_seconds: 5.0,
            seconds: 20.0
        }
    );
    assert_eq!(
        w(3),
        PreviewWindow {
            start_seconds: 12.5,
            seconds: 15.0
        }
    );
    assert_eq!(info.track_title(3), Some("Tide Pools"));
    assert_eq!(info.track_title(1), None);
}

#[test]
fn empty_file_gives_defaults() {
    let info = parse("").unwrap();
    assert_eq!(info, AlbumInfo::default());
    assert_eq!(info.preview_window(1), PreviewWindow::DEFAULT);
}

#[test]
fn bare_toml_date_is_accepted() {
    let info = parse("release_date = 2025-03-21").unwrap();
    assert_eq!(
        info.release_date,
        Some(ReleaseDate {
            year: 2025,
            month: 3,
            day: 21
        })
    );
    let e = err("release_date = 2025-03-21T10:00:00Z");
    assert!(e.contains("release_date"), "{e}");
}

#[test]
fn bad_dates() {
    for d in [
        "2023-02-29",
        "2024-13-01",
        "2024-04-31",
        "2024-00-10",
        "0000-01-01",
        "2024-1-01",
        "24-01-01",
        "2024/01/01",
        "2024-01-01 ",
        "+024-01-01",
    ] {
        let e = err(&format!("release_date = {d:?}"));
        assert!(
            e.starts_with("media/x/album.toml: release_date: is"),
            "{d}: {e}"
        );
    }
    assert!(parse("release_date = \"1900-02-28\"").is_ok());
    assert!(parse("release_date = \"2000-02-29\"").is_ok());
    assert!(parse("release_date = \"1900-02-29\"").is_err());
}

#[test]
fn bad_currency_and_price() {
    for c in ["eur", "EURO", "E1R", "", "€", "ABC", "XXX"] {
        let e = err(&format!("price = 1\ncurrency = {c:?}"));
        assert!(e.contains("currency: is"), "{c}: {e}");
    }
    let e = err("price = -1\ncurrency = \"EUR\"");
    assert!(e.contains("price: is -1"), "{e}");
    assert!(err("price = 1").contains("`currency` is missing"));
    assert!(err("currency = \"EUR\"").contains("`price` is missing"));
    let e = err("price = 9.99\ncurrency = \"EUR\"");
    assert!(e.contains("album.toml") && e.contains("price"), "{e}");
    assert_eq!(
        parse("price = 0\ncurrency = \"CNY\"")
            .unwrap()
            .price
            .unwrap()
            .minor_units,
        0
    );
}

#[test]
fn unknown_key_is_named() {
    let e = err("title = \"x\"\npreview_secs = 10");
    assert!(e.starts_with("media/x/album.toml: "), "{e}");
    assert!(e.contains("preview_secs"), "{e}");
    let e = err("[[tracks]]\nnumber = 1\nstart = 3");
    assert!(e.contains("album.toml") && e.contains("start"), "{e}");
}

#[test]
fn syntax_error_names_the_file() {
    let e = err("title = ");
    assert!(e.starts_with("media/x/album.toml: "), "{e}");
}

#[test]
fn preview_ranges() {
    let e = err("preview_start = -1");
    assert_eq!(
        e,
        "media/x/album.toml: preview_start: is -1; it must be 0 or more seconds from the start of the track"
    );
    assert!(err("preview_start = nan").contains("preview_start"));
    assert!(err("preview_seconds = 0").contains("preview_seconds"));
    assert!(err("preview_seconds = 601").contains("preview_seconds"));
    assert!(err("preview_seconds = inf").contains("preview_seconds"));
    assert_eq!(
        parse("preview_seconds = 600").unwrap().preview_seconds,
        600.0
    );
    assert_eq!(parse("preview_start = 2.5").unwrap().preview_start, 2.5);
    let e = err("[[tracks]]\nnumber = 1\npreview_start = -0.5");
    assert!(
        e.contains("[[tracks]] entry 1, preview_start: is -0.5"),
        "{e}"
    );
}

#[test]
fn cover_must_stay_inside() {
    for c in [
        "../cover.png",
        "/etc/passwd",
        "a/../../b.png",
        "./cover.png",
        "",
    ] {
        let e = err(&format!("cover = {c:?}"));
        assert!(e.contains("cover: is"), "{c}: {e}");
    }
}

#[test]
fn empty_title_is_refused() {
    assert!(err("title = \"  \"").contains("title: is empty"));
}

#[test]
fn track_entry_rules() {
    assert!(err("[[tracks]]\ntitle = \"x\"").contains("entry 1, file: is missing"));
    assert!(err("[[tracks]]\nfile = \"a.flac\"\nnumber = 1").contains("both set"));
    assert!(err("[[tracks]]\nnumber = 0").contains("start at 1"));
    assert!(err("[[tracks]]\nfile = \"sub/a.flac\"").contains("bare file name"));
    let e = err("[[tracks]]\nnumber = 2\n[[tracks]]\nnumber = 2");
    assert!(
        e.contains("entry 2, number: is 2, already used by entry 1"),
        "{e}"
    );
}

#[test]
fn number_overrides_work_before_binding() {
    let info = parse("preview_start = 1\n[[tracks]]\nnumber = 2\npreview_start = 7").unwrap();
    assert_eq!(info.preview_window(2).start_seconds, 7.0);
    assert_eq!(info.preview_window(1).start_seconds, 1.0);
}

#[test]
fn binding_checks_targets() {
    let tracks = [track(1, "01-a.flac"), track(2, "02-b.flac")];
    let p = Path::new("media/x/album.toml");

    let mut info = parse("[[tracks]]\nfile = \"nope.flac\"").unwrap();
    let e = info.bind_tracks(p, &tracks).unwrap_err().to_string();
    assert!(
        e.contains("\"nope.flac\", which is not an audio file"),
        "{e}"
    );

    let mut info = parse("[[tracks]]\nnumber = 3").unwrap();
    let e = info.bind_tracks(p, &tracks).unwrap_err().to_string();
    assert!(e.contains("is 3, but the album has 2 track(s)"), "{e}");

    let mut info = parse("[[tracks]]\nnumber = 2\n[[tracks]]\nfile = \"02-b.flac\"").unwrap();
    let e = info.bind_tracks(p, &tracks).unwrap_err().to_string();
    assert!(e.contains("entry 2, file: is track 2 again"), "{e}");
}

#[test]
fn clamp_keeps_length_when_it_can() {
    let w = PreviewWindow {
        start_seconds: 25.0,
        seconds: 15.0,
    };
    assert_eq!(w.clamp_to(60.0), w);
    assert_eq!(
        w.clamp_to(30.0),
        PreviewWindow {
            start_seconds: 15.0,
            seconds: 15.0
        }
    );
    assert_eq!(
        w.clamp_to(10.0),
        PreviewWindow {
            start_seconds: 0.0,
            seconds: 10.0
        }
    );
    assert_eq!(
        w.clamp_to(f64::NAN),
        PreviewWindow {
            start_seconds: 0.0,
            seconds: 0.0
        }
    );
}
