//! RFC 9457 problem details: the one place domain errors become HTTP statuses.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::hls::HlsError;
use crate::ledger::{FieldError, LedgerError};
use crate::license::{Denied, TokenError};

/// Every error a request can end in. Mapped to a response by [`ApiError::into_response`]
/// with an exhaustive match, so a new variant cannot slip through as a 500.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token was presented.
    #[error("this resource needs a bearer token")]
    TokenMissing,
    /// The token failed verification.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// A valid token without the entitlement.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// No such album, track, rendition or segment.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A launch: the album's sales open at this time (Unix seconds), not yet.
    #[error("this album goes on sale at {}", crate::ledger::time::format_rfc3339(*.0))]
    NotOnSale(i64),
    /// The request is refused in the resource's present state; `type` and detail say why
    /// (gifts, clubs).
    #[error("{1}")]
    State(&'static str, String),
    /// Valid token, but the resource is someone else's (gifts, clubs); `type` says which.
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// A body field is missing, malformed or out of range; the problem names it.
    #[error("{0}")]
    BadField(#[from] FieldError),
    /// The request contradicts what was recorded before (same order id, other body).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than this route accepts.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The method is not allowed on this path, which takes these (its `Allow`).
    #[error("method not allowed; this resource takes {0}")]
    MethodNotAllowed(&'static str),
    /// The range lies past the end of a body of this many bytes.
    #[error("range not satisfiable for a body of {0} bytes")]
    RangeNotSatisfiable(u64),
    /// The ledger cannot commit now (full disk, I/O error, lost database); nothing was
    /// recorded, and the same request may be sent again after `Retry-After`.
    #[error("{0}")]
    LedgerUnavailable(String),
    /// The bucket behind the store cannot be reached now; the same request may be sent again
    /// after `Retry-After`.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The server is still packaging its catalog.
    #[error("not ready yet: {0}")]
    NotReady(String),
    /// The request took longer than the per-request deadline.
    #[error("the request took too long")]
    Timeout,
    /// A key operation could not be carried out as asked; the detail says why and what to do.
    #[error("{0}")]
    KeyOperation(String),
    /// Our fault; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

/// Problem details never carry filesystem paths (they would map the server for a caller):
/// errors that name a keys or store folder are restated from their parts here, and the full
/// error goes to the server log only.
impl From<crate::keys::rotation::RotationError> for ApiError {
    fn from(e: crate::keys::rotation::RotationError) -> Self {
        use crate::keys::KeyError;
        use crate::keys::rotation::RotationError;
        match e {
            // Built from album and track names only.
            RotationError::NotFound(detail) => ApiError::NotFound(detail),
            RotationError::Key(KeyError::UnknownSigningKey { kid, .. }) => ApiError::NotFound(
                format!("no signing key {kid}; GET /v1/admin/keys lists the keys"),
            ),
            RotationError::Key(KeyError::NoContentKeys { album, .. }) => ApiError::NotFound(
                format!("album {album} has no content keys; package it first (`encore ingest`)"),
            ),
            RotationError::Damaged { ref what, .. } => {
                tracing::error!("{e}");
                ApiError::KeyOperation(format!(
                    "cannot re-seal {what} (the server log says why); re-package the album \
                     (`encore ingest --force`) or run the rotation again"
                ))
            }
            // The keys directory or the store failed us, never the request: listed one by
            // one so that a new variant is a decision.
            RotationError::Key(
                KeyError::NotInitialized { .. }
                | KeyError::Io { .. }
                | KeyError::Corrupt { .. }
                | KeyError::TooOpen { .. }
                | KeyError::UnsupportedFormat { .. }
                | KeyError::Missing { .. }
                | KeyError::Rng(_)
                | KeyError::InvalidAlbum { .. }
                | KeyError::Context(_)
                | KeyError::UnknownKek { .. }
                | KeyError::Unwrap { .. }
                | KeyError::NoSigner { .. }
                | KeyError::Database { .. }
                | KeyError::KekNotHere { .. },
            )
            | RotationError::Store(_)
            | RotationError::Audit { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Conflict(_) => ApiError::Conflict(e.to_string()),
            LedgerError::UnknownOrder(_) => ApiError::NotFound(e.to_string()),
            LedgerError::ClubNameTaken(_) => ApiError::State("club-name-taken", e.to_string()),
            LedgerError::UnknownClub(_) => ApiError::NotFound(e.to_string()),
            LedgerError::Unavailable(_) => {
                // The cause (a path, a database message) is for the log, not the client.
                tracing::error!("{e}");
                ApiError::LedgerUnavailable(
                    "the purchase ledger cannot record anything right now; nothing was recorded: retry later".into(),
                )
            }
            // The ledger's own failures (opening, migrating, a query, a corrupt row, a failed
            // group commit, the writer gone): never the request's fault; listed one by one so
            // a new variant is a decision.
            LedgerError::Open { .. }
            | LedgerError::Unsupported(_)
            | LedgerError::Migrate(_)
            | LedgerError::Query(_)
            | LedgerError::Corrupt(_)
            | LedgerError::BatchFailed(_)
            | LedgerError::WriterGone
            | LedgerError::Writer { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<HlsError> for ApiError {
    fn from(e: HlsError) -> Self {
        // Every way of failing to make an HLS segment or key is the store's or the keyring's
        // fault, never the request's; listed one by one so a new variant is a decision.
        match e {
            HlsError::Open { .. }
            | HlsError::NameTooLong { .. }
            | HlsError::KeyDerivation
            | HlsError::BadPadding
            | HlsError::Keyring { .. }
            | HlsError::NoContentKey(_)
            | HlsError::KeyMismatch { .. }
            | HlsError::Task(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// Prefix of every problem `type`.
pub const PROBLEM_PREFIX: &str = "urn:encore:problem:";

impl ApiError {
    /// The response for this error.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, name, www_auth): (StatusCode, &str, Option<&'static str>) = match &self {
            ApiError::TokenMissing => (StatusCode::UNAUTHORIZED, "token-missing", Some("Bearer")),
            ApiError::Token(e) => (
                StatusCode::UNAUTHORIZED,
                e.problem_type(),
                Some("Bearer error=\"invalid_token\""),
            ),
            ApiError::Denied(d) => (StatusCode::FORBIDDEN, d.problem_type(), None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", None),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", None),
            ApiError::NotOnSale(_) => (StatusCode::CONFLICT, "not-on-sale", None),
            ApiError::State(name, _) => (StatusCode::CONFLICT, name, None),
            ApiError::Forbidden(name, _) => (StatusCode::FORBIDDEN, name, None),
            ApiError::BadField(_) => (StatusCode::BAD_REQUEST, "invalid-field", None),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "order-conflict", None),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", None)
            }
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", None)
            }
            ApiError::RangeNotSatisfiable(_) => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                None,
            ),
            ApiError::LedgerUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ledger-unavailable", None)
            }
            ApiError::StoreUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", None)
            }
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not-ready", None),
            ApiError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout", None),
            ApiError::KeyOperation(_) => (StatusCode::CONFLICT, "key-operation-failed", None),
            ApiError::Internal(detail) => {
                tracing::error!("internal error: {detail}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
        };
        let detail = self.to_string();
        let mut body = serde_json::json!({
            "type": format!("{PROBLEM_PREFIX}{name}"),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        if let ApiError::BadField(f) = &self {
            // RFC 9457 extension member: which field to fix.
            body["field"] = f.field.into();
        }
        if let ApiError::NotOnSale(at) = &self {
            // When to come back, for a countdown.
            body["on_sale_at"] = crate::ledger::time::format_rfc3339(*at).into();
        }
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(v) = www_auth {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        if let ApiError::RangeNotSatisfiable(len) = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}"))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
        if matches!(self, ApiError::PayloadTooLarge(_)) {
            // The rest of the body was never read, so this connection cannot carry another
            // request: say so, or a pooling client would send its next request into a
            // connection the server is closing.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if matches!(
            self,
            ApiError::LedgerUnavailable(_) | ApiError::StoreUnavailable(_)
        ) {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::ledger::RETRY_AFTER_SECONDS),
            );
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}
