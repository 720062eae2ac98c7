//! `encore fetch`: the reference client. Downloads one track at one rendition, checks every
//! seal and writes a playable fMP4 file; with `--offline DIR`, stores an album and its offline
//! license for a device; with `--from-offline DIR`, writes a track from such a folder with no
//! server. Never prints the token.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::fail;
use crate::client::{self, FetchRequest};
use crate::clock::{Clock, SystemClock};

/// Flags of `encore fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    #[arg(
        long,
        env = "ENCORE_SERVER",
        value_name = "URL",
        required_unless_present = "from_offline"
    )]
    server: Option<String>,
    /// Play token (JWT). Prefer ENCORE_TOKEN: flags are visible to other users in `ps`.
    #[arg(
        long,
        env = "ENCORE_TOKEN",
        value_name = "JWT",
        hide_env_values = true,
        required_unless_present = "from_offline"
    )]
    token: Option<client::Token>,
    /// Album id.
    #[arg(long, value_name = "ID", required_unless_present = "from_offline")]
    album: Option<String>,
    /// Track number, from 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          required_unless_present_any = ["extra", "offline"], conflicts_with = "extra")]
    track: Option<u32>,
    /// Store the album's sealed segments (every track, at --rendition) and an offline
    /// license for --device-id in DIR; a DIR that holds a license renews it.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["extra", "from_offline", "track"],
          requires_all = ["device_key", "device_id"])]
    offline: Option<PathBuf>,
    /// Write --track from an offline folder (made by --offline) to --out, with no server.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "extra",
        requires = "device_key"
    )]
    from_offline: Option<PathBuf>,
    /// The device's key file (`encore device-key new FILE`).
    #[arg(long, value_name = "FILE")]
    device_key: Option<PathBuf>,
    /// The registered device's id (from `POST /v1/devices`).
    #[arg(long, value_name = "ID")]
    device_id: Option<String>,
    /// Check the offline license at this time (Unix seconds) instead of the system clock:
    /// the clock passed in, for tests and audits.
    #[arg(long, value_name = "UNIX_SECONDS", requires = "from_offline")]
    now: Option<u64>,
    /// A buyer-only extra's id (from `GET /v1/albums/{album}`) instead of a track: its
    /// bytes, as the album's owner opens them.
    #[arg(long, value_name = "ID")]
    extra: Option<String>,
    /// Rendition: lossless, a lossy tier, or preview.
    #[arg(long, value_name = "NAME", default_value = client::fetch::DEFAULT_RENDITION)]
    rendition: String,
    /// Output file (fMP4, e.g. track.m4a); replaced only when every segment checked out.
    #[arg(long, value_name = "FILE", required_unless_present = "offline")]
    out: Option<PathBuf>,
    /// Segments downloaded at once.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// Retries of a transient failure (connect error, timeout, 5xx, 429) per request.
    #[arg(long, value_name = "N", default_value_t = client::fetch::DEFAULT_RETRIES)]
    retries: u32,
}

impl FetchArgs {
    fn into_request(self, track: u32) -> FetchRequest {
        let mut req = FetchRequest::new(
            self.server.unwrap_or_default(),
            self.token.unwrap_or_else(|| client::Token::from("")),
            self.album.unwrap_or_default(),
            track,
            self.out.unwrap_or_default(),
        );
        req.rendition = self.rendition;
        req.concurrency = usize::try_from(self.concurrency).unwrap_or(1);
        req.retries = self.retries;
        req
    }
}

/// Runs `encore fetch`: one line on success, `error: ...` and exit 1 on failure, 130 when
/// interrupted (the partial file is removed either way).
pub async fn run(args: FetchArgs) -> ExitCode {
    if args.offline.is_some() || args.from_offline.is_some() {
        return run_offline(args).await;
    }
    let track = match (&args.extra, args.track) {
        (Some(id), _) => return run_extra(&args, id).await,
        (None, Some(track)) => track,
        (None, None) => return fail("give --track N or --extra ID", 2),
    };
    let req = args.into_request(track);
    tokio::select! {
        result = client::fetch(&req) => match result {
            Ok(report) => {
                println!("wrote {}: {report}", req.out.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
        // Dropping the fetch removes its temp file; a plain SIGINT death would leave it.
        _ = tokio::signal::ctrl_c() => fail("interrupted; nothing was written", 130),
    }
}

async fn run_extra(args: &FetchArgs, id: &str) -> ExitCode {
    let (Some(server), Some(token), Some(album), Some(out)) =
        (&args.server, &args.token, &args.album, &args.out)
    else {
        return fail("--extra needs --server, --token, --album and --out", 2);
    };
    let fetch = client::fetch_extra(server, token, album, id, out, args.retries);
    tokio::select! {
        result = fetch => match result {
            Ok(size) => {
                println!("wrote {}: extra {id} of {album}, {size} bytes", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
        _ = tokio::signal::ctrl_c() => fail("interrupted; nothing was written", 130),
    }
}

/// `--offline DIR` (download, or renew) and `--from-offline DIR` (write a track, no server).
async fn run_offline(args: FetchArgs) -> ExitCode {
    let Some(key_file) = args.device_key.clone() else {
        return fail("give --device-key FILE", 2);
    };
    let device = match client::fetch::read_device_key(&key_file) {
        Ok(device) => device,
        Err(e) => return fail(e, 1),
    };
    let clock: Box<dyn Clock> = match args.now {
        Some(now) => Box::new(FixedClock(now)),
        None => Box::new(SystemClock),
    };
    if let Some(dir) = args.from_offline.clone() {
        let (Some(track), Some(out)) = (args.track, args.out.clone()) else {
            return fail("--from-offline needs --track N and --out FILE", 2);
        };
        let open = client::fetch::open_offline(
            &dir,
            &device,
            track,
            &args.rendition,
            &out,
            clock.as_ref(),
        );
        return tokio::select! {
            result = open => match result {
                Ok(report) => {
                    println!("wrote {}: {report} (offline)", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e, 1),
            },
            _ = tokio::signal::ctrl_c() => fail("interrupted; nothing was written", 130),
        };
    }
    let (Some(dir), Some(device_id)) = (args.offline.clone(), args.device_id.clone()) else {
        return fail("--offline needs DIR and --device-id", 2);
    };
    let req = client::fetch::OfflineDownload {
        fetch: args.into_request(1),
        device_id,
        dir,
    };
    tokio::select! {
        result = client::fetch::download_offline(&req, &device, clock.as_ref()) => match result {
            Ok(r) => {
                println!(
                    "stored {} tracks, {} segments in {}; license {} {} until {} (Unix seconds)",
                    r.tracks,
                    r.segments,
                    req.dir.display(),
                    r.license_id,
                    if r.renewed { "renewed" } else { "issued" },
                    r.expires_at
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
        _ = tokio::signal::ctrl_c() => fail("interrupted", 130),
    }
}

/// A clock stopped at a given second (`--now`).
struct FixedClock(u64);

impl Clock for FixedClock {
    fn now_unix(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: FetchArgs,
    }

    #[test]
    fn flags_parse_with_defaults_and_debug_hides_the_token() {
        let cli = Cli::try_parse_from([
            "fetch",
            "--server",
            "http://127.0.0.1:8080",
            "--token",
            "secret.jwt",
            "--album",
            "first-light",
            "--track",
            "2",
            "--out",
            "t.m4a",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("secret"));
        let track = cli.args.track.expect("track");
        let req = cli.args.into_request(track);
        assert_eq!(req.rendition, "lossless");
        assert_eq!((req.track, req.concurrency, req.retries), (2, 4, 3));
        assert_eq!(req.token.expose(), "secret.jwt");
    }

    #[test]
    fn track_zero_and_concurrency_zero_are_refused() {
        let base = [
            "fetch", "--server", "http://h", "--token", "t", "--album", "a", "--out", "o",
        ];
        let with = |extra: &[&'static str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            Cli::try_parse_from(v)
        };
        assert!(with(&["--track", "0"]).is_err());
        assert!(with(&["--track", "1", "--concurrency", "0"]).is_err());
        assert!(with(&["--track", "1", "--concurrency", "8"]).is_ok());
        assert!(with(&[]).is_err(), "a track or an extra is needed");
        assert!(with(&["--extra", "letter"]).is_ok());
        assert!(with(&["--extra", "letter", "--track", "1"]).is_err());
    }
}
