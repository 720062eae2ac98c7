//! The revocation list: refunds that take an album away from a user whose play tokens,
//! issued before the refund, still name it. Checked from memory on every entitlement
//! decision, after the token cache, so a cached token cannot bypass it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

/// Refunded (user, album) pairs with the refund time.
///
/// A pair covers tokens for that user issued at or before the refund (`iat <= at`); tokens
/// issued later were minted from the ledger and no longer carry the album. An entry is
/// dropped once every token it covers has expired: `at + max_token_lifetime + leeway`.
#[derive(Debug)]
pub struct RevocationList {
    entries: RwLock<HashMap<(String, String), u64>>,
    /// Lets the common case (no refunds in the window) skip the lock.
    len: AtomicUsize,
    /// Longest lifetime of a token the verifier accepts, plus its leeway, seconds.
    horizon_seconds: u64,
}

impl RevocationList {
    /// An empty list whose entries live `horizon_seconds` (the longest token lifetime plus
    /// clock leeway).
    pub fn new(horizon_seconds: u64) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            len: AtomicUsize::new(0),
            horizon_seconds,
        }
    }

    /// How long an entry lives.
    pub fn horizon_seconds(&self) -> u64 {
        self.horizon_seconds
    }

    /// Records that `user` lost `album` at `at` (Unix seconds).
    pub fn revoke(&self, user: &str, album: &str, at: u64) {
        // A panic elsewhere cannot leave this map half-updated (every change is one call),
        // so a poisoned lock is taken over rather than letting a refund go unrecorded.
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let slot = map.entry((user.to_owned(), album.to_owned())).or_insert(at);
        *slot = (*slot).max(at);
        self.len.store(map.len(), Ordering::Release);
    }

    /// Forgets a revocation (the user bought the album again).
    pub fn restore(&self, user: &str, album: &str) {
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(user.to_owned(), album.to_owned()));
        self.len.store(map.len(), Ordering::Release);
    }

    /// The (user, album) pairs held now: taken before reading the ledger for
    /// [`RevocationList::reconcile`].
    pub fn pairs(&self) -> HashSet<(String, String)> {
        let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        map.keys().cloned().collect()
    }

    /// Brings the list in line with `in_force` (every revocation the ledger holds, read after
    /// `before` was taken with [`RevocationList::pairs`]): adds what it lacks first, then
    /// drops the pairs of `before` that the ledger no longer holds (bought again). A pair
    /// revoked here after `before` was taken is not dropped: the ledger read may predate it.
    pub fn reconcile(
        &self,
        before: HashSet<(String, String)>,
        in_force: impl IntoIterator<Item = (String, String, u64)>,
    ) {
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let mut held = HashSet::new();
        for (user, album, at) in in_force {
            let key = (user, album);
            let slot = map.entry(key.clone()).or_insert(at);
            *slot = (*slot).max(at);
            held.insert(key);
        }
        for gone in before.difference(&held) {
            map.remove(gone);
        }
        self.len.store(map.len(), Ordering::Release);
    }

    /// Whether a token for `user` issued at `iat` has lost `album`.
    ///
    pub fn revokes(&self, user: &str, album: &str, iat: u64) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        // Building the owned key costs two small allocations, paid only while some refund is
        // inside the horizon.
        map.get(&(user.to_owned(), album.to_owned()))
            .is_some_and(|&at| iat <= at)
    }

    /// Drops entries whose covered tokens have all expired by `now`; returns how many.
    pub fn prune(&self, now: u64) -> usize {
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        let horizon = self.horizon_seconds;
        map.retain(|_, at| at.saturating_add(horizon) > now);
        self.len.store(map.len(), Ordering::Release);
        before - map.len()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_tokens_issued_up_to_the_refund_until_they_expire() {
        let list = RevocationList::new(3600);
        assert!(!list.revokes("u", "a", 100));
        list.revoke("u", "a", 1000);
        assert!(list.revokes("u", "a", 999));
        assert!(list.revokes("u", "a", 1000));
        assert!(!list.revokes("u", "a", 1001), "minted after the refund");
        assert!(!list.revokes("u", "b", 999));
        assert!(!list.revokes("v", "a", 999));
        assert_eq!(list.prune(1000 + 3599), 0);
        assert_eq!(list.prune(1000 + 3600), 1);
        assert!(!list.revokes("u", "a", 999));
        assert!(list.is_empty());
        list.revoke("u", "a", 1000);
        list.restore("u", "a");
        assert!(!list.revokes("u", "a", 999));
    }

    #[test]
    fn reconciling_adds_what_the_ledger_holds_and_drops_only_what_it_gave_back() {
        let list = RevocationList::new(3600);
        list.revoke("u", "bought-again", 1000);
        list.revoke("u", "still-refunded", 1000);
        let before = list.pairs();
        // Refunded here after `before` was taken, maybe after the ledger was read.
        list.revoke("u", "refunded-meanwhile", 1100);
        let in_force = [
            ("u".to_owned(), "still-refunded".to_owned(), 1050),
            ("v".to_owned(), "refunded-elsewhere".to_owned(), 1000),
        ];
        list.reconcile(before, in_force);
        assert!(!list.revokes("u", "bought-again", 999));
        assert!(list.revokes("u", "still-refunded", 1050));
        assert!(list.revokes("v", "refunded-elsewhere", 1000));
        assert!(list.revokes("u", "refunded-meanwhile", 1100));
        assert_eq!(list.len(), 3);
    }
}
