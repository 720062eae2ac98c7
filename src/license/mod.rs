//! Tokens and entitlement: minting and verifying the EdDSA JWTs players and edges present, a
//! cache of verified tokens, and the checks that turn a verified token into a grant to serve
//! a segment or a license.
//!
//! - [`claims`]: [`Claims`] and [`Scope`].
//! - [`clock`]: the crate's [`Clock`] (re-exported), which every expiry decision reads.
//! - [`mint`](mod@mint): [`mint()`] signs a token with the active signing key.
//! - [`verify`]: [`TokenVerifier`], header policy and signature and claim checks.
//! - [`cache`]: [`TokenCache`], verified tokens kept until they expire.
//! - [`revocation`]: [`RevocationList`], refunds that outrank the albums a token names.
//! - [`entitlement`]: [`SegmentGrant`] and [`LicenseGrant`], constructible only by the checks.

pub mod cache;
pub mod claims;
/// The crate's clock, under the path token code has always used.
pub use crate::clock;
pub mod entitlement;
pub mod mint;
pub mod revocation;
pub mod verify;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testutil;

pub use cache::{CacheConfig, CacheStats, TokenCache, TokenMemo};
pub use claims::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Scope, ScopeParseError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use entitlement::{
    Audience, Denied, EDGE_CHECK_TTL_MAX, EdgeCheck, ExtraGrant, LicenseGrant, SegmentGrant,
    authorize_edge, authorize_extra, authorize_license, authorize_segment, edge_check_lifetime,
};
pub use mint::{DEFAULT_TTL_SECONDS, MintError, MintRequest, mint};
pub use revocation::RevocationList;
pub use verify::{
    ACCOUNT_SCOPES, ENCORE_SCOPES, TokenError, TokenVerifier, VerifiedToken, VerifierConfig,
};
