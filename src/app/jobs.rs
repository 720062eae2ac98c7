//! Background admin jobs (content rotations) of this server process, kept for polling.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::keys::rotation::Actor;

/// Jobs kept for polling; older finished ones are forgotten first.
const MAX_JOBS: usize = 256;

/// Background admin jobs (content rotations) of this server process.
#[derive(Debug, Default)]
pub struct AdminJobs {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Job>>,
    /// One key operation at a time in this process; other processes are kept out by the
    /// keys and store locks.
    pub(crate) serial: tokio::sync::Mutex<()>,
}

/// One background job as polled.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its number.
    pub id: u64,
    /// What it does.
    pub operation: String,
    /// Who asked.
    pub actor: Actor,
    /// `running`, `succeeded` or `failed`.
    pub state: &'static str,
    /// Started, Unix seconds.
    pub started: u64,
    /// Finished, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    /// The outcome, once it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AdminJobs {
    /// Records a job started `now` (Unix seconds); its number.
    pub(crate) fn start(&self, operation: String, actor: Actor, now: u64) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        while jobs.len() >= MAX_JOBS {
            let Some(oldest) = jobs.keys().next().copied() else {
                break;
            };
            jobs.remove(&oldest);
        }
        jobs.insert(
            id,
            Job {
                id,
                operation,
                actor,
                state: "running",
                started: now,
                finished: None,
                result: None,
                error: None,
            },
        );
        id
    }

    /// Records how job `id` ended, `now` (Unix seconds).
    pub(crate) fn finish(&self, id: u64, outcome: Result<serde_json::Value, String>, now: u64) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = jobs.get_mut(&id) {
            job.finished = Some(now);
            match outcome {
                Ok(v) => {
                    job.state = "succeeded";
                    job.result = Some(v);
                }
                Err(e) => {
                    job.state = "failed";
                    job.error = Some(e);
                }
            }
        }
    }

    /// Job `id`, if this process still keeps it.
    pub(crate) fn get(&self, id: u64) -> Option<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(&id).cloned()
    }
}
