//! Shared helpers for the integration tests: temp dirs, the real `encore` binary, fixtures
//! made by real encoders (ffmpeg), and reading back what a player would get.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use encore::keys::Keyring;
use encore::seal::{self, SealContext, SegmentSlot};
use encore::store::{RenditionManifest, Store};

/// A fresh directory tree for one test: media/, keys/, data/.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("encore-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("media")).expect("media dir");
        Workspace { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn media(&self) -> PathBuf {
        self.path().join("media")
    }
    pub fn keys(&self) -> PathBuf {
        self.path().join("keys")
    }
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }
    pub fn album_dir(&self, album: &str) -> PathBuf {
        let d = self.media().join(album);
        std::fs::create_dir_all(&d).expect("album dir");
        d
    }
    pub fn store(&self) -> Store {
        Store::new(&self.data())
    }
    pub fn keyring(&self) -> Keyring {
        Keyring::open(&self.keys()).expect("open keyring")
    }

    /// Runs the real `encore` binary with the workspace's folders.
    pub fn encore(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_encore"))
            .args(args)
            .env("ENCORE_MEDIA", self.media())
            .env("ENCORE_KEYS", self.keys())
            .env("ENCORE_DATA", self.data())
            .env_remove("ENCORE_CONFIG")
            .current_dir(self.path())
            .output()
            .expect("run encore")
    }

    /// `encore serve ARGS` with the workspace's folders (killed when dropped), not started:
    /// the caller picks what to do with stdout and stderr.
    pub fn serve_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_encore"));
        cmd.arg("serve")
            .args(args)
            .env("ENCORE_MEDIA", self.media())
            .env("ENCORE_KEYS", self.keys())
            .env("ENCORE_DATA", self.data())
            .env_remove("ENCORE_CONFIG")
            .current_dir(self.path())
            .kill_on_drop(true);
        cmd
    }

    /// `encore keys init` then `encore ingest`, returning the ingest output.
    pub fn init_and_ingest(&self) -> Output {
        let init = self.encore(&["keys", "init", "--dev-accounts"]);
        assert!(init.status.success(), "keys init failed: {}", text(&init));
        self.encore(&["ingest"])
    }
}

/// stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs ffmpeg, panicking with its stderr on failure. Tests need ffmpeg: `.ci/run` installs it.
pub fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (run .ci/run, which installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A test signal that makes misalignment and dropped samples visible: a rising chirp on the
/// left, a falling chirp plus a steady tone on the right, all below 0.3 x the sample rate so
/// the source itself is free of aliasing at every rate.
pub fn signal_expr(channels: u16, rate: u32, seconds: f64) -> String {
    let top = (f64::from(rate) * 0.3).min(12_000.0);
    let sweep = (top - 150.0) / seconds;
    let tone = (f64::from(rate) * 0.2).min(2500.0);
    let left = format!(
        "0.35*sin(2*PI*(150+{:.3}*t)*t)+0.1*sin(2*PI*{tone:.1}*t)",
        sweep / 2.0
    );
    let right = format!(
        "0.3*sin(2*PI*({top:.1}-{:.3}*t)*t)+0.15*sin(2*PI*440*t)",
        sweep / 2.0
    );
    if channels == 1 {
        left
    } else {
        format!("{left}|{right}")
    }
}

/// Writes a fixture with ffmpeg: `seconds` of the test signal at `rate` Hz, encoded with `codec_args`.
pub fn make_fixture(path: &Path, rate: u32, channels: u16, seconds: f64, codec_args: &[&str]) {
    let src = format!(
        "aevalsrc=exprs={}:s={rate}:d={seconds}",
        signal_expr(channels, rate, seconds)
    );
    let mut args: Vec<&str> = vec!["-y", "-f", "lavfi", "-i", &src];
    args.extend_from_slice(codec_args);
    let p = path.to_str().expect("utf-8 path");
    args.push(p);
    ffmpeg(&args);
}

/// ffmpeg output arguments for 24-bit FLAC.
pub const FLAC_24: &[&str] = &[
    "-c:a",
    "flac",
    "-sample_fmt",
    "s32",
    "-bits_per_raw_sample",
    "24",
];

/// Writes `seconds` of independent white noise on two channels, peak `amplitude / 2`, at
/// `rate` Hz as 24-bit FLAC: the hardest input for a FLAC encoder.
pub fn make_noise_flac(path: &Path, rate: u32, amplitude: f64, seconds: f64) {
    let src = format!(
        "aevalsrc=exprs={amplitude}*(random(0)-0.5)|{amplitude}*(random(1)-0.5):s={rate}:d={seconds}"
    );
    let mut args: Vec<&str> = vec!["-y", "-f", "lavfi", "-i", &src];
    args.extend_from_slice(FLAC_24);
    args.push(path.to_str().expect("utf-8 path"));
    ffmpeg(&args);
}

/// Decodes a file with ffmpeg to interleaved s32 at its own rate.
pub fn decode_s32(path: &Path) -> Vec<i32> {
    let raw = ffmpeg(&["-i", path.to_str().expect("utf-8"), "-f", "s32le", "-"]);
    raw.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The native FLAC stream carried in a fragmented MP4 of one FLAC track: `fLaC`, the
/// metadata blocks of `dfLa` (last-block flag as stored), then the payload of every `mdat`.
pub fn flac_stream_of_fmp4(fmp4: &[u8]) -> Vec<u8> {
    fn boxes(mut data: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        while data.len() >= 8 {
            let size = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
            let kind: [u8; 4] = data[4..8].try_into().expect("4 bytes");
            let (header, size) = if size == 1 {
                let large = u64::from_be_bytes(data[8..16].try_into().expect("8 bytes"));
                (16, large as usize)
            } else {
                (8, size)
            };
            out.push((kind, &data[header..size]));
            data = &data[size..];
        }
        out
    }
    fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
        let (first, rest) = path.split_first()?;
        let body = boxes(data).into_iter().find(|(k, _)| k == *first)?.1;
        if rest.is_empty() {
            Some(body)
        } else {
            find(body, rest)
        }
    }
    let stsd = find(
        fmp4,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    )
    .expect("stsd");
    // stsd: full box header + entry count, then the `fLaC` sample entry (28 bytes of
    // AudioSampleEntry fields after its own header) holding `dfLa` (a full box).
    let entry = boxes(&stsd[8..]).into_iter().next().expect("sample entry");
    assert_eq!(&entry.0, b"fLaC", "a FLAC track");
    let dfla = find(&entry.1[28..], &[b"dfLa"]).expect("dfLa");
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&dfla[4..]);
    for (kind, body) in boxes(fmp4) {
        if &kind == b"mdat" {
            out.extend_from_slice(body);
        }
    }
    out
}

/// Decodes a native 32-bit FLAC file with the reference decoder (`flac` 1.4 or later, which
/// reads 32-bit FLAC and checks STREAMINFO's MD5) to interleaved s32.
pub fn flac_decode_s32(path: &Path) -> Vec<i32> {
    let raw = path.with_extension("raw");
    let out = Command::new("flac")
        .args([
            "-d",
            "-f",
            "-s",
            "--force-raw-format",
            "--endian=little",
            "--sign=signed",
        ])
        .arg("-o")
        .arg(&raw)
        .arg(path)
        .output()
        .expect("flac 1.4+ must be installed (run .ci/run, which installs it)");
    assert!(
        out.status.success(),
        "flac -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&raw).expect("decoded raw");
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Decodes a file with ffmpeg to interleaved f32, optionally resampled to `rate`.
pub fn decode_f32(path: &Path, rate: Option<u32>) -> Vec<f32> {
    let p = path.to_str().expect("utf-8");
    let r = rate.map(|r| r.to_string());
    let mut args = vec!["-i", p];
    if let Some(r) = r.as_deref() {
        args.extend_from_slice(&["-ar", r, "-af", "aresample=resampler=soxr:precision=28"]);
    }
    args.extend_from_slice(&["-f", "f32le", "-"]);
    let raw = ffmpeg(&args);
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// What ffprobe says about a file's first audio stream, as `field -> value`.
pub fn ffprobe_audio(path: &Path) -> BTreeMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .arg("stream=codec_name,profile,channels,sample_rate,start_time")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (run .ci/run, which installs it)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Decodes to interleaved f32 on the file's own timeline, dropping whatever it places before
/// time zero. For an MP4 that is the edit list's media_time (encoder priming): ffmpeg reads
/// it as the first packet's negative timestamp, and `-copyts` + `atrim=start=0` make it drop
/// those samples. (ffmpeg 5.1 does not apply the edit's end in a fragmented MP4, so the last
/// access unit's padding is still there.)
pub fn decode_f32_from_zero(path: &Path) -> Vec<f32> {
    let p = path.to_str().expect("utf-8");
    let raw = ffmpeg(&[
        "-copyts",
        "-i",
        p,
        "-af",
        "atrim=start=0",
        "-f",
        "f32le",
        "-",
    ]);
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Checks an `aac` rendition file (init + fragments, as a player gets it) against its
/// source: AAC-LC at the expected rate and channel count as ffprobe reads it, an edit list
/// that skips the priming and presents exactly the source's sample count, and decoded audio
/// lined up sample for sample with the source. Returns the SNR in dB.
pub fn check_aac(
    file: &Path,
    src: &Path,
    source_rate: u32,
    channels: u16,
    source_frames: usize,
) -> f64 {
    let rate = encore::media::aac::coded_rate(source_rate);
    let ch = usize::from(channels);
    let probe = ffprobe_audio(file);
    assert_eq!(probe["codec_name"], "aac", "{probe:?}");
    assert_eq!(probe["profile"], "LC", "{probe:?}");
    assert_eq!(probe["channels"], channels.to_string(), "{probe:?}");
    assert_eq!(probe["sample_rate"], rate.to_string(), "{probe:?}");

    // The edit list: skip the encoder's priming, present exactly the source's length.
    let expected = encore::media::resample::resampled_len(source_frames, source_rate, rate);
    let trim = encore::media::gapless::mp4_trim(file).expect("an edit list");
    assert!(trim.skip > 0, "the priming is signalled");
    assert_eq!(
        trim.keep,
        Some(expected as u64),
        "the edit list presents the source's sample count"
    );
    // ffmpeg reads the same start: the first presented sample is at time zero.
    let start: f64 = probe["start_time"].parse().expect("start_time");
    assert!(
        (start + trim.skip as f64 / f64::from(rate)).abs() < 0.5 / f64::from(rate),
        "ffmpeg starts the stream at {start} s, the edit list skips {} samples",
        trim.skip
    );

    // ffmpeg drops the priming; what is left is the source plus less than one access unit
    // of padding (see decode_f32_from_zero), cut here at the edit's end.
    let pcm = decode_f32_from_zero(file);
    let frames = pcm.len() / ch;
    assert!(
        frames >= expected && frames < expected + encore::media::aac::FRAME,
        "ffmpeg decoded {frames} frames after the priming; the source has {expected}"
    );
    let pcm = &pcm[..expected * ch];
    let reference = decode_f32(src, (rate != source_rate).then_some(rate));
    let n = pcm.len().min(reference.len());

    // Sample-accurate start: over a stretch of the chirp, no other lag lines up as well.
    let window = (rate as usize / 2) * ch;
    let from = (rate as usize / 4) * ch;
    let lag_corr = |lag: isize| {
        let shift = lag * ch as isize;
        let start = (from as isize + shift) as usize;
        correlation(&pcm[start..start + window], &reference[from..from + window])
    };
    let best = (-16isize..=16)
        .max_by(|a, b| lag_corr(*a).total_cmp(&lag_corr(*b)))
        .expect("lags");
    assert_eq!(
        best, 0,
        "the decoded AAC is {best} samples off the source (edit list media_time wrong)"
    );
    let c = correlation(&pcm[..n], &reference[..n]);
    let snr = snr_db(&reference[..n], &pcm[..n]);
    assert!(c > 0.995, "AAC correlates {c} with the source");
    // Lossy, so a floor rather than equality: 46-47 dB is what 256 kbit/s (128 mono) gives
    // on this signal, against the source or ffmpeg's soxr resampling of it.
    assert!(
        snr > 35.0,
        "AAC is only {snr:.1} dB above its difference from the source"
    );
    snr
}

/// The manifest of a packaged rendition, which must exist.
pub fn manifest(ws: &Workspace, album: &str, track: u32, rendition: &str) -> RenditionManifest {
    ws.store()
        .read_manifest(album, track, rendition)
        .expect("read manifest")
        .unwrap_or_else(|| panic!("no manifest for {album}/{track}/{rendition}"))
}

/// Opens every seal of a rendition with its content key and concatenates init + fragments,
/// as a client does; writes the result as an .m4a and returns its path.
pub fn open_rendition(ws: &Workspace, album: &str, track: u32, rendition: &str) -> PathBuf {
    let m = manifest(ws, album, track, rendition);
    let key = ws
        .keyring()
        .content_key(album, track, rendition)
        .expect("content key");
    assert_eq!(
        key.id().to_string(),
        m.key_id,
        "manifest names the content key"
    );
    let store = ws.store();
    let mut out = Vec::new();
    for rec in std::iter::once(&m.init).chain(&m.segments) {
        let sealed =
            std::fs::read(store.segment_path(&m, rec).expect("path")).expect("read segment");
        let slot = if rec.index == 0 {
            SegmentSlot::Init
        } else {
            SegmentSlot::Media(rec.index)
        };
        let ctx = SealContext {
            album,
            track,
            rendition,
            slot,
        };
        out.extend(seal::open(&key, &ctx, &sealed).expect("open seal"));
    }
    let path = ws.path().join(format!("{album}-{track}-{rendition}.m4a"));
    std::fs::write(&path, out).expect("write m4a");
    path
}

/// Pearson correlation of two equal-length signals.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (ma, mb) = (
        a[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64,
        b[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (f64::from(a[i]) - ma, f64::from(b[i]) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa.sqrt() * sbb.sqrt()).max(1e-30)
}

/// Signal-to-noise ratio in dB of `test` against `reference`.
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let n = reference.len().min(test.len());
    let (mut s, mut e) = (0.0f64, 0.0f64);
    for i in 0..n {
        s += f64::from(reference[i]).powi(2);
        e += f64::from(reference[i] - test[i]).powi(2);
    }
    10.0 * (s / e.max(1e-30)).log10()
}

/// An in-process encore server on 127.0.0.1 with an ephemeral port.
pub struct TestServer {
    pub url: String,
    pub app: std::sync::Arc<encore::http::App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Starts serving the workspace's store with default settings.
    pub async fn start(ws: &Workspace) -> TestServer {
        let limits = encore::http::Limits {
            shutdown_grace: std::time::Duration::from_secs(30),
            ..Default::default()
        };
        TestServer::start_with_limits(ws, limits).await
    }

    /// Starts serving the workspace's store with `limits`.
    pub async fn start_with_limits(ws: &Workspace, limits: encore::http::Limits) -> TestServer {
        TestServer::start_configured(ws, limits, Default::default()).await
    }

    /// Starts serving the workspace's store with `limits` and the settings of `raw` (a parsed
    /// `encore.toml`; its `[ledger] url`, if any, names the ledger, else SQLite under data/).
    pub async fn start_configured(
        ws: &Workspace,
        limits: encore::http::Limits,
        raw: encore::config::RawConfig,
    ) -> TestServer {
        TestServer::start_with_clock(ws, limits, raw, None).await
    }

    /// [`TestServer::start_configured`] with the application reading `clock` (launch times,
    /// decline windows) instead of the system's, when given.
    pub async fn start_with_clock(
        ws: &Workspace,
        limits: encore::http::Limits,
        raw: encore::config::RawConfig,
        clock: Option<std::sync::Arc<dyn encore::clock::Clock>>,
    ) -> TestServer {
        use std::sync::Arc;
        let keyring = Arc::new(ws.keyring());
        let config = encore::config::Config::from_raw(raw, &Default::default()).expect("config");
        std::fs::create_dir_all(ws.data()).expect("data dir");
        // `[ledger] url` as `encore serve` reads it: a test's own PostgreSQL database, or
        // SQLite in the workspace.
        let ledger = match &config.server.ledger.url {
            Some(url) => encore::ledger::Ledger::open_url(url, "the test's database".into())
                .await
                .expect("ledger"),
            None => {
                encore::ledger::Ledger::open_sqlite(&ws.data().join(encore::ledger::LEDGER_FILE))
                    .await
                    .expect("ledger")
            }
        };
        let mut app = encore::http::App::new(ws.store(), keyring, ledger, &config.server, limits)
            .expect("app");
        if let Some(clock) = clock {
            app = app.with_clock(clock);
        }
        let app = Arc::new(app);
        app.load_revocations(now()).await.expect("revocations");
        // As `encore serve` does: without it the change feed goes unread and `/readyz`
        // answers 503 after a few catch-up periods.
        tokio::spawn(encore::app::changes::keep_up(
            app.clone(),
            config.server.ledger.catch_up,
        ));
        app.ready.store(true, std::sync::atomic::Ordering::Release);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(encore::http::run(listener, app.clone(), None, async move {
            let _ = rx.await;
        }));
        TestServer {
            url,
            app,
            shutdown: Some(tx),
            handle,
        }
    }

    /// Signals shutdown (stop accepting, finish in-flight).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Current unix time.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Mints a token with the workspace's signing key.
pub fn token(ws: &Workspace, sub: &str, scope: encore::license::Scope, albums: &[&str]) -> String {
    token_at(ws, sub, scope, albums, now(), 3600, None)
}

/// Mints a token as if minted at `at`, with `ttl` and an optional `nbf`.
pub fn token_at(
    ws: &Workspace,
    sub: &str,
    scope: encore::license::Scope,
    albums: &[&str],
    at: u64,
    ttl: u64,
    nbf: Option<u64>,
) -> String {
    let key = ws.keyring().signing_key().expect("signing key");
    let mut req = encore::license::MintRequest::new(sub, scope);
    req.albums = albums.iter().map(|s| s.to_string()).collect();
    req.ttl_seconds = ttl;
    req.not_before = nbf;
    encore::license::mint(&key, &req, at).expect("mint")
}

/// A packaged album `album` with `tracks` FLAC tracks of `seconds` each.
pub fn packaged_album(album: &str, tracks: u32, seconds: f64) -> Workspace {
    let ws = Workspace::new();
    let dir = ws.album_dir(album);
    std::fs::write(
        dir.join("album.toml"),
        "title = \"Test\"\nartist = \"Tests\"\npreview_seconds = 4\npreview_start = 1\n",
    )
    .expect("album.toml");
    for n in 1..=tracks {
        make_fixture(
            &dir.join(format!("{n:02}.flac")),
            44_100,
            2,
            seconds,
            &["-c:a", "flac"],
        );
    }
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", text(&out));
    ws
}

/// A real `encore serve` process on an ephemeral port (killed when dropped).
pub struct ServeProcess {
    pub child: tokio::process::Child,
    pub url: String,
}

impl ServeProcess {
    /// Starts `encore serve --listen 127.0.0.1:0 --log-json ARGS` and waits until `/readyz`
    /// answers; its stderr lines are appended to `log`.
    pub async fn start(
        ws: &Workspace,
        args: &[&str],
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> ServeProcess {
        let mut all = vec!["--listen", "127.0.0.1:0", "--log-json"];
        all.extend_from_slice(args);
        Self::ready(ws.serve_command(&all), log).await
    }

    /// Spawns `cmd` as [`ServeProcess::spawn`] does and waits until `/readyz` answers 200;
    /// a server that never does fails the test with its log.
    pub async fn ready(
        cmd: tokio::process::Command,
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> ServeProcess {
        let (child, url) = Self::spawn(cmd, log.clone()).await;
        let c = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = c.get(format!("{url}/readyz")).send().await
                && r.status().is_success()
            {
                return ServeProcess { child, url };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "server at {url} never became ready: {:?}",
            log.lock().expect("log")
        );
    }

    /// Spawns `cmd` (an `encore serve` listening on an ephemeral port) and returns the child
    /// and the URL it says it listens on, without waiting for `/readyz`; its stderr lines
    /// are appended to `log`.
    pub async fn spawn(
        mut cmd: tokio::process::Command,
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> (tokio::process::Child, String) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start encore serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("encore listening on ")
                    && let Some(tx) = tx.take()
                {
                    let rest = &line[at + "encore listening on ".len()..];
                    let url: String = rest.chars().take_while(|c| *c != '"').collect();
                    let _ = tx.send(url);
                }
                log.lock().expect("log").push(line);
            }
        });
        let url = tokio::time::timeout(std::time::Duration::from_secs(60), rx)
            .await
            .expect("server did not say where it listens")
            .expect("server exited before listening");
        (child, url)
    }
}

/// A self-signed certificate for `localhost` made by openssl: (certificate, key) PEM files.
pub fn self_signed(ws: &Workspace) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = ws.path().join("cert.pem");
    let key = ws.path().join("key.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `encore::http::run` over TLS with `cert`/`key` on an ephemeral loopback port: its address,
/// the sender that stops it, and its task.
pub async fn serve_tls(
    app: std::sync::Arc<encore::http::App>,
    cert: &Path,
    key: &Path,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let acceptor = encore::http::tls::acceptor(cert, key).expect("tls config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(encore::http::run(
        listener,
        app,
        Some(acceptor),
        async move {
            let _ = rx.await;
        },
    ));
    (addr, tx, server)
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p))
        } else {
            out.push(p)
        }
    }
    out
}
