//! Everything a request handler may touch, shared by all connections.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::metrics::Metrics;
use crate::config::LedgerSettings;
use crate::ledger::{ChartCache, Ledger, LedgerError};
use crate::license::{RevocationList, TokenCache, TokenVerifier, VerifierConfig};
use crate::seal::Keyring;
use crate::seal::account_keys::load_account_keys;
use crate::store::Store;
use crate::store::cache::SegmentCache;
use crate::store::library::LibraryIndex;

/// Server limits, all explicit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Time allowed to read a request's headers (slowloris guard).
    pub header_read_timeout: Duration,
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
            header_read_timeout: Duration::from_secs(10),
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
    /// Keys (content keys for licenses, public keys for the JWKS).
    pub keyring: Arc<Keyring>,
    /// Verified tokens.
    pub tokens: TokenCache,
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
    /// Verified account tokens (the account service's keys), if any account service is
    /// trusted.
    pub accounts: Option<TokenCache>,
    /// Sales charts.
    pub charts: ChartCache,
    /// Token issuer and audience encore mints play tokens with.
    pub token_issuer: String,
    /// `aud` of the play tokens encore mints.
    pub token_audience: String,
    /// Ledger and token-exchange settings.
    pub ledger_settings: LedgerSettings,
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
    ) -> Result<App, crate::seal::KeyError> {
        let library = LibraryIndex::load(&store).unwrap_or_else(|e| {
            tracing::warn!("cannot read the packaged store yet: {e}");
            LibraryIndex::default()
        });
        let ledger_settings = settings.ledger.clone();
        let verifier = TokenVerifier::from_keyring(
            &keyring,
            VerifierConfig {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                max_play_lifetime_seconds: ledger_settings.max_play_token_seconds,
                ..Default::default()
            },
        );
        let account_keys = load_account_keys(keyring.dir())?;
        let accounts = (!account_keys.is_empty()).then(|| {
            TokenCache::new(
                TokenVerifier::new(
                    account_keys,
                    VerifierConfig {
                        issuer: ledger_settings.account_issuer.clone(),
                        audience: settings.audience.clone(),
                        ..Default::default()
                    },
                ),
                crate::license::CacheConfig::default(),
            )
        });
        let horizon = ledger_settings
            .max_play_token_seconds
            .saturating_add(verifier.config().leeway_seconds);
        let segments = SegmentCache::new(settings.segment_cache_bytes);
        let metrics = Metrics::new(segments.stats());
        Ok(App {
            store,
            library: ArcSwap::from_pointee(library),
            keyring,
            tokens: TokenCache::new(verifier, crate::license::CacheConfig::default()),
            segments,
            metrics,
            limits,
            ready: AtomicBool::new(false),
            ledger,
            revocations: RevocationList::new(horizon),
            accounts,
            charts: ChartCache::new(),
            token_issuer: settings.issuer.clone(),
            token_audience: settings.audience.clone(),
            ledger_settings,
        })
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

    /// Reloads the catalog from the store and swaps it in.
    pub fn reload_library(&self) -> Result<(), crate::store::StoreError> {
        let index = LibraryIndex::load(&self.store)?;
        self.library.store(Arc::new(index));
        Ok(())
    }
}
