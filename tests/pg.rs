//! A database of its own for one test, on the PostgreSQL server the suite runs with
//! (`.ci/run` wraps `cargo test` in `pg_virtualenv -v 15`, which sets `PGHOST`, `PGPORT`,
//! `PGUSER` and `PGPASSWORD`; `ENCORE_TEST_POSTGRES_URL` names another server).

#![allow(dead_code)]

use sqlx::{Executor, Row};

/// A database of its own on the suite's PostgreSQL server (`src/ledger/tests.rs` has the
/// unit tests' twin), dropped by [`PgDatabase::drop_database`].
pub struct PgDatabase {
    pub admin: sqlx::AnyPool,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let admin_url = std::env::var("ENCORE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            let var = |name: &str| {
                std::env::var(name).unwrap_or_else(|_| {
                    panic!(
                        "{name} is not set: this needs a PostgreSQL server; run it under \
                         `pg_virtualenv -v 15` (`bash .ci/run` does: `pg_virtualenv -v 15 cargo \
                         test`) or set ENCORE_TEST_POSTGRES_URL"
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
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .expect("connect to PostgreSQL");
        let name = format!("encore_test_{}", unique_suffix());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        PgDatabase { admin, name, url }
    }

    /// Whether new connections to the database are accepted (existing ones stay). Applies
    /// to superusers too, unlike a connection limit.
    pub async fn allow_connections(&self, allow: bool) {
        self.admin
            .execute(
                format!(
                    "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
                    self.name
                )
                .as_str(),
            )
            .await
            .expect("alter database");
    }

    /// Ends every connection that is listening for notifications; returns how many.
    pub async fn terminate_listeners(&self) -> i64 {
        self.count_activity("count(pg_terminate_backend(pid))", "query ILIKE 'LISTEN%'")
            .await
    }

    /// Ends every connection to the database but the administrator's.
    pub async fn terminate_all(&self) -> i64 {
        self.count_activity(
            "count(pg_terminate_backend(pid))",
            "pid <> pg_backend_pid()",
        )
        .await
    }

    /// Connections to the database that are listening.
    pub async fn listeners(&self) -> i64 {
        self.count_activity("count(*)", "query ILIKE 'LISTEN%'")
            .await
    }

    /// `SELECT <aggregate> FROM pg_stat_activity` over this database's connections that match
    /// `filter`.
    async fn count_activity(&self, aggregate: &str, filter: &str) -> i64 {
        sqlx::query(&format!(
            "SELECT {aggregate} AS n FROM pg_stat_activity WHERE datname = $1 AND {filter}"
        ))
        .bind(&self.name)
        .fetch_one(&self.admin)
        .await
        .expect("pg_stat_activity")
        .try_get("n")
        .expect("n")
    }

    /// A connection to this database.
    pub async fn connect(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the database, closing what is still connected to it.
    pub async fn drop_database(self) {
        self.admin
            .execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop database");
    }
}

/// A database name no other test of any process uses.
fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}
