//! `encore keys`: create and list keys. Never prints key material.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::fail;
use crate::seal::Keyring;
use crate::seal::account_keys::{accounts_dir, init_dev_account_key};

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
        KeysCommand::Init { keys, dev_accounts } => match Keyring::init(&keys) {
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
