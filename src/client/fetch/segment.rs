//! One segment of the plan: downloaded, checked against the manifest's size and SHA-256, and
//! opened under the content key in the slot its place in the plan gives it.

use sha2::{Digest, Sha256};

use crate::seal::{ContentKey, SealContext, SegmentSlot, open_in_place};

use super::super::error::{FetchError, SegmentFault};
use super::super::transport::Transport;
use super::FetchRequest;
use super::plan::Job;

/// Downloads one segment, checks size and hash, opens its seal in its own slot.
pub(super) async fn fetch_segment(
    transport: &Transport,
    job: Job,
    key: &ContentKey,
    req: &FetchRequest,
) -> Result<Vec<u8>, FetchError> {
    let what = format!("{} ({})", job.slot, job.url.path());
    let sealed = transport.get(&job.url, &what, job.bytes).await?;
    check_and_open(&job, sealed, key, req)
}

/// Checks a sealed segment (downloaded now, or kept in an offline copy) against its plan
/// entry's size and SHA-256, then opens its seal in its own slot.
pub(super) fn check_and_open(
    job: &Job,
    sealed: Vec<u8>,
    key: &ContentKey,
    req: &FetchRequest,
) -> Result<Vec<u8>, FetchError> {
    let index = match job.slot {
        SegmentSlot::Init => 0,
        SegmentSlot::Media(n) => n,
    };
    let reject = |reason| FetchError::SegmentRejected { index, reason };
    let got = sealed.len() as u64;
    if got > job.bytes {
        return Err(reject(SegmentFault::Long {
            expected: job.bytes,
        }));
    }
    if got < job.bytes {
        return Err(reject(SegmentFault::Short {
            expected: job.bytes,
            got,
        }));
    }
    let digest: [u8; 32] = Sha256::digest(&sealed).into();
    if digest != job.sha256 {
        return Err(reject(SegmentFault::HashMismatch {
            expected: hex::encode(job.sha256),
            actual: hex::encode(digest),
        }));
    }
    let ctx = SealContext {
        album: &req.album,
        track: req.track,
        rendition: &req.rendition,
        slot: job.slot,
    };
    open_in_place(key, &ctx, sealed).map_err(|e| reject(SegmentFault::Open(e)))
}
