//! [`Price`] and its [`Currency`]: minor units and a current ISO 4217 code.

use std::fmt;

/// An album price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    /// Amount in minor units of the currency (999 with EUR = 9.99 €). Integer so no rounding
    /// ever touches money.
    pub minor_units: u64,
    /// The currency.
    pub currency: Currency,
}

/// An ISO 4217 alphabetic code: exactly three ASCII uppercase letters. The format is checked,
/// not membership in the ISO list, which changes; the payment backend is the authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Checks `code` is a current ISO 4217 code, from the table purchases are checked
    /// against (an album priced in a code no purchase may carry could never be bought).
    pub fn parse(code: &str) -> Result<Currency, String> {
        match code.as_bytes() {
            &[a, b, c] if crate::ledger::purchase::is_iso_4217(code) => Ok(Currency([a, b, c])),
            _ => Err(format!(
                "is {code:?}; want a current ISO 4217 code in uppercase, e.g. \"EUR\""
            )),
        }
    }

    /// The code, e.g. `"EUR"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
