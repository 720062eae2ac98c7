//! Prometheus metrics: requests by route and status, latency, cache and token counters.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::license::{Audience, Denied};
use crate::store::cache::CacheStats;

/// Route name of segment requests (metrics label).
pub const SEGMENT_ROUTE: &str = "get_segment";

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name (bounded set, see `Endpoint::name`).
    pub route: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// Labels of per-route series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route name.
    pub route: &'static str,
}

/// Labels of token checks and denials.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What happened (`ok`, `token-invalid`, `not-purchased`, ...).
    pub outcome: &'static str,
}

/// Labels of the segment traffic series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    /// The scope of the token the segments were answered to (`play` or `edge`).
    pub scope: &'static str,
}

/// Labels of express-lane hand-offs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why hyper took the connection (see `express::HandOff::reason`).
    pub reason: &'static str,
}

/// Labels of per-thread series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThreadLabels {
    /// Index of the connection thread (0-based).
    pub thread: u16,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Latency by route, seconds.
    pub latency: Family<RouteLabels, Histogram>,
    /// Token checks by outcome.
    pub token_checks: Family<OutcomeLabels, Counter>,
    /// Entitlement denials by reason.
    pub denials: Family<OutcomeLabels, Counter>,
    /// Token cache hits (snapshot at scrape).
    pub token_cache_hits: Gauge<u64, AtomicU64>,
    /// Token cache misses (snapshot at scrape).
    pub token_cache_misses: Gauge<u64, AtomicU64>,
    /// Bytes held by the segment cache (snapshot at scrape).
    pub segment_cache_bytes: Gauge<u64, AtomicU64>,
    /// Bytes of store files pinned in the page cache for cached segments, set when scraped.
    pub segment_pages_pinned_bytes: Gauge<u64, AtomicU64>,
    /// Responses written by the express lane.
    pub express_responses: Counter,
    /// Connections the express lane handed to hyper, by reason.
    pub express_handoffs: Family<ReasonLabels, Counter>,
    /// Open connections by the connection thread serving them; the accept loops also read
    /// these so that the least busy thread takes each new connection.
    pub connections_open: Family<ThreadLabels, Gauge>,
    /// The version of the database's key state this origin serves with (0 with a keys
    /// folder).
    pub key_state_version: Gauge,
    /// 1 while the database holds newer keys this origin cannot load (it serves with its last
    /// good ones), else 0.
    pub key_state_stale: Gauge,
    /// Reloads of the database's key state that failed.
    pub key_reload_failures: Counter,
    /// Segment answers (sealed and HLS; 200, 206 and 304) by the token's scope.
    pub segment_requests: Family<ScopeLabels, Counter>,
    /// Bytes of segment bodies answered, by the token's scope.
    pub segment_bytes: Family<ScopeLabels, Counter>,
    /// The delivery path's series, resolved once.
    pub hot: HotSeries,
}

/// Series every segment request touches, looked up in their families once at start: a lookup
/// by labels hashes them and takes a lock, on every request of the busiest route.
#[derive(Clone, Debug)]
pub struct HotSeries {
    /// `http_requests{route="get_segment",status="200"}`.
    pub segment_ok: Counter,
    /// `http_request_duration_seconds{route="get_segment"}`.
    pub segment_latency: Histogram,
    /// `token_checks{outcome="ok"}`.
    pub token_ok: Counter,
    /// `segment_requests{scope="play"}` and `segment_bytes{scope="play"}`.
    pub segments_play: (Counter, Counter),
    /// `segment_requests{scope="edge"}` and `segment_bytes{scope="edge"}`.
    pub segments_edge: (Counter, Counter),
}

impl Metrics {
    /// Registers everything, including the segment cache's counters.
    pub fn new(cache: &CacheStats) -> Self {
        let mut registry = Registry::with_prefix("encore");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                5.0,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to produce a response",
            latency.clone(),
        );
        let token_checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "token_checks",
            "Bearer token checks by outcome",
            token_checks.clone(),
        );
        let denials = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "entitlement_denials",
            "Valid tokens refused for lack of entitlement",
            denials.clone(),
        );
        registry.register(
            "segment_cache_hits",
            "Segment lookups answered from memory",
            cache.hits.clone(),
        );
        registry.register(
            "segment_cache_hot_hits",
            "Of the segment cache hits, those answered by the hot table without a moka lookup",
            cache.hot_hits.clone(),
        );
        registry.register(
            "segment_cache_misses",
            "Segment lookups that loaded or waited for a load",
            cache.misses.clone(),
        );
        registry.register(
            "store_reads",
            "Segment files read from disk",
            cache.disk_reads.clone(),
        );
        registry.register(
            "store_read_bytes",
            "Bytes read from disk for segments",
            cache.disk_bytes.clone(),
        );
        registry.register(
            "segment_cache_uncacheable",
            "Segments larger than the cache, served from disk",
            cache.uncacheable.clone(),
        );
        registry.register(
            "store_integrity_failures",
            "Store files whose bytes did not match their manifest's SHA-256 when loaded (not served)",
            cache.integrity_failures.clone(),
        );
        registry.register(
            "store_remote_fetches",
            "Segments fetched from the bucket (local store misses)",
            cache.remote.fetches.clone(),
        );
        registry.register(
            "store_remote_bytes",
            "Bytes of segments fetched from the bucket",
            cache.remote.bytes.clone(),
        );
        registry.register(
            "store_remote_verify_failures",
            "Objects fetched from the bucket that did not match their manifest's SHA-256 (not kept, not served)",
            cache.remote.verify_failures.clone(),
        );
        registry.register(
            "store_remote_records",
            "Publication records and manifests fetched from the bucket (albums and renditions loaded on demand, publications that changed)",
            cache.remote.records.clone(),
        );
        registry.register(
            "store_local_evictions",
            "Local copies of bucket segments deleted to keep the local disk cache within its bound",
            cache.remote.local_evictions.clone(),
        );
        registry.register(
            "hls_cache_hits",
            "HLS segment lookups answered from memory",
            cache.derived_hits.clone(),
        );
        registry.register(
            "hls_cache_misses",
            "HLS segment lookups that built or waited for a build",
            cache.derived_misses.clone(),
        );
        registry.register(
            "hls_segments_built",
            "HLS segments made from sealed ones (seal opened, AES-128 applied)",
            cache.derived_builds.clone(),
        );
        let token_cache_hits = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "token_cache_hits",
            "Verified-token cache hits since start",
            token_cache_hits.clone(),
        );
        let token_cache_misses = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "token_cache_misses",
            "Verified-token cache misses since start",
            token_cache_misses.clone(),
        );
        let segment_cache_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "segment_cache_bytes",
            "Bytes held by the segment cache (sealed and HLS segments)",
            segment_cache_bytes.clone(),
        );
        let segment_pages_pinned_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "segment_pages_pinned_bytes",
            "Bytes of cached segments' store files locked in the page cache, so sendfile never reads the disk",
            segment_pages_pinned_bytes.clone(),
        );
        let express_responses = Counter::default();
        registry.register(
            "http1_express_responses",
            "Responses written by the HTTP/1.1 express lane (the rest by hyper)",
            express_responses.clone(),
        );
        let express_handoffs = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "http1_express_handoffs",
            "Connections the express lane handed to hyper, by the reason",
            express_handoffs.clone(),
        );
        let connections_open = Family::<ThreadLabels, Gauge>::default();
        registry.register(
            "http_connections_open",
            "Open client connections, by the connection thread serving them",
            connections_open.clone(),
        );
        let key_state_version = Gauge::default();
        registry.register(
            "key_state_version",
            "Version of the shared key state (database) this origin serves with",
            key_state_version.clone(),
        );
        let key_state_stale = Gauge::default();
        registry.register(
            "key_state_stale",
            "1 while newer shared keys cannot be loaded here (missing KEK file?); serving the last good keys",
            key_state_stale.clone(),
        );
        let key_reload_failures = Counter::default();
        registry.register(
            "key_reload_failures",
            "Failed loads of the shared key state",
            key_reload_failures.clone(),
        );
        let segment_requests = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "segment_requests",
            "Segment answers (sealed and HLS: 200, 206, 304) by the scope of the token: play (a player at the origin) or edge (a CDN edge pulling for its cache)",
            segment_requests.clone(),
        );
        let segment_bytes = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "segment_bytes",
            "Bytes of segment bodies answered (a HEAD counts what its GET would send), by the scope of the token",
            segment_bytes.clone(),
        );
        let by_scope = |scope| {
            let labels = ScopeLabels { scope };
            (
                segment_requests.get_or_create(&labels).clone(),
                segment_bytes.get_or_create(&labels).clone(),
            )
        };
        let hot = HotSeries {
            segments_play: by_scope("play"),
            segments_edge: by_scope("edge"),
            segment_ok: requests
                .get_or_create(&RequestLabels {
                    route: SEGMENT_ROUTE,
                    status: 200,
                })
                .clone(),
            segment_latency: latency
                .get_or_create(&RouteLabels {
                    route: SEGMENT_ROUTE,
                })
                .clone(),
            token_ok: token_checks
                .get_or_create(&OutcomeLabels { outcome: "ok" })
                .clone(),
        };
        Metrics {
            registry,
            requests,
            latency,
            token_checks,
            denials,
            token_cache_hits,
            token_cache_misses,
            segment_cache_bytes,
            segment_pages_pinned_bytes,
            express_responses,
            express_handoffs,
            connections_open,
            key_state_version,
            key_state_stale,
            key_reload_failures,
            segment_requests,
            segment_bytes,
            hot,
        }
    }

    /// Counts an entitlement denial by its reason.
    pub fn count_denial(&self, d: &Denied) {
        self.denials
            .get_or_create(&OutcomeLabels {
                outcome: d.problem_type(),
            })
            .inc();
    }

    /// Counts a segment answered to `audience` with a body of `bytes`.
    pub fn count_segment(&self, audience: Audience, bytes: u64) {
        let (requests, body) = match audience {
            Audience::Edge => &self.hot.segments_edge,
            Audience::Player => &self.hot.segments_play,
        };
        requests.inc();
        body.inc_by(bytes);
    }

    /// Counts one answered request and its latency.
    pub fn record_request(&self, route: &'static str, status: u16, seconds: f64) {
        let hot = route == SEGMENT_ROUTE;
        if hot && status == 200 {
            self.hot.segment_ok.inc();
        } else {
            self.requests
                .get_or_create(&RequestLabels { route, status })
                .inc();
        }
        if hot {
            self.hot.segment_latency.observe(seconds);
        } else {
            self.latency
                .get_or_create(&RouteLabels { route })
                .observe(seconds);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
