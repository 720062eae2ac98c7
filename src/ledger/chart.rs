//! The digital-album sales chart: albums ranked by net units in a window, with revenue per
//! currency, cached between purchases.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Ledger, LedgerError, SalesRow};

/// How long a computed chart may be served while no purchase or refund happened: it bounds
/// how far a window's start may lag the clock.
pub const CHART_MAX_AGE: Duration = Duration::from_secs(10);

/// A chart window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Window {
    /// The last 24 hours.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days.
    #[serde(rename = "30d")]
    Month,
    /// Since the first sale.
    #[serde(rename = "all")]
    All,
}

impl Window {
    /// Every window, in the order of `Window::index`.
    pub const ALL: [Window; 4] = [Window::Day, Window::Week, Window::Month, Window::All];

    /// Seconds covered, None for all time.
    pub fn seconds(self) -> Option<i64> {
        match self {
            Window::Day => Some(86_400),
            Window::Week => Some(7 * 86_400),
            Window::Month => Some(30 * 86_400),
            Window::All => None,
        }
    }

    /// The query-string name.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
            Window::All => "all",
        }
    }

    fn index(self) -> usize {
        match self {
            Window::Day => 0,
            Window::Week => 1,
            Window::Month => 2,
            Window::All => 3,
        }
    }
}

/// Not a chart window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("window must be one of 24h, 7d, 30d, all")]
pub struct WindowParseError;

impl FromStr for Window {
    type Err = WindowParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Window::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or(WindowParseError)
    }
}

/// One line of the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartEntry {
    /// 1 for the best seller; equal units are ordered by album id, so the order is stable.
    pub rank: u32,
    /// The album.
    pub album: String,
    /// Net units: purchases in the window not refunded.
    pub units: i64,
    /// Revenue per currency, minor units.
    pub revenue: BTreeMap<String, i64>,
}

/// Ranks sales rows: most units first, then album id.
pub fn rank(rows: Vec<SalesRow>) -> Vec<ChartEntry> {
    let mut by_album: BTreeMap<String, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    for row in rows {
        let entry = by_album.entry(row.album).or_default();
        entry.0 += row.units;
        *entry.1.entry(row.currency).or_default() += row.revenue;
    }
    let mut entries: Vec<ChartEntry> = by_album
        .into_iter()
        .filter(|(_, (units, _))| *units > 0)
        .map(|(album, (units, revenue))| ChartEntry {
            rank: 0,
            album,
            units,
            revenue,
        })
        .collect();
    entries.sort_by(|a, b| b.units.cmp(&a.units).then_with(|| a.album.cmp(&b.album)));
    for (i, e) in entries.iter_mut().enumerate() {
        e.rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    entries
}

struct Cached {
    generation: u64,
    computed: Instant,
    entries: Arc<Vec<ChartEntry>>,
}

/// Charts per window, recomputed after any purchase or refund (a generation counter) or
/// after [`CHART_MAX_AGE`].
///
/// Correct under concurrency: a computation reads the generation *before* querying, so a
/// chart computed while a purchase commits is stored under the old generation and thrown
/// away by the next reader.
#[derive(Default)]
pub struct ChartCache {
    generation: AtomicU64,
    slots: [Mutex<Option<Cached>>; 4],
}

impl ChartCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks every cached chart stale (call after a purchase or refund commits).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The chart for `window` at `now` (Unix seconds), from the cache when still valid.
    pub async fn get(
        &self,
        ledger: &Ledger,
        window: Window,
        now: i64,
    ) -> Result<Arc<Vec<ChartEntry>>, LedgerError> {
        let generation = self.generation.load(Ordering::Acquire);
        let slot = &self.slots[window.index()];
        if let Ok(guard) = slot.lock()
            && let Some(c) = guard.as_ref()
            && c.generation == generation
            && c.computed.elapsed() < CHART_MAX_AGE
        {
            return Ok(Arc::clone(&c.entries));
        }
        let since = window.seconds().map(|s| now - s);
        let entries = Arc::new(rank(ledger.sales(since).await?));
        if let Ok(mut guard) = slot.lock() {
            *guard = Some(Cached {
                generation,
                computed: Instant::now(),
                entries: Arc::clone(&entries),
            });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(album: &str, currency: &str, units: i64, revenue: i64) -> SalesRow {
        SalesRow {
            album: album.into(),
            currency: currency.into(),
            units,
            revenue,
        }
    }

    #[test]
    fn ranks_by_units_across_currencies() {
        let chart = rank(vec![
            row("b", "CNY", 3, 4500),
            row("a", "CNY", 2, 3000),
            row("a", "USD", 2, 1998),
            row("c", "CNY", 3, 4500),
        ]);
        let order: Vec<(&str, i64, u32)> = chart
            .iter()
            .map(|e| (e.album.as_str(), e.units, e.rank))
            .collect();
        assert_eq!(order, [("a", 4, 1), ("b", 3, 2), ("c", 3, 3)]);
        assert_eq!(chart[0].revenue["USD"], 1998);
        assert_eq!(chart[0].revenue["CNY"], 3000);
    }

    #[test]
    fn windows_parse() {
        for w in Window::ALL {
            assert_eq!(w.as_str().parse::<Window>(), Ok(w));
        }
        assert!("1y".parse::<Window>().is_err());
        assert_eq!(Window::Day.seconds(), Some(86_400));
        assert_eq!(Window::All.seconds(), None);
    }
}
