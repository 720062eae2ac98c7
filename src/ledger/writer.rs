//! The purchase writer: one task on a thread of its own that group-commits queued purchases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Row};

use super::{
    Backend, HOUR, Health, LedgerError, NewPurchase, Receipt, Recorded, changes, discard_if_failed,
    library_cache,
};

/// Attempts at a write transaction that the database aborted as a serialization failure or
/// deadlock (PostgreSQL), or that lost its connection. Writers take turns
/// ([`Backend::take_write_turn`]), so conflicts between them are rare; a lost connection is
/// the common case.
pub(super) const WRITE_ATTEMPTS: u32 = 4;

/// The wait before attempt `attempt + 1`: random within an interval that doubles from 1 ms up
/// to 8 ms, so that conflicting writers stop starting again in step.
pub(super) fn retry_pause(attempt: u32) -> Duration {
    let ceiling_micros = 1000u64 << attempt.min(3);
    let mut raw = [0u8; 8];
    // Without randomness the full ceiling is as good a pause as any.
    let random =
        crate::seal::key::fill_random(&mut raw).map_or(u64::MAX, |()| u64::from_le_bytes(raw));
    Duration::from_micros(random % ceiling_micros + 1)
}

/// A purchase waiting for the writer.
pub(super) struct PurchaseJob {
    pub(super) purchase: NewPurchase,
    pub(super) now: i64,
    pub(super) request_id: String,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Recorded, LedgerError>>,
}

/// Most purchases committed in one transaction.
pub(super) const MAX_BATCH: usize = 256;

/// Runs the purchase writer on a thread and runtime of its own, so that its many wakeups per
/// commit (one per statement answered by the database) never queue behind the request tasks of
/// the serving runtime: a flood of cheap public reads that keeps every worker busy must not
/// slow sales. With `checkpoints` (a SQLite ledger's write pool), the WAL is checkpointed
/// beside it ([`checkpoint_wal`]). The thread ends when the last [`Ledger`] handle is dropped.
pub(super) fn spawn_writer(
    writer: impl std::future::Future<Output = ()> + Send + 'static,
    checkpoints: Option<AnyPool>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || {
            runtime.block_on(async move {
                // Dropped with the runtime when the writer ends.
                if let Some(pool) = checkpoints {
                    tokio::spawn(checkpoint_wal(pool));
                }
                writer.await;
            })
        })?;
    Ok(())
}

/// Pages of WAL after which a SQLite commit checkpoints by itself: a bound for when
/// [`checkpoint_wal`] cannot keep up, far above what it lets the WAL reach.
pub(super) const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// How often the WAL is checkpointed beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints a SQLite ledger's WAL every [`CHECKPOINT_EVERY`] on a connection of its own
/// (`PASSIVE`: never waits for, nor blocks, the writer). SQLite's own checkpoint runs inside
/// the commit that crosses its threshold and fsyncs the database file there: at launch rates,
/// a 25-60 ms stall of every purchase in flight every few seconds, the whole p99. Ends when
/// the pool closes.
async fn checkpoint_wal(pool: AnyPool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_all(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            // The commit's own checkpoint (the bound above) still keeps the WAL finite.
            tracing::warn!("ledger: WAL checkpoint failed: {e}");
        }
    }
}

/// The single writer: takes the first waiting purchase, then everything queued behind it (up
/// to [`MAX_BATCH`]), records them in one write transaction and answers each after the
/// commit. If the transaction fails, every purchase in it fails (none was acknowledged).
pub(super) async fn write_purchases(
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
            health
                .retried
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(retry_pause(attempt)).await;
            attempt += 1;
        };
        libraries.committed(
            batch
                .iter()
                .flat_map(|job| [job.purchase.user.as_str(), job.purchase.owner()]),
        );
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
    let mut conn = pool.acquire().await.map_err(LedgerError::from_acquire)?;
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
    let mut totals = BatchTotals::default();
    // What the ledger holds about this batch's orders and owners: two queries per batch, not
    // two per purchase (on PostgreSQL each statement is a round trip the whole batch waits).
    let mut known = known_orders(&mut tx, backend, batch).await?;
    let mut holdings = holdings(&mut tx, backend, batch).await?;
    let mut rows: Vec<NewRow<'_>> = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let p = &job.purchase;
        let fingerprint = p.fingerprint();
        if let Some((hash, response)) = known.get(&p.order_id) {
            outcomes.push(if *hash == fingerprint {
                Ok(Recorded::Replayed(response.clone()))
            } else {
                Err(LedgerError::Conflict(p.order_id.clone()))
            });
            continue;
        }
        let buyer_number = totals.next_buyer(&mut tx, p.album.as_str()).await?;
        // Before the row goes in: a refunded album bought again goes back into every origin's
        // entitlements through the feed.
        let held = holdings
            .entry((p.owner().to_owned(), p.album.to_string()))
            .or_insert((0, 0));
        if held.0 > 0 && held.1 == 0 {
            changes::record_entitlement(
                &mut tx,
                backend,
                changes::Entitlement::Restore,
                p.owner(),
                p.album.as_str(),
                job.now,
            )
            .await?;
        }
        held.0 += 1;
        held.1 += 1;
        let purchased_at = p.purchased_at.unwrap_or(job.now);
        let receipt = Receipt::new(p, purchased_at, buyer_number);
        let response =
            serde_json::to_string(&receipt).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let hour = purchased_at.div_euclid(HOUR) * HOUR;
        let t = totals
            .hourly
            .entry((p.album.to_string(), p.currency.clone(), hour))
            .or_default();
        t.0 += p.quantity;
        t.1 += p.price * p.quantity;
        known.insert(p.order_id.clone(), (fingerprint.clone(), response.clone()));
        outcomes.push(Ok(Recorded::Created(response.clone())));
        rows.push(NewRow {
            job,
            purchased_at,
            buyer_number,
            fingerprint,
            response,
        });
    }
    for chunk in rows.chunks(INSERT_ROWS) {
        insert_rows(&mut tx, backend, chunk).await?;
    }
    totals.write(&mut tx).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Rows per multi-row `INSERT`: 15 parameters each stay under SQLite's oldest limit of 999.
const INSERT_ROWS: usize = 64;

/// A purchase of the batch to insert.
struct NewRow<'a> {
    job: &'a PurchaseJob,
    purchased_at: i64,
    buyer_number: i64,
    fingerprint: String,
    response: String,
}

/// `n` parameters numbered from `first`: `$first, $first+1, …` on PostgreSQL; on SQLite
/// anonymous `?`s, bound in order. SQLite keeps `$N` as named parameters, and sqlx looks each
/// name up by its number, a scan of the statement's names per bind: quadratic in the
/// parameters, half the SQLite thread's time in a batch of 64-row inserts.
fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    match backend {
        Backend::Sqlite => vec!["?"; n].join(", "),
        Backend::Postgres => (first..first + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Order id → (fingerprint, stored receipt) of the batch's orders already recorded.
async fn known_orders(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    batch: &[PurchaseJob],
) -> Result<HashMap<String, (String, String)>, sqlx::Error> {
    let mut ids: Vec<&str> = batch.iter().map(|j| j.purchase.order_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let sql = format!(
        "SELECT order_id, request_hash, response FROM purchases WHERE order_id IN ({})",
        placeholders(backend, 1, ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in &ids {
        query = query.bind(*id);
    }
    let mut known = HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        known.insert(
            row.try_get("order_id")?,
            (row.try_get("request_hash")?, row.try_get("response")?),
        );
    }
    Ok(known)
}

/// (owner, album) → (orders, unrefunded orders) for the batch's owners and albums.
///
/// Selected by owner alone: with `album IN (…)` as well, PostgreSQL's generic plan (planned
/// while the table was small) scanned every row of the album through the album's index, a
/// cost growing with the launch's sales (20 ms per batch at 25,000 sales). An owner's rows
/// are few, so the other albums' are filtered here.
async fn holdings(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    batch: &[PurchaseJob],
) -> Result<HashMap<(String, String), (i64, i64)>, sqlx::Error> {
    let mut owners: Vec<&str> = batch.iter().map(|j| j.purchase.owner()).collect();
    owners.sort_unstable();
    owners.dedup();
    let albums: std::collections::HashSet<&str> =
        batch.iter().map(|j| j.purchase.album.as_str()).collect();
    let sql = format!(
        "SELECT owner_id, album, COUNT(*) AS n, \
         CAST(SUM(CASE WHEN refunded_at IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS owned \
         FROM purchases WHERE owner_id IN ({}) GROUP BY owner_id, album",
        placeholders(backend, 1, owners.len()),
    );
    let mut query = sqlx::query(&sql);
    for owner in &owners {
        query = query.bind(*owner);
    }
    let mut out = HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        let album: String = row.try_get("album")?;
        if albums.contains(album.as_str()) {
            out.insert(
                (row.try_get("owner_id")?, album),
                (row.try_get("n")?, row.try_get("owned")?),
            );
        }
    }
    Ok(out)
}

/// One multi-row `INSERT` of `rows`.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    rows: &[NewRow<'_>],
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 15;
    let values: Vec<String> = (0..rows.len())
        .map(|i| format!("({})", placeholders(backend, i * COLUMNS + 1, COLUMNS)))
        .collect();
    let sql = format!(
        "INSERT INTO purchases (order_id, user_id, album, price, currency, purchased_at, \
         recorded_at, buyer_number, request_hash, response, request_id, quantity, gift_to, \
         gift_from_visible, owner_id) VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for r in rows {
        let p = &r.job.purchase;
        query = query
            .bind(&p.order_id)
            .bind(&p.user)
            .bind(p.album.as_str())
            .bind(p.price)
            .bind(&p.currency)
            .bind(r.purchased_at)
            .bind(r.job.now)
            .bind(r.buyer_number)
            .bind(&r.fingerprint)
            .bind(&r.response)
            .bind(&r.job.request_id)
            .bind(p.quantity)
            .bind(p.gift_to.as_deref())
            .bind(i64::from(p.gift_from_visible))
            .bind(p.owner());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// What a batch adds up as it goes, written once per batch instead of once per purchase (a
/// launch puts hundreds of purchases of one album in a batch: one `MAX(buyer_number)` and one
/// hourly-total upsert for all of them).
#[derive(Default)]
struct BatchTotals {
    /// Album → the last buyer number given in this batch (the writer holds the write turn,
    /// so nobody else numbers meanwhile).
    last_buyer: HashMap<String, i64>,
    /// (album, currency, hour) → (units, revenue) added by this batch.
    hourly: HashMap<(String, String, i64), (i64, i64)>,
}

impl BatchTotals {
    async fn next_buyer(
        &mut self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        album: &str,
    ) -> Result<i64, sqlx::Error> {
        let last = match self.last_buyer.get(album) {
            Some(n) => *n,
            None => sqlx::query("SELECT MAX(buyer_number) AS n FROM purchases WHERE album = $1")
                .bind(album)
                .fetch_one(&mut **tx)
                .await?
                .try_get::<Option<i64>, _>("n")?
                .unwrap_or(0),
        };
        self.last_buyer.insert(album.to_owned(), last + 1);
        Ok(last + 1)
    }

    async fn write(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), sqlx::Error> {
        for ((album, currency, hour), (units, revenue)) in &self.hourly {
            sqlx::query(
                "INSERT INTO sales_hourly (album, currency, hour, units, revenue) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (album, currency, hour) \
                 DO UPDATE SET units = sales_hourly.units + excluded.units, \
                 revenue = sales_hourly.revenue + excluded.revenue",
            )
            .bind(album)
            .bind(currency)
            .bind(hour)
            .bind(units)
            .bind(revenue)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
