//! The ledger on PostgreSQL alone: what only a server with many connections and
//! serializable transactions can do to it (conflicts, deadlocks, servers racing, connections
//! killed), each on a database of its own.

use super::*;

/// A serialization failure (40001) is retried: a transaction outside encore holds a row
/// of `sales_hourly` that the next purchase must update; the purchase waits for it, and
/// when it commits, the purchase's serializable transaction is aborted by PostgreSQL and
/// tried again, and the buyer gets a receipt, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_serialization_failures_are_retried() {
    let db = PgDatabase::create().await;
    let ledger = db.open().await;
    ledger
        .record_purchase(&purchase("o1", "u1", "a", 1000), NOW, "r")
        .await
        .unwrap();
    let mut blocker = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    blocker
        .execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        .await
        .unwrap();
    blocker
        .execute("UPDATE sales_hourly SET units = units WHERE album = 'a'")
        .await
        .unwrap();
    let buying = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            ledger
                .record_purchase(&purchase("o2", "u2", "a", 1000), NOW, "r")
                .await
        })
    };
    db.until_waiting_on_locks(1, "the purchase never waited for the held row")
        .await;
    assert_eq!(ledger.retried_writes(), 0);
    blocker.execute("COMMIT").await.unwrap();
    let answer = buying.await.unwrap();
    assert!(
        matches!(answer, Ok(Recorded::Created(_))),
        "not retried: {answer:?}"
    );
    assert!(ledger.retried_writes() >= 1, "PostgreSQL aborted nothing");
    let sales = ledger.sales(None).await.unwrap();
    assert_eq!(sales[0].units, 2);
    blocker.close().await.unwrap();
    ledger.close().await;
    db.drop_database().await;
}

/// A deadlock (40P01) is retried as a serialization failure is: a transaction outside
/// encore holds the row of `sales_hourly` the next purchase must update, the purchase (which
/// holds the writers' turn, a lock on `purchases`) waits for it, and then the outsider asks
/// for the writers' turn. PostgreSQL finds the circle after `deadlock_timeout` (1 s) in the
/// purchase's connection (the outsider's is set to wait longer, so the victim is known),
/// aborts it with 40P01, the outsider gets its lock and commits, and the purchase, tried
/// again, gets a receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_deadlocks_are_retried() {
    let db = PgDatabase::create().await;
    let ledger = db.open().await;
    ledger
        .record_purchase(&purchase("o1", "u1", "a", 1000), NOW, "r")
        .await
        .unwrap();
    let mut outsider = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    outsider.execute("BEGIN").await.unwrap();
    // A superuser's setting (pg_virtualenv's user is one): the outsider never checks for
    // the deadlock first, so the purchase is the one PostgreSQL aborts.
    outsider
        .execute("SET LOCAL deadlock_timeout = '60s'")
        .await
        .expect("SET deadlock_timeout needs a superuser: run under pg_virtualenv");
    outsider
        .execute("UPDATE sales_hourly SET units = units WHERE album = 'a'")
        .await
        .unwrap();
    let buying = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            ledger
                .record_purchase(&purchase("o2", "u2", "a", 1000), NOW, "r")
                .await
        })
    };
    db.until_waiting_on_locks(1, "the purchase never waited for the held row")
        .await;
    assert_eq!(ledger.retried_writes(), 0);
    // Returns once PostgreSQL has aborted the purchase's transaction.
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        outsider.execute("LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE"),
    )
    .await
    .expect("PostgreSQL broke no deadlock")
    .unwrap();
    outsider.execute("COMMIT").await.unwrap();
    let answer = buying.await.unwrap();
    assert!(
        matches!(answer, Ok(Recorded::Created(_))),
        "not retried: {answer:?}"
    );
    assert!(ledger.retried_writes() >= 1, "nothing was retried");
    // The abort was a deadlock's (the statistics reach the view within a few seconds).
    let counted = async {
        loop {
            let deadlocks: i64 =
                sqlx::query("SELECT deadlocks AS n FROM pg_stat_database WHERE datname = $1")
                    .bind(&db.name)
                    .fetch_one(&db.admin)
                    .await
                    .unwrap()
                    .try_get("n")
                    .unwrap();
            if deadlocks > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), counted)
        .await
        .expect("PostgreSQL counted no deadlock");
    assert_eq!(ledger.sales(None).await.unwrap()[0].units, 2);
    outsider.close().await.unwrap();
    ledger.close().await;
    db.drop_database().await;
}

/// Two servers on one PostgreSQL database selling the same album at once: every purchase
/// is recorded with a buyer number of its own. (Without their writers taking turns, their
/// serializable transactions abort each other, 40001, faster than retries land them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_servers_selling_the_same_album_all_land() {
    // Per server, buyers purchasing one after another: each writer commits small batches
    // back to back for the whole test, so the two servers' transactions overlap.
    const BUYERS: usize = 3;
    const EACH: usize = 40;
    let db = PgDatabase::create().await;
    let servers = [db.open().await, db.open().await];
    let mut tasks = Vec::new();
    for (s, ledger) in servers.iter().enumerate() {
        for b in 0..BUYERS {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let mut numbers = Vec::new();
                for i in 0..EACH {
                    let order = format!("s{s}-b{b}-o{i}");
                    let p = purchase(&order, &format!("u{s}-{b}"), "a", 1500);
                    match ledger.record_purchase(&p, NOW, "r").await {
                        Ok(Recorded::Created(receipt)) => {
                            let receipt: serde_json::Value =
                                serde_json::from_str(&receipt).unwrap();
                            numbers.push(receipt["buyer_number"].as_i64().unwrap());
                        }
                        other => panic!("{order} was not recorded: {other:?}"),
                    }
                }
                numbers
            }));
        }
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.extend(t.await.unwrap());
    }
    numbers.sort_unstable();
    let expected: Vec<i64> = (1..=i64::try_from(2 * BUYERS * EACH).unwrap()).collect();
    assert_eq!(numbers, expected, "buyer numbers 1..=N, each once");
    for ledger in servers {
        ledger.close().await;
    }
    db.drop_database().await;
}

/// PostgreSQL connections killed under a stream of purchases: each purchase is recorded
/// or answered `Unavailable` (never a hang, never another error), every recorded one is
/// in the ledger, and once the connections stop dying purchases, refunds and reads work
/// again without reopening the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lost_connections_are_replaced_without_a_restart() {
    let db = PgDatabase::create().await;
    let ledger = db.open().await;
    let buyers: Vec<_> = (0..4)
        .map(|b| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut recorded = Vec::new();
                let mut unavailable = 0;
                for i in 0..40 {
                    let order = format!("b{b}-o{i}");
                    let p = purchase(&order, &format!("u{b}"), "a", 1500);
                    let answer = tokio::time::timeout(
                        std::time::Duration::from_secs(30),
                        ledger.record_purchase(&p, NOW, "r"),
                    )
                    .await
                    .expect("a purchase hung while connections died");
                    match answer {
                        Ok(_) => recorded.push(order),
                        Err(LedgerError::Unavailable(_)) => unavailable += 1,
                        Err(other) => panic!("not a clean outage: {other:?}"),
                    }
                }
                (recorded, unavailable)
            })
        })
        .collect();
    let mut killed = 0;
    while !buyers.iter().all(|b| b.is_finished()) {
        killed += db.terminate_connections().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(killed > 0, "no connection was ended");
    let mut recorded = Vec::new();
    for b in buyers {
        let (r, _unavailable) = b.await.unwrap();
        recorded.extend(r);
    }
    for order in &recorded {
        assert_eq!(ledger.count_orders(order).await.unwrap(), 1, "{order} lost");
    }
    db.terminate_connections().await;
    let after = purchase("after", "u-after", "a", 1500);
    assert!(matches!(
        ledger.record_purchase(&after, NOW, "r").await.unwrap(),
        Recorded::Created(_)
    ));
    db.terminate_connections().await;
    assert!(ledger.refund("after", NOW + 1, "rr").await.unwrap().newly);
    db.terminate_connections().await;
    assert!(ledger.library("u-after").await.unwrap().is_empty());
    assert!(ledger.can_commit(NOW + 2).await);
    ledger.close().await;
    db.drop_database().await;
}
