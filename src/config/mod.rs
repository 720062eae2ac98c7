//! `encore.toml`: a raw serde form, then a validated [`Config`]; flags and env override the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod limits;
mod store;

pub use limits::Limits;
pub use store::{BucketLocation, RawStore, StoreSettings};

/// Default config file looked for in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "encore.toml";
/// More connection threads than this is a typo, not a machine (the metric label is a u16 too).
pub const MAX_CONNECTION_THREADS: usize = 1024;

/// One connection thread per CPU this process may run on (its affinity mask and cgroup quota
/// count, so `taskset -c 1 encore serve` gets one).
pub fn default_connection_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_CONNECTION_THREADS)
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for encore.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value is out of range.
    #[error("config: {key} {problem}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// `encore.toml` as written: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[paths]`.
    #[serde(default)]
    pub paths: RawPaths,
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[ingest]`.
    #[serde(default)]
    pub ingest: RawIngest,
    /// `[ledger]`.
    #[serde(default)]
    pub ledger: RawLedger,
    /// `[keys]`.
    #[serde(default)]
    pub keys: RawKeys,
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
}

/// `[keys]` section: token lifetimes and the timing of key rotations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// Time between publishing a rotated-in signing key in the JWKS and signing with it,
    /// seconds (default 600: longer than edges cache the JWKS, `max-age=300`).
    pub signing_propagation_seconds: Option<u64>,
    /// Longest lifetime (`exp - iat`) of any token accepted, seconds (default 604800 = 7
    /// days): how long a superseded signing key keeps verifying.
    pub max_token_seconds: Option<u64>,
    /// Clock skew tolerated on token times, seconds (default 30).
    pub token_leeway_seconds: Option<u64>,
    /// How often `encore serve` retires and deletes what rotations scheduled, seconds
    /// (default 60).
    pub maintenance_interval_seconds: Option<u64>,
    /// Where the keys live: `"folder"` (default: the keys folder) or `"database"` (the
    /// ledger's database, shared by every origin; the keys folder holds only the KEK).
    pub store: Option<String>,
}

/// Where the keys live (`keys.store`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyStoreKind {
    /// Every key file in the keys folder: one machine.
    #[default]
    Folder,
    /// The key state in the ledger's database, shared by every origin; each node's keys
    /// folder holds its KEK file(s).
    Database,
}

/// Validated `[keys]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// JWKS-before-signing delay, seconds.
    pub signing_propagation_seconds: u64,
    /// Longest accepted token lifetime, seconds.
    pub max_token_seconds: u64,
    /// Clock skew tolerated, seconds.
    pub token_leeway_seconds: u64,
    /// Maintenance period of `encore serve`.
    pub maintenance_interval: std::time::Duration,
    /// Where the keys live.
    pub store: KeyStoreKind,
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings {
            signing_propagation_seconds: 600,
            max_token_seconds: 7 * 86_400,
            token_leeway_seconds: 30,
            maintenance_interval: std::time::Duration::from_secs(60),
            store: KeyStoreKind::Folder,
        }
    }
}

impl KeySettings {
    /// How long after a successor starts signing a superseded key keeps verifying: no token
    /// it signed can be valid after that.
    pub fn token_horizon_seconds(&self) -> u64 {
        self.max_token_seconds
            .saturating_add(self.token_leeway_seconds)
    }
}

/// `[ledger]` section: purchases, play-token exchange.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    /// Database URL (default: `sqlite://<data>/ledger.sqlite`).
    pub url: Option<String>,
    /// `iss` of account tokens from the platform's account service (default
    /// `encore-accounts`); their public keys are `keys/accounts/*.pub.pem`.
    pub account_issuer: Option<String>,
    /// Lifetime of play tokens from `POST /v1/play-tokens`, seconds (default 3600).
    pub play_token_seconds: Option<u64>,
    /// Longest play-token lifetime accepted, seconds (default 604800 = 7 days); also how
    /// long a refund stays on the revocation list.
    pub max_play_token_seconds: Option<u64>,
    /// Shortest time between two computations of one chart window, milliseconds (default
    /// 1000): however many readers and purchases, a chart is computed at most this often.
    pub chart_refresh_ms: Option<u64>,
    /// How often each origin reads the change feed whatever the notifications say,
    /// milliseconds (default 250): the bound on how long a refund made through another
    /// origin stays playable here when its notification is lost.
    pub catch_up_ms: Option<u64>,
    /// How long the entitlement change feed keeps a row, seconds (default 86400 = 1 day):
    /// an origin cut off from the database for longer rebuilds its revocation list from the
    /// purchases when it is back instead of reading the changes it missed.
    pub change_feed_retention_seconds: Option<u64>,
    /// How long the recipient of a gift may decline it (a refund), seconds from the purchase
    /// (default 604800 = 7 days).
    pub gift_decline_seconds: Option<u64>,
    /// Devices a user may have registered at once for offline licenses (default 5).
    pub max_devices: Option<u32>,
    /// Lifetime of an offline license (and of each renewal), seconds (default 2592000 = 30
    /// days): how long a copy keeps playing after a refund or a removed device at most.
    pub offline_license_seconds: Option<u64>,
}

/// Validated `[ledger]` settings.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// Database URL; None = SQLite in the data dir.
    pub url: Option<String>,
    /// Issuer of account tokens.
    pub account_issuer: String,
    /// Lifetime of exchanged play tokens, seconds.
    pub play_token_seconds: u64,
    /// Longest accepted play-token lifetime, seconds.
    pub max_play_token_seconds: u64,
    /// Shortest time between two computations of one chart window.
    pub chart_refresh: std::time::Duration,
    /// Period of the change feed's catch-up (`app::changes`).
    pub catch_up: std::time::Duration,
    /// How long the entitlement change feed keeps a row (`app::background`).
    pub change_feed_retention: std::time::Duration,
    /// How long a gift's recipient may decline it, seconds.
    pub gift_decline_seconds: u64,
    /// Devices a user may have registered at once.
    pub max_devices: u32,
    /// Lifetime of an offline license or renewal, seconds.
    pub offline_license_seconds: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            url: None,
            account_issuer: "encore-accounts".into(),
            play_token_seconds: 3600,
            max_play_token_seconds: 7 * 86_400,
            chart_refresh: std::time::Duration::from_secs(1),
            catch_up: std::time::Duration::from_millis(250),
            change_feed_retention: std::time::Duration::from_secs(86_400),
            gift_decline_seconds: 7 * 86_400,
            max_devices: 5,
            offline_license_seconds: 30 * 86_400,
        }
    }
}

/// `[paths]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    /// Folder of album folders (default `media`).
    pub media: Option<PathBuf>,
    /// Keys folder (default `keys`).
    pub keys: Option<PathBuf>,
    /// Data folder holding the packaged store (default `data`).
    pub data: Option<PathBuf>,
}

/// `[server]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Memory for cached sealed segments, MiB (default 256).
    pub segment_cache_mb: Option<u64>,
    /// Memory for the catalog's records and manifests loaded on demand, MiB (default 64).
    pub catalog_cache_mb: Option<u64>,
    /// Connections served at once (default 4096).
    pub max_connections: Option<usize>,
    /// Threads that serve connections, each with its own event loop (default 0: one per CPU
    /// the process may run on).
    pub connection_threads: Option<usize>,
    /// Deadline for producing a response, seconds (default 30).
    pub request_timeout_seconds: Option<u64>,
    /// Time in-flight responses get after SIGTERM, seconds (default 20).
    pub shutdown_grace_seconds: Option<u64>,
    /// Expected `iss` of tokens (default `encore`).
    pub issuer: Option<String>,
    /// Expected `aud` of tokens (default `encore`).
    pub audience: Option<String>,
    /// Log format: `text` (default) or `json`.
    pub log_format: Option<String>,
    /// Watch the media folder and package new or changed albums (default true).
    pub watch_media: Option<bool>,
    /// Answer plain HTTP/1.1 segment requests in the express lane (default true; false sends
    /// every request through hyper).
    pub express_lane: Option<bool>,
    /// Lock cached segments' store-file pages in the page cache, so a hit never waits for the
    /// disk (default true; false leaves them to the kernel's reclaim).
    pub pin_segment_pages: Option<bool>,
}

/// Validated `[server]` settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// PEM certificate chain and key, when HTTPS is on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Segment cache capacity in bytes.
    pub segment_cache_bytes: u64,
    /// How much of the catalog stays in memory.
    pub catalog_cache: crate::store::library::CacheBounds,
    /// Connections served at once.
    pub max_connections: usize,
    /// Threads that serve connections.
    pub connection_threads: usize,
    /// Per-request deadline.
    pub request_timeout: std::time::Duration,
    /// Grace period at shutdown.
    pub shutdown_grace: std::time::Duration,
    /// Token issuer.
    pub issuer: String,
    /// Token audience.
    pub audience: String,
    /// JSON logs.
    pub json_logs: bool,
    /// Watch `media/` for new albums.
    pub watch_media: bool,
    /// Plain HTTP/1.1 segment requests take the express lane.
    pub express_lane: bool,
    /// Cached segments' store-file pages are locked in the page cache.
    pub pin_segment_pages: bool,
    /// Purchases and token exchange.
    pub ledger: LedgerSettings,
    /// Token lifetimes and key rotation timing.
    pub keys: KeySettings,
}

/// `[ingest]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// Target media segment length in seconds (default 6; 1 to 30).
    pub segment_seconds: Option<f64>,
    /// Bitrate of the `high` Opus tier for stereo, kbit/s (default 256; mono gets half).
    pub high_kbps: Option<u32>,
    /// Bitrate of the `standard` Opus tier and the (AAC) preview for stereo, kbit/s (default 128).
    pub standard_kbps: Option<u32>,
    /// Bitrate of the `aac` rendition (AAC-LC, constant) for stereo, kbit/s (default 256,
    /// 64 to 320; mono gets half).
    pub aac_kbps: Option<u32>,
    /// Tracks packaged at once (default 0 = one per CPU core).
    pub parallelism: Option<usize>,
}

/// Settings that shape packaged output; part of each track's fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestSettings {
    /// Target segment length in seconds.
    pub segment_seconds: f64,
    /// `high` tier, bit/s for stereo.
    pub high_bitrate: u32,
    /// `standard` tier and preview, bit/s for stereo.
    pub standard_bitrate: u32,
    /// `aac` rendition, bit/s for stereo.
    pub aac_bitrate: u32,
    /// Tracks packaged at once.
    pub parallelism: usize,
    /// Measure loudness (BS.1770-4) at ingest. On unless `encore ingest --no-loudness`
    /// (which exists to measure what the pass costs); not part of the fingerprint, since it
    /// changes no packaged byte.
    pub loudness: bool,
}

impl IngestSettings {
    /// A stable description of everything that changes the packaged bytes.
    pub fn fingerprint(&self) -> String {
        format!(
            "seg={};high={};std={};aac={}",
            self.segment_seconds, self.high_bitrate, self.standard_bitrate, self.aac_bitrate
        )
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            segment_seconds: 6.0,
            high_bitrate: 256_000,
            standard_bitrate: 128_000,
            // What Apple sells and streams AAC at; above the 160 kbit/s top of the authoring
            // spec's table (a SHOULD), chosen so the Apple rendition is not worse than `high`.
            aac_bitrate: 256_000,
            parallelism: default_parallelism(),
            loudness: true,
        }
    }
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder of album folders.
    pub media_dir: PathBuf,
    /// Keys folder.
    pub keys_dir: PathBuf,
    /// Data folder.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: String,
    /// Ingest settings.
    pub ingest: IngestSettings,
    /// Server settings.
    pub server: ServerSettings,
    /// Where the packaged store lives.
    pub store: StoreSettings,
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--media` / `ENCORE_MEDIA`.
    pub media: Option<PathBuf>,
    /// `--keys` / `ENCORE_KEYS`.
    pub keys: Option<PathBuf>,
    /// `--data` / `ENCORE_DATA`.
    pub data: Option<PathBuf>,
    /// `--listen` / `ENCORE_LISTEN`.
    pub listen: Option<String>,
    /// `--segment-seconds`.
    pub segment_seconds: Option<f64>,
    /// `--jobs`.
    pub parallelism: Option<usize>,
    /// `--log-json`.
    pub json_logs: bool,
}

impl Config {
    /// The packaged store, keeping replaced generations served as long as a license issued
    /// before the switch can live (longest play token plus leeway).
    pub fn store(&self) -> crate::store::Store {
        crate::store::Store::new(&self.data_dir).with_retire_grace(
            self.server
                .ledger
                .max_play_token_seconds
                .saturating_add(self.server.keys.token_leeway_seconds),
        )
    }

    /// Loads `file` (or `encore.toml` if present when `file` is None), then applies overrides.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = match file {
            Some(path) => read_raw(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                read_raw(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => RawConfig::default(),
        };
        Config::from_raw(raw, overrides)
    }

    /// Validates a raw config with overrides applied.
    pub fn from_raw(raw: RawConfig, o: &Overrides) -> Result<Config, ConfigError> {
        let defaults = IngestSettings::default();
        let segment_seconds = o
            .segment_seconds
            .or(raw.ingest.segment_seconds)
            .unwrap_or(defaults.segment_seconds);
        if !(1.0..=30.0).contains(&segment_seconds) {
            return Err(ConfigError::Invalid {
                key: "ingest.segment_seconds",
                problem: format!("is {segment_seconds}; use 1 to 30"),
            });
        }
        let kbps = |key: &'static str, v: Option<u32>, default: u32| -> Result<u32, ConfigError> {
            let v = v.map(|k| k * 1000).unwrap_or(default);
            if (12_000..=510_000).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::Invalid {
                    key,
                    problem: format!("is {} kbit/s; Opus takes 12 to 510", v / 1000),
                })
            }
        };
        let high_bitrate = kbps(
            "ingest.high_kbps",
            raw.ingest.high_kbps,
            defaults.high_bitrate,
        )?;
        let standard_bitrate = kbps(
            "ingest.standard_kbps",
            raw.ingest.standard_kbps,
            defaults.standard_bitrate,
        )?;
        let aac_bitrate = raw
            .ingest
            .aac_kbps
            .map(|k| k.saturating_mul(1000))
            .unwrap_or(defaults.aac_bitrate);
        // Below 64 kbit/s stereo AAC-LC is audibly poor (HE-AAC's range, which Apple's rules
        // forbid above 64 kbit/s anyway); 320 is the top rate in common use.
        if !(64_000..=320_000).contains(&aac_bitrate) {
            return Err(ConfigError::Invalid {
                key: "ingest.aac_kbps",
                problem: format!(
                    "is {} kbit/s; AAC-LC stereo takes 64 to 320",
                    aac_bitrate / 1000
                ),
            });
        }
        let parallelism = match o.parallelism.or(raw.ingest.parallelism) {
            None | Some(0) => defaults.parallelism,
            Some(n) => n.min(256),
        };
        let s = raw.server;
        let listen = o
            .listen
            .clone()
            .or(s.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "server.tls_cert",
                    problem: "and server.tls_key must be set together".into(),
                });
            }
        };
        let log_format = s.log_format.unwrap_or_else(|| "text".into());
        if log_format != "text" && log_format != "json" {
            return Err(ConfigError::Invalid {
                key: "server.log_format",
                problem: format!("is {log_format:?}; use \"text\" or \"json\""),
            });
        }
        let d = Limits::default();
        let server = ServerSettings {
            tls,
            segment_cache_bytes: s.segment_cache_mb.unwrap_or(256).clamp(1, 1 << 20) * 1024 * 1024,
            catalog_cache: crate::store::library::CacheBounds {
                bytes: s.catalog_cache_mb.unwrap_or(64).clamp(1, 1 << 20) * 1024 * 1024,
            },
            max_connections: s.max_connections.unwrap_or(d.max_connections).max(1),
            connection_threads: match s.connection_threads.unwrap_or(0) {
                0 => d.connection_threads,
                n => n.min(MAX_CONNECTION_THREADS),
            },
            request_timeout: s.request_timeout_seconds.map_or(d.request_timeout, |t| {
                std::time::Duration::from_secs(t.max(1))
            }),
            shutdown_grace: s
                .shutdown_grace_seconds
                .map_or(d.shutdown_grace, std::time::Duration::from_secs),
            issuer: s.issuer.unwrap_or_else(|| "encore".into()),
            audience: s.audience.unwrap_or_else(|| "encore".into()),
            json_logs: o.json_logs || log_format == "json",
            watch_media: s.watch_media.unwrap_or(true),
            express_lane: s.express_lane.unwrap_or(true),
            pin_segment_pages: s.pin_segment_pages.unwrap_or(true),
            ledger: ledger_settings(raw.ledger)?,
            keys: key_settings(raw.keys)?,
        };
        if server.ledger.max_play_token_seconds > server.keys.max_token_seconds {
            return Err(ConfigError::Invalid {
                key: "ledger.max_play_token_seconds",
                problem: format!(
                    "is {}; it cannot exceed keys.max_token_seconds ({})",
                    server.ledger.max_play_token_seconds, server.keys.max_token_seconds
                ),
            });
        }
        Ok(Config {
            server,
            store: store::store_settings(raw.store)?,
            media_dir: o
                .media
                .clone()
                .or(raw.paths.media)
                .unwrap_or_else(|| "media".into()),
            keys_dir: o
                .keys
                .clone()
                .or(raw.paths.keys)
                .unwrap_or_else(|| "keys".into()),
            data_dir: o
                .data
                .clone()
                .or(raw.paths.data)
                .unwrap_or_else(|| "data".into()),
            listen,
            ingest: IngestSettings {
                segment_seconds,
                high_bitrate,
                standard_bitrate,
                aac_bitrate,
                parallelism,
                loudness: true,
            },
        })
    }
}

fn ledger_settings(raw: RawLedger) -> Result<LedgerSettings, ConfigError> {
    let d = LedgerSettings::default();
    let max = raw
        .max_play_token_seconds
        .unwrap_or(d.max_play_token_seconds);
    let ttl = raw.play_token_seconds.unwrap_or(d.play_token_seconds);
    if max == 0 {
        return Err(ConfigError::Invalid {
            key: "ledger.max_play_token_seconds",
            problem: "must be more than 0".into(),
        });
    }
    if ttl == 0 || ttl > max {
        return Err(ConfigError::Invalid {
            key: "ledger.play_token_seconds",
            problem: format!("is {ttl}; use 1 to ledger.max_play_token_seconds ({max})"),
        });
    }
    let catch_up = raw
        .catch_up_ms
        .map_or(d.catch_up, std::time::Duration::from_millis);
    if catch_up.is_zero() {
        return Err(ConfigError::Invalid {
            key: "ledger.catch_up_ms",
            problem: "must be more than 0".into(),
        });
    }
    let change_feed_retention = raw
        .change_feed_retention_seconds
        .map_or(d.change_feed_retention, std::time::Duration::from_secs);
    if change_feed_retention.is_zero() {
        return Err(ConfigError::Invalid {
            key: "ledger.change_feed_retention_seconds",
            problem: "must be more than 0".into(),
        });
    }
    let max_devices = raw.max_devices.unwrap_or(d.max_devices);
    if max_devices == 0 {
        return Err(ConfigError::Invalid {
            key: "ledger.max_devices",
            problem: "must be more than 0".into(),
        });
    }
    let offline_license_seconds = raw
        .offline_license_seconds
        .unwrap_or(d.offline_license_seconds);
    if offline_license_seconds == 0 || offline_license_seconds > 366 * 86_400 {
        return Err(ConfigError::Invalid {
            key: "ledger.offline_license_seconds",
            problem: format!("is {offline_license_seconds}; use 1 to 31622400 (366 days)"),
        });
    }
    let account_issuer = raw.account_issuer.unwrap_or(d.account_issuer);
    if account_issuer.is_empty() {
        return Err(ConfigError::Invalid {
            key: "ledger.account_issuer",
            problem: "must not be empty".into(),
        });
    }
    Ok(LedgerSettings {
        url: raw.url.filter(|u| !u.is_empty()),
        account_issuer,
        play_token_seconds: ttl,
        max_play_token_seconds: max,
        chart_refresh: raw
            .chart_refresh_ms
            .map_or(d.chart_refresh, std::time::Duration::from_millis),
        catch_up,
        change_feed_retention,
        gift_decline_seconds: raw.gift_decline_seconds.unwrap_or(d.gift_decline_seconds),
        max_devices,
        offline_license_seconds,
    })
}

fn key_settings(raw: RawKeys) -> Result<KeySettings, ConfigError> {
    let d = KeySettings::default();
    let max_token_seconds = raw.max_token_seconds.unwrap_or(d.max_token_seconds);
    if max_token_seconds == 0 {
        return Err(ConfigError::Invalid {
            key: "keys.max_token_seconds",
            problem: "must be more than 0".into(),
        });
    }
    let leeway = raw.token_leeway_seconds.unwrap_or(d.token_leeway_seconds);
    if leeway > 300 {
        return Err(ConfigError::Invalid {
            key: "keys.token_leeway_seconds",
            problem: format!("is {leeway}; use 0 to 300"),
        });
    }
    let interval = raw
        .maintenance_interval_seconds
        .unwrap_or(d.maintenance_interval.as_secs());
    if interval == 0 {
        return Err(ConfigError::Invalid {
            key: "keys.maintenance_interval_seconds",
            problem: "must be more than 0".into(),
        });
    }
    Ok(KeySettings {
        signing_propagation_seconds: raw
            .signing_propagation_seconds
            .unwrap_or(d.signing_propagation_seconds),
        max_token_seconds,
        token_leeway_seconds: leeway,
        maintenance_interval: std::time::Duration::from_secs(interval),
        store: match raw.store.as_deref() {
            None | Some("folder") => KeyStoreKind::Folder,
            Some("database") => KeyStoreKind::Database,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "keys.store",
                    problem: format!("is {other:?}; use \"folder\" or \"database\""),
                });
            }
        },
    })
}

fn read_raw(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        let c = Config::from_raw(RawConfig::default(), &Overrides::default()).unwrap();
        assert_eq!(c.media_dir, PathBuf::from("media"));
        assert_eq!(c.ingest.segment_seconds, 6.0);
        assert_eq!(c.ingest.high_bitrate, 256_000);
    }

    #[test]
    fn overrides_win_over_file() {
        let raw: RawConfig =
            toml::from_str("[paths]\nmedia = \"m\"\n[ingest]\nsegment_seconds = 4.0\n").unwrap();
        let o = Overrides {
            media: Some("x".into()),
            ..Default::default()
        };
        let c = Config::from_raw(raw, &o).unwrap();
        assert_eq!(c.media_dir, PathBuf::from("x"));
        assert_eq!(c.ingest.segment_seconds, 4.0);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<RawConfig>("[ingest]\nsegment_secs = 4\n").is_err());
        let raw: RawConfig = toml::from_str("[ingest]\nsegment_seconds = 0.1\n").unwrap();
        let err = Config::from_raw(raw, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("ingest.segment_seconds"));
    }

    #[test]
    fn connection_threads_default_to_the_cpus_and_are_bounded() {
        let c = Config::from_raw(RawConfig::default(), &Overrides::default()).unwrap();
        assert_eq!(c.server.connection_threads, default_connection_threads());
        assert!(c.server.connection_threads >= 1);
        let raw: RawConfig = toml::from_str("[server]\nconnection_threads = 3\n").unwrap();
        let c = Config::from_raw(raw, &Overrides::default()).unwrap();
        assert_eq!(c.server.connection_threads, 3);
        let raw: RawConfig = toml::from_str("[server]\nconnection_threads = 100000\n").unwrap();
        let c = Config::from_raw(raw, &Overrides::default()).unwrap();
        assert_eq!(c.server.connection_threads, MAX_CONNECTION_THREADS);
    }

    #[test]
    fn page_pinning_is_on_unless_turned_off() {
        let c = Config::from_raw(RawConfig::default(), &Overrides::default()).unwrap();
        assert!(c.server.pin_segment_pages);
        let raw: RawConfig = toml::from_str("[server]\npin_segment_pages = false\n").unwrap();
        let c = Config::from_raw(raw, &Overrides::default()).unwrap();
        assert!(!c.server.pin_segment_pages);
    }

    #[test]
    fn aac_bitrate_defaults_and_bounds() {
        let c = Config::from_raw(RawConfig::default(), &Overrides::default()).unwrap();
        assert_eq!(c.ingest.aac_bitrate, 256_000);
        let raw: RawConfig = toml::from_str("[ingest]\naac_kbps = 192\n").unwrap();
        let c = Config::from_raw(raw, &Overrides::default()).unwrap();
        assert_eq!(c.ingest.aac_bitrate, 192_000);
        for bad in [32, 400, u32::MAX] {
            let raw: RawConfig = toml::from_str(&format!("[ingest]\naac_kbps = {bad}\n")).unwrap();
            let err = Config::from_raw(raw, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("ingest.aac_kbps"), "{err}");
        }
    }
}
