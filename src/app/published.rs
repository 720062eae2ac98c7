//! An origin whose store is published to a bucket: the published albums are mirrored into the
//! local store at start, then again every `[store] refresh_seconds` and on SIGHUP; a
//! publication that changed reloads the catalog (and drops cached segments of generations
//! no longer served).

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::store::publish::{self, MirrorReport, Mirrored, PublishError};
use crate::store::readthrough::ReadThrough;

/// The bucket side of an origin: its read-through and what was mirrored last.
pub struct PublishedStore {
    through: Arc<ReadThrough>,
    /// Hash of each album's publication record as last mirrored; the lock also keeps two
    /// refreshes (timer and SIGHUP) from writing the same records at once.
    mirrored: tokio::sync::Mutex<Mirrored>,
}

impl PublishedStore {
    /// The published store read through `through`, knowing what `mirrored` says the local
    /// store already holds.
    pub fn new(through: Arc<ReadThrough>, mirrored: Mirrored) -> Self {
        PublishedStore {
            through,
            mirrored: tokio::sync::Mutex::new(mirrored),
        }
    }

    /// Mirrors what changed in the bucket, then reloads the catalog if anything did.
    pub async fn refresh(&self, app: &App) -> Result<MirrorReport, PublishError> {
        let mut known = self.mirrored.lock().await;
        let report = publish::mirror(&app.store, self.through.remote(), &mut known).await?;
        if report.changed + report.withdrawn > 0 {
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
/// first at once unless `mirrored_at_start` (start has just mirrored).
pub async fn follow(
    app: Arc<App>,
    published: Arc<PublishedStore>,
    every: Duration,
    mirrored_at_start: bool,
) {
    if !mirrored_at_start && let Err(e) = published.refresh(&app).await {
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
    // The first tick is immediate; start has just mirrored.
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
