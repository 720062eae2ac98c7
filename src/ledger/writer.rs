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
/// slow sales. The thread ends when the last [`Ledger`] handle is dropped.
pub(super) fn spawn_writer(
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
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut totals = BatchTotals::default();
    for job in batch {
        outcomes.push(
            record_in_tx(
                &mut tx,
                backend,
                &mut totals,
                &job.purchase,
                job.now,
                &job.request_id,
            )
            .await?,
        );
    }
    totals.write(&mut tx).await?;
    tx.commit().await?;
    Ok(outcomes)
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

/// One purchase inside the writer's transaction. The outer error aborts the batch (a
/// database failure); the inner one is this purchase's answer (a conflict).
async fn record_in_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    totals: &mut BatchTotals,
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
    let buyer_number = totals.next_buyer(tx, p.album.as_str()).await?;
    // Before the row goes in: a refunded album bought again goes back into every origin's
    // entitlements through the feed.
    if changes::restores(tx, p.owner(), p.album.as_str()).await? {
        changes::record_entitlement(
            tx,
            backend,
            changes::Entitlement::Restore,
            p.owner(),
            p.album.as_str(),
            now,
        )
        .await?;
    }
    let purchased_at = p.purchased_at.unwrap_or(now);
    let receipt = Receipt::new(p, purchased_at, buyer_number);
    let response =
        serde_json::to_string(&receipt).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO purchases (order_id, user_id, album, price, currency, purchased_at, \
         recorded_at, buyer_number, request_hash, response, request_id, quantity, gift_to, \
         gift_from_visible, owner_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
    .bind(p.quantity)
    .bind(p.gift_to.as_deref())
    .bind(i64::from(p.gift_from_visible))
    .bind(p.owner())
    .execute(&mut **tx)
    .await?;
    let hour = purchased_at.div_euclid(HOUR) * HOUR;
    let t = totals
        .hourly
        .entry((p.album.to_string(), p.currency.clone(), hour))
        .or_default();
    t.0 += p.quantity;
    t.1 += p.price * p.quantity;
    Ok(Ok(Recorded::Created(response)))
}
