//! The server's base URL as the caller gave it, checked, and the API URLs made from it.

use reqwest::Url;

use super::super::error::FetchError;

pub(super) fn parse_server(server: &str) -> Result<Url, FetchError> {
    let invalid = |why: String| FetchError::InvalidRequest {
        reason: format!(
            "invalid server URL {server:?}: {why} (expected e.g. http://127.0.0.1:8080)"
        ),
    };
    let url = Url::parse(server.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(invalid("no host".to_owned()));
    }
    Ok(url)
}

/// `base` with `segments` appended to its path, each percent-encoded.
pub(super) fn api_url(base: &Url, segments: &[&str]) -> Result<Url, FetchError> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| FetchError::InvalidRequest {
            reason: format!("the server URL {base} cannot have a path"),
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}
