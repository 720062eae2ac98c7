//! HLS over real HTTP: ffmpeg plays the playlists as a standard player would (a buyer decodes
//! `lossless` to the source's exact PCM; a non-buyer gets the preview only), the playlists
//! parse with a maintained m3u8 parser, the token travels through every URI when it came as a
//! query parameter, and the HLS bytes decrypt to the sealed segments' plaintext.

use encore::hls::crypto::{HlsKey, decrypt_segment};
use encore::license::Scope;
use encore::seal::{self, SealContext, SegmentSlot};
use m3u8_rs::{KeyMethod, MasterPlaylist, MediaPlaylist, Playlist};
use reqwest::StatusCode;

use crate::util::{self, TestServer, Workspace};

const ALBUM: &str = "hls-test";

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// GET `url` (absolute, or a path on the server), with a bearer header when `token` is given.
async fn get(
    c: &reqwest::Client,
    s: &TestServer,
    url: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let full = if url.starts_with('/') {
        format!("{}{url}", s.url)
    } else {
        url.to_owned()
    };
    let mut req = c.get(full);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

async fn text(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.url());
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(resp.headers()["cache-control"], "private, no-store");
    resp.text().await.expect("playlist text")
}

fn master(text: &str) -> MasterPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MasterPlaylist(m)) => m,
        other => panic!("not a multivariant playlist: {other:?}\n{text}"),
    }
}

fn media(text: &str) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(Playlist::MediaPlaylist(m)) => m,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

async fn problem_type(resp: reqwest::Response) -> String {
    let v: serde_json::Value = resp.json().await.expect("problem json");
    v["type"].as_str().unwrap_or_default().to_string()
}

/// Runs ffmpeg without blocking the runtime the server shares (its stdout is the decoded PCM).
async fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(args)
        .output()
        .await
        .expect("ffmpeg must be installed (run .ci/run, which installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn s32(raw: &[u8]) -> Vec<i32> {
    raw.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn header(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// A packaged album of `tracks` 13-second FLAC tracks (4 s preview from 1 s).
fn ws_album(tracks: u32) -> Workspace {
    util::packaged_album(ALBUM, tracks, 13.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_plays_lossless_from_the_multivariant_playlist_with_ffmpeg() {
    let ws = ws_album(1);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let master_path = format!("/v1/albums/{ALBUM}/tracks/1/master.m3u8");

    // The multivariant playlist: every full rendition, no preview, parsed by m3u8-rs.
    let body = text(get(&c, &s, &master_path, Some(&buyer)).await).await;
    assert!(
        !body.contains("access_token"),
        "header token: no token in URIs\n{body}"
    );
    let pl = master(&body);
    let names: Vec<String> = pl
        .variants
        .iter()
        .map(|v| {
            let id = v
                .other_attributes
                .as_ref()
                .and_then(|a| a.get("STABLE-VARIANT-ID"))
                .expect("STABLE-VARIANT-ID")
                .to_string();
            id.trim_matches('"').to_owned()
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["aac", "high", "lossless", "standard"], "{body}");
    for v in &pl.variants {
        assert!(v.bandwidth > 0);
        assert!(
            v.average_bandwidth
                .is_some_and(|a| a > 0 && a <= v.bandwidth)
        );
    }
    let lossless = names
        .iter()
        .position(|n| n == "lossless")
        .expect("lossless");
    assert_eq!(pl.variants[lossless].codecs.as_deref(), Some("fLaC"));
    assert_eq!(
        pl.variants[lossless].uri,
        format!("/v1/albums/{ALBUM}/tracks/1/lossless/index.m3u8")
    );
    for (i, n) in names.iter().enumerate() {
        let want = match n.as_str() {
            "lossless" => "fLaC",
            "aac" => "mp4a.40.2",
            _ => "Opus",
        };
        assert_eq!(pl.variants[i].codecs.as_deref(), Some(want), "{n}");
    }

    // The media playlist matches the manifest: exact durations, a key per segment, the map.
    let m = util::manifest(&ws, ALBUM, 1, "lossless");
    let body = text(get(&c, &s, &pl.variants[lossless].uri, Some(&buyer)).await).await;
    let mp = media(&body);
    assert_eq!(mp.version, Some(7));
    assert!(mp.end_list);
    assert_eq!(mp.media_sequence, 1);
    assert_eq!(mp.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    assert!(mp.independent_segments);
    assert_eq!(mp.segments.len(), m.segments.len());
    let rate = f64::from(m.sample_rate);
    let max = m
        .segments
        .iter()
        .map(|s| s.duration)
        .max()
        .expect("segments");
    assert_eq!(mp.target_duration, max.div_ceil(u64::from(m.sample_rate)));
    let extinfs: Vec<f64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse().expect("EXTINF number"))
        .collect();
    for (seg, (rec, secs)) in mp.segments.iter().zip(m.segments.iter().zip(&extinfs)) {
        assert_eq!((secs * rate).round() as u64, rec.duration, "exact EXTINF");
        let key = seg.key.as_ref().expect("every segment has its EXT-X-KEY");
        assert_eq!(key.method, KeyMethod::AES128);
        assert!(
            key.iv
                .as_deref()
                .is_some_and(|iv| iv.len() == 34 && iv.starts_with("0x"))
        );
        assert!(key.uri.as_deref().is_some_and(|u| u.ends_with("/key")));
    }
    let summed: u64 = extinfs.iter().map(|s| (s * rate).round() as u64).sum();
    assert_eq!(summed, m.segments.iter().map(|s| s.duration).sum::<u64>());
    let map = mp.segments[0].map.as_ref().expect("EXT-X-MAP");
    assert!(map.uri.ends_with("/init.mp4"), "{}", map.uri);
    assert!(body.find("#EXT-X-MAP").unwrap() < body.find("#EXT-X-KEY").unwrap());

    // ffmpeg: the multivariant playlist, the lossless program, with the header token.
    let url = format!("{}{master_path}", s.url);
    let program = format!("0:p:{lossless}");
    let pcm = ffmpeg(&[
        "-headers",
        &header(&buyer),
        "-i",
        &url,
        "-map",
        &program,
        "-f",
        "s32le",
        "-",
    ])
    .await;
    let source = util::decode_s32(&ws.media().join(ALBUM).join("01.flac"));
    let got = s32(&pcm);
    assert_eq!(got.len(), source.len(), "sample count (gapless)");
    assert!(got == source, "HLS lossless differs from the source");

    // The Opus tiers play too (decoding only: lossy).
    let high = names.iter().position(|n| n == "high").expect("high");
    let program = format!("0:p:{high}");
    let pcm = ffmpeg(&[
        "-headers",
        &header(&buyer),
        "-i",
        &url,
        "-map",
        &program,
        "-f",
        "s32le",
        "-",
    ])
    .await;
    assert!(!pcm.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_buyer_is_refused_the_lossless_key_and_plays_the_preview() {
    let ws = ws_album(1);
    let s = TestServer::start(&ws).await;
    let c = client();
    let fan = util::token(&ws, "bob", Scope::Play, &["another-album"]);
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let lossless = util::manifest(&ws, ALBUM, 1, "lossless");
    let base = format!(
        "/v1/albums/{ALBUM}/tracks/1/lossless/hls/{}",
        lossless.generation
    );

    // The multivariant playlist lists the preview only.
    let body = text(
        get(
            &c,
            &s,
            &format!("/v1/albums/{ALBUM}/tracks/1/master.m3u8"),
            Some(&fan),
        )
        .await,
    )
    .await;
    let pl = master(&body);
    assert_eq!(pl.variants.len(), 1, "{body}");
    assert_eq!(
        pl.variants[0].uri,
        format!("/v1/albums/{ALBUM}/tracks/1/preview/index.m3u8")
    );

    // The lossless key URI, playlist and segments: 403 not-purchased, as problem+json.
    for path in [
        format!("{base}/key"),
        format!("/v1/albums/{ALBUM}/tracks/1/lossless/index.m3u8"),
        format!("{base}/init.mp4"),
        format!("{base}/0001.mp4"),
    ] {
        let r = get(&c, &s, &path, Some(&fan)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(
            problem_type(r).await,
            "urn:encore:problem:not-purchased",
            "{path}"
        );
    }
    // The buyer gets the same key: 16 bytes, never stored.
    let r = get(&c, &s, &format!("{base}/key"), Some(&buyer)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.bytes().await.expect("key").len(), 16);
    // No token: 401; an edge may pull segments but never the key.
    let r = get(&c, &s, &format!("{base}/key"), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let edge = util::token(&ws, "cdn", Scope::Edge, &[]);
    let r = get(&c, &s, &format!("{base}/key"), Some(&edge)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        problem_type(r).await,
        "urn:encore:problem:scope-not-allowed"
    );
    let r = get(&c, &s, &format!("{base}/0001.mp4"), Some(&edge)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // Unknown generation or segment: 404.
    for path in [
        format!("/v1/albums/{ALBUM}/tracks/1/lossless/hls/g00/key"),
        format!("{base}/9999.mp4"),
        format!("/v1/albums/{ALBUM}/tracks/9/master.m3u8"),
    ] {
        let r = get(&c, &s, &path, Some(&buyer)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // The preview plays in ffmpeg from the multivariant playlist, with the token in the URL
    // only (as a player that cannot set headers): 4 s at 48 kHz, the clip's length. It is
    // AAC: ffmpeg puts the priming the init's edit list skips before time zero (`-copyts` +
    // `atrim` drop it, as players do), but its HLS demuxer does not apply the edit's end, so
    // up to one AAC frame (1024 samples) of the encoder's padding plays at the end.
    let url = format!(
        "{}/v1/albums/{ALBUM}/tracks/1/master.m3u8?access_token={fan}",
        s.url
    );
    let pcm = s32(&ffmpeg(&[
        "-copyts",
        "-i",
        &url,
        "-af",
        "atrim=start=0",
        "-f",
        "s32le",
        "-ac",
        "2",
        "-ar",
        "48000",
        "-",
    ])
    .await);
    let preview = util::manifest(&ws, ALBUM, 1, "preview");
    assert_eq!(preview.codec, "aac", "the preview plays on every player");
    let frames = pcm.len() as u64 / 2;
    assert!(
        (preview.duration_samples..preview.duration_samples + 1024).contains(&frames),
        "{frames} samples for a clip of {}",
        preview.duration_samples
    );
    assert!(pcm.iter().any(|&x| x != 0), "not silence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_token_is_carried_by_every_uri_and_is_enough() {
    let ws = ws_album(1);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let q = format!("?access_token={buyer}");

    let body = text(
        get(
            &c,
            &s,
            &format!("/v1/albums/{ALBUM}/tracks/1/master.m3u8{q}"),
            None,
        )
        .await,
    )
    .await;
    let pl = master(&body);
    assert_eq!(pl.variants.len(), 4);
    for v in &pl.variants {
        assert!(v.uri.ends_with(&q), "{}", v.uri);
        let body = text(get(&c, &s, &v.uri, None).await).await;
        let mp = media(&body);
        let mut uris = vec![mp.segments[0].map.as_ref().expect("map").uri.clone()];
        for seg in &mp.segments {
            uris.push(seg.uri.clone());
            uris.push(
                seg.key
                    .as_ref()
                    .and_then(|k| k.uri.clone())
                    .expect("key uri"),
            );
        }
        for uri in uris {
            assert!(uri.ends_with(&q), "{uri}");
            // The URI alone (no header) is enough.
            let r = get(&c, &s, &uri, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri}");
        }
    }
    // The header wins over the query, and then no URI carries a token.
    let body = text(
        get(
            &c,
            &s,
            &format!("/v1/albums/{ALBUM}/tracks/1/lossless/index.m3u8{q}"),
            Some(&buyer),
        )
        .await,
    )
    .await;
    assert!(!body.contains("access_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_segments_decrypt_to_the_sealed_plaintext_and_are_cached() {
    let ws = ws_album(1);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let m = util::manifest(&ws, ALBUM, 1, "standard");
    let content = ws
        .keyring()
        .content_key(ALBUM, 1, "standard")
        .expect("content key");
    let body = text(
        get(
            &c,
            &s,
            &format!("/v1/albums/{ALBUM}/tracks/1/standard/index.m3u8"),
            Some(&buyer),
        )
        .await,
    )
    .await;
    let mp = media(&body);
    let key_uri = mp.segments[0]
        .key
        .as_ref()
        .and_then(|k| k.uri.clone())
        .expect("key uri");
    let raw = get(&c, &s, &key_uri, Some(&buyer))
        .await
        .bytes()
        .await
        .expect("key");
    let key = HlsKey::from_bytes(raw.as_ref().try_into().expect("16 bytes"));

    let sealed_plain = |index: u32| {
        let rec = if index == 0 {
            &m.init
        } else {
            &m.segments[index as usize - 1]
        };
        let sealed = std::fs::read(ws.store().segment_path(&m, rec).expect("path")).expect("read");
        let slot = if index == 0 {
            SegmentSlot::Init
        } else {
            SegmentSlot::Media(index)
        };
        let ctx = SealContext {
            album: ALBUM,
            track: 1,
            rendition: "standard",
            slot,
        };
        seal::open(&content, &ctx, &sealed).expect("open")
    };
    let init_uri = &mp.segments[0].map.as_ref().expect("map").uri;
    let r = get(&c, &s, init_uri, Some(&buyer)).await;
    assert_eq!(r.headers()["content-type"], "audio/mp4");
    assert_eq!(
        r.bytes().await.expect("init").to_vec(),
        sealed_plain(0),
        "init in the clear"
    );

    for (i, seg) in mp.segments.iter().enumerate() {
        let index = i as u32 + 1;
        let r = get(&c, &s, &seg.uri, Some(&buyer)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()["etag"].to_str().expect("etag").to_owned();
        assert_eq!(etag, format!("\"hls-{}\"", m.segments[i].sha256));
        let bytes = r.bytes().await.expect("segment").to_vec();
        assert_eq!(
            bytes.len() as u64,
            encore::hls::playlist::hls_bytes(&m.segments[i])
        );
        let iv_hex = seg.key.as_ref().and_then(|k| k.iv.clone()).expect("iv");
        let iv: [u8; 16] = hex::decode(&iv_hex[2..])
            .expect("hex")
            .try_into()
            .expect("16");
        assert_eq!(
            decrypt_segment(&key, &iv, bytes).expect("decrypt"),
            sealed_plain(index),
            "segment {index}"
        );
        // A validator hit needs no body; a range is served from the same bytes.
        let r = c
            .get(format!("{}{}", s.url, seg.uri))
            .bearer_auth(&buyer)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("conditional");
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    }
    let built = s.app.segments.stats().derived_builds.get();
    assert_eq!(
        built,
        1 + mp.segments.len() as u64,
        "init + every segment, once each"
    );
    // A second pass is served from the cache: nothing is built again.
    for seg in &mp.segments {
        assert_eq!(
            get(&c, &s, &seg.uri, Some(&buyer)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(s.app.segments.stats().derived_builds.get(), built);
    assert!(s.app.segments.stats().derived_hits.get() >= mp.segments.len() as u64);
    let metrics = get(&c, &s, "/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("encore_hls_segments_built_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn album_playlists_chain_the_tracks() {
    let ws = util::packaged_album(ALBUM, 2, 7.0);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let fan = util::token(&ws, "bob", Scope::Play, &[]);

    let body = text(
        get(
            &c,
            &s,
            &format!("/v1/albums/{ALBUM}/master.m3u8"),
            Some(&buyer),
        )
        .await,
    )
    .await;
    assert_eq!(master(&body).variants.len(), 4, "{body}");
    let body = text(
        get(
            &c,
            &s,
            &format!("/v1/albums/{ALBUM}/master.m3u8"),
            Some(&fan),
        )
        .await,
    )
    .await;
    let pl = master(&body);
    assert_eq!(pl.variants.len(), 1);
    assert_eq!(
        pl.variants[0].uri,
        format!("/v1/albums/{ALBUM}/preview/index.m3u8")
    );
    let r = get(
        &c,
        &s,
        &format!("/v1/albums/{ALBUM}/lossless/index.m3u8"),
        Some(&fan),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let path = format!("/v1/albums/{ALBUM}/lossless/index.m3u8");
    let body = text(get(&c, &s, &path, Some(&buyer)).await).await;
    let mp = media(&body);
    let per_track: Vec<usize> = (1..=2)
        .map(|t| util::manifest(&ws, ALBUM, t, "lossless").segments.len())
        .collect();
    assert_eq!(mp.segments.len(), per_track.iter().sum::<usize>());
    assert!(mp.segments[per_track[0]].discontinuity);
    assert!(
        mp.segments[per_track[0]].map.is_some(),
        "second track's init"
    );

    // Every URI of the album playlist answers (players that honour EXT-X-DISCONTINUITY, such
    // as hls.js, AVPlayer and ExoPlayer, play it through; ffmpeg's HLS demuxer stops after the
    // first track of a playlist whose timeline restarts, see docs/PLAYERS.md).
    let key_uris: std::collections::BTreeSet<String> = mp
        .segments
        .iter()
        .filter_map(|s| s.key.as_ref().and_then(|k| k.uri.clone()))
        .collect();
    assert_eq!(key_uris.len(), 2, "one key per track");
    let maps = mp
        .segments
        .iter()
        .filter_map(|s| s.map.as_ref().map(|m| m.uri.clone()));
    let uris = mp.segments.iter().map(|s| s.uri.clone());
    for uri in key_uris.into_iter().chain(maps).chain(uris) {
        assert_eq!(
            get(&c, &s, &uri, Some(&buyer)).await.status(),
            StatusCode::OK,
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_key_rotation_mid_play_breaks_no_hls_player() {
    let ws = util::packaged_album(ALBUM, 1, 7.0);
    let s = TestServer::start(&ws).await;
    let c = client();
    let buyer = util::token(&ws, "alice", Scope::Play, &[ALBUM]);
    let path = format!("/v1/albums/{ALBUM}/tracks/1/lossless/index.m3u8");
    let first_segment = |mp: &MediaPlaylist| {
        let seg = &mp.segments[0];
        let key = seg.key.as_ref().expect("key");
        let iv = key.iv.as_deref().expect("iv");
        let iv: [u8; 16] = hex::decode(&iv[2..]).expect("hex").try_into().expect("16");
        (seg.uri.clone(), key.uri.clone().expect("key uri"), iv)
    };
    let play = |(uri, key_uri, iv): (String, String, [u8; 16])| {
        let (c, s, buyer) = (&c, &s, &buyer);
        async move {
            let key = get(c, s, &key_uri, Some(buyer)).await;
            assert_eq!(key.status(), StatusCode::OK, "{key_uri}");
            let key = HlsKey::from_bytes(
                key.bytes()
                    .await
                    .expect("key")
                    .as_ref()
                    .try_into()
                    .expect("16"),
            );
            let seg = get(c, s, &uri, Some(buyer)).await;
            assert_eq!(seg.status(), StatusCode::OK, "{uri}");
            let bytes = seg.bytes().await.expect("segment").to_vec();
            let plain = decrypt_segment(&key, &iv, bytes).expect("decrypts");
            (key, plain)
        }
    };
    let before = first_segment(&media(&text(get(&c, &s, &path, Some(&buyer)).await).await));

    // Re-seal the album under new content keys, as licensing staff do (admin API).
    let admin = util::token(&ws, "staff", Scope::Admin, &[]);
    let r = c
        .post(format!("{}/v1/admin/keys/content/rotate", s.url))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "album": ALBUM }))
        .send()
        .await
        .expect("rotate content");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job_url = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let mut job = serde_json::Value::Null;
    for _ in 0..300 {
        job = get(&c, &s, &job_url, Some(&admin))
            .await
            .json()
            .await
            .expect("job json");
        if job["state"] != "running" {
            break;
        }
        // Waiting on the server's background job, not on time itself.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(job["state"], "succeeded", "{job}");

    let after = first_segment(&media(&text(get(&c, &s, &path, Some(&buyer)).await).await));
    assert_ne!(after.0, before.0, "new segment URLs");
    assert_ne!(after.1, before.1, "new key URL");
    // The player still holding the old playlist keeps playing: the old key and segments of
    // the retiring generation still answer, under the old content key.
    let (old_key, old_plain) = play(before).await;
    let (new_key, new_plain) = play(after).await;
    assert_ne!(
        old_key.expose_bytes(),
        new_key.expose_bytes(),
        "a new HLS key"
    );
    assert_eq!(old_plain, new_plain, "the same audio either way");
}
