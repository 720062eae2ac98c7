//! Devices and offline licenses: the X25519 public keys a user registers (at most a set number
//! at once), their removal, and the offline licenses issued to them. Every origin reads these
//! rows from the shared ledger when it issues or renews a license, so a removal holds on every
//! origin from its commit, with no change feed to wait for.

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Row};

use super::{Backend, Ledger, LedgerError};

/// Longest device name, characters.
pub const MAX_DEVICE_NAME: usize = 64;

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its id (`dev-` and 16 hex digits).
    pub id: String,
    /// Its owner.
    pub user: String,
    /// The name its owner gave it.
    pub name: String,
    /// Its X25519 public key, base64url.
    pub public_key: String,
    /// When it was registered, Unix seconds.
    pub created_at: i64,
    /// When it was removed (None: registered now).
    pub removed_at: Option<i64>,
}

/// How a registration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The new device.
    Added(Device),
    /// The user's device with this public key, registered before and not removed: a player
    /// that retries a registration it never saw answered gets the same device, not a second
    /// one taking another of its places.
    Existing(Device),
    /// The user already has `limit` devices: one must be removed first.
    Full {
        /// The limit.
        limit: u32,
    },
}

/// An offline license as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineRecord {
    /// Its id.
    pub id: String,
    /// The buyer.
    pub user: String,
    /// The album.
    pub album: String,
    /// The device.
    pub device_id: String,
    /// First issued, Unix seconds.
    pub issued_at: i64,
    /// Current expiry, Unix seconds.
    pub expires_at: i64,
}

/// Whether a user owns an album now, from the purchases (not from a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// An unrefunded purchase makes the user its owner.
    Owned,
    /// Every purchase that made the user its owner was refunded.
    Refunded,
    /// Never owned.
    Never,
}

/// A device name made canonical (trimmed), or why it is refused.
pub fn device_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_DEVICE_NAME {
        return Err(format!("must be 1 to {MAX_DEVICE_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("may not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// 64 random bits in hex after `prefix`: ids say nothing about when or by whom.
fn new_id(prefix: &str, bytes: usize) -> Result<String, LedgerError> {
    let mut raw = vec![0u8; bytes];
    crate::seal::key::fill_random(&mut raw)
        .map_err(|e| LedgerError::Corrupt(format!("no randomness for an id: {e}")))?;
    Ok(format!("{prefix}{}", hex::encode(raw)))
}

impl Ledger {
    /// Registers a device of `user`, unless `user` already has `limit` devices.
    pub async fn register_device(
        &self,
        user: &str,
        name: &str,
        public_key: &str,
        limit: u32,
        now: i64,
    ) -> Result<Registered, LedgerError> {
        let id = new_id("dev-", 8)?;
        let id = id.as_str();
        self.write_retrying(
            |mut conn| async move {
                let result = register_on(
                    &mut conn,
                    self.backend,
                    id,
                    user,
                    name,
                    public_key,
                    limit,
                    now,
                )
                .await;
                (conn, result)
            },
            |_| {},
        )
        .await
    }

    /// The devices `user` has registered now, oldest first.
    pub async fn devices(&self, user: &str) -> Result<Vec<Device>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, public_key, created_at, removed_at FROM devices \
             WHERE user_id = $1 AND removed_at IS NULL ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(device_of_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The device `id` if it is `user`'s, removed or not. Read from the write pool: a
    /// removal committed by any origin is seen by the next license.
    pub async fn device(&self, user: &str, id: &str) -> Result<Option<Device>, LedgerError> {
        let row = sqlx::query(
            "SELECT id, user_id, name, public_key, created_at, removed_at FROM devices \
             WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(device_of_row).transpose()?)
    }

    /// Removes `user`'s device `id`; false when there is no such registered device.
    pub async fn remove_device(&self, user: &str, id: &str, now: i64) -> Result<bool, LedgerError> {
        let done = sqlx::query(
            "UPDATE devices SET removed_at = $1 \
             WHERE id = $2 AND user_id = $3 AND removed_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(LedgerError::from_write)?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `user` owns `album` now, read from the purchases.
    pub async fn ownership(&self, user: &str, album: &str) -> Result<Ownership, LedgerError> {
        let rows =
            sqlx::query("SELECT refunded_at FROM purchases WHERE owner_id = $1 AND album = $2")
                .bind(user)
                .bind(album)
                .fetch_all(&self.pool)
                .await?;
        let mut seen = false;
        for row in &rows {
            let refunded: Option<i64> = row.try_get("refunded_at")?;
            if refunded.is_none() {
                return Ok(Ownership::Owned);
            }
            seen = true;
        }
        Ok(if seen {
            Ownership::Refunded
        } else {
            Ownership::Never
        })
    }

    /// Records a new offline license; returns its id.
    pub async fn record_offline_license(
        &self,
        user: &str,
        album: &str,
        device_id: &str,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<String, LedgerError> {
        let id = new_id("lic-", 16)?;
        sqlx::query(
            "INSERT INTO offline_licenses (id, user_id, album, device_id, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(user)
        .bind(album)
        .bind(device_id)
        .bind(issued_at)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(LedgerError::from_write)?;
        Ok(id)
    }

    /// The offline license `id`, if it is `user`'s.
    pub async fn offline_license(
        &self,
        user: &str,
        id: &str,
    ) -> Result<Option<OfflineRecord>, LedgerError> {
        let row = sqlx::query(
            "SELECT id, user_id, album, device_id, issued_at, expires_at FROM offline_licenses \
             WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OfflineRecord {
            id: row.try_get("id")?,
            user: row.try_get("user_id")?,
            album: row.try_get("album")?,
            device_id: row.try_get("device_id")?,
            issued_at: row.try_get("issued_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Moves license `id`'s expiry to `expires_at` (a renewal at `now`).
    pub async fn renew_offline_license(
        &self,
        id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query("UPDATE offline_licenses SET expires_at = $1, renewed_at = $2 WHERE id = $3")
            .bind(expires_at)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(LedgerError::from_write)?;
        Ok(())
    }
}

fn device_of_row(row: &sqlx::any::AnyRow) -> Result<Device, sqlx::Error> {
    Ok(Device {
        id: row.try_get("id")?,
        user: row.try_get("user_id")?,
        name: row.try_get("name")?,
        public_key: row.try_get("public_key")?,
        created_at: row.try_get("created_at")?,
        removed_at: row.try_get("removed_at")?,
    })
}

/// One registration in a write transaction: the count and the insert see the same devices
/// (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL a serializable conflict is retried), so two
/// registrations at once cannot both take the last place.
#[allow(clippy::too_many_arguments)]
async fn register_on(
    conn: &mut PoolConnection<Any>,
    backend: Backend,
    id: &str,
    user: &str,
    name: &str,
    public_key: &str,
    limit: u32,
    now: i64,
) -> Result<Registered, LedgerError> {
    let mut tx = conn.begin_with(backend.begin_write()).await?;
    let existing = sqlx::query(
        "SELECT id, user_id, name, public_key, created_at, removed_at FROM devices \
         WHERE user_id = $1 AND public_key = $2 AND removed_at IS NULL",
    )
    .bind(user)
    .bind(public_key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        return Ok(Registered::Existing(device_of_row(&row)?));
    }
    let count: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM devices WHERE user_id = $1 AND removed_at IS NULL")
            .bind(user)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
    if count >= i64::from(limit) {
        return Ok(Registered::Full { limit });
    }
    sqlx::query(
        "INSERT INTO devices (id, user_id, name, public_key, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(user)
    .bind(name)
    .bind(public_key)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Registered::Added(Device {
        id: id.to_owned(),
        user: user.to_owned(),
        name: name.to_owned(),
        public_key: public_key.to_owned(),
        created_at: now,
        removed_at: None,
    }))
}
