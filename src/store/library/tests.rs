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

fn album(tracks: Vec<u32>) -> AlbumRecord {
    AlbumRecord {
        format: MANIFEST_FORMAT,
        album: "first-light".into(),
        title: "First Light".into(),
        artist: None,
        release_date: None,
        price: None,
        currency: None,
        cover: None,
        cover_type: None,
        tracks,
        on_sale_at: None,
        extras: Vec::new(),
        loudness: None,
    }
}

fn track(n: u32, renditions: &[&str]) -> TrackRecord {
    TrackRecord {
        format: MANIFEST_FORMAT,
        album: "first-light".into(),
        track: n,
        source_file: "02.flac".into(),
        fingerprint: "0".repeat(64),
        title: "Two".into(),
        artist: None,
        source_codec: "flac".into(),
        source_sample_rate: 44_100,
        source_samples: 0,
        channels: 2,
        renditions: renditions.iter().map(|r| (*r).to_owned()).collect(),
        loudness: None,
        lyrics: None,
    }
}

/// A store holding track 2 of first-light in `lossless` (the manifest above).
fn packaged() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    std::fs::create_dir_all(store.rendition_dir("first-light", 2, "lossless").unwrap()).unwrap();
    store.write_album(&album(vec![2])).unwrap();
    store.write_track(&track(2, &["lossless"])).unwrap();
    store.mirror_manifest_locked(&manifest()).unwrap();
    (dir, store)
}

fn url(generation: &str, index: u32) -> String {
    segment_url(
        "first-light",
        2,
        "lossless",
        generation,
        &segment_file_name(index),
    )
}

#[test]
fn segment_urls_resolve_to_their_files_until_a_retiring_generation_ends() {
    let (_dir, store) = packaged();
    let index = LibraryIndex::load(&store).unwrap();
    let m = index
        .manifest("first-light", 2, "lossless")
        .expect("manifest");
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
    for near in [
        format!("{}/", url("g1", 1)),
        url("g1", 1).replace("/tracks/2/", "/tracks/02/"),
        url("g1", 1).replace("/tracks/", "/track/"),
        url("g1", 1).replace("0001.enc", "001.enc"),
        url("g1", 1).replacen("/v1/albums/", "/v1/albums//", 1),
    ] {
        assert!(index.served_segment(&near, || 0).is_none(), "{near}");
    }
}

#[test]
fn only_what_the_records_list_is_loaded_and_a_new_index_sees_new_files() {
    let (_dir, store) = packaged();
    // A manifest on disk that the track's record does not list is not served.
    let mut stray = manifest();
    stray.rendition = "high".into();
    std::fs::create_dir_all(store.rendition_dir("first-light", 2, "high").unwrap()).unwrap();
    store.mirror_manifest_locked(&stray).unwrap();
    let index = LibraryIndex::load(&store).unwrap();
    assert!(index.manifest("first-light", 2, "high").is_none());
    assert!(index.manifest("first-light", 3, "lossless").is_none());
    assert!(index.album("no-such-album").is_none());
    let high = url("g1", 1).replace("/lossless/", "/high/");
    assert!(index.served_segment(&high, || 0).is_none());
    // Nothing was loaded for those: only the album's head.
    let counts = index.cached();
    assert_eq!((counts.albums, counts.renditions), (1, 0));

    // Listed after a re-ingest: the running index keeps what it loaded, a new one serves it.
    assert!(index.served_segment(&url("g1", 1), || 0).is_some());
    store.write_track(&track(2, &["lossless", "high"])).unwrap();
    assert!(index.served_segment(&high, || 0).is_none());
    let index = LibraryIndex::load(&store).unwrap();
    assert!(index.served_segment(&high, || 0).is_some());
    assert_eq!(
        index
            .track_manifests("first-light", 2)
            .unwrap()
            .iter()
            .map(|m| m.rendition.as_str())
            .collect::<Vec<_>>(),
        ["high", "lossless"]
    );
}

#[test]
fn caches_stay_within_their_bound_and_albums_page_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let ids: Vec<String> = (0..40).map(|i| format!("album-{i:02}")).collect();
    for id in &ids {
        let mut m = manifest();
        m.album = id.clone();
        m.segments = (1..=200).map(rec).collect();
        std::fs::create_dir_all(store.rendition_dir(id, 2, "lossless").unwrap()).unwrap();
        let mut a = album(vec![2]);
        a.album = id.clone();
        store.write_album(&a).unwrap();
        let mut t = track(2, &["lossless"]);
        t.album = id.clone();
        store.write_track(&t).unwrap();
        store.mirror_manifest_locked(&m).unwrap();
    }
    // A folder without an album record (an ingest in progress) is not an album.
    std::fs::create_dir_all(store.root().join("album-05x")).unwrap();
    let bound = 256 * 1024;
    let index = LibraryIndex::load_with(&store, CacheBounds { bytes: bound }).unwrap();
    assert_eq!(index.ids().len(), 41);
    let one = index.rendition("album-00", 2, "lossless").unwrap().weight();
    for id in &ids {
        let seg = segment_url(id, 2, "lossless", "g1", &segment_file_name(200));
        assert!(index.served_segment(&seg, || 0).is_some(), "{id}");
    }
    let counts = index.cached();
    assert!(counts.bytes <= bound, "{counts:?} over {bound}");
    assert!(
        counts.renditions < 40 && u64::from(one) * counts.renditions <= bound,
        "{counts:?}"
    );

    let (page, more) = index.albums_after(None, 5);
    let names: Vec<&str> = page.iter().map(|h| h.record.album.as_str()).collect();
    assert_eq!(
        names,
        ["album-00", "album-01", "album-02", "album-03", "album-04"]
    );
    assert!(more);
    let (page, _) = index.albums_after(Some("album-04"), 2);
    let names: Vec<&str> = page.iter().map(|h| h.record.album.as_str()).collect();
    assert_eq!(names, ["album-05", "album-06"], "album-05x holds no album");
    let (page, more) = index.albums_after(Some("album-38"), 5);
    assert_eq!(page.len(), 1);
    assert!(!more);
}
