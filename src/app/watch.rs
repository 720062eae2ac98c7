//! Watches a running server's folders: the media folder (new or changed albums are packaged
//! and served without a restart) and the keys folder, with SIGHUP (keys are reloaded whole).

use std::sync::Arc;
use std::time::Duration;

use super::{App, background};
use crate::config::Config;

/// Re-packages when files under the media folder change (debounced), so albums added later
/// are served without a restart.
pub async fn media_folder(config: Config, app: Arc<App>) {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Reading the sources (packaging does) raises access events: not a change.
            if res.is_ok_and(|e| is_change(&e.kind)) {
                let _ = tx.send(());
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; new albums need a restart",
                    config.media_dir.display()
                );
                return;
            }
        };
    if let Err(e) = watcher.watch(&config.media_dir, RecursiveMode::Recursive) {
        tracing::warn!(
            "cannot watch {}: {e}; new albums need a restart",
            config.media_dir.display()
        );
        return;
    }
    while rx.recv().await.is_some() {
        // Let a copy finish: wait until the folder has been quiet for two seconds.
        loop {
            match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        tracing::info!("media folder changed: packaging");
        background::package_and_swap(&config, &app).await;
    }
}

/// Whether a file event changes content (creation, write, rename, removal), as opposed to
/// reading it or touching its metadata.
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Any
    )
}

/// What a change in the keys folder calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeysChange {
    /// `keyring.json` or an account key changed, or SIGHUP: rebuild the key set, reload the
    /// catalog.
    KeySet(&'static str),
    /// An album's content keys changed (a content rotation switched or retired something):
    /// reload the catalog only; content keys are read from disk per license.
    Content,
}

/// Hot reload of keys: on SIGHUP, or when `keyring.json` or `accounts/` in the keys folder
/// change (debounced), the keys are re-read and swapped in whole; a failed reload keeps the
/// running set and says why. A change under `content/` (a content rotation by `encore keys`
/// in another process) reloads the catalog, so switched manifests are served.
pub async fn keys_folder(keys_dir: std::path::PathBuf, app: Arc<App>) {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<KeysChange>();
    let file_tx = tx.clone();
    let classify = |path: &std::path::Path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path.parent().and_then(|p| p.file_name());
        if name == crate::keys::STATE_FILE
            || parent.is_some_and(|p| p == crate::keys::account_keys::ACCOUNTS_DIR)
                && name.ends_with(".pem")
        {
            Some(KeysChange::KeySet("keys folder changed"))
        } else if parent.is_some_and(|p| p == crate::keys::CONTENT_DIR) && name.ends_with(".json") {
            Some(KeysChange::Content)
        } else {
            None
        }
    };
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && is_change(&event.kind)
        {
            for change in event.paths.iter().filter_map(|p| classify(p)) {
                let _ = file_tx.send(change);
            }
        }
    });
    let _watcher = match watcher {
        Ok(mut w) => match w.watch(&keys_dir, RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; reload keys with SIGHUP",
                    keys_dir.display()
                );
                None
            }
        },
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; reload keys with SIGHUP",
                keys_dir.display()
            );
            None
        }
    };
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP");
            return;
        };
        while hup.recv().await.is_some() {
            if tx.send(KeysChange::KeySet("SIGHUP")).is_err() {
                return;
            }
        }
    });
    while let Some(first) = rx.recv().await {
        let mut why = match first {
            KeysChange::KeySet(why) => Some(why),
            KeysChange::Content => None,
        };
        // Let a multi-file change (new key files, then the state) settle.
        loop {
            match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                Ok(Some(KeysChange::KeySet(w))) => why = why.or(Some(w)),
                Ok(Some(KeysChange::Content)) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        if let Some(why) = why {
            background::reload_key_set(&app, why);
        }
        if let Err(e) = app.reload_library_and_purge().await {
            tracing::error!("catalog NOT reloaded after a key change: {e}");
        }
    }
}
