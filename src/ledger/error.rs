//! Why a ledger operation failed, and what a database error says about the ledger.

use sqlx::error::DatabaseError;

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
    /// Another club of the artist has this name (compared without case).
    #[error("the artist already has a club named {0:?}")]
    ClubNameTaken(String),
    /// No club has this id.
    #[error("no club {0:?}")]
    UnknownClub(String),
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
    pub(super) fn from_write(e: sqlx::Error) -> LedgerError {
        match Failure::of(&e) {
            Failure::Conflict | Failure::ConnectionLost | Failure::Outage => {
                LedgerError::Unavailable(e.to_string())
            }
            Failure::Fault => LedgerError::Query(e),
        }
    }

    /// A pool that could not give a connection: the ledger is unreachable for now (503,
    /// retried by the client), whatever the database said: a refused or lost connection, a
    /// pool timeout, and also a database that does not accept connections (55000) or a role
    /// or database gone, which as query errors would be faults (500). The pool already pinged
    /// and replaced its connections before giving up, so no retry here.
    pub(super) fn from_acquire(e: sqlx::Error) -> LedgerError {
        LedgerError::Unavailable(e.to_string())
    }

    /// Whether another attempt on a fresh connection may succeed at once.
    pub(super) fn retryable(&self) -> bool {
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
pub(super) enum Failure {
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
    pub(super) fn of(e: &sqlx::Error) -> Failure {
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
