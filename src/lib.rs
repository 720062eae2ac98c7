//! encore: a license-gated album streaming origin.
//!
//! Layout, one folder per concern, lowest layer first: a module imports only from the layers
//! below it (`docs/ARCHITECTURE.md` gives the layers, the known exceptions and the path of a
//! request through them). Outside tests, only `http/` touches hyper types.
//! - [`clock`]: the [`clock::Clock`] every time-based decision reads.
//! - [`durable`]: crash-safe file writes (temp file, fsync, rename, fsync dir).
//! - [`crashpoint`]: named SIGKILL points for crash tests.
//! - [`seal`]: the cryptography: AES-256-GCM segment seals, content-key wrapping, Ed25519 keys.
//! - [`media`]: the rendition names ([`media::Rendition`]), decode (symphonia), resample,
//!   encode (FLAC, Opus, AAC), previews, fMP4 muxing, loudness (BS.1770-4), lyrics (LRC).
//! - [`catalog`]: albums on disk: folder scan, `album.toml`, track order, cover art.
//! - [`config`]: `encore.toml`, validated, with flags and env layered on top.
//! - [`store`]: the packaged store: manifests and sealed segments, the segment cache.
//! - [`ledger`]: purchases and refunds (sqlx), group commit, buyer numbers, sales charts.
//! - [`keys`]: the keys directory (keyring, account keys, signing-key life) and key rotation.
//! - [`license`]: tokens (mint, verify, cache), revocations, and entitlement grants.
//! - [`hls`]: HLS playlists and AES-128 segments made from the sealed store on the way out.
//! - [`ingest`]: the pipeline from an album folder to the packaged store, with progress.
//! - [`app`]: the application apart from any transport: state, reloads, background work.
//! - [`http`]: the server: express lane, hyper, routes, ops, problem+json, sendfile.
//! - [`client`]: the reference client behind `encore fetch`.
//! - [`edge`]: the nginx configuration of a CDN edge (`encore edge-config`).
//! - [`cli`]: the `encore` command line.
//! - `fuzzing` (tests only): property-test case counts.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod crashpoint;
pub mod durable;
pub mod edge;
#[cfg(test)]
mod fuzzing;
pub mod hls;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod ledger;
pub mod license;
pub mod media;
pub mod seal;
pub mod store;
