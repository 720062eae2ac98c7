//! The names and permission modes of the keys directory's files, and which album ids may
//! name a file there. Formats are specified in `docs/SEALING.md`.
//!
//! ```text
//! keys/                          0700
//!   keyring.json                 0644  state: active KEK, active signing kid, all entries
//!   keyring.lock                 0600  flock'd by every writer
//!   kek-<id>.json                0600  a KEK (32 bytes, hex) with its id and creation time
//!   signing-<kid>.key.pem        0600  Ed25519 private key, PKCS#8 PEM
//!   signing-<kid>.pub.pem        0644  Ed25519 public key, SPKI PEM
//!   content/                     0700
//!     <album>.json               0600  that album's content keys, wrapped under a KEK
//!   accounts/*.pub.pem           0644  the account service's public keys
//!   audit.jsonl                  0640  the audit log of key operations (append-only)
//! ```

use crate::seal::{KeyId, SigningKid};

/// State file name. DO NOT CHANGE: existing key directories depend on it.
pub const STATE_FILE: &str = "keyring.json";
/// Lock file name.
pub const LOCK_FILE: &str = "keyring.lock";
/// Directory of wrapped content keys, one file per album.
pub const CONTENT_DIR: &str = "content";
/// Version of every JSON file in the keys directory. DO NOT CHANGE without a migration.
pub(crate) const FORMAT: u32 = 1;
/// `kind` field of a KEK file.
pub(crate) const KEK_KIND: &str = "encore-kek";
/// Mode of the keys directory and its folders.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of a file only the owner may read.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Mode of a public file.
pub(crate) const PUBLIC_MODE: u32 = 0o644;
/// Longest album id accepted as a file name.
pub(crate) const MAX_ALBUM_LEN: usize = 64;

/// File name of the KEK `id`.
pub(crate) fn kek_file_name(id: KeyId) -> String {
    format!("kek-{id}.json")
}

/// File name of the private half of signing key `kid`.
pub(crate) fn signing_private_name(kid: SigningKid) -> String {
    format!("signing-{kid}.key.pem")
}

/// File name of the public half of signing key `kid`.
pub(crate) fn signing_public_name(kid: SigningKid) -> String {
    format!("signing-{kid}.pub.pem")
}

/// Why `album` cannot name a key file, or `None`. A path-safety check (lowercase ASCII
/// letters, digits and `-`, not starting with `-`, 1 to 64 bytes): the catalog's album-id
/// rule is stricter, so every real album id passes.
pub(crate) fn album_problem(album: &str) -> Option<&'static str> {
    if album.is_empty() {
        Some("it is empty")
    } else if album.len() > MAX_ALBUM_LEN {
        Some("it is longer than 64 characters")
    } else if !album
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("only lowercase letters, digits and '-' are allowed")
    } else if album.starts_with('-') {
        Some("it starts with '-'")
    } else {
        None
    }
}
