//! [`ReleaseDate`]: a `release_date`, as a TOML string or a bare TOML date, checked to exist.

use std::fmt;

/// A calendar date, `YYYY-MM-DD`, checked to exist (no February 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseDate {
    /// Year, 1..=9999.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31 as the month allows.
    pub day: u8,
}

impl ReleaseDate {
    /// Parses `YYYY-MM-DD` and checks the day exists.
    pub fn parse(s: &str) -> Result<ReleaseDate, String> {
        let bad = || format!("is {s:?}; want a real date as YYYY-MM-DD, e.g. \"2025-03-21\"");
        let b = s.as_bytes();
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return Err(bad());
        }
        // Only ASCII digits remain in these ranges, so the parses cannot fail.
        let year: u16 = s[0..4].parse().map_err(|_| bad())?;
        let month: u8 = s[5..7].parse().map_err(|_| bad())?;
        let day: u8 = s[8..10].parse().map_err(|_| bad())?;
        if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(bad());
        }
        Ok(ReleaseDate { year, month, day })
    }

    /// Accepts a TOML string or a bare TOML local date (`release_date = 2025-03-21`).
    pub(super) fn from_toml(v: &toml::Value) -> Result<ReleaseDate, String> {
        match v {
            toml::Value::String(s) => ReleaseDate::parse(s),
            toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                ReleaseDate::parse(&dt.to_string())
            }
            other => Err(format!(
                "is {other}; want a date as YYYY-MM-DD, e.g. \"2025-03-21\""
            )),
        }
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

impl fmt::Display for ReleaseDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}
