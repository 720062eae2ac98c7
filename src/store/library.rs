//! The packaged library as the server sees it: every album, track and rendition manifest in
//! memory, loaded from the store and swapped atomically after an ingest.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use super::{AlbumRecord, RenditionManifest, SegmentRecord, Store, StoreError, TrackRecord};

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
        Ok(index)
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

    /// A segment by generation and file name, if the rendition's current generation, or a
    /// retiring one still in its serving time at `now`, names it.
    pub fn segment(
        &self,
        album: &str,
        track: u32,
        rendition: &str,
        generation: &str,
        file: &str,
        now: u64,
    ) -> Option<SegmentLookup<'_>> {
        let m = self.manifest(album, track, rendition)?;
        if m.generation == generation {
            let record = find_record(&m.init, &m.segments, file)?;
            return Some(SegmentLookup {
                manifest: m,
                generation: &m.generation,
                key_id: &m.key_id,
                record,
            });
        }
        let old = m
            .retiring
            .iter()
            .find(|r| r.generation == generation && r.serve_until_unix > now)?;
        let record = find_record(&old.init, &old.segments, file)?;
        Some(SegmentLookup {
            manifest: m,
            generation: &old.generation,
            key_id: &old.key_id,
            record,
        })
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

/// A segment found in the index, with the generation it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLookup<'a> {
    /// The rendition's manifest.
    pub manifest: &'a Arc<RenditionManifest>,
    /// The generation holding the segment (the current one or a retiring one).
    pub generation: &'a str,
    /// The content key id that sealed that generation.
    pub key_id: &'a str,
    /// The segment.
    pub record: &'a SegmentRecord,
}

fn find_record<'s>(
    init: &'s SegmentRecord,
    segments: &'s [SegmentRecord],
    file: &str,
) -> Option<&'s SegmentRecord> {
    std::iter::once(init)
        .chain(segments)
        .find(|r| r.file == file)
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
