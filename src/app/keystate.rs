//! Following the key state shared in the database: a cheap check of its version, and a reload
//! of the keys (then the catalog, which a content rotation switched) when it moved. The check
//! runs as the `keys` kind of [`super::changes`]: woken by the `NOTIFY encore_changes, 'keys'`
//! every change to the key state sends, and at least every `[ledger] catch_up_ms` (a
//! notification lost in a reconnect). An origin that cannot load the newer state (a KEK file
//! it lacks) keeps serving with its last good keys and says so: in the log, the
//! `encore_key_state_stale` metric and `/readyz`'s body.

use std::sync::{Arc, Mutex, PoisonError};

use super::{App, background};
use crate::keys::KeyError;

/// Why the keys served are older than the database's, if they are.
#[derive(Debug, Default)]
pub struct KeyHealth {
    stale: Mutex<Option<String>>,
}

impl KeyHealth {
    /// The reason the keys are stale, or `None` while they are the database's newest.
    pub fn stale(&self) -> Option<String> {
        self.stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the outcome of a catch-up; true when the reason is new (worth a log line).
    fn set(&self, reason: Option<String>) -> bool {
        let mut stale = self.stale.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = *stale != reason;
        *stale = reason;
        changed
    }
}

impl App {
    /// Reloads the keys if the database's key state has a newer version than the one served;
    /// true when it did. A keys folder: nothing to do (the folder watch reloads). On an error
    /// the served keys stay. Blocking (a database round trip): call it off the async workers.
    pub fn catch_up_keys(&self) -> Result<bool, KeyError> {
        let current = self.keys();
        let Some(db) = current.keyring.keys().db() else {
            return Ok(false);
        };
        let version = db.version()?;
        if Some(version) == current.keyring.keys().version() {
            return Ok(false);
        }
        let set = self.reload_keys()?;
        if let Some(v) = set.keyring.keys().version() {
            self.metrics.key_state_version.set(v);
        }
        Ok(true)
    }
}

/// Publishes the served key state's version as a metric (the catch-up keeps it current).
pub fn record_key_state_version(app: &App) {
    if let Some(v) = app.keys().keyring.keys().version() {
        app.metrics.key_state_version.set(v);
    }
}

/// One catch-up: reload if needed, then the catalog; record and report the outcome. True
/// when the keys were reloaded.
pub async fn catch_up(app: &Arc<App>) -> bool {
    // A keys folder has no version to compare (its watch reloads): no blocking task each tick.
    if app.keys().keyring.keys().db().is_none() {
        return false;
    }
    let worker = app.clone();
    let outcome = tokio::task::spawn_blocking(move || worker.catch_up_keys())
        .await
        .unwrap_or_else(|e| {
            Err(KeyError::Database {
                location: "the key state".into(),
                reason: format!("catch-up task: {e}"),
            })
        });
    match outcome {
        Ok(false) => false,
        Ok(true) => {
            app.key_health.set(None);
            app.metrics.key_state_stale.set(0);
            background::log_key_set(&app.keys(), "the shared key state changed");
            if let Err(e) = app.reload_library_and_purge().await {
                tracing::error!("catalog NOT reloaded after a key change: {e}");
            }
            true
        }
        Err(e) => {
            app.metrics.key_reload_failures.inc();
            app.metrics.key_state_stale.set(1);
            if app.key_health.set(Some(e.to_string())) {
                tracing::error!(
                    "keys NOT reloaded from the database; still serving the previous keys: {e}"
                );
            }
            false
        }
    }
}
