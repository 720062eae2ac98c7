//! `on_sale_at`: the moment a launch opens sales, an RFC 3339 time with an offset.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Unix seconds of an `on_sale_at` value: a TOML string or a TOML offset datetime, both
/// RFC 3339 with an explicit offset (a local time would open sales at a different moment on
/// each origin's time zone).
pub(super) fn on_sale_at(v: &toml::Value) -> Result<i64, String> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => return Err(format!("is a {}; want an RFC 3339 time", other.type_str())),
    };
    OffsetDateTime::parse(&text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            format!(
                "is {text:?}; want an RFC 3339 time with an offset, e.g. \"2026-12-24T00:00:00Z\""
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_toml_datetimes_with_an_offset() {
        let s = toml::Value::String("2026-12-24T00:00:00Z".into());
        assert_eq!(on_sale_at(&s), Ok(1_798_070_400));
        let v: toml::Table = toml::from_str("t = 2026-12-24T08:00:00+08:00").unwrap();
        assert_eq!(on_sale_at(&v["t"]), Ok(1_798_070_400));
        for bad in [
            "t = 2026-12-24T00:00:00",
            "t = 2026-12-24",
            "t = \"soon\"",
            "t = 5",
        ] {
            let v: toml::Table = toml::from_str(bad).unwrap();
            assert!(on_sale_at(&v["t"]).is_err(), "{bad}");
        }
    }
}
