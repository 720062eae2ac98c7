//! The change feed that keeps several origins on one database in step: entitlement changes
//! (a refund that takes an album away, a purchase that gives it back) numbered in commit
//! order, and on PostgreSQL the wake-up (`NOTIFY encore_changes, '<kind>'`, sent by the
//! transaction that records a change, delivered when it commits) that tells every origin to
//! read what came after the last change it applied.
//!
//! Notifications are only a wake-up: one lost while a listener reconnects costs nothing but
//! time, because origins also read the feed on a timer (`app::changes`).

use sqlx::{Any, Connection, Row};

use super::{Backend, Ledger, LedgerError, Revocation, discard_if_failed};

/// The PostgreSQL channel every kind of change is announced on; the payload names the kind.
pub const CHANNEL: &str = "encore_changes";

/// Most feed rows read in one query (a catch-up reads pages until one comes back short).
pub const PAGE: i64 = 1000;

/// A kind of shared state that changes under every origin: each has its own catch-up, woken
/// by a notification whose payload is [`ChangeKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Refunds and purchases that restore a refunded album ([`EntitlementChange`]).
    Entitlements,
    /// The key state shared in the database (`[keys] store = "database"`): announced by every
    /// change to it, caught up by comparing its version.
    Keys,
}

impl ChangeKind {
    /// Every kind, each with its catch-up.
    pub const ALL: [ChangeKind; 2] = [ChangeKind::Entitlements, ChangeKind::Keys];

    /// The notification payload. Stored nowhere, but every origin of a deployment must agree.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Entitlements => "entitlements",
            ChangeKind::Keys => "keys",
        }
    }

    /// The kind a payload names; `None` for one this build does not know (sent by a newer
    /// origin during an upgrade: its timer catch-up covers what this one understands).
    pub fn parse(payload: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == payload)
    }
}

/// What happened to a (user, album) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entitlement {
    /// A refund left the user no unrefunded purchase of the album: play tokens issued at or
    /// before `at` stop opening it.
    Revoke,
    /// A purchase after such a refund: the user owns the album again.
    Restore,
}

impl Entitlement {
    /// As stored in `entitlement_changes.change`. DO NOT CHANGE: rows hold these.
    fn as_str(self) -> &'static str {
        match self {
            Entitlement::Revoke => "revoke",
            Entitlement::Restore => "restore",
        }
    }
}

/// One row of the entitlement feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementChange {
    /// Its number: 1, 2, 3, ... in commit order.
    pub seq: i64,
    /// Revoke or restore.
    pub change: Entitlement,
    /// The user.
    pub user: String,
    /// The album.
    pub album: String,
    /// When, Unix seconds (for a revoke: the refund time the revocation list keys on).
    pub at: i64,
}

/// What an origin reads from the entitlement feed after its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedRead {
    /// The changes after the cursor, in order, at most [`PAGE`] of them (none: caught up).
    Changes(Vec<EntitlementChange>),
    /// Changes after the cursor were pruned before this origin read them (it was cut off for
    /// longer than the retention): it must rebuild its list from
    /// [`Ledger::revocations_in_force`] instead.
    Pruned,
}

/// Appends a change inside a write transaction and, on PostgreSQL, announces it (delivered
/// when the transaction commits, never if it aborts). The number is the feed's last plus
/// one: writers take turns ([`Backend::take_write_turn`]), so numbers are committed in order
/// and a reader never sees one before every smaller one.
pub(super) async fn record_entitlement(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    change: Entitlement,
    user: &str,
    album: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    let last: Option<i64> = sqlx::query("SELECT MAX(seq) AS n FROM entitlement_changes")
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    sqlx::query(
        "INSERT INTO entitlement_changes (seq, change, user_id, album, at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(last.unwrap_or(0) + 1)
    .bind(change.as_str())
    .bind(user)
    .bind(album)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    announce(tx, backend, ChangeKind::Entitlements).await
}

/// `NOTIFY` every origin's listener that `kind` changed, when this transaction commits
/// (PostgreSQL folds repeats within one transaction into one). Nothing on SQLite, whose
/// origins share one machine and read the feed on their timer.
pub async fn announce(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    kind: ChangeKind,
) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => Ok(()),
        Backend::Postgres => {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(kind.as_str())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    }
}

/// What woke a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A change of this kind was committed somewhere.
    Changed(ChangeKind),
    /// The connection was lost and is being replaced: notifications sent meanwhile are gone,
    /// so every kind should catch up.
    MaybeMissed,
}

/// A PostgreSQL connection listening on [`CHANNEL`]; it reconnects by itself (sqlx's
/// `PgListener`), and says so ([`Wake::MaybeMissed`]).
pub struct ChangeListener {
    inner: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeListener").finish_non_exhaustive()
    }
}

impl ChangeListener {
    /// Waits for the next notification or lost connection. An error means a reconnection
    /// failed (the database is unreachable); the next call tries again.
    pub async fn next(&mut self) -> Result<Wake, LedgerError> {
        loop {
            match self.inner.try_recv().await? {
                Some(n) => {
                    if let Some(kind) = ChangeKind::parse(n.payload()) {
                        return Ok(Wake::Changed(kind));
                    }
                }
                None => return Ok(Wake::MaybeMissed),
            }
        }
    }
}

impl Ledger {
    /// A listener for changes announced by any origin, or `None` on SQLite (no
    /// notifications: origins sharing a file read the feed on their timer).
    pub async fn listen(&self) -> Result<Option<ChangeListener>, LedgerError> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                let mut inner = sqlx::postgres::PgListener::connect(&self.url)
                    .await
                    .map_err(|source| LedgerError::Open {
                        location: self.location.clone(),
                        source,
                    })?;
                inner
                    .listen(CHANNEL)
                    .await
                    .map_err(|source| LedgerError::Open {
                        location: self.location.clone(),
                        source,
                    })?;
                Ok(Some(ChangeListener { inner }))
            }
        }
    }

    /// The number of the last entitlement change (0 when none): read it before rebuilding
    /// the revocation list, then apply what comes after.
    pub async fn last_entitlement_change(&self) -> Result<i64, LedgerError> {
        let last: Option<i64> = sqlx::query("SELECT MAX(seq) AS n FROM entitlement_changes")
            .fetch_one(&self.reads)
            .await?
            .try_get("n")?;
        Ok(last.unwrap_or(0))
    }

    /// Entitlement changes numbered after `seq`, in order, at most [`PAGE`] of them.
    pub async fn entitlement_changes_since(
        &self,
        seq: i64,
    ) -> Result<Vec<EntitlementChange>, LedgerError> {
        let rows = sqlx::query(
            "SELECT seq, change, user_id, album, at FROM entitlement_changes \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(PAGE)
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|row| {
                let change: String = row.try_get("change")?;
                let change = match change.as_str() {
                    "revoke" => Entitlement::Revoke,
                    "restore" => Entitlement::Restore,
                    other => {
                        return Err(LedgerError::Corrupt(format!(
                            "entitlement change {other:?} is neither revoke nor restore"
                        )));
                    }
                };
                Ok(EntitlementChange {
                    seq: row.try_get("seq")?,
                    change,
                    user: row.try_get("user_id")?,
                    album: row.try_get("album")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    /// What came after `seq` in the entitlement feed: the next changes, or
    /// [`FeedRead::Pruned`] when some of them were pruned unread. Numbers are dense (each is
    /// the last plus one, given out by writers taking turns, and pruning keeps the last), so
    /// a first number other than `seq + 1` means rows this origin never saw are gone.
    pub async fn entitlement_feed(&self, seq: i64) -> Result<FeedRead, LedgerError> {
        let page = self.entitlement_changes_since(seq).await?;
        if page.first().is_none_or(|c| c.seq == seq + 1) {
            Ok(FeedRead::Changes(page))
        } else {
            Ok(FeedRead::Pruned)
        }
    }

    /// What a rebuild of the revocation list starts from: the feed's last number, then (read
    /// after it) the refunds since `since` (Unix seconds) after which the user no longer owns
    /// the album. A change committed between the two reads is read again from the feed after
    /// the number, never lost.
    pub async fn revocations_in_force(
        &self,
        since: i64,
    ) -> Result<(i64, Vec<Revocation>), LedgerError> {
        let last = self.last_entitlement_change().await?;
        Ok((last, self.revocations_since(since).await?))
    }

    /// Forgets every user's cached library (changes from other origins may have been missed).
    pub fn forget_libraries(&self) {
        self.libraries.committed_anyone();
    }

    /// Deletes the entitlement changes recorded before `before` (Unix seconds) but the last
    /// one, whose number the next change continues from (numbers must never start again:
    /// origins would take new changes for ones they applied). Returns how many went. An
    /// origin that had not read them yet reloads ([`FeedRead::Reload`]). Takes the writers'
    /// turn, so it never aborts a purchase's or refund's transaction.
    pub async fn prune_entitlement_changes(&self, before: i64) -> Result<u64, LedgerError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(LedgerError::from_acquire)?;
        let result = async {
            let mut tx = conn.begin_with(self.backend.begin_write()).await?;
            self.backend.take_write_turn(&mut tx).await?;
            let done = sqlx::query(
                "DELETE FROM entitlement_changes WHERE at < $1 \
                 AND seq < (SELECT MAX(seq) FROM entitlement_changes)",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(done.rows_affected())
        }
        .await
        .map_err(LedgerError::from_write);
        discard_if_failed(&mut conn, &result);
        result
    }

    /// Forgets the user's cached library (another origin changed it).
    pub fn forget_library(&self, user: &str) {
        self.libraries.committed([user]);
    }
}
