//! The ledger's tests, on SQLite and on PostgreSQL.

mod devices;
mod migration;
mod postgres;

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
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(LEDGER_FILE).display()
    );
    hourly_totals(&url).await;
}

#[tokio::test]
async fn hourly_totals_match_counting_purchases_on_postgres() {
    let db = PgDatabase::create().await;
    hourly_totals(&db.url).await;
    db.drop_database().await;
}

async fn hourly_totals(url: &str) {
    // Purchases recorded before the totals existed: only the first migration applied.
    {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
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
    let ledger = Ledger::open_url(url, "test".into()).await.unwrap();
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
    ledger.close().await;
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

    /// Waits until `n` connections to this database wait for a lock (at most 30 s, a bound
    /// for a hung test).
    async fn until_waiting_on_locks(&self, n: i64, what: &str) {
        let waiting = async {
            loop {
                let waiting: i64 = sqlx::query(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                )
                .bind(&self.name)
                .fetch_one(&self.admin)
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
                if waiting >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
            .await
            .expect(what);
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
    for check in ["idempotency", "concurrency", "refunds", "pruning", "feed"] {
        let db = PgDatabase::create().await;
        let ledger = db.open().await;
        match check {
            "idempotency" => idempotency(&ledger).await,
            "concurrency" => concurrency(&ledger).await,
            "refunds" => refunds(&ledger).await,
            "pruning" => feed_pruning(&ledger).await,
            _ => {
                let other = db.open().await;
                feed(&ledger, &other).await;
                other.close().await;
            }
        }
        ledger.close().await;
        db.drop_database().await;
    }
}

/// Two servers on one SQLite file: the feed that one writes, the other reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_numbers_revocations_and_restores_in_commit_order() {
    let (dir, ledger) = ledger().await;
    let other = Ledger::open_sqlite(&dir.path().join("a dir?#%").join(LEDGER_FILE))
        .await
        .unwrap();
    feed(&ledger, &other).await;
}

/// The entitlement feed as two servers `a` and `b` on one database see it: a refund that
/// leaves the user without the album is a revoke, a purchase after it a restore, nothing
/// else is a change; numbers are 1..N in commit order, each once, whichever server wrote.
async fn feed(a: &Ledger, b: &Ledger) {
    use changes::Entitlement::{Restore, Revoke};
    assert_eq!(b.last_entitlement_change().await.unwrap(), 0);
    for (order, user) in [("o1", "u1"), ("o2", "u2"), ("o3", "u2")] {
        a.record_purchase(&purchase(order, user, "a", 1000), NOW, "r")
            .await
            .unwrap();
    }
    assert!(
        b.entitlement_changes_since(0).await.unwrap().is_empty(),
        "first purchases restore nothing"
    );
    assert!(!a.refund("o1", NOW + 10, "rr").await.unwrap().still_owned);
    a.refund("o1", NOW + 20, "rr").await.unwrap(); // a replay: no change
    assert!(a.refund("o2", NOW + 10, "rr").await.unwrap().still_owned);
    b.record_purchase(&purchase("o4", "u1", "a", 1000), NOW + 30, "r")
        .await
        .unwrap();
    b.record_purchase(&purchase("o5", "u1", "a", 1000), NOW + 40, "r")
        .await
        .unwrap(); // already owned again: no change
    a.refund("o4", NOW + 45, "rr").await.unwrap(); // o5 still stands: no change
    b.refund("o5", NOW + 50, "rr").await.unwrap();
    let seen = |changes: Vec<EntitlementChange>| -> Vec<(i64, Entitlement, String, i64)> {
        changes
            .into_iter()
            .map(|c| {
                assert_eq!(c.album, "a");
                (c.seq, c.change, c.user, c.at)
            })
            .collect()
    };
    let u1 = || "u1".to_owned();
    assert_eq!(
        seen(a.entitlement_changes_since(0).await.unwrap()),
        [
            (1, Revoke, u1(), NOW + 10),
            (2, Restore, u1(), NOW + 30),
            (3, Revoke, u1(), NOW + 50)
        ]
    );
    assert_eq!(
        seen(b.entitlement_changes_since(2).await.unwrap()),
        [(3, Revoke, u1(), NOW + 50)]
    );
    assert!(b.entitlement_changes_since(3).await.unwrap().is_empty());
    assert_eq!(a.last_entitlement_change().await.unwrap(), 3);

    // Refunds through both servers at once: one number each, no gap, no repeat.
    const USERS: usize = 24;
    for i in 0..USERS {
        a.record_purchase(
            &purchase(&format!("c{i}"), &format!("c{i}"), "b", 500),
            NOW,
            "r",
        )
        .await
        .unwrap();
    }
    let tasks: Vec<_> = (0..USERS)
        .map(|i| {
            let server = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { server.refund(&format!("c{i}"), NOW + 60, "rr").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let changes = b.entitlement_changes_since(3).await.unwrap();
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    let expected: Vec<i64> = (4..4 + i64::try_from(USERS).unwrap()).collect();
    assert_eq!(seqs, expected);
    let mut users: Vec<&str> = changes.iter().map(|c| c.user.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(users.len(), USERS, "every refund is in the feed once");
}

#[tokio::test]
async fn a_pruned_feed_sends_an_origin_behind_it_to_the_revocations_in_force() {
    let (_dir, ledger) = ledger().await;
    feed_pruning(&ledger).await;
}

/// The feed pruned under an origin that has not read it: rows older than the retention go
/// but the last (numbers continue from it); an origin whose cursor is before the oldest
/// kept row is told so ([`FeedRead::Pruned`]) instead of being handed the rows after the
/// gap, and the revocations in force hold the refund it never read, not the one undone
/// by a purchase since.
async fn feed_pruning(ledger: &Ledger) {
    use changes::Entitlement::{Restore, Revoke};
    for (order, user, album) in [("o1", "u1", "a"), ("o2", "u2", "a"), ("o3", "u3", "b")] {
        ledger
            .record_purchase(&purchase(order, user, album, 1000), NOW, "r")
            .await
            .unwrap();
    }
    ledger.refund("o1", NOW + 10, "rr").await.unwrap(); // 1: revoke u1/a
    ledger.refund("o2", NOW + 20, "rr").await.unwrap(); // 2: revoke u2/a
    ledger
        .record_purchase(&purchase("o4", "u1", "a", 1000), NOW + 30, "r")
        .await
        .unwrap(); // 3: restore u1/a
    ledger.refund("o3", NOW + 40, "rr").await.unwrap(); // 4: revoke u3/b
    assert_eq!(ledger.last_entitlement_change().await.unwrap(), 4);
    assert_eq!(ledger.prune_entitlement_changes(NOW).await.unwrap(), 0);
    assert!(matches!(
        ledger.entitlement_feed(0).await.unwrap(),
        FeedRead::Changes(page) if page.len() == 4
    ));

    assert_eq!(ledger.prune_entitlement_changes(NOW + 35).await.unwrap(), 3);
    for behind in [0, 1, 2] {
        assert_eq!(
            ledger.entitlement_feed(behind).await.unwrap(),
            FeedRead::Pruned,
            "an origin at {behind} missed changes"
        );
    }
    let FeedRead::Changes(page) = ledger.entitlement_feed(3).await.unwrap() else {
        panic!("an origin at 3 missed nothing");
    };
    assert_eq!(
        page.iter()
            .map(|c| (c.seq, c.change, c.user.as_str()))
            .collect::<Vec<_>>(),
        [(4, Revoke, "u3")]
    );
    assert_eq!(
        ledger.entitlement_feed(4).await.unwrap(),
        FeedRead::Changes(Vec::new())
    );
    let (last, mut in_force) = ledger.revocations_in_force(NOW - 1).await.unwrap();
    assert_eq!(last, 4);
    in_force.sort_by(|x, y| x.user.cmp(&y.user));
    let in_force: Vec<(&str, &str, i64)> = in_force
        .iter()
        .map(|r| (r.user.as_str(), r.album.as_str(), r.at))
        .collect();
    assert_eq!(
        in_force,
        [("u2", "a", NOW + 20), ("u3", "b", NOW + 40)],
        "the refund the origin never read is in force; the one bought back is not"
    );

    // Everything is older than the retention: the last row stays, and the next change
    // continues its numbering.
    assert_eq!(
        ledger.prune_entitlement_changes(NOW + 1000).await.unwrap(),
        0
    );
    assert_eq!(ledger.last_entitlement_change().await.unwrap(), 4);
    ledger
        .record_purchase(&purchase("o5", "u2", "a", 1000), NOW + 50, "r")
        .await
        .unwrap(); // 5: restore u2/a
    assert_eq!(
        ledger.prune_entitlement_changes(NOW + 1000).await.unwrap(),
        1
    );
    let FeedRead::Changes(page) = ledger.entitlement_feed(4).await.unwrap() else {
        panic!("an origin at 4 missed nothing");
    };
    assert_eq!(
        page.iter()
            .map(|c| (c.seq, c.change, c.user.as_str()))
            .collect::<Vec<_>>(),
        [(5, Restore, "u2")]
    );
    assert_eq!(ledger.entitlement_feed(3).await.unwrap(), FeedRead::Pruned);
}

/// Every pooled connection (a thread and a page cache each on SQLite) is opened at start and
/// kept, so the ledger's memory is fixed when the server starts, not grown by whichever burst
/// of reads first needs a fifth connection.
#[tokio::test]
async fn pools_open_every_connection_at_start_and_keep_them() {
    let (_dir, ledger) = ledger().await;
    pools(&ledger).await;
}

#[tokio::test]
async fn pools_open_every_connection_at_start_and_keep_them_on_postgres() {
    let db = PgDatabase::create().await;
    let ledger = db.open().await;
    pools(&ledger).await;
    ledger.close().await;
    db.drop_database().await;
}

async fn pools(ledger: &Ledger) {
    let full = async {
        while ledger.pool.size() < POOL_CONNECTIONS || ledger.reads.size() < POOL_CONNECTIONS {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), full)
        .await
        .expect("the pools did not open every connection at start");
    for pool in [&ledger.pool, &ledger.reads] {
        assert_eq!(
            pool.options().get_idle_timeout(),
            None,
            "idle connections close"
        );
        assert_eq!(
            pool.options().get_max_lifetime(),
            None,
            "connections are recycled"
        );
    }
    let p = purchase("o1", "u1", "a", 1500);
    ledger.record_purchase(&p, NOW, "r").await.unwrap();
    assert_eq!(ledger.library("u1").await.unwrap().len(), 1);
    assert_eq!(ledger.pool.size(), POOL_CONNECTIONS);
    assert_eq!(ledger.reads.size(), POOL_CONNECTIONS);
}

/// The WAL is checkpointed beside the writer, not by the commit that crosses SQLite's
/// threshold (a stall of every purchase in flight): committed purchases reach the database
/// file itself while the WAL is far below that threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_beside_the_writer() {
    let (dir, ledger) = ledger().await;
    let buys = (0..300).map(|i| {
        let ledger = ledger.clone();
        async move {
            let p = purchase(&format!("o{i}"), &format!("u{i}"), "a", 1500);
            ledger.record_purchase(&p, NOW, "r").await.unwrap();
        }
    });
    futures_util::future::join_all(buys).await;
    let file = dir.path().join("a dir?#%").join(LEDGER_FILE);
    let wal_pages = std::fs::metadata(file.with_extension("sqlite-wal"))
        .unwrap()
        .len()
        / 4096;
    assert!(
        wal_pages < u64::from(super::writer::WAL_AUTOCHECKPOINT_PAGES),
        "the WAL ({wal_pages} pages) reached the commit's own checkpoint"
    );
    // The database file alone, as a copy with no WAL beside it, holds what was checkpointed.
    let copy = tempfile::tempdir().unwrap();
    let checkpointed = async {
        loop {
            std::fs::copy(&file, copy.path().join("c.sqlite")).unwrap();
            let _ = std::fs::remove_file(copy.path().join("c.sqlite-wal"));
            let url = format!("sqlite://{}/c.sqlite", copy.path().display());
            if let Ok(pool) = sqlx::AnyPool::connect(&url).await {
                let n: Result<i64, _> = sqlx::query("SELECT COUNT(*) AS n FROM purchases")
                    .fetch_one(&pool)
                    .await
                    .and_then(|row| row.try_get("n"));
                pool.close().await;
                if n.is_ok_and(|n| n == 300) {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), checkpointed)
        .await
        .expect("purchases never reached the database file: the WAL is not checkpointed");
}
