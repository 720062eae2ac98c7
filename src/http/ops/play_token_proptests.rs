//! Property tests of the play-token exchange body: any body is answered, what is accepted
//! names at most [`MAX_TOKEN_ALBUMS`] albums, each a slug, and a valid list reads back as
//! itself.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use proptest::prelude::*;

use super::*;

fn slug() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,6}"
}

proptest! {
    #![proptest_config(crate::fuzzing::config(256))]

    /// Whatever the body, it is answered; an accepted one names few albums, each a slug.
    #[test]
    fn any_body_is_answered_within_the_rules(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "[ \t\r\n]{0,3}\\{[ ]?(\"(albums|x|Albums)\":(\\[(\"[a-zA-Z0-9 ./-]{0,10}\",?){0,40}\\]|null|\"a\"|1|\\{\\}),?){0,3}\\}".prop_map(String::into_bytes),
        ],
    ) {
        if let Ok(req) = parse(&body) {
            let albums = req.albums.unwrap_or_default();
            prop_assert!(albums.len() <= MAX_TOKEN_ALBUMS);
            for a in &albums {
                prop_assert!(AlbumId::parse(a).is_ok(), "{a:?}");
            }
        }
    }

    /// A list of albums within the limit reads back as itself, in any layout.
    #[test]
    fn a_valid_list_reads_back(
        albums in proptest::collection::vec(slug(), 0..=MAX_TOKEN_ALBUMS + 3),
        space in proptest::sample::select(vec!["", " ", "\n\t"]),
    ) {
        let list: Vec<String> = albums.iter().map(|a| format!("{space}\"{a}\"{space}")).collect();
        let body = format!("{space}{{{space}\"albums\"{space}:{space}[{}]{space}}}{space}", list.join(","));
        match parse(body.as_bytes()) {
            Ok(req) => {
                prop_assert!(albums.len() <= MAX_TOKEN_ALBUMS);
                prop_assert_eq!(req.albums, Some(albums));
            }
            Err(e) => {
                prop_assert!(albums.len() > MAX_TOKEN_ALBUMS);
                prop_assert_eq!(e.field, "albums");
            }
        }
    }
}
