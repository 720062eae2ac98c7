//! The background work of a running server: packaging new albums, key maintenance, and
//! pruning the revocation list. Each is a future that `encore serve` spawns.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::config::Config;
use crate::ingest::{self, IngestJob, progress};

/// Drops revocations whose tokens have all expired, once a minute.
pub async fn prune_revocations(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let dropped = app.revocations.prune(app.now());
        if dropped > 0 {
            tracing::debug!("revocation list: {dropped} expired entr(y/ies) dropped");
        }
    }
}

/// Deletes entitlement changes older than `retention` from the change feed, every
/// `retention / 4` (at least a second, at most an hour): every origin prunes, taking the
/// writers' turn, so one origin down does not stop it. An origin that had not read the rows
/// rebuilds its revocation list instead (`app::changes`). A failure is logged and retried
/// at the next tick.
pub async fn prune_change_feed(app: Arc<App>, retention: Duration) {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = app
            .now_signed()
            .saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
        match app.ledger.prune_entitlement_changes(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!("change feed: {n} change(s) older than the retention pruned"),
            Err(e) => tracing::warn!("change feed: cannot prune (retrying in {every:?}): {e}"),
        }
    }
}

/// Runs an ingest of every album and swaps in the new catalog. Requests keep being served
/// from the old catalog meanwhile; codec work runs on blocking threads.
pub async fn package_and_swap(config: &Config, app: &Arc<App>) {
    // The keys of the moment: a rotation since start is honoured.
    let keyring = app.keys().keyring.clone();
    let job = IngestJob {
        media_dir: config.media_dir.clone(),
        albums: Vec::new(),
        settings: config.ingest.clone(),
        force: false,
    };
    let report = ingest::run(
        job,
        keyring.clone(),
        app.store.clone(),
        Arc::new(progress::LogLines),
    )
    .await;
    if report.tracks_packaged > 0 || !report.ok() {
        tracing::info!("{}", report.summary());
    }
    if let Err(e) = app.reload_library() {
        tracing::error!("cannot reload the catalog: {e}");
    }
}

/// Re-reads the key set (see [`App::reload_keys`]) and logs what is in force now, or why
/// the running set stays.
pub fn reload_key_set(app: &App, why: &str) {
    match app.reload_keys() {
        Ok(set) => log_key_set(&set, why),
        Err(e) => {
            tracing::error!("keys NOT reloaded ({why}); still serving the previous keys: {e}")
        }
    }
}

/// Logs the key set now in force (ids only).
pub fn log_key_set(set: &super::KeySet, why: &str) {
    let kids: Vec<String> = set
        .keyring
        .public_keys()
        .iter()
        .map(|t| format!("{} ({})", t.key.kid(), t.state))
        .collect();
    tracing::info!(
        "keys reloaded ({why}): signing kid {} active, {} verification key(s): {}; account service keys: {}{}",
        set.keyring.active_signing_kid(),
        kids.len(),
        kids.join(", "),
        set.accounts
            .as_ref()
            .map_or(0, |a| a.verifier().key_count()),
        set.keyring
            .keys()
            .version()
            .map(|v| format!("; shared key state version {v}"))
            .unwrap_or_default()
    );
}

/// Runs key maintenance on a timer: deletes private keys that no longer sign, generations
/// and content keys whose time is up; reloads what it changed.
pub async fn maintain_keys(app: Arc<App>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rotator = app.rotator.clone();
        let _serial = app.admin_jobs.serial.lock().await;
        match tokio::task::spawn_blocking(move || rotator.maintain()).await {
            Ok(Ok(report)) if !report.is_empty() => {
                tracing::info!(?report, "key maintenance");
                reload_key_set(&app, "maintenance");
                if let Err(e) = app.reload_library_and_purge().await {
                    tracing::error!("catalog NOT reloaded after maintenance: {e}");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("key maintenance failed (will retry): {e}"),
            Err(e) => tracing::error!("key maintenance task failed: {e}"),
        }
    }
}
