//! What a moka cache answered most recently, in a small direct-mapped table consulted before
//! it: the segment cache's sealed bytes by store path, and the catalog's loaded renditions by
//! the rendition part of a segment URL (`super::library`). The docs below speak of segments.
//!
//! moka's `get` keeps a read log, a frequency sketch and a clock read per hit for its eviction
//! policy: ~0.45 µs, the largest share of encore's own work on a cache hit
//! (docs/PERFORMANCE.md, "A hot table before moka"). A segment is immutable under
//! its path, so a copy of moka's answer can be kept beside it and returned as is: a lookup
//! here is a hash, one atomic load and a path comparison.
//!
//! moka stays the cache of record: it decides what is cached (weight, admission, eviction)
//! and loads misses once. A slot is filled only from a moka hit, and emptied when moka
//! removes the entry (its eviction listener) or the cache is invalidated. The `Bytes` here
//! share moka's memory rather than copy it. moka still hears of the reads answered here, one
//! in [`TOUCH_EVERY`], so its policy keeps seeing which segments are hot, and a touch that
//! finds the entry gone from moka empties the slot. The one gap: an entry moka drops (evicted,
//! or invalidated with the rest) while a hit on it is being copied here can stay in its slot
//! until a touch finds it gone or another path takes the slot; at most [`SLOTS`] segments are
//! held that way. What such a slot answers is still the segment's own bytes (a path never
//! names other content), and the catalog has refused requests for deleted segments before
//! the cache is asked.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

/// Slots in the table: a power of two, sized for the segments a busy server sends again and
/// again (an album's worth of one rendition is ~50–100), not for the whole cache.
pub const SLOTS: usize = 256;

/// One read in this many answered here is also reported to moka.
pub const TOUCH_EVERY: u32 = 16;

/// A key the table hashes and compares by its bytes: built one way, so its bytes compare as
/// the keys do (as the moka keys).
pub trait HotKey {
    /// The key's bytes.
    fn key_bytes(&self) -> &[u8];
}

impl HotKey for Path {
    fn key_bytes(&self) -> &[u8] {
        self.as_os_str().as_encoded_bytes()
    }
}

impl HotKey for str {
    fn key_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A value moka holds, under its key.
struct Hot<K: ?Sized, V> {
    key: Arc<K>,
    value: V,
}

/// The hot table (see the module docs): keys `K`, values `V` (cheap to clone: shared).
pub struct HotSlots<K: ?Sized, V> {
    slots: Box<[ArcSwapOption<Hot<K, V>>]>,
    hasher: foldhash::fast::FixedState,
}

/// What a lookup found.
pub struct HotHit<V> {
    /// The value kept.
    pub value: V,
    /// This read is the one in [`TOUCH_EVERY`] to report to moka.
    pub touch: bool,
}

impl<K: ?Sized + HotKey, V: Clone> Default for HotSlots<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: ?Sized + HotKey, V: Clone> HotSlots<K, V> {
    /// An empty table of [`SLOTS`] slots.
    pub fn new() -> Self {
        HotSlots {
            slots: (0..SLOTS).map(|_| ArcSwapOption::empty()).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn slot(&self, key: &K) -> &ArcSwapOption<Hot<K, V>> {
        let hash = self.hasher.hash_one(key.key_bytes());
        // SLOTS is a power of two; the high bits of foldhash's output mix best.
        &self.slots[(hash >> (64 - SLOTS.trailing_zeros())) as usize]
    }

    /// The value under `key` if its slot holds it.
    pub fn get(&self, key: &K) -> Option<HotHit<V>> {
        let slot = self.slot(key).load();
        let hot = slot
            .as_ref()
            .filter(|hot| hot.key.key_bytes() == key.key_bytes())?;
        Some(HotHit {
            value: hot.value.clone(),
            touch: tick(),
        })
    }

    /// Keeps `value`, which moka has just returned for `key`, in its slot (replacing
    /// whatever key was there).
    pub fn put(&self, key: Arc<K>, value: V) {
        self.slot(&key).store(Some(Arc::new(Hot { key, value })));
    }

    /// Empties the slot of `key` if it holds `key`.
    pub fn forget(&self, key: &K) {
        let slot = self.slot(key);
        let current = slot.load();
        if current
            .as_ref()
            .is_some_and(|hot| hot.key.key_bytes() == key.key_bytes())
        {
            // Only if no other key has taken the slot since.
            slot.compare_and_swap(&*current, None);
        }
    }

    /// Empties every slot.
    pub fn clear(&self) {
        for slot in self.slots.iter() {
            slot.store(None);
        }
    }
}

/// True once every [`TOUCH_EVERY`] calls on this thread: a counter per thread, since a shared
/// one would bounce its cache line between cores on every hit.
fn tick() -> bool {
    thread_local! {
        static READS: Cell<u32> = const { Cell::new(0) };
    }
    READS.with(|reads| {
        let n = reads.get().wrapping_add(1);
        reads.set(n);
        n % TOUCH_EVERY == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backed::FileBacked;
    use bytes::Bytes;

    type HotSlots = super::HotSlots<Path, FileBacked>;

    fn path(s: &str) -> Arc<Path> {
        Arc::from(Path::new(s))
    }

    /// Two paths that share a slot.
    fn colliding(hot: &HotSlots) -> (Arc<Path>, Arc<Path>) {
        let a = path("/store/a/00001.m4s");
        let b = (0..100_000)
            .map(|i| path(&format!("/store/b/{i:05}.m4s")))
            .find(|b| std::ptr::eq(hot.slot(b), hot.slot(&a)))
            .expect("some path shares a's slot");
        (a, b)
    }

    #[test]
    fn a_kept_segment_is_found_under_its_path_only() {
        let hot = HotSlots::new();
        let a = path("/store/a/00001.m4s");
        assert!(hot.get(&a).is_none());
        hot.put(
            a.clone(),
            FileBacked::in_memory(Bytes::from_static(b"sealed a")),
        );
        assert_eq!(&hot.get(&a).unwrap().value.bytes()[..], b"sealed a");
        assert!(hot.get(Path::new("/store/a/00002.m4s")).is_none());
    }

    #[test]
    fn a_colliding_path_replaces_and_is_never_answered_for_the_other() {
        let hot = HotSlots::new();
        let (a, b) = colliding(&hot);
        hot.put(a.clone(), FileBacked::in_memory(Bytes::from_static(b"a")));
        assert!(hot.get(&b).is_none(), "b shares the slot but is not there");
        hot.put(b.clone(), FileBacked::in_memory(Bytes::from_static(b"b")));
        assert!(hot.get(&a).is_none(), "b took the slot");
        assert_eq!(&hot.get(&b).unwrap().value.bytes()[..], b"b");
        // Forgetting a must not empty the slot b now holds.
        hot.forget(&a);
        assert_eq!(&hot.get(&b).unwrap().value.bytes()[..], b"b");
        hot.forget(&b);
        assert!(hot.get(&b).is_none());
    }

    #[test]
    fn clear_empties_every_slot() {
        let hot = HotSlots::new();
        let paths: Vec<_> = (0..50)
            .map(|i| path(&format!("/store/x/{i:05}.m4s")))
            .collect();
        for p in &paths {
            hot.put(p.clone(), FileBacked::in_memory(Bytes::from_static(b"x")));
        }
        hot.clear();
        assert!(paths.iter().all(|p| hot.get(p).is_none()));
    }

    #[test]
    fn one_read_in_touch_every_is_reported() {
        let hot = HotSlots::new();
        let a = path("/store/a/00001.m4s");
        hot.put(a.clone(), FileBacked::in_memory(Bytes::from_static(b"a")));
        let touches = (0..TOUCH_EVERY * 10)
            .filter(|_| hot.get(&a).unwrap().touch)
            .count();
        assert_eq!(touches, 10);
    }
}
