//! Finds a key repeated within one JSON object of a request body. serde_json keeps the last
//! of two equal keys without a word, while another parser (the store's, a proxy's, a log
//! reader's) may keep the first: a purchase whose `price` two parsers read differently must
//! never be recorded, so every body with a repeated key is refused before any route reads it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Longest prefix of a repeated key quoted back in an error.
const SHOWN_KEY_CHARS: usize = 40;

/// The first key that appears twice in one object, at any depth, if `body` is JSON; `None`
/// when no key repeats or when `body` is not JSON at all (the route's own parser says why).
pub fn first_duplicate_key(body: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    // An error is either the duplicate (recorded in `found`) or a syntax error, left to the
    // route's parser.
    let _ = Walk { found: &found }.deserialize(&mut de);
    found
        .into_inner()
        .map(|key: String| key.chars().take(SHOWN_KEY_CHARS).collect())
}

/// Visits every value of a document, checking each object's keys.
#[derive(Clone, Copy)]
struct Walk<'a> {
    found: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                *self.found.borrow_mut() = Some(key);
                return Err(de::Error::custom("repeated key"));
            }
            keys.insert(key);
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        let dup = |s: &str| first_duplicate_key(s.as_bytes());
        assert_eq!(dup(r#"{"price": 1, "price": 2}"#).as_deref(), Some("price"));
        assert_eq!(
            dup(r#"{"a": [{"x": 1}, {"y": {"z": 1, "z": null}}]}"#).as_deref(),
            Some("z")
        );
        // Escapes are decoded first: these are the same key.
        assert_eq!(
            dup(r#"{"price": 1, "pr\u0069ce": 2}"#).as_deref(),
            Some("price")
        );
        let long = format!(r#"{{"{k}": 1, "{k}": 2}}"#, k = "k".repeat(100));
        assert_eq!(dup(&long).map(|k| k.len()), Some(SHOWN_KEY_CHARS));
    }

    #[test]
    fn distinct_keys_and_non_json_pass() {
        let dup = |s: &str| first_duplicate_key(s.as_bytes());
        assert_eq!(dup(r#"{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}"#), None);
        assert_eq!(dup(r#"[1, "x", true, null, 1.5, -3]"#), None);
        assert_eq!(dup(""), None);
        assert_eq!(dup("not json"), None);
        assert_eq!(dup(r#"{"a": 1, "b""#), None);
    }
}
