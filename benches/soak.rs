//! The soak driver for `benches/soak.sh`: every kind of client encore has, at once, for a long
//! time, against one running `encore serve`, while the server's resources are sampled.
//!
//! ```text
//! cargo bench --bench soak -- --server URL --pid PID --tokens FILE --urls FILE
//!     [--duration 1800] [--rate 0] [--peak-seconds 10] [--rotate-every 300]
//!     [--sighup-every 300] [--sample-every 10] [--csv OUT] [--json OUT]
//! ```
//!
//! Clients (each request's answer is checked; anything unexpected is a failure):
//! - players with keep-alive (HTTP/1.1 pool), players that open a connection per request
//!   (`Connection: close`) and HTTP/2 players (h2c, prior knowledge) fetch segments (`--urls`:
//!   `URL BYTES` per line, from the manifests) with a play token and check status and length;
//!   every 20th player request is a license instead of a segment;
//! - the players' play tokens come from play-token exchanges (account tokens) every 30 s;
//! - the store buys albums for churn users (never the players' users) and refunds a third of
//!   them;
//! - an admin rotates the signing key every `--rotate-every` s, and the driver sends SIGHUP
//!   (key reload) to `--pid` every `--sighup-every` s, offset by half a period.
//!
//! Without `--rate`, the players first run closed loop for `--peak-seconds` (as fast as they
//! go) and the soak then offers half of that rate. Every `--sample-every` s a CSV row records
//! the server's RSS, open file descriptors and threads (from /proc), pinned segment bytes (from
//! `/metrics`) and the requests so far. The JSON summary holds the totals, the failures and the
//! flatness check (mean RSS and fds of the last 10 minutes within 10 % of minutes 5-10); the
//! exit code is 1 when a request failed, a 5xx was seen or a resource was not flat.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

struct Args {
    server: String,
    pid: i32,
    tokens: String,
    urls: String,
    duration: f64,
    rate: f64,
    peak_seconds: f64,
    rotate_every: f64,
    sighup_every: f64,
    sample_every: f64,
    csv: Option<String>,
    json: Option<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!("soak: {msg}");
    eprintln!(
        "usage: soak --server URL --pid PID --tokens FILE --urls FILE [--duration S] [--rate R] \
         [--peak-seconds S] [--rotate-every S] [--sighup-every S] [--sample-every S] \
         [--csv OUT] [--json OUT]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        server: String::new(),
        pid: 0,
        tokens: String::new(),
        urls: String::new(),
        duration: 1800.0,
        rate: 0.0,
        peak_seconds: 10.0,
        rotate_every: 300.0,
        sighup_every: 300.0,
        sample_every: 10.0,
        csv: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue;
        }
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--server" => args.server = value.trim_end_matches('/').to_string(),
            "--pid" => args.pid = number(&value) as i32,
            "--tokens" => args.tokens = value,
            "--urls" => args.urls = value,
            "--duration" => args.duration = number(&value),
            "--rate" => args.rate = number(&value),
            "--peak-seconds" => args.peak_seconds = number(&value),
            "--rotate-every" => args.rotate_every = number(&value),
            "--sighup-every" => args.sighup_every = number(&value),
            "--sample-every" => args.sample_every = number(&value),
            "--csv" => args.csv = Some(value),
            "--json" => args.json = Some(value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    if args.server.is_empty() || args.pid <= 0 || args.tokens.is_empty() || args.urls.is_empty() {
        usage("--server, --pid, --tokens and --urls are required");
    }
    args
}

/// The tokens `soak.sh` minted: `store`, `admin`, and `account USER` lines (players' users).
struct Tokens {
    store: String,
    admin: String,
    accounts: Vec<(String, String)>,
}

fn read_tokens(path: &str) -> Tokens {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
    let mut tokens = Tokens {
        store: String::new(),
        admin: String::new(),
        accounts: Vec::new(),
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["store", t] => tokens.store = t.to_string(),
            ["admin", t] => tokens.admin = t.to_string(),
            ["account", user, t] => tokens.accounts.push((user.to_string(), t.to_string())),
            [] => {}
            _ => usage(&format!("{path}: bad line {line:?}")),
        }
    }
    if tokens.store.is_empty() || tokens.admin.is_empty() || tokens.accounts.is_empty() {
        usage(&format!("{path}: needs store, admin and account lines"));
    }
    tokens
}

/// One segment: its URL, its length, and the album and track it belongs to (for licenses).
struct Segment {
    url: String,
    bytes: u64,
    album: String,
    track: u32,
}

fn read_urls(path: &str) -> Vec<Segment> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
    let segments: Vec<Segment> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut f = line.split_whitespace();
            let (Some(url), Some(bytes)) = (f.next(), f.next()) else {
                usage(&format!("{path}: bad line {line:?}"))
            };
            // /v1/albums/{album}/tracks/{n}/...
            let parts: Vec<&str> = url.split('/').collect();
            let at = parts.iter().position(|p| *p == "albums").unwrap_or(0);
            Segment {
                url: url.to_string(),
                bytes: bytes.parse().unwrap_or(0),
                album: parts.get(at + 1).unwrap_or(&"").to_string(),
                track: parts.get(at + 3).and_then(|n| n.parse().ok()).unwrap_or(1),
            }
        })
        .collect();
    if segments.is_empty() {
        usage(&format!("{path}: no URLs"));
    }
    segments
}

/// What every client counts, by kind of request.
#[derive(Default)]
struct Counters {
    by_kind: Mutex<BTreeMap<&'static str, (u64, u64)>>,
    ok: AtomicU64,
    failed: AtomicU64,
    server_errors: AtomicU64,
    first_failures: Mutex<Vec<String>>,
}

impl Counters {
    fn record(&self, kind: &'static str, result: Result<(), Failure>) {
        let mut by_kind = self.by_kind.lock().unwrap_or_else(|e| e.into_inner());
        let entry = by_kind.entry(kind).or_default();
        match result {
            Ok(()) => {
                entry.0 += 1;
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(failure) => {
                entry.1 += 1;
                self.failed.fetch_add(1, Ordering::Relaxed);
                if failure.server_error {
                    self.server_errors.fetch_add(1, Ordering::Relaxed);
                }
                let mut first = self
                    .first_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if first.len() < 50 {
                    eprintln!("soak: {kind}: {}", failure.what);
                    first.push(format!("{kind}: {}", failure.what));
                }
            }
        }
    }
}

struct Failure {
    what: String,
    server_error: bool,
}

fn failure(what: String) -> Failure {
    Failure {
        what,
        server_error: false,
    }
}

async fn expect(
    response: reqwest::Result<reqwest::Response>,
    want: &[StatusCode],
) -> Result<(reqwest::Response, StatusCode), Failure> {
    let response = response.map_err(|e| failure(format!("transport: {e:?}")))?;
    let status = response.status();
    if want.contains(&status) {
        return Ok((response, status));
    }
    let server_error = status.is_server_error();
    let body = response.text().await.unwrap_or_default();
    Err(Failure {
        what: format!(
            "status {status}: {}",
            body.chars().take(300).collect::<String>()
        ),
        server_error,
    })
}

/// Reads a body chunk by chunk (never whole into memory) and checks its length.
async fn drain(mut response: reqwest::Response, want: u64) -> Result<(), Failure> {
    let mut got = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failure(format!("body: {e:?}")))?
    {
        got += chunk.len() as u64;
    }
    if got != want {
        return Err(failure(format!(
            "body of {got} bytes, manifest says {want}"
        )));
    }
    Ok(())
}

struct Shared {
    server: String,
    segments: Vec<Segment>,
    tokens: Tokens,
    /// The players' current play tokens, one per account, refreshed by exchanges.
    play_tokens: RwLock<Vec<String>>,
    counters: Counters,
    stop: AtomicBool,
}

fn pick(n: usize) -> usize {
    // A cheap, good-enough spread: the low bits of a hashed counter.
    static NEXT: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let x = NEXT.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % n as u64) as usize
}

/// One player request: a segment, or every 20th time a license for the segment's track.
async fn play_once(shared: &Shared, client: &Client, close: bool, n: u64) -> Result<(), Failure> {
    let segment = &shared.segments[pick(shared.segments.len())];
    let token = {
        let tokens = shared.play_tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens[pick(tokens.len())].clone()
    };
    if n % 20 == 19 {
        let mut request = client
            .post(format!("{}/v1/licenses", shared.server))
            .bearer_auth(&token)
            .json(&serde_json::json!({"album": segment.album, "track": segment.track}));
        if close {
            request = request.header("connection", "close");
        }
        let (response, _) = expect(request.send().await, &[StatusCode::OK]).await?;
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| failure(format!("license body: {e:?}")))?;
        if body["keys"].as_array().is_none_or(|k| k.is_empty()) {
            return Err(failure(format!("license without keys: {body}")));
        }
        return Ok(());
    }
    let mut request = client
        .get(format!("{}{}", shared.server, segment.url))
        .bearer_auth(&token);
    if close {
        request = request.header("connection", "close");
    }
    let (response, _) = expect(request.send().await, &[StatusCode::OK]).await?;
    drain(response, segment.bytes).await
}

/// Players of one kind: `tasks` of them share `rate` requests/s (0: closed loop).
async fn players(
    shared: Arc<Shared>,
    kind: &'static str,
    client: Client,
    close: bool,
    tasks: usize,
    rate: f64,
    until: Instant,
) {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let shared = shared.clone();
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let period = (rate > 0.0).then(|| Duration::from_secs_f64(tasks as f64 / rate));
            let mut next = tokio::time::Instant::now();
            let mut n = pick(20) as u64;
            while Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
                if let Some(period) = period {
                    next += period;
                    tokio::time::sleep_until(next).await;
                }
                let result = play_once(&shared, &client, close, n).await;
                shared.counters.record(kind, result);
                n += 1;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

/// Exchanges every player's account token for a fresh play token.
async fn exchange_all(shared: &Shared, client: &Client) {
    for (i, (_user, account)) in shared.tokens.accounts.iter().enumerate() {
        let result = async {
            let request = client
                .post(format!("{}/v1/play-tokens", shared.server))
                .bearer_auth(account);
            let (response, _) = expect(request.send().await, &[StatusCode::CREATED]).await?;
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|e| failure(format!("play-token body: {e:?}")))?;
            let token = body["token"]
                .as_str()
                .ok_or_else(|| failure(format!("no token in {body}")))?;
            let mut tokens = shared
                .play_tokens
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if tokens.len() <= i {
                tokens.push(token.to_string());
            } else {
                tokens[i] = token.to_string();
            }
            Ok(())
        }
        .await;
        shared.counters.record("play-token", result);
    }
}

/// The store: a purchase every `1/rate` s for churn users, and a refund of every third one.
async fn store(shared: Arc<Shared>, client: Client, rate: f64, until: Instant) {
    let album = shared.segments[0].album.clone();
    let run = std::process::id();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut n = 0u64;
    while Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        n += 1;
        let order = format!("soak-{run}-{n}");
        let body = serde_json::json!({
            "order_id": order, "user": format!("churn-{}", n % 5000), "album": album,
            "price": 1500, "currency": "CNY",
        });
        let result = async {
            let request = client
                .post(format!("{}/v1/purchases", shared.server))
                .bearer_auth(&shared.tokens.store)
                .json(&body);
            let (response, _) = expect(request.send().await, &[StatusCode::CREATED]).await?;
            response
                .bytes()
                .await
                .map_err(|e| failure(format!("receipt: {e:?}")))?;
            Ok(())
        }
        .await;
        shared.counters.record("purchase", result);
        if n.is_multiple_of(3) {
            let result = async {
                let request = client
                    .post(format!("{}/v1/purchases/{order}/refund", shared.server))
                    .bearer_auth(&shared.tokens.store);
                let (response, _) = expect(request.send().await, &[StatusCode::OK]).await?;
                response
                    .bytes()
                    .await
                    .map_err(|e| failure(format!("refund: {e:?}")))?;
                Ok(())
            }
            .await;
            shared.counters.record("refund", result);
        }
        if n.is_multiple_of(50) {
            let result = async {
                let request = client.get(format!("{}/v1/charts/albums", shared.server));
                let (response, _) = expect(request.send().await, &[StatusCode::OK]).await?;
                response
                    .bytes()
                    .await
                    .map_err(|e| failure(format!("chart: {e:?}")))?;
                Ok(())
            }
            .await;
            shared.counters.record("chart", result);
        }
    }
}

/// Resource figures of the server process.
#[derive(Clone, Copy, Default)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    pinned_bytes: u64,
}

fn sample_process(pid: i32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (field("VmRSS:"), fds, field("Threads:"))
}

async fn pinned_bytes(client: &Client, server: &str) -> u64 {
    let Ok(response) = client.get(format!("{server}/metrics")).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("encore_segment_pages_pinned_bytes"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

fn mean(samples: &[Sample], from: f64, to: f64, f: impl Fn(&Sample) -> u64) -> Option<f64> {
    let window: Vec<f64> = samples
        .iter()
        .filter(|s| s.t >= from && s.t < to)
        .map(|s| f(s) as f64)
        .collect();
    (!window.is_empty()).then(|| window.iter().sum::<f64>() / window.len() as f64)
}

fn http1(keep_alive: bool) -> Client {
    // Pooled connections are dropped after 5 s idle, before the server closes them at 10 s:
    // a request written as the server closes an idle connection is lost with it (RFC 9112
    // §9.3.1), and no client should be failed for the server's housekeeping.
    let mut builder = Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(CLIENT_IDLE)
        .pool_max_idle_per_host(if keep_alive { 64 } else { 0 });
    if !keep_alive {
        builder = builder.pool_idle_timeout(Duration::from_millis(1));
    }
    builder
        .build()
        .unwrap_or_else(|e| usage(&format!("client: {e}")))
}

/// How long the driver's clients keep an idle connection: under the server's 10 s.
const CLIENT_IDLE: Duration = Duration::from_secs(5);

fn http2() -> Client {
    Client::builder()
        .http2_prior_knowledge()
        .pool_idle_timeout(CLIENT_IDLE)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| usage(&format!("client: {e}")))
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let shared = Arc::new(Shared {
        server: args.server.clone(),
        segments: read_urls(&args.urls),
        tokens: read_tokens(&args.tokens),
        play_tokens: RwLock::new(Vec::new()),
        counters: Counters::default(),
        stop: AtomicBool::new(false),
    });
    let keep_alive = http1(true);
    let close = http1(false);
    let h2 = http2();
    let control = http1(true);
    exchange_all(&shared, &control).await;
    if shared.counters.failed.load(Ordering::Relaxed) > 0 {
        eprintln!("soak: the first play-token exchange failed");
        std::process::exit(1);
    }

    // The players' mix: 16 keep-alive players, 4 that reconnect each time, 8 over HTTP/2.
    let mix: [(&'static str, &Client, bool, usize, f64); 3] = [
        ("segment-keepalive", &keep_alive, false, 16, 0.70),
        ("segment-close", &close, true, 4, 0.10),
        ("segment-h2", &h2, false, 8, 0.20),
    ];
    let mut rate = args.rate;
    if rate <= 0.0 {
        let until = Instant::now() + Duration::from_secs_f64(args.peak_seconds);
        let before = shared.counters.ok.load(Ordering::Relaxed);
        let started = Instant::now();
        let runs: Vec<_> = mix
            .iter()
            .map(|(kind, client, close, tasks, _)| {
                tokio::spawn(players(
                    shared.clone(),
                    kind,
                    (*client).clone(),
                    *close,
                    *tasks,
                    0.0,
                    until,
                ))
            })
            .collect();
        for run in runs {
            let _ = run.await;
        }
        let peak = (shared.counters.ok.load(Ordering::Relaxed) - before) as f64
            / started.elapsed().as_secs_f64();
        rate = peak / 2.0;
        eprintln!("soak: peak {peak:.0} req/s closed loop; soaking at {rate:.0} req/s");
        if shared.counters.failed.load(Ordering::Relaxed) > 0 {
            eprintln!("soak: failures during the peak run");
            std::process::exit(1);
        }
    }
    let peak_ok = shared.counters.ok.load(Ordering::Relaxed);

    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.duration);
    let mut jobs = Vec::new();
    for (kind, client, close, tasks, share) in mix {
        jobs.push(tokio::spawn(players(
            shared.clone(),
            kind,
            client.clone(),
            close,
            tasks,
            rate * share,
            until,
        )));
    }
    jobs.push(tokio::spawn(store(
        shared.clone(),
        control.clone(),
        20.0,
        until,
    )));
    {
        let shared = shared.clone();
        let client = control.clone();
        jobs.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(30));
            ticker.tick().await;
            while Instant::now() < until {
                ticker.tick().await;
                exchange_all(&shared, &client).await;
            }
        }));
    }
    {
        let shared = shared.clone();
        let client = control.clone();
        let every = args.rotate_every;
        jobs.push(tokio::spawn(async move {
            let mut k = 1.0;
            while start.elapsed().as_secs_f64() + 0.0 < args.duration {
                tokio::time::sleep_until((start + Duration::from_secs_f64(k * every)).into()).await;
                if Instant::now() >= until {
                    break;
                }
                let result = async {
                    let request = client
                        .post(format!("{}/v1/admin/keys/signing/rotate", shared.server))
                        .bearer_auth(&shared.tokens.admin);
                    let (response, _) = expect(request.send().await, &[StatusCode::OK]).await?;
                    let body = response.text().await.unwrap_or_default();
                    eprintln!(
                        "soak: {:.0} s: signing key rotated: {body}",
                        start.elapsed().as_secs_f64()
                    );
                    Ok(())
                }
                .await;
                shared.counters.record("admin-rotate", result);
                k += 1.0;
            }
        }));
    }
    {
        let pid = args.pid;
        let every = args.sighup_every;
        jobs.push(tokio::spawn(async move {
            let mut k = 0.5;
            loop {
                let at = start + Duration::from_secs_f64(k * every);
                if at >= until {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                // SAFETY: kill(2) with a pid and a signal number has no memory effects.
                let sent = unsafe { libc::kill(pid, libc::SIGHUP) } == 0;
                eprintln!(
                    "soak: {:.0} s: SIGHUP sent: {sent}",
                    start.elapsed().as_secs_f64()
                );
                k += 1.0;
            }
        }));
    }

    let mut samples: Vec<Sample> = Vec::new();
    let mut csv = String::from("t_s,rss_kib,fds,threads,pinned_bytes,ok,failed,server_errors\n");
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(args.sample_every));
    loop {
        ticker.tick().await;
        let t = start.elapsed().as_secs_f64();
        let (rss_kib, fds, threads) = sample_process(args.pid);
        if rss_kib == 0 {
            eprintln!("soak: the server (pid {}) is gone", args.pid);
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let sample = Sample {
            t,
            rss_kib,
            fds,
            threads,
            pinned_bytes: pinned_bytes(&control, &args.server).await,
        };
        samples.push(sample);
        let c = &shared.counters;
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{},{},{},{}",
            t,
            rss_kib,
            fds,
            threads,
            sample.pinned_bytes,
            c.ok.load(Ordering::Relaxed) - peak_ok,
            c.failed.load(Ordering::Relaxed),
            c.server_errors.load(Ordering::Relaxed)
        );
        if let Some(path) = &args.csv {
            let _ = std::fs::write(path, &csv);
        }
        if Instant::now() >= until {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for job in jobs {
        let _ = job.await;
    }

    let c = &shared.counters;
    let minutes = args.duration / 60.0;
    // Flat: the last 10 minutes against minutes 5-10 (scaled down for a shorter trial run).
    let (early, late) = if minutes >= 20.0 {
        ((300.0, 600.0), (args.duration - 600.0, args.duration + 1.0))
    } else {
        let d = args.duration;
        ((d / 6.0, d / 3.0), (d * 2.0 / 3.0, d + 1.0))
    };
    let flat = |f: &dyn Fn(&Sample) -> u64| -> (Option<f64>, Option<f64>, bool) {
        let a = mean(&samples, early.0, early.1, f);
        let b = mean(&samples, late.0, late.1, f);
        let ok = matches!((a, b), (Some(a), Some(b)) if b <= a * 1.10 && b >= a * 0.90);
        (a, b, ok)
    };
    let (rss_a, rss_b, rss_flat) = flat(&|s| s.rss_kib);
    let (fd_a, fd_b, fd_flat) = flat(&|s| s.fds);
    let by_kind: BTreeMap<&str, serde_json::Value> = c
        .by_kind
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, (ok, failed))| (*k, serde_json::json!({"ok": ok, "failed": failed})))
        .collect();
    let failed = c.failed.load(Ordering::Relaxed);
    let server_errors = c.server_errors.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "duration_s": args.duration,
        "rate_offered": rate,
        "requests_ok": c.ok.load(Ordering::Relaxed) - peak_ok,
        "failed": failed,
        "server_errors": server_errors,
        "by_kind": by_kind,
        "first_failures": *c.first_failures.lock().unwrap_or_else(|e| e.into_inner()),
        "rss_kib": {"early_window_s": early, "early_mean": rss_a, "late_window_s": late, "late_mean": rss_b, "flat": rss_flat},
        "fds": {"early_mean": fd_a, "late_mean": fd_b, "flat": fd_flat},
        "threads_last": samples.last().map(|s| s.threads),
        "pinned_bytes_last": samples.last().map(|s| s.pinned_bytes),
    });
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    println!("{text}");
    if let Some(path) = &args.json {
        let _ = std::fs::write(path, &text);
    }
    let pass = failed == 0 && server_errors == 0 && rss_flat && fd_flat;
    eprintln!("soak: {}", if pass { "PASS" } else { "FAIL" });
    std::process::exit(if pass { 0 } else { 1 });
}
