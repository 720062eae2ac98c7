//! RFC 3339 times at the API edge; Unix seconds in the ledger.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Unix seconds of an RFC 3339 time, or None if it is not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// `2026-11-28T09:30:00Z` for Unix seconds (UTC, whole seconds).
pub fn format_rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(format_rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(parse_rfc3339("2027-01-15T08:00:00Z"), Some(1_800_000_000));
        assert_eq!(
            parse_rfc3339("2027-01-15T16:00:00+08:00"),
            Some(1_800_000_000)
        );
        assert_eq!(parse_rfc3339("2027-01-15"), None);
    }
}
