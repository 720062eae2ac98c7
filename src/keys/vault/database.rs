//! The key state in the database beside the ledger (`migrations/0005_key_state.sql`): named
//! blobs in `key_state` and a version in `key_state_version` that every change bumps. SQLite
//! or PostgreSQL through sqlx's `Any` driver, on a thread with a runtime of its own, so the
//! keyring's synchronous code (run from the command line, blocking threads or ingest) can call
//! it from anywhere.
//!
//! A change is one transaction: it first updates the version row, which on PostgreSQL holds
//! that row's lock until the commit (on SQLite, `BEGIN IMMEDIATE` holds the write lock), so
//! changes from any origin or `encore keys` run one at a time, each reading what the previous
//! one committed; then it writes every changed blob, bumps the version and (PostgreSQL)
//! `NOTIFY encore_changes, 'keys'`, and commits.

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::keys::error::KeyError;

/// The channel whose notifications wake other origins (`NOTIFY encore_changes, 'keys'`
/// below). The payload names what changed.
pub const CHANGES_CHANNEL: &str = "encore_changes";

/// One blob a transaction writes (`Some` body) or deletes (`None`).
pub(crate) struct Change {
    pub(crate) name: String,
    pub(crate) body: Option<String>,
}

type Rows = Vec<(String, String)>;

/// The database holding the shared key state. Cheap to clone.
#[derive(Clone)]
pub struct KeyDb {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    location: String,
}

impl std::fmt::Debug for KeyDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDb")
            .field("location", &self.inner.location)
            .finish()
    }
}

enum Job {
    Version(SyncSender<Result<i64, KeyError>>),
    Snapshot(SyncSender<Result<(i64, Rows), KeyError>>),
    Transact {
        opened: SyncSender<Result<(i64, Rows), KeyError>>,
        finish: tokio::sync::oneshot::Receiver<Vec<Change>>,
        done: SyncSender<Result<i64, KeyError>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// An open change: the snapshot read under the lock, until [`commit`](Self::commit) or drop
/// (which rolls it back).
pub(crate) struct Transaction {
    version: i64,
    rows: Rows,
    finish: tokio::sync::oneshot::Sender<Vec<Change>>,
    done: std::sync::mpsc::Receiver<Result<i64, KeyError>>,
    location: String,
}

impl Transaction {
    pub(crate) fn version(&self) -> i64 {
        self.version
    }

    pub(crate) fn take_rows(&mut self) -> Rows {
        std::mem::take(&mut self.rows)
    }

    /// Writes `changes` and bumps the version, in this transaction; returns the new version.
    pub(crate) fn commit(self, changes: Vec<Change>) -> Result<i64, KeyError> {
        let gone = |location: &str| KeyError::Database {
            location: location.to_owned(),
            reason: "the key database thread stopped".into(),
        };
        self.finish
            .send(changes)
            .map_err(|_| gone(&self.location))?;
        self.done.recv().map_err(|_| gone(&self.location))?
    }
}

impl KeyDb {
    /// Connects to `url` (`sqlite://…` or `postgres://…`, the ledger's) and migrates it.
    /// `location` names it in messages (no credentials).
    pub fn open(url: &str, location: &str) -> Result<KeyDb, KeyError> {
        let db_error = |reason: String| KeyError::Database {
            location: location.to_owned(),
            reason,
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(db_error(
                "only sqlite:// and postgres:// URLs are supported".into(),
            ));
        };
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().map_err(|e| db_error(format!("{e}")))?;
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready) = sync_channel::<Result<(), String>>(1);
        let name = location.to_owned();
        std::thread::Builder::new()
            .name("keys-db".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let pool = match connect(&options, backend).await {
                        Ok(pool) => pool,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some(job) = queue.recv().await {
                        let (pool, name) = (pool.clone(), name.clone());
                        tokio::spawn(run_job(job, pool, backend, name));
                    }
                });
            })
            .map_err(|e| db_error(format!("cannot start its thread: {e}")))?;
        ready
            .recv()
            .map_err(|_| db_error("its thread stopped".into()))?
            .map_err(db_error)?;
        Ok(KeyDb {
            inner: Arc::new(Inner {
                jobs,
                location: location.to_owned(),
            }),
        })
    }

    /// Where it is, for messages.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    fn ask<T>(&self, job: impl FnOnce(SyncSender<T>) -> Job) -> Result<T, KeyError> {
        let (tx, rx) = sync_channel(1);
        let gone = || KeyError::Database {
            location: self.inner.location.clone(),
            reason: "the key database thread stopped".into(),
        };
        self.inner.jobs.send(job(tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())
    }

    /// The version of the key state: one cheap SELECT, for the periodic check.
    pub fn version(&self) -> Result<i64, KeyError> {
        self.ask(Job::Version)?
    }

    /// Every blob and the version, read in one transaction.
    pub(crate) fn snapshot(&self) -> Result<(i64, Rows), KeyError> {
        self.ask(Job::Snapshot)?
    }

    /// Opens a change: takes the lock and reads the snapshot under it.
    pub(crate) fn begin(&self) -> Result<Transaction, KeyError> {
        let (finish_tx, finish) = tokio::sync::oneshot::channel();
        let (done_tx, done) = sync_channel(1);
        let (version, rows) = self.ask(|opened| Job::Transact {
            opened,
            finish,
            done: done_tx,
        })??;
        Ok(Transaction {
            version,
            rows,
            finish: finish_tx,
            done,
            location: self.inner.location.clone(),
        })
    }

    /// Every row as stored, for tests that check nothing secret is in the clear.
    pub fn raw_rows(&self) -> Result<Vec<(String, String)>, KeyError> {
        Ok(self.snapshot()?.1)
    }
}

async fn connect(options: &AnyConnectOptions, backend: Backend) -> Result<AnyPool, String> {
    let pool = AnyPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                }
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(|e| e.to_string())?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|e| format!("migrations: {e}"))?;
    Ok(pool)
}

async fn run_job(job: Job, pool: AnyPool, backend: Backend, location: String) {
    let db_error = |e: sqlx::Error| KeyError::Database {
        location: location.clone(),
        reason: e.to_string(),
    };
    match job {
        Job::Version(reply) => {
            let _ = reply.send(read_version(&pool).await.map_err(db_error));
        }
        Job::Snapshot(reply) => {
            let _ = reply.send(snapshot(&pool, backend).await.map_err(db_error));
        }
        Job::Transact {
            opened,
            finish,
            done,
        } => {
            let mut conn = match pool.acquire().await {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = opened.send(Err(db_error(e)));
                    return;
                }
            };
            let result = transact(&mut conn, backend, opened, &location, finish).await;
            let _ = done.send(result.map_err(db_error));
        }
    }
}

async fn read_version(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT version FROM key_state_version WHERE id = 1")
        .fetch_one(pool)
        .await?
        .try_get("version")
}

async fn read_rows(conn: &mut sqlx::AnyConnection) -> Result<(i64, Rows), sqlx::Error> {
    let version: i64 = sqlx::query("SELECT version FROM key_state_version WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?
        .try_get("version")?;
    let rows = sqlx::query("SELECT name, body FROM key_state ORDER BY name")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("body")?)))
        .collect::<Result<Rows, sqlx::Error>>()?;
    Ok((version, rows))
}

async fn snapshot(pool: &AnyPool, backend: Backend) -> Result<(i64, Rows), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let begin = match backend {
        // One snapshot for both reads.
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        Backend::Sqlite => "BEGIN",
    };
    let mut tx = conn.begin_with(begin).await?;
    let out = read_rows(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

async fn transact(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    opened: SyncSender<Result<(i64, Rows), KeyError>>,
    location: &str,
    finish: tokio::sync::oneshot::Receiver<Vec<Change>>,
) -> Result<i64, sqlx::Error> {
    let begin = match backend {
        Backend::Postgres => "BEGIN",
        Backend::Sqlite => "BEGIN IMMEDIATE",
    };
    let db_error = |e: sqlx::Error| KeyError::Database {
        location: location.to_owned(),
        reason: e.to_string(),
    };
    let mut tx = match conn.begin_with(begin).await {
        Ok(tx) => tx,
        Err(e) => {
            let _ = opened.send(Err(db_error(e)));
            return Ok(-1);
        }
    };
    // The lock: the version row, held until commit or rollback. Read committed (PostgreSQL's
    // default), so the reads after it see everything committed before it was granted.
    let locked = async {
        sqlx::query("UPDATE key_state_version SET version = version WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        read_rows(&mut tx).await
    }
    .await;
    match locked {
        Ok(snapshot) => {
            let _ = opened.send(Ok(snapshot));
        }
        Err(e) => {
            let _ = opened.send(Err(db_error(e)));
            return Ok(-1);
        }
    }
    let Ok(changes) = finish.await else {
        // The change failed or was dropped: roll back (dropping `tx` does).
        return Ok(-1);
    };
    sqlx::query("UPDATE key_state_version SET version = version + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    let version: i64 = sqlx::query("SELECT version FROM key_state_version WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?
        .try_get("version")?;
    for change in changes {
        match change.body {
            Some(body) => {
                sqlx::query(
                    "INSERT INTO key_state (name, body, updated_seq) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET body = excluded.body, \
                     updated_seq = excluded.updated_seq",
                )
                .bind(change.name)
                .bind(body)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM key_state WHERE name = $1")
                    .bind(change.name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    if backend == Backend::Postgres {
        // Delivered at commit, to every origin listening (the lead wires the listener).
        sqlx::query("NOTIFY encore_changes, 'keys'")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(version)
}
