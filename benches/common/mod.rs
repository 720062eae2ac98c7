//! What the HTTP benches share: the application built as `encore serve` builds it, served
//! on an ephemeral loopback port.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use encore::config::Config;
use encore::http::{App, Limits};
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
