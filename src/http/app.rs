//! Everything a request handler may touch, shared by all connections.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::metrics::Metrics;
use crate::license::TokenCache;
use crate::seal::Keyring;
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
}

impl App {
    /// Builds the shared state from the store, the keys and the server settings.
    pub fn new(
        store: Store,
        keyring: Arc<Keyring>,
        settings: &crate::config::ServerSettings,
        limits: Limits,
    ) -> App {
        let library = LibraryIndex::load(&store).unwrap_or_else(|e| {
            tracing::warn!("cannot read the packaged store yet: {e}");
            LibraryIndex::default()
        });
        let verifier = crate::license::TokenVerifier::from_keyring(
            &keyring,
            crate::license::VerifierConfig {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                ..Default::default()
            },
        );
        let segments = SegmentCache::new(settings.segment_cache_bytes);
        let metrics = Metrics::new(segments.stats());
        App {
            store,
            library: ArcSwap::from_pointee(library),
            keyring,
            tokens: TokenCache::new(verifier, crate::license::CacheConfig::default()),
            segments,
            metrics,
            limits,
            ready: AtomicBool::new(false),
        }
    }

    /// Reloads the catalog from the store and swaps it in.
    pub fn reload_library(&self) -> Result<(), crate::store::StoreError> {
        let index = LibraryIndex::load(&self.store)?;
        self.library.store(Arc::new(index));
        Ok(())
    }
}
