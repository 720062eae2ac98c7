//! Migration 0007 (devices, offline licenses) from a ledger at 0006 holding data, and the
//! device rules, on SQLite and on PostgreSQL.

use super::*;
use crate::ledger::devices::{Ownership, Registered};

#[tokio::test]
async fn migrates_devices_from_0006_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(LEDGER_FILE).display()
    );
    from_0006(&url).await;
}

#[tokio::test]
async fn migrates_devices_from_0006_with_data_on_postgres() {
    let db = PgDatabase::create().await;
    from_0006(&db.url).await;
    db.drop_database().await;
}

async fn from_0006(url: &str) {
    {
        let pool = super::migration::migrated_up_to(url, 6).await;
        for (i, (user, album, refunded)) in [("u1", "a", None), ("u2", "a", Some(NOW))]
            .into_iter()
            .enumerate()
        {
            let i = i64::try_from(i).unwrap();
            sqlx::query(
                "INSERT INTO purchases (order_id, user_id, owner_id, album, price, currency, \
                 purchased_at, recorded_at, buyer_number, request_hash, response, \
                 request_id, refunded_at) VALUES ($1, $2, $2, $3, 100, 'CNY', $4, $4, $5, 'h', \
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
        pool.close().await;
    }
    let ledger = Ledger::open_url(url, "test".into()).await.unwrap();
    // The purchases are as they were; ownership reads them.
    assert_eq!(ledger.library("u1").await.unwrap().len(), 1);
    assert_eq!(ledger.ownership("u1", "a").await.unwrap(), Ownership::Owned);
    assert_eq!(
        ledger.ownership("u2", "a").await.unwrap(),
        Ownership::Refunded
    );
    assert_eq!(ledger.ownership("u3", "a").await.unwrap(), Ownership::Never);
    // Two places: the third registration is refused until one is removed.
    let mut ids = Vec::new();
    for (name, key) in [("phone", "pk1"), ("tablet", "pk2")] {
        match ledger
            .register_device("u1", name, key, 2, NOW)
            .await
            .unwrap()
        {
            Registered::Added(d) => ids.push(d.id),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        ledger
            .register_device("u1", "laptop", "pk3", 2, NOW)
            .await
            .unwrap(),
        Registered::Full { limit: 2 }
    );
    // The same key again (a retried registration) is the same device, even when full.
    match ledger
        .register_device("u1", "tablet", "pk2", 2, NOW + 1)
        .await
        .unwrap()
    {
        Registered::Existing(d) => assert_eq!(d.id, ids[1]),
        other => panic!("same key registered again: {other:?}"),
    }
    // Another user's device is not this user's to see or remove.
    assert!(ledger.device("u2", &ids[0]).await.unwrap().is_none());
    assert!(!ledger.remove_device("u2", &ids[0], NOW).await.unwrap());
    assert!(ledger.remove_device("u1", &ids[0], NOW).await.unwrap());
    assert!(!ledger.remove_device("u1", &ids[0], NOW).await.unwrap());
    let removed = ledger.device("u1", &ids[0]).await.unwrap().unwrap();
    assert_eq!(removed.removed_at, Some(NOW));
    let listed: Vec<String> = ledger
        .devices("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed, [ids[1].clone()]);
    // A removed device's key registers anew, as a new device.
    assert!(matches!(
        ledger
            .register_device("u1", "phone", "pk1", 2, NOW)
            .await
            .unwrap(),
        Registered::Added(d) if d.id != ids[0]
    ));
    // Offline licenses: recorded, found by their owner only, renewed.
    let id = ledger
        .record_offline_license("u1", "a", &ids[1], NOW, NOW + 10)
        .await
        .unwrap();
    assert!(ledger.offline_license("u2", &id).await.unwrap().is_none());
    ledger
        .renew_offline_license(&id, NOW + 20, NOW + 5)
        .await
        .unwrap();
    let rec = ledger.offline_license("u1", &id).await.unwrap().unwrap();
    assert_eq!(
        (
            rec.album.as_str(),
            rec.device_id.as_str(),
            rec.issued_at,
            rec.expires_at
        ),
        ("a", ids[1].as_str(), NOW, NOW + 20)
    );
    ledger.close().await;
}
