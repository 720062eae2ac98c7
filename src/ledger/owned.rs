//! Who owns what: a user's library (copies, gifts), the gifts a user sent and received, and
//! the refund that takes an order back from its owner (the recipient of a gift, else the
//! buyer).

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Row};

use super::{Backend, HOUR, Ledger, LedgerError, LibraryEntry, Refunded, changes};

/// One gift, as the buyer or the recipient sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gift {
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The album.
    pub album: String,
    /// Copies.
    pub quantity: i64,
    /// Whether the recipient may see who gave it.
    pub from_visible: bool,
    /// When it was bought, Unix seconds.
    pub purchased_at: i64,
    /// When it was refunded or declined, if it was.
    pub refunded_at: Option<i64>,
}

impl Gift {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Gift, sqlx::Error> {
        Ok(Gift {
            order_id: row.try_get("order_id")?,
            from: row.try_get("user_id")?,
            to: row.try_get("gift_to")?,
            album: row.try_get("album")?,
            quantity: row.try_get("quantity")?,
            from_visible: row.try_get::<i64, _>("gift_from_visible")? != 0,
            purchased_at: row.try_get("purchased_at")?,
            refunded_at: row.try_get("refunded_at")?,
        })
    }
}

/// The gifts of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gifts {
    /// Gifts to the user, newest first.
    pub received: Vec<Gift>,
    /// Gifts the user bought for others, newest first.
    pub sent: Vec<Gift>,
}

const GIFT_COLUMNS: &str = "order_id, user_id, gift_to, album, quantity, gift_from_visible, \
                            purchased_at, refunded_at";

impl Ledger {
    /// The albums the user owns (bought for themselves or received as gifts), each with its
    /// earliest unrefunded order and the copies of every unrefunded one, most recent first.
    pub async fn library(&self, user: &str) -> Result<Vec<LibraryEntry>, LedgerError> {
        let rows = sqlx::query(
            "SELECT order_id, user_id, album, purchased_at, buyer_number, quantity, \
             gift_to, gift_from_visible FROM purchases \
             WHERE owner_id = $1 AND refunded_at IS NULL ORDER BY album, buyer_number",
        )
        .bind(user)
        .fetch_all(&self.reads)
        .await?;
        let mut out: Vec<LibraryEntry> = Vec::new();
        for row in rows {
            let album: String = row.try_get("album")?;
            let quantity: i64 = row.try_get("quantity")?;
            if let Some(last) = out.last_mut().filter(|e| e.album == album) {
                last.copies += quantity;
                continue;
            }
            let gift_to: Option<String> = row.try_get("gift_to")?;
            let visible = row.try_get::<i64, _>("gift_from_visible")? != 0;
            let gift_from = if gift_to.is_some() && visible {
                Some(row.try_get("user_id")?)
            } else {
                None
            };
            out.push(LibraryEntry {
                album,
                order_id: row.try_get("order_id")?,
                purchased_at: row.try_get("purchased_at")?,
                buyer_number: row.try_get("buyer_number")?,
                copies: quantity,
                gift_from,
            });
        }
        out.sort_by(|a, b| {
            b.purchased_at
                .cmp(&a.purchased_at)
                .then_with(|| a.album.cmp(&b.album))
        });
        Ok(out)
    }

    /// The gifts `user` received and sent, refunded or declined ones included.
    pub async fn gifts(&self, user: &str) -> Result<Gifts, LedgerError> {
        let mut gifts = Gifts::default();
        for (column, list) in [
            ("gift_to", &mut gifts.received),
            ("user_id", &mut gifts.sent),
        ] {
            let rows = sqlx::query(&format!(
                "SELECT {GIFT_COLUMNS} FROM purchases WHERE {column} = $1 \
                 AND gift_to IS NOT NULL ORDER BY purchased_at DESC, order_id"
            ))
            .bind(user)
            .fetch_all(&self.reads)
            .await?;
            for row in rows {
                list.push(Gift::from_row(&row)?);
            }
        }
        Ok(gifts)
    }

    /// The order `order_id` when it is a gift; None for an unknown order or one that is not.
    pub async fn gift(&self, order_id: &str) -> Result<Option<Gift>, LedgerError> {
        let row = sqlx::query(&format!(
            "SELECT {GIFT_COLUMNS} FROM purchases WHERE order_id = $1 AND gift_to IS NOT NULL"
        ))
        .bind(order_id)
        .fetch_optional(&self.reads)
        .await?;
        Ok(row.map(|r| Gift::from_row(&r)).transpose()?)
    }
}

/// One refund in a write transaction on `conn`: every copy of the order comes off the hourly
/// totals, and its owner loses the album (a `revoke` in the feed) unless another unrefunded
/// order of theirs holds it.
pub(super) async fn refund_on(
    conn: &mut PoolConnection<Any>,
    backend: Backend,
    order_id: &str,
    now: i64,
    request_id: &str,
) -> Result<Refunded, LedgerError> {
    let mut tx = conn.begin_with(backend.begin_write()).await?;
    backend.take_write_turn(&mut tx).await?;
    let row = sqlx::query(
        "SELECT user_id, owner_id, gift_to, album, refunded_at, currency, price, quantity, \
         purchased_at FROM purchases WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| LedgerError::UnknownOrder(order_id.to_owned()))?;
    let user: String = row.try_get("user_id")?;
    let owner: String = row.try_get("owner_id")?;
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
            let quantity: i64 = row.try_get("quantity")?;
            sqlx::query(
                "UPDATE sales_hourly SET units = units - $1, revenue = revenue - $2 \
                 WHERE album = $3 AND currency = $4 AND hour = $5",
            )
            .bind(quantity)
            .bind(row.try_get::<i64, _>("price")? * quantity)
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
         WHERE owner_id = $1 AND album = $2 AND refunded_at IS NULL",
    )
    .bind(&owner)
    .bind(&album)
    .fetch_one(&mut *tx)
    .await?
    .try_get("n")?;
    if before.is_none() && others == 0 {
        changes::record_entitlement(
            &mut tx,
            backend,
            changes::Entitlement::Revoke,
            &owner,
            &album,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Refunded {
        order_id: order_id.to_owned(),
        user,
        owner,
        gift_to: row.try_get("gift_to")?,
        album,
        refunded_at,
        newly: before.is_none(),
        still_owned: others > 0,
    })
}
