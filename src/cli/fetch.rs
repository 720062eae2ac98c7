//! `encore fetch`: the reference client. Downloads one track at one rendition, checks every
//! seal and writes a playable fMP4 file. Never prints the token.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::fail;
use crate::client::{self, FetchRequest};

/// Flags of `encore fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "ENCORE_SERVER", value_name = "URL")]
    server: String,
    /// Play token (JWT). Prefer ENCORE_TOKEN: flags are visible to other users in `ps`.
    #[arg(long, env = "ENCORE_TOKEN", value_name = "JWT", hide_env_values = true)]
    token: client::Token,
    /// Album id.
    #[arg(long, value_name = "ID")]
    album: String,
    /// Track number, from 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          required_unless_present = "extra", conflicts_with = "extra")]
    track: Option<u32>,
    /// A buyer-only extra's id (from `GET /v1/albums/{album}`) instead of a track: its
    /// bytes, as the album's owner opens them.
    #[arg(long, value_name = "ID")]
    extra: Option<String>,
    /// Rendition: lossless, a lossy tier, or preview.
    #[arg(long, value_name = "NAME", default_value = client::fetch::DEFAULT_RENDITION)]
    rendition: String,
    /// Output file (fMP4, e.g. track.m4a); replaced only when every segment checked out.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
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
        let mut req = FetchRequest::new(self.server, self.token, self.album, track, self.out);
        req.rendition = self.rendition;
        req.concurrency = usize::try_from(self.concurrency).unwrap_or(1);
        req.retries = self.retries;
        req
    }
}

/// Runs `encore fetch`: one line on success, `error: ...` and exit 1 on failure, 130 when
/// interrupted (the partial file is removed either way).
pub async fn run(args: FetchArgs) -> ExitCode {
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
    let fetch = client::fetch_extra(
        &args.server,
        &args.token,
        &args.album,
        id,
        &args.out,
        args.retries,
    );
    tokio::select! {
        result = fetch => match result {
            Ok(size) => {
                println!("wrote {}: extra {id} of {}, {size} bytes", args.out.display(), args.album);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e, 1),
        },
        _ = tokio::signal::ctrl_c() => fail("interrupted; nothing was written", 130),
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
