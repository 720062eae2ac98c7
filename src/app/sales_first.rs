//! Sales before public reads: a read that anyone may repeat at will (the chart, the catalog,
//! nameplates) waits, for a bounded time, while purchases or refunds are being answered.
//!
//! Reads are cheap, but a client that repeats them as fast as it can keeps every connection
//! thread busy, and each step of a purchase (its request read, its commit's reply, its
//! response) would then wait behind a queue of reads. Parking the reads while a sale is in
//! flight leaves the threads to the sale; a read waits at most [`SalesFirst::max_wait`], so a
//! stream of purchases slows the chart a little and never stops it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long a read waits for the sales in flight by default: about one group commit.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(2);

/// Sales in flight, and the reads waiting for them.
#[derive(Debug)]
pub struct SalesFirst {
    in_flight: AtomicUsize,
    finished: Notify,
    max_wait: Duration,
}

impl SalesFirst {
    /// Reads wait at most `max_wait` for the sales in flight when they arrive.
    pub fn new(max_wait: Duration) -> Self {
        SalesFirst {
            in_flight: AtomicUsize::new(0),
            finished: Notify::new(),
            max_wait,
        }
    }

    /// Sales being answered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Marks a sale in flight until the guard is dropped (its answer is ready).
    pub fn begin(&self) -> SaleInFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        SaleInFlight { gate: self }
    }

    /// Returns at once when no sale is in flight; otherwise when one finishes or after
    /// [`max_wait`](Self::max_wait), whichever comes first.
    pub async fn yield_to_sales(&self) {
        if self.in_flight() == 0 {
            return;
        }
        let finished = self.finished.notified();
        // Registered before the second look, so a sale finishing in between still wakes it.
        let mut finished = std::pin::pin!(finished);
        finished.as_mut().enable();
        if self.in_flight() == 0 {
            return;
        }
        let _ = tokio::time::timeout(self.max_wait, finished).await;
    }
}

impl Default for SalesFirst {
    fn default() -> Self {
        SalesFirst::new(DEFAULT_MAX_WAIT)
    }
}

/// A sale in flight (see [`SalesFirst::begin`]).
#[derive(Debug)]
pub struct SaleInFlight<'a> {
    gate: &'a SalesFirst,
}

impl Drop for SaleInFlight<'_> {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.gate.finished.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn a_read_with_no_sale_in_flight_does_not_wait() {
        let gate = SalesFirst::new(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(5), gate.yield_to_sales())
            .await
            .expect("no sale, no wait");
    }

    #[tokio::test]
    async fn a_read_waits_until_the_sale_in_flight_finishes() {
        let gate = std::sync::Arc::new(SalesFirst::new(Duration::from_secs(60)));
        let sale = gate.begin();
        let reader = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.yield_to_sales().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!reader.is_finished(), "the read went ahead of the sale");
        drop(sale);
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the read resumes when the sale finishes")
            .expect("reader");
        assert_eq!(gate.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_read_never_waits_longer_than_max_wait() {
        let gate = SalesFirst::new(Duration::from_millis(20));
        let _endless_sale = gate.begin();
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), gate.yield_to_sales())
            .await
            .expect("bounded wait");
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
