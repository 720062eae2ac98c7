//! One rendition as the delivery path serves it: its manifest and, per generation it serves
//! (the current one and those still retiring), the segment each file name resolves to.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::store::{RenditionManifest, SegmentRecord, Store, segment_file_name};

/// A segment the library serves, resolved from its URL: everything the delivery path needs.
#[derive(Debug, Clone)]
pub struct ServedSegment {
    /// The rendition's manifest (album, track and rendition name for the entitlement check).
    pub manifest: Arc<RenditionManifest>,
    /// The sealed file in the store.
    pub path: Arc<Path>,
    /// The strong validator: the sealed bytes' SHA-256 in quotes, as `ETag` carries it.
    pub etag: Bytes,
    /// The sealed bytes' SHA-256, which the file must match to be served.
    pub sha256: [u8; 32],
    /// For a segment of a retiring generation: served until then (unix seconds).
    pub serve_until_unix: Option<u64>,
}

/// A rendition loaded for serving: its manifest and its segments by generation and file.
#[derive(Debug)]
pub struct LoadedRendition {
    /// The manifest as stored.
    pub manifest: Arc<RenditionManifest>,
    /// The current generation first, then the retiring ones.
    generations: Vec<ServedGeneration>,
    /// Estimated bytes held, for the cache's bound.
    weight: u32,
}

#[derive(Debug)]
struct ServedGeneration {
    name: Box<str>,
    /// Segment index (0 is the init segment) → the segment; a hole for an index the manifest
    /// does not name (or names under a file name ingest never writes).
    by_index: Vec<Option<ServedSegment>>,
}

/// Heap bytes a served segment holds beyond its own size (the path, the ETag, their
/// reference counts and allocator overhead), for the cache's weigher.
const SEGMENT_HEAP_BYTES: usize = 200;

impl LoadedRendition {
    /// Resolves every segment `manifest` names in `store`. Segments the store would refuse
    /// to name, or whose SHA-256 cannot be read, are left out (and so never served).
    pub fn build(store: &Store, manifest: RenditionManifest) -> LoadedRendition {
        let manifest = Arc::new(manifest);
        let m = &manifest;
        let current = (m.generation.as_str(), None, &m.init, m.segments.as_slice());
        let retiring = m.retiring.iter().map(|r| {
            let until = Some(r.serve_until_unix);
            (r.generation.as_str(), until, &r.init, r.segments.as_slice())
        });
        let mut weight = manifest_weight(m);
        let generations = std::iter::once(current)
            .chain(retiring)
            .map(|(generation, serve_until_unix, init, segments)| {
                let mut by_index: Vec<Option<ServedSegment>> = Vec::new();
                for record in std::iter::once(init).chain(segments) {
                    let Some(served) = serve(store, m, generation, serve_until_unix, record) else {
                        continue;
                    };
                    let Ok(slot) = usize::try_from(record.index) else {
                        continue;
                    };
                    if slot >= by_index.len() {
                        by_index.resize_with(slot + 1, || None);
                    }
                    weight += std::mem::size_of::<ServedSegment>()
                        + served.path.as_os_str().len()
                        + served.etag.len()
                        + SEGMENT_HEAP_BYTES;
                    by_index[slot] = Some(served);
                }
                weight += by_index.capacity() * std::mem::size_of::<Option<ServedSegment>>();
                ServedGeneration {
                    name: generation.into(),
                    by_index,
                }
            })
            .collect();
        LoadedRendition {
            generations,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            manifest,
        }
    }

    /// The segment of `generation` named `file`, if this rendition serves it at `now`
    /// (asked only for a retiring generation).
    pub fn find(
        &self,
        generation: &str,
        file: &str,
        now: impl FnOnce() -> u64,
    ) -> Option<&ServedSegment> {
        let index = usize::try_from(index_of_file(file)?).ok()?;
        self.generations
            .iter()
            .find(|g| &*g.name == generation)?
            .by_index
            .get(index)?
            .as_ref()
            .filter(|s| s.serve_until_unix.is_none_or(|until| until > now()))
    }

    /// Whether `generation` is the current one or one still kept for retiring players.
    pub fn serves_generation(&self, generation: &str) -> bool {
        self.generations.iter().any(|g| &*g.name == generation)
    }

    /// Estimated bytes this rendition holds in memory.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

/// The segment `record` of `generation`, or `None` (with a warning) when it cannot be served.
fn serve(
    store: &Store,
    m: &Arc<RenditionManifest>,
    generation: &str,
    serve_until_unix: Option<u64>,
    record: &SegmentRecord,
) -> Option<ServedSegment> {
    // A URL names a file by its index alone; a record under another name was never written
    // by ingest and is not served.
    if record.file != segment_file_name(record.index) {
        return None;
    }
    // Nor is a name the store refuses.
    let path = store.segment_path_in(m, generation, record).ok()?;
    // Nor one whose bytes could not be checked.
    let Some(sha256) = record.digest() else {
        tracing::warn!(
            album = %m.album,
            track = m.track,
            rendition = %m.rendition,
            file = %record.file,
            "segment record without a SHA-256; not served"
        );
        return None;
    };
    Some(ServedSegment {
        manifest: Arc::clone(m),
        path: Arc::from(path),
        etag: Bytes::from(format!("\"{}\"", record.sha256)),
        sha256,
        serve_until_unix,
    })
}

/// Bytes a manifest holds: its records and their strings, roughly.
fn manifest_weight(m: &RenditionManifest) -> usize {
    let records = 1
        + m.segments.len()
        + m.retiring
            .iter()
            .map(|r| 1 + r.segments.len())
            .sum::<usize>();
    std::mem::size_of::<RenditionManifest>()
        + records * (std::mem::size_of::<SegmentRecord>() + 64 + 16 + 2 * 16)
}

/// The index of a segment file name as [`segment_file_name`] writes it (`init.enc` is 0,
/// `0001.enc` is 1, `12345.enc` is 12345), or `None` for any other spelling.
pub fn index_of_file(file: &str) -> Option<u32> {
    if file == "init.enc" {
        return Some(0);
    }
    let digits = file.strip_suffix(".enc")?;
    // Exactly the zero-padded form: 4 digits, or more without a leading zero.
    let canonical = digits.len() == 4 || (digits.len() > 4 && !digits.starts_with('0'));
    if !canonical || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&i| i > 0)
}

/// A track number as a URL writes it (`{track}`: decimal without a leading zero), or `None`.
pub fn parse_track(text: &str) -> Option<u32> {
    let canonical = !text.is_empty()
        && text.len() <= 10
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse_back_to_exactly_the_index_that_wrote_them() {
        for index in [0, 1, 9, 10, 999, 1000, 9999, 10_000, 123_456, u32::MAX] {
            assert_eq!(index_of_file(&segment_file_name(index)), Some(index));
        }
        for other in [
            "",
            "init",
            "0000.enc",
            "001.enc",
            "00001.enc",
            "1.enc",
            "+001.enc",
            "0001.enc.",
            "0001.ENC",
            "00a1.enc",
            "4294967296.enc",
            "init.enc/",
            " 0001.enc",
        ] {
            assert_eq!(index_of_file(other), None, "{other:?}");
        }
    }

    #[test]
    fn track_numbers_parse_only_as_urls_write_them() {
        for n in [0, 1, 9, 10, 99, 4_294_967_295] {
            assert_eq!(parse_track(&n.to_string()), Some(n));
        }
        for other in ["", "01", "+1", "1 ", "-1", "4294967296", "1e3", "00"] {
            assert_eq!(parse_track(other), None, "{other:?}");
        }
    }
}
