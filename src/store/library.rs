//! The packaged library as the server sees it: every album, track and rendition manifest in
//! memory, loaded from the store and swapped atomically after an ingest.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::{AlbumRecord, RenditionManifest, Store, StoreError, TrackRecord};

/// The immutable URL of a stored segment: a new generation (re-seal, re-transcode) is a new
/// URL, so an edge never serves stale bytes under an old name.
pub fn segment_url(
    album: &str,
    track: u32,
    rendition: &str,
    generation: &str,
    file: &str,
) -> String {
    format!("/v1/albums/{album}/tracks/{track}/{rendition}/{generation}/{file}")
}

/// One packaged track with its renditions.
#[derive(Debug, Clone)]
pub struct TrackEntry {
    /// What ingest recorded for the track.
    pub record: TrackRecord,
    /// Rendition name → manifest.
    pub renditions: BTreeMap<String, Arc<RenditionManifest>>,
}

/// One packaged album.
#[derive(Debug, Clone)]
pub struct AlbumEntry {
    /// What ingest recorded for the album.
    pub record: AlbumRecord,
    /// Track number → track.
    pub tracks: BTreeMap<u32, TrackEntry>,
}

/// Every packaged album, by id.
#[derive(Debug, Clone, Default)]
pub struct LibraryIndex {
    /// Album id → album.
    pub albums: BTreeMap<String, AlbumEntry>,
    /// Segment URL → the segment: the delivery path resolves a request in one lookup instead
    /// of parsing the URL and walking albums, tracks and manifests. Only the catalog inserts
    /// keys (requests only look up), so a fast hash needs no flood resistance.
    served: HashMap<Box<str>, ServedSegment, foldhash::fast::RandomState>,
}

/// A segment the index serves, resolved from its URL: everything the delivery path needs.
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

impl LibraryIndex {
    /// Loads everything the store holds. Albums or tracks that fail to load are skipped with
    /// a warning, so one damaged record never takes the catalog down.
    pub fn load(store: &Store) -> Result<LibraryIndex, StoreError> {
        let mut index = LibraryIndex::default();
        let entries = match fs::read_dir(store.root()) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(index),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "list",
                    path: store.root().to_path_buf(),
                    source,
                });
            }
        };
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !entry.path().is_dir() || id.starts_with('.') {
                continue;
            }
            match load_album(store, &id) {
                Ok(Some(album)) => {
                    index.albums.insert(id, album);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(album = %id, "skipping album that failed to load: {e}"),
            }
        }
        let manifests = index
            .albums
            .values()
            .flat_map(|a| a.tracks.values())
            .flat_map(|t| t.renditions.values());
        index.served = serve_table(store, manifests);
        Ok(index)
    }

    /// The segment at `url_path` (a URL from a manifest) if the index serves it at `now`:
    /// the rendition's current generation, or a retiring one still in its serving time.
    /// `now` (unix seconds) is asked only for a retiring generation.
    pub fn served_segment(
        &self,
        url_path: &str,
        now: impl FnOnce() -> u64,
    ) -> Option<&ServedSegment> {
        self.served
            .get(url_path)
            .filter(|s| s.serve_until_unix.is_none_or(|until| until > now()))
    }

    /// A rendition's manifest.
    pub fn manifest(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
    ) -> Option<&Arc<RenditionManifest>> {
        self.albums
            .get(album)?
            .tracks
            .get(&track)?
            .renditions
            .get(rendition)
    }

    /// Every generation folder the index serves, current and retiring (for cache purges).
    pub fn live_generations(&self) -> std::collections::HashSet<(String, u32, String, String)> {
        let mut live = std::collections::HashSet::new();
        for (id, album) in &self.albums {
            for (n, track) in &album.tracks {
                for (name, m) in &track.renditions {
                    live.insert((id.clone(), *n, name.clone(), m.generation.clone()));
                    for r in &m.retiring {
                        live.insert((id.clone(), *n, name.clone(), r.generation.clone()));
                    }
                }
            }
        }
        live
    }
}

/// Every segment URL of every generation `manifests` serve (current and retiring) → its
/// segment.
fn serve_table<'a>(
    store: &Store,
    manifests: impl Iterator<Item = &'a Arc<RenditionManifest>>,
) -> HashMap<Box<str>, ServedSegment, foldhash::fast::RandomState> {
    let mut table = HashMap::default();
    for m in manifests {
        let current = (m.generation.as_str(), None, &m.init, m.segments.as_slice());
        let retiring = m.retiring.iter().map(|r| {
            let until = Some(r.serve_until_unix);
            (r.generation.as_str(), until, &r.init, r.segments.as_slice())
        });
        for (generation, serve_until_unix, init, segments) in
            std::iter::once(current).chain(retiring)
        {
            for record in std::iter::once(init).chain(segments) {
                // A name the store refuses (never written by ingest) is simply not served.
                let Ok(path) = store.segment_path_in(m, generation, record) else {
                    continue;
                };
                // Nor is one whose bytes could not be checked.
                let Some(sha256) = record.digest() else {
                    tracing::warn!(
                        album = %m.album,
                        track = m.track,
                        rendition = %m.rendition,
                        file = %record.file,
                        "segment record without a SHA-256; not served"
                    );
                    continue;
                };
                let url = segment_url(&m.album, m.track, &m.rendition, generation, &record.file);
                let served = ServedSegment {
                    manifest: Arc::clone(m),
                    path: Arc::from(path),
                    etag: Bytes::from(format!("\"{}\"", record.sha256)),
                    sha256,
                    serve_until_unix,
                };
                table.insert(url.into_boxed_str(), served);
            }
        }
    }
    table
}

fn load_album(store: &Store, id: &str) -> Result<Option<AlbumEntry>, StoreError> {
    let Some(record) = store.read_album(id)? else {
        return Ok(None);
    };
    let mut tracks = BTreeMap::new();
    for &n in &record.tracks {
        let Some(track) = store.read_track(id, n)? else {
            continue;
        };
        let mut renditions = BTreeMap::new();
        for name in &track.renditions {
            if let Some(m) = store.read_manifest(id, n, name)? {
                renditions.insert(name.clone(), Arc::new(m));
            }
        }
        tracks.insert(
            n,
            TrackEntry {
                record: track,
                renditions,
            },
        );
    }
    Ok(Some(AlbumEntry { record, tracks }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MANIFEST_FORMAT, RetiringGeneration, SegmentRecord, segment_file_name};

    fn rec(index: u32) -> SegmentRecord {
        SegmentRecord {
            index,
            file: segment_file_name(index),
            start: 0,
            duration: 0,
            bytes: 100,
            sha256: format!("{index:064x}"),
        }
    }

    fn manifest() -> RenditionManifest {
        RenditionManifest {
            format: MANIFEST_FORMAT,
            album: "first-light".into(),
            track: 2,
            rendition: "lossless".into(),
            generation: "g1".into(),
            codec: "flac".into(),
            codec_string: "flac".into(),
            sample_rate: 44_100,
            channels: 2,
            bits_per_sample: 16,
            duration_samples: 0,
            skip_samples: 0,
            bitrate: 0,
            key_id: "00".repeat(16),
            bit_exact: None,
            preview: None,
            init: rec(0),
            segments: vec![rec(1), rec(2)],
            retiring: vec![RetiringGeneration {
                generation: "g0".into(),
                key_id: "11".repeat(16),
                serve_until_unix: 1000,
                init: rec(0),
                segments: vec![rec(1)],
            }],
        }
    }

    #[test]
    fn segment_urls_resolve_to_their_files_until_a_retiring_generation_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let m = Arc::new(manifest());
        let index = LibraryIndex {
            albums: BTreeMap::new(),
            served: serve_table(&store, std::iter::once(&m)),
        };
        let url = |generation: &str, index: u32| {
            segment_url(
                "first-light",
                2,
                "lossless",
                generation,
                &segment_file_name(index),
            )
        };
        // The current generation: init and media segments, without asking the time.
        for i in 0..=2 {
            let s = index
                .served_segment(&url("g1", i), || unreachable!("the time is not needed"))
                .expect("served");
            assert_eq!(
                &*s.path,
                store.segment_path_in(&m, "g1", &rec(i)).unwrap().as_path()
            );
            assert_eq!(&s.etag[..], format!("\"{i:064x}\"").as_bytes());
            assert_eq!(s.serve_until_unix, None);
            assert!(Arc::ptr_eq(&s.manifest, &m));
        }
        // A retiring generation: served until its time is up, then not.
        assert!(index.served_segment(&url("g0", 1), || 999).is_some());
        assert!(index.served_segment(&url("g0", 1), || 1000).is_none());
        // Anything else: a segment the generation does not have, an unknown generation, a
        // near miss of the URL's shape.
        assert!(index.served_segment(&url("g1", 3), || 0).is_none());
        assert!(index.served_segment(&url("g2", 1), || 0).is_none());
        assert!(index.served_segment(&url("g0", 2), || 0).is_none());
        assert!(
            index
                .served_segment(&format!("{}/", url("g1", 1)), || 0)
                .is_none()
        );
    }
}
