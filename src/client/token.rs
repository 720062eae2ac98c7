//! A bearer token that stays out of logs and panic messages.

use std::fmt;

/// A `play` token (JWT). Its `Debug` prints `"<redacted>"`, so a struct holding one can derive
/// `Debug` without the token ever reaching a log through `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt("<redacted>", f)
    }
}

impl From<String> for Token {
    fn from(token: String) -> Self {
        Self(token)
    }
}

impl From<&str> for Token {
    fn from(token: &str) -> Self {
        Self(token.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = Token::from("secret.jwt");
        assert_eq!(format!("{token:?}"), "\"<redacted>\"");
        assert_eq!(token.expose(), "secret.jwt");
    }
}
