//! `encore keys`: create, list, rotate and revoke keys. Never prints key material.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{CommonArgs, fail};
use crate::keys::Keyring;
use crate::keys::account_keys::{accounts_dir, init_dev_account_key};
use crate::keys::rotation::{Actor, KeyListing, RotationSettings, Rotator};
use crate::seal::SigningKid;

/// Subcommands of `encore keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the key-encryption key and a token-signing key pair (idempotent).
    Init {
        /// Keys folder.
        #[arg(long, env = "ENCORE_KEYS", default_value = "keys", value_name = "DIR")]
        keys: PathBuf,
        /// Also create a DEVELOPMENT account-service key pair in `keys/accounts/` (when it
        /// holds none), so `encore token mint --scope account` can stand in for the platform's
        /// account service. Never in production: there, `keys/accounts/` holds only the
        /// account service's public keys.
        #[arg(long)]
        dev_accounts: bool,
        /// Config file: with `keys.store = "database"`, the keys are created in the ledger's
        /// database (once, for every origin) and only the KEK in the keys folder.
        #[arg(long, env = "ENCORE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List keys: kind, id, state, created, activated, retires-at; content keys with
    /// `--content`. No key material.
    List {
        #[command(flatten)]
        common: CommonArgs,
        /// Also list every album's content keys.
        #[arg(long)]
        content: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rotate a key; a running `encore serve` picks the change up without a restart.
    #[command(subcommand)]
    Rotate(RotateCommand),
    /// Revoke a key: distrusted at once (after a suspected leak).
    #[command(subcommand)]
    Revoke(RevokeCommand),
    /// Make a new KEK file in the keys folder without using it yet. With the keys in the
    /// database: copy it to every node's keys folder, then `encore keys rotate kek` on any
    /// node rotates to it (docs/KEYS.md).
    NewKek {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Retire and delete what earlier rotations scheduled and is now due (`encore serve`
    /// does this on a timer).
    Maintain {
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// `encore keys rotate ...`.
#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// A new Ed25519 signing key: in the JWKS at once, signing after
    /// `keys.signing_propagation_seconds`; the old key verifies until its tokens expire.
    Signing(RotateArgs),
    /// A new key-encryption key; every content key is re-wrapped, the old KEK deleted. After a
    /// crash, run it again: it finishes the interrupted rotation.
    Kek(RotateArgs),
    /// New content keys for an album (or one track): re-sealed under new segment URLs; the
    /// old segments keep serving until every license issued before has expired.
    Content {
        #[command(flatten)]
        args: RotateArgs,
        /// The album.
        #[arg(long, value_name = "ID")]
        album: String,
        /// Only this track.
        #[arg(long, value_name = "N")]
        track: Option<u32>,
    },
}

/// `encore keys revoke ...`.
#[derive(Debug, Subcommand)]
pub enum RevokeCommand {
    /// Distrust a signing key now: its tokens fail at once. If it was signing, a pending key
    /// or a new one takes over immediately.
    Signing {
        #[command(flatten)]
        args: RotateArgs,
        /// The key id (16 hex digits, as in `encore keys list` and the JWKS).
        kid: String,
    },
}

/// Flags of every rotation.
#[derive(Debug, Args, Clone)]
pub struct RotateArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs an `encore keys` subcommand.
pub fn run(cmd: KeysCommand) -> ExitCode {
    match cmd {
        KeysCommand::Init {
            keys,
            dev_accounts,
            config,
        } => match init_keys(&keys, config.as_deref()) {
            Ok(report) => {
                println!("{report}");
                if dev_accounts {
                    match init_dev_account_key(&keys) {
                        Ok(true) => println!(
                            "  created a DEVELOPMENT account-service key in {}",
                            accounts_dir(&keys).display()
                        ),
                        Ok(false) => {}
                        Err(e) => return fail(e, 1),
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
        KeysCommand::List {
            common,
            content,
            json,
        } => {
            let rotator = match rotator(&common) {
                Ok(r) => r,
                Err(code) => return code,
            };
            match rotator.list() {
                Ok(listing) if json => print_json(&listing),
                Ok(listing) => {
                    print_listing(&listing, content);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
        KeysCommand::NewKek { common } => {
            let config = match common.load(crate::config::Overrides::default()) {
                Ok(c) => c,
                Err(e) => return fail(e, 2),
            };
            let now = crate::clock::Clock::now_unix(&crate::clock::SystemClock);
            match crate::keys::rotation::kek::new_kek_file(&config.keys_dir, now) {
                Ok((id, path)) => {
                    println!(
                        "new KEK {id} in {} (not in use yet): copy it (mode 0600) to every \
                         node's keys folder, then run `encore keys rotate kek`",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            }
        }
        KeysCommand::Maintain { common } => {
            let rotator = match rotator(&common) {
                Ok(r) => r,
                Err(code) => return code,
            };
            match rotator.maintain() {
                Ok(report) => print_json(&report),
                Err(e) => fail(e, 1),
            }
        }
        KeysCommand::Rotate(RotateCommand::Signing(args)) => operate(
            &args,
            |r, actor| r.rotate_signing(actor),
            |rot| {
                format!(
                    "new signing key {} is in the JWKS now and signs from {} ({}); \
                     superseded: {}",
                    rot.kid,
                    rot.activates_unix,
                    when(rot.activates_unix),
                    list_or_none(rot.superseded.iter().map(|s| {
                        format!("{} (verifies until {})", s.kid, when(s.retires_unix))
                    }))
                )
            },
        ),
        KeysCommand::Rotate(RotateCommand::Kek(args)) => operate(
            &args,
            |r, actor| r.rotate_kek(actor),
            |rot| {
                format!(
                    "{} KEK {}: {} content key(s) in {} album(s) re-wrapped; deleted old KEK(s): {}",
                    if rot.resumed {
                        "finished rotating to"
                    } else {
                        "rotated to"
                    },
                    rot.kek,
                    rot.rewrapped,
                    rot.albums,
                    list_or_none(rot.retired.iter().map(ToString::to_string))
                )
            },
        ),
        KeysCommand::Rotate(RotateCommand::Content { args, album, track }) => operate(
            &args,
            |r, actor| r.rotate_content(actor, &album, track),
            |rot| {
                let mut out = format!(
                    "{} content keys of {}:",
                    if rot.resumed {
                        "finished rotating"
                    } else {
                        "rotated"
                    },
                    rot.album
                );
                for s in &rot.slots {
                    out.push_str(&format!(
                        "\n  track {:>2} {:<9} {} -> {}  generation {} ({} segments re-sealed); old segments served until {}",
                        s.track, s.rendition, s.old_key, s.new_key, s.generation, s.segments, when(s.old_served_until)
                    ));
                }
                out
            },
        ),
        KeysCommand::Revoke(RevokeCommand::Signing { args, kid }) => {
            let kid: SigningKid = match kid.parse() {
                Ok(k) => k,
                Err(e) => return fail(e, 2),
            };
            operate(
                &args,
                |r, actor| r.revoke_signing(actor, kid),
                |rev| {
                    format!(
                        "revoked signing key {}: its tokens are refused from now on; {} signs{}",
                        rev.kid,
                        rev.signer,
                        if rev.created_signer {
                            " (a new key, made now; edges must refetch the JWKS)"
                        } else {
                            ""
                        }
                    )
                },
            )
        }
    }
}

/// `encore keys init` where the config says the keys live.
fn init_keys(
    keys: &std::path::Path,
    config: Option<&std::path::Path>,
) -> Result<crate::keys::InitReport, String> {
    let overrides = crate::config::Overrides {
        keys: Some(keys.to_path_buf()),
        ..Default::default()
    };
    let config = crate::config::Config::load(config, &overrides).map_err(|e| e.to_string())?;
    let dir = super::open_keys(&config)?;
    Keyring::init_in(&dir).map_err(|e| e.to_string())
}

fn rotator(common: &CommonArgs) -> Result<Rotator, ExitCode> {
    let config = common
        .load(crate::config::Overrides::default())
        .map_err(|e| fail(e, 2))?;
    let keys = super::open_keys(&config).map_err(|e| fail(e, 2))?;
    Ok(Rotator::new_in(
        keys,
        config.store(),
        RotationSettings::from(&config.server.keys),
    ))
}

/// Runs one operation as the local user, then the maintenance that is due.
fn operate<T: serde::Serialize>(
    args: &RotateArgs,
    op: impl FnOnce(&Rotator, &Actor) -> Result<T, crate::keys::rotation::RotationError>,
    describe: impl FnOnce(&T) -> String,
) -> ExitCode {
    let rotator = match rotator(&args.common) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let outcome = match op(&rotator, &Actor::local()) {
        Ok(outcome) => outcome,
        Err(e) => return fail(e, 1),
    };
    if let Err(e) = rotator.maintain() {
        eprintln!("warning: the operation succeeded, but maintenance failed: {e}");
    }
    if args.json {
        print_json(&outcome)
    } else {
        println!("{}", describe(&outcome));
        ExitCode::SUCCESS
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}

fn print_listing(listing: &KeyListing, content: bool) {
    println!(
        "{:<8} {:<34} {:<10} {:<20} {:<20} RETIRES-AT",
        "KIND", "ID", "STATE", "CREATED", "ACTIVATED"
    );
    for k in &listing.keys {
        println!(
            "{:<8} {:<34} {:<10} {:<20} {:<20} {}",
            k.kind,
            k.id,
            k.state,
            when(k.created),
            k.activates.map(when).unwrap_or_else(|| "-".into()),
            k.retires_at.map(when).unwrap_or_else(|| "-".into()),
        );
    }
    if listing.keys.iter().filter(|k| k.kind == "kek").count() > 1 {
        println!("note: a KEK rotation was interrupted; run `encore keys rotate kek` to finish it");
    }
    if content {
        println!();
        println!(
            "{:<20} {:>5} {:<10} {:<34} {:<20} RETIRES-AT",
            "ALBUM", "TRACK", "RENDITION", "KEY ID", "CREATED"
        );
        for c in &listing.content {
            println!(
                "{:<20} {:>5} {:<10} {:<34} {:<20} {}",
                c.album,
                c.track,
                c.rendition,
                c.id,
                when(c.created),
                c.retires_at.map(when).unwrap_or_else(|| "-".into()),
            );
        }
    }
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ`.
fn when(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn list_or_none(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
