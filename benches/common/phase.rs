//! Phases for the purchase benches. Closed loop ([`drive`]): `concurrency` tasks run one
//! operation after another for a fixed time: the rate the server sustains, with latencies that
//! grow with the tasks in flight (Little's law). Open loop ([`drive_at_rate`]): operations
//! start on a fixed schedule whatever the server does, each timed from the moment it was due:
//! the latency at a given rate, with the wait behind a late answer counted (no coordinated
//! omission).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One phase's operations and their latencies.
pub struct Phase {
    pub name: String,
    pub ops: u64,
    pub seconds: f64,
    pub latencies_us: Vec<u64>,
}

impl Phase {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
    /// The latency at fraction `p` (0..=1), ms.
    pub fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
    /// One line: rate, p50, p99, max, count.
    pub fn print(&self) {
        println!(
            "{:<20} {:>9.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms   ({} ops)",
            self.name,
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.pct(1.0),
            self.ops
        );
    }
}

/// Runs `op(i)` from `concurrency` tasks for `seconds`; every op must succeed.
pub async fn drive<F, Fut>(
    name: impl Into<String>,
    seconds: u64,
    concurrency: usize,
    op: F,
) -> Phase
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let name = name.into();
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, counter, name) = (op.clone(), counter.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if let Err(e) = op(i).await {
                    panic!("{name}: {e}");
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    collect(name, started, tasks).await
}

/// Runs `op(i)` at `rate` per second for `seconds`, spread over `concurrency` tasks each with
/// its own schedule (task `k` starts operation `j` at `(j·concurrency + k) / rate`); every op
/// must succeed. A latency runs from the moment the operation was due, so an operation started
/// late behind a slow one carries the lateness.
#[allow(
    dead_code,
    reason = "the purchases bench includes this file for its closed loop only"
)]
pub async fn drive_at_rate<F, Fut>(
    name: impl Into<String>,
    seconds: u64,
    rate: u64,
    concurrency: usize,
    op: F,
) -> Phase
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let name = name.into();
    let op = Arc::new(op);
    let total = seconds * rate;
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for k in 0..concurrency as u64 {
        let (op, name) = (op.clone(), name.clone());
        let concurrency = concurrency as u64;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = k;
            while i < total {
                let due = started + Duration::from_nanos(i * 1_000_000_000 / rate);
                tokio::time::sleep_until(due).await;
                if let Err(e) = op(i).await {
                    panic!("{name}: {e}");
                }
                lat.push(due.elapsed().as_micros() as u64);
                i += concurrency;
            }
            lat
        }));
    }
    collect(name, started.into(), tasks).await
}

/// Waits for a phase's tasks and gathers their latencies.
async fn collect(
    name: String,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>,
) -> Phase {
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.expect("task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Phase {
        name,
        ops: latencies_us.len() as u64,
        seconds,
        latencies_us,
    }
}
