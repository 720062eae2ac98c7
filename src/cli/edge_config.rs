//! `encore edge-config`: mints this edge's `edge` token from the keys and prints the complete
//! nginx configuration of one CDN edge (`crate::edge`). The output holds the token: write it
//! where only root can read it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::fail;
use super::token::parse_duration;
use crate::config::{Config, Overrides};
use crate::edge::{EdgeSettings, Origin, nginx_config};
use crate::keys::Keyring;
use crate::license::{
    Clock, DEFAULT_AUDIENCE, DEFAULT_ISSUER, MintRequest, Scope, SystemClock, mint,
};

/// Flags of `encore edge-config`.
#[derive(Debug, Clone, Args)]
pub struct EdgeConfigArgs {
    /// The origin (or the load balancer in front of the origins): `http(s)://HOST[:PORT]`.
    #[arg(long, value_name = "URL")]
    pub origin: String,
    /// Where the edge listens (nginx `listen`: `ADDR:PORT` or `PORT`).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Folder of the edge's caches and nginx's temporary files (absolute).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: PathBuf,
    /// Bound of the segment cache on disk (`10g`, `500m`).
    #[arg(long, default_value = "10g", value_name = "SIZE")]
    pub cache_size: String,
    /// How long the edge keeps the origin's answer to a check (at most 60s): the bound on how
    /// long a refund takes to reach this edge.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_ttl)]
    pub auth_ttl: u64,
    /// CA bundle the origin's certificate must chain to (`https://` origins; default: the
    /// system's bundle).
    #[arg(long, value_name = "FILE")]
    pub trusted_ca: Option<PathBuf>,
    /// Folder of the edge's access and error logs (absolute).
    #[arg(long, default_value = "/var/log/nginx", value_name = "DIR")]
    pub log_dir: PathBuf,
    /// This edge's name: the `sub` of its token, in the origin's logs.
    #[arg(long, default_value = "edge", value_name = "NAME")]
    pub name: String,
    /// Lifetime of the edge's token (at most `keys.max_token_seconds`, 7 days by default);
    /// write the configuration again before it ends.
    #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = parse_duration)]
    pub token_ttl: u64,
    /// Keys folder (the signing key that mints the edge's token).
    #[arg(long, env = "ENCORE_KEYS", default_value = "keys", value_name = "DIR")]
    pub keys: PathBuf,
    /// Config file whose token limits apply (default: ./encore.toml when present).
    #[arg(long, env = "ENCORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `--auth-ttl`: a duration, 0 allowed (check every request at the origin).
fn parse_ttl(s: &str) -> Result<u64, String> {
    if s.trim_end_matches('s') == "0" {
        return Ok(0);
    }
    parse_duration(s)
}

/// Runs `encore edge-config`.
pub fn run(args: EdgeConfigArgs) -> ExitCode {
    match config_text(args) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format_args!("cannot write the configuration: {e}"), 1),
            }
        }
        Err(message) => fail(message, 1),
    }
}

fn config_text(args: EdgeConfigArgs) -> Result<String, String> {
    let origin = Origin::parse(&args.origin).map_err(|e| e.to_string())?;
    let overrides = Overrides {
        keys: Some(args.keys.clone()),
        ..Overrides::default()
    };
    let config = Config::load(args.config.as_deref(), &overrides).map_err(|e| e.to_string())?;
    let limit = config.server.keys.max_token_seconds;
    if args.token_ttl > limit {
        return Err(format!(
            "--token-ttl is {}s, longer than the origin accepts ({limit}s, \
             keys.max_token_seconds): use --token-ttl {limit} or less",
            args.token_ttl
        ));
    }
    let keys = super::open_keys(&config)?;
    let key = Keyring::open_in(&keys)
        .and_then(|k| k.signing_key())
        .map_err(|e| e.to_string())?;
    let now = SystemClock.now_unix();
    let req = MintRequest {
        sub: args.name,
        albums: Vec::new(),
        scope: Scope::Edge,
        ttl_seconds: args.token_ttl,
        issuer: DEFAULT_ISSUER.to_owned(),
        audience: DEFAULT_AUDIENCE.to_owned(),
        not_before: None,
    };
    let token = mint(&key, &req, now).map_err(|e| format!("cannot mint the edge token: {e}"))?;
    let settings = EdgeSettings {
        origin,
        listen: args.listen,
        cache_dir: args.cache_dir,
        cache_size: args.cache_size,
        auth_ttl: args.auth_ttl,
        edge_token: token,
        edge_token_exp: now.saturating_add(args.token_ttl),
        trusted_ca: args.trusted_ca,
        log_dir: args.log_dir,
    };
    nginx_config(&settings, now).map_err(|e| e.to_string())
}
