//! `encore ingest`: package albums, with progress and a summary; non-zero exit on any failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{CommonArgs, fail};
use crate::config::Overrides;
use crate::ingest::{self, IngestJob, progress};
use crate::keys::Keyring;

/// Flags of `encore ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Target segment length in seconds (default 6).
    #[arg(long, value_name = "SECONDS")]
    segment_seconds: Option<f64>,
    /// Tracks packaged at once (default: CPU cores).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// Re-package tracks even when nothing changed.
    #[arg(long)]
    force: bool,
    /// Skip the loudness measurement (to measure its cost; the catalog then has no gains).
    #[arg(long)]
    no_loudness: bool,
    /// Album folders to package (default: every album under the media folder).
    #[arg(value_name = "ALBUM_DIR")]
    albums: Vec<PathBuf>,
}

/// Runs `encore ingest`.
pub async fn run(args: IngestArgs) -> ExitCode {
    let config = match args.common.load(Overrides {
        segment_seconds: args.segment_seconds,
        parallelism: args.jobs,
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) => return fail(e, 2),
    };
    let keys = match super::open_keys(&config) {
        Ok(keys) => keys,
        Err(e) => return fail(e, 2),
    };
    let keyring = match Keyring::open_in(&keys) {
        Ok(k) => Arc::new(k),
        Err(e) => {
            return fail(
                format!(
                    "{e}\n(run `encore keys init --keys {}` first)",
                    config.keys_dir.display()
                ),
                2,
            );
        }
    };
    let album_ids: Vec<String> = args
        .albums
        .iter()
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    let mut settings = config.ingest.clone();
    settings.loudness = !args.no_loudness;
    let job = IngestJob {
        media_dir: config.media_dir.clone(),
        albums: args.albums,
        settings,
        force: args.force,
    };
    // The data folder holds the ledger too: only its owner may enter it (when encore makes it).
    if let Err(e) = crate::durable::create_dir_all_durable_with_mode(
        &config.data_dir,
        crate::durable::PRIVATE_DIR_MODE,
    ) {
        return fail(
            format!("cannot create {}: {e}", config.data_dir.display()),
            2,
        );
    }
    let observer: Arc<dyn ingest::Observer> = Arc::from(progress::for_stderr());
    let report = ingest::run(job, keyring, config.store(), observer).await;
    println!("{}", report.summary());
    let published = match &config.store.bucket {
        None => true,
        Some(location) => publish(&config.store(), location, album_ids).await,
    };
    if report.ok() && published {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Publishes `albums` (every album in the local store when empty) to the bucket; false if
/// any could not be.
async fn publish(
    store: &crate::store::Store,
    location: &crate::config::BucketLocation,
    mut albums: Vec<String>,
) -> bool {
    use crate::store::{publish::publish_album, remote::Remote};
    let remote = match Remote::from_env(location) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    };
    if albums.is_empty() {
        albums = crate::store::library::album_ids(store)
            .unwrap_or_default()
            .into_iter()
            .filter(|id| store.read_album(id).is_ok_and(|a| a.is_some()))
            .collect();
    }
    let mut ok = true;
    for album in albums {
        match publish_album(store, &remote, &album).await {
            Ok(r) => println!(
                "{album}: {} to {}: {} object(s) written, {} already there",
                if r.published {
                    "published"
                } else {
                    "unchanged"
                },
                remote.url(),
                r.objects_put,
                r.objects_present
            ),
            Err(e) => {
                eprintln!("error: {album} not published: {e}");
                ok = false;
            }
        }
    }
    ok
}
