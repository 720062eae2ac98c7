//! The `encore` command line: parses flags (with env fallbacks), loads the config, dispatches.

mod device_key;
mod edge_config;
mod fetch;
mod ingest;
mod keys;
mod logging;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};

/// encore: a license-gated album streaming origin.
#[derive(Debug, Parser)]
#[command(name = "encore", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Package album folders into sealed CMAF segments in the data dir.
    Ingest(ingest::IngestArgs),
    /// Manage keys (licensing staff).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Serve the catalog, licenses and sealed segments over HTTP.
    Serve(serve::ServeArgs),
    /// Mint tokens (operators, tests, dev mode).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The reference client: license, manifest, segments, seal check, a playable .m4a.
    Fetch(fetch::FetchArgs),
    /// Print the nginx configuration of a CDN edge, with its own `edge` token.
    EdgeConfig(edge_config::EdgeConfigArgs),
    /// Make a device key for offline licenses (players, tests).
    #[command(subcommand)]
    DeviceKey(device_key::DeviceKeyCommand),
}

/// Flags shared by every subcommand that reads the config.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Config file (default: ./encore.toml when present).
    #[arg(long, env = "ENCORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder of album folders.
    #[arg(long, env = "ENCORE_MEDIA", value_name = "DIR")]
    pub media: Option<PathBuf>,
    /// Keys folder.
    #[arg(long, env = "ENCORE_KEYS", value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Data folder (packaged store).
    #[arg(long, env = "ENCORE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl CommonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            media: self.media.clone(),
            keys: self.keys.clone(),
            data: self.data.clone(),
            ..Default::default()
        }
    }

    fn load(&self, extra: Overrides) -> Result<Config, crate::config::ConfigError> {
        let base = self.overrides();
        let merged = Overrides {
            media: base.media,
            keys: base.keys,
            data: base.data,
            listen: extra.listen,
            segment_seconds: extra.segment_seconds,
            parallelism: extra.parallelism,
            json_logs: extra.json_logs,
        };
        Config::load(self.config.as_deref(), &merged)
    }
}

/// Entry point of the `encore` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = match &cli.command {
        Command::Serve(args) => args.wants_json_logs(),
        _ => false,
    };
    logging::init(json_logs);
    crate::app::memory::limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Ingest(args) => ingest::run(args).await,
            Command::Keys(cmd) => keys::run(cmd),
            Command::Serve(args) => serve::run(args).await,
            Command::Token(cmd) => token::run(cmd),
            Command::Fetch(args) => fetch::run(args).await,
            Command::EdgeConfig(args) => edge_config::run(args),
            Command::DeviceKey(cmd) => device_key::run(cmd),
        }
    })
}

/// Where the configured keys live: the keys folder, or (`keys.store = "database"`) the
/// ledger's database, with the keys folder holding this node's KEK files.
fn open_keys(config: &Config) -> Result<crate::keys::KeyDir, String> {
    use crate::config::KeyStoreKind;
    use crate::keys::{KeyDb, KeyDir};
    match config.server.keys.store {
        KeyStoreKind::Folder => Ok(KeyDir::folder(&config.keys_dir)),
        KeyStoreKind::Database => {
            let (url, location) = match &config.server.ledger.url {
                // Never print credentials: name the database by host only.
                Some(url) => (
                    url.clone(),
                    url.split('@').next_back().unwrap_or("ledger").to_owned(),
                ),
                None => {
                    crate::durable::create_dir_all_durable_with_mode(
                        &config.data_dir,
                        crate::durable::PRIVATE_DIR_MODE,
                    )
                    .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
                    let path = config.data_dir.join(crate::ledger::LEDGER_FILE);
                    let mut encoded = String::new();
                    for c in path.display().to_string().chars() {
                        match c {
                            '%' => encoded.push_str("%25"),
                            '?' => encoded.push_str("%3F"),
                            '#' => encoded.push_str("%23"),
                            c => encoded.push(c),
                        }
                    }
                    (
                        format!("sqlite://{encoded}?mode=rwc"),
                        path.display().to_string(),
                    )
                }
            };
            let db = KeyDb::open(&url, &location).map_err(|e| e.to_string())?;
            Ok(KeyDir::database(&config.keys_dir, db))
        }
    }
}

/// Prints an error the ripgrep way and returns the exit code for it.
fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}
