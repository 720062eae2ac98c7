//! A purchase as the store's payment backend sends it: parsed field by field so that every
//! refusal names the field, and reduced to a canonical form whose hash is the idempotency
//! fingerprint.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::time::{format_rfc3339, parse_rfc3339};
use crate::catalog::AlbumId;

/// Longest `order_id` and `user`, bytes.
pub const MAX_ID_LEN: usize = 128;
/// Largest price in minor units (10^12: ten billion in a two-decimal currency).
pub const MAX_PRICE: i64 = 1_000_000_000_000;
/// Earliest accepted `purchased_at` (2000-01-01T00:00:00Z): older is a client bug.
pub const EARLIEST_PURCHASE: i64 = 946_684_800;
/// Most copies in one order.
pub const MAX_QUANTITY: i64 = 99;
/// How far in the future a `purchased_at` may lie (clock skew between store and origin).
pub const FUTURE_SKEW_SECONDS: i64 = 300;

/// A body field that is missing, malformed or out of range (HTTP 400 naming `field`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The JSON field (or `body`).
    pub field: &'static str,
    /// What is wrong, without echoing long input back.
    pub problem: String,
}

impl FieldError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// A validated purchase request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPurchase {
    /// The store's order id (idempotency key).
    pub order_id: String,
    /// The buyer.
    pub user: String,
    /// The album bought (whether it exists is the caller's check).
    pub album: AlbumId,
    /// Minor units of `currency`.
    pub price: i64,
    /// ISO 4217 code, three uppercase letters.
    pub currency: String,
    /// When the store says the purchase happened, if it said; otherwise the time it is recorded.
    pub purchased_at: Option<i64>,
    /// Copies in this order, 1..=[`MAX_QUANTITY`]; the price is per copy.
    pub quantity: i64,
    /// The recipient when the order is a gift: they own the album, the buyer does not.
    pub gift_to: Option<String>,
    /// Whether the recipient's nameplate may name the buyer.
    pub gift_from_visible: bool,
}

impl NewPurchase {
    /// Who the album belongs to: the recipient of a gift, else the buyer.
    pub fn owner(&self) -> &str {
        self.gift_to.as_deref().unwrap_or(&self.user)
    }
}

/// The currencies a price may be in: ISO 4217 List One's current codes (SIX, 2025), less
/// the codes that are not money a fan pays with (precious metals, bond-market units, SDR,
/// fund codes, `XTS` for testing and `XXX` for no currency). Sorted: looked up by binary
/// search. A code a future amendment adds must be added here.
pub(crate) const ISO_4217: [&str; 156] = [
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD",
    "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is in [`ISO_4217`].
pub fn is_iso_4217(code: &str) -> bool {
    ISO_4217.binary_search(&code).is_ok()
}

/// The fields a purchase body may carry.
const FIELDS: [&str; 9] = [
    "order_id",
    "user",
    "album",
    "price",
    "currency",
    "purchased_at",
    "quantity",
    "gift_to",
    "gift_from_visible",
];

impl NewPurchase {
    /// Parses and validates a JSON body; `now` bounds `purchased_at`.
    pub fn parse(body: &[u8], now: i64) -> Result<NewPurchase, FieldError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| FieldError::new("body", format!("not valid JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(FieldError::new("body", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(40).collect();
            return Err(FieldError::new(
                "body",
                format!("unknown field {shown:?}; expected {}", FIELDS.join(", ")),
            ));
        }
        let order_id = identifier(&map, "order_id")?;
        let user = identifier(&map, "user")?;
        let album = {
            let s = string(&map, "album")?;
            AlbumId::parse(s).map_err(|e| FieldError::new("album", e.to_string()))?
        };
        let price = match map.get("price") {
            None | Some(Value::Null) => return Err(FieldError::new("price", "is required")),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|p| (0..=MAX_PRICE).contains(p))
                .ok_or_else(|| {
                    FieldError::new(
                        "price",
                        format!("must be a whole number of minor units from 0 to {MAX_PRICE}"),
                    )
                })?,
            Some(_) => {
                return Err(FieldError::new(
                    "price",
                    "must be a whole number of minor units (e.g. 1500 for 15.00)",
                ));
            }
        };
        let currency = string(&map, "currency")?;
        if !is_iso_4217(currency) {
            return Err(FieldError::new(
                "currency",
                "must be a current ISO 4217 currency code in uppercase, e.g. CNY",
            ));
        }
        let purchased_at = match map.get("purchased_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let at = parse_rfc3339(s).ok_or_else(|| {
                    FieldError::new(
                        "purchased_at",
                        "must be an RFC 3339 time, e.g. 2026-11-28T09:30:00Z",
                    )
                })?;
                if at < EARLIEST_PURCHASE || at > now + FUTURE_SKEW_SECONDS {
                    return Err(FieldError::new(
                        "purchased_at",
                        "must lie between 2000-01-01 and now",
                    ));
                }
                Some(at)
            }
            Some(_) => {
                return Err(FieldError::new(
                    "purchased_at",
                    "must be an RFC 3339 time string",
                ));
            }
        };
        let quantity = match map.get("quantity") {
            None | Some(Value::Null) => 1,
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|q| (1..=MAX_QUANTITY).contains(q))
                .ok_or_else(|| {
                    FieldError::new(
                        "quantity",
                        format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                    )
                })?,
            Some(_) => {
                return Err(FieldError::new(
                    "quantity",
                    format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                ));
            }
        };
        let gift_to = match map.get("gift_to") {
            None | Some(Value::Null) => None,
            Some(_) => {
                let to = identifier(&map, "gift_to")?;
                if to == user {
                    return Err(FieldError::new(
                        "gift_to",
                        "names the buyer; a gift is for someone else",
                    ));
                }
                Some(to.to_owned())
            }
        };
        let gift_from_visible = match map.get("gift_from_visible") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(FieldError::new(
                    "gift_from_visible",
                    "must be true or false",
                ));
            }
        };
        if gift_from_visible && gift_to.is_none() {
            return Err(FieldError::new(
                "gift_from_visible",
                "is only for a gift (with gift_to)",
            ));
        }
        Ok(NewPurchase {
            order_id: order_id.to_owned(),
            user: user.to_owned(),
            album,
            price,
            currency: currency.to_owned(),
            purchased_at,
            quantity,
            gift_to,
            gift_from_visible,
        })
    }

    /// SHA-256 (hex) of the canonical form: the same purchase however its JSON was spelled
    /// (key order, whitespace, `Z` or `+00:00`), and a different one if any field differs.
    pub fn fingerprint(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            order_id: &'a str,
            user: &'a str,
            album: &'a str,
            price: i64,
            currency: &'a str,
            purchased_at: Option<i64>,
            // Left out at their defaults, so an order recorded before copies and gifts
            // existed keeps its fingerprint (a retry of it is still a replay).
            #[serde(skip_serializing_if = "is_one")]
            quantity: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            gift_to: Option<&'a str>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            gift_from_visible: bool,
        }
        fn is_one(q: &i64) -> bool {
            *q == 1
        }
        let canonical = Canonical {
            order_id: &self.order_id,
            user: &self.user,
            album: self.album.as_str(),
            price: self.price,
            currency: &self.currency,
            purchased_at: self.purchased_at,
            quantity: self.quantity,
            gift_to: self.gift_to.as_deref(),
            gift_from_visible: self.gift_from_visible,
        };
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }
}

/// What the store gets back for a recorded purchase (stored, and replayed byte for byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The order id.
    pub order_id: String,
    /// The buyer.
    pub user: String,
    /// The album.
    pub album: String,
    /// Minor units.
    pub price: i64,
    /// ISO 4217.
    pub currency: String,
    /// RFC 3339.
    pub purchased_at: String,
    /// The buyer's rank among the album's purchases (1 = first).
    pub buyer_number: i64,
    /// Copies (absent in receipts recorded before copies existed: one).
    #[serde(default = "one")]
    pub quantity: i64,
    /// The recipient of a gift, null when not a gift.
    #[serde(default)]
    pub gift_to: Option<String>,
}

fn one() -> i64 {
    1
}

impl Receipt {
    /// The receipt for `p` recorded with `buyer_number` at `purchased_at`.
    pub fn new(p: &NewPurchase, purchased_at: i64, buyer_number: i64) -> Receipt {
        Receipt {
            order_id: p.order_id.clone(),
            user: p.user.clone(),
            album: p.album.to_string(),
            price: p.price,
            currency: p.currency.clone(),
            purchased_at: format_rfc3339(purchased_at),
            buyer_number,
            quantity: p.quantity,
            gift_to: p.gift_to.clone(),
        }
    }
}

fn string<'a>(map: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, FieldError> {
    match map.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, "is required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

/// Order ids and user ids: 1 to 128 of `A-Z a-z 0-9 . _ : @ -`, so they are safe in URLs,
/// logs and token claims without escaping.
fn identifier<'a>(map: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, FieldError> {
    let s = string(map, field)?;
    check_identifier(s).map_err(|problem| FieldError::new(field, problem))?;
    Ok(s)
}

/// Checks an order or user id; the error says what is wrong.
pub fn check_identifier(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_ID_LEN {
        return Err(format!("is {} bytes; the limit is {MAX_ID_LEN}", s.len()));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
    {
        return Err("may contain only letters, digits and . _ : @ -".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn parse(v: serde_json::Value) -> Result<NewPurchase, FieldError> {
        NewPurchase::parse(v.to_string().as_bytes(), NOW)
    }

    fn good() -> serde_json::Value {
        serde_json::json!({"order_id": "o-1", "user": "u@x", "album": "first-light",
            "price": 1500, "currency": "CNY"})
    }

    #[test]
    fn currency_table_is_sorted_and_well_formed() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
        assert!(
            ISO_4217
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
        for code in ["CNY", "USD", "EUR", "JPY", "AED", "ZWG", "XCG"] {
            assert!(is_iso_4217(code), "{code}");
        }
        for code in ["ABC", "XXX", "XTS", "XAU", "cny", "CN", "CNYY", ""] {
            assert!(!is_iso_4217(code), "{code}");
        }
    }

    #[test]
    fn parses_a_good_body() {
        let p = parse(good()).unwrap();
        assert_eq!(p.order_id, "o-1");
        assert_eq!(p.album.as_str(), "first-light");
        assert_eq!(
            (p.price, p.currency.as_str(), p.purchased_at),
            (1500, "CNY", None)
        );
        let mut v = good();
        v["purchased_at"] = "2027-01-15T08:00:00+00:00".into();
        assert_eq!(parse(v).unwrap().purchased_at, Some(1_800_000_000));
    }

    #[test]
    fn every_refusal_names_its_field() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("order_id", serde_json::json!(null)),
            ("order_id", serde_json::json!("")),
            ("order_id", serde_json::json!("x".repeat(129))),
            ("order_id", serde_json::json!("a b")),
            ("user", serde_json::json!(7)),
            ("album", serde_json::json!("First Light")),
            ("price", serde_json::json!(9.99)),
            ("price", serde_json::json!(-1)),
            ("price", serde_json::json!("1500")),
            ("price", serde_json::json!(MAX_PRICE + 1)),
            ("currency", serde_json::json!("cny")),
            ("currency", serde_json::json!("YUAN")),
            ("currency", serde_json::json!("ABC")),
            ("currency", serde_json::json!("XXX")),
            ("purchased_at", serde_json::json!("yesterday")),
            ("purchased_at", serde_json::json!("2099-01-01T00:00:00Z")),
            ("purchased_at", serde_json::json!("1999-12-31T23:59:59Z")),
            ("purchased_at", serde_json::json!(1_800_000_000)),
            ("quantity", serde_json::json!(0)),
            ("quantity", serde_json::json!(100)),
            ("quantity", serde_json::json!(1.5)),
            ("gift_to", serde_json::json!("u@x")),
            ("gift_to", serde_json::json!("a b")),
            ("gift_from_visible", serde_json::json!(true)),
        ];
        for (field, value) in cases {
            let mut v = good();
            if value.is_null() {
                v.as_object_mut().unwrap().remove(field);
            } else {
                v[field] = value.clone();
            }
            let err = parse(v).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
        let mut v = good();
        v["coupon"] = "FREE".into();
        let err = parse(v).unwrap_err();
        assert_eq!(err.field, "body");
        assert!(err.problem.contains("coupon"), "{err}");
        assert_eq!(NewPurchase::parse(b"[1]", NOW).unwrap_err().field, "body");
        assert_eq!(NewPurchase::parse(b"{", NOW).unwrap_err().field, "body");
    }

    #[test]
    fn fingerprint_ignores_spelling_not_content() {
        let a = parse(good()).unwrap();
        let spelled = br#"{ "currency":"CNY","price":1500,"album":"first-light","user":"u@x","order_id":"o-1" }"#;
        let b = NewPurchase::parse(spelled, NOW).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut v = good();
        v["price"] = 1501.into();
        assert_ne!(a.fingerprint(), parse(v).unwrap().fingerprint());
        let mut v = good();
        v["purchased_at"] = "2027-01-15T08:00:00Z".into();
        let z = parse(v.clone()).unwrap();
        v["purchased_at"] = "2027-01-15T16:00:00+08:00".into();
        assert_eq!(z.fingerprint(), parse(v).unwrap().fingerprint());
        assert_ne!(a.fingerprint(), z.fingerprint());
        // Defaults spelled out are the same order; other copies or a gift are not.
        let mut v = good();
        v["quantity"] = 1.into();
        v["gift_from_visible"] = false.into();
        assert_eq!(a.fingerprint(), parse(v).unwrap().fingerprint());
        let mut v = good();
        v["quantity"] = 2.into();
        assert_ne!(a.fingerprint(), parse(v).unwrap().fingerprint());
        let mut v = good();
        v["gift_to"] = "friend".into();
        assert_ne!(a.fingerprint(), parse(v).unwrap().fingerprint());
    }

    #[test]
    fn an_old_fingerprint_is_unchanged() {
        // The canonical JSON of a plain order, as hashed before copies and gifts existed.
        let a = parse(good()).unwrap();
        let old = br#"{"order_id":"o-1","user":"u@x","album":"first-light","price":1500,"currency":"CNY","purchased_at":null}"#;
        assert_eq!(a.fingerprint(), hex::encode(Sha256::digest(old)));
    }
}
