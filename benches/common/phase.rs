//! Closed-loop phases for the purchase benches: `concurrency` tasks run one operation after
//! another for a fixed time, and the phase reports its rate and latency percentiles.

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
