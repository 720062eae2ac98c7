//! Named crash points for crash tests: when `ENCORE_CRASH_AT` names a point, the process
//! kills itself with SIGKILL there, so a test can stop a rotation between any two durable
//! steps and check that a restart serves everything and a re-run finishes the job.
//!
//! Unset (always, outside tests), a crash point costs one cached environment lookup.

use std::sync::OnceLock;

/// Environment variable naming the crash point to die at.
pub const CRASH_AT_ENV: &str = "ENCORE_CRASH_AT";

/// Dies with SIGKILL if `ENCORE_CRASH_AT` is `name`. Call right after a durable step.
pub fn reached(name: &str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if target.as_deref() == Some(name) {
        tracing::warn!(
            point = name,
            "crash point reached: killing this process (SIGKILL)"
        );
        // SIGKILL, not abort(): no destructor, no flush, no signal handler runs, exactly as
        // when the machine loses power or the OOM killer strikes.
        // SAFETY: kill(2) with our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
