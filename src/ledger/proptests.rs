//! Property tests of the purchase body and of the RFC 3339 times at the API edge: a valid
//! purchase however it is spelled parses to itself with one fingerprint; one bad field is
//! refused naming that field; no body panics the parser.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use proptest::prelude::*;
use serde_json::{Value, json};

use super::purchase::{EARLIEST_PURCHASE, FUTURE_SKEW_SECONDS, MAX_PRICE, NewPurchase};
use super::time::{format_rfc3339, parse_rfc3339};

const NOW: i64 = 1_800_000_000;

/// A valid purchase's fields.
fn purchase() -> impl Strategy<Value = (String, String, String, i64, String, Option<i64>)> {
    (
        "[A-Za-z0-9._:@-]{1,128}",
        "[A-Za-z0-9._:@-]{1,128}",
        "[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,6}",
        prop_oneof![Just(0i64), Just(MAX_PRICE), 0..=MAX_PRICE],
        // ISO 4217 codes in use (the table, not only the shape).
        proptest::sample::select(vec!["CNY", "EUR", "USD", "JPY", "GBP", "CHF", "BRL"])
            .prop_map(str::to_owned),
        proptest::option::of(EARLIEST_PURCHASE..=NOW + FUTURE_SKEW_SECONDS),
    )
}

/// `at` as RFC 3339 in the zone `offset_minutes` east of UTC.
fn rfc3339_in_zone(at: i64, offset_minutes: i32) -> String {
    let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
    time::OffsetDateTime::from_unix_timestamp(at)
        .unwrap()
        .to_offset(offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// `members` as a JSON object in the given order, with `space` around every token.
fn spelled(members: &[(&str, Value)], space: &str) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{space}\"{k}\"{space}:{space}{v}{space}"))
        .collect();
    format!("{space}{{{}}}{space}", inner.join(","))
}

proptest! {
    #![proptest_config(crate::fuzzing::config(256))]

    /// A valid purchase parses to itself whatever its spelling (member order, whitespace,
    /// time zone), and every spelling has the same fingerprint.
    #[test]
    fn a_purchase_parses_to_itself_with_one_fingerprint(
        (order_id, user, album, price, currency, at) in purchase(),
        order in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        space in proptest::sample::select(vec!["", " ", "\n\t", "\r\n  "]),
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let expected = NewPurchase::parse(
            json!({"order_id": order_id, "user": user, "album": album, "price": price,
                "currency": currency, "purchased_at": at.map(format_rfc3339)}).to_string().as_bytes(),
            NOW,
        ).unwrap();
        prop_assert_eq!(expected.purchased_at, at);
        let all = [
            ("order_id", json!(order_id)),
            ("user", json!(user)),
            ("album", json!(album)),
            ("price", json!(price)),
            ("currency", json!(currency)),
            ("purchased_at", at.map_or(Value::Null, |at| json!(rfc3339_in_zone(at, offset_minutes)))),
        ];
        let members: Vec<(&str, Value)> = order.iter().map(|&i| all[i].clone()).collect();
        let parsed = NewPurchase::parse(spelled(&members, space).as_bytes(), NOW).unwrap();
        prop_assert_eq!(parsed.fingerprint(), expected.fingerprint());
        prop_assert_eq!(parsed, expected);
    }

    /// One bad field is refused, and the refusal names it.
    #[test]
    fn one_bad_field_is_refused_by_name(
        (order_id, user, album, price, currency, at) in purchase(),
        (field, bad) in prop_oneof![
            (Just("order_id"), proptest::sample::select(vec![json!(""), json!("a b"), json!("x".repeat(129)), json!("é"), json!("a\nb"), json!(5), json!(["o"])])),
            (Just("user"), proptest::sample::select(vec![json!(""), json!("a/b"), json!("u\u{0}"), json!(null), json!(true)])),
            (Just("album"), proptest::sample::select(vec![json!("First-Light"), json!(""), json!("a".repeat(65)), json!("../x"), json!("a_b"), json!(1)])),
            (Just("price"), proptest::sample::select(vec![json!(-1), json!(MAX_PRICE + 1), json!(9.99), json!(1e3), json!("1500"), json!(u64::MAX), json!(null)])),
            (Just("currency"), proptest::sample::select(vec![json!("cny"), json!("YUAN"), json!("US"), json!("E1R"), json!(""), json!(978)])),
            (Just("purchased_at"), proptest::sample::select(vec![json!("yesterday"), json!("2099-01-01T00:00:00Z"), json!("1999-12-31T23:59:59Z"), json!(NOW), json!("2027-01-15"), json!("2027-01-15T08:00:00")])),
        ],
    ) {
        let mut body = json!({"order_id": order_id, "user": user, "album": album, "price": price,
            "currency": currency, "purchased_at": at.map(format_rfc3339)});
        if bad.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = bad.clone();
        }
        let err = NewPurchase::parse(body.to_string().as_bytes(), NOW).unwrap_err();
        prop_assert_eq!(err.field, field, "{}: {}", bad, err);
    }

    /// Whatever the body, the parser answers (and never with a purchase that breaks the rules).
    #[test]
    fn any_body_is_answered(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "\\{(\"(order_id|user|album|price|currency|purchased_at|x)\":(\"[A-Za-z0-9 :+-]{0,24}\"|-?[0-9]{1,20}(\\.[0-9])?|null|true|\\[\\]),?){0,8}\\}".prop_map(String::into_bytes),
        ],
    ) {
        if let Ok(p) = NewPurchase::parse(&body, NOW) {
            prop_assert!((0..=MAX_PRICE).contains(&p.price));
            prop_assert!(!p.order_id.is_empty() && !p.user.is_empty());
            prop_assert!(p.currency.len() == 3);
        }
    }

    /// Unix seconds survive the trip through RFC 3339, in any zone.
    #[test]
    fn times_round_trip(
        at in prop_oneof![0i64..=4_102_444_800, Just(EARLIEST_PURCHASE), -62_135_510_400i64..=253_402_214_399],
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        prop_assert_eq!(parse_rfc3339(&format_rfc3339(at)), Some(at));
        prop_assert_eq!(parse_rfc3339(&rfc3339_in_zone(at, offset_minutes)), Some(at));
    }

    /// Text that is not an RFC 3339 time is never read as one, and never panics.
    #[test]
    fn any_time_text_is_answered(text in "[0-9TZtz:+.-]{0,30}|\\PC{0,30}") {
        let _ = parse_rfc3339(&text);
    }
}
