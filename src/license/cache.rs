//! [`TokenCache`]: verified tokens kept (by SHA-256 of the token) until they expire, so a token
//! is verified once, not before every segment.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::clock::Clock;
use super::verify::{TokenError, TokenVerifier, VerifiedToken};

/// Default bound on cached tokens. An entry is ~0.5 KiB, so ~50 MiB at the bound.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// Cache sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most tokens kept; the least useful are evicted beyond it.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// Counters since the cache was made (moka keeps none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Tokens served from the cache.
    pub hits: u64,
    /// Tokens that went through full verification (including ones then refused, and cached
    /// ones found expired).
    pub misses: u64,
    /// Entries held (approximate: moka applies writes lazily).
    pub entries: u64,
}

/// A [`TokenVerifier`] with a cache of the tokens it accepted. Refusals are not cached.
///
/// Each entry expires at its token's `exp` (moka's per-entry expiry), and every hit re-checks
/// the validity window against the verifier's clock, so an expired token is never served even
/// if moka has not evicted it yet (or the clock is a test clock moka knows nothing of).
pub struct TokenCache {
    verifier: TokenVerifier,
    cache: Cache<[u8; 32], Arc<VerifiedToken>>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Which cache this is, so a [`TokenMemo`] filled by another (an earlier key set) is
    /// never trusted.
    id: u64,
    /// Bumped by every invalidation: a [`TokenMemo`] filled before it is stale.
    epoch: AtomicU64,
}

/// Source of [`TokenCache::id`]s.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// The last token one connection presented, with its verification.
///
/// A player or an edge sends the same token with every request on a keep-alive connection,
/// so its next request costs a comparison of the token's bytes instead of a SHA-256 and a
/// cache lookup. The memo answers only for the cache that filled it and only until that
/// cache's next invalidation; every answer re-checks `exp` and `nbf` like a cache hit.
#[derive(Default)]
pub struct TokenMemo {
    last: Mutex<Option<Memoized>>,
}

impl TokenMemo {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Memoized>> {
        // The memo is only ever replaced whole, so a lock poisoned by a panic elsewhere still
        // guards a consistent value.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Memoized {
    token: Box<str>,
    verified: Arc<VerifiedToken>,
    cache_id: u64,
    epoch: u64,
}

impl fmt::Debug for TokenMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token itself: it is a credential.
        f.debug_struct("TokenMemo").finish_non_exhaustive()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("verifier", &self.verifier)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// Wraps `verifier` with an empty cache.
    pub fn new(verifier: TokenVerifier, config: CacheConfig) -> Self {
        let cache = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(UntilExp {
                clock: Arc::clone(verifier.clock()),
            })
            .support_invalidation_closures()
            .build();
        Self {
            verifier,
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(0),
        }
    }

    /// The verifier behind the cache.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Verifies `token`, from the cache when it was verified before and has not expired.
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        // Before hashing: an oversized token costs nothing but this comparison.
        self.verifier.check_size(token)?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cache.get(&hash) {
            match self.verifier.check_times(hit.claims()) {
                Ok(()) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(hit);
                }
                Err(e) => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    self.cache.invalidate(&hash);
                    return Err(e);
                }
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let verified = Arc::new(self.verifier.verify_hashed(token, hash)?);
        self.cache.insert(hash, Arc::clone(&verified));
        Ok(verified)
    }

    /// [`TokenCache::verify`] through a connection's memo: the memo answers when `token` is
    /// the one it holds, it was filled by this cache since its last invalidation, and the
    /// token is still inside its validity window; otherwise the cache answers and a token it
    /// accepts replaces the memo's. Memo answers count as hits.
    pub fn verify_memo(
        &self,
        memo: &TokenMemo,
        token: &str,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some(m) = memo.slot().as_ref()
            && m.cache_id == self.id
            && m.epoch == epoch
            && *m.token == *token
        {
            self.verifier.check_times(m.verified.claims())?;
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(&m.verified));
        }
        // Verified with the memo unlocked: a signature check is long, and other streams of
        // the connection (HTTP/2) need not wait for it.
        let verified = self.verify(token)?;
        *memo.slot() = Some(Memoized {
            token: token.into(),
            verified: Arc::clone(&verified),
            cache_id: self.id,
            epoch,
        });
        Ok(verified)
    }

    /// Hits, misses and entries so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
        }
    }

    /// Drops every cached token (e.g. after a signing key is revoked).
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }

    /// Drops every cached token of `sub`, so their next use is verified afresh (the hook a
    /// revocation list will use). Applies to entries cached before this call; a token being
    /// verified concurrently may still be inserted after it.
    pub fn invalidate_subject(&self, sub: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let sub = sub.to_owned();
        if let Err(e) = self
            .cache
            .invalidate_entries_if(move |_, token| token.claims().sub == sub)
        {
            // Only fails when closures are not enabled, which `new` does; if it ever did,
            // dropping everything is the safe way to honour a revocation.
            tracing::error!(error = %e, "cannot invalidate one subject's tokens; dropping all");
            self.cache.invalidate_all();
        }
    }

    /// Whether `token` is cached (not whether it is still valid).
    #[cfg(test)]
    fn contains(&self, token: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.cache.contains_key(&hash)
    }
}

/// moka's per-entry expiry: an entry lives until its token's `exp`, never longer.
struct UntilExp {
    clock: Arc<dyn Clock>,
}

impl UntilExp {
    fn remaining(&self, token: &VerifiedToken) -> Duration {
        Duration::from_secs(token.claims().exp.saturating_sub(self.clock.now_unix()))
    }
}

impl Expiry<[u8; 32], Arc<VerifiedToken>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<VerifiedToken>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.remaining(value))
    }

    fn expire_after_update(
        &self,
        _key: &[u8; 32],
        value: &Arc<VerifiedToken>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.remaining(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::claims::Scope;
    use crate::license::mint::MintRequest;
    use crate::license::testutil::{Fixture, NOW};

    fn cache(fx: &Fixture) -> TokenCache {
        TokenCache::new(fx.verifier(), CacheConfig::default())
    }

    #[test]
    fn second_verify_is_a_hit() {
        let fx = Fixture::new();
        let cache = cache(&fx);
        let token = fx.token("fan-1", Scope::Play, &["first-light"]);
        let first = cache.verify(&token).unwrap();
        let second = cache.verify(&token).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
        assert!(cache.contains(&token));
    }

    #[test]
    fn refusals_are_not_cached() {
        let fx = Fixture::new();
        let cache = cache(&fx);
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.audience = "elsewhere".into();
        let token = fx.mint(&req);
        for _ in 0..2 {
            assert_eq!(cache.verify(&token), Err(TokenError::WrongAudience));
        }
        assert_eq!(cache.stats().misses, 2);
        assert!(!cache.contains(&token));
        // Oversized tokens are refused before hashing and are not even counted.
        let huge = "x".repeat(5000);
        assert!(matches!(
            cache.verify(&huge),
            Err(TokenError::TooLarge { .. })
        ));
        assert_eq!(cache.stats().misses, 2);
    }

    #[test]
    fn cached_token_is_not_served_after_exp() {
        let fx = Fixture::new();
        let cache = cache(&fx);
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.ttl_seconds = 60;
        let token = fx.mint(&req);
        cache.verify(&token).unwrap();
        fx.clock.set(NOW + 60 + 29); // within leeway: still served from the cache
        cache.verify(&token).unwrap();
        assert_eq!(cache.stats().hits, 1);

        fx.clock.set(NOW + 60 + 30);
        assert_eq!(cache.verify(&token), Err(TokenError::Expired));
        assert!(!cache.contains(&token));
        assert_eq!(cache.verify(&token), Err(TokenError::Expired));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 3));
    }

    #[test]
    fn entries_expire_at_exp_in_moka_too() {
        let fx = Fixture::new();
        let expiry = UntilExp {
            clock: fx.clock.clone(),
        };
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.ttl_seconds = 60;
        let verified = fx.verifier().verify(&fx.mint(&req)).unwrap();
        assert_eq!(expiry.remaining(&verified), Duration::from_secs(60));
        fx.clock.set(NOW + 45);
        assert_eq!(expiry.remaining(&verified), Duration::from_secs(15));
        fx.clock.set(NOW + 1000);
        assert_eq!(expiry.remaining(&verified), Duration::ZERO);
    }

    #[test]
    fn invalidate_subject_and_all() {
        let fx = Fixture::new();
        let cache = cache(&fx);
        let one = fx.token("fan-1", Scope::Play, &[]);
        let one_b = fx.token("fan-1", Scope::Play, &["first-light"]);
        let two = fx.token("fan-2", Scope::Play, &[]);
        for t in [&one, &one_b, &two] {
            cache.verify(t).unwrap();
        }
        cache.invalidate_subject("fan-1");
        assert!(!cache.contains(&one) && !cache.contains(&one_b));
        assert!(cache.contains(&two));
        let before = cache.stats();
        cache.verify(&one).unwrap();
        cache.verify(&two).unwrap();
        let after = cache.stats();
        assert_eq!(after.misses - before.misses, 1);
        assert_eq!(after.hits - before.hits, 1);

        cache.invalidate_all();
        assert!(!cache.contains(&one) && !cache.contains(&two));
    }

    #[test]
    fn memo_answers_a_connection_s_repeated_token() {
        let fx = Fixture::new();
        let cache = cache(&fx);
        let memo = TokenMemo::default();
        let token = fx.token("fan-1", Scope::Play, &["first-light"]);
        let first = cache.verify_memo(&memo, &token).unwrap();
        // The second answer comes from the memo, counted as a hit.
        let second = cache.verify_memo(&memo, &token).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
        // An invalidation makes the memo stale: the token is verified afresh.
        cache.invalidate_all();
        let again = cache.verify_memo(&memo, &token).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        let third = cache.verify_memo(&memo, &token).unwrap();
        assert!(Arc::ptr_eq(&again, &third));
        assert_eq!((cache.stats().hits, cache.stats().misses), (2, 2));

        // Another token on the same connection replaces the memo's.
        let other = fx.token("fan-2", Scope::Play, &[]);
        assert_eq!(
            cache.verify_memo(&memo, &other).unwrap().claims().sub,
            "fan-2"
        );
        assert_eq!(
            cache.verify_memo(&memo, &token).unwrap().claims().sub,
            "fan-1"
        );
        // A refused token leaves nothing behind.
        assert!(cache.verify_memo(&memo, "not.a.token").is_err());
        assert!(Arc::ptr_eq(
            &cache.verify_memo(&memo, &token).unwrap(),
            &third
        ));
    }

    #[test]
    fn memo_rechecks_exp_and_trusts_only_its_own_cache() {
        let fx = Fixture::new();
        let cache = cache(&fx);
        let memo = TokenMemo::default();
        let mut req = MintRequest::new("fan-1", Scope::Play);
        req.ttl_seconds = 60;
        let token = fx.mint(&req);
        cache.verify_memo(&memo, &token).unwrap();
        fx.clock.set(NOW + 60 + 30);
        assert_eq!(cache.verify_memo(&memo, &token), Err(TokenError::Expired));

        // A memo filled by another cache (an earlier key set) is not trusted: the token
        // goes through this cache.
        fx.clock.set(NOW);
        let newer = TokenCache::new(fx.verifier(), CacheConfig::default());
        newer.verify_memo(&memo, &token).unwrap();
        assert_eq!((newer.stats().hits, newer.stats().misses), (0, 1));
        newer.verify_memo(&memo, &token).unwrap();
        assert_eq!((newer.stats().hits, newer.stats().misses), (1, 1));
    }

    #[test]
    fn memo_is_stale_after_a_subject_is_invalidated() {
        let fx = Fixture::new();
        let cache = cache(&fx);
        let memo = TokenMemo::default();
        let token = fx.token("fan-1", Scope::Play, &[]);
        cache.verify_memo(&memo, &token).unwrap();
        cache.invalidate_subject("fan-1");
        cache.verify_memo(&memo, &token).unwrap();
        assert_eq!((cache.stats().hits, cache.stats().misses), (0, 2));
        assert!(!format!("{memo:?}").contains(&token[..20]));
    }

    #[test]
    fn bounded_by_count() {
        let fx = Fixture::new();
        let cache = TokenCache::new(fx.verifier(), CacheConfig { max_entries: 8 });
        for i in 0..50 {
            cache
                .verify(&fx.token(&format!("fan-{i}"), Scope::Play, &[]))
                .unwrap();
        }
        cache.cache.run_pending_tasks();
        assert!(cache.stats().entries <= 8, "{:?}", cache.stats());
    }
}
