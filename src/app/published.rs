//! An origin whose store is published to a bucket: the catalog is the bucket's listing of
//! publications, taken at start, then again every `[store] refresh_seconds` and on SIGHUP;
//! records come on demand (`store::records`). A listing that changed the albums, or a
//! publication this origin holds that changed, reloads the catalog (and drops cached
//! segments of generations no longer served).

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::store::publish::PublishError;
use crate::store::readthrough::ReadThrough;
use crate::store::records::{self, BucketRecords, Listed, RefreshReport};

/// The bucket side of an origin: its read-through, its records, and the last listing.
pub struct PublishedStore {
    through: Arc<ReadThrough>,
    records: Arc<BucketRecords>,
    /// Each published album's record tag as last listed; the lock also keeps two refreshes
    /// (timer and SIGHUP) from writing the same records at once.
    listed: tokio::sync::Mutex<Listed>,
}

impl PublishedStore {
    /// The published store read through `through`, its records from `records`, starting from
    /// `held` (what the local store holds: `records::held_listing`), so the first refresh
    /// compares those with the bucket and withdraws the ones no longer published.
    pub fn new(through: Arc<ReadThrough>, records: Arc<BucketRecords>, held: Listed) -> Self {
        records.set_listed(&held);
        PublishedStore {
            through,
            records,
            listed: tokio::sync::Mutex::new(held),
        }
    }

    /// Lists the bucket, takes what changed, then reloads the catalog if anything did.
    pub async fn refresh(&self, app: &App) -> Result<RefreshReport, PublishError> {
        let mut listed = self.listed.lock().await;
        let report = records::refresh(
            &app.store,
            self.records.remote(),
            &mut listed,
            &app.segments.stats().remote.records,
        )
        .await?;
        self.records.set_listed(&listed);
        if report.catalog_changed() {
            app.reload_library_and_purge().await?;
            self.through.forget_deleted();
            tracing::info!(
                published = report.published,
                changed = report.changed,
                withdrawn = report.withdrawn,
                "catalog follows the bucket"
            );
        }
        Ok(report)
    }
}

/// Refreshes from the bucket every `every` and on SIGHUP, for as long as the server runs;
/// first at once unless `listed_at_start` (start has just listed).
pub async fn follow(
    app: Arc<App>,
    published: Arc<PublishedStore>,
    every: Duration,
    listed_at_start: bool,
) {
    if !listed_at_start && let Err(e) = published.refresh(&app).await {
        tracing::error!("cannot follow the bucket (will retry): {e}");
    }
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}); the bucket is followed by timer only");
            None
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the bucket has just been listed.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => tracing::info!("SIGHUP: looking for new publications"),
        }
        if let Err(e) = published.refresh(&app).await {
            tracing::error!("cannot follow the bucket (will retry): {e}");
        }
    }
}
