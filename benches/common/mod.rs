//! What the HTTP benches share: the demo album's first track packaged in a temp dir, the
//! application built as `encore serve` builds it, served on an ephemeral loopback port.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use encore::config::{Config, Overrides};
use encore::http::{App, Limits};
use encore::ingest::{IngestJob, progress::LogLines};
use encore::keys::Keyring;
use encore::ledger::Ledger;
use encore::store::Store;

/// The application over `store`, `keyring` and `ledger` with `config`'s server settings, its
/// catalog loaded and marked ready.
pub fn ready_app(store: Store, keyring: Arc<Keyring>, ledger: Ledger, config: &Config) -> Arc<App> {
    let app =
        Arc::new(App::new(store, keyring, ledger, &config.server, Limits::default()).expect("app"));
    app.reload_library().expect("library");
    app.ready.store(true, Ordering::Release);
    app
}

/// Serves `app` on 127.0.0.1 (an ephemeral port) until the process ends; its base URL.
pub async fn serve(app: Arc<App>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(encore::http::run(
        listener,
        app,
        None,
        std::future::pending::<()>(),
    ));
    url
}

/// The demo album's first track packaged, with fresh keys, in a temp dir on the target dir's
/// disk (not a tmpfs /tmp, where fsync would cost nothing; `BENCH_DIR` names another).
pub struct Packaged {
    /// The temp dir (removed when this is dropped).
    pub dir: tempfile::TempDir,
    /// The keys.
    pub keyring: Arc<Keyring>,
    /// Default settings.
    pub config: Config,
    /// `<dir>/data`, holding the store (and the benches' ledgers).
    pub data: std::path::PathBuf,
    /// The packaged store.
    pub store: Store,
}

/// Packages track 01 of `media/<album>`; `add_keys` runs on the new keys folder before it is
/// opened (e.g. a development account key).
pub async fn package_first_track(album: &str, add_keys: impl FnOnce(&std::path::Path)) -> Packaged {
    let dir = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into()),
    )
    .expect("temp dir");
    let album_dir = dir.path().join("media").join(album);
    std::fs::create_dir_all(&album_dir).expect("media dir");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("media")
        .join(album);
    for entry in std::fs::read_dir(&demo).expect("media/<album>") {
        let name = entry.expect("entry").file_name();
        if name.to_string_lossy().starts_with("01") {
            std::fs::copy(demo.join(&name), album_dir.join(&name)).expect("copy");
        }
    }
    let keys = dir.path().join("keys");
    Keyring::init(&keys).expect("keys init");
    add_keys(&keys);
    let keyring = Arc::new(Keyring::open(&keys).expect("keys open"));
    let config = Config::from_raw(Default::default(), &Overrides::default()).expect("config");
    let data = dir.path().join("data");
    let store = Store::new(&data);
    let report = encore::ingest::run(
        IngestJob {
            media_dir: dir.path().join("media"),
            albums: vec![album_dir],
            settings: config.ingest.clone(),
            force: false,
        },
        keyring.clone(),
        store.clone(),
        Arc::new(LogLines),
    )
    .await;
    assert!(report.ok(), "ingest failed: {}", report.summary());
    Packaged {
        dir,
        keyring,
        config,
        data,
        store,
    }
}
