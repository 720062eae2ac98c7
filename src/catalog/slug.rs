//! `AlbumId`: the lowercase slug that names an album in folders, URLs and tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::CatalogError;

/// Longest accepted album id. Ids appear in URLs, token claims and sealed-segment AAD, so
/// lowering this would orphan stored albums: DO NOT LOWER.
pub const MAX_ALBUM_ID_LEN: usize = 64;

/// An album id: a lowercase slug `[a-z0-9]+(-[a-z0-9]+)*`, 1 to 64 characters.
///
/// Only ASCII lowercase letters, digits and single inner hyphens are allowed, so an id is safe
/// as a folder name, a URL path segment and a JWT claim without any escaping, and two ids that
/// look the same are the same.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AlbumId(String);

impl AlbumId {
    /// Checks `s` against the slug rules and wraps it.
    pub fn parse(s: &str) -> Result<AlbumId, CatalogError> {
        match slug_problem(s) {
            None => Ok(AlbumId(s.to_owned())),
            Some(reason) => Err(CatalogError::InvalidAlbumId {
                id: s.to_owned(),
                reason,
            }),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `s` is not a slug, or `None` when it is one. Shared with the folder scan so a bad folder
/// name gets the same reason as a bad id anywhere else.
pub(crate) fn slug_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("it is empty");
    }
    if s.len() > MAX_ALBUM_ID_LEN {
        return Some("it is longer than 64 characters");
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some("it contains uppercase letters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("only a-z, 0-9 and '-' are allowed");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("it starts or ends with '-'");
    }
    if s.contains("--") {
        return Some("it contains \"--\"");
    }
    None
}

/// The slug of a name under [`AlbumId`]'s rules ("The Lantern Choir" → `the-lantern-choir`):
/// ASCII letters and digits kept (lowercased), every other run of characters one `-`, cut to
/// [`MAX_ALBUM_ID_LEN`]; `None` when nothing is left (a name of only other scripts).
pub fn slugify(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(MAX_ALBUM_ID_LEN);
    while out.ends_with('-') {
        out.pop();
    }
    (slug_problem(&out).is_none()).then_some(out)
}

impl fmt::Display for AlbumId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AlbumId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for AlbumId {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlbumId::parse(s)
    }
}

impl TryFrom<String> for AlbumId {
    type Error = CatalogError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match slug_problem(&s) {
            None => Ok(AlbumId(s)),
            Some(reason) => Err(CatalogError::InvalidAlbumId { id: s, reason }),
        }
    }
}

impl From<AlbumId> for String {
    fn from(id: AlbumId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugify_names() {
        assert_eq!(
            slugify("The Lantern Choir").as_deref(),
            Some("the-lantern-choir")
        );
        assert_eq!(slugify("  AC/DC -- Live! ").as_deref(), Some("ac-dc-live"));
        assert_eq!(slugify("周杰伦"), None);
        assert_eq!(slugify(&"ab ".repeat(40)).map(|s| s.len()), Some(64));
    }

    #[test]
    fn accepts_slugs() {
        for ok in ["a", "0", "first-light", "a1-b2-c3", "2024", &"x".repeat(64)] {
            assert_eq!(AlbumId::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
    }

    #[test]
    fn rejects_non_slugs() {
        let long = "x".repeat(65);
        for bad in [
            "",
            "First-Light",
            "first light",
            "first_light",
            "-first",
            "first-",
            "first--light",
            "café",
            "a/b",
            "..",
            long.as_str(),
        ] {
            let err = AlbumId::parse(bad).unwrap_err();
            assert!(
                matches!(err, CatalogError::InvalidAlbumId { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn error_names_the_id_and_reason() {
        let msg = AlbumId::parse("Big Album").unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid album id \"Big Album\": it contains uppercase letters"
        );
    }

    #[test]
    fn serde_is_a_plain_string_and_validates() {
        #[derive(Serialize, Deserialize, Debug)]
        struct T {
            id: AlbumId,
        }
        let t: T = toml::from_str("id = \"first-light\"").unwrap();
        assert_eq!(t.id.to_string(), "first-light");
        assert_eq!(toml::to_string(&t).unwrap().trim(), "id = \"first-light\"");
        let err = toml::from_str::<T>("id = \"Nope\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("uppercase"), "{err}");
    }

    #[test]
    fn from_str_matches_parse() {
        let id: AlbumId = "abc-1".parse().unwrap();
        assert_eq!(id, AlbumId::parse("abc-1").unwrap());
    }
}
