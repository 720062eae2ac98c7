//! The renditions encore packages for every track, by name: what a name means wherever it
//! appears (URLs, catalog JSON, licenses, the store's folders). How each is made is
//! `ingest`'s business.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the renditions every track is packaged in. On the wire and on disk it is its
/// lowercase name ([`Rendition::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rendition {
    /// FLAC at the source's rate and depth.
    Lossless,
    /// Opus, ~256 kbit/s stereo.
    High,
    /// Opus, ~128 kbit/s stereo.
    Standard,
    /// AAC-LC, ~256 kbit/s stereo at 44.1 or 48 kHz: the codec Apple's HLS players require.
    /// Buyers only, like every full-length rendition.
    Aac,
    /// A faded clip, AAC-LC at 48 kHz and the standard tier's bitrate, under its own content
    /// key: the one rendition every player, Apple's included, can play without a purchase.
    Preview,
}

impl Rendition {
    /// Every rendition, in the order they are packaged.
    pub const ALL: [Rendition; 5] = [
        Rendition::Lossless,
        Rendition::High,
        Rendition::Standard,
        Rendition::Aac,
        Rendition::Preview,
    ];

    /// The name in URLs, the catalog, licenses and the store's folders.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rendition::Lossless => "lossless",
            Rendition::High => "high",
            Rendition::Standard => "standard",
            Rendition::Aac => "aac",
            Rendition::Preview => "preview",
        }
    }

    /// True for the clip anyone may play; every other rendition is full length and for buyers.
    pub const fn is_preview(self) -> bool {
        matches!(self, Rendition::Preview)
    }

    /// The codec's short name, as the manifest's `codec` states it: "flac", "opus" or "aac".
    pub const fn codec(self) -> &'static str {
        match self {
            Rendition::Lossless => "flac",
            Rendition::High | Rendition::Standard => "opus",
            Rendition::Aac | Rendition::Preview => "aac",
        }
    }

    /// The rendition called `name` in URLs, the catalog and licenses, if there is one.
    pub fn named(name: &str) -> Option<Rendition> {
        Rendition::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether `name` is the preview's name: an unknown name is not.
    pub fn names_preview(name: &str) -> bool {
        Rendition::named(name).is_some_and(Rendition::is_preview)
    }
}

impl fmt::Display for Rendition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`Rendition::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no rendition {0:?}: encore packages lossless, high, standard, aac and preview")]
pub struct UnknownRendition(pub String);

impl FromStr for Rendition {
    type Err = UnknownRendition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rendition::named(s).ok_or_else(|| UnknownRendition(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_display_and_serde() {
        for r in Rendition::ALL {
            assert_eq!(r.as_str().parse::<Rendition>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Rendition>(&json).unwrap(), r);
        }
        assert_eq!(
            "Lossless".parse::<Rendition>(),
            Err(UnknownRendition("Lossless".into()))
        );
        assert!("".parse::<Rendition>().is_err());
    }

    #[test]
    fn only_the_preview_is_the_preview() {
        let previews: Vec<_> = Rendition::ALL
            .into_iter()
            .filter(|r| r.is_preview())
            .collect();
        assert_eq!(previews, [Rendition::Preview]);
        assert!(Rendition::names_preview("preview"));
        assert!(!Rendition::names_preview("lossless"));
        assert!(!Rendition::names_preview("Preview"));
    }
}
