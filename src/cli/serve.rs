//! `encore serve`: parses its flags, builds the application (dev keys on a fresh clone, the
//! ledger, the revocation list) and starts it: the HTTP server, packaging, and the background
//! work of [`crate::app`]; graceful shutdown on SIGTERM/Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;

use super::{CommonArgs, fail};
use crate::app::published::{self, PublishedStore};
use crate::app::{App, background, watch};
use crate::config::{Config, Overrides};
use crate::http;
use crate::keys::Keyring;
use crate::keys::account_keys::init_dev_account_key;
use crate::ledger::{LEDGER_FILE, Ledger};
use crate::license::{MintRequest, Scope, mint};

/// Flags of `encore serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, env = "ENCORE_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Print a buyer's and a non-buyer's play token at start (always on when dev keys were just created).
    #[arg(long)]
    print_tokens: bool,
}

impl ServeArgs {
    /// True when logs should be JSON (flag or `ENCORE_LOG_FORMAT=json`).
    pub fn wants_json_logs(&self) -> bool {
        self.log_json || std::env::var("ENCORE_LOG_FORMAT").is_ok_and(|v| v == "json")
    }
}

/// Runs `encore serve`.
pub async fn run(args: ServeArgs) -> ExitCode {
    let config = match args.common.load(Overrides {
        listen: args.listen.clone(),
        json_logs: args.log_json,
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) => return fail(e, 2),
    };
    let keys = match super::open_keys(&config) {
        Ok(keys) => keys,
        Err(e) => return fail(e, 2),
    };
    // Development keys only for a keys folder: origins sharing a database share the keys
    // `encore keys init` made there once.
    let fresh_keys = keys.is_folder() && !config.keys_dir.join("keyring.json").exists();
    if fresh_keys {
        tracing::warn!("==================================================================");
        tracing::warn!(
            "no keys in {}: creating DEVELOPMENT keys. Do not use them in production.",
            config.keys_dir.display()
        );
        tracing::warn!("==================================================================");
        if let Err(e) = Keyring::init(&config.keys_dir) {
            return fail(e, 2);
        }
        if let Err(e) = init_dev_account_key(&config.keys_dir) {
            return fail(e, 2);
        }
    }
    let keyring = match Keyring::open_in(&keys) {
        Ok(k) => Arc::new(k),
        Err(e) => return fail(e, 2),
    };
    let tls = match &config.server.tls {
        None => None,
        Some((cert, key)) => match http::tls::acceptor(cert, key) {
            Ok(a) => Some(a),
            Err(e) => return fail(e, 2),
        },
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {}: {e}", config.listen), 2),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return fail(e, 2),
    };
    raise_open_file_limit(config.server.max_connections);
    raise_locked_memory_limit(config.server.pin_segment_pages);
    let limits = config.server.limits();
    let ledger = match open_ledger(&config).await {
        Ok(l) => l,
        Err(e) => return fail(e, 2),
    };
    let app = match App::new(
        config.store(),
        keyring.clone(),
        ledger,
        &config.server,
        limits,
    ) {
        Ok(app) => app,
        Err(e) => return fail(e, 2),
    };
    let (app, bucket) = match attach_bucket(&config, app) {
        Ok((app, bucket)) => (Arc::new(app), bucket),
        Err(e) => return fail(e, 2),
    };
    // Fail closed: without the refunds of the last days, refunded buyers' tokens would play.
    match app.load_revocations(app.now()).await {
        Ok(n) if n > 0 => tracing::info!("revocation list: {n} refunded album(s) in force"),
        Ok(_) => {}
        Err(e) => return fail(format!("cannot rebuild the revocation list: {e}"), 2),
    }
    tokio::spawn(background::prune_revocations(app.clone()));
    // Refunds and re-purchases made through other origins on the same ledger.
    tokio::spawn(crate::app::changes::keep_up(
        app.clone(),
        config.server.ledger.catch_up,
    ));
    tokio::spawn(background::prune_change_feed(
        app.clone(),
        config.server.ledger.change_feed_retention,
    ));
    tokio::spawn(crate::app::memory::return_freed_pages());
    // Before packaging, which can take minutes: a rotation meanwhile must not be missed.
    tokio::spawn(watch::keys_folder(config.keys_dir.clone(), app.clone()));
    // With the keys in the database, `changes::keep_up` above follows its version too.
    crate::app::keystate::record_key_state_version(&app);
    tokio::spawn(background::maintain_keys(
        app.clone(),
        config.server.keys.maintenance_interval,
    ));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("encore listening on {scheme}://{addr}");
    let server = tokio::spawn(http::run(listener, app.clone(), tls, shutdown_signal()));

    // Package what is new or changed (or, with a bucket, load what is published there), then
    // open the doors.
    match &bucket {
        None => background::package_and_swap(&config, &app).await,
        Some(bucket) => {
            // An origin restarted on its data serves the albums it holds records of at once
            // and compares them with the bucket right after; an empty one lists the bucket
            // first (one listing whatever the catalog's size: records come on demand). A
            // bucket out of reach at start: the refresh keeps trying.
            let held_before = !app.library.load().ids().is_empty();
            let listed = !held_before
                && match bucket.refresh(&app).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::error!("cannot list the published albums yet (will retry): {e}");
                        false
                    }
                };
            tokio::spawn(published::follow(
                app.clone(),
                bucket.clone(),
                config.store.refresh,
                listed,
            ));
        }
    }
    app.ready.store(true, Ordering::Release);
    if fresh_keys || args.print_tokens {
        print_welcome(&config, &keyring, &app, &format!("{scheme}://{addr}"));
    }
    // With a bucket, albums are packaged and published by `encore ingest`, not by origins.
    if config.server.watch_media && bucket.is_none() {
        tokio::spawn(watch::media_folder(config.clone(), app.clone()));
    }
    match server.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => fail(format!("cannot serve: {e}"), 1),
        Err(e) => fail(format!("server task failed: {e}"), 1),
    }
}

/// With `[store] url`: the app reads segments through from the bucket, its local copies
/// (counted again from disk) bounded by `[store] local_cache_mb`.
fn attach_bucket(config: &Config, app: App) -> Result<(App, Option<Arc<PublishedStore>>), String> {
    use crate::store::{readthrough::ReadThrough, records::BucketRecords, remote::Remote};
    let Some(location) = &config.store.bucket else {
        return Ok((app, None));
    };
    let remote = Remote::from_env(location).map_err(|e| e.to_string())?;
    let url = remote.url();
    let through = Arc::new(ReadThrough::new(
        remote,
        &app.store,
        config.store.local_cache_bytes,
        &app.segments.stats().remote,
    ));
    let (copies, bytes) = through.rescan().map_err(|e| {
        format!(
            "cannot scan the local store {}: {e}",
            app.store.root().display()
        )
    })?;
    tracing::info!(
        copies,
        bytes,
        bound = config.store.local_cache_bytes,
        "packaged store published to {url}; local copies under {}",
        app.store.root().display()
    );
    let records = Arc::new(
        BucketRecords::start(
            through.remote().clone(),
            app.segments.stats().remote.records.clone(),
        )
        .map_err(|e| format!("cannot start the records thread: {e}"))?,
    );
    // Until the first listing, the albums whose records this store holds (a restart on its
    // data serves them at once).
    let bucket = Arc::new(PublishedStore::new(
        Arc::clone(&through),
        Arc::clone(&records),
        crate::store::records::held_listing(&app.store),
    ));
    let app = app.with_bucket(through, records);
    app.reload_library().map_err(|e| e.to_string())?;
    Ok((app, Some(bucket)))
}

/// Opens the configured ledger: `[ledger] url`, else SQLite in the data dir.
async fn open_ledger(config: &Config) -> Result<Ledger, String> {
    match &config.server.ledger.url {
        Some(url) => {
            // Never print credentials: name the ledger by scheme and host only.
            let location = url.split('@').next_back().unwrap_or("ledger").to_owned();
            Ledger::open_url(url, location)
                .await
                .map_err(|e| e.to_string())
        }
        None => {
            crate::durable::create_dir_all_durable_with_mode(
                &config.data_dir,
                crate::durable::PRIVATE_DIR_MODE,
            )
            .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
            Ledger::open_sqlite(&config.data_dir.join(LEDGER_FILE))
                .await
                .map_err(|e| e.to_string())
        }
    }
}

fn print_welcome(config: &Config, keyring: &Keyring, app: &App, url: &str) {
    // The demo buyer owns the first albums (a token naming a label's whole catalog would not
    // fit in a header).
    let albums: Vec<String> = app
        .library
        .load()
        .albums_after(None, 20)
        .0
        .iter()
        .map(|a| a.record.album.clone())
        .collect();
    let Some(album) = albums.first().cloned() else {
        println!(
            "encore is serving {url} (no albums packaged yet: add folders under {})",
            config.media_dir.display()
        );
        return;
    };
    let Ok(key) = keyring.signing_key() else {
        return;
    };
    let now = app.now();
    let token = |sub: &str, albums: Vec<String>, scope: Scope| {
        mint(
            &key,
            &MintRequest {
                sub: sub.into(),
                albums,
                scope,
                ttl_seconds: 24 * 3600,
                issuer: config.server.issuer.clone(),
                audience: config.server.audience.clone(),
                not_before: None,
            },
            now,
        )
        .unwrap_or_default()
    };
    let buyer = token("demo-buyer", albums.clone(), Scope::Play);
    let listener = token("demo-listener", Vec::new(), Scope::Play);
    let store = token("demo-store", Vec::new(), Scope::Store);
    // Print the binary as it was started, so the lines can be pasted as they are.
    let exe = std::env::current_exe().ok().and_then(|p| {
        let cwd = std::env::current_dir().ok()?;
        Some(
            p.strip_prefix(&cwd)
                .map(|r| format!("./{}", r.display()))
                .unwrap_or_else(|_| p.display().to_string()),
        )
    });
    let exe = exe.unwrap_or_else(|| "encore".into());
    println!();
    println!("encore is serving {url}");
    println!("  catalog:   curl {url}/v1/albums");
    println!("  buyer token (owns {}):\n    {buyer}", albums.join(", "));
    println!("  non-buyer token (previews only):\n    {listener}");
    println!(
        "  try:\n    {exe} fetch --server {url} --token {buyer} --album {album} --track 1 --rendition lossless --out track1.m4a"
    );
    println!(
        "    {exe} fetch --server {url} --token {listener} --album {album} --track 1 --rendition preview --out preview1.m4a"
    );
    println!(
        "  buy, then trade an account token for a play token (the dev account service signs):"
    );
    println!(
        "    curl -X POST {url}/v1/purchases -H 'Authorization: Bearer {store}' -d '{{\"order_id\":\"demo-1\",\"user\":\"demo-fan\",\"album\":\"{album}\",\"price\":1500,\"currency\":\"CNY\"}}'"
    );
    println!(
        "    curl -X POST {url}/v1/play-tokens -H \"Authorization: Bearer $({exe} token mint --scope account --sub demo-fan --keys {})\"",
        config.keys_dir.display()
    );
    println!("  sales chart: curl '{url}/v1/charts/albums?window=all'");
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Raises the soft open-file limit to the hard one, as nginx's `worker_rlimit_nofile` would:
/// every connection and every cached segment (its store file stays open for `sendfile`) holds
/// a descriptor, and the common soft default of 1024 is below the default connection cap.
fn raise_open_file_limit(max_connections: usize) {
    let Some(limit) = raise_soft_limit(libc::RLIMIT_NOFILE) else {
        return;
    };
    // Connections, plus room for the cached segments' files and the store, keys and ledger.
    let wanted = (max_connections as libc::rlim_t).saturating_add(1024);
    if limit < wanted {
        tracing::warn!(
            "open-file limit is {limit} but max_connections is {max_connections}: connections \
             may be refused (raise `ulimit -n` or lower server.max_connections)"
        );
    }
}

/// Raises the soft locked-memory limit to the hard one when cached segments' pages are to be
/// pinned: without `CAP_IPC_LOCK` it is all `mlock` may use, and the common soft default of
/// 8 MiB pins ~25 segments. (Past it, segments are served unpinned and one warning says so.)
fn raise_locked_memory_limit(pin_segment_pages: bool) {
    if pin_segment_pages {
        raise_soft_limit(libc::RLIMIT_MEMLOCK);
    }
}

/// Raises `resource`'s soft limit to its hard limit, which needs no privilege, and returns
/// the soft limit now in force (`None` if it cannot be read).
fn raise_soft_limit(resource: libc::__rlimit_resource_t) -> Option<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a local struct.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(resource, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(limit.rlim_cur)
}
