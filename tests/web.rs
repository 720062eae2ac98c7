//! The web player in a real browser: Debian's headless Chromium, driven through chromedriver by
//! fantoccini, against an in-process server. It opens `/`, plays a preview, buys the album in
//! the demo store, plays the album across a track boundary (gapless: one buffered range, no
//! stall), seeks, switches quality, saves a screenshot (`<target dir>/web-artifacts/player.png`),
//! then checks the messages for an expired session and for a server that went away. A fan's
//! pages: the grid of covers, a launch countdown, extras locked until a purchase and then shown,
//! the nameplate badge and the chart's covers, a launch from album.toml's `on_sale_at` opening
//! while the page is open, three copies, a gift its recipient sees and declines, a fan club in
//! the club chart, at 1280x800 and at a phone's 390x844 (screenshots
//! beside the first). Also, without a browser: the static
//! files' headers, and the demo store's endpoints existing only with the dev account key.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::util::{self, TestServer};

const ALBUM: &str = "web-test";
/// Each fixture track's length; the album.toml `packaged_album` writes has preview_seconds 4.
const TRACK_SECONDS: f64 = 12.0;
const PREVIEW_SECONDS: f64 = 4.0;

/// chromedriver on an ephemeral port, killed when dropped.
struct Driver {
    url: String,
    _child: tokio::process::Child,
}

/// A free loopback port: bind port 0, read it, release it (chromedriver takes a port number,
/// not a socket; the window in which another process could take it is tiny).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn start_chromedriver() -> Driver {
    let port = free_port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}): install Debian's chromium and chromium-driver \
                 (`apt-get install -y chromium chromium-driver`; .ci/run does it)"
            )
        });
    let url = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = c.get(format!("{url}/status")).send().await
            && r.status().is_success()
        {
            return Driver { url, _child: child };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {url} within 10 s");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                "--window-size=1280,900",
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

/// A session that lays pages out as a 390x844 phone (Chromium's mobile emulation).
async fn phone_browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"],
            "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1.0}},
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

/// Where the screenshot goes: the cargo target dir (CARGO_TARGET_DIR when set).
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("web-artifacts")
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// The player's state and the `<audio>` element's, as one JSON value (for checks and for
/// failure messages).
async fn snapshot(c: &Client) -> Value {
    js(
        c,
        "const a = document.getElementById('audio'); const s = window.encore || {};
         return {
           currentTime: a.currentTime, duration: a.duration, paused: a.paused,
           error: a.error ? {code: a.error.code, message: a.error.message} : null,
           mode: s.mode, track: s.track, levels: s.levels, level: s.level,
           errorText: s.error, errorKind: s.errorKind, mediaErrors: s.mediaErrors,
           buffered: Array.from({length: a.buffered.length}, (_, i) => [a.buffered.start(i), a.buffered.end(i)]),
           warnings: s.warnings, message: document.getElementById('message').textContent,
           nameplate: document.getElementById('nameplate').textContent,
           canFlac: MediaSource.isTypeSupported('audio/mp4; codecs=\"flac\"'),
           canOpus: MediaSource.isTypeSupported('audio/mp4; codecs=\"opus\"'),
         };",
    )
    .await
}

/// Polls `check` on the snapshot every 100 ms until it holds, or fails after `secs` with the
/// last snapshot and a screenshot beside the artifacts.
async fn wait_for(c: &Client, what: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let s = snapshot(c).await;
        if check(&s) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            save_screenshot(c, "failure.png").await;
            panic!("timed out waiting for {what}; player state: {s:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn save_screenshot(c: &Client, name: &str) -> PathBuf {
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let path = dir.join(name);
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(&path, png).expect("write screenshot");
    path
}

/// Clicks `css` as a person would: scrolled to the middle of the window first, so the fixed
/// player bar at the bottom never covers it.
async fn click(c: &Client, css: &str) {
    let e = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"));
    c.execute(
        "arguments[0].scrollIntoView({block: 'center'}); return null;",
        vec![serde_json::to_value(&e).expect("element as a script argument")],
    )
    .await
    .unwrap_or_else(|e| panic!("cannot scroll to {css}: {e}"));
    e.click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// Settings whose sales chart shows a purchase at once (no refresh interval), so the page's
/// chart reload after buying finds it whatever the timing.
fn fresh_charts() -> encore::config::RawConfig {
    let mut raw = encore::config::RawConfig::default();
    raw.ledger.chart_refresh_ms = Some(0);
    raw
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn clean(s: &Value) -> bool {
    s["error"].is_null() && s["mediaErrors"].as_array().is_some_and(|a| a.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_player_preview_buy_play_seek_switch() {
    let ws = util::packaged_album(ALBUM, 2, TRACK_SECONDS);
    let mut server = TestServer::start_configured(&ws, Default::default(), fresh_charts()).await;
    let driver = start_chromedriver().await;
    let c = browser(&driver).await;

    c.goto(&format!("{}/", server.url)).await.expect("open /");
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .expect("the page starts");
    click(&c, &format!(".album-link[data-album={ALBUM}]")).await;
    c.wait()
        .for_element(Locator::Css(".preview[data-track='1']"))
        .await
        .expect("the album page");

    // A preview, before buying: the demo store signs the fan in; only `preview` is offered.
    click(&c, ".preview[data-track='1']").await;
    let s = wait_for(&c, "the preview to play", 30, |s| {
        s["mode"] == "preview" && f(s, "currentTime") > 1.0 && s["paused"] == false
    })
    .await;
    assert!(clean(&s), "{s:#}");
    assert_eq!(s["levels"], json!(["preview"]), "{s:#}");
    assert!(
        f(&s, "duration") <= PREVIEW_SECONDS + 0.5,
        "a preview is a clip: {s:#}"
    );
    let full_play = c
        .find(Locator::Css(".play[data-track='1']"))
        .await
        .expect("play button");
    assert!(
        !full_play.is_enabled().await.expect("enabled?"),
        "full play is off before buying"
    );

    // Buy in the demo store: the nameplate and the chart update.
    click(&c, "#buy").await;
    let s = wait_for(&c, "the buyer nameplate", 20, |s| {
        s["nameplate"]
            .as_str()
            .is_some_and(|n| n.contains("No. 1 buyer"))
    })
    .await;
    assert!(s["errorText"].is_null(), "{s:#}");
    // The chart reloads after the nameplate: wait for its row.
    let row = c
        .wait()
        .for_element(Locator::Css(&format!("#chart tr[data-album={ALBUM}]")))
        .await
        .expect("the album in the sales chart");
    let chart = row.text().await.expect("chart row");
    assert!(chart.ends_with('1'), "one unit sold: {chart}");

    // Full playback of the album, past the preview length.
    click(&c, ".play[data-track='1']").await;
    let s = wait_for(&c, "full playback past the preview length", 40, |s| {
        s["mode"] == "full" && f(s, "currentTime") > PREVIEW_SECONDS + 1.0
    })
    .await;
    assert!(clean(&s), "{s:#}");
    let s = wait_for(&c, "playback across the first track boundary", 40, |s| {
        f(s, "currentTime") > TRACK_SECONDS + 1.0
    })
    .await;
    // Gapless: the media timeline runs across the boundary as one buffered range (a gap or an
    // overlap between the tracks would split it or make hls.js report a stall), and the page
    // follows into track 2.
    assert!(clean(&s), "{s:#}");
    let ranges = s["buffered"].as_array().expect("buffered ranges");
    let spans_boundary = ranges.iter().any(|r| {
        r[0].as_f64().is_some_and(|a| a <= TRACK_SECONDS - 1.0)
            && r[1].as_f64().is_some_and(|b| b >= TRACK_SECONDS + 1.0)
    });
    assert!(
        spans_boundary,
        "one buffered range across the track boundary: {s:#}"
    );
    assert!(
        !s["warnings"].as_array().is_some_and(|w| w.iter().any(|d| d
            .as_str()
            .is_some_and(|d| d.contains("Stall") || d.contains("Hole")))),
        "no stall at the track boundary: {s:#}"
    );
    assert_eq!(s["track"], 2, "{s:#}");
    assert!(
        f(&s, "duration") > 2.0 * TRACK_SECONDS - 1.0,
        "the album timeline holds both tracks: {s:#}"
    );
    let levels: Vec<String> = s["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    assert!(levels.len() >= 2, "a buyer gets several qualities: {s:#}");
    assert!(!levels.contains(&"preview".to_owned()), "{s:#}");

    // Seek with the seek control into track 2; playback goes on from there.
    let target = TRACK_SECONDS + 2.0;
    js(
        &c,
        &format!(
            "const k = document.getElementById('seek'); k.value = '{target}';
             k.dispatchEvent(new Event('change')); return null;"
        ),
    )
    .await;
    let s = wait_for(&c, "playback after the seek", 30, |s| {
        f(s, "currentTime") > target + 1.0 && s["paused"] == false
    })
    .await;
    assert!(clean(&s), "{s:#}");
    assert_eq!(s["track"], 2, "{s:#}");

    // Switch quality through the selector: another rendition, and playback goes on.
    let now = s["level"].as_i64().unwrap_or(-1);
    let other = (0..levels.len() as i64)
        .find(|&i| i != now)
        .expect("another level");
    let before = f(&s, "currentTime");
    js(
        &c,
        &format!(
            "const q = document.getElementById('quality'); q.value = '{other}';
             q.dispatchEvent(new Event('change')); return null;"
        ),
    )
    .await;
    let s = wait_for(&c, "playback after the quality switch", 30, |s| {
        s["level"] == other && f(s, "currentTime") > before + 1.5 && s["paused"] == false
    })
    .await;
    assert!(clean(&s), "{s:#}");
    let shot = save_screenshot(&c, "player.png").await;
    eprintln!(
        "screenshot: {}; playing {} after the switch; flac {} opus {}",
        shot.display(),
        levels[other as usize],
        s["canFlac"],
        s["canOpus"]
    );

    // An expired session: the play token is refused and cannot be renewed: a clear message.
    js(
        &c,
        "window.encore.play.token = 'expired'; window.encore.session.token = 'expired';
         return null;",
    )
    .await;
    click(&c, ".play[data-track='1']").await;
    let s = wait_for(&c, "the expired-session message", 20, |s| {
        s["errorKind"] == "expired"
    })
    .await;
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("session has expired")),
        "{s:#}"
    );

    // The server goes away: the page says the network failed, not something about tokens.
    server.begin_shutdown();
    let probe = reqwest::Client::new();
    for _ in 0..100 {
        if probe.get(format!("{}/", server.url)).send().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&c, ".play[data-track='1']").await;
    let s = wait_for(&c, "the network-error message", 20, |s| {
        s["errorKind"] == "network"
    })
    .await;
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Network error")),
        "{s:#}"
    );

    c.close().await.expect("close the browser");
}

/// How long after the fixtures are written the album with extras goes on sale: enough for the
/// ingest, the server and the browser to start and the page to show its countdown (the test
/// fails, saying so, if they took longer), short enough for the CI budget.
const LAUNCH_AFTER_SECS: u64 = 45;

/// Two albums for the fan's pages: one with a cover and buyer-only extras (a real PNG photo
/// card, so the browser must decode it, and a PDF letter) whose launch opens
/// `LAUNCH_AFTER_SECS` from now, one that a launch holds back for two days. Returns the
/// workspace and the first album's `on_sale_at` (unix seconds).
fn fan_albums() -> (util::Workspace, u64) {
    let ws = util::Workspace::new();
    let dir = ws.album_dir(EXTRAS_ALBUM);
    std::fs::create_dir_all(dir.join("extras")).expect("extras dir");
    for (out, size) in [("extras/card.png", "64x96"), ("cover.jpg", "300x300")] {
        let path = dir.join(out);
        util::ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s={size}"),
            "-frames:v",
            "1",
            path.to_str().expect("utf-8"),
        ]);
    }
    std::fs::write(
        dir.join("extras/letter.pdf"),
        b"%PDF-1.4\n% thanks\n%%EOF\n",
    )
    .expect("pdf");
    util::make_fixture(&dir.join("01.flac"), 44_100, 2, 3.0, &["-c:a", "flac"]);
    let soon = ws.album_dir(SOON_ALBUM);
    util::make_fixture(&soon.join("01.flac"), 44_100, 2, 3.0, &["-c:a", "flac"]);
    // The launch times last, so that the fixtures' encoding does not eat into the margin.
    let now = util::now();
    let rfc3339 = |t: u64| encore::ledger::time::format_rfc3339(i64::try_from(t).expect("time"));
    std::fs::write(
        soon.join("album.toml"),
        format!(
            "title = \"Next Winter\"\nartist = \"Tests\"\non_sale_at = \"{}\"\n",
            rfc3339(now + 2 * 86_400 + 3 * 3600)
        ),
    )
    .expect("album.toml");
    let opens = now + LAUNCH_AFTER_SECS;
    std::fs::write(
        dir.join("album.toml"),
        format!(
            "title = \"Morning Letters\"\nartist = \"The Lantern Choir\"\nprice = 800\n\
             currency = \"EUR\"\npreview_seconds = 2\non_sale_at = \"{}\"\n\n\
             [[extras]]\nfile = \"extras/card.png\"\ntitle = \"Photo card\"\n\n\
             [[extras]]\nfile = \"extras/letter.pdf\"\ntitle = \"A letter\"\n",
            rfc3339(opens)
        ),
    )
    .expect("album.toml");
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    (ws, opens)
}

const EXTRAS_ALBUM: &str = "morning-letters";
const SOON_ALBUM: &str = "next-winter";

/// What a fan sees of the page, as one JSON value.
async fn page(c: &Client) -> Value {
    js(
        c,
        "const q = (s) => Array.from(document.querySelectorAll(s));
         const grid = getComputedStyle(document.getElementById('albums')).gridTemplateColumns;
         return {
           cards: q('#albums .card').map((b) => ({album: b.dataset.album, cover: !!b.querySelector('img'),
             ribbon: (b.querySelector('.ribbon') || {}).textContent || null})),
           gridColumns: grid.split(' ').length,
           album: document.getElementById('album').hidden ? null : ((window.encore || {}).album || {}).id || null,
           countdown: document.getElementById('countdown').hidden ? null : document.getElementById('countdown').textContent,
           buyFormShown: !document.getElementById('buy-form').hidden,
           extras: q('#extras-list li').map((li) => ({id: li.dataset.extra, locked: li.classList.contains('locked')})),
           gallery: q('#extras-gallery img').map((i) => ({src: i.src.slice(0, 22), width: i.naturalWidth})),
           badges: q('#badges .badge').map((b) => b.textContent),
           nameplate: document.getElementById('nameplate').textContent,
           chart: q('#chart tbody tr').map((tr) => ({album: tr.dataset.album, cover: !!tr.querySelector('td.thumb img'),
             move: (tr.querySelector('.move') || {}).textContent || null})),
           clubsShown: !document.getElementById('clubs-box').hidden,
           clubs: q('#club-chart tbody tr').map((tr) => Array.from(tr.cells).slice(0, 4).map((td) => td.textContent)),
           gifts: q('#gifts li').map((li) => ({album: li.dataset.album, text: li.textContent,
             decline: !!li.querySelector('button.decline')})),
           message: document.getElementById('message').textContent,
           scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
           error: (window.encore || {}).error,
         };",
    )
    .await
}

async fn wait_page(c: &Client, what: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let p = page(c).await;
        if check(&p) {
            return p;
        }
        if tokio::time::Instant::now() > deadline {
            save_screenshot(c, "failure-fan.png").await;
            panic!("timed out waiting for {what}; page: {p:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sizes the window so that the page's viewport is `w` x `h` (the window's own frame, if any,
/// added), as a screenshot at a device's size needs.
async fn viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.expect("window size");
    let d = js(
        c,
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
    )
    .await;
    let frame = |i: usize| u32::try_from(d[i].as_u64().unwrap_or(0)).unwrap_or(0);
    if frame(0) > 0 || frame(1) > 0 {
        c.set_window_size(w + frame(0), h + frame(1))
            .await
            .expect("window size");
    }
}

/// A screenshot of the viewport, its path and size printed.
async fn shoot(c: &Client, name: &str) {
    let path = save_screenshot(c, name).await;
    let size = js(c, "return `${window.innerWidth}x${window.innerHeight}`;").await;
    eprintln!("screenshot ({size}): {}", path.display());
}

async fn scroll_to(c: &Client, css: &str) {
    js(
        c,
        &format!(
            "document.querySelector('{css}').scrollIntoView({{block: 'start'}}); return null;"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_player_launch_copies_gift_club_extras_at_desktop_and_phone_width() {
    let (ws, opens) = fan_albums();
    let server = TestServer::start_configured(&ws, Default::default(), fresh_charts()).await;
    let driver = start_chromedriver().await;
    let c = browser(&driver).await;
    c.goto(&format!("{}/", server.url)).await.expect("open /");
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .expect("the page starts");
    viewport(&c, 1280, 800).await;

    // The launch ahead, from the album.toml's `on_sale_at` as the server answers it: the album
    // page counts down instead of offering the buy form; the extras are listed, locked.
    assert!(
        util::now() + 3 < opens,
        "the ingest, the server and the browser took longer than {LAUNCH_AFTER_SECS} s to start: \
         the countdown before the launch cannot be seen (raise LAUNCH_AFTER_SECS on this machine)"
    );
    click(&c, &format!(".album-link[data-album={EXTRAS_ALBUM}]")).await;
    let p = wait_page(&c, "the countdown before the launch", 20, |p| {
        p["album"] == EXTRAS_ALBUM
            && p["countdown"].is_string()
            && p["extras"].as_array().is_some_and(|e| e.len() == 2)
    })
    .await;
    assert!(
        p["countdown"]
            .as_str()
            .is_some_and(|t| t.starts_with("On sale in 00:00:")),
        "{p:#}"
    );
    assert_eq!(
        p["buyFormShown"], false,
        "no buy form before the launch: {p:#}"
    );
    assert!(
        p["extras"]
            .as_array()
            .expect("extras")
            .iter()
            .all(|e| e["locked"] == true),
        "{p:#}"
    );
    assert_eq!(
        p["gallery"],
        json!([]),
        "no extra before the purchase: {p:#}"
    );

    // The catalog is a grid of covers; both launches are ahead.
    click(&c, "#home").await;
    let p = page(&c).await;
    let cards = p["cards"].as_array().expect("cards");
    assert_eq!(cards.len(), 2, "{p:#}");
    assert!(
        cards
            .iter()
            .all(|c| c["cover"] == true && c["ribbon"] == "coming soon"),
        "{p:#}"
    );
    assert!(p["gridColumns"].as_u64().unwrap_or(0) >= 3, "{p:#}");
    shoot(&c, "catalog-1280x800.png").await;

    // A launch two days and three hours ahead.
    click(&c, &format!(".album-link[data-album={SOON_ALBUM}]")).await;
    let p = wait_page(&c, "the launch countdown", 20, |p| {
        p["album"] == SOON_ALBUM && p["countdown"].is_string()
    })
    .await;
    let countdown = p["countdown"].as_str().unwrap_or_default();
    assert!(countdown.starts_with("On sale in 2d 0"), "{p:#}");
    assert_eq!(p["buyFormShown"], false, "{p:#}");
    shoot(&c, "countdown-1280x800.png").await;

    // While the first launch is ahead: sign in and start a club of its artist.
    click(&c, "#home").await;
    click(&c, &format!(".album-link[data-album={EXTRAS_ALBUM}]")).await;
    wait_page(&c, "the album page again", 20, |p| {
        p["album"] == EXTRAS_ALBUM
    })
    .await;
    click(&c, "#signin").await;
    wait_page(&c, "the club form for a signed-in fan", 20, |p| {
        p["clubsShown"] == true
            && p["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Signed in"))
    })
    .await;
    js(
        &c,
        "document.getElementById('club-name').value = 'Lantern Lights'; return null;",
    )
    .await;
    click(&c, "#club-create").await;
    wait_page(&c, "the new club in the club chart", 20, |p| {
        p["clubs"] == json!([["1", "Lantern Lights", "1", "0"]])
    })
    .await;

    // The launch opens: the buy form appears by itself (the page's clock, polled).
    let left = opens.saturating_sub(util::now());
    let p = wait_page(&c, "the buy form at the launch", left + 20, |p| {
        p["buyFormShown"] == true && p["countdown"].is_null()
    })
    .await;
    assert!(p["error"].is_null(), "{p:#}");

    // Three copies in the demo store: the nameplate says them and names the club, the club
    // chart counts them, the sales chart lists the album with its cover as a new entry, and
    // the photo card is decoded in the gallery.
    js(
        &c,
        "const q = document.getElementById('quantity'); q.value = '3';
         q.dispatchEvent(new Event('input')); return null;",
    )
    .await;
    click(&c, "#buy").await;
    let p = wait_page(
        &c,
        "the nameplate for three copies and the photo card",
        20,
        |p| {
            p["nameplate"]
                .as_str()
                .is_some_and(|n| n.contains("3 copies"))
                && p["gallery"].as_array().is_some_and(|g| g.len() == 1)
                && p["chart"].as_array().is_some_and(|r| !r.is_empty())
                && p["clubs"][0][3] == "3"
        },
    )
    .await;
    let nameplate = p["nameplate"].as_str().unwrap_or_default();
    assert!(
        nameplate.starts_with("No. 1 buyer of Morning Letters · 3 copies")
            && nameplate.contains("club Lantern Lights"),
        "{p:#}"
    );
    assert!(
        p["badges"][0]
            .as_str()
            .is_some_and(|n| n.contains("Morning Letters · 3 copies")),
        "{p:#}"
    );
    assert_eq!(p["gallery"][0]["width"], 64, "the image decodes: {p:#}");
    assert!(
        p["gallery"][0]["src"]
            .as_str()
            .is_some_and(|s| s.starts_with("data:image/png")),
        "{p:#}"
    );
    assert!(
        p["extras"]
            .as_array()
            .expect("extras")
            .iter()
            .all(|e| e["locked"] == false),
        "{p:#}"
    );
    assert_eq!(
        p["chart"][0],
        json!({"album": EXTRAS_ALBUM, "cover": true, "move": "new"}),
        "{p:#}"
    );
    assert!(p["error"].is_null(), "{p:#}");

    // A gift of two copies to another demo user, the giver's name shown to them: the club
    // counts the buyer's gifts too.
    js(
        &c,
        "const g = document.getElementById('gift-to'); g.value = 'fan:2@example';
         g.dispatchEvent(new Event('input'));
         document.getElementById('quantity').value = '2';
         document.getElementById('gift-visible').checked = true; return null;",
    )
    .await;
    click(&c, "#buy").await;
    let p = wait_page(&c, "the gift sent and counted for the club", 20, |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("to fan:2@example as a gift"))
            && p["clubs"][0][3] == "5"
    })
    .await;
    assert!(p["error"].is_null(), "{p:#}");
    js(&c, "window.scrollTo(0, 0); return null;").await;
    shoot(&c, "album-1280x800.png").await;
    scroll_to(&c, "#extras").await;
    shoot(&c, "extras-1280x800.png").await;
    scroll_to(&c, "#clubs-box").await;
    shoot(&c, "clubs-1280x800.png").await;
    c.close().await.expect("close the browser");

    // A phone: a session of its own with Chromium's mobile emulation at 390x844 (a desktop
    // window is not made narrower than 500 px), signed in as the gift's recipient: the gift
    // is theirs (nameplate, gallery) and declinable.
    let c = phone_browser(&driver).await;
    c.goto(&format!("{}/#/album/{EXTRAS_ALBUM}", server.url))
        .await
        .expect("open the album");
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .expect("the page starts");
    js(
        &c,
        "document.getElementById('user').value = 'fan:2@example'; return null;",
    )
    .await;
    click(&c, "#signin").await;
    let p = wait_page(&c, "the gift on the recipient's page", 20, |p| {
        p["gallery"].as_array().is_some_and(|g| g.len() == 1)
            && p["gifts"].as_array().is_some_and(|g| g.len() == 1)
    })
    .await;
    let nameplate = p["nameplate"].as_str().unwrap_or_default();
    assert!(
        nameplate.starts_with("No. 2 buyer of Morning Letters · 2 copies")
            && nameplate.contains("a gift from demo-fan"),
        "{p:#}"
    );
    assert_eq!(p["gifts"][0]["album"], EXTRAS_ALBUM, "{p:#}");
    assert!(
        p["gifts"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("from demo-fan"))
            && p["gifts"][0]["decline"] == true,
        "{p:#}"
    );
    assert_eq!(p["innerWidth"], 390, "{p:#}");
    assert!(
        p["scrollWidth"].as_u64() <= p["innerWidth"].as_u64(),
        "no sideways scroll: {p:#}"
    );
    js(&c, "window.scrollTo(0, 0); return null;").await;
    shoot(&c, "album-390x844.png").await;
    scroll_to(&c, "#extras").await;
    shoot(&c, "extras-390x844.png").await;
    scroll_to(&c, "#library").await;
    shoot(&c, "gifts-390x844.png").await;

    // Declined through the page: refunded, so the recipient owns nothing of it any more, and
    // the giver's club and the sales chart count the buyer's three copies only.
    click(&c, "#gifts button.decline").await;
    let p = wait_page(&c, "the gift declined", 20, |p| {
        p["gifts"][0]["decline"] == false
            && p["gifts"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("declined"))
            && p["clubs"][0][3] == "3"
    })
    .await;
    assert!(
        p["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Gift declined")),
        "{p:#}"
    );
    assert_eq!(p["nameplate"], "", "{p:#}");
    assert_eq!(p["gallery"], json!([]), "{p:#}");
    assert!(
        p["badges"].as_array().is_some_and(|b| b.is_empty()),
        "{p:#}"
    );
    click(&c, "#home").await;
    let p = wait_page(&c, "two covers a row on the phone", 20, |p| {
        p["gridColumns"] == 2
    })
    .await;
    assert!(
        p["scrollWidth"].as_u64() <= p["innerWidth"].as_u64(),
        "no sideways scroll: {p:#}"
    );
    js(&c, "window.scrollTo(0, 0); return null;").await;
    shoot(&c, "catalog-390x844.png").await;
    c.close().await.expect("close the phone browser");
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn web_files_and_dev_store() {
    let ws = util::packaged_album(ALBUM, 1, 3.0);
    let server = TestServer::start_configured(&ws, Default::default(), fresh_charts()).await;
    let c = reqwest::Client::new();

    let index = c
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("GET /");
    assert_eq!(index.status(), StatusCode::OK);
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        index.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    for (path, ty) in [
        ("/web/app.js", "text/javascript"),
        ("/web/style.css", "text/css"),
        ("/web/vendor/hls.min.js", "text/javascript"),
        ("/web/vendor/hls.js.LICENSE", "text/plain"),
    ] {
        let r = c
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("type")
                .starts_with(ty)
        );
        assert!(r.headers().contains_key("cache-control"), "{path}");
    }
    let r = c
        .get(format!("{}/web/../Cargo.toml", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The demo store: a session, a purchase at the catalog price, a play token naming it.
    let s: Value = post(
        &format!("{}/v1/dev/session", server.url),
        json!({"user": "fan-9"}),
    )
    .await
    .json()
    .await
    .expect("session");
    let account = s["token"].as_str().expect("token").to_owned();
    let r = post(
        &format!("{}/v1/dev/purchases", server.url),
        json!({"user": "fan-9", "album": ALBUM}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let receipt: Value = r.json().await.expect("receipt");
    assert_eq!(receipt["buyer_number"], 1);
    let again = post(
        &format!("{}/v1/dev/purchases", server.url),
        json!({"user": "fan-9", "album": ALBUM}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK, "buying twice replays");
    let r = post(
        &format!("{}/v1/dev/purchases", server.url),
        json!({"user": "fan-9", "album": "no-such-album"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post(
        &format!("{}/v1/dev/session", server.url),
        json!({"user": "bad user/"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let play: Value = c
        .post(format!("{}/v1/play-tokens", server.url))
        .bearer_auth(&account)
        .send()
        .await
        .expect("exchange")
        .json()
        .await
        .expect("play token");
    assert_eq!(play["albums"], json!([ALBUM]));
    let chart: Value = c
        .get(format!("{}/v1/charts/albums?window=all", server.url))
        .send()
        .await
        .expect("chart")
        .json()
        .await
        .expect("chart json");
    assert_eq!(chart["albums"][0]["album"], ALBUM);
    assert_eq!(chart["albums"][0]["units"], 1);

    // Without the development account key the demo store does not exist (production).
    std::fs::remove_file(
        encore::keys::account_keys::accounts_dir(&ws.keys())
            .join(encore::keys::account_keys::DEV_ACCOUNT_KEY),
    )
    .expect("remove the dev key");
    for (path, body) in [
        ("/v1/dev/session", json!({"user": "fan-9"})),
        (
            "/v1/dev/purchases",
            json!({"user": "fan-9", "album": ALBUM}),
        ),
    ] {
        let r = post(&format!("{}{path}", server.url), body).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = c
        .get(format!("{}/v1/dev", server.url))
        .send()
        .await
        .expect("dev");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

const LYRICS_ALBUM: &str = "web-lyrics";

/// The lyrics box and the levelling setting, as one JSON value.
async fn lyrics_state(c: &Client) -> Value {
    js(
        c,
        "const s = window.encore || {}; const a = document.getElementById('audio');
         const cur = document.querySelector('#lyrics li.current');
         return {
           mode: s.mode, currentTime: a.currentTime, paused: a.paused,
           shown: !document.getElementById('lyrics-box').hidden,
           lines: Array.from(document.querySelectorAll('#lyrics li')).map((li) => li.textContent),
           current: cur ? cur.textContent : null, lyricLine: s.lyricLine,
           gainMode: s.gainMode, gain: s.gain, select: document.getElementById('gain-mode').value,
           saved: localStorage.getItem('encore.gainMode'),
           album: s.album ? s.album.loudness : null,
           track: s.album ? s.album.tracks[0].loudness : null,
           error: s.error,
         };",
    )
    .await
}

async fn wait_lyrics(c: &Client, what: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let s = lyrics_state(c).await;
        if check(&s) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            save_screenshot(c, "failure-lyrics.png").await;
            panic!("timed out waiting for {what}; state: {s:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The gain the page must apply under `l` (a catalog loudness object): the ReplayGain gain,
/// capped by the true peak.
fn capped_gain(l: &Value) -> f64 {
    let g = 10f64.powf(f(l, "gain_db") / 20.0);
    g.min(1.0 / f(l, "true_peak"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_player_highlights_synced_lyrics_and_levels_loudness() {
    let ws = util::Workspace::new();
    let dir = ws.album_dir(LYRICS_ALBUM);
    std::fs::write(
        dir.join("album.toml"),
        "title = \"Paper Boats\"\nartist = \"Tests\"\npreview_seconds = 6\npreview_start = 1\n",
    )
    .expect("album.toml");
    util::make_fixture(&dir.join("01.flac"), 44_100, 2, 10.0, &["-c:a", "flac"]);
    let lrc: String = (0..10)
        .map(|i| format!("[00:{i:02}.00]Line {i} of the paper boats\n"))
        .collect();
    std::fs::write(dir.join("01.lrc"), lrc).expect("lrc");
    let out = ws.init_and_ingest();
    assert!(out.status.success(), "{}", util::text(&out));
    let server = TestServer::start(&ws).await;
    let driver = start_chromedriver().await;
    let c = browser(&driver).await;

    c.goto(&format!("{}/#/album/{LYRICS_ALBUM}", server.url))
        .await
        .expect("open the album");
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .expect("the page starts");
    // Levelling: album gain by default, capped by the album's true peak.
    let s = lyrics_state(&c).await;
    assert_eq!(s["gainMode"], "album", "{s:#}");
    assert!(
        (f(&s, "gain") - capped_gain(&s["album"])).abs() < 1e-9,
        "{s:#}"
    );
    assert!(
        f(&s, "gain") * f(&s["album"], "true_peak") <= 1.0 + 1e-9,
        "never clips: {s:#}"
    );

    // The preview plays 1 s to 7 s of the track: the line of each second lights up in turn.
    click(&c, ".preview[data-track='1']").await;
    let s = wait_lyrics(&c, "line 3 highlighted", 30, |s| {
        s["mode"] == "preview" && s["current"] == "Line 3 of the paper boats"
    })
    .await;
    assert!(
        s["shown"] == true && s["lines"].as_array().is_some_and(|l| l.len() == 10),
        "{s:#}"
    );
    assert!(s["error"].is_null(), "{s:#}");
    let t = f(&s, "currentTime") + 1.0;
    assert!(
        (3.0..4.6).contains(&t),
        "the highlighted line is the one sung now: {s:#}"
    );
    scroll_to(&c, "#lyrics-box").await;
    shoot(&c, "lyrics.png").await;
    wait_lyrics(&c, "line 5 highlighted", 30, |s| {
        s["current"] == "Line 5 of the paper boats"
    })
    .await;

    // Track gain chosen in the page: applied, remembered across a reload.
    js(
        &c,
        "const q = document.getElementById('gain-mode'); q.value = 'track';
         q.dispatchEvent(new Event('change')); return null;",
    )
    .await;
    let s = lyrics_state(&c).await;
    assert_eq!(s["saved"], "track", "{s:#}");
    assert!(
        (f(&s, "gain") - capped_gain(&s["track"])).abs() < 1e-9,
        "{s:#}"
    );
    c.refresh().await.expect("reload");
    c.wait()
        .for_element(Locator::Css("body[data-ready=true]"))
        .await
        .expect("the page starts again");
    let s = lyrics_state(&c).await;
    assert_eq!(s["select"], "track", "{s:#}");
    c.close().await.expect("close the browser");
}
