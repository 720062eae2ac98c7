//! Property tests of `album.toml`: valid contents round-trip through TOML text; any table of
//! known and unknown keys with values of any type is answered, and what is accepted keeps
//! every rule (preview bounds, cover inside the folder, unique track numbers); a preview
//! window fitted to any track lies within it.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use std::path::{Component, Path};

use proptest::prelude::*;
use toml::{Table, Value};

use super::album_toml::{AlbumInfo, MAX_PREVIEW_SECONDS, PreviewWindow, TrackRef};

fn parse(text: &str) -> Result<AlbumInfo, super::CatalogError> {
    AlbumInfo::parse(text, Path::new("album.toml"))
}

/// Values of every TOML type, with the edges of the rules among them.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        proptest::sample::select(vec![
            "",
            " ",
            "EUR",
            "eur",
            "EURO",
            "2024-02-29",
            "2023-02-29",
            "0000-01-01",
            "9999-12-31",
            "cover.png",
            "art/cover.png",
            "../cover.png",
            "/etc/passwd",
            "a/../../b",
            "./a",
            "a\\b",
            "C:\\x",
            "a\u{0}b",
            "track.flac",
            "sub/track.flac",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,12}".prop_map(Value::String),
        proptest::sample::select(vec![
            i64::MIN,
            -1,
            0,
            1,
            2,
            600,
            601,
            i64::from(u32::MAX) + 1,
            i64::MAX
        ])
        .prop_map(Value::Integer),
        proptest::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            1e-300,
            0.5,
            30.0,
            600.0,
            600.000_000_1,
            1e308,
            -1.0,
        ])
        .prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        proptest::sample::select(vec![
            "2024-02-29",
            "0001-01-01",
            "2024-02-29T10:00:00",
            "10:00:00",
            "2024-02-29T10:00:00Z"
        ])
        .prop_map(|s| Value::Datetime(s.parse().unwrap())),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
}

const ALBUM_KEYS: [&str; 9] = [
    "title",
    "artist",
    "release_date",
    "price",
    "currency",
    "preview_seconds",
    "preview_start",
    "cover",
    "preview_secs",
];
const TRACK_KEYS: [&str; 6] = [
    "file",
    "number",
    "title",
    "preview_start",
    "preview_seconds",
    "name",
];

fn table_of(keys: &'static [&'static str], size: usize) -> impl Strategy<Value = Table> {
    proptest::collection::vec(
        (proptest::sample::select(keys.to_vec()), any_value()),
        0..size,
    )
    .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn album_toml_text() -> impl Strategy<Value = String> {
    (
        table_of(&ALBUM_KEYS, 9),
        proptest::option::of(proptest::collection::vec(table_of(&TRACK_KEYS, 5), 0..4)),
    )
        .prop_map(|(mut album, tracks)| {
            if let Some(tracks) = tracks {
                album.insert(
                    "tracks".to_owned(),
                    Value::Array(tracks.into_iter().map(Value::Table).collect()),
                );
            }
            toml::to_string(&album).unwrap_or_default()
        })
}

fn inside_the_folder(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The rules every accepted `album.toml` keeps.
fn check_rules(info: &AlbumInfo) -> Result<(), TestCaseError> {
    let preview_seconds_ok = |s: f64| s.is_finite() && s > 0.0 && s <= MAX_PREVIEW_SECONDS;
    let preview_start_ok = |s: f64| s.is_finite() && s >= 0.0;
    prop_assert!(preview_seconds_ok(info.preview_seconds));
    prop_assert!(preview_start_ok(info.preview_start));
    prop_assert!(info.title.as_deref().is_none_or(|t| !t.trim().is_empty()));
    prop_assert!(info.artist.as_deref().is_none_or(|t| !t.trim().is_empty()));
    if let Some(cover) = &info.cover {
        prop_assert!(inside_the_folder(cover), "{cover:?}");
    }
    let mut numbers = Vec::new();
    for t in info.track_overrides() {
        prop_assert!(t.preview_seconds.is_none_or(preview_seconds_ok));
        prop_assert!(t.preview_start.is_none_or(preview_start_ok));
        prop_assert!(t.title.as_deref().is_none_or(|t| !t.trim().is_empty()));
        match &t.target {
            TrackRef::Number(n) => {
                prop_assert!(*n >= 1 && !numbers.contains(n));
                numbers.push(*n);
            }
            TrackRef::File(f) => {
                prop_assert!(
                    inside_the_folder(f) && !f.contains('/') && !f.contains('\\'),
                    "{f:?}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::fuzzing::config(256))]

    /// Any table of known and unknown keys, with values of any type, is answered; what is
    /// accepted keeps every rule.
    #[test]
    fn any_album_toml_is_answered_and_what_is_accepted_keeps_the_rules(text in album_toml_text()) {
        if let Ok(info) = parse(&text) {
            check_rules(&info)?;
        }
    }

    /// Text that is hardly TOML at all is answered too.
    #[test]
    fn any_text_is_answered(text in "[a-z_ =\\[\\]\"0-9.\n-]{0,80}|\\PC{0,80}") {
        if let Ok(info) = parse(&text) {
            check_rules(&info)?;
        }
    }

    /// Valid contents written as TOML read back as themselves.
    #[test]
    fn valid_contents_round_trip(
        title in proptest::option::of("[A-Za-z0-9 ]{0,10}[A-Za-z0-9]"),
        date in proptest::option::of((1u16..=9999, 1u8..=12, 1u8..=28)),
        price in proptest::option::of((
            0i64..=i64::MAX,
            proptest::sample::select(&crate::ledger::purchase::ISO_4217[..]).prop_map(String::from),
        )),
        preview_seconds in proptest::option::of(prop_oneof![Just(MAX_PREVIEW_SECONDS), 0.001f64..=MAX_PREVIEW_SECONDS]),
        preview_start in proptest::option::of(prop_oneof![Just(0.0), 0.0f64..1e9]),
        cover in proptest::option::of("[a-z]{1,8}(/[a-z]{1,8}){0,2}\\.png"),
        numbers in proptest::collection::btree_set(1i64..=u32::MAX.into(), 0..4),
    ) {
        let mut t = Table::new();
        if let Some(title) = &title {
            t.insert("title".into(), Value::String(title.clone()));
        }
        if let Some((y, m, d)) = date {
            t.insert("release_date".into(), Value::String(format!("{y:04}-{m:02}-{d:02}")));
        }
        if let Some((amount, code)) = &price {
            t.insert("price".into(), Value::Integer(*amount));
            t.insert("currency".into(), Value::String(code.clone()));
        }
        if let Some(s) = preview_seconds {
            t.insert("preview_seconds".into(), Value::Float(s));
        }
        if let Some(s) = preview_start {
            t.insert("preview_start".into(), Value::Float(s));
        }
        if let Some(c) = &cover {
            t.insert("cover".into(), Value::String(c.clone()));
        }
        let tracks: Vec<Value> = numbers
            .iter()
            .map(|&n| Value::Table(Table::from_iter([("number".to_owned(), Value::Integer(n))])))
            .collect();
        t.insert("tracks".into(), Value::Array(tracks));
        let info = parse(&toml::to_string(&t).unwrap()).unwrap();
        prop_assert_eq!(&info.title, &title);
        prop_assert_eq!(info.release_date.map(|d| (d.year, d.month, d.day)), date);
        prop_assert_eq!(
            info.price.as_ref().map(|p| (p.minor_units as i64, p.currency.to_string())),
            price
        );
        prop_assert_eq!(info.preview_seconds, preview_seconds.unwrap_or(30.0));
        prop_assert_eq!(info.preview_start, preview_start.unwrap_or(0.0));
        prop_assert_eq!(&info.cover, &cover);
        let read: Vec<TrackRef> = info.track_overrides().iter().map(|t| t.target.clone()).collect();
        let want: Vec<TrackRef> = numbers.iter().map(|&n| TrackRef::Number(n as u32)).collect();
        prop_assert_eq!(read, want);
        check_rules(&info)?;
    }

    /// A preview window fitted to any track lies within it.
    #[test]
    fn a_fitted_preview_lies_within_the_track(
        start in prop_oneof![0.0f64..1e4, Just(0.0), Just(1e308)],
        seconds in prop_oneof![0.001f64..=MAX_PREVIEW_SECONDS, Just(MAX_PREVIEW_SECONDS)],
        duration in prop_oneof![0.0f64..1e4, Just(0.0), Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(1e308)],
    ) {
        let fitted = PreviewWindow { start_seconds: start, seconds }.clamp_to(duration);
        let length = if duration.is_finite() { duration.max(0.0) } else { 0.0 };
        prop_assert!(fitted.start_seconds >= 0.0 && fitted.seconds >= 0.0, "{fitted:?}");
        prop_assert!(fitted.end_seconds() <= length * (1.0 + 1e-12), "{fitted:?} in {length}");
        prop_assert!(fitted.seconds <= seconds);
    }
}
