//! [`Keyring::init`]: creating a keys directory, or completing one a crashed `init` left
//! behind, without ever guessing which of several orphan keys is the real one.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Keyring;
use crate::durable;
use crate::keys::error::KeyError;
use crate::keys::keyfiles::{
    KekEntry, SigningEntry, StateFile, load_kek, load_public, load_signing_pair, now_unix,
    read_state, write_kek, write_new_signing_private, write_signing_public, write_state,
};
use crate::keys::layout::{
    CONTENT_DIR, DIR_MODE, FORMAT, STATE_FILE, kek_file_name, signing_private_name,
    signing_public_name,
};
use crate::keys::vault::KeyDir;
use crate::seal::{Kek, KeyId, SigningKeyPair, SigningKid};

/// What [`Keyring::init`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The keys directory.
    pub dir: PathBuf,
    /// The active KEK.
    pub kek: KeyId,
    /// The active signing key.
    pub signing_kid: SigningKid,
    /// Files and directories this run created; empty when the keyring was already complete.
    pub created: Vec<PathBuf>,
}

impl InitReport {
    /// Whether this run changed anything on disk.
    pub fn changed(&self) -> bool {
        !self.created.is_empty()
    }
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changed() {
            writeln!(f, "initialized keyring in {}:", self.dir.display())?;
            for path in &self.created {
                writeln!(f, "  created {}", path.display())?;
            }
        } else {
            writeln!(
                f,
                "keyring in {} is already complete; nothing changed",
                self.dir.display()
            )?;
        }
        writeln!(f, "  active KEK:         {}", self.kek)?;
        write!(f, "  active signing kid: {}", self.signing_kid)
    }
}

impl Keyring {
    /// Creates the keys directory (0700) with a KEK, an Ed25519 signing key pair and the state
    /// file, or completes one a crashed `init` left behind. On a complete directory it changes
    /// nothing and says so.
    ///
    /// Refuses to guess: if `keyring.json` exists but names a KEK or private key that is gone,
    /// or if several orphan keys lie around without it, it returns an error rather than make
    /// new keys (which would orphan content keys wrapped under the old KEK).
    pub fn init(dir: &Path) -> Result<InitReport, KeyError> {
        Keyring::init_in(&KeyDir::folder(dir))
    }

    /// [`init`](Self::init) where `keys` says the keys live. With the database, the KEK is a
    /// file in this node's keys folder and the rest is created in one transaction; on a
    /// database another node initialized, it only checks that this node has the active KEK's
    /// file (copied from that node).
    pub fn init_in(keys: &KeyDir) -> Result<InitReport, KeyError> {
        let dir = keys.path();
        let mut created = Vec::new();
        if !dir.exists() {
            created.push(dir.to_path_buf());
        }
        durable::create_dir_all_durable_with_mode(dir, DIR_MODE)
            .map_err(KeyError::io("create directory", dir))?;
        keys.transact(|kd| init_locked(kd, created))
    }
}

fn init_locked(kd: &KeyDir, mut created: Vec<PathBuf>) -> Result<InitReport, KeyError> {
    let dir = kd.path();
    let _lock = kd.lock()?;
    let content_dir = dir.join(CONTENT_DIR);
    if kd.is_folder() && !content_dir.exists() {
        kd.create_dir(&content_dir, DIR_MODE)?;
        created.push(content_dir);
    }

    let state_path = dir.join(STATE_FILE);
    let (kek, signing_kid) = match read_state(kd, &state_path)? {
        Some(state) => {
            complete_existing(kd, &state_path, &state, &mut created)?;
            (state.active_kek, state.active_signing)
        }
        None => {
            let now = now_unix();
            let (kek_id, kek_created) = adopt_or_create_kek(dir, now, &mut created)?;
            let (kid, signing_created) = adopt_or_create_signing(kd, now, &mut created)?;
            let state = StateFile {
                format: FORMAT,
                active_kek: kek_id,
                active_signing: kid,
                keks: vec![KekEntry {
                    id: kek_id,
                    created_unix: kek_created,
                }],
                signing: vec![SigningEntry {
                    kid,
                    created_unix: signing_created,
                    activates_unix: None,
                    retires_unix: None,
                    revoked_unix: None,
                }],
                retired_keks: Vec::new(),
            };
            write_state(kd, &state_path, &state)?;
            created.push(state_path);
            (kek_id, kid)
        }
    };
    let report = InitReport {
        dir: dir.to_path_buf(),
        kek,
        signing_kid,
        created,
    };
    if report.changed() {
        tracing::info!(dir = %dir.display(), kek = %kek, signing_kid = %signing_kid, "keyring initialized");
    }
    Ok(report)
}

/// The state exists: make sure what it lists is there, re-deriving a lost public key file.
fn complete_existing(
    kd: &KeyDir,
    state_path: &Path,
    state: &StateFile,
    created: &mut Vec<PathBuf>,
) -> Result<(), KeyError> {
    let dir = kd.path();
    let kek_path = dir.join(kek_file_name(state.active_kek));
    if load_kek(&kek_path)?.is_none() {
        if !kd.is_folder() {
            return Err(KeyError::KekNotHere {
                path: kek_path,
                kek: state.active_kek,
            });
        }
        return Err(KeyError::Missing {
            path: kek_path,
            listed_in: state_path.to_path_buf(),
        });
    }
    let kid = state.active_signing;
    let private = dir.join(signing_private_name(kid));
    let Some(pair) = load_signing_pair(kd, &private)? else {
        return Err(KeyError::Missing {
            path: private,
            listed_in: state_path.to_path_buf(),
        });
    };
    if pair.kid() != kid {
        return Err(KeyError::corrupt(
            &private,
            "PKCS#8 PEM private key",
            format!("its kid is {}, not {kid}", pair.kid()),
        ));
    }
    ensure_public(kd, &pair, created)
}

/// Reuses the single KEK file a crashed `init` left, or makes one.
fn adopt_or_create_kek(
    dir: &Path,
    now: u64,
    created: &mut Vec<PathBuf>,
) -> Result<(KeyId, u64), KeyError> {
    let found = orphans(&KeyDir::folder(dir), dir, "kek-", ".json")?;
    match found.as_slice() {
        [] => {
            let kek = Kek::generate()?;
            let path = dir.join(kek_file_name(kek.id()));
            write_kek(&path, &kek, now)?;
            created.push(path);
            Ok((kek.id(), now))
        }
        [path] => match load_kek(path)? {
            Some((kek, created_unix)) => {
                tracing::info!(kek = %kek.id(), "adopting KEK left by an interrupted init");
                Ok((kek.id(), created_unix))
            }
            None => Err(KeyError::Missing {
                path: path.clone(),
                listed_in: dir.to_path_buf(),
            }),
        },
        _ => Err(ambiguous(dir, "KEK files", &found)),
    }
}

/// Reuses the single private signing key a crashed `init` left, or makes one; then makes sure
/// its public key file exists.
fn adopt_or_create_signing(
    kd: &KeyDir,
    now: u64,
    created: &mut Vec<PathBuf>,
) -> Result<(SigningKid, u64), KeyError> {
    let dir = kd.path();
    let found = orphans(kd, dir, "signing-", ".key.pem")?;
    let pair = match found.as_slice() {
        [] => {
            let (pair, path) = write_new_signing_private(kd)?;
            created.push(path);
            pair
        }
        [path] => {
            let pair = load_signing_pair(kd, path)?.ok_or_else(|| KeyError::Missing {
                path: path.clone(),
                listed_in: dir.to_path_buf(),
            })?;
            tracing::info!(signing_kid = %pair.kid(), "adopting signing key left by an interrupted init");
            pair
        }
        _ => return Err(ambiguous(dir, "private signing keys", &found)),
    };
    ensure_public(kd, &pair, created)?;
    Ok((pair.kid(), now))
}

fn ambiguous(dir: &Path, what: &str, found: &[PathBuf]) -> KeyError {
    let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    KeyError::corrupt(
        &dir.join(STATE_FILE),
        "keyring state",
        format!(
            "it is missing and there are several {what} ({}); restore {STATE_FILE} from a \
             backup instead of guessing which is active",
            names.join(", ")
        ),
    )
}

/// Writes the public key file for `pair` if it is missing (it can always be re-derived).
fn ensure_public(
    kd: &KeyDir,
    pair: &SigningKeyPair,
    created: &mut Vec<PathBuf>,
) -> Result<(), KeyError> {
    let path = kd.path().join(signing_public_name(pair.kid()));
    if let Some(existing) = load_public(kd, &path)? {
        if existing.kid() == pair.kid() {
            return Ok(());
        }
        return Err(KeyError::corrupt(
            &path,
            "public signing key",
            format!("its kid is {}, not {}", existing.kid(), pair.kid()),
        ));
    }
    write_signing_public(kd, &path, pair)?;
    created.push(path);
    Ok(())
}

/// Files in `dir` named `<prefix><id><suffix>` (temp files start with '.', so never match).
fn orphans(kd: &KeyDir, dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>, KeyError> {
    Ok(kd
        .list(dir)?
        .into_iter()
        .filter(|name| name.starts_with(prefix) && name.ends_with(suffix))
        .map(|name| dir.join(name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::keyring::tests::{keys_dir, mode_of};
    use std::fs;

    /// Every file under `dir` with its bytes and mode, for "nothing changed" checks.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    out.push((p.clone(), Vec::new(), mode_of(&p)));
                    stack.push(p);
                } else {
                    out.push((p.clone(), fs::read(&p).unwrap(), mode_of(&p)));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn init_creates_layout_with_modes() {
        let (_tmp, dir) = keys_dir();
        let report = Keyring::init(&dir).unwrap();
        assert!(report.changed());
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&dir.join(CONTENT_DIR)), 0o700);
        let kek = dir.join(kek_file_name(report.kek));
        assert_eq!(mode_of(&kek), 0o600);
        let private = dir.join(signing_private_name(report.signing_kid));
        let public = dir.join(signing_public_name(report.signing_kid));
        assert_eq!(mode_of(&private), 0o600);
        assert_eq!(mode_of(&public), 0o644);
        assert_eq!(mode_of(&dir.join(STATE_FILE)), 0o644);
        let pem = fs::read_to_string(&private).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let pub_pem = fs::read_to_string(&public).unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let kek_json: serde_json::Value = serde_json::from_slice(&fs::read(&kek).unwrap()).unwrap();
        assert_eq!(kek_json["id"], report.kek.to_string());
        assert_eq!(kek_json["key"].as_str().unwrap().len(), 64);
        assert!(report.to_string().contains("initialized"));
    }

    #[test]
    fn init_is_idempotent() {
        let (_tmp, dir) = keys_dir();
        let first = Keyring::init(&dir).unwrap();
        let before = snapshot(&dir);
        let second = Keyring::init(&dir).unwrap();
        assert!(!second.changed(), "{second}");
        assert_eq!(second.kek, first.kek);
        assert_eq!(second.signing_kid, first.signing_kid);
        assert_eq!(snapshot(&dir), before);
        assert!(second.to_string().contains("nothing changed"));
    }

    #[test]
    fn init_completes_a_crashed_init() {
        let (_tmp, dir) = keys_dir();
        let first = Keyring::init(&dir).unwrap();
        // Crash before the state and the public key were written.
        fs::remove_file(dir.join(STATE_FILE)).unwrap();
        fs::remove_file(dir.join(signing_public_name(first.signing_kid))).unwrap();
        let second = Keyring::init(&dir).unwrap();
        assert_eq!(second.kek, first.kek, "the existing KEK is adopted");
        assert_eq!(second.signing_kid, first.signing_kid);
        assert_eq!(second.created.len(), 2, "{second}");
        Keyring::open(&dir).unwrap();
        // Public key lost after a complete init: re-derived.
        fs::remove_file(dir.join(signing_public_name(first.signing_kid))).unwrap();
        assert_eq!(Keyring::init(&dir).unwrap().created.len(), 1);
    }

    #[test]
    fn init_refuses_to_replace_a_listed_kek() {
        let (_tmp, dir) = keys_dir();
        let first = Keyring::init(&dir).unwrap();
        fs::remove_file(dir.join(kek_file_name(first.kek))).unwrap();
        let err = Keyring::init(&dir).unwrap_err();
        assert!(matches!(err, KeyError::Missing { .. }), "{err}");
    }

    /// The PEM files are what OpenSSL expects (skipped where `openssl` is not installed).
    #[test]
    fn openssl_reads_the_pem_files() {
        let (_tmp, dir) = keys_dir();
        let report = Keyring::init(&dir).unwrap();
        let private = dir.join(signing_private_name(report.signing_kid));
        let public = dir.join(signing_public_name(report.signing_kid));
        let run = |args: &[&str]| std::process::Command::new("openssl").args(args).output();
        let Ok(out) = run(&["pkey", "-in", private.to_str().unwrap(), "-noout", "-text"]) else {
            eprintln!("openssl not found; skipping");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("ED25519"));
        let out = run(&[
            "pkey",
            "-pubin",
            "-in",
            public.to_str().unwrap(),
            "-noout",
            "-text",
        ])
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
