//! The HTTP side of a fetch: one reqwest client, the bearer token on every request, bounded
//! bodies, retries of transient failures, and unsuccessful answers mapped to [`FetchError`].

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url, redirect};
use serde::Serialize;

use super::api::Problem;
use super::error::FetchError;
use super::retry::{RetryPolicy, is_transient_error, is_transient_status, retry_after};

/// Longest wait for a TCP (and TLS) connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection is kept: under the server's 10 s idle close.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time for one request, body included. A segment is a few seconds of audio (under a
/// megabyte of lossless), so a minute means the link is unusable, not slow.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of an error body read to find the problem's `detail`.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// Most characters of a non-JSON error body quoted in a message.
const EXCERPT_CHARS: usize = 200;

/// An HTTP client bound to one server and one token.
pub(crate) struct Transport {
    client: Client,
    token: String,
    policy: RetryPolicy,
}

/// Why one attempt failed.
enum Failure {
    /// The server answered, unsuccessfully.
    Status {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    /// No usable answer: connect error, timeout, broken connection.
    Transport(reqwest::Error),
}

impl Transport {
    /// A client with connect and request timeouts that does not follow redirects (the
    /// contract has none, and following one could carry the token elsewhere).
    pub fn new(token: String, policy: RetryPolicy) -> Result<Self, FetchError> {
        let client = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Under the server's 10 s idle close, so a request is never written to a
            // connection the server is closing (RFC 9112 §9.3.1).
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .redirect(redirect::Policy::none())
            .user_agent(concat!("encore-fetch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FetchError::Client)?;
        Ok(Self {
            client,
            token,
            policy,
        })
    }

    /// `GET url`; the body, at most `cap + 1` bytes (so "more than `cap`" shows).
    pub async fn get(&self, url: &Url, what: &str, cap: u64) -> Result<Vec<u8>, FetchError> {
        self.execute(what, cap, || self.client.get(url.clone()))
            .await
    }

    /// `POST url` with a JSON body; the answer's body, at most `cap + 1` bytes.
    pub async fn post_json<B: Serialize>(
        &self,
        url: &Url,
        body: &B,
        what: &str,
        cap: u64,
    ) -> Result<Vec<u8>, FetchError> {
        let json = serde_json::to_vec(body).map_err(|e| FetchError::InvalidRequest {
            reason: format!("cannot encode the request for {what}: {e}"),
        })?;
        self.execute(what, cap, || {
            self.client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .body(json.clone())
        })
        .await
    }

    /// Sends the request made by `make` until it succeeds, fails for good, or the retries
    /// are spent. The body is read inside the loop: a connection that breaks mid-body is
    /// retried like one that never connected.
    async fn execute(
        &self,
        what: &str,
        cap: u64,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Vec<u8>, FetchError> {
        let attempts = self.policy.retries.saturating_add(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let retry_after = match self.attempt(make(), cap).await {
                Ok(body) => return Ok(body),
                Err(Failure::Status {
                    status,
                    headers,
                    body,
                }) => {
                    if attempt >= attempts || !is_transient_status(status) {
                        return Err(status_error(what, status, &body, attempt));
                    }
                    tracing::info!(what, attempt, %status, "transient answer, retrying");
                    retry_after(&headers)
                }
                Err(Failure::Transport(source)) => {
                    if attempt >= attempts || !is_transient_error(&source) {
                        return Err(FetchError::Network {
                            what: what.to_owned(),
                            attempts: attempt,
                            source,
                        });
                    }
                    tracing::info!(what, attempt, error = %source, "transient error, retrying");
                    None
                }
            };
            tokio::time::sleep(self.policy.delay(attempt - 1, retry_after)).await;
        }
    }

    async fn attempt(&self, request: RequestBuilder, cap: u64) -> Result<Vec<u8>, Failure> {
        // bearer_auth marks the header sensitive, so it is never printed by Debug.
        let mut response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(Failure::Transport)?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            // A broken error body is not worth failing over: the status says enough.
            let body = read_capped(&mut response, ERROR_BODY_LIMIT)
                .await
                .unwrap_or_default();
            return Err(Failure::Status {
                status,
                headers,
                body,
            });
        }
        read_capped(&mut response, cap)
            .await
            .map_err(Failure::Transport)
    }
}

/// Reads at most `cap + 1` bytes of the body, so that the caller can tell "exactly `cap`"
/// from "more"; the rest is never read (a lying server cannot make us buffer gigabytes).
async fn read_capped(response: &mut Response, cap: u64) -> Result<Vec<u8>, reqwest::Error> {
    let limit = cap.saturating_add(1);
    let hint = response.content_length().unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len() as u64;
        if chunk.len() as u64 >= room {
            // `room` < chunk.len() here, so it fits in usize.
            body.extend_from_slice(&chunk[..room as usize]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps an unsuccessful answer to the error a person can act on.
fn status_error(what: &str, status: StatusCode, body: &[u8], attempts: u32) -> FetchError {
    let problem = serde_json::from_slice::<Problem>(body).ok();
    let problem_type = problem.as_ref().map(|p| p.problem_type.clone());
    let detail = problem
        .as_ref()
        .and_then(|p| p.detail.clone().or_else(|| p.title.clone()))
        .or_else(|| excerpt(body))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no detail").to_owned());
    match status {
        StatusCode::UNAUTHORIZED => FetchError::Unauthorized { detail },
        StatusCode::FORBIDDEN => FetchError::Forbidden {
            problem_type: problem_type.unwrap_or_else(|| "about:blank".to_owned()),
            detail,
        },
        StatusCode::NOT_FOUND => FetchError::NotFound {
            what: format!("{what} ({detail})"),
        },
        _ => FetchError::Http {
            what: what.to_owned(),
            status: status.as_u16(),
            problem_type,
            detail,
            attempts,
        },
    }
}

/// The start of a text body, on one line, for an error message.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_details_become_typed_errors() {
        let body = br#"{"type":"urn:encore:problem:not-purchased","title":"Not purchased","status":403,"detail":"buy it"}"#;
        match status_error("the manifest", StatusCode::FORBIDDEN, body, 1) {
            FetchError::Forbidden {
                problem_type,
                detail,
            } => {
                assert_eq!(problem_type, "urn:encore:problem:not-purchased");
                assert_eq!(detail, "buy it");
            }
            other => panic!("{other:?}"),
        }
        let body = br#"{"type":"urn:encore:problem:token-expired","status":401}"#;
        assert!(matches!(
            status_error("x", StatusCode::UNAUTHORIZED, body, 1),
            FetchError::Unauthorized { .. }
        ));
        match status_error("media segment 2", StatusCode::NOT_FOUND, b"", 1) {
            FetchError::NotFound { what } => assert_eq!(what, "media segment 2 (Not Found)"),
            other => panic!("{other:?}"),
        }
        match status_error(
            "x",
            StatusCode::BAD_GATEWAY,
            b"<html>\nupstream\n</html>",
            4,
        ) {
            FetchError::Http {
                status,
                detail,
                problem_type,
                attempts,
                ..
            } => {
                assert_eq!((status, attempts), (502, 4));
                assert_eq!(detail, "<html> upstream </html>");
                assert_eq!(problem_type, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
