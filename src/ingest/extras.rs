//! Buyer-only extras at ingest: each `[[extras]]` file checked (present, within its size
//! bound, the kind its extension says), sealed under its own content key and written to the
//! store. A bad extra is a failure of its own: the rest of the album is still packaged.

use std::path::Path;

use super::Failure;
use crate::catalog::{AlbumSource, ExtraSpec};
use crate::keys::Keyring;
use crate::seal;
use crate::store::{
    AlbumRecord, EXTRA_TRACK, ExtraRecord, Store, extra_context, extra_slot, sha256_hex,
};

/// Packages `album`'s extras; `previous` (the album's record before this run) lets an
/// unchanged extra keep its sealed file instead of being sealed again.
pub(super) fn package(
    album: &AlbumSource,
    keyring: &Keyring,
    store: &Store,
    previous: Option<&AlbumRecord>,
) -> (Vec<ExtraRecord>, Vec<Failure>) {
    let specs = album.info.as_ref().map_or(&[][..], |i| i.extras.as_slice());
    let (mut records, mut failures) = (Vec::new(), Vec::new());
    let id = album.id.as_str();
    for spec in specs {
        let path = album.dir.join(&spec.file);
        let kept = previous.and_then(|p| p.extras.iter().find(|e| e.id == spec.id));
        match package_one(id, spec, &path, keyring, store, kept) {
            Ok(record) => records.push(record),
            Err(reason) => failures.push(Failure {
                path,
                reason: format!("extra {:?} not packaged: {reason}", spec.title),
            }),
        }
    }
    (records, failures)
}

fn package_one(
    album: &str,
    spec: &ExtraSpec,
    path: &Path,
    keyring: &Keyring,
    store: &Store,
    kept: Option<&ExtraRecord>,
) -> Result<ExtraRecord, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", spec.file),
        _ => format!("cannot read {}: {e}", spec.file),
    })?;
    let max = spec.kind.max_bytes();
    if meta.len() == 0 || meta.len() > max {
        return Err(format!(
            "{} is {} bytes; a {} extra must be 1 to {max} bytes",
            spec.file,
            meta.len(),
            spec.kind.mime()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", spec.file))?;
    if !spec.kind.matches(&bytes) {
        return Err(format!(
            "{} is not a {} file (its first bytes say otherwise)",
            spec.file,
            spec.kind.mime()
        ));
    }
    let source_sha256 = sha256_hex(&bytes);
    let size = bytes.len() as u64;
    let record = |file: String, sha256: String| ExtraRecord {
        id: spec.id.clone(),
        title: spec.title.clone(),
        mime: spec.kind.mime().to_owned(),
        size,
        source_sha256: source_sha256.clone(),
        file,
        sha256,
    };
    if let Some(k) = kept.filter(|k| k.source_sha256 == source_sha256)
        && let Ok(stored) = store.extra_path(album, &k.file)
        && std::fs::read(&stored).is_ok_and(|b| sha256_hex(&b) == k.sha256)
    {
        return Ok(record(k.file.clone(), k.sha256.clone()));
    }
    let slot = extra_slot(&spec.id);
    let key = keyring
        .content_key(album, EXTRA_TRACK, &slot)
        .map_err(|e| format!("content key: {e}"))?;
    // `seal` draws a fresh random nonce for every seal, so sealing again is always safe.
    let sealed = seal::seal(&key, &extra_context(album, &slot), bytes)
        .map_err(|e| format!("cannot seal: {e}"))?;
    let (file, sha256) = store
        .write_extra(album, &spec.id, &sealed)
        .map_err(|e| e.to_string())?;
    Ok(record(file, sha256))
}
