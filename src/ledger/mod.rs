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
//! - [`chart`]: chart windows and the cached chart.
//! - [`time`]: RFC 3339 at the edge, Unix seconds inside.

pub mod chart;
pub mod library_cache;
#[cfg(test)]
mod proptests;
pub mod purchase;
pub mod time;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::error::DatabaseError;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Row};

pub use chart::{ChartCache, ChartEntry, Window};
pub use purchase::{FieldError, NewPurchase, Receipt};

/// File name of the SQLite ledger inside the data dir.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// How long a writer waits for SQLite's write lock before giving up, milliseconds.
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// How long a request waits for a pooled connection: past it the ledger is unavailable (a
/// 503 the client retries), not a request that hangs until its deadline.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at a write transaction that the database aborted as a serialization failure or
/// deadlock (PostgreSQL), or that lost its connection. Writers take turns
/// ([`Backend::take_write_turn`]), so conflicts between them are rare; a lost connection is
/// the common case.
const WRITE_ATTEMPTS: u32 = 4;

/// The wait before attempt `attempt + 1`: random within an interval that doubles from 1 ms up
/// to 8 ms, so that conflicting writers stop starting again in step.
fn retry_pause(attempt: u32) -> Duration {
    let ceiling_micros = 1000u64 << attempt.min(3);
    let mut raw = [0u8; 8];
    // Without randomness the full ceiling is as good a pause as any.
    let random = getrandom::fill(&mut raw).map_or(u64::MAX, |()| u64::from_le_bytes(raw));
    Duration::from_micros(random % ceiling_micros + 1)
}

/// The granularity of `sales_hourly`, seconds.
const HOUR: i64 = 3600;

/// Seconds a client is told to wait (`Retry-After`) when the ledger cannot commit.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database could not be opened or configured.
    #[error("cannot open the ledger at {location}: {source}")]
    Open {
        /// Where (a path, or a URL without credentials).
        location: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// The URL names a database encore is not built for.
    #[error(
        "ledger URL {0:?} is not supported: use sqlite://PATH (or postgres:// in a build with PostgreSQL)"
    )]
    Unsupported(String),
    /// A migration failed.
    #[error("cannot migrate the ledger: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed (I/O, lock timeout, corruption).
    #[error("ledger query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// The order id was recorded before with a different body.
    #[error("order {0:?} was already recorded with a different body")]
    Conflict(String),
    /// No purchase has this order id.
    #[error("no purchase with order id {0:?}")]
    UnknownOrder(String),
    /// A stored row cannot be read back.
    #[error("the ledger holds a corrupt row: {0}")]
    Corrupt(String),
    /// The group commit this purchase was part of failed; nothing in it was recorded.
    #[error("the ledger could not commit: {0}")]
    BatchFailed(String),
    /// The database cannot commit now (I/O error, full disk, lock timeout, lost
    /// connection); nothing was recorded and the same request may be retried later.
    #[error("the ledger cannot commit now: {0}")]
    Unavailable(String),
    /// The writer task is gone (the ledger is shutting down).
    #[error("the ledger is closed")]
    WriterGone,
    /// The purchase writer's thread could not be started.
    #[error("cannot start the ledger writer for {location}: {source}")]
    Writer {
        /// Where (a path, or a URL without credentials).
        location: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl LedgerError {
    /// A failed query or transaction, classified: an outage of the database is
    /// [`LedgerError::Unavailable`], anything else stays [`LedgerError::Query`].
    fn from_write(e: sqlx::Error) -> LedgerError {
        match Failure::of(&e) {
            Failure::Conflict | Failure::ConnectionLost | Failure::Outage => {
                LedgerError::Unavailable(e.to_string())
            }
            Failure::Fault => LedgerError::Query(e),
        }
    }

    /// Whether another attempt on a fresh connection may succeed at once.
    fn retryable(&self) -> bool {
        match self {
            LedgerError::Query(e) => {
                matches!(Failure::of(e), Failure::Conflict | Failure::ConnectionLost)
            }
            _ => false,
        }
    }
}

/// What a database error says about the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// PostgreSQL aborted the transaction as a serialization failure (40001) or deadlock
    /// (40P01): retry it.
    Conflict,
    /// The connection broke (a socket error, PostgreSQL class 08 or an administrator's
    /// shutdown): retry once on another connection; idempotency makes a commit that did land
    /// a replay.
    ConnectionLost,
    /// The database cannot write now: SQLite's busy, locked, read-only, I/O, full-disk and
    /// open errors, PostgreSQL's insufficient resources (class 53), system errors (58) and
    /// read-only transactions, a pool with no connection to give.
    Outage,
    /// A bug or damage (a constraint, corruption, a decoding error): a 500.
    Fault,
}

impl Failure {
    fn of(e: &sqlx::Error) -> Failure {
        match e {
            sqlx::Error::Database(db) => {
                if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    let code = sqlite
                        .code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .unwrap_or(0);
                    // Primary result codes: the low byte of an extended one.
                    match code & 0xff {
                        5 | 6 | 8 | 10 | 13 | 14 | 15 => Failure::Outage,
                        _ => Failure::Fault,
                    }
                } else {
                    let code = db.code().unwrap_or_default();
                    match code.as_ref() {
                        "40001" | "40P01" => Failure::Conflict,
                        "57P01" | "57P02" | "57P03" => Failure::ConnectionLost,
                        "25006" => Failure::Outage,
                        c if c.starts_with("08") => Failure::ConnectionLost,
                        c if c.starts_with("53") || c.starts_with("58") => Failure::Outage,
                        _ => Failure::Fault,
                    }
                }
            }
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
                Failure::ConnectionLost
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed
            | sqlx::Error::InvalidSavePointStatement => Failure::Outage,
            _ => Failure::Fault,
        }
    }
}

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
                sqlx::query("LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut **tx)
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
    /// The album.
    pub album: String,
    /// When it was refunded, Unix seconds (the first refund's time on a retry).
    pub refunded_at: i64,
    /// False when this call found the order already refunded.
    pub newly: bool,
    /// Whether the user still owns the album through another, unrefunded purchase.
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
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never wait for the writer. FULL: a commit is on disk
                        // (WAL fsynced) before it returns, so an acknowledged purchase
                        // survives power loss, not only a process crash.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}").as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(|source| LedgerError::Open {
                location: location.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let reads = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    match backend {
                        // The WAL mode is the file's (set by the write pool); query_only
                        // makes a write on this pool an error, not a lock taken from
                        // purchases.
                        Backend::Sqlite => {
                            conn.execute("PRAGMA query_only = 1").await?;
                            conn.execute(
                                format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}").as_str(),
                            )
                            .await?;
                        }
                        Backend::Postgres => {
                            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| LedgerError::Open {
                location: location.clone(),
                source,
            })?;
        // Bounded: a flood of purchases waits for queue space (backpressure), not memory.
        let health = Arc::new(Health {
            can_commit: AtomicBool::new(true),
            probe: tokio::sync::Mutex::new(()),
        });
        let (writer, queue) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
        let libraries = library_cache::LibraryCache::new();
        spawn_writer(write_purchases(
            pool.clone(),
            backend,
            health.clone(),
            libraries.clone(),
            queue,
        ))
        .map_err(|source| LedgerError::Writer {
            location: location.clone(),
            source,
        })?;
        Ok(Ledger {
            pool,
            reads,
            backend,
            location,
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
        let mut conn = self.pool.acquire().await.map_err(LedgerError::from_write)?;
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
        let mut attempt = 1;
        loop {
            let mut conn = self.pool.acquire().await.map_err(LedgerError::from_write)?;
            let result = refund_on(&mut conn, self.backend, order_id, now, request_id).await;
            discard_if_failed(&mut conn, &result);
            match &result {
                Ok(refunded) => self.libraries.committed([refunded.user.as_str()]),
                Err(_) => self.libraries.committed_anyone(),
            }
            if !result.as_ref().is_err_and(LedgerError::retryable) || attempt == WRITE_ATTEMPTS {
                let result = result.map_err(|e| match e {
                    LedgerError::Query(e) => LedgerError::from_write(e),
                    other => other,
                });
                self.health.record(&result);
                return result;
            }
            tokio::time::sleep(retry_pause(attempt)).await;
            attempt += 1;
        }
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

    /// The user's albums with their earliest unrefunded purchase, most recent purchase
    /// first.
    pub async fn library(&self, user: &str) -> Result<Vec<LibraryEntry>, LedgerError> {
        let rows = sqlx::query(
            "SELECT order_id, album, purchased_at, buyer_number FROM purchases \
             WHERE user_id = $1 AND refunded_at IS NULL ORDER BY album, buyer_number",
        )
        .bind(user)
        .fetch_all(&self.reads)
        .await?;
        let mut out: Vec<LibraryEntry> = Vec::new();
        for row in rows {
            let album: String = row.try_get("album")?;
            if out.last().is_some_and(|e| e.album == album) {
                continue;
            }
            out.push(LibraryEntry {
                album,
                order_id: row.try_get("order_id")?,
                purchased_at: row.try_get("purchased_at")?,
                buyer_number: row.try_get("buyer_number")?,
            });
        }
        out.sort_by(|a, b| {
            b.purchased_at
                .cmp(&a.purchased_at)
                .then_with(|| a.album.cmp(&b.album))
        });
        Ok(out)
    }

    /// Refunds since `since` (Unix seconds) after which the user no longer owns the album:
    /// the revocation list is rebuilt from these at start.
    pub async fn revocations_since(&self, since: i64) -> Result<Vec<Revocation>, LedgerError> {
        let rows = sqlx::query(
            "SELECT r.user_id AS user_id, r.album AS album, MAX(r.refunded_at) AS at \
             FROM purchases r WHERE r.refunded_at IS NOT NULL AND r.refunded_at >= $1 \
             AND NOT EXISTS (SELECT 1 FROM purchases o WHERE o.user_id = r.user_id \
                             AND o.album = r.album AND o.refunded_at IS NULL) \
             GROUP BY r.user_id, r.album",
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
            "SELECT album, currency, COUNT(*) AS units, CAST(SUM(price) AS BIGINT) AS revenue \
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

/// One refund in a write transaction on `conn`.
async fn refund_on(
    conn: &mut PoolConnection<Any>,
    backend: Backend,
    order_id: &str,
    now: i64,
    request_id: &str,
) -> Result<Refunded, LedgerError> {
    let mut tx = conn.begin_with(backend.begin_write()).await?;
    backend.take_write_turn(&mut tx).await?;
    let row = sqlx::query(
        "SELECT user_id, album, refunded_at, currency, price, purchased_at FROM purchases \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| LedgerError::UnknownOrder(order_id.to_owned()))?;
    let user: String = row.try_get("user_id")?;
    let album: String = row.try_get("album")?;
    let before: Option<i64> = row.try_get("refunded_at")?;
    let refunded_at = match before {
        Some(at) => at,
        None => {
            sqlx::query(
                "UPDATE purchases SET refunded_at = $1, refund_request_id = $2 WHERE order_id = $3",
            )
            .bind(now)
            .bind(request_id)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
            let purchased_at: i64 = row.try_get("purchased_at")?;
            sqlx::query(
                "UPDATE sales_hourly SET units = units - 1, revenue = revenue - $1 \
                 WHERE album = $2 AND currency = $3 AND hour = $4",
            )
            .bind(row.try_get::<i64, _>("price")?)
            .bind(&album)
            .bind(row.try_get::<String, _>("currency")?)
            .bind(purchased_at.div_euclid(HOUR) * HOUR)
            .execute(&mut *tx)
            .await?;
            now
        }
    };
    let others: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM purchases \
         WHERE user_id = $1 AND album = $2 AND refunded_at IS NULL",
    )
    .bind(&user)
    .bind(&album)
    .fetch_one(&mut *tx)
    .await?
    .try_get("n")?;
    tx.commit().await?;
    Ok(Refunded {
        order_id: order_id.to_owned(),
        user,
        album,
        refunded_at,
        newly: before.is_none(),
        still_owned: others > 0,
    })
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

/// A purchase waiting for the writer.
struct PurchaseJob {
    purchase: NewPurchase,
    now: i64,
    request_id: String,
    reply: tokio::sync::oneshot::Sender<Result<Recorded, LedgerError>>,
}

/// Most purchases committed in one transaction.
const MAX_BATCH: usize = 256;

/// The single writer: takes the first waiting purchase, then everything queued behind it (up
/// to [`MAX_BATCH`]), records them in one write transaction and answers each after the
/// commit. If the transaction fails, every purchase in it fails (none was acknowledged).
/// Runs the purchase writer on a thread and runtime of its own, so that its many wakeups per
/// commit (one per statement answered by the database) never queue behind the request tasks of
/// the serving runtime: a flood of cheap public reads that keeps every worker busy must not
/// slow sales (issue 19 item 9). The thread ends when the last [`Ledger`] handle is dropped.
fn spawn_writer(
    writer: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || runtime.block_on(writer))?;
    Ok(())
}

async fn write_purchases(
    pool: AnyPool,
    backend: Backend,
    health: Arc<Health>,
    libraries: library_cache::LibraryCache,
    mut queue: tokio::sync::mpsc::Receiver<PurchaseJob>,
) {
    let mut batch: Vec<PurchaseJob> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut attempt = 1;
        let result = loop {
            let result = commit_batch(&pool, backend, &batch).await;
            if !result.as_ref().is_err_and(LedgerError::retryable) || attempt == WRITE_ATTEMPTS {
                break result;
            }
            tokio::time::sleep(retry_pause(attempt)).await;
            attempt += 1;
        };
        libraries.committed(batch.iter().map(|job| job.purchase.user.as_str()));
        health.record(&result);
        match result {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                let unavailable = match e {
                    LedgerError::Query(e) => LedgerError::from_write(e),
                    other => other,
                };
                let message = unavailable.to_string();
                tracing::error!(
                    "ledger: a group commit of {} purchase(s) failed: {message}",
                    batch.len()
                );
                let outage = matches!(unavailable, LedgerError::Unavailable(_));
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(if outage {
                        LedgerError::Unavailable(message.clone())
                    } else {
                        LedgerError::BatchFailed(message.clone())
                    }));
                }
            }
        }
    }
}

/// Records every job in one transaction on a connection of its own, discarded if anything
/// fails; the per-job outcomes are valid only once this returns Ok (the commit is durable).
async fn commit_batch(
    pool: &AnyPool,
    backend: Backend,
    batch: &[PurchaseJob],
) -> Result<Vec<Result<Recorded, LedgerError>>, LedgerError> {
    let mut conn = pool.acquire().await?;
    let result = record_batch(&mut conn, backend, batch).await;
    discard_if_failed(&mut conn, &result);
    result
}

async fn record_batch(
    conn: &mut PoolConnection<Any>,
    backend: Backend,
    batch: &[PurchaseJob],
) -> Result<Vec<Result<Recorded, LedgerError>>, LedgerError> {
    let mut tx = conn.begin_with(backend.begin_write()).await?;
    backend.take_write_turn(&mut tx).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        outcomes.push(record_in_tx(&mut tx, &job.purchase, job.now, &job.request_id).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// One purchase inside the writer's transaction. The outer error aborts the batch (a
/// database failure); the inner one is this purchase's answer (a conflict).
async fn record_in_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    p: &NewPurchase,
    now: i64,
    request_id: &str,
) -> Result<Result<Recorded, LedgerError>, LedgerError> {
    let fingerprint = p.fingerprint();
    let existing = sqlx::query("SELECT request_hash, response FROM purchases WHERE order_id = $1")
        .bind(&p.order_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = existing {
        let hash: String = row.try_get("request_hash")?;
        if hash != fingerprint {
            return Ok(Err(LedgerError::Conflict(p.order_id.clone())));
        }
        return Ok(Ok(Recorded::Replayed(row.try_get("response")?)));
    }
    let last: Option<i64> =
        sqlx::query("SELECT MAX(buyer_number) AS n FROM purchases WHERE album = $1")
            .bind(p.album.as_str())
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
    let buyer_number = last.unwrap_or(0) + 1;
    let purchased_at = p.purchased_at.unwrap_or(now);
    let receipt = Receipt::new(p, purchased_at, buyer_number);
    let response =
        serde_json::to_string(&receipt).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO purchases (order_id, user_id, album, price, currency, purchased_at, \
         recorded_at, buyer_number, request_hash, response, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&p.order_id)
    .bind(&p.user)
    .bind(p.album.as_str())
    .bind(p.price)
    .bind(&p.currency)
    .bind(purchased_at)
    .bind(now)
    .bind(buyer_number)
    .bind(&fingerprint)
    .bind(&response)
    .bind(request_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO sales_hourly (album, currency, hour, units, revenue) \
         VALUES ($1, $2, $3, 1, $4) ON CONFLICT (album, currency, hour) \
         DO UPDATE SET units = sales_hourly.units + 1, \
         revenue = sales_hourly.revenue + excluded.revenue",
    )
    .bind(p.album.as_str())
    .bind(&p.currency)
    .bind(purchased_at.div_euclid(HOUR) * HOUR)
    .bind(p.price)
    .execute(&mut **tx)
    .await?;
    Ok(Ok(Recorded::Created(response)))
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
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn purchase(order: &str, user: &str, album: &str, price: i64) -> NewPurchase {
        let body = serde_json::json!({"order_id": order, "user": user, "album": album,
            "price": price, "currency": "CNY"});
        NewPurchase::parse(body.to_string().as_bytes(), NOW).unwrap()
    }

    async fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open_sqlite(&dir.path().join("a dir?#%").join(LEDGER_FILE))
            .await
            .err();
        // A path with characters the URL parser treats specially still opens (once the
        // folder exists).
        assert!(ledger.is_some(), "missing parent folder must fail");
        std::fs::create_dir_all(dir.path().join("a dir?#%")).unwrap();
        let ledger = Ledger::open_sqlite(&dir.path().join("a dir?#%").join(LEDGER_FILE))
            .await
            .unwrap();
        (dir, ledger)
    }

    #[tokio::test]
    async fn idempotent_on_order_id() {
        let (_dir, ledger) = ledger().await;
        idempotency(&ledger).await;
        assert_eq!(ledger.integrity_check().await.unwrap(), "ok");
        assert_eq!(
            ledger.sqlite_durability().await.unwrap(),
            ("wal".to_string(), 2),
            "WAL with synchronous=FULL"
        );
    }

    async fn idempotency(ledger: &Ledger) {
        let p = purchase("o1", "u1", "a", 1500);
        let Recorded::Created(first) = ledger.record_purchase(&p, NOW, "r1").await.unwrap() else {
            panic!("first must create");
        };
        let again = ledger.record_purchase(&p, NOW + 5, "r2").await.unwrap();
        assert_eq!(again, Recorded::Replayed(first.clone()));
        let receipt: Receipt = serde_json::from_str(&first).unwrap();
        assert_eq!(receipt.buyer_number, 1);
        assert_eq!(receipt.purchased_at, "2027-01-15T08:00:00Z");
        let other = purchase("o1", "u1", "a", 1600);
        assert!(matches!(
            ledger.record_purchase(&other, NOW, "r3").await,
            Err(LedgerError::Conflict(_))
        ));
        assert_eq!(ledger.count_orders("o1").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn concurrent_duplicates_make_one_row_and_numbers_stay_unique() {
        let (_dir, ledger) = ledger().await;
        concurrency(&ledger).await;
    }

    async fn concurrency(ledger: &Ledger) {
        let mut tasks = Vec::new();
        for i in 0..32 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let dup = purchase("same", "u1", "a", 1500);
                let own = purchase(&format!("o{i}"), &format!("u{i}"), "a", 1500);
                let a = ledger.record_purchase(&dup, NOW, "r").await.unwrap();
                ledger.record_purchase(&own, NOW, "r").await.unwrap();
                a
            }));
        }
        let mut created = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Recorded::Created(_)) {
                created += 1;
            }
        }
        assert_eq!(created, 1);
        assert_eq!(ledger.count_orders("same").await.unwrap(), 1);
        assert_eq!(ledger.order_ids().await.unwrap().len(), 33);
        let sales = ledger.sales(None).await.unwrap();
        assert_eq!(sales.len(), 1);
        assert_eq!((sales[0].units, sales[0].revenue), (33, 33 * 1500));
    }

    #[tokio::test]
    async fn refunds_keep_numbers_and_feed_revocations() {
        let (_dir, ledger) = ledger().await;
        refunds(&ledger).await;
    }

    async fn refunds(ledger: &Ledger) {
        for (order, user) in [("o1", "u1"), ("o2", "u2"), ("o3", "u3"), ("o4", "u2")] {
            ledger
                .record_purchase(&purchase(order, user, "a", 1000), NOW, "r")
                .await
                .unwrap();
        }
        ledger
            .record_purchase(&purchase("o5", "u2", "b", 800), NOW + 10, "r")
            .await
            .unwrap();
        let r = ledger.refund("o1", NOW + 100, "rr").await.unwrap();
        assert!(r.newly && !r.still_owned);
        let again = ledger.refund("o1", NOW + 200, "rr2").await.unwrap();
        assert_eq!(again.refunded_at, NOW + 100);
        assert!(!again.newly);
        // u2 bought album a twice: one refund leaves them owning it.
        let r2 = ledger.refund("o2", NOW + 100, "rr").await.unwrap();
        assert!(r2.still_owned);
        assert!(matches!(
            ledger.refund("nope", NOW, "r").await,
            Err(LedgerError::UnknownOrder(_))
        ));

        let lib = ledger.library("u2").await.unwrap();
        let got: Vec<(&str, &str, i64)> = lib
            .iter()
            .map(|e| (e.album.as_str(), e.order_id.as_str(), e.buyer_number))
            .collect();
        assert_eq!(got, [("b", "o5", 1), ("a", "o4", 4)]);
        let lib3 = ledger.library("u3").await.unwrap();
        assert_eq!(lib3[0].buyer_number, 3, "a refund does not renumber others");
        assert!(ledger.library("u1").await.unwrap().is_empty());

        let rev = ledger.revocations_since(NOW).await.unwrap();
        assert_eq!(
            rev,
            [Revocation {
                user: "u1".into(),
                album: "a".into(),
                at: NOW + 100
            }]
        );
        assert!(
            ledger
                .revocations_since(NOW + 101)
                .await
                .unwrap()
                .is_empty()
        );

        let mut sales = ledger.sales(Some(NOW)).await.unwrap();
        sales.sort_by(|a, b| a.album.cmp(&b.album));
        assert_eq!((sales[0].units, sales[1].units), (2, 1));
        assert!(ledger.sales(Some(NOW + 11)).await.unwrap().is_empty());
    }

    /// Hourly totals (kept by purchases and refunds, backfilled by the migration) give the
    /// same chart rows as counting the purchases themselves, for windows starting on and off
    /// an hour, refunds included.
    #[tokio::test]
    async fn hourly_totals_match_counting_purchases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        // Purchases recorded before the totals existed: only the first migration applied.
        {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
            let mut first = sqlx::migrate!("./migrations");
            first.migrations = first
                .migrations
                .iter()
                .filter(|m| m.version == 1)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            first.run(&pool).await.unwrap();
            for i in 0..50i64 {
                sqlx::query(
                    "INSERT INTO purchases (order_id, user_id, album, price, currency, \
                     purchased_at, recorded_at, buyer_number, request_hash, response, \
                     request_id, refunded_at) VALUES ($1, 'u', $2, $3, $4, $5, $5, $6, 'h', \
                     'r', 'q', $7)",
                )
                .bind(format!("old{i}"))
                .bind(if i % 3 == 0 { "a" } else { "b" })
                .bind(100 + i)
                .bind(if i % 5 == 0 { "USD" } else { "CNY" })
                .bind(NOW - 40 * 86_400 + i * 7_919 * 11)
                .bind(i + 1)
                .bind(if i % 7 == 0 { Some(NOW) } else { None })
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let ledger = Ledger::open_sqlite(&path).await.unwrap();
        for i in 0..120i64 {
            let album = ["a", "b", "c"][usize::try_from(i % 3).unwrap()];
            let mut body = serde_json::json!({"order_id": format!("n{i}"), "user": "u",
                "album": album, "price": 1000 + i,
                "currency": if i % 4 == 0 { "USD" } else { "CNY" }});
            // Spread over 40 days, at odd seconds, so windows cut through hours.
            body["purchased_at"] = time::format_rfc3339(NOW - i * 28_813).into();
            let p = NewPurchase::parse(body.to_string().as_bytes(), NOW).unwrap();
            ledger.record_purchase(&p, NOW, "r").await.unwrap();
        }
        for i in (0..120).step_by(5) {
            ledger.refund(&format!("n{i}"), NOW, "rr").await.unwrap();
        }
        // A second refund of the same order changes nothing.
        ledger.refund("n5", NOW, "rr").await.unwrap();
        ledger.refund("old1", NOW, "rr").await.unwrap();
        let sorted = |mut rows: Vec<SalesRow>| {
            rows.sort_by(|x, y| (&x.album, &x.currency).cmp(&(&y.album, &y.currency)));
            rows
        };
        let mut checked = 0;
        for since in [
            None,
            Some(NOW - 86_400),
            Some(NOW - 7 * 86_400),
            Some(NOW - 30 * 86_400),
            Some((NOW - 86_400).div_euclid(HOUR) * HOUR),
            Some(NOW - 123_457),
            Some(NOW - 50 * 86_400),
        ] {
            let fast = sorted(ledger.sales(since).await.unwrap());
            let slow = sorted(
                ledger
                    .sales_from_purchases(since.unwrap_or(i64::MIN), i64::MAX)
                    .await
                    .unwrap(),
            );
            assert_eq!(fast, slow, "since {since:?}");
            checked += fast.len();
        }
        assert!(checked > 20, "the windows hold sales");
    }

    /// A database of its own on the PostgreSQL server the suite runs with, dropped by
    /// [`PgDatabase::drop_database`]. `.ci/run` runs the tests inside `pg_virtualenv`, which
    /// starts a PostgreSQL 15 cluster and sets `PGHOST`, `PGPORT`, `PGUSER` and `PGPASSWORD`;
    /// `ENCORE_TEST_POSTGRES_URL=postgres://USER:PASS@HOST:PORT/postgres` names another
    /// server.
    struct PgDatabase {
        admin: sqlx::AnyPool,
        name: String,
        url: String,
    }

    impl PgDatabase {
        async fn create() -> PgDatabase {
            let admin_url = std::env::var("ENCORE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                let var = |name: &str| {
                    std::env::var(name).unwrap_or_else(|_| {
                        panic!(
                            "{name} is not set: the PostgreSQL tests need a server; run them \
                             with `bash .ci/run` (which starts one with pg_virtualenv) or set \
                             ENCORE_TEST_POSTGRES_URL"
                        )
                    })
                };
                format!(
                    "postgres://{}:{}@{}:{}/postgres",
                    var("PGUSER"),
                    var("PGPASSWORD"),
                    var("PGHOST"),
                    std::env::var("PGPORT").unwrap_or_else(|_| "5432".to_owned())
                )
            });
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
            let mut suffix = [0u8; 6];
            crate::seal::key::fill_random(&mut suffix).unwrap();
            let name = format!("encore_test_{}", hex::encode(suffix));
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            PgDatabase { admin, name, url }
        }

        async fn open(&self) -> Ledger {
            Ledger::open_url(&self.url, self.name.clone())
                .await
                .unwrap()
        }

        /// Ends every connection to this database but the administrator's.
        async fn terminate_connections(&self) -> i64 {
            let row = sqlx::query(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&self.name)
            .fetch_one(&self.admin)
            .await
            .unwrap();
            row.try_get("n").unwrap()
        }

        async fn drop_database(self) {
            // FORCE: a closed pool's backends may still be exiting.
            self.admin
                .execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
                .await
                .unwrap();
        }
    }

    /// The SQLite checks again on PostgreSQL, each on a fresh database.
    #[tokio::test]
    async fn ledger_on_postgres() {
        for check in ["idempotency", "concurrency", "refunds"] {
            let db = PgDatabase::create().await;
            let ledger = db.open().await;
            match check {
                "idempotency" => idempotency(&ledger).await,
                "concurrency" => concurrency(&ledger).await,
                _ => refunds(&ledger).await,
            }
            ledger.close().await;
            db.drop_database().await;
        }
    }

    /// Two servers on one PostgreSQL database selling the same album at once: every purchase
    /// is recorded with a buyer number of its own. (Without their writers taking turns, their
    /// serializable transactions abort each other, 40001, faster than retries land them.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_servers_selling_the_same_album_all_land() {
        // Per server, buyers purchasing one after another: each writer commits small batches
        // back to back for the whole test, so the two servers' transactions overlap.
        const BUYERS: usize = 3;
        const EACH: usize = 40;
        let db = PgDatabase::create().await;
        let servers = [db.open().await, db.open().await];
        let mut tasks = Vec::new();
        for (s, ledger) in servers.iter().enumerate() {
            for b in 0..BUYERS {
                let ledger = ledger.clone();
                tasks.push(tokio::spawn(async move {
                    let mut numbers = Vec::new();
                    for i in 0..EACH {
                        let order = format!("s{s}-b{b}-o{i}");
                        let p = purchase(&order, &format!("u{s}-{b}"), "a", 1500);
                        match ledger.record_purchase(&p, NOW, "r").await {
                            Ok(Recorded::Created(receipt)) => {
                                let receipt: serde_json::Value =
                                    serde_json::from_str(&receipt).unwrap();
                                numbers.push(receipt["buyer_number"].as_i64().unwrap());
                            }
                            other => panic!("{order} was not recorded: {other:?}"),
                        }
                    }
                    numbers
                }));
            }
        }
        let mut numbers = Vec::new();
        for t in tasks {
            numbers.extend(t.await.unwrap());
        }
        numbers.sort_unstable();
        let expected: Vec<i64> = (1..=i64::try_from(2 * BUYERS * EACH).unwrap()).collect();
        assert_eq!(numbers, expected, "buyer numbers 1..=N, each once");
        for ledger in servers {
            ledger.close().await;
        }
        db.drop_database().await;
    }

    /// PostgreSQL connections killed under a stream of purchases: each purchase is recorded
    /// or answered `Unavailable` (never a hang, never another error), every recorded one is
    /// in the ledger, and once the connections stop dying purchases, refunds and reads work
    /// again without reopening the ledger.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_lost_connections_are_replaced_without_a_restart() {
        let db = PgDatabase::create().await;
        let ledger = db.open().await;
        let buyers: Vec<_> = (0..4)
            .map(|b| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let mut recorded = Vec::new();
                    let mut unavailable = 0;
                    for i in 0..40 {
                        let order = format!("b{b}-o{i}");
                        let p = purchase(&order, &format!("u{b}"), "a", 1500);
                        let answer = tokio::time::timeout(
                            std::time::Duration::from_secs(30),
                            ledger.record_purchase(&p, NOW, "r"),
                        )
                        .await
                        .expect("a purchase hung while connections died");
                        match answer {
                            Ok(_) => recorded.push(order),
                            Err(LedgerError::Unavailable(_)) => unavailable += 1,
                            Err(other) => panic!("not a clean outage: {other:?}"),
                        }
                    }
                    (recorded, unavailable)
                })
            })
            .collect();
        let mut killed = 0;
        while !buyers.iter().all(|b| b.is_finished()) {
            killed += db.terminate_connections().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(killed > 0, "no connection was ended");
        let mut recorded = Vec::new();
        for b in buyers {
            let (r, _unavailable) = b.await.unwrap();
            recorded.extend(r);
        }
        for order in &recorded {
            assert_eq!(ledger.count_orders(order).await.unwrap(), 1, "{order} lost");
        }
        db.terminate_connections().await;
        let after = purchase("after", "u-after", "a", 1500);
        assert!(matches!(
            ledger.record_purchase(&after, NOW, "r").await.unwrap(),
            Recorded::Created(_)
        ));
        db.terminate_connections().await;
        assert!(ledger.refund("after", NOW + 1, "rr").await.unwrap().newly);
        db.terminate_connections().await;
        assert!(ledger.library("u-after").await.unwrap().is_empty());
        assert!(ledger.can_commit(NOW + 2).await);
        ledger.close().await;
        db.drop_database().await;
    }
}
