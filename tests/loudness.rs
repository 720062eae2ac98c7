//! Loudness at ingest against ffmpeg's `ebur128` filter on the same real sources (mono,
//! stereo, hi-res 96 kHz/24-bit, one with inter-sample peaks): integrated loudness within
//! 0.1 LU and true peak within 0.1 dB of ffmpeg's Summary, the album's integrated loudness
//! within 0.1 LU of ffmpeg's on the tracks concatenated, published in the catalog, the
//! manifests and HLS `EXT-X-SESSION-DATA`; a re-run on the unchanged album measures nothing.
//!
//! True peak: ffmpeg upsamples every rate to 192 kHz (libswresample) and the crate
//! oversamples 4x below 96 kHz and 2x at 96 kHz (a 49-tap polyphase FIR, as libebur128): the
//! same ITU-R BS.1770-4 Annex 2 method with different interpolators, so the figures are
//! comparable within the Annex's own tolerance; the inter-sample peak source checks that both
//! find the peak between samples (3 dB over the sample peak there). That source fades in and
//! out: at a step from silence both interpolators ring, differently by design (on the same
//! tone starting at full level, 2026-12-05: the true value -0.92 dBTP, the crate -0.81,
//! ffmpeg -0.3), so a step measures the filters, not the signal, and is not compared. For the
//! same reason the noise sources are band-limited to 16 kHz, as recorded music is: on white or
//! pink noise up to Nyquist the two interpolators' passbands differ (one of three unfiltered
//! pink noises at 44.1 kHz read -9.50 dBTP here and -9.66 in ffmpeg; band-limited, three
//! of three agreed within 0.02 dB, 2026-12-05).

use std::path::Path;
use std::process::Command;

use encore::license::Scope;

use crate::util::{self, TestServer, Workspace};

const ALBUM: &str = "loud-test";

/// ffmpeg's `ebur128` Summary of `inputs` played one after another: (I in LUFS, true peak in
/// dBFS). Printed to one decimal, so the figures compared carry ±0.05 of rounding.
fn ffmpeg_ebur128(inputs: &[&Path]) -> (f64, f64) {
    let mut args: Vec<String> = vec!["-hide_banner".into(), "-nostats".into(), "-nostdin".into()];
    for p in inputs {
        args.push("-i".into());
        args.push(p.to_str().expect("utf-8").into());
    }
    let graph = if inputs.len() == 1 {
        "ebur128=peak=true".to_string()
    } else {
        let pads: String = (0..inputs.len()).map(|i| format!("[{i}:a]")).collect();
        format!("{pads}concat=n={}:v=0:a=1,ebur128=peak=true", inputs.len())
    };
    args.extend([
        "-filter_complex".into(),
        graph,
        "-f".into(),
        "null".into(),
        "-".into(),
    ]);
    let out = Command::new("ffmpeg")
        .args(&args)
        .output()
        .expect("ffmpeg must be installed (apt-get install ffmpeg; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let summary = &log[log.rfind("Summary:").expect("ebur128 Summary")..];
    let value = |section: &str, key: &str| -> f64 {
        let at = summary.find(section).expect(section);
        let line = summary[at..]
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .expect(key);
        line.split_whitespace()
            .nth(1)
            .expect("number")
            .parse()
            .expect("float")
    };
    (
        value("Integrated loudness:", "I:"),
        value("True peak:", "Peak:"),
    )
}

fn sox(args: &[&str]) {
    let out = Command::new("sox")
        // Repeatable: the same noise on every run.
        .arg("-R")
        .args(args)
        .output()
        .expect("sox must be installed (apt-get install sox)");
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The album: mono 44.1 kHz pink noise, stereo 48 kHz tone and noise, hi-res 96 kHz/24-bit
/// stereo FLAC, and a 44.1 kHz sine at fs/4 sampled 45° off its crests (true peak 3 dB over
/// the sample peak). All 44.1/48/96 kHz mixes: the album comparison concatenates the two
/// that share a format.
fn make_album(dir: &Path) {
    let p = |n: &str| dir.join(n).to_str().expect("utf-8").to_owned();
    sox(&[
        "-n",
        "-r",
        "44100",
        "-c",
        "1",
        "-b",
        "16",
        &p("01-mono.flac"),
        "synth",
        "8",
        "pinknoise",
        "vol",
        "0.25",
        "sinc",
        "-16k",
    ]);
    sox(&[
        "-n",
        "-r",
        "48000",
        "-c",
        "2",
        "-b",
        "16",
        &p("02-stereo.flac"),
        "synth",
        "8",
        "sine",
        "220",
        "brownnoise",
        "vol",
        "0.4",
        "fade",
        "q",
        "1",
        "8",
        "2",
        "sinc",
        "-16k",
    ]);
    sox(&[
        "-n",
        "-r",
        "96000",
        "-c",
        "2",
        "-b",
        "24",
        &p("03-hires.flac"),
        "synth",
        "8",
        "sine",
        "1000",
        "pinknoise",
        "vol",
        "0.6",
        "tremolo",
        "3",
        "60",
    ]);
    util::ffmpeg(&[
        "-y",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=exprs=0.9*sin(2*PI*11025*t+PI/4)|0.9*sin(2*PI*11025*t+PI/4):s=44100:d=6,\
         afade=t=in:d=0.5,afade=t=out:st=5.5:d=0.5",
        "-c:a",
        "flac",
        "-sample_fmt",
        "s16",
        &p("04-intersample.flac"),
    ]);
    // A quieter second stereo 48 kHz track for the album comparison (same format as 02).
    sox(&[
        "-n",
        "-r",
        "48000",
        "-c",
        "2",
        "-b",
        "16",
        &p("05-quiet.flac"),
        "synth",
        "8",
        "pinknoise",
        "vol",
        "0.3",
        "sinc",
        "-16k",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loudness_matches_ffmpeg_ebur128_and_is_published() {
    let ws = Workspace::new();
    let dir = ws.album_dir(ALBUM);
    make_album(&dir);
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("loudness measured on 5 track(s)"),
        "{stdout}"
    );

    let store = ws.store();
    let files = [
        "01-mono.flac",
        "02-stereo.flac",
        "03-hires.flac",
        "04-intersample.flac",
        "05-quiet.flac",
    ];
    for (i, name) in files.iter().enumerate() {
        let record = store.read_track(ALBUM, i as u32 + 1).unwrap().unwrap();
        let ours = record.loudness.expect("track loudness");
        let (i_ff, tp_ff) = ffmpeg_ebur128(&[&dir.join(name)]);
        eprintln!(
            "{name}: encore I {:.3} LUFS TP {:.3} dBTP LRA {:.2}; ffmpeg I {i_ff} TP {tp_ff}",
            ours.integrated_lufs, ours.true_peak_dbtp, ours.range_lu
        );
        assert!(
            (ours.integrated_lufs - i_ff).abs() <= 0.1,
            "{name}: integrated {} vs ffmpeg {i_ff}",
            ours.integrated_lufs
        );
        assert!(
            (ours.true_peak_dbtp - tp_ff).abs() <= 0.1,
            "{name}: true peak {} vs ffmpeg {tp_ff}",
            ours.true_peak_dbtp
        );
        assert!((ours.gain_db - (-18.0 - ours.integrated_lufs)).abs() < 0.011);
        assert!(10f64.powf(ours.safe_gain_db() / 20.0) * ours.true_peak <= 1.0 + 1e-4);
    }
    // The inter-sample peak: 0.9 at the crests that fall between samples, 0.636 on them.
    let isp = store
        .read_track(ALBUM, 4)
        .unwrap()
        .unwrap()
        .loudness
        .unwrap();
    assert!((isp.true_peak_dbtp - (-0.915)).abs() <= 0.1, "{isp:?}");

    // The album: gated over every track's blocks together. ffmpeg measures one stream, so the
    // comparison is on an album of the two tracks that share a format (its own ingest).
    let ws2 = Workspace::new();
    let dir2 = ws2.album_dir("pair");
    std::fs::copy(dir.join("02-stereo.flac"), dir2.join("01.flac")).unwrap();
    std::fs::copy(dir.join("05-quiet.flac"), dir2.join("02.flac")).unwrap();
    let out = ws2.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    let pair = ws2
        .store()
        .read_album("pair")
        .unwrap()
        .unwrap()
        .loudness
        .expect("album loudness");
    let (i_ff, tp_ff) = ffmpeg_ebur128(&[&dir2.join("01.flac"), &dir2.join("02.flac")]);
    let tracks: Vec<f64> = (1..=2)
        .map(|n| {
            ws2.store()
                .read_track("pair", n)
                .unwrap()
                .unwrap()
                .loudness
                .unwrap()
                .integrated_lufs
        })
        .collect();
    eprintln!(
        "album: encore I {:.3} TP {:.3}; ffmpeg I {i_ff} TP {tp_ff}; tracks {tracks:?}",
        pair.integrated_lufs, pair.true_peak_dbtp
    );
    assert!(
        (pair.integrated_lufs - i_ff).abs() <= 0.1,
        "album {pair:?} vs ffmpeg {i_ff}"
    );
    assert!(
        (pair.true_peak_dbtp - tp_ff).abs() <= 0.1,
        "album {pair:?} vs ffmpeg {tp_ff}"
    );
    let mean = (tracks[0] + tracks[1]) / 2.0;
    assert!(
        (pair.integrated_lufs - mean).abs() > 0.5,
        "not an average of LUFS"
    );

    // Published: the catalog entry, the manifest, the HLS multivariant playlist.
    let server = TestServer::start(&ws).await;
    let c = reqwest::Client::new();
    let entry: serde_json::Value = c
        .get(format!("{}/v1/albums/{ALBUM}", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let album = store.read_album(ALBUM).unwrap().unwrap().loudness.unwrap();
    assert_eq!(entry["loudness"]["gain_db"], album.gain_db);
    assert_eq!(entry["loudness"]["reference_lufs"], -18.0);
    assert_eq!(
        entry["tracks"][2]["loudness"]["true_peak"],
        store
            .read_track(ALBUM, 3)
            .unwrap()
            .unwrap()
            .loudness
            .unwrap()
            .true_peak
    );
    let token = util::token(&ws, "fan", Scope::Play, &[ALBUM]);
    let manifest: serde_json::Value = c
        .get(format!(
            "{}/v1/albums/{ALBUM}/tracks/1/high/manifest",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t1 = store
        .read_track(ALBUM, 1)
        .unwrap()
        .unwrap()
        .loudness
        .unwrap();
    assert_eq!(manifest["loudness"]["track"]["gain_db"], t1.gain_db);
    assert_eq!(manifest["loudness"]["album"]["gain_db"], album.gain_db);
    let master = c
        .get(format!(
            "{}/v1/albums/{ALBUM}/tracks/1/master.m3u8",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        master.contains(&format!(
            "#EXT-X-SESSION-DATA:DATA-ID=\"org.encore.replaygain.track_gain\",VALUE=\"{:.2}\"",
            t1.gain_db
        )),
        "{master}"
    );
    assert!(
        master.contains("DATA-ID=\"org.encore.replaygain.album_peak\""),
        "{master}"
    );
    let parsed = m3u8_rs::parse_playlist_res(master.as_bytes());
    assert!(
        matches!(parsed, Ok(m3u8_rs::Playlist::MasterPlaylist(ref m)) if m.session_data.len() == 5),
        "{parsed:?}"
    );

    // A re-run on the unchanged album measures nothing and keeps the figures.
    let again = ws.encore(&["ingest"]);
    let stdout = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success(), "{}", util::text(&again));
    assert!(
        stdout.contains("0 track(s) packaged, 5 unchanged"),
        "{stdout}"
    );
    assert!(
        stdout.contains("loudness measured on 0 track(s)"),
        "{stdout}"
    );
    assert_eq!(
        store.read_album(ALBUM).unwrap().unwrap().loudness,
        Some(album)
    );
}
