//! The process's memory against glibc's allocator: how many arenas it keeps, and handing the
//! pages it has freed back to the kernel, so a long-running server's RSS follows what it holds.
//!
//! glibc keeps freed memory for reuse and returns it only from the top of a heap. Live
//! allocations scattered through a heap (a connection's buffer, a cached token) pin the free
//! pages around them, so RSS climbs with the churn of requests while the live heap stays flat
//! (docs/PERFORMANCE.md, "Soak"). `malloc_trim(0)` releases every whole free page of every
//! arena (`madvise`), so a trim every few seconds keeps RSS at the live heap plus what the
//! next requests reuse.

use std::time::Duration;

/// How often [`return_freed_pages`] trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// One glibc malloc arena per core instead of eight: memory freed in one arena is not reused
/// by threads of another, so with glibc's default each of the server's short-lived blocking
/// threads may keep an arena's worth of free pages resident. Must run before any thread is
/// started.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes the allocator's tuning; called before other threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Hands the allocator's free pages back to the kernel once; true if any were returned.
/// A no-op (false) where the allocator is not glibc's.
pub fn trim_freed_pages() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes each arena's lock itself; it frees nothing in use.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Trims every [`TRIM_EVERY`], on a blocking thread (a trim walks every arena under its lock:
/// well under a millisecond for a server's heap, but not work for an event loop).
pub async fn return_freed_pages() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if tokio::task::spawn_blocking(trim_freed_pages).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Small blocks freed around a few kept ones stay resident until a trim: what the soak's
    /// RSS did. 64 MiB in 1 KiB blocks, every 64th kept (1 MiB live), the rest freed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_returns_pages_freed_around_live_blocks() {
        const BLOCKS: usize = 64 * 1024;
        let handle = std::thread::spawn(|| {
            let mut blocks: Vec<Option<Box<[u8; 1024]>>> = (0..BLOCKS)
                .map(|i| Some(Box::new([i as u8; 1024])))
                .collect();
            for (i, b) in blocks.iter_mut().enumerate() {
                if i % 64 != 0 {
                    *b = None;
                }
            }
            let before = resident_kib();
            trim_freed_pages();
            let after = resident_kib();
            drop(blocks);
            (before, after)
        });
        let (before, after) = handle.join().unwrap();
        assert!(
            before.saturating_sub(after) >= 32 * 1024,
            "a trim returned {} KiB of ~63 MiB freed (RSS {before} -> {after} KiB)",
            before.saturating_sub(after)
        );
    }
}
