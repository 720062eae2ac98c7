//! The digital-album sales chart: albums ranked by net units in a window, with revenue per
//! currency, computed from hourly totals and at most once per refresh interval.

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
    /// Distinct buyers with an unrefunded purchase dated in the window (a gift counts for
    /// its buyer).
    pub buyers: i64,
    /// The album's rank in the same window ending at the start of the current hour (whole
    /// hours only), None when it was not on that chart: the movement arrow.
    pub previous_rank: Option<u32>,
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
            buyers: 0,
            previous_rank: None,
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

/// A chart's response body, reused while the chart and the catalog it names are the same.
struct Rendered {
    entries: Arc<Vec<ChartEntry>>,
    /// Held so that its address cannot be reused by another catalog while compared.
    catalog: Arc<dyn std::any::Any + Send + Sync>,
    body: bytes::Bytes,
}

/// One window's chart: the last one computed, the right to compute the next, and its body.
#[derive(Default)]
struct Slot {
    cached: Mutex<Option<Cached>>,
    computing: tokio::sync::Mutex<()>,
    rendered: Mutex<Option<Rendered>>,
}

/// Charts per window, each computed at most once per `refresh` interval whatever the
/// traffic, and again after [`CHART_MAX_AGE`] even without purchases.
///
/// A chart is fresh while it is younger than `refresh`, or younger than [`CHART_MAX_AGE`]
/// with no purchase or refund since (a generation counter). Otherwise one reader computes
/// it (single flight) while every other reader gets the previous chart at once; only the
/// very first readers of a window wait for its first computation.
#[derive(Default)]
pub struct ChartCache {
    generation: AtomicU64,
    slots: [Slot; 4],
    refresh: Duration,
    computations: AtomicU64,
}

impl ChartCache {
    /// An empty cache that computes each window at most once per `refresh`.
    pub fn new(refresh: Duration) -> Self {
        Self {
            refresh,
            ..Self::default()
        }
    }

    /// How many charts were computed so far (all windows).
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }

    /// Marks every cached chart stale (call after a purchase or refund commits); it is
    /// computed again once it is older than the refresh interval.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The response body for `entries` (from [`ChartCache::get`]) naming albums from
    /// `catalog`: built by `build` once per chart and catalog, then shared by every reader.
    pub fn render<C: Send + Sync + 'static>(
        &self,
        window: Window,
        entries: &Arc<Vec<ChartEntry>>,
        catalog: &Arc<C>,
        build: impl FnOnce() -> String,
    ) -> bytes::Bytes {
        let slot = &self.slots[window.index()];
        if let Ok(guard) = slot.rendered.lock()
            && let Some(r) = guard.as_ref()
            && Arc::ptr_eq(&r.entries, entries)
            && std::ptr::addr_eq(Arc::as_ptr(&r.catalog), Arc::as_ptr(catalog))
        {
            return r.body.clone();
        }
        let body = bytes::Bytes::from(build());
        if let Ok(mut guard) = slot.rendered.lock() {
            *guard = Some(Rendered {
                entries: Arc::clone(entries),
                catalog: Arc::clone(catalog) as Arc<dyn std::any::Any + Send + Sync>,
                body: body.clone(),
            });
        }
        body
    }

    /// The cached chart: `Ok` if fresh, `Err(Some)` if stale, `Err(None)` if there is none.
    #[allow(clippy::type_complexity)]
    fn cached(&self, slot: &Slot) -> Result<Arc<Vec<ChartEntry>>, Option<Arc<Vec<ChartEntry>>>> {
        let generation = self.generation.load(Ordering::Acquire);
        let Ok(guard) = slot.cached.lock() else {
            return Err(None);
        };
        let Some(c) = guard.as_ref() else {
            return Err(None);
        };
        let age = c.computed.elapsed();
        if age < self.refresh || (c.generation == generation && age < CHART_MAX_AGE) {
            Ok(Arc::clone(&c.entries))
        } else {
            Err(Some(Arc::clone(&c.entries)))
        }
    }

    /// The chart for `window` at `now` (Unix seconds).
    pub async fn get(
        &self,
        ledger: &Ledger,
        window: Window,
        now: i64,
    ) -> Result<Arc<Vec<ChartEntry>>, LedgerError> {
        let slot = &self.slots[window.index()];
        let stale = match self.cached(slot) {
            Ok(fresh) => return Ok(fresh),
            Err(stale) => stale,
        };
        let _computing = match slot.computing.try_lock() {
            Ok(guard) => guard,
            Err(_) => match stale {
                // Someone is computing it: the previous chart is good enough meanwhile.
                Some(previous) => return Ok(previous),
                None => slot.computing.lock().await,
            },
        };
        // The one that held the lock before may have just stored a fresh chart.
        if let Ok(fresh) = self.cached(slot) {
            return Ok(fresh);
        }
        // Read before querying: a purchase committed during the query leaves this chart
        // stale under the newer generation.
        let generation = self.generation.load(Ordering::Acquire);
        let since = window.seconds().map(|s| now - s);
        self.computations.fetch_add(1, Ordering::Relaxed);
        let mut entries = rank(ledger.sales(since).await?);
        let buyers = ledger.buyers(since).await?;
        let hour = now.div_euclid(super::HOUR) * super::HOUR;
        let previous: BTreeMap<String, u32> = rank(
            ledger
                .sales_in_hours(window.seconds().map(|s| hour - s), hour)
                .await?,
        )
        .into_iter()
        .map(|e| (e.album, e.rank))
        .collect();
        for e in &mut entries {
            e.buyers = buyers.get(&e.album).copied().unwrap_or(0);
            e.previous_rank = previous.get(&e.album).copied();
        }
        let entries = Arc::new(entries);
        if let Ok(mut guard) = slot.cached.lock() {
            *guard = Some(Cached {
                generation,
                computed: Instant::now(),
                entries: Arc::clone(&entries),
            });
        }
        Ok(entries)
    }
}

impl Ledger {
    /// Distinct buyers per album with an unrefunded purchase dated at or after `since`. Counted
    /// from the purchases (index on `purchased_at`), at most once per chart refresh.
    pub async fn buyers(&self, since: Option<i64>) -> Result<BTreeMap<String, i64>, LedgerError> {
        let rows = sqlx::query(
            "SELECT album, COUNT(DISTINCT user_id) AS n FROM purchases \
             WHERE refunded_at IS NULL AND purchased_at >= $1 GROUP BY album",
        )
        .bind(since.unwrap_or(i64::MIN))
        .fetch_all(&self.reads)
        .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            use sqlx::Row;
            out.insert(row.try_get("album")?, row.try_get("n")?);
        }
        Ok(out)
    }

    /// Net sales per album and currency in the whole hours `[from, to)` (from None: since the
    /// first), from `sales_hourly` alone.
    pub async fn sales_in_hours(
        &self,
        from: Option<i64>,
        to: i64,
    ) -> Result<Vec<SalesRow>, LedgerError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT album, currency, CAST(SUM(units) AS BIGINT) AS units, \
             CAST(SUM(revenue) AS BIGINT) AS revenue FROM sales_hourly \
             WHERE hour >= $1 AND hour < $2 GROUP BY album, currency",
        )
        .bind(from.unwrap_or(i64::MIN))
        .bind(to)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(SalesRow {
                    album: row.try_get("album")?,
                    currency: row.try_get("currency")?,
                    units: row.try_get("units")?,
                    revenue: row.try_get("revenue")?,
                })
            })
            .collect()
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
