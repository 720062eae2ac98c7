//! The files of the keys directory: JSON formats, permission checks, and reading and writing
//! them (secrets through zeroizing buffers). Names and modes are in [`super::layout`]; formats
//! are specified in `docs/SEALING.md`.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::KeyError;
use super::layout::{
    FORMAT, KEK_KIND, PUBLIC_MODE, SECRET_MODE, kek_file_name, signing_private_name,
};
use crate::durable;
use crate::seal::key::{KEY_LEN, Kek, KeyId};
use crate::seal::signing::{PublicSigningKey, SigningError, SigningKeyPair, SigningKid};

// The structs below are the on-disk formats: field names and meanings are stored data.
// DO NOT CHANGE them; add optional fields, or bump FORMAT with a migration.

/// `keyring.json`: which keys exist and which are active. Not secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateFile {
    pub(crate) format: u32,
    pub(crate) active_kek: KeyId,
    pub(crate) active_signing: SigningKid,
    pub(crate) keks: Vec<KekEntry>,
    pub(crate) signing: Vec<SigningEntry>,
    /// KEKs a finished rotation took out of service (their files are deleted right after
    /// this is written; a file still there is the debris of a crash in between).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) retired_keks: Vec<KeyId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KekEntry {
    pub(crate) id: KeyId,
    pub(crate) created_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SigningEntry {
    pub(crate) kid: SigningKid,
    pub(crate) created_unix: u64,
    /// When it starts signing; absent = at creation (keys made by `init`). A rotated-in key
    /// is published in the JWKS from `created_unix` but signs only from here, so edges that
    /// cache the JWKS learn it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) activates_unix: Option<u64>,
    /// From when it is no longer trusted: every token it signed has expired by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retires_unix: Option<u64>,
    /// When staff revoked it: distrusted from then on, whatever its tokens say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_unix: Option<u64>,
}

/// `kek-<id>.json`. The key borrows from the (zeroizing) file buffer: no stray copies.
#[derive(Serialize, Deserialize)]
pub(crate) struct KekFile<'a> {
    pub(crate) format: u32,
    pub(crate) kind: &'a str,
    pub(crate) id: KeyId,
    pub(crate) created_unix: u64,
    /// 64 lowercase hex digits.
    pub(crate) key: &'a str,
}

/// `content/<album>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContentFile {
    pub(crate) format: u32,
    pub(crate) album: String,
    pub(crate) keys: Vec<ContentEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContentEntry {
    pub(crate) track: u32,
    pub(crate) rendition: String,
    pub(crate) id: KeyId,
    pub(crate) kek: KeyId,
    pub(crate) created_unix: u64,
    /// 12-byte GCM nonce, hex.
    pub(crate) nonce: String,
    /// Wrapped key: 32-byte ciphertext then 16-byte tag, hex.
    pub(crate) wrapped: String,
    /// Set when a newer key replaced it: it still opens the old segments (and licenses still
    /// carry it) until then, when it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retires_unix: Option<u64>,
}

/// Where the files below are read and written: the keys folder or a snapshot of the
/// database's key state (`vault::KeyDir` implements it; a trait here so that this module,
/// which `vault` builds on, need not import it).
pub(crate) trait KeyFiles {
    /// The keys folder the paths are in.
    fn root(&self) -> &Path;
    /// A private file's bytes, `None` if it does not exist.
    fn read_private(&self, path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError>;
    /// A public file's bytes, `None` if it does not exist.
    fn read_public(&self, path: &Path) -> Result<Option<Vec<u8>>, KeyError>;
    /// Writes a file atomically and durably (or into the transaction's snapshot).
    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError>;
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Refuses a private key file that group or others can read or write.
pub(crate) fn check_private_mode(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    if !meta.is_file() {
        return Err(KeyError::corrupt(
            path,
            "key file",
            "it is not a regular file",
        ));
    }
    Ok(())
}

/// Reads a private file into a zeroizing buffer after checking, on the open descriptor, that
/// only the owner can read it. `None` if it does not exist.
pub(crate) fn read_private(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyError::io("open", path)(e)),
    };
    let meta = file.metadata().map_err(KeyError::io("inspect", path))?;
    check_private_mode(path, &meta)?;
    // Sized up front so the buffer never reallocates (which would leave copies behind).
    let len = usize::try_from(meta.len())
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(len.min(1 << 20)));
    file.read_to_end(&mut bytes)
        .map_err(KeyError::io("read", path))?;
    Ok(Some(bytes))
}

/// Reads a public file. `None` if it does not exist.
pub(crate) fn read_public(path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyError::io("read", path)(e)),
    }
}

/// Parses a keys-folder JSON file of this build's [`FORMAT`]; another format is refused by
/// name, unreadable JSON is corrupt.
fn parse_versioned<'a, T: Deserialize<'a>>(
    path: &Path,
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, KeyError> {
    let format = peek_format(bytes).map_err(|e| KeyError::corrupt(path, what, e))?;
    if format != FORMAT {
        return Err(KeyError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: format,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| KeyError::corrupt(path, what, e))
}

pub(crate) fn read_state(dir: &dyn KeyFiles, path: &Path) -> Result<Option<StateFile>, KeyError> {
    let Some(bytes) = dir.read_public(path)? else {
        return Ok(None);
    };
    parse_state(path, &bytes).map(Some)
}

/// Parses the bytes of `keyring.json` (read from `path`).
pub(crate) fn parse_state(path: &Path, bytes: &[u8]) -> Result<StateFile, KeyError> {
    parse_versioned(path, "keyring state", bytes)
}

pub(crate) fn write_state(
    dir: &dyn KeyFiles,
    path: &Path,
    state: &StateFile,
) -> Result<(), KeyError> {
    write_json(dir, path, state, PUBLIC_MODE)
}

/// Whether the private file `path` exists, refusing one that group or others can read.
pub(crate) fn private_exists(path: &Path) -> Result<bool, KeyError> {
    match fs::metadata(path) {
        Ok(meta) => check_private_mode(path, &meta).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeyError::io("inspect", path)(e)),
    }
}

/// Names of the entries of the folder `dir`; empty if it does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, KeyError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(KeyError::io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(KeyError::io("list", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Deletes `path` and syncs its folder; `false` if it was already gone.
pub(crate) fn remove_file_durably(path: &Path) -> Result<bool, KeyError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                durable::sync_dir(parent).map_err(KeyError::io("sync", parent))?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeyError::io("remove", path)(e)),
    }
}

/// Reads the `format` field alone, so a future format is reported as such, not as corrupt.
pub(crate) fn peek_format(bytes: &[u8]) -> Result<u32, serde_json::Error> {
    #[derive(Deserialize)]
    struct Peek {
        format: u32,
    }
    serde_json::from_slice::<Peek>(bytes).map(|p| p.format)
}

pub(crate) fn write_json<T: Serialize>(
    dir: &dyn KeyFiles,
    path: &Path,
    value: &T,
    mode: u32,
) -> Result<(), KeyError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| KeyError::corrupt(path, "JSON document", e))?;
    bytes.push(b'\n');
    dir.write(path, &bytes, mode)
}

pub(crate) fn write_kek(path: &Path, kek: &Kek, created_unix: u64) -> Result<(), KeyError> {
    let key_hex = Zeroizing::new(hex::encode(kek.expose_bytes()));
    let file = KekFile {
        format: FORMAT,
        kind: KEK_KIND,
        id: kek.id(),
        created_unix,
        key: &key_hex,
    };
    // Pre-sized so serialization never reallocates and leaves copies of the key behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer_pretty(&mut *bytes, &file)
        .map_err(|e| KeyError::corrupt(path, "KEK file", e))?;
    bytes.push(b'\n');
    durable::write_atomic(path, &bytes, SECRET_MODE).map_err(KeyError::io("write", path))
}

/// Loads a KEK file: mode check, format, kind, id matching the file name, 32-byte key.
pub(crate) fn load_kek(path: &Path) -> Result<Option<(Kek, u64)>, KeyError> {
    let Some(bytes) = read_private(path)? else {
        return Ok(None);
    };
    let what = "KEK file";
    let file: KekFile<'_> = parse_versioned(path, what, &bytes)?;
    if file.kind != KEK_KIND {
        return Err(KeyError::corrupt(
            path,
            what,
            format!("kind is {:?}, expected {KEK_KIND:?}", file.kind),
        ));
    }
    let expected_name = kek_file_name(file.id);
    if path.file_name().and_then(|n| n.to_str()) != Some(expected_name.as_str()) {
        return Err(KeyError::corrupt(
            path,
            what,
            format!(
                "it holds KEK {}, so it should be named {expected_name}",
                file.id
            ),
        ));
    }
    let mut kek = Kek::zeroed(file.id);
    if file.key.len() != 2 * KEY_LEN || hex::decode_to_slice(file.key, kek.bytes_mut()).is_err() {
        return Err(KeyError::corrupt(path, what, "key is not 64 hex digits"));
    }
    Ok(Some((kek, file.created_unix)))
}

/// Generates a signing key pair and writes its private half (0600); returns it with the path.
pub(crate) fn write_new_signing_private(
    dir: &dyn KeyFiles,
) -> Result<(SigningKeyPair, std::path::PathBuf), KeyError> {
    let pair = SigningKeyPair::generate().map_err(|e| match e {
        SigningError::Rng(e) => KeyError::Rng(e),
        other => KeyError::corrupt(dir.root(), "signing key", other),
    })?;
    let path = dir.root().join(signing_private_name(pair.kid()));
    let pem = pair
        .to_pkcs8_pem()
        .map_err(|e| KeyError::corrupt(&path, "PKCS#8 PEM private key", e))?;
    dir.write(&path, pem.as_bytes(), SECRET_MODE)?;
    Ok((pair, path))
}

/// Writes the public half of `pair` (0644) to `path`.
pub(crate) fn write_signing_public(
    dir: &dyn KeyFiles,
    path: &Path,
    pair: &SigningKeyPair,
) -> Result<(), KeyError> {
    let pem = pair
        .public()
        .and_then(|p| p.to_spki_pem())
        .map_err(|e| KeyError::corrupt(path, "public signing key", e))?;
    dir.write(path, pem.as_bytes(), PUBLIC_MODE)
}

pub(crate) fn load_signing_pair(
    dir: &dyn KeyFiles,
    path: &Path,
) -> Result<Option<SigningKeyPair>, KeyError> {
    let Some(bytes) = dir.read_private(path)? else {
        return Ok(None);
    };
    let what = "PKCS#8 PEM private key";
    let pem =
        std::str::from_utf8(&bytes).map_err(|_| KeyError::corrupt(path, what, "it is not text"))?;
    SigningKeyPair::from_pkcs8_pem(pem)
        .map(Some)
        .map_err(|e| KeyError::corrupt(path, what, e))
}

pub(crate) fn load_public(
    dir: &dyn KeyFiles,
    path: &Path,
) -> Result<Option<PublicSigningKey>, KeyError> {
    let Some(bytes) = dir.read_public(path)? else {
        return Ok(None);
    };
    let what = "SPKI PEM public key";
    let pem =
        std::str::from_utf8(&bytes).map_err(|_| KeyError::corrupt(path, what, "it is not text"))?;
    PublicSigningKey::from_spki_pem(pem)
        .map(Some)
        .map_err(|e| KeyError::corrupt(path, what, e))
}

pub(crate) fn read_content_file(
    dir: &dyn KeyFiles,
    path: &Path,
    album: &str,
) -> Result<Option<ContentFile>, KeyError> {
    // Holds only wrapped keys, but still 0600: who may list which tracks have keys is
    // the licensing staff's business.
    let Some(bytes) = dir.read_private(path)? else {
        return Ok(None);
    };
    let what = "content key file";
    let file: ContentFile = parse_versioned(path, what, &bytes)?;
    if file.album != album {
        return Err(KeyError::corrupt(
            path,
            what,
            format!("it belongs to album {:?}", file.album),
        ));
    }
    Ok(Some(file))
}
