//! The application apart from any transport: the store and catalog, the keys and their
//! reloads, the ledger, revocations and charts, key rotation and its jobs, the clock, and the
//! background work of a running server. `http/` translates requests into calls on [`App`];
//! `cli/serve.rs` builds one and starts it. Nothing here knows hyper or clap.

pub mod background;
pub mod changes;
pub mod jobs;
pub mod keystate;
pub mod memory;
pub mod metrics;
pub mod published;
pub mod sales_first;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;

use self::jobs::AdminJobs;
use self::metrics::Metrics;
use self::sales_first::SalesFirst;
use crate::clock::{Clock, SystemClock};
use crate::config::{LedgerSettings, Limits};
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

/// The application's state, shared by every connection and background job.
pub struct App {
    /// The packaged store.
    pub store: Store,
    /// The catalog: album ids, and what requests touch loaded on demand; swapped whole after
    /// an ingest, a re-seal or a new publication.
    pub library: ArcSwap<LibraryIndex>,
    /// How much of the catalog each index keeps in memory.
    catalog_cache: crate::store::library::CacheBounds,
    /// On an origin whose store is published to a bucket: the published albums and where
    /// their records come from (the catalog's index is the bucket's listing, not the folders).
    records: Option<Arc<crate::store::records::BucketRecords>>,
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
    /// How far this origin has applied the change feed (`changes`).
    changes: changes::Applied,
    /// Repeatable public reads wait for the sales in flight.
    pub sales_first: SalesFirst,
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
    /// Whether the keys served are the shared key state's newest.
    pub key_health: keystate::KeyHealth,
    /// Plain HTTP/1.1 connections start in the express lane (`http::express`).
    pub express_lane: bool,
    /// The time the application's own decisions read (token verifiers read theirs: the
    /// system's).
    pub clock: Arc<dyn Clock>,
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
        let catalog_cache = settings.catalog_cache;
        let library = LibraryIndex::load_with(&store, catalog_cache).unwrap_or_else(|e| {
            tracing::warn!("cannot read the packaged store yet: {e}");
            LibraryIndex::empty(&store, catalog_cache)
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
        let rotator = Rotator::new_in(
            keyring.keys().clone(),
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
            catalog_cache,
            records: None,
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
            changes: changes::Applied::default(),
            sales_first: SalesFirst::default(),
            token_issuer: settings.issuer.clone(),
            token_audience: settings.audience.clone(),
            ledger_settings,
            rotator,
            admin_jobs: AdminJobs::default(),
            key_health: keystate::KeyHealth::default(),
            express_lane: settings.express_lane,
            clock: Arc::new(SystemClock),
            background: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// The app reading `clock` instead of the system's (tests move time without sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> App {
        self.clock = clock;
        self
    }

    /// Now, in Unix seconds, by the application's clock.
    pub fn now(&self) -> u64 {
        self.clock.now_unix()
    }

    /// Now as the ledger records times: signed Unix seconds.
    pub fn now_signed(&self) -> i64 {
        i64::try_from(self.now()).unwrap_or(i64::MAX)
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
    ///
    /// The change feed's position is read first: whatever changes during the rebuild is then
    /// applied (again) by the next catch-up, in order, so nothing falls between the two.
    pub async fn load_revocations(&self, now: u64) -> Result<usize, LedgerError> {
        let mut applied = self.changes.entitlements.lock().await;
        *applied = self.ledger.last_entitlement_change().await?;
        let list = self
            .ledger
            .revocations_since(self.revocations_since(now))
            .await?;
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

    /// Re-reads the keys folder, or the database's key state (keyring, signing and account
    /// keys) and swaps the new set in whole. On any error the running set stays (nothing
    /// half-loaded is ever served) and the error is returned. Verified-token caches start
    /// empty: each token is verified once more.
    pub fn reload_keys(&self) -> Result<Arc<KeySet>, crate::keys::KeyError> {
        let source = self.keys.load().keyring.keys().source();
        let keyring = Arc::new(Keyring::open_in(&source)?);
        let set = Arc::new(KeySet::build(
            keyring,
            &self.verifier_config,
            &self.account_verifier_config,
        )?);
        self.keys.store(Arc::clone(&set));
        Ok(set)
    }

    /// Segments missing from the local store are read through from the bucket behind it,
    /// and the catalog is the bucket's publications (`records`), loaded on demand.
    pub fn with_bucket(
        mut self,
        through: Arc<crate::store::readthrough::ReadThrough>,
        records: Arc<crate::store::records::BucketRecords>,
    ) -> App {
        self.segments = self.segments.clone().with_read_through(through);
        self.records = Some(records);
        self
    }

    /// Reloads the catalog from the store and swaps it in.
    pub fn reload_library(&self) -> Result<(), crate::store::StoreError> {
        // Under the store lock: a mirror of published records (or a manifest commit) is seen
        // whole or not at all.
        let index = match &self.records {
            Some(records) => LibraryIndex::with_source(
                &self.store,
                self.catalog_cache,
                records.ids(),
                Arc::clone(records) as Arc<dyn crate::store::library::RecordSource>,
            ),
            None => {
                let _lock = self.store.lock()?;
                LibraryIndex::load_with(&self.store, self.catalog_cache)?
            }
        };
        self.library.store(Arc::new(index));
        Ok(())
    }

    /// Reloads the catalog, then drops cached segments of generations it no longer serves
    /// (deleted after a re-seal or re-package), so their bytes leave memory with their files.
    pub async fn reload_library_and_purge(&self) -> Result<usize, crate::store::StoreError> {
        self.reload_library()?;
        let library = self.library.load_full();
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
                    // Asked once per cached segment: each rendition loads once (the new
                    // index's cache), so the work follows the cache's size, not the catalog's.
                    [album, track, rendition, generation, _file] => track
                        .parse::<u32>()
                        .is_ok_and(|n| library.serves_generation(album, n, rendition, generation)),
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
