//! encore: a license-gated album streaming origin.
//!
//! Layout (one folder per concern; only `http/` will touch hyper types):
//! - [`clock`]: the [`clock::Clock`] every time-based decision reads.
//! - [`catalog`]: albums on disk: folder scan, `album.toml`, track order, cover art.
//! - [`media`]: decode (symphonia), resample, encode (FLAC, Opus), preview clips, fMP4 muxing.
//! - [`seal`]: the cryptography: AES-256-GCM segment seals, content-key wrapping, Ed25519 key
//!   pairs, secret key types.
//! - [`keys`]: the keys directory (keyring: init, content keys, signing keys, listing; account
//!   keys; signing-key lifecycle) and key rotation for licensing staff, with its audit log.
//! - [`store`]: the packaged store on disk: manifests and sealed segments, written atomically.
//! - [`license`]: tokens (verify, cache, mint) and the entitlement types the HTTP layer needs.
//! - [`ledger`]: purchases and refunds (SQLite through sqlx), buyer numbers, sales charts.
//! - [`hls`]: HLS playlists and AES-128 segments made from the sealed store on the way out.
//! - [`app`]: the application apart from any transport: its state (store, keys, ledger,
//!   rotation jobs, metrics), key and catalog reloads, and a server's background work.
//! - [`http`]: the hyper server: routes, problem+json, ranges, graceful shutdown; translates
//!   requests into calls on [`app::App`].
//! - [`client`]: the reference client behind `encore fetch`.
//! - [`ingest`]: the pipeline from an album folder to the packaged store, with progress.
//! - [`crashpoint`]: named SIGKILL points for crash tests.
//! - [`durable`]: crash-safe file writes (temp file, fsync, rename, fsync dir).
//! - [`config`]: `encore.toml`, validated, with flags and env layered on top.
//! - [`cli`]: the `encore` command line.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod crashpoint;
pub mod durable;
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
