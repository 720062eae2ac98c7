//! The reference client behind `encore fetch`: license, manifest, segments, seal check, one
//! playable fMP4 file. Also what the integration tests use to talk to a running server.
//!
//! - [`api`]: the JSON documents of `docs/HTTP.md` as the client reads them.
//! - [`fetch`](mod@fetch): the download itself ([`fetch()`], [`FetchRequest`], [`FetchReport`]).
//! - [`error`]: [`FetchError`], with messages a person understands.
//! - `transport`: the HTTP client, retries and the mapping of HTTP errors.
//! - `retry`: which failures are worth another attempt, and how long to wait.
//! - `output`: the output file, renamed into place only once complete.

pub mod api;
pub mod error;
pub mod fetch;
mod output;
mod retry;
#[cfg(test)]
mod testserver;
mod token;
mod transport;

pub use api::{License, LicenseKey, LicenseRequest, Manifest, Problem, SegmentRef};
pub use error::{FetchError, SegmentFault};
pub use fetch::{FetchReport, FetchRequest, fetch, fetch_extra};
pub use token::Token;
