//! Migration 0006 from a ledger holding data, on SQLite and on PostgreSQL.

use super::*;

/// Migration 0006 (copies, gifts, clubs) applied to a ledger at 0005 holding purchases and a
/// refund: the old orders are one copy each, owned by their buyers, still refundable and
/// counted; new orders with copies and gifts go in beside them.
#[tokio::test]
async fn migrates_copies_and_gifts_from_0005_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(LEDGER_FILE).display()
    );
    from_0005(&url).await;
}

#[tokio::test]
async fn migrates_copies_and_gifts_from_0005_with_data_on_postgres() {
    let db = PgDatabase::create().await;
    from_0005(&db.url).await;
    db.drop_database().await;
}

/// A pool on the ledger at `url` with the migrations up to `version` applied, as a server of
/// that schema left it.
pub(super) async fn migrated_up_to(url: &str, version: i64) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    pool
}

async fn from_0005(url: &str) {
    {
        let pool = migrated_up_to(url, 5).await;
        for (i, (user, album, refunded)) in
            [("u1", "a", None), ("u2", "a", Some(NOW)), ("u1", "b", None)]
                .into_iter()
                .enumerate()
        {
            let i = i64::try_from(i).unwrap();
            sqlx::query(
                "INSERT INTO purchases (order_id, user_id, album, price, currency, \
                 purchased_at, recorded_at, buyer_number, request_hash, response, \
                 request_id, refunded_at) VALUES ($1, $2, $3, 100, 'CNY', $4, $4, $5, 'h', \
                 'r', 'q', $6)",
            )
            .bind(format!("old{i}"))
            .bind(user)
            .bind(album)
            .bind(NOW - 100 + i)
            .bind(i + 1)
            .bind(refunded)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO sales_hourly (album, currency, hour, units, revenue) \
             VALUES ('a', 'CNY', $1, 1, 100), ('b', 'CNY', $1, 1, 100)",
        )
        .bind((NOW - 100).div_euclid(HOUR) * HOUR)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let ledger = Ledger::open_url(url, "test".into()).await.unwrap();
    let lib = ledger.library("u1").await.unwrap();
    assert_eq!(lib.len(), 2);
    assert!(lib.iter().all(|e| e.copies == 1 && e.gift_from.is_none()));
    assert!(ledger.library("u2").await.unwrap().is_empty());
    // New orders: three copies of a for u1, a gift of a from u3 to u2.
    let mut body = serde_json::json!({"order_id": "n1", "user": "u1", "album": "a",
        "price": 100, "currency": "CNY", "quantity": 3});
    let p = NewPurchase::parse(body.to_string().as_bytes(), NOW).unwrap();
    ledger.record_purchase(&p, NOW, "r").await.unwrap();
    body = serde_json::json!({"order_id": "n2", "user": "u3", "album": "a",
        "price": 100, "currency": "CNY", "gift_to": "u2", "gift_from_visible": true});
    let p = NewPurchase::parse(body.to_string().as_bytes(), NOW).unwrap();
    ledger.record_purchase(&p, NOW, "r").await.unwrap();
    let a = |lib: Vec<LibraryEntry>| lib.into_iter().find(|e| e.album == "a").unwrap();
    let u1 = a(ledger.library("u1").await.unwrap());
    assert_eq!(
        (u1.order_id.as_str(), u1.buyer_number, u1.copies),
        ("old0", 1, 4)
    );
    let u2 = a(ledger.library("u2").await.unwrap());
    assert_eq!((u2.buyer_number, u2.gift_from.as_deref()), (4, Some("u3")));
    assert!(ledger.library("u3").await.unwrap().is_empty());
    let units = |rows: Vec<SalesRow>| -> Vec<(String, i64, i64)> {
        rows.into_iter()
            .map(|r| (r.album, r.units, r.revenue))
            .collect()
    };
    assert_eq!(
        units(ledger.sales(None).await.unwrap()),
        [("a".into(), 5, 500), ("b".into(), 1, 100)]
    );
    // The old order refunds as before; the gift's refund takes it from u2, not u3.
    let r = ledger.refund("old0", NOW, "rr").await.unwrap();
    assert_eq!((r.owner.as_str(), r.still_owned), ("u1", true));
    let r = ledger.refund("n2", NOW, "rr").await.unwrap();
    assert_eq!((r.owner.as_str(), r.still_owned), ("u2", false));
    assert!(ledger.library("u2").await.unwrap().is_empty());
    assert_eq!(
        units(ledger.sales(None).await.unwrap()),
        [("a".into(), 3, 300), ("b".into(), 1, 100)]
    );
    let revoked = ledger.revocations_since(0).await.unwrap();
    assert!(revoked.iter().any(|r| r.user == "u2" && r.album == "a"));
    assert!(!revoked.iter().any(|r| r.user == "u3"));
    ledger.close().await;
}
