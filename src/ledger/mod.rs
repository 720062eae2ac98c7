//! The purchase ledger: purchases and refunds, durable before they are acknowledged, and the
//! questions the rest of encore asks of them (what does this user own, who was the album's
//! n-th buyer, what sold in the last 24 hours).
//!
//! Storage is sqlx's `Any` driver over SQLite by default (a file in the data dir; WAL,
//! `synchronous=FULL`, a busy timeout, writes in `BEGIN IMMEDIATE` transactions). The SQL is
//! portable and the migrations in `migrations/` are plain SQL, so pointing `[ledger] url` at
//! PostgreSQL (and building with sqlx's `postgres` feature) is a configuration change; the
//! one dialect difference, how a write transaction starts, lives in [`Backend`].
//!
//! - [`purchase`]: parsing and validating a purchase body; the idempotency fingerprint.
//! - [`changes`]: the entitlement change feed and the wake-up that keeps origins in step.
//! - [`chart`]: chart windows and the cached chart.
//! - [`devices`]: devices (X25519 public keys) and the offline licenses issued to them.
//! - [`time`]: RFC 3339 at the edge, Unix seconds inside.

pub mod changes;
pub mod chart;
pub mod clubs;
pub mod devices;
mod error;
pub mod library_cache;
mod owned;
#[cfg(test)]
mod proptests;
pub mod purchase;
pub mod time;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Row};

pub use changes::{ChangeKind, ChangeListener, Entitlement, EntitlementChange, FeedRead, Wake};
pub use chart::{ChartCache, ChartEntry, Window};
pub use clubs::{Club, ClubSales, Membership, club_name};
pub use error::LedgerError;
pub use owned::{Gift, Gifts};
pub use purchase::{FieldError, NewPurchase, Receipt};
use writer::{MAX_BATCH, PurchaseJob, WRITE_ATTEMPTS, retry_pause, spawn_writer, write_purchases};

/// File name of the SQLite ledger inside the data dir.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// How long a writer waits for SQLite's write lock before giving up, milliseconds.
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// How long a request waits for a pooled connection: past it the ledger is unavailable (a
/// 503 the client retries), not a request that hangs until its deadline.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in each of the ledger's two pools (writes, reads).
const POOL_CONNECTIONS: u32 = 4;

/// SQLite's page cache per connection, KiB: the ledger's memory is [`POOL_CONNECTIONS`] × 2
/// pools × this, whatever the ledger's size. At SQLite's default (2000) every connection grows
/// to 2 MB as the ledger grows, 16 MB in all; a page not cached here is one `pread` from the
/// kernel's page cache, which holds the file once for every connection.
const SQLITE_CACHE_KIB: u32 = 512;

/// Which of the ledger's pools a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// Purchases, refunds and migrations.
    Writes,
    /// Charts, nameplates and entitlement reads; refused any write.
    Reads,
}

/// Opens one of the ledger's pools with every connection up front, kept for the life of the
/// server. A pool that opens connections as load rises (and closes them after 10 idle minutes)
/// grows the process by a thread and a page cache at moments nobody chose: memory that steps
/// with traffic instead of being fixed at start. A broken connection is still replaced: each
/// acquire pings its connection first.
async fn open_pool(
    options: &AnyConnectOptions,
    backend: Backend,
    role: Pool,
    location: &str,
) -> Result<AnyPool, LedgerError> {
    AnyPoolOptions::new()
        .max_connections(POOL_CONNECTIONS)
        .min_connections(POOL_CONNECTIONS)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                match (backend, role) {
                    (Backend::Sqlite, role) => {
                        conn.execute(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}").as_str())
                            .await?;
                        conn.execute(format!("PRAGMA cache_size = -{SQLITE_CACHE_KIB}").as_str())
                            .await?;
                        if role == Pool::Writes {
                            // WAL: readers never wait for the writer. FULL: a commit is on
                            // disk (WAL fsynced) before it returns, so an acknowledged
                            // purchase survives power loss, not only a process crash.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute(
                                format!(
                                    "PRAGMA wal_autocheckpoint = {}",
                                    writer::WAL_AUTOCHECKPOINT_PAGES
                                )
                                .as_str(),
                            )
                            .await?;
                        } else {
                            // The WAL mode is the file's (set by the write pool); query_only
                            // makes a write on this pool an error, not a lock taken from
                            // purchases.
                            conn.execute("PRAGMA query_only = 1").await?;
                        }
                    }
                    (Backend::Postgres, Pool::Writes) => {}
                    (Backend::Postgres, Pool::Reads) => {
                        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                            .await?;
                    }
                }
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(|source| LedgerError::Open {
            location: location.to_string(),
            source,
        })
}

/// The granularity of `sales_hourly`, seconds.
const HOUR: i64 = 3600;

/// Seconds a client is told to wait (`Retry-After`) when the ledger cannot commit.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The database behind the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one writer at a time; `BEGIN IMMEDIATE` takes the write lock up front, so a
    /// read-then-write transaction never fails to upgrade.
    Sqlite,
    /// PostgreSQL: serializable transactions (a conflict surfaces as an error and is retried).
    Postgres,
}

impl Backend {
    fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }

    /// Makes writers of purchases (every server's purchase writer, refunds) take turns, as
    /// SQLite's `BEGIN IMMEDIATE` does: on PostgreSQL, a lock that readers pass but writers
    /// wait for, taken before the transaction's first query so that its snapshot already holds
    /// the previous writer's commit. Without it, two servers selling the same album abort each
    /// other's transactions (buyer numbers, hourly totals) faster than retries can land them.
    async fn take_write_turn(
        self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Backend::Sqlite => Ok(()),
            Backend::Postgres => {
                // Writers look rows up by key only (order, owner, album's last number), so a
                // sequential scan is never the right plan; the planner still picks one when the
                // table's statistics are older than the sales (autovacuum analyzes at most once
                // a minute, and a launch doubles a table within it): a scan per batch, growing
                // with the launch. Sent with the lock, in the same round trip.
                // No parameters: the simple protocol, which takes two statements at once.
                sqlx::Executor::execute(
                    &mut **tx,
                    "LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE; \
                     SET LOCAL enable_seqscan = off",
                )
                .await?;
                Ok(())
            }
        }
    }
}

/// How a purchase request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new row; the body is the receipt JSON (HTTP 201).
    Created(String),
    /// The same order with the same body was recorded before; the stored receipt (HTTP 200).
    Replayed(String),
}

/// A refunded purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunded {
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub user: String,
    /// Who owned the album through it: the recipient of a gift, else the buyer.
    pub owner: String,
    /// The recipient when the order was a gift.
    pub gift_to: Option<String>,
    /// The album.
    pub album: String,
    /// When it was refunded, Unix seconds (the first refund's time on a retry).
    pub refunded_at: i64,
    /// False when this call found the order already refunded.
    pub newly: bool,
    /// Whether the owner still owns the album through another, unrefunded purchase.
    pub still_owned: bool,
}

/// One album in a user's library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryEntry {
    /// The album.
    pub album: String,
    /// The order that made the user its owner (the earliest unrefunded one).
    pub order_id: String,
    /// When it was bought, Unix seconds.
    pub purchased_at: i64,
    /// The buyer number of that purchase.
    pub buyer_number: i64,
    /// Copies the user owns: every unrefunded order of the album they own.
    pub copies: i64,
    /// The buyer who gave that order, when it is a gift whose buyer agreed to be named.
    pub gift_from: Option<String>,
}

/// A refund that takes an album away from a user, for the revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The user.
    pub user: String,
    /// The album.
    pub album: String,
    /// When, Unix seconds.
    pub at: i64,
}

/// Whether the ledger's last write committed, and the probe that finds out again after one
/// failed.
#[derive(Debug)]
struct Health {
    can_commit: AtomicBool,
    /// Write transactions tried again after a serialization failure, deadlock or lost
    /// connection (for metrics and tests).
    retried: std::sync::atomic::AtomicU64,
    /// Held while a probe runs, so concurrent readiness checks share one.
    probe: tokio::sync::Mutex<()>,
}

impl Health {
    fn record<T>(&self, result: &Result<T, LedgerError>) {
        match result {
            Ok(_) => self.can_commit.store(true, Ordering::Release),
            Err(LedgerError::Unavailable(_) | LedgerError::Query(_)) => {
                self.can_commit.store(false, Ordering::Release);
            }
            // A conflict or an unknown order is an answer, not a failed commit.
            Err(_) => {}
        }
    }
}

/// The purchase ledger. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct Ledger {
    /// Writes: the purchase writer, refunds, the readiness probe.
    pool: AnyPool,
    /// Reads a client can repeat at will (chart, nameplates, exchanges): a pool of their own,
    /// so however many arrive, they never hold a connection a purchase is waiting for.
    reads: AnyPool,
    backend: Backend,
    location: String,
    /// The URL it was opened with, for the change listener's own connection. Holds the
    /// password: never logged, never in Debug.
    url: Arc<str>,
    writer: tokio::sync::mpsc::Sender<PurchaseJob>,
    health: Arc<Health>,
    libraries: library_cache::LibraryCache,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("backend", &self.backend)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating if needed) the SQLite ledger file at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Ledger, LedgerError> {
        // The SQLite URL parser percent-decodes the path; encode what it would misread.
        let mut encoded = String::new();
        for c in path.display().to_string().chars() {
            match c {
                '%' => encoded.push_str("%25"),
                '?' => encoded.push_str("%3F"),
                '#' => encoded.push_str("%23"),
                c => encoded.push(c),
            }
        }
        // User and order ids: the files are the owner's alone, whatever the umask.
        crate::durable::make_private(path, &["-wal", "-shm", "-journal"]).map_err(|e| {
            LedgerError::Open {
                location: path.display().to_string(),
                source: sqlx::Error::Io(e),
            }
        })?;
        let ledger = Self::open_url(
            &format!("sqlite://{encoded}?mode=rwc"),
            path.display().to_string(),
        )
        .await?;
        Ok(ledger)
    }

    /// Opens the ledger at `url` (`sqlite://...`, or `postgres://...` in a build with
    /// PostgreSQL) and migrates it. `location` names it in messages (no credentials).
    pub async fn open_url(url: &str, location: String) -> Result<Ledger, LedgerError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(LedgerError::Unsupported(location));
        };
        let options: AnyConnectOptions = url.parse().map_err(|source| LedgerError::Open {
            location: location.clone(),
            source,
        })?;
        let pool = open_pool(&options, backend, Pool::Writes, &location).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let reads = open_pool(&options, backend, Pool::Reads, &location).await?;
        // Bounded: a flood of purchases waits for queue space (backpressure), not memory.
        let health = Arc::new(Health {
            can_commit: AtomicBool::new(true),
            retried: std::sync::atomic::AtomicU64::new(0),
            probe: tokio::sync::Mutex::new(()),
        });
        let (writer, queue) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
        let libraries = library_cache::LibraryCache::new();
        spawn_writer(
            write_purchases(
                pool.clone(),
                backend,
                health.clone(),
                libraries.clone(),
                queue,
            ),
            (backend == Backend::Sqlite).then(|| pool.clone()),
        )
        .map_err(|source| LedgerError::Writer {
            location: location.clone(),
            source,
        })?;
        Ok(Ledger {
            pool,
            reads,
            backend,
            location,
            url: Arc::from(url),
            writer,
            health,
            libraries,
        })
    }

    /// Whether the ledger can commit: true while the last write committed; after a failed
    /// one, a probe commit (one at a time, shared by concurrent callers) decides, so this
    /// turns true again as soon as the cause is gone, without waiting for a purchase.
    pub async fn can_commit(&self, now: i64) -> bool {
        if self.health.can_commit.load(Ordering::Acquire) {
            return true;
        }
        let _probe = self.health.probe.lock().await;
        if self.health.can_commit.load(Ordering::Acquire) {
            return true;
        }
        let result = self.probe(now).await;
        if let Err(e) = &result {
            tracing::warn!("ledger {}: still cannot commit: {e}", self.location);
        }
        self.health.record(&result);
        result.is_ok()
    }

    async fn probe(&self, now: i64) -> Result<(), LedgerError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(LedgerError::from_acquire)?;
        let result = async {
            let mut tx = conn.begin_with(self.backend.begin_write()).await?;
            sqlx::query("UPDATE ledger_heartbeat SET at = $1 WHERE id = 1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await
        .map_err(LedgerError::from_write);
        discard_if_failed(&mut conn, &result);
        result
    }

    /// Where the ledger lives, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Records `p` (received at `now`) unless its order id is known: a new row gets the
    /// album's next buyer number and [`Recorded::Created`]; the same order with the same body
    /// gets the stored receipt back ([`Recorded::Replayed`]); the same order with another body
    /// is [`LedgerError::Conflict`]. Returns only after the commit is durable.
    ///
    /// Purchases go through one writer task that commits whatever has queued up meanwhile in
    /// one transaction (group commit): one fsync for many purchases instead of one each, and
    /// writers wait in a FIFO queue instead of in SQLite's busy-retry sleeps.
    pub async fn record_purchase(
        &self,
        p: &NewPurchase,
        now: i64,
        request_id: &str,
    ) -> Result<Recorded, LedgerError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = PurchaseJob {
            purchase: p.clone(),
            now,
            request_id: request_id.to_owned(),
            reply,
        };
        self.writer
            .send(job)
            .await
            .map_err(|_| LedgerError::WriterGone)?;
        answer.await.map_err(|_| LedgerError::WriterGone)?
    }

    /// Refunds `order_id` at `now`; a second refund changes nothing and reports the first.
    pub async fn refund(
        &self,
        order_id: &str,
        now: i64,
        request_id: &str,
    ) -> Result<Refunded, LedgerError> {
        self.write_retrying(
            |mut conn| async move {
                let result =
                    owned::refund_on(&mut conn, self.backend, order_id, now, request_id).await;
                match &result {
                    Ok(refunded) => self
                        .libraries
                        .committed([refunded.user.as_str(), refunded.owner.as_str()]),
                    Err(_) => self.libraries.committed_anyone(),
                }
                (conn, result)
            },
            // Whether the ledger can commit, from what the database answered.
            |settled| self.health.record(settled),
        )
        .await
    }

    /// Runs `attempt` (one write transaction on the pooled connection it is given, handed
    /// back with the outcome) until it commits or fails for a reason another attempt cannot
    /// mend, at most [`WRITE_ATTEMPTS`] times: a connection whose transaction failed is
    /// discarded, retries are counted and spaced by [`retry_pause`]. `settled` sees the last
    /// attempt's outcome (not a failure to get a connection).
    async fn write_retrying<T, Attempt, Fut>(
        &self,
        mut attempt: Attempt,
        settled: impl FnOnce(&Result<T, LedgerError>),
    ) -> Result<T, LedgerError>
    where
        Attempt: FnMut(PoolConnection<Any>) -> Fut,
        Fut: std::future::Future<Output = (PoolConnection<Any>, Result<T, LedgerError>)>,
    {
        let mut tries = 1;
        loop {
            let conn = self
                .pool
                .acquire()
                .await
                .map_err(LedgerError::from_acquire)?;
            let (mut conn, result) = attempt(conn).await;
            discard_if_failed(&mut conn, &result);
            if !result.as_ref().is_err_and(LedgerError::retryable) || tries == WRITE_ATTEMPTS {
                let result = result.map_err(|e| match e {
                    LedgerError::Query(e) => LedgerError::from_write(e),
                    other => other,
                });
                settled(&result);
                return result;
            }
            self.health.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(retry_pause(tries)).await;
            tries += 1;
        }
    }

    /// How many write transactions were tried again (serialization failures, deadlocks,
    /// lost connections) since the ledger was opened.
    pub fn retried_writes(&self) -> u64 {
        self.health.retried.load(Ordering::Relaxed)
    }

    /// [`library`](Self::library) for showing, from a cache this server keeps exact for its
    /// own writes and at most [`library_cache::TIME_TO_LIVE`] behind other servers' (not for
    /// entitlement decisions, which read the ledger).
    pub async fn library_shown(&self, user: &str) -> Result<Arc<Vec<LibraryEntry>>, LedgerError> {
        if let Some(hit) = self.libraries.get(user) {
            return Ok(hit);
        }
        let started = self.libraries.begin_read();
        let library = Arc::new(self.library(user).await?);
        self.libraries.store(user, started, library.clone());
        Ok(library)
    }

    /// Refunds since `since` (Unix seconds) after which the user no longer owns the album:
    /// the revocation list is rebuilt from these at start.
    pub async fn revocations_since(&self, since: i64) -> Result<Vec<Revocation>, LedgerError> {
        let rows = sqlx::query(
            "SELECT r.owner_id AS user_id, r.album AS album, MAX(r.refunded_at) AS at \
             FROM purchases r WHERE r.refunded_at IS NOT NULL AND r.refunded_at >= $1 \
             AND NOT EXISTS (SELECT 1 FROM purchases o WHERE o.owner_id = r.owner_id \
                             AND o.album = r.album AND o.refunded_at IS NULL) \
             GROUP BY r.owner_id, r.album",
        )
        .bind(since)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Revocation {
                    user: row.try_get("user_id")?,
                    album: row.try_get("album")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    /// Net sales per album and currency since `since` (None: all time): purchases dated in
    /// the window that have not been refunded. Whole hours come from `sales_hourly` (rows
    /// per album, currency and hour, however many purchases); only the part of the first
    /// hour after `since` is counted from purchases (at most an hour of them).
    pub async fn sales(&self, since: Option<i64>) -> Result<Vec<SalesRow>, LedgerError> {
        let (first_whole_hour, edge) = match since {
            None => (i64::MIN, None),
            Some(since) => {
                let hour = since.div_euclid(HOUR) * HOUR;
                if hour == since {
                    (since, None)
                } else {
                    (hour + HOUR, Some((since, hour + HOUR)))
                }
            }
        };
        let mut totals: std::collections::BTreeMap<(String, String), (i64, i64)> =
            std::collections::BTreeMap::new();
        let rows = sqlx::query(
            "SELECT album, currency, CAST(SUM(units) AS BIGINT) AS units, \
             CAST(SUM(revenue) AS BIGINT) AS revenue FROM sales_hourly \
             WHERE hour >= $1 GROUP BY album, currency",
        )
        .bind(first_whole_hour)
        .fetch_all(&self.reads)
        .await?;
        for row in rows {
            let t = totals
                .entry((row.try_get("album")?, row.try_get("currency")?))
                .or_default();
            t.0 += row.try_get::<i64, _>("units")?;
            t.1 += row.try_get::<i64, _>("revenue")?;
        }
        if let Some((from, to)) = edge {
            for row in self.sales_from_purchases(from, to).await? {
                let t = totals.entry((row.album, row.currency)).or_default();
                t.0 += row.units;
                t.1 += row.revenue;
            }
        }
        Ok(totals
            .into_iter()
            .filter(|(_, (units, _))| *units > 0)
            .map(|((album, currency), (units, revenue))| SalesRow {
                album,
                currency,
                units,
                revenue,
            })
            .collect())
    }

    /// Net sales per album and currency of purchases dated in `[from, to)`, counted from the
    /// purchases themselves (cost grows with their number: for short spans and checks).
    pub async fn sales_from_purchases(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<SalesRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT album, currency, CAST(SUM(quantity) AS BIGINT) AS units, \
             CAST(SUM(price * quantity) AS BIGINT) AS revenue \
             FROM purchases WHERE refunded_at IS NULL AND purchased_at >= $1 \
             AND purchased_at < $2 GROUP BY album, currency",
        )
        .bind(from)
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

    /// How many purchases rows exist with this order id (0 or 1; for tests and checks).
    pub async fn count_orders(&self, order_id: &str) -> Result<i64, LedgerError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM purchases WHERE order_id = $1")
                .bind(order_id)
                .fetch_one(&self.reads)
                .await?
                .try_get("n")?,
        )
    }

    /// Every order id recorded, in buyer-number order per album (for checks).
    pub async fn order_ids(&self) -> Result<Vec<String>, LedgerError> {
        let rows = sqlx::query("SELECT order_id FROM purchases ORDER BY album, buyer_number")
            .fetch_all(&self.reads)
            .await?;
        rows.into_iter()
            .map(|row| Ok(row.try_get("order_id")?))
            .collect()
    }

    /// SQLite's `PRAGMA integrity_check` ("ok" when sound); "ok" on other backends.
    pub async fn integrity_check(&self) -> Result<String, LedgerError> {
        if self.backend != Backend::Sqlite {
            return Ok("ok".into());
        }
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        let lines: Result<Vec<String>, sqlx::Error> =
            rows.iter().map(|r| r.try_get::<String, _>(0)).collect();
        Ok(lines?.join("\n"))
    }

    /// SQLite's `journal_mode` and `synchronous` on a pooled connection, to check that the
    /// durability settings took (`("wal", 2)`: WAL, FULL).
    pub async fn sqlite_durability(&self) -> Result<(String, i64), LedgerError> {
        let mut conn = self.pool.acquire().await?;
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let sync: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok((mode, sync))
    }

    /// Closes the pool, waiting for connections to finish (a clean checkpoint).
    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }
}

/// Closes `conn` instead of returning it to the pool when its transaction failed: a failed
/// `COMMIT` may have left the connection believing a transaction is still open (SQLite rolls
/// back by itself on a full disk or an I/O error, so the driver's own `ROLLBACK` fails and
/// its transaction depth stays at 1), and every later `BEGIN` on it would fail.
fn discard_if_failed<T>(conn: &mut PoolConnection<Any>, result: &Result<T, LedgerError>) {
    if matches!(
        result,
        Err(LedgerError::Query(_) | LedgerError::Unavailable(_) | LedgerError::Corrupt(_))
    ) {
        conn.close_on_drop();
    }
}

/// One album's net sales in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesRow {
    /// The album.
    pub album: String,
    /// ISO 4217.
    pub currency: String,
    /// Purchases not refunded.
    pub units: i64,
    /// Sum of their prices, minor units.
    pub revenue: i64,
}

#[cfg(test)]
mod tests;
