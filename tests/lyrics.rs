//! Lyrics: an `.lrc` beside a track (BOM, `[offset:]`, several tags on a line) and a Vorbis
//! `LYRICS` tag, served as JSON lines to any play token, and to HLS players as a WebVTT
//! subtitles rendition that ffmpeg reads from the multivariant playlist; a bad `.lrc` is named
//! at ingest while everything is still packaged, and a fixed one is picked up by a re-run
//! that re-encodes nothing.

use encore::license::Scope;
use reqwest::StatusCode;

use crate::util::{self, TestServer, Workspace};

const ALBUM: &str = "lyrics-test";

const LRC: &str = "\u{feff}[ar:Nobody in particular]\n[ti:Test words]\n[offset:+250]\n\
[00:00.50]Morning comes in paper boats\n[00:02.25][00:05.25]Folded out of yesterday\n\
[00:03.75]The kettle hums a borrowed tune\n[00:04.50]\n";

async fn ffmpeg_out(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(args)
        .output()
        .await
        .expect("ffmpeg must be installed (apt-get install ffmpeg; .ci/run installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lyrics_json_lines_hls_subtitles_and_a_bad_lrc_named_at_ingest() {
    let ws = Workspace::new();
    let dir = ws.album_dir(ALBUM);
    for n in 1..=4 {
        let mut args = vec!["-c:a", "flac"];
        if n == 2 {
            args.extend(["-metadata", "LYRICS=First plain line\nSecond plain line"]);
        }
        util::make_fixture(&dir.join(format!("{n:02}.flac")), 44_100, 2, 7.0, &args);
    }
    std::fs::write(dir.join("01.lrc"), LRC).unwrap();
    // Latin-1 bytes where UTF-8 is expected: a bad .lrc.
    std::fs::write(dir.join("03.lrc"), b"[00:01.00]caf\xe9 au lait\n").unwrap();

    let out = ws.init_and_ingest();
    let text = util::text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad .lrc fails the run: {text}"
    );
    assert!(
        text.contains("4 track(s) packaged"),
        "the rest is packaged: {text}"
    );
    assert!(
        text.contains("03.lrc: lyrics not packaged (the track is): not UTF-8 text"),
        "the bad file is named: {text}"
    );

    let server = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let get = |path: String, token: Option<String>| {
        let mut req = c.get(format!("{}{path}", server.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let entry: serde_json::Value = get(format!("/v1/albums/{ALBUM}"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entry["tracks"][0]["lyrics"]["synced"], true, "{entry:#}");
    assert_eq!(entry["tracks"][0]["lyrics"]["lines"], 5);
    assert_eq!(
        entry["tracks"][0]["lyrics"]["url"],
        format!("/v1/albums/{ALBUM}/tracks/1/lyrics")
    );
    assert_eq!(entry["tracks"][1]["lyrics"]["synced"], false);
    assert!(entry["tracks"][2]["lyrics"].is_null());
    assert!(entry["tracks"][3]["lyrics"].is_null());

    // Gated like the preview: no token 401, any play token (not a buyer here) 200.
    let url = format!("/v1/albums/{ALBUM}/tracks/1/lyrics");
    assert_eq!(
        get(url.clone(), None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let listener = util::token(&ws, "listener", Scope::Play, &[]);
    let resp = get(url.clone(), Some(listener.clone())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/jsonl; charset=utf-8"
    );
    let body = resp.text().await.unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| (l["t_ms"].as_u64().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (250, "Morning comes in paper boats"),
            (2000, "Folded out of yesterday"),
            (3500, "The kettle hums a borrowed tune"),
            (4250, ""),
            (5000, "Folded out of yesterday"),
        ],
        "{body}"
    );
    let plain = get(
        format!("/v1/albums/{ALBUM}/tracks/2/lyrics"),
        Some(listener.clone()),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(
        plain,
        "{\"t_ms\":null,\"text\":\"First plain line\"}\n{\"t_ms\":null,\"text\":\"Second plain line\"}\n"
    );
    for path in [
        format!("/v1/albums/{ALBUM}/tracks/3/lyrics"),
        format!("/v1/albums/{ALBUM}/tracks/2/lyrics/lyrics.vtt"),
    ] {
        let r = get(path.clone(), Some(listener.clone())).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // HLS: the buyer's multivariant playlist names the subtitles rendition; the preview's
    // does not (the lyrics' times are the whole track's).
    let buyer = util::token(&ws, "buyer", Scope::Play, &[ALBUM]);
    let master = get(
        format!("/v1/albums/{ALBUM}/tracks/1/master.m3u8"),
        Some(buyer.clone()),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        master.contains(&format!("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"lyrics\",NAME=\"Lyrics\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI=\"/v1/albums/{ALBUM}/tracks/1/lyrics/index.m3u8\"")),
        "{master}"
    );
    assert!(master.contains(",SUBTITLES=\"lyrics\"\n"), "{master}");
    match m3u8_rs::parse_playlist_res(master.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            assert_eq!(m.alternatives.len(), 1);
            assert!(
                m.variants
                    .iter()
                    .all(|v| v.subtitles.as_deref() == Some("lyrics"))
            );
        }
        other => panic!("{other:?}"),
    }
    let preview_master = get(
        format!("/v1/albums/{ALBUM}/tracks/1/master.m3u8"),
        Some(listener.clone()),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(!preview_master.contains("SUBTITLES"), "{preview_master}");
    let vtt = get(
        format!("/v1/albums/{ALBUM}/tracks/1/lyrics/lyrics.vtt"),
        Some(buyer.clone()),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        vtt.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"),
        "{vtt}"
    );
    assert!(
        vtt.contains("00:00:02.000 --> 00:00:03.500\nFolded out of yesterday\n"),
        "{vtt}"
    );
    assert!(
        vtt.contains("00:00:05.000 --> 00:00:07.000\nFolded out of yesterday\n"),
        "{vtt}"
    );

    // ffmpeg, as a standard HLS player (the token in the URIs), finds the subtitles stream
    // beside the audio and reads the cues from it. Its HLS demuxer opens subtitle renditions
    // only with `-strict experimental` (libavformat/hls.c).
    let master_url = format!(
        "{}/v1/albums/{ALBUM}/tracks/1/master.m3u8?access_token={buyer}",
        server.url
    );
    let out = ffmpeg_out(&[
        "-strict",
        "experimental",
        "-i",
        &master_url,
        "-map",
        "0:s:0",
        "-c:s",
        "webvtt",
        "-f",
        "webvtt",
        "-",
    ])
    .await;
    let cues = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cues.contains("Morning comes in paper boats"), "{cues}");
    assert!(cues.contains("The kettle hums a borrowed tune"), "{cues}");

    // The .lrc fixed: a re-run picks it up without re-encoding anything.
    std::fs::write(dir.join("03.lrc"), "[00:01.00]café au lait\n").unwrap();
    let again = ws.encore(&["ingest"]);
    let text = util::text(&again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("0 track(s) packaged, 4 unchanged"), "{text}");
    assert!(text.contains("loudness measured on 0 track(s)"), "{text}");
    let lyrics = ws
        .store()
        .read_lyrics(ALBUM, 3)
        .unwrap()
        .expect("lyrics of track 3");
    assert_eq!(lyrics.lines[0].text, "café au lait");
    assert!(
        ws.store()
            .read_track(ALBUM, 3)
            .unwrap()
            .unwrap()
            .lyrics
            .is_some()
    );
}

/// An MP3 whose ID3v2 tag holds a `SYLT` frame (millisecond times) and a `USLT`: the synced
/// lyrics win, read with the `id3` crate since symphonia skips the frame.
#[test]
fn an_id3_sylt_frame_gives_synced_lyrics() {
    use id3::TagLike;
    let ws = Workspace::new();
    let dir = ws.album_dir("sylt-test");
    let mp3 = dir.join("01.mp3");
    util::make_fixture(
        &mp3,
        44_100,
        2,
        4.0,
        &["-c:a", "libmp3lame", "-b:a", "128k"],
    );
    let mut tag = id3::Tag::read_from_path(&mp3).unwrap_or_else(|_| id3::Tag::new());
    tag.add_frame(id3::frame::Lyrics {
        lang: "eng".into(),
        description: String::new(),
        text: "an unsynced copy".into(),
    });
    tag.add_frame(id3::frame::SynchronisedLyrics {
        lang: "eng".into(),
        timestamp_format: id3::frame::TimestampFormat::Ms,
        content_type: id3::frame::SynchronisedLyricsType::Lyrics,
        description: String::new(),
        content: vec![
            (2500, "Second, written later".into()),
            (1000, "First in time".into()),
        ],
    });
    tag.write_to_path(&mp3, id3::Version::Id3v24)
        .expect("write the ID3 tag");
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    let lyrics = ws
        .store()
        .read_lyrics("sylt-test", 1)
        .unwrap()
        .expect("lyrics");
    assert!(lyrics.synced, "{lyrics:?}");
    let got: Vec<(Option<u64>, &str)> = lyrics
        .lines
        .iter()
        .map(|l| (l.t_ms, l.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(1000), "First in time"),
            (Some(2500), "Second, written later")
        ]
    );
}
