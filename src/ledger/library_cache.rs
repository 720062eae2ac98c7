//! Users' libraries as last read, for the nameplates page: a user who reloads it as fast as
//! they can costs a hash lookup, not a query that competes with purchases for the CPU.
//!
//! Never stale after a write on this server: each purchase or refund drops its user's entry
//! after it commits, and a read that overlapped any commit does not store what it read (it may
//! have read the state before that commit). Writes made by another server on the same
//! database are seen within [`TIME_TO_LIVE`].

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use super::LibraryEntry;

/// Longest an entry is kept: the bound on staleness after another server's write.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(1);

/// Most users kept.
const CAPACITY: u64 = 100_000;

/// See the module documentation.
#[derive(Clone)]
pub struct LibraryCache {
    entries: moka::sync::Cache<String, Arc<Vec<LibraryEntry>>>,
    /// Commits so far; taken under the lock so that a reader's "no commit since I began"
    /// check and a writer's invalidation are ordered.
    commits: Arc<Mutex<u64>>,
}

/// Where a reader began: compare with the cache when storing what it read.
#[derive(Debug, Clone, Copy)]
pub struct ReadStarted(u64);

impl LibraryCache {
    /// An empty cache.
    pub fn new() -> Self {
        LibraryCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TIME_TO_LIVE)
                .build(),
            commits: Arc::new(Mutex::new(0)),
        }
    }

    /// The user's library as last read, if it is still valid.
    pub fn get(&self, user: &str) -> Option<Arc<Vec<LibraryEntry>>> {
        self.entries.get(user)
    }

    /// Call before reading a library from the database.
    pub fn begin_read(&self) -> ReadStarted {
        ReadStarted(*self.lock())
    }

    /// Stores what a read that began at `started` found, unless a commit happened since.
    pub fn store(&self, user: &str, started: ReadStarted, library: Arc<Vec<LibraryEntry>>) {
        let commits = self.lock();
        if *commits == started.0 {
            self.entries.insert(user.to_owned(), library);
        }
    }

    /// Call after a commit that changed these users' libraries (whatever its outcome: a
    /// commit that reported failure may still have been durable).
    pub fn committed<'a>(&self, users: impl IntoIterator<Item = &'a str>) {
        let mut commits = self.lock();
        *commits = commits.wrapping_add(1);
        for user in users {
            self.entries.invalidate(user);
        }
    }

    /// Call after a commit whose users are unknown (a failed refund): drops every entry.
    pub fn committed_anyone(&self) {
        let mut commits = self.lock();
        *commits = commits.wrapping_add(1);
        self.entries.invalidate_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // The guarded value is a counter that is never left half-written.
        self.commits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for LibraryCache {
    fn default() -> Self {
        LibraryCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(album: &str) -> Arc<Vec<LibraryEntry>> {
        Arc::new(vec![LibraryEntry {
            album: album.to_owned(),
            order_id: format!("o-{album}"),
            purchased_at: 1,
            buyer_number: 1,
            copies: 1,
            gift_from: None,
        }])
    }

    #[test]
    fn a_read_with_no_commit_meanwhile_is_kept() {
        let cache = LibraryCache::new();
        let started = cache.begin_read();
        cache.store("ana", started, library("a"));
        assert_eq!(cache.get("ana"), Some(library("a")));
    }

    #[test]
    fn a_read_that_overlapped_a_commit_is_not_kept() {
        let cache = LibraryCache::new();
        let started = cache.begin_read();
        cache.committed(["ana"]);
        cache.store("ana", started, library("before the purchase"));
        assert_eq!(cache.get("ana"), None);
    }

    #[test]
    fn a_commit_drops_its_users_entries_only() {
        let cache = LibraryCache::new();
        for user in ["ana", "bo"] {
            let started = cache.begin_read();
            cache.store(user, started, library(user));
        }
        cache.committed(["ana"]);
        assert_eq!(cache.get("ana"), None);
        assert_eq!(cache.get("bo"), Some(library("bo")));
    }
}
