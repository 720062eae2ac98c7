//! Keys of the platform's account service, a trusted issuer of `account` tokens: its Ed25519
//! public keys as SPKI PEM files in `keys/accounts/*.pub.pem`. encore only verifies with
//! them. In development, `encore keys init` also creates a stand-in account service key pair
//! there (`dev-account.key.pem`) so that `encore token mint --scope account` can sign.

use std::path::{Path, PathBuf};

use super::error::KeyError;
use super::keyfiles::{load_public, load_signing_pair};
use super::layout::{DIR_MODE, PUBLIC_MODE, SECRET_MODE};
use super::vault::KeyDir;
use crate::durable;
use crate::seal::{PublicSigningKey, SigningError, SigningKeyPair};

/// Folder under the keys dir holding the account service's public keys.
pub const ACCOUNTS_DIR: &str = "accounts";
/// The development stand-in's private key (never present in production).
pub const DEV_ACCOUNT_KEY: &str = "dev-account.key.pem";
/// The development stand-in's public key.
pub const DEV_ACCOUNT_PUB: &str = "dev-account.pub.pem";

/// The accounts folder of `keys_dir`.
pub fn accounts_dir(keys_dir: &Path) -> PathBuf {
    keys_dir.join(ACCOUNTS_DIR)
}

/// Every trusted account-service public key (`keys/accounts/*.pub.pem`), sorted by file
/// name. An absent folder means no account service is trusted.
pub fn load_account_keys(keys_dir: &Path) -> Result<Vec<PublicSigningKey>, KeyError> {
    let dir = accounts_dir(keys_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(KeyError::io("list", &dir)(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(KeyError::io("list", &dir))?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".pub.pem"))
        {
            paths.push(path);
        }
    }
    paths.sort();
    let mut keys = Vec::new();
    for path in paths {
        if let Some(key) = load_public(&KeyDir::folder(&path), &path)? {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Creates the development account-service key pair when `keys/accounts/` holds no public
/// key yet; returns whether it did. Files are written atomically, the private one 0600.
pub fn init_dev_account_key(keys_dir: &Path) -> Result<bool, KeyError> {
    if !load_account_keys(keys_dir)?.is_empty() {
        return Ok(false);
    }
    let dir = accounts_dir(keys_dir);
    durable::create_dir_all_durable_with_mode(&dir, DIR_MODE)
        .map_err(KeyError::io("create directory", &dir))?;
    let private = dir.join(DEV_ACCOUNT_KEY);
    // A crash between the two writes leaves the private key alone: adopt it.
    let pair = match load_signing_pair(&KeyDir::folder(&private), &private)? {
        Some(pair) => pair,
        None => {
            let pair = SigningKeyPair::generate().map_err(|e| signing_error(&private, e))?;
            let pem = pair
                .to_pkcs8_pem()
                .map_err(|e| signing_error(&private, e))?;
            durable::write_atomic(&private, pem.as_bytes(), SECRET_MODE)
                .map_err(KeyError::io("write", &private))?;
            pair
        }
    };
    let public = dir.join(DEV_ACCOUNT_PUB);
    let pem = pair
        .public()
        .and_then(|p| p.to_spki_pem())
        .map_err(|e| signing_error(&public, e))?;
    durable::write_atomic(&public, pem.as_bytes(), PUBLIC_MODE)
        .map_err(KeyError::io("write", &public))?;
    tracing::info!(kid = %pair.kid(), "created a DEVELOPMENT account-service key in {}", dir.display());
    Ok(true)
}

/// The development account-service private key, for `encore token mint --scope account`.
pub fn dev_account_key(keys_dir: &Path) -> Result<Option<SigningKeyPair>, KeyError> {
    let path = accounts_dir(keys_dir).join(DEV_ACCOUNT_KEY);
    load_signing_pair(&KeyDir::folder(&path), &path)
}

fn signing_error(path: &Path, e: SigningError) -> KeyError {
    match e {
        SigningError::Rng(e) => KeyError::Rng(e),
        other => KeyError::corrupt(path, "account-service signing key", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_is_created_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_account_keys(dir.path()).unwrap().is_empty());
        assert!(dev_account_key(dir.path()).unwrap().is_none());
        assert!(init_dev_account_key(dir.path()).unwrap());
        assert!(!init_dev_account_key(dir.path()).unwrap());
        let keys = load_account_keys(dir.path()).unwrap();
        let pair = dev_account_key(dir.path()).unwrap().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), pair.kid());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(accounts_dir(dir.path()).join(DEV_ACCOUNT_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
