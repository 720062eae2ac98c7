//! A database of its own for one test, on the PostgreSQL server the suite runs with
//! (`.ci/run` wraps `cargo test` in `pg_virtualenv -v 15`, which sets `PGHOST`, `PGPORT`,
//! `PGUSER` and `PGPASSWORD`; `ENCORE_TEST_POSTGRES_URL` names another server).

#![allow(dead_code)]

use sqlx::Connection;

/// A fresh database, dropped by [`TestDatabase::drop_database`].
pub struct TestDatabase {
    /// `postgres://…/<name>`: what `[ledger] url` names.
    pub url: String,
    name: String,
    admin_url: String,
}

/// The URL of the server's `postgres` database, from the environment.
fn admin_url() -> String {
    if let Ok(url) = std::env::var("ENCORE_TEST_POSTGRES_URL") {
        return url;
    }
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the PostgreSQL tests need a server; run them as `.ci/run` \
                 does (`pg_virtualenv -v 15 cargo test`) or set ENCORE_TEST_POSTGRES_URL"
            )
        })
    };
    format!(
        "postgres://{}:{}@{}:{}/postgres",
        var("PGUSER"),
        var("PGPASSWORD"),
        var("PGHOST"),
        var("PGPORT")
    )
}

impl TestDatabase {
    /// Creates `encore_test_<random>` on the suite's server.
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).expect("random");
        let name = format!("encore_test_{}", hex::encode(suffix));
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.expect("close");
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .expect("a URL with a database name");
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        }
    }

    /// A connection to this database.
    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the database, closing what is still connected to it.
    pub async fn drop_database(self) {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the PostgreSQL server");
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .expect("drop database");
    }
}
