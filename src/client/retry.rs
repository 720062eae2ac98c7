//! Which failures are worth another attempt, and how long to wait before it.
//!
//! Transient: connect errors, timeouts, connections broken mid-request or mid-body, 5xx and
//! 429. Never a 4xx otherwise: a bad token or a missing segment does not get better by asking
//! again, and hammering a server that said no is rude.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Longest wait between two attempts, whatever the backoff or `Retry-After` say: the client
/// is interactive, a person is waiting.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(5);

/// How many times to retry and how long the first wait is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt (so `retries + 1` attempts in all).
    pub retries: u32,
    /// Wait before the first retry; doubles for each further one, capped at [`MAX_DELAY`].
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Wait before retry number `retry` (0 for the first retry), at least what the server
    /// asked for with `Retry-After`, at most [`MAX_DELAY`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        let backoff = self.backoff.saturating_mul(factor);
        backoff.max(retry_after.unwrap_or_default()).min(MAX_DELAY)
    }
}

/// Whether an answer with this status may succeed if asked again.
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    // 501 and 505 are server errors that no retry fixes: the server does not do this at all.
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// Whether a transport error may go away if the request is sent again.
pub(crate) fn is_transient_error(error: &reqwest::Error) -> bool {
    // `is_request` covers connect errors and connections closed before the answer;
    // `is_body` a connection broken while the body streamed. Builder, redirect and decode
    // errors are ours or the server's for good.
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: our server never sends it).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn server_errors_and_429_are_transient_other_4xx_are_not() {
        for code in [500, 502, 503, 504, 507, 429] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(is_transient_status(status), "{code}");
        }
        for code in [200, 304, 400, 401, 403, 404, 405, 408, 413, 416, 501, 505] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(!is_transient_status(status), "{code}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            retries: 3,
            backoff: Duration::from_millis(200),
        };
        assert_eq!(p.delay(0, None), Duration::from_millis(200));
        assert_eq!(p.delay(1, None), Duration::from_millis(400));
        assert_eq!(p.delay(2, None), Duration::from_millis(800));
        assert_eq!(p.delay(10, None), MAX_DELAY);
        assert_eq!(p.delay(u32::MAX, None), MAX_DELAY);
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600))), MAX_DELAY);
        let zero = RetryPolicy {
            retries: 3,
            backoff: Duration::ZERO,
        };
        assert_eq!(zero.delay(5, None), Duration::ZERO);
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 3 "));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        // Bind to learn a free port, then close it: connecting is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert!(is_transient_error(&error), "{error:?}");
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_not_transient() {
        let error = reqwest::Client::new()
            .get("http://127.0.0.1:1/")
            .header("x-bad", "line\nbreak")
            .send()
            .await
            .unwrap_err();
        assert!(error.is_builder(), "{error:?}");
        assert!(!is_transient_error(&error), "{error:?}");
    }
}
