//! `encore token mint`: signs a token with the active signing key and prints it. Prints only
//! the token; never key material.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::fail;
use crate::config::{Config, LedgerSettings, Overrides};
use crate::keys::Keyring;
use crate::keys::account_keys::{accounts_dir, dev_account_key};
use crate::license::{
    Clock, DEFAULT_AUDIENCE, DEFAULT_ISSUER, MintRequest, Scope, SystemClock, mint,
};

/// Subcommands of `encore token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Sign a token and print it (the JWT and a newline) on stdout.
    Mint(MintArgs),
}

/// Flags of `encore token mint`.
#[derive(Debug, Clone, Args)]
pub struct MintArgs {
    /// Subject: the user (or edge, or service) the token is for.
    #[arg(long, value_name = "USER")]
    pub sub: String,
    /// An album id the subject bought; repeat for several.
    #[arg(long = "album", value_name = "ID")]
    pub albums: Vec<String>,
    /// What the token may do: play, edge, store, admin or account.
    #[arg(long, default_value = "play", value_name = "SCOPE", value_parser = parse_scope)]
    pub scope: Scope,
    /// Lifetime: `30s`, `15m`, `1h`, `7d`, or plain seconds.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: u64,
    /// Keys folder.
    #[arg(long, env = "ENCORE_KEYS", default_value = "keys", value_name = "DIR")]
    pub keys: PathBuf,
    /// `iss` claim (default `encore`; `encore-accounts` for `--scope account`).
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud` claim.
    #[arg(long, default_value = DEFAULT_AUDIENCE)]
    pub audience: String,
    /// Config file whose token limits `--ttl` must respect (default: ./encore.toml when
    /// present, else the built-in limits).
    #[arg(long, env = "ENCORE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs an `encore token` subcommand.
pub fn run(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::Mint(args) => match mint_token(args) {
            Ok(token) => {
                let mut out = std::io::stdout().lock();
                match writeln!(out, "{token}").and_then(|()| out.flush()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(format_args!("cannot write the token: {e}"), 1),
                }
            }
            Err(message) => fail(message, 1),
        },
    }
}

fn mint_token(args: MintArgs) -> Result<String, String> {
    check_ttl(&args)?;
    // Account tokens come from the platform's account service; in development its stand-in
    // key (`encore keys init --dev-accounts`) signs them.
    let (key, default_issuer) = if args.scope == Scope::Account {
        let key = dev_account_key(&args.keys)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "no development account-service key in {}: account tokens come from the \
                     platform's account service (for development, run `encore keys init \
                     --dev-accounts`)",
                    accounts_dir(&args.keys).display()
                )
            })?;
        (key, LedgerSettings::default().account_issuer)
    } else {
        let overrides = Overrides {
            keys: Some(args.keys.clone()),
            ..Overrides::default()
        };
        let config = Config::load(args.config.as_deref(), &overrides).map_err(|e| e.to_string())?;
        let keys = super::open_keys(&config)?;
        let keyring = Keyring::open_in(&keys).map_err(|e| e.to_string())?;
        let key = keyring.signing_key().map_err(|e| e.to_string())?;
        (key, DEFAULT_ISSUER.to_owned())
    };
    let req = MintRequest {
        sub: args.sub,
        albums: args.albums,
        scope: args.scope,
        ttl_seconds: args.ttl,
        issuer: args.issuer.unwrap_or(default_issuer),
        audience: args.audience,
        not_before: None,
    };
    mint(&key, &req, SystemClock.now_unix()).map_err(|e| format!("cannot mint a token: {e}"))
}

/// Refuses a lifetime the server would refuse: past `keys.max_token_seconds` for any token,
/// past `ledger.max_play_token_seconds` for a `play` token (the server's config, read as
/// `encore serve` reads it).
fn check_ttl(args: &MintArgs) -> Result<(), String> {
    let overrides = Overrides {
        keys: Some(args.keys.clone()),
        ..Overrides::default()
    };
    let config = Config::load(args.config.as_deref(), &overrides).map_err(|e| e.to_string())?;
    let (limit, setting) = match args.scope {
        Scope::Play => (
            config.server.ledger.max_play_token_seconds,
            "ledger.max_play_token_seconds",
        ),
        Scope::Edge | Scope::Store | Scope::Admin | Scope::Account => (
            config.server.keys.max_token_seconds,
            "keys.max_token_seconds",
        ),
    };
    if args.ttl > limit {
        return Err(format!(
            "--ttl is {}s, longer than the server accepts for a {} token ({limit}s, {setting}): \
             it would be refused; use --ttl {limit} or less",
            args.ttl, args.scope
        ));
    }
    Ok(())
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
        .map_err(|e: crate::license::ScopeParseError| e.to_string())
}

/// Parses `30s`, `15m`, `1h`, `7d` or plain seconds into seconds (more than 0).
pub(super) fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration: expected e.g. 30s, 15m, 1h, 7d or 3600");
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let seconds = n.checked_mul(scale).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(format!("{s:?}: the lifetime must be more than 0"));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::{TokenVerifier, VerifierConfig};

    #[test]
    fn durations() {
        for (s, want) in [
            ("30s", 30),
            ("15m", 900),
            ("1h", 3600),
            ("7d", 604_800),
            ("3600", 3600),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "h",
            "0",
            "0s",
            "-1h",
            "1.5h",
            "1w",
            "1H",
            "1 h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("edge"), Ok(Scope::Edge));
        assert!(parse_scope("root").unwrap_err().contains("root"));
    }

    #[test]
    fn mints_a_token_the_keyring_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keyring::init(&keys).unwrap();
        let args = MintArgs {
            sub: "fan-1".into(),
            albums: vec!["first-light".into()],
            scope: Scope::Play,
            ttl: 900,
            keys: keys.clone(),
            issuer: None,
            audience: DEFAULT_AUDIENCE.into(),
            config: None,
        };
        let token = mint_token(args.clone()).unwrap();
        let verifier =
            TokenVerifier::from_keyring(&Keyring::open(&keys).unwrap(), VerifierConfig::default());
        let claims = verifier.verify(&token).unwrap().claims().clone();
        assert_eq!(claims.albums, ["first-light"]);
        assert_eq!(claims.exp - claims.iat, 900);

        let missing = MintArgs {
            keys: dir.path().join("nowhere"),
            ..args.clone()
        };
        assert!(mint_token(missing).is_err());
        let bad_album = MintArgs {
            albums: vec!["Not A Slug".into()],
            ..args.clone()
        };
        assert!(mint_token(bad_album).unwrap_err().contains("Not A Slug"));

        // Longer than the server accepts (7 days by default): refused, not printed.
        let too_long = MintArgs {
            ttl: 8 * 86_400,
            ..args.clone()
        };
        let err = mint_token(too_long).unwrap_err();
        assert!(err.contains("ledger.max_play_token_seconds"), "{err}");
        let edge = MintArgs {
            ttl: 8 * 86_400,
            scope: Scope::Edge,
            ..args.clone()
        };
        assert!(
            mint_token(edge)
                .unwrap_err()
                .contains("keys.max_token_seconds")
        );
        let week = MintArgs {
            ttl: 7 * 86_400,
            ..args
        };
        mint_token(week).unwrap();
    }
}
