//! Why a fetch failed, with messages a person understands (expired token vs. not bought vs.
//! a tampered segment), and the typed details for code that needs them.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::seal::{KeyId, OpenError, SegmentSlot};

use super::api::{PREVIEW_RENDITION, PROBLEM_NOT_PURCHASED, PROBLEM_SCOPE_NOT_ALLOWED};

/// A failed fetch. Nothing was written to the output path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request cannot be sent as given (server URL, token, output path).
    #[error("{reason}")]
    InvalidRequest {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS roots, for instance).
    #[error("cannot set up the HTTP client: {}", chain(.0))]
    Client(#[source] reqwest::Error),
    /// Connect errors, timeouts or broken connections, still failing after every retry.
    #[error("cannot get {what} from the server after {attempts} attempt(s): {}", chain(.source))]
    Network {
        /// What was being fetched.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        source: reqwest::Error,
    },
    /// 401: the server does not accept the token.
    #[error("unauthorized: the token is missing, invalid or expired ({detail})")]
    Unauthorized {
        /// The server's `detail`, or its problem type.
        detail: String,
    },
    /// 403: a valid token without the entitlement.
    #[error("{}", forbidden_message(.problem_type, .detail))]
    Forbidden {
        /// Problem `type`, e.g. `urn:encore:problem:not-purchased`.
        problem_type: String,
        /// The server's `detail`.
        detail: String,
    },
    /// 404: no such album, track, rendition or segment.
    #[error("not found: {what}")]
    NotFound {
        /// What was asked for, and the server's detail.
        what: String,
    },
    /// Any other unsuccessful status (after retries, for 5xx and 429).
    #[error("the server answered {status} for {what} (after {attempts} attempt(s)): {detail}")]
    Http {
        /// What was being fetched.
        what: String,
        /// HTTP status code.
        status: u16,
        /// Problem `type`, when the body was problem+json.
        problem_type: Option<String>,
        /// The server's `detail`, or the start of its body.
        detail: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A successful status with a body the client cannot use.
    #[error("unexpected answer for {what}: {reason}")]
    BadResponse {
        /// What was being fetched.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The license holds no key for the rendition asked for.
    #[error("{}", not_entitled_message(.rendition, .available))]
    NotEntitled {
        /// The rendition asked for.
        rendition: String,
        /// The renditions the license does hold keys for.
        available: Vec<String>,
    },
    /// The license's keys may no longer be used.
    #[error("the license expired at {expires_at} (unix seconds): get a fresh token and try again")]
    LicenseExpired {
        /// The license's `expires_at`.
        expires_at: u64,
    },
    /// The manifest's segments are sealed under another key than the license's.
    #[error(
        "the manifest says {rendition} is sealed under content key {manifest}, but the \
         license's key is {license}: the keys were rotated meanwhile, try again"
    )]
    KeyMismatch {
        /// Rendition name.
        rendition: String,
        /// `key_id` of the manifest.
        manifest: KeyId,
        /// Id of the license's key.
        license: KeyId,
    },
    /// The manifest is inconsistent (order, origin, sizes, what it describes).
    #[error("the server's manifest is unusable: {reason}")]
    BadManifest {
        /// What is wrong.
        reason: String,
    },
    /// A segment failed its size, hash or seal check; it was not played or written.
    #[error("{} rejected: {reason}", SlotName(*.index))]
    SegmentRejected {
        /// 0 for the init segment, `n` for media segment `n`.
        index: u32,
        /// Which check failed.
        reason: SegmentFault,
    },
    /// An offline license does not open here (signature, device key, expiry, format).
    #[error("{0}")]
    Offline(#[source] crate::seal::offline::OfflineError),
    /// A file of an offline folder or a device key file cannot be read or written.
    #[error("{}: {reason}", .path.display())]
    OfflineFiles {
        /// The file or folder concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Writing the output file failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Output {
        /// What was being done (`create`, `write`, `sync`, `rename into place`).
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why a segment was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentFault {
    /// Fewer bytes than the manifest says.
    #[error("size mismatch: the manifest says {expected} bytes, the server sent {got}")]
    Short {
        /// Manifest `bytes`.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// More bytes than the manifest says (the rest was not read).
    #[error("size mismatch: the manifest says {expected} bytes, the server sent more")]
    Long {
        /// Manifest `bytes`.
        expected: u64,
    },
    /// The bytes do not hash to the manifest's `sha256`.
    #[error("hash mismatch: the manifest says sha256 {expected}, the bytes hash to {actual}")]
    HashMismatch {
        /// Manifest `sha256`.
        expected: String,
        /// SHA-256 of the bytes received.
        actual: String,
    },
    /// The seal did not open: altered, truncated, swapped or under another key.
    #[error("{0}")]
    Open(OpenError),
}

impl FetchError {
    /// The slot of a rejected segment.
    pub fn rejected_slot(&self) -> Option<SegmentSlot> {
        match self {
            FetchError::SegmentRejected { index, .. } => Some(slot_of(*index)),
            _ => None,
        }
    }
}

/// Index 0 is the init segment; media segments count from 1.
pub(crate) fn slot_of(index: u32) -> SegmentSlot {
    if index == 0 {
        SegmentSlot::Init
    } else {
        SegmentSlot::Media(index)
    }
}

/// Displays a segment index as "init segment" or "media segment n".
struct SlotName(u32);

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        slot_of(self.0).fmt(f)
    }
}

fn forbidden_message(problem_type: &str, detail: &str) -> String {
    match problem_type {
        PROBLEM_NOT_PURCHASED => {
            format!("not purchased: only the preview is available ({detail})")
        }
        PROBLEM_SCOPE_NOT_ALLOWED => {
            format!("forbidden: this token's scope cannot do this, use a play token ({detail})")
        }
        other => format!("forbidden ({other}): {detail}"),
    }
}

fn not_entitled_message(rendition: &str, available: &[String]) -> String {
    let list = if available.is_empty() {
        "none".to_owned()
    } else {
        available.join(", ")
    };
    if available.iter().all(|r| r == PREVIEW_RENDITION) && rendition != PREVIEW_RENDITION {
        format!(
            "not purchased: the license has no key for `{rendition}`, only the preview is \
             available (buy the album, or fetch with --rendition preview)"
        )
    } else {
        format!("the license has no key for rendition `{rendition}`; it has keys for: {list}")
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request")
/// says little; the cause ("connection refused") is what a person needs.
fn chain(error: &reqwest::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let e = FetchError::Forbidden {
            problem_type: PROBLEM_NOT_PURCHASED.into(),
            detail: "album first-light not bought".into(),
        };
        assert_eq!(
            e.to_string(),
            "not purchased: only the preview is available (album first-light not bought)"
        );
        let e = FetchError::Unauthorized {
            detail: "token expired".into(),
        };
        assert!(
            e.to_string()
                .contains("token is missing, invalid or expired")
        );
        let e = FetchError::NotEntitled {
            rendition: "lossless".into(),
            available: vec!["preview".into()],
        };
        assert!(e.to_string().starts_with("not purchased"), "{e}");
        let e = FetchError::NotEntitled {
            rendition: "hifi".into(),
            available: vec!["lossless".into(), "preview".into()],
        };
        assert!(e.to_string().contains("lossless, preview"), "{e}");
        let e = FetchError::SegmentRejected {
            index: 3,
            reason: SegmentFault::Open(OpenError::Forged),
        };
        assert!(
            e.to_string().starts_with("media segment 3 rejected: "),
            "{e}"
        );
        assert_eq!(e.rejected_slot(), Some(SegmentSlot::Media(3)));
        let e = FetchError::SegmentRejected {
            index: 0,
            reason: SegmentFault::Long { expected: 10 },
        };
        assert!(
            e.to_string().starts_with("init segment rejected: size"),
            "{e}"
        );
    }
}
