//! The database key store on SQLite and on PostgreSQL: two "nodes" (each its own keys folder
//! holding the KEK, each its own connection) share one database.

use std::path::{Path, PathBuf};

use super::*;
use crate::keys::Keyring;
use crate::keys::keyfiles::now_unix;
use crate::keys::layout::kek_file_name;
use crate::keys::rotation::{kek, signing};
use crate::store::Store;

/// A database for one test: a SQLite file, or a database of its own on the PostgreSQL server
/// the suite runs with (`pg_virtualenv -v 15 cargo test`, or `ENCORE_TEST_POSTGRES_URL`).
struct TestDb {
    url: String,
    pg: Option<(String, String)>,
    _tmp: tempfile::TempDir,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl TestDb {
    fn sqlite() -> TestDb {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            tmp.path().join("keys.sqlite").display()
        );
        TestDb {
            url,
            pg: None,
            _tmp: tmp,
        }
    }

    fn postgres() -> TestDb {
        let admin_url = std::env::var("ENCORE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            let var = |name: &str| {
                std::env::var(name).unwrap_or_else(|_| {
                    panic!(
                        "{name} is not set: the PostgreSQL tests need a server; run them with \
                         `pg_virtualenv -v 15 cargo test` or set ENCORE_TEST_POSTGRES_URL"
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
        let mut suffix = [0u8; 6];
        crate::seal::key::fill_random(&mut suffix).unwrap();
        let name = format!("encore_keys_{}", hex::encode(suffix));
        runtime().block_on(async {
            use sqlx::Executor;
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            admin.close().await;
        });
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        TestDb {
            url: format!("{base}/{name}"),
            pg: Some((admin_url.clone(), name)),
            _tmp: tempfile::tempdir().unwrap(),
        }
    }

    /// A node: its own keys folder and its own connection to the database.
    fn node(&self, root: &Path, name: &str) -> KeyDir {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        KeyDir::database(&dir, KeyDb::open(&self.url, name).unwrap())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            runtime().block_on(async {
                use sqlx::Executor;
                if let Ok(admin) = sqlx::AnyPool::connect(&admin_url).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                        .await;
                    admin.close().await;
                }
            });
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Nothing secret in the clear in the database, nor on a node's disk beyond its KEK files.
fn assert_nothing_in_the_clear(db: &KeyDir, nodes: &[&KeyDir]) {
    let rows = db.db().unwrap().raw_rows().unwrap();
    let mut kek_hexes = Vec::new();
    for node in nodes {
        for file in files_under(node.path()) {
            let name = file.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(
                name.starts_with("kek-") || name == "keyring.lock" || name == "audit.jsonl",
                "{} on a node's disk",
                file.display()
            );
            if name.starts_with("kek-") {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
                kek_hexes.push(v["key"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(rows.iter().any(|(n, _)| memory::is_private(n)));
    for (name, body) in &rows {
        assert!(
            !body.contains("PRIVATE KEY"),
            "{name} holds a private key in the clear"
        );
        for kek in &kek_hexes {
            assert!(!body.contains(kek.as_str()), "{name} holds a KEK");
        }
    }
}

fn shared_keys_work_across_nodes(db: &TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let a = db.node(tmp.path(), "a");
    let b = db.node(tmp.path(), "b");

    // Node A initializes; B has no KEK yet and says which file it needs.
    let report = Keyring::init_in(&a).unwrap();
    assert!(report.changed());
    let err = Keyring::open_in(&b).unwrap_err();
    assert!(
        matches!(err, KeyError::KekNotHere { kek, .. } if kek == report.kek),
        "{err}"
    );
    let kek_name = kek_file_name(report.kek);
    std::fs::copy(a.path().join(&kek_name), b.path().join(&kek_name)).unwrap();
    assert!(!Keyring::init_in(&b).unwrap().changed(), "B only checks");

    let ring_a = Keyring::open_in(&a).unwrap();
    let ring_b = Keyring::open_in(&b).unwrap();
    assert_eq!(ring_a.active_signing_kid(), report.signing_kid);
    assert_eq!(
        ring_b.signing_key().unwrap().kid(),
        ring_a.signing_key().unwrap().kid()
    );
    let v0 = ring_b.keys().version().unwrap();

    // A content key made through B is A's too; a served snapshot sees its own change.
    let key = ring_b.content_key("first-light", 1, "lossless").unwrap();
    assert_eq!(
        ring_b
            .existing_content_key("first-light", 1, "lossless")
            .unwrap()
            .unwrap()
            .id(),
        key.id()
    );
    assert!(b.db().unwrap().version().unwrap() > v0);
    let fresh_a = Keyring::open_in(&a).unwrap();
    assert_eq!(
        fresh_a
            .existing_content_key("first-light", 1, "lossless")
            .unwrap()
            .unwrap()
            .expose_bytes(),
        key.expose_bytes()
    );

    // Signing rotation through A, seen by B.
    let now = now_unix();
    let rot = a
        .transact(|kd| signing::rotate_signing(kd, now, 60, 500))
        .unwrap();
    let after_b = Keyring::open_in(&b).unwrap();
    let kids: Vec<_> = after_b
        .public_keys_at(now)
        .iter()
        .map(|t| t.key.kid())
        .collect();
    assert_eq!(kids, vec![rot.kid, report.signing_kid]);
    assert_eq!(after_b.signing_key_at(now + 60).unwrap().kid(), rot.kid);

    // A failed change commits nothing.
    let version = a.db().unwrap().version().unwrap();
    let failed: Result<(), KeyError> = a.transact(|kd| {
        signing::rotate_signing(kd, now, 60, 500)?;
        Err(KeyError::corrupt(Path::new("x"), "test", "abandoned"))
    });
    assert!(failed.is_err());
    assert_eq!(a.db().unwrap().version().unwrap(), version);

    // KEK rotation through A: B, without the new KEK, cannot load the new state (it keeps
    // what it has); with the file it can, and the content key is the same.
    let old_kek = report.kek;
    let rot = a.transact(|kd| kek::rotate_kek(kd, now)).unwrap();
    assert_eq!(rot.retired, vec![old_kek]);
    assert!(!a.path().join(kek_file_name(old_kek)).exists());
    let err = Keyring::open_in(&b).unwrap_err();
    assert!(
        matches!(err, KeyError::KekNotHere { kek, .. } if kek == rot.kek),
        "{err}"
    );
    assert!(
        after_b
            .existing_content_key("first-light", 1, "lossless")
            .unwrap()
            .is_some(),
        "the last good snapshot keeps working"
    );
    let new_name = kek_file_name(rot.kek);
    std::fs::copy(a.path().join(&new_name), b.path().join(&new_name)).unwrap();
    let rotated_b = Keyring::open_in(&b).unwrap();
    assert_eq!(rotated_b.active_kek_id(), rot.kek);
    assert_eq!(
        rotated_b
            .existing_content_key("first-light", 1, "lossless")
            .unwrap()
            .unwrap()
            .expose_bytes(),
        key.expose_bytes()
    );
    assert!(rotated_b.signing_key_at(now + 60).is_ok());
    std::fs::remove_file(b.path().join(kek_file_name(old_kek))).unwrap();

    // The order docs/KEYS.md gives: the next KEK reaches every node first, then any node
    // rotates to it; no node is ever without it.
    let (next, path) = kek::new_kek_file(b.path(), now).unwrap();
    std::fs::copy(&path, a.path().join(path.file_name().unwrap())).unwrap();
    let rot2 = b.transact(|kd| kek::rotate_kek(kd, now)).unwrap();
    assert_eq!((rot2.kek, rot2.retired.clone()), (next, vec![rot.kek]));
    assert!(!b.path().join(kek_file_name(rot.kek)).exists());
    let on_a = Keyring::open_in(&a).unwrap();
    assert_eq!(on_a.active_kek_id(), next);
    assert_eq!(
        on_a.existing_content_key("first-light", 1, "lossless")
            .unwrap()
            .unwrap()
            .expose_bytes(),
        key.expose_bytes()
    );

    assert_nothing_in_the_clear(&a, &[&a, &b]);
}

fn concurrent_creation_makes_one_key(db: &TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let a = db.node(tmp.path(), "a");
    let b = db.node(tmp.path(), "b");
    let report = Keyring::init_in(&a).unwrap();
    let kek_name = kek_file_name(report.kek);
    std::fs::copy(a.path().join(&kek_name), b.path().join(&kek_name)).unwrap();
    let rings = [Keyring::open_in(&a).unwrap(), Keyring::open_in(&b).unwrap()];
    let ids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..4usize {
            let (ring, ids) = (&rings[t % 2], &ids);
            s.spawn(move || {
                for track in 1..=3 {
                    let key = ring.content_key("race", track, "lossless").unwrap();
                    ids.lock().unwrap().push((track, key.id()));
                }
            });
        }
    });
    let ids = ids.into_inner().unwrap();
    for track in 1..=3 {
        let mut distinct: Vec<_> = ids
            .iter()
            .filter(|(t, _)| *t == track)
            .map(|(_, id)| *id)
            .collect();
        distinct.sort_by_key(|id| id.to_string());
        distinct.dedup();
        assert_eq!(distinct.len(), 1, "track {track} got several keys");
    }
    let fresh = Keyring::open_in(&a).unwrap();
    assert_eq!(fresh.content_keys_for_album("race").unwrap().len(), 3);
    // Listing through a rotator reads the database too.
    let store = Store::new(tmp.path());
    let rotator = crate::keys::rotation::Rotator::new_in(b.clone(), store, Default::default());
    assert_eq!(rotator.list().unwrap().content.len(), 3);
}

#[test]
fn database_keys_on_sqlite() {
    shared_keys_work_across_nodes(&TestDb::sqlite());
    concurrent_creation_makes_one_key(&TestDb::sqlite());
}

#[test]
fn database_keys_on_postgres() {
    shared_keys_work_across_nodes(&TestDb::postgres());
    concurrent_creation_makes_one_key(&TestDb::postgres());
}

#[test]
fn a_folder_keeps_every_file_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    Keyring::init(&dir).unwrap();
    let keys = KeyDir::folder(&dir);
    assert!(keys.is_folder() && keys.db().is_none() && keys.version().is_none());
    let ring = Keyring::open_in(&keys).unwrap();
    ring.content_key("demo", 1, "lossless").unwrap();
    assert!(dir.join("content/demo.json").exists());
}
