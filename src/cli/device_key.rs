//! `encore device-key new FILE`: a device's X25519 key for offline licenses, written
//! atomically with mode 0600 (a private JWK); prints the public key to register with
//! `POST /v1/devices`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::fail;
use crate::seal::offline::DeviceSecret;

/// Subcommands of `encore device-key`.
#[derive(Subcommand, Debug)]
pub enum DeviceKeyCommand {
    /// Make a new device key in FILE (refused if FILE exists); print its public key.
    New {
        /// The key file to create (a private JWK, mode 0600).
        file: PathBuf,
    },
    /// Print the public key of the device key in FILE.
    Public {
        /// The key file.
        file: PathBuf,
    },
}

/// Runs `encore device-key`.
pub fn run(cmd: DeviceKeyCommand) -> ExitCode {
    match cmd {
        DeviceKeyCommand::New { file } => {
            if file.exists() {
                return fail(
                    format!(
                        "{} exists; a device key is never overwritten",
                        file.display()
                    ),
                    1,
                );
            }
            let key = match DeviceSecret::generate() {
                Ok(key) => key,
                Err(e) => return fail(e, 1),
            };
            if let Err(e) = crate::durable::write_atomic(&file, key.to_jwk().as_bytes(), 0o600) {
                return fail(format!("cannot write {}: {e}", file.display()), 1);
            }
            println!("{}", key.public());
            ExitCode::SUCCESS
        }
        DeviceKeyCommand::Public { file } => match crate::client::fetch::read_device_key(&file) {
            Ok(key) => {
                println!("{}", key.public());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
    }
}
