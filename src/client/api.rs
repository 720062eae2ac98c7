//! The JSON documents of the HTTP API (`docs/HTTP.md`) as the client reads them: license
//! request and answer, rendition manifest, problem details.
//!
//! Unknown fields are ignored and fields the client does not need default, so a server that
//! adds to the contract does not break older clients.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::seal::{ContentKey, KeyId};

/// Problem `type` for a valid token without the entitlement (album not bought).
pub const PROBLEM_NOT_PURCHASED: &str = "urn:encore:problem:not-purchased";
/// Problem `type` for a token whose scope cannot do this.
pub const PROBLEM_SCOPE_NOT_ALLOWED: &str = "urn:encore:problem:scope-not-allowed";
/// The rendition every play token may fetch.
pub const PREVIEW_RENDITION: &str = "preview";

/// Body of `POST /v1/licenses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseRequest {
    /// Album id.
    pub album: String,
    /// Track number, from 1.
    pub track: u32,
}

/// Answer of `POST /v1/licenses`: the content keys the token's holder is entitled to.
#[derive(Debug, Deserialize)]
pub struct License {
    /// Album id.
    pub album: String,
    /// Track number, from 1.
    pub track: u32,
    /// Unix seconds after which the keys must not be used (the token's `exp`).
    pub expires_at: u64,
    /// One key per rendition the holder may play.
    pub keys: Vec<LicenseKey>,
}

impl License {
    /// The key for `rendition`, if the license holds one.
    pub fn key_for(&self, rendition: &str) -> Option<&LicenseKey> {
        self.keys.iter().find(|k| k.rendition == rendition)
    }

    /// Every key the license holds for `rendition`, newest first (more than one while the
    /// server rotates that rendition's content key).
    pub fn keys_for<'a>(&'a self, rendition: &'a str) -> impl Iterator<Item = &'a LicenseKey> {
        self.keys.iter().filter(move |k| k.rendition == rendition)
    }

    /// Rendition names the license holds keys for, in the server's order, each once.
    pub fn renditions(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for k in &self.keys {
            if !names.contains(&k.rendition) {
                names.push(k.rendition.clone());
            }
        }
        names
    }
}

/// One content key of a license. The key is zeroized on drop and never printed by `Debug`.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct LicenseKey {
    /// Rendition name.
    #[zeroize(skip)]
    pub rendition: String,
    /// Id of the key, as written in every segment it seals.
    #[zeroize(skip)]
    pub key_id: KeyId,
    /// The 32-byte key as 64 hex digits.
    key: String,
}

/// A license key that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the content key is not 64 hex digits")]
pub struct BadKeyHex;

impl LicenseKey {
    /// The content key, ready to open segments.
    pub fn content_key(&self) -> Result<ContentKey, BadKeyHex> {
        let mut bytes = [0u8; 32];
        let decoded = hex::decode_to_slice(self.key.as_bytes(), &mut bytes);
        let key = decoded.map(|()| ContentKey::from_bytes(self.key_id, bytes));
        // `from_bytes` took a copy; wipe ours whether or not decoding succeeded.
        bytes.zeroize();
        key.map_err(|_| BadKeyHex)
    }
}

impl fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LicenseKey")
            .field("rendition", &self.rendition)
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Answer of `GET /v1/albums/{album}/tracks/{n}/{rendition}/manifest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Album id.
    pub album: String,
    /// Track number, from 1.
    pub track: u32,
    /// Rendition name.
    pub rendition: String,
    /// Codec name: `flac` or `opus`.
    pub codec: String,
    /// Codec string for HLS `CODECS` and MSE.
    #[serde(default)]
    pub codec_string: String,
    /// Sample rate in Hz; also the unit of `start` and `duration_samples`.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Bits per decoded sample: stated for lossless renditions only.
    #[serde(default)]
    pub bits_per_sample: Option<u16>,
    /// Samples per channel a player presents.
    pub duration_samples: u64,
    /// Samples a player skips at the start (Opus pre-skip).
    #[serde(default)]
    pub skip_samples: u64,
    /// Average bitrate in bits per second.
    #[serde(default)]
    pub bitrate: u32,
    /// Content key id that seals every segment.
    pub key_id: KeyId,
    /// The init segment.
    pub init: SegmentRef,
    /// The media segments, in play order, numbered from 1.
    pub segments: Vec<SegmentRef>,
}

impl Manifest {
    /// Presented duration in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.duration_samples as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// One segment of a manifest (init or media).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// Media segment number from 1; absent or 0 for the init segment.
    #[serde(default)]
    pub index: u32,
    /// Absolute path on the server (a full URL is accepted if it has the server's origin).
    pub url: String,
    /// Decode time of the first sample, in `sample_rate` units.
    #[serde(default)]
    pub start: u64,
    /// Duration in `sample_rate` units.
    #[serde(default)]
    pub duration_samples: u64,
    /// Duration in seconds.
    #[serde(default)]
    pub duration: f64,
    /// Size of the sealed segment in bytes.
    pub bytes: u64,
    /// SHA-256 of the sealed segment, 64 hex digits.
    pub sha256: String,
}

/// An `application/problem+json` body (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable type, `urn:encore:problem:<name>`; `about:blank` when absent (RFC 9457).
    #[serde(rename = "type", default = "about_blank")]
    pub problem_type: String,
    /// Short summary of the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// HTTP status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong in this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn about_blank() -> String {
    "about:blank".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP_MD: &str = include_str!("../../docs/HTTP.md");

    /// The ```json blocks of docs/HTTP.md, placeholders replaced by real values, so these
    /// tests fail when the documented shape and the client drift apart.
    fn doc_examples() -> Vec<String> {
        let mut blocks = Vec::new();
        let mut rest = HTTP_MD;
        while let Some(start) = rest.find("```json\n") {
            let body = &rest[start + 8..];
            let end = body.find("```").unwrap();
            blocks.push(
                body[..end]
                    .replace("<32 hex>", &"ab".repeat(16))
                    .replace("<64 hex>", &"cd".repeat(32)),
            );
            rest = &body[end..];
        }
        blocks
    }

    /// The example of HTTP.md that contains `marker`.
    fn doc_example(marker: &str) -> String {
        doc_examples()
            .into_iter()
            .find(|b| b.contains(marker))
            .unwrap_or_else(|| panic!("no json example with {marker:?} in docs/HTTP.md"))
    }

    #[test]
    fn license_example_from_the_docs_parses() {
        let json = doc_example("\"keys\"");
        let license: License = serde_json::from_str(&json).unwrap();
        assert_eq!(license.album, "first-light");
        assert_eq!(license.track, 1);
        assert_eq!(license.expires_at, 1_764_300_000);
        assert_eq!(license.renditions(), vec!["preview".to_owned()]);
        let key = license.key_for("preview").unwrap();
        assert_eq!(key.key_id.to_string(), "ab".repeat(16));
        let content = key.content_key().unwrap();
        assert_eq!(content.id(), key.key_id);
        assert_eq!(content.expose_bytes(), &[0xcd; 32]);
        assert!(license.key_for("lossless").is_none());
    }

    #[test]
    fn manifest_example_from_the_docs_parses() {
        let json = doc_example("\"segments\"");
        let m: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!((m.album.as_str(), m.track), ("first-light", 1));
        assert_eq!(m.rendition, "lossless");
        assert_eq!(
            (m.codec.as_str(), m.sample_rate, m.channels),
            ("flac", 44100, 2)
        );
        assert_eq!(m.bits_per_sample, Some(16));
        assert_eq!(m.duration_samples, 1_234_567);
        assert_eq!(m.key_id.to_string(), "ab".repeat(16));
        assert_eq!(m.init.index, 0);
        assert_eq!(m.init.bytes, 700);
        assert!(m.init.url.ends_with("/init.enc"));
        assert_eq!(m.segments.len(), 1);
        let s = &m.segments[0];
        assert_eq!((s.index, s.start, s.duration_samples), (1, 0, 266_240));
        assert_eq!(s.bytes, 412_345);
        assert!((s.duration - 6.037).abs() < 1e-9);
        assert!((m.duration_seconds() - 1_234_567.0 / 44_100.0).abs() < 1e-9);
    }

    #[test]
    fn problem_parses_with_and_without_type() {
        let p: Problem = serde_json::from_str(
            r#"{"type": "urn:encore:problem:not-purchased", "title": "Not purchased",
                "status": 403, "detail": "album first-light is not in the token's albums"}"#,
        )
        .unwrap();
        assert_eq!(p.problem_type, PROBLEM_NOT_PURCHASED);
        assert_eq!(p.status, Some(403));
        assert_eq!(p.title.as_deref(), Some("Not purchased"));
        let bare: Problem = serde_json::from_str(r#"{"status": 500}"#).unwrap();
        assert_eq!(bare.problem_type, "about:blank");
        assert_eq!(bare.detail, None);
    }

    #[test]
    fn license_request_serializes_as_documented() {
        let body = LicenseRequest {
            album: "first-light".into(),
            track: 1,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"album": "first-light", "track": 1})
        );
    }

    #[test]
    fn license_key_never_prints_and_rejects_bad_hex() {
        let json = format!(
            r#"{{"rendition": "lossless", "key_id": "{}", "key": "{}"}}"#,
            "00".repeat(16),
            "7f".repeat(32)
        );
        let key: LicenseKey = serde_json::from_str(&json).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("7f7f"), "{debug}");
        assert!(debug.contains("redacted"));

        let short = format!(
            r#"{{"rendition": "lossless", "key_id": "{}", "key": "abcd"}}"#,
            "00".repeat(16)
        );
        let key: LicenseKey = serde_json::from_str(&short).unwrap();
        assert_eq!(key.content_key().err(), Some(BadKeyHex));
    }
}
