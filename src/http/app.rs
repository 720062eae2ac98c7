//! Everything a request handler may touch, shared by all connections.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::metrics::Metrics;
use super::ops::admin::AdminJobs;
use crate::config::LedgerSettings;
use crate::keys::Keyring;
use crate::keys::account_keys::load_account_keys;
use crate::keys::rotation::{RotationSettings, Rotator};
use crate::ledger::{ChartCache, Ledger, LedgerError};
use crate::license::{
    ACCOUNT_SCOPES, ENCORE_SCOPES, RevocationList, TokenCache, TokenVerifier, VerifierConfig,
};
use crate::store::Store;
use crate::store::cache::SegmentCache;
use crate::store::library::LibraryIndex;

/// Server limits, all explicit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Threads serving connections, each a single-threaded event loop of its own.
    pub connection_threads: usize,
    /// Time allowed to read a request's headers (slowloris guard). An HTTP/1.1 connection
    /// waiting for its next head is bounded by it too; an HTTP/2 connection that has made no
    /// request this long after connecting gets a GOAWAY and is closed.
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no request in progress this long (after its first) gets a
    /// GOAWAY and is closed, as an idle HTTP/1.1 connection is after `header_read_timeout`
    /// (an HTTP/1.1 connection hyper serves is closed by whichever of the two comes first).
    pub idle_timeout: Duration,
    /// How long an HTTP/2 connection may be silent before the server pings it (`None`: never).
    pub h2_keep_alive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is dropped as dead.
    pub h2_keep_alive_timeout: Duration,
    /// Most headers in a request.
    pub max_headers: usize,
    /// Largest request head (HTTP/1 buffer) and HTTP/2 header list, bytes.
    pub max_header_bytes: usize,
    /// Largest POST body, bytes.
    pub max_body_bytes: usize,
    /// Deadline for producing a response.
    pub request_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 reset-flood guard (CVE-2023-44487 "rapid reset").
    pub h2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 guard against peers provoking local resets (CVE-2024-2758-style floods).
    pub h2_max_local_error_reset_streams: usize,
    /// Time in-flight responses get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            connection_threads: crate::config::default_connection_threads(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            h2_keep_alive_interval: Some(Duration::from_secs(20)),
            h2_keep_alive_timeout: Duration::from_secs(20),
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            h2_max_concurrent_streams: 128,
            h2_max_pending_accept_reset_streams: 50,
            h2_max_local_error_reset_streams: 256,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Shared state.
pub struct App {
    /// The packaged store.
    pub store: Store,
    /// The catalog in memory, swapped whole after an ingest.
    pub library: ArcSwap<LibraryIndex>,
    /// The keys every request reads: swapped whole by [`App::reload_keys`], so a request sees
    /// one consistent set (load it once per request with [`App::keys`]).
    keys: ArcSwap<KeySet>,
    /// Token checks configured once, reused for every key set.
    verifier_config: VerifierConfig,
    account_verifier_config: VerifierConfig,
    /// Sealed segments.
    pub segments: SegmentCache,
    /// Metrics.
    pub metrics: Metrics,
    /// Limits.
    pub limits: Limits,
    /// True once the first catalog load finished.
    pub ready: AtomicBool,
    /// Purchases and refunds.
    pub ledger: Ledger,
    /// Refunds that outrank the albums earlier play tokens name.
    pub revocations: RevocationList,
    /// Sales charts.
    pub charts: ChartCache,
    /// Repeatable public reads wait for the sales in flight (issue 19 item 9).
    pub sales_first: super::sales_first::SalesFirst,
    /// Token issuer and audience encore mints play tokens with.
    pub token_issuer: String,
    /// `aud` of the play tokens encore mints.
    pub token_audience: String,
    /// Ledger and token-exchange settings.
    pub ledger_settings: LedgerSettings,
    /// Key operations for the admin API and the maintenance timer.
    pub rotator: Rotator,
    /// Background admin jobs.
    pub admin_jobs: AdminJobs,
    /// Plain HTTP/1.1 connections start in the express lane ([`super::express`]).
    pub express_lane: bool,
    /// Where [`App::spawn_background`] runs jobs; `None` when built outside a runtime.
    background: Option<tokio::runtime::Handle>,
}

/// One loaded generation of keys: the keyring, and token caches over its public keys.
pub struct KeySet {
    /// Keys (content keys for licenses, public keys for the JWKS, the signing key).
    pub keyring: Arc<Keyring>,
    /// Verified encore tokens.
    pub tokens: TokenCache,
    /// Verified account tokens (the account service's keys), if any account service is
    /// trusted.
    pub accounts: Option<TokenCache>,
}

impl KeySet {
    /// Builds the token caches for `keyring` and the account keys next to it.
    fn build(
        keyring: Arc<Keyring>,
        config: &VerifierConfig,
        account_config: &VerifierConfig,
    ) -> Result<KeySet, crate::keys::KeyError> {
        let verifier = TokenVerifier::from_keyring(&keyring, config.clone());
        let account_keys = load_account_keys(keyring.dir())?;
        let accounts = (!account_keys.is_empty()).then(|| {
            TokenCache::new(
                TokenVerifier::new(account_keys, account_config.clone()),
                crate::license::CacheConfig::default(),
            )
        });
        Ok(KeySet {
            keyring,
            tokens: TokenCache::new(verifier, crate::license::CacheConfig::default()),
            accounts,
        })
    }
}

impl App {
    /// Builds the shared state from the store, the keys, the ledger and the server settings.
    /// Account-service keys are read from `keys/accounts/`; an unreadable one is an error
    /// (fail closed), an absent folder means no account service is trusted.
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        ledger: Ledger,
        settings: &crate::config::ServerSettings,
        limits: Limits,
    ) -> Result<App, crate::keys::KeyError> {
        let library = LibraryIndex::load(&store).unwrap_or_else(|e| {
            tracing::warn!("cannot read the packaged store yet: {e}");
            LibraryIndex::default()
        });
        let ledger_settings = settings.ledger.clone();
        let verifier_config = VerifierConfig {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_seconds: settings.keys.token_leeway_seconds,
            max_play_lifetime_seconds: ledger_settings.max_play_token_seconds,
            max_lifetime_seconds: settings.keys.max_token_seconds,
            // `account` tokens are the account service's to sign, never encore's.
            scopes: ENCORE_SCOPES.to_vec(),
            ..Default::default()
        };
        let account_verifier_config = VerifierConfig {
            issuer: ledger_settings.account_issuer.clone(),
            audience: settings.audience.clone(),
            leeway_seconds: settings.keys.token_leeway_seconds,
            max_lifetime_seconds: settings.keys.max_token_seconds,
            // The account service speaks for a user's account and nothing else.
            scopes: ACCOUNT_SCOPES.to_vec(),
            ..Default::default()
        };
        let rotator = Rotator::new(
            keyring.dir(),
            store.clone(),
            RotationSettings::from(&settings.keys),
        );
        let keys = KeySet::build(keyring, &verifier_config, &account_verifier_config)?;
        let horizon = ledger_settings
            .max_play_token_seconds
            .saturating_add(verifier_config.leeway_seconds);
        let segments = SegmentCache::new(settings.segment_cache_bytes)
            .with_page_pinning(settings.pin_segment_pages);
        let metrics = Metrics::new(segments.stats());
        Ok(App {
            store,
            library: ArcSwap::from_pointee(library),
            keys: ArcSwap::from_pointee(keys),
            verifier_config,
            account_verifier_config,
            segments,
            metrics,
            limits,
            ready: AtomicBool::new(false),
            ledger,
            revocations: RevocationList::new(horizon),
            charts: ChartCache::new(ledger_settings.chart_refresh),
            sales_first: super::sales_first::SalesFirst::default(),
            token_issuer: settings.issuer.clone(),
            token_audience: settings.audience.clone(),
            ledger_settings,
            rotator,
            admin_jobs: AdminJobs::default(),
            express_lane: settings.express_lane,
            background: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// Runs `job` on the runtime the app was built on (`encore serve`'s own, not a connection
    /// thread's), so long work started by a request neither shares a connection thread's
    /// event loop nor ends when that thread stops.
    pub fn spawn_background<F>(&self, job: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.background {
            Some(runtime) => runtime.spawn(job),
            None => tokio::spawn(job),
        }
    }

    /// Rebuilds the revocation list from the ledger's refunds inside the horizon. Run before
    /// serving: until it has run, refunded buyers' old tokens would still play.
    pub async fn load_revocations(&self, now: u64) -> Result<usize, LedgerError> {
        let since = now.saturating_sub(self.revocations.horizon_seconds());
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        let list = self.ledger.revocations_since(since).await?;
        for r in &list {
            self.revocations
                .revoke(&r.user, &r.album, u64::try_from(r.at).unwrap_or(0));
        }
        self.revocations.prune(now);
        Ok(list.len())
    }

    /// The current key set (one load per request: a reload meanwhile does not mix sets).
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Re-reads the keys folder (keyring, signing and account keys) and swaps the new set in
    /// whole. On any error the running set stays (nothing half-loaded is ever served) and the
    /// error is returned. Verified-token caches start empty: each token is verified once more.
    pub fn reload_keys(&self) -> Result<Arc<KeySet>, crate::keys::KeyError> {
        let dir = self.keys.load().keyring.dir().to_path_buf();
        let keyring = Arc::new(Keyring::open(&dir)?);
        let set = Arc::new(KeySet::build(
            keyring,
            &self.verifier_config,
            &self.account_verifier_config,
        )?);
        self.keys.store(Arc::clone(&set));
        Ok(set)
    }

    /// Reloads the catalog from the store and swaps it in.
    pub fn reload_library(&self) -> Result<(), crate::store::StoreError> {
        let index = LibraryIndex::load(&self.store)?;
        self.library.store(Arc::new(index));
        Ok(())
    }

    /// Reloads the catalog, then drops cached segments of generations it no longer serves
    /// (deleted after a re-seal or re-package), so their bytes leave memory with their files.
    pub async fn reload_library_and_purge(&self) -> Result<usize, crate::store::StoreError> {
        self.reload_library()?;
        let live = self.library.load().live_generations();
        let root = self.store.root().to_path_buf();
        let purged = self
            .segments
            .purge(|path| {
                // <root>/<album>/<NN>/<rendition>/<generation>/<file>
                let Ok(rel) = path.strip_prefix(&root) else {
                    return false;
                };
                let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
                match parts.as_slice() {
                    [album, track, rendition, generation, _file] => {
                        track.parse::<u32>().is_ok_and(|n| {
                            live.contains(&(
                                (*album).to_owned(),
                                n,
                                (*rendition).to_owned(),
                                (*generation).to_owned(),
                            ))
                        })
                    }
                    _ => false,
                }
            })
            .await;
        if purged > 0 {
            tracing::info!(
                purged,
                "dropped cached segments of generations no longer served"
            );
        }
        Ok(purged)
    }
}
