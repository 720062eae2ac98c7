//! `encore keys`: create and list keys. Never prints key material.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::fail;
use crate::seal::Keyring;

/// Subcommands of `encore keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the key-encryption key and a token-signing key pair (idempotent).
    Init {
        /// Keys folder.
        #[arg(long, env = "ENCORE_KEYS", default_value = "keys", value_name = "DIR")]
        keys: PathBuf,
    },
    /// List keys: kind, id, state, created. No key material.
    List {
        /// Keys folder.
        #[arg(long, env = "ENCORE_KEYS", default_value = "keys", value_name = "DIR")]
        keys: PathBuf,
    },
}

/// Runs an `encore keys` subcommand.
pub fn run(cmd: KeysCommand) -> ExitCode {
    match cmd {
        KeysCommand::Init { keys } => match Keyring::init(&keys) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
        KeysCommand::List { keys } => match Keyring::open(&keys).map(|k| k.list()) {
            Ok(entries) => {
                println!("{:<8} {:<34} {:<8} CREATED (unix)", "KIND", "ID", "STATE");
                for e in entries {
                    let kind = format!("{:?}", e.kind).to_lowercase();
                    let state = format!("{:?}", e.state).to_lowercase();
                    println!("{kind:<8} {:<34} {state:<8} {}", e.id, e.created_unix);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
    }
}
