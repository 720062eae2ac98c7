//! One buyer-only extra: `GET /v1/albums/{album}/extras/{id}` with the play token, the bytes
//! written to the output file (the origin opens the seal: docs/SEALING.md, "Extras").

use std::path::Path;

use super::endpoint::{api_url, parse_server};
use super::{DEFAULT_BACKOFF, check_token};
use crate::client::error::FetchError;
use crate::client::output::PartialFile;
use crate::client::retry::RetryPolicy;
use crate::client::token::Token;
use crate::client::transport::Transport;

/// Largest extra accepted: the ingest's bound for a video or audio message.
const MAX_EXTRA_BYTES: u64 = 100 << 20;

/// Downloads extra `id` of `album` into `out` (replaced only once complete); returns its size.
pub async fn fetch_extra(
    server: &str,
    token: &Token,
    album: &str,
    id: &str,
    out: &Path,
    retries: u32,
) -> Result<u64, FetchError> {
    let base = parse_server(server)?;
    let token = check_token(token.expose())?;
    let mut file = PartialFile::create(out).await?;
    let transport = Transport::new(
        token,
        RetryPolicy {
            retries,
            backoff: DEFAULT_BACKOFF,
        },
    )?;
    let url = api_url(&base, &["v1", "albums", album, "extras", id])?;
    let what = format!("extra {id} of album {album}");
    let bytes = transport.get(&url, &what, MAX_EXTRA_BYTES).await?;
    if bytes.len() as u64 > MAX_EXTRA_BYTES {
        return Err(FetchError::InvalidRequest {
            reason: format!("{what} is larger than {MAX_EXTRA_BYTES} bytes"),
        });
    }
    file.write(&bytes).await?;
    file.commit().await?;
    Ok(bytes.len() as u64)
}
