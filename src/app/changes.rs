//! Keeps this origin in step with changes made through the others on the same database: a
//! refund acknowledged by any origin is enforced here, a re-purchase plays again here.
//!
//! Two paths wake the catch-up of a kind of change ([`ChangeKind`]): on PostgreSQL a listener
//! task hears the `NOTIFY` that the recording transaction sent (milliseconds), and a timer
//! ([`LedgerSettings::catch_up`](crate::config::LedgerSettings), 250 ms by default) runs
//! every catch-up anyway, so a notification lost while the listener reconnected delays a
//! change by one tick, never forever. On SQLite (origins sharing one file on one machine) the
//! timer alone. Adding a kind: its arm in [`catch_up`], and its variant in `ledger::changes`.
//!
//! An origin that has not read the entitlement feed for [`ready_bound`] of its period answers
//! `/readyz` 503 ([`App::change_feed_silent`]): it may not be enforcing refunds made
//! elsewhere. An origin whose cursor is behind rows pruned from the feed (cut off longer than
//! the retention) rebuilds its revocation list from the ledger instead of reading them.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::App;
use crate::ledger::changes::PAGE;
use crate::ledger::{ChangeKind, Entitlement, EntitlementChange, FeedRead, LedgerError, Wake};

/// Catch-up periods an origin may go without reading the entitlement feed before `/readyz`
/// takes it out of rotation: a couple of failed ticks are a blip (a connection replaced),
/// four in a row an origin that no longer hears refunds.
pub const READY_PERIODS: u32 = 4;

/// The shortest silence that takes an origin out of rotation, whatever the period: one read
/// of the feed may take longer than a very short period.
pub const READY_FLOOR: Duration = Duration::from_secs(1);

/// Where this origin is in each feed.
#[derive(Debug)]
pub struct Applied {
    /// The last entitlement change applied to the revocation list. Held across a catch-up,
    /// so that two never interleave (the timer's and a start's rebuild).
    pub(super) entitlements: tokio::sync::Mutex<i64>,
    /// When the last read of the entitlement feed that succeeded began (the list is as
    /// current as the feed was then). Monotonic: a step of the wall clock does not move it.
    heard: std::sync::Mutex<Instant>,
}

impl Default for Applied {
    fn default() -> Self {
        Applied {
            entitlements: tokio::sync::Mutex::new(0),
            heard: std::sync::Mutex::new(Instant::now()),
        }
    }
}

impl Applied {
    /// Records a read of the feed that began at `at` and succeeded.
    fn heard(&self, at: Instant) {
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        *heard = (*heard).max(at);
    }

    /// How long ago the last successful read began.
    fn silent_for(&self, now: Instant) -> Duration {
        let heard = *self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        now.saturating_duration_since(heard)
    }
}

/// How long an origin whose catch-up runs every `every` may go without reading the
/// entitlement feed and stay in rotation.
pub fn ready_bound(every: Duration) -> Duration {
    every.saturating_mul(READY_PERIODS).max(READY_FLOOR)
}

/// Runs `kind`'s catch-up once: reads what changed since this origin last looked and applies
/// it. Returns how many changes it applied.
pub async fn catch_up(app: &Arc<App>, kind: ChangeKind) -> Result<usize, LedgerError> {
    match kind {
        ChangeKind::Entitlements => app.catch_up_entitlements().await,
        // Reports its own failures (the served keys stay, marked stale); a keys folder
        // returns at once.
        ChangeKind::Keys => Ok(usize::from(super::keystate::catch_up(app).await)),
    }
}

impl App {
    /// Applies the entitlement changes after the last one applied, in order, page by page:
    /// a revoke adds the (user, album) to the revocation list, a restore removes it.
    pub async fn catch_up_entitlements(&self) -> Result<usize, LedgerError> {
        let mut last = self.changes.entitlements.lock().await;
        let began = Instant::now();
        let mut applied = 0;
        loop {
            let page = match self.ledger.entitlement_feed(*last).await? {
                FeedRead::Changes(page) => page,
                FeedRead::Pruned => {
                    *last = self.rebuild_revocations(*last).await?;
                    applied += 1;
                    continue;
                }
            };
            self.apply_entitlements(&page);
            applied += page.len();
            if let Some(c) = page.last() {
                *last = c.seq;
            }
            if page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        if applied > 0 {
            self.charts.invalidate();
            self.revocations.prune(self.now());
        }
        self.changes.heard(began);
        Ok(applied)
    }

    /// Rebuilds the revocation list from the ledger after the feed's changes after `after`
    /// were pruned unread (this origin was cut off longer than the retention): refunds missed
    /// meanwhile are added, pairs bought again meanwhile dropped. Returns the feed number to
    /// continue from.
    async fn rebuild_revocations(&self, after: i64) -> Result<i64, LedgerError> {
        tracing::warn!(
            "change feed entitlements: changes after {after} were pruned before this origin \
             read them; rebuilding the revocation list from the ledger"
        );
        // Taken before the ledger is read: see `RevocationList::reconcile`.
        let before = self.revocations.pairs();
        let (last, in_force) = self
            .ledger
            .revocations_in_force(self.revocations_since(self.now()))
            .await?;
        self.revocations.reconcile(
            before,
            in_force
                .into_iter()
                .map(|r| (r.user, r.album, u64::try_from(r.at).unwrap_or(0))),
        );
        // Any user's cached nameplates may be behind.
        self.ledger.forget_libraries();
        Ok(last)
    }

    /// The earliest refund time that still matters at `now`: refunds before it cover only
    /// tokens that have expired.
    pub(super) fn revocations_since(&self, now: u64) -> i64 {
        let since = now.saturating_sub(self.revocations.horizon_seconds());
        i64::try_from(since).unwrap_or(i64::MAX)
    }

    /// How long this origin has gone without reading the entitlement feed, when that is
    /// longer than [`ready_bound`] of its catch-up period: refunds made through other
    /// origins may not be enforced here, so `/readyz` takes it out of rotation. `None` while
    /// it keeps up.
    pub fn change_feed_silent(&self) -> Option<Duration> {
        let silent = self.changes.silent_for(Instant::now());
        (silent > ready_bound(self.ledger_settings.catch_up)).then_some(silent)
    }

    /// Applies one page of changes. A restore followed in the same page by a revoke of the
    /// same pair is skipped, not applied and undone: between the two, a request on another
    /// thread would have seen the album restored (fail closed).
    fn apply_entitlements(&self, page: &[EntitlementChange]) {
        let mut last_of_pair: HashMap<(&str, &str), i64> = HashMap::new();
        for c in page {
            last_of_pair.insert((c.user.as_str(), c.album.as_str()), c.seq);
        }
        for c in page {
            match c.change {
                Entitlement::Revoke => {
                    self.revocations
                        .revoke(&c.user, &c.album, u64::try_from(c.at).unwrap_or(0));
                }
                Entitlement::Restore => {
                    if last_of_pair.get(&(c.user.as_str(), c.album.as_str())) == Some(&c.seq) {
                        self.revocations.restore(&c.user, &c.album);
                    }
                }
            }
            self.ledger.forget_library(&c.user);
        }
    }
}

/// Starts the listener (PostgreSQL) and one catch-up task per kind, each run every `every`
/// and whenever the listener hears of its kind. Runs for the life of the server.
pub async fn keep_up(app: Arc<App>, every: Duration) {
    let wakes: Arc<HashMap<ChangeKind, Arc<Notify>>> = Arc::new(
        ChangeKind::ALL
            .into_iter()
            .map(|k| (k, Arc::new(Notify::new())))
            .collect(),
    );
    for (&kind, wake) in wakes.iter() {
        tokio::spawn(catch_up_loop(app.clone(), kind, wake.clone(), every));
    }
    listen(app, wakes, every).await;
}

/// `kind`'s catch-up, on its wake-up or its tick, whichever comes first. A failure is logged
/// once (and its end once): the next tick tries again.
async fn catch_up_loop(app: Arc<App>, kind: ChangeKind, wake: Arc<Notify>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = wake.notified() => {}
            _ = tick.tick() => {}
        }
        match catch_up(&app, kind).await {
            Ok(n) => {
                if failing {
                    tracing::info!("change feed {}: caught up again", kind.as_str());
                    failing = false;
                }
                if n > 0 {
                    tracing::debug!("change feed {}: {n} change(s) applied", kind.as_str());
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "change feed {}: cannot catch up (retrying every {} ms): {e}",
                        kind.as_str(),
                        every.as_millis()
                    );
                    failing = true;
                }
            }
        }
    }
}

/// Listens for notifications and wakes the catch-up of their kind; after a lost connection
/// (and at the start of each connection) wakes every kind, since what was announced
/// meanwhile was not heard. Returns at once on SQLite (nothing to listen to).
async fn listen(app: Arc<App>, wakes: Arc<HashMap<ChangeKind, Arc<Notify>>>, every: Duration) {
    let wake_all = || wakes.values().for_each(|w| w.notify_one());
    loop {
        let mut listener = match app.ledger.listen().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("change listener: cannot connect (timer catch-up only): {e}");
                tokio::time::sleep(every.max(Duration::from_secs(1))).await;
                continue;
            }
        };
        wake_all();
        loop {
            match listener.next().await {
                Ok(Wake::Changed(kind)) => {
                    if let Some(w) = wakes.get(&kind) {
                        w.notify_one();
                    }
                }
                Ok(Wake::MaybeMissed) => {
                    tracing::info!("change listener: connection lost, reconnecting");
                    wake_all();
                }
                Err(e) => {
                    tracing::warn!("change listener: cannot reconnect (timer catch-up only): {e}");
                    // The listener reconnects on its next call; don't spin meanwhile.
                    tokio::time::sleep(every).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_that_stops_hearing_the_feed_leaves_rotation_after_a_few_periods() {
        let every = Duration::from_millis(250);
        let bound = ready_bound(every);
        assert_eq!(bound, Duration::from_secs(1));
        assert_eq!(
            ready_bound(Duration::from_millis(10)),
            READY_FLOOR,
            "one feed read may outlast a tiny period"
        );
        let applied = Applied::default();
        let start = Instant::now();
        applied.heard(start);
        assert_eq!(applied.silent_for(start + bound), bound);
        // A read that began later counts from when it began.
        applied.heard(start + Duration::from_millis(500));
        assert_eq!(
            applied.silent_for(start + bound),
            Duration::from_millis(500)
        );
        // An older read finishing late does not move the mark back.
        applied.heard(start);
        assert_eq!(
            applied.silent_for(start + bound),
            Duration::from_millis(500)
        );
        assert_eq!(applied.silent_for(start), Duration::ZERO);
    }
}
