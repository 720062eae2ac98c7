//! A lean HTTP/1.1 load generator for `benches/load.sh`: closed loop (as fast as the
//! connections go) or open loop at a fixed rate with every latency measured from the moment
//! the schedule said the request was due (no coordinated omission).
//!
//! Why not oha or wrk: on a 2-vCPU machine the generator shares the host with the server, so
//! its own CPU per request and its clock are part of every latency it reports. oha ticks a
//! 1 ms tokio timer (bursts of ~8 requests at 8 000 req/s) and, like any client that reads
//! bodies into memory, spends most of ~90 µs per 313 KB response copying it out of the kernel;
//! wrk has no open-loop mode. This driver keeps its schedule on a thread of its own with
//! sub-millisecond sleeps, parses each response head with `httparse` and then discards the body
//! in the kernel (`recv` with `MSG_TRUNC`, which TCP implements as "consume, do not copy"),
//! counting its bytes against `Content-Length`: the body has arrived when the last byte is
//! consumed, and the generator costs a fraction of the server it measures. Every socket can get
//! a fixed receive buffer (`--rcvbuf`), as a CDN edge pulling from an origin would tune it.
//!
//! ```text
//! cargo bench --bench loadgen -- --urls FILE [--header 'Name: value']... [--connections 64]
//!     [--duration 10] [--warmup 1] [--rate REQ_PER_S] [--rcvbuf BYTES] [--json OUT]
//!     [--dump OUT] [--versus FILE [--slice S]]
//! ```
//!
//! `--urls`: one absolute `http://host:port/path` URL per line, all on one host; each request
//! takes one of them at random. `--duration`: seconds measured after `--warmup` seconds that are
//! run but not counted (connections opening, TCP windows growing). Without `--rate` every
//! connection sends its next request as soon as the previous response is read (closed loop).
//! Every response must be a 200 whose body length matches its `Content-Length`; anything else
//! (status, socket error) is counted and makes the exit code 1. `--dump` writes one line per
//! measured request: due time (µs since the start of measurement), latency (µs), connection;
//! the report's `measure_from_monotonic_s` is that start on CLOCK_MONOTONIC, the clock of
//! `perf record -k CLOCK_MONOTONIC`, to lay a trace beside the dump.
//!
//! `--versus FILE`: a second target, driven by the same run in alternating `--slice` s slices
//! (A B B A, ...), each target with its own `--connections`; machine interference that comes
//! and goes over seconds then lands on both alike. Closed loop the report compares req/s; with
//! `--rate`, each target is offered the rate during its own slices and the report compares the
//! tails (`versus_report`).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;

/// A response head larger than this is refused (ours are ~400 bytes).
const HEAD_LIMIT: usize = 8 * 1024;
/// The latency bound of the delivery goal (p99 ≤ 2 ms): requests over it are counted apart.
const SLOW_US: u64 = 2_000;
/// The longest one request may take before the run counts it as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    urls: Vec<String>,
    headers: Vec<(String, String)>,
    connections: usize,
    duration: f64,
    warmup: f64,
    rate: Option<f64>,
    rcvbuf: u32,
    json: Option<String>,
    dump: Option<String>,
    versus: Vec<String>,
    slice: f64,
}

fn usage(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    eprintln!(
        "usage: loadgen --urls FILE [--header 'Name: value']... [--connections N] [--duration S] \
         [--warmup S] [--rate R] [--rcvbuf BYTES] [--json OUT] [--dump OUT] \
         [--versus FILE [--slice S]]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        urls: Vec::new(),
        headers: Vec::new(),
        connections: 64,
        duration: 10.0,
        warmup: 1.0,
        rate: None,
        rcvbuf: 0,
        json: None,
        dump: None,
        versus: Vec::new(),
        slice: 0.5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every bench target.
        if flag == "--bench" {
            continue;
        }
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--urls" => args.urls = read_urls(&value()),
            "--versus" => args.versus = read_urls(&value()),
            "--slice" => args.slice = number(value()),
            "--header" => {
                let h = value();
                let (name, val) = h
                    .split_once(':')
                    .unwrap_or_else(|| usage(&format!("not a header: {h}")));
                args.headers
                    .push((name.trim().to_owned(), val.trim().to_owned()));
            }
            "--connections" => args.connections = number(value()) as usize,
            "--duration" => args.duration = number(value()),
            "--warmup" => args.warmup = number(value()),
            "--rate" => args.rate = Some(number(value())),
            "--rcvbuf" => args.rcvbuf = number(value()) as u32,
            "--json" => args.json = Some(value()),
            "--dump" => args.dump = Some(value()),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if args.urls.is_empty() {
        usage("--urls names no URL");
    }
    if args.connections == 0 || args.duration <= 0.0 || args.rate.is_some_and(|r| r <= 0.0) {
        usage("--connections, --duration and --rate must be positive");
    }
    if !args.versus.is_empty() && args.dump.is_some() {
        usage("--versus reports both targets side by side: no --dump");
    }
    if args.slice < 0.01 {
        usage("--slice must be at least 0.01 s");
    }
    args
}

/// The non-empty lines of a URL file.
fn read_urls(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| usage(&format!("cannot read {path}: {e}")));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What one connection measured.
#[derive(Default)]
struct ConnStats {
    /// (due time since the start of measurement, latency), both µs, measured requests only.
    samples: Vec<(u64, u64)>,
    bytes: u64,
    /// The first few failures, for the report; `failures` counts them all.
    errors: Vec<String>,
    failures: u64,
}

/// The open-loop schedule: due times queued by the clock thread, one queue per target, taken
/// by that target's idle connections.
struct Schedule {
    queues: Vec<std::sync::Mutex<VecDeque<Instant>>>,
    ready: Vec<Notify>,
    done: AtomicBool,
}

impl Schedule {
    fn new(targets: usize) -> Self {
        Schedule {
            queues: (0..targets).map(|_| Default::default()).collect(),
            ready: (0..targets).map(|_| Notify::new()).collect(),
            done: AtomicBool::new(false),
        }
    }

    async fn next(&self, target: usize) -> Option<Instant> {
        loop {
            let notified = self.ready[target].notified();
            if let Some(due) = self.queues[target].lock().ok()?.pop_front() {
                return Some(due);
            }
            if self.done.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }
}

/// Sleeps on its own thread to the next due time and queues every request that is due: an OS
/// sleep wakes within tens of µs, where tokio's timer rounds to whole milliseconds.
/// With `--versus`, a request goes to the target whose slice it falls due in, so each target is
/// offered `rate` during its own slices.
fn run_clock(
    schedule: Arc<Schedule>,
    slices: Option<Slices>,
    start: Instant,
    end: Instant,
    rate: f64,
) -> Duration {
    let mut late = Vec::new();
    let mut k: u64 = 0;
    loop {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= end {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        late.push(now - due);
        let target = slices.map_or(0, |s| Slices::owner(s.index(due)));
        if let Ok(mut q) = schedule.queues[target].lock() {
            q.push_back(due);
        }
        schedule.ready[target].notify_one();
        k += 1;
    }
    schedule.done.store(true, Ordering::Release);
    for ready in &schedule.ready {
        ready.notify_waiters();
    }
    late.sort_unstable();
    late.get(late.len() * 99 / 100).copied().unwrap_or_default()
}

struct Target {
    addr: String,
    /// One ready-to-send request per URL.
    requests: Vec<Vec<u8>>,
}

fn parse_target(urls: &[String], headers: &[(String, String)]) -> Target {
    let mut addr: Option<String> = None;
    let mut requests = Vec::new();
    for url in urls {
        let Some(rest) = url.strip_prefix("http://") else {
            usage(&format!("only http:// URLs: {url}"))
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            usage(&format!("no host in {url}"));
        }
        if addr.get_or_insert_with(|| authority.to_owned()) != authority {
            usage("all URLs must name the same host:port");
        }
        let path = if path.is_empty() { "/" } else { path };
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
        for (name, value) in headers {
            let _ = write!(req, "{name}: {value}\r\n");
        }
        req.push_str("\r\n");
        requests.push(req.into_bytes());
    }
    let addr = addr.unwrap_or_else(|| usage("no URL"));
    Target { addr, requests }
}

/// xorshift64*: enough to spread requests over the URL list, no dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

async fn connect(target: &Target, rcvbuf: u32) -> Result<TcpStream, String> {
    let addr = tokio::net::lookup_host(&target.addr)
        .await
        .map_err(|e| format!("resolve {}: {e}", target.addr))?
        .next()
        .ok_or_else(|| format!("{} resolves to nothing", target.addr))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if rcvbuf > 0 {
        // Before connect, so the window scale offered in the SYN covers it.
        socket
            .set_recv_buffer_size(rcvbuf)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(stream)
}

/// Consumes up to `len` bytes of the socket's receive queue without copying them.
fn discard(stream: &TcpStream, len: usize) -> io::Result<usize> {
    stream.try_io(Interest::READABLE, || {
        // SAFETY: a null buffer is never written: TCP's recvmsg with MSG_TRUNC advances the
        // queue without copying (tcp(7)), and returns how many bytes it consumed.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

/// One request on a kept-alive connection: a 200 whose body is exactly `Content-Length`
/// bytes, or a reason. Returns the body length.
async fn fetch(stream: &mut TcpStream, request: &[u8], head: &mut [u8]) -> Result<u64, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut filled = 0;
    let (head_len, status, length) = loop {
        if filled == head.len() {
            return Err(format!("response head over {} bytes", head.len()));
        }
        let n = stream
            .read(&mut head[filled..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response head".to_owned());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&head[..filled]) {
            Ok(httparse::Status::Complete(len)) => {
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                break (len, resp.code.unwrap_or(0), length);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("bad response head: {e}")),
        }
    };
    let Some(length) = length else {
        return Err(format!("HTTP {status} without Content-Length"));
    };
    let early = (filled - head_len) as u64;
    if early > length {
        return Err(format!("{early} bytes after a body of {length}"));
    }
    let mut remaining = length - early;
    while remaining > 0 {
        stream.readable().await.map_err(|e| format!("read: {e}"))?;
        match discard(stream, remaining.min(1 << 30) as usize) {
            Ok(0) => {
                return Err(format!(
                    "connection closed {remaining} bytes short of the body"
                ));
            }
            Ok(n) => remaining -= n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    Ok(length)
}

struct Run {
    targets: Vec<Target>,
    schedule: Option<Arc<Schedule>>,
    slices: Option<Slices>,
    measure_from: Instant,
    end: Instant,
    rcvbuf: u32,
}

/// `--versus`: time cut into slices, each driving one of two targets in the order A B B A.
#[derive(Clone, Copy)]
struct Slices {
    start: Instant,
    len: Duration,
}

impl Slices {
    /// Slices per block: A B B A.
    const BLOCK: u64 = 4;

    fn index(&self, at: Instant) -> u64 {
        ((at - self.start).as_nanos() / self.len.as_nanos()) as u64
    }

    /// Which target slice `i` drives.
    fn owner(i: u64) -> usize {
        usize::from(matches!(i % Self::BLOCK, 1 | 2))
    }

    fn start_of(&self, i: u64) -> Instant {
        self.start + self.len * i as u32
    }

    /// The start of the first slice from `i` on that drives `target`.
    fn next_for(&self, i: u64, target: usize) -> Instant {
        let j = (i..).find(|&j| Self::owner(j) == target).unwrap_or(i);
        self.start_of(j)
    }
}

async fn run_connection(
    run: Arc<Run>,
    id: usize,
    target: usize,
    dump: bool,
) -> (ConnStats, Vec<u32>) {
    let mut stats = ConnStats::default();
    let mut conn_ids = Vec::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((id as u64 + 1) << 17);
    let mut head = vec![0u8; HEAD_LIMIT];
    let requests = &run.targets[target].requests;
    let mut stream = match connect(&run.targets[target], run.rcvbuf).await {
        Ok(s) => s,
        Err(e) => {
            stats.failures += 1;
            stats.errors.push(e);
            return (stats, conn_ids);
        }
    };
    loop {
        let due = match &run.schedule {
            Some(s) => match s.next(target).await {
                Some(due) => due,
                None => break,
            },
            None => {
                let now = Instant::now();
                if now >= run.end {
                    break;
                }
                if let Some(slices) = &run.slices {
                    let i = slices.index(now);
                    if Slices::owner(i) != target {
                        let next = slices.next_for(i, target);
                        if next >= run.end {
                            break;
                        }
                        tokio::time::sleep_until(next.into()).await;
                        continue;
                    }
                }
                now
            }
        };
        let pick = next_random(&mut rng) % requests.len() as u64;
        let request = &requests[pick as usize];
        let result = tokio::time::timeout(REQUEST_TIMEOUT, fetch(&mut stream, request, &mut head))
            .await
            .unwrap_or_else(|_| Err(format!("no response in {REQUEST_TIMEOUT:?}")));
        let done = Instant::now();
        match result {
            Ok(n) if due >= run.measure_from => {
                stats.bytes += n;
                let at = (due - run.measure_from).as_micros() as u64;
                stats.samples.push((at, (done - due).as_micros() as u64));
                if dump {
                    conn_ids.push(id as u32);
                }
            }
            Ok(_) => {}
            Err(e) => {
                stats.failures += 1;
                if stats.errors.len() < 3 {
                    stats.errors.push(e);
                }
                // A failed connection is replaced, so one error does not silence the rest
                // of the run for this slot.
                match connect(&run.targets[target], run.rcvbuf).await {
                    Ok(s) => stream = s,
                    Err(e) => {
                        stats.errors.push(e);
                        return (stats, conn_ids);
                    }
                }
            }
        }
    }
    (stats, conn_ids)
}

/// `at` on CLOCK_MONOTONIC, in seconds: what `perf record -k CLOCK_MONOTONIC` and other tracers
/// stamp events with, so a dump's times can be laid beside theirs.
fn monotonic_seconds(at: Instant) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now = Instant::now();
    let mono_now = ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
    if at >= now {
        mono_now + (at - now).as_secs_f64()
    } else {
        mono_now - (now - at).as_secs_f64()
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64) * p) as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let args = parse_args();
    let mut targets = vec![parse_target(&args.urls, &args.headers)];
    if !args.versus.is_empty() {
        targets.push(parse_target(&args.versus, &args.headers));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: tokio runtime: {e}");
            std::process::exit(1)
        }
    };
    // Connections open during the warm-up, which is not measured.
    let start = Instant::now() + Duration::from_millis(20);
    let (slices, measure_from, end) = if targets.len() == 2 {
        // Whole blocks only, for the warm-up as for the measurement, so each target gets the
        // same time in both and measurement starts with an A slice.
        let len = Duration::from_secs_f64(args.slice);
        let blocks = |secs: f64| (secs / (args.slice * Slices::BLOCK as f64)).ceil() as u32;
        let block = len * Slices::BLOCK as u32;
        let measure_from = start + block * blocks(args.warmup);
        let end = measure_from + block * blocks(args.duration).max(1);
        (Some(Slices { start, len }), measure_from, end)
    } else {
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        (
            None,
            measure_from,
            measure_from + Duration::from_secs_f64(args.duration),
        )
    };
    let schedule = args.rate.map(|_| Arc::new(Schedule::new(targets.len())));
    let clock = match (args.rate, &schedule) {
        (Some(rate), Some(s)) => {
            let s = Arc::clone(s);
            Some(std::thread::spawn(move || {
                run_clock(s, slices, start, end, rate)
            }))
        }
        _ => None,
    };
    let run = Arc::new(Run {
        targets,
        schedule,
        slices,
        measure_from,
        end,
        rcvbuf: args.rcvbuf,
    });
    let dump = args.dump.is_some();
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for target in 0..run.targets.len() {
            for c in 0..args.connections {
                let id = target * args.connections + c;
                let task = run_connection(Arc::clone(&run), id, target, dump);
                tasks.push((target, tokio::spawn(task)));
            }
        }
        let mut out = Vec::new();
        for (target, t) in tasks {
            match t.await {
                Ok((stats, ids)) => out.push((target, stats, ids)),
                Err(e) => {
                    let stats = ConnStats {
                        failures: 1,
                        errors: vec![format!("connection task: {e}")],
                        ..ConnStats::default()
                    };
                    out.push((target, stats, Vec::new()));
                }
            }
        }
        out
    });
    let finished = Instant::now();
    let late_p99 = clock
        .and_then(|c| c.join().ok())
        .map(|d| d.as_secs_f64() * 1000.0);

    let mut failures = 0u64;
    let mut errors = Vec::new();
    for (_, stats, _) in &results {
        failures += stats.failures;
        errors.extend(stats.errors.iter().take(5 - errors.len().min(5)).cloned());
    }
    if let Some(slices) = &run.slices {
        let blocks = ((end - measure_from).as_nanos()
            / (slices.len * Slices::BLOCK as u32).as_nanos()) as usize;
        let report = versus_report(&results, slices.len, blocks, args.rate, failures, &errors);
        finish(&args, &report.to_string(), "", failures, &errors);
        return;
    }

    let mut latencies = Vec::new();
    let mut bytes = 0u64;
    let mut dump_lines = String::new();
    for (_, stats, conn_ids) in &results {
        bytes += stats.bytes;
        latencies.extend(stats.samples.iter().map(|s| s.1));
        if dump {
            for ((at, lat), id) in stats.samples.iter().zip(conn_ids) {
                let _ = writeln!(dump_lines, "{at} {lat} {id}");
            }
        }
    }
    latencies.sort_unstable();
    // Open loop: the offered window; closed loop: from the start of measurement to the last
    // response (requests in flight at the end finish after `end`).
    let seconds = match args.rate {
        Some(_) => args.duration,
        None => (finished.max(end) - measure_from).as_secs_f64(),
    };
    let n = latencies.len() as f64;
    let report = serde_json::json!({
        "requests": latencies.len(),
        "seconds": seconds,
        "req_per_s": n / seconds,
        "mb_per_s": bytes as f64 / seconds / 1e6,
        "p50_ms": percentile(&latencies, 0.50),
        "p90_ms": percentile(&latencies, 0.90),
        "p99_ms": percentile(&latencies, 0.99),
        "p999_ms": percentile(&latencies, 0.999),
        "max_ms": latencies.last().map_or(0.0, |&m| m as f64 / 1000.0),
        "over_2ms": latencies.iter().filter(|&&l| l > SLOW_US).count(),
        "failures": failures,
        "errors": errors,
        "rate": args.rate,
        "clock_late_p99_ms": late_p99,
        "connections": args.connections,
        "rcvbuf": args.rcvbuf,
        "measure_from_monotonic_s": monotonic_seconds(measure_from),
    });
    finish(&args, &report.to_string(), &dump_lines, failures, &errors);
}

/// Writes the report (and the dump), and exits non-zero if any request failed.
fn finish(args: &Args, report: &str, dump_lines: &str, failures: u64, errors: &[String]) {
    match &args.json {
        Some(path) => {
            if let Err(e) = std::fs::write(path, report) {
                eprintln!("loadgen: cannot write {path}: {e}");
                std::process::exit(1)
            }
        }
        None => println!("{report}"),
    }
    if let Some(path) = &args.dump
        && let Err(e) = std::fs::write(path, dump_lines)
    {
        eprintln!("loadgen: cannot write {path}: {e}");
        std::process::exit(1)
    }
    if failures > 0 {
        eprintln!(
            "loadgen: {failures} failed request(s): {}",
            errors.join("; ")
        );
        std::process::exit(1)
    }
}

/// Latency histogram buckets for the block bootstrap: 10 µs up to 20 ms (the range a p99 goal
/// is judged in), 1 ms up to 200 ms, then one overflow bucket.
const FINE_US: u64 = 10;
const FINE_UNTIL_US: u64 = 20_000;
const COARSE_US: u64 = 1_000;
const COARSE_UNTIL_US: u64 = 200_000;
const BUCKETS: usize =
    (FINE_UNTIL_US / FINE_US + (COARSE_UNTIL_US - FINE_UNTIL_US) / COARSE_US) as usize + 1;

fn bucket(latency_us: u64) -> usize {
    let i = if latency_us < FINE_UNTIL_US {
        latency_us / FINE_US
    } else if latency_us < COARSE_UNTIL_US {
        FINE_UNTIL_US / FINE_US + (latency_us - FINE_UNTIL_US) / COARSE_US
    } else {
        BUCKETS as u64 - 1
    };
    i as usize
}

/// The upper edge of bucket `i`, in ms: a percentile read from the histogram is at most this.
fn bucket_ms(i: usize) -> f64 {
    let fine = (FINE_UNTIL_US / FINE_US) as usize;
    let us = if i < fine {
        (i as u64 + 1) * FINE_US
    } else {
        FINE_UNTIL_US + (i - fine + 1) as u64 * COARSE_US
    };
    us as f64 / 1000.0
}

/// The `p` quantile of a histogram, as `percentile` takes it of a sorted list.
fn histogram_percentile(counts: &[u64], p: f64) -> f64 {
    let n: u64 = counts.iter().sum();
    let rank = ((n as f64) * p) as u64;
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        seen += c;
        if seen > rank {
            return bucket_ms(i);
        }
    }
    0.0
}

/// A 95 % interval of resampled values.
fn interval(mut values: Vec<f64>) -> [f64; 2] {
    values.sort_by(f64::total_cmp);
    [
        values[values.len() * 25 / 1000],
        values[values.len() * 975 / 1000],
    ]
}

/// What one block (A B B A) gave one target.
#[derive(Clone)]
struct BlockTally {
    started: u64,
    over_2ms: u64,
    histogram: Vec<u64>,
}

/// `--versus`: each target's figures over its own slices, and B against A block by block.
/// Closed loop, the comparison is req/s (B/A); at a fixed rate both are offered the same load
/// and the comparison is the tail: each target's p99 and share of requests over 2 ms, with
/// 95 % intervals from resampling whole blocks, and the interval of the p99 difference (B - A),
/// paired block by block so that interference landing on a block counts against both.
fn versus_report(
    results: &[(usize, ConnStats, Vec<u32>)],
    slice: Duration,
    blocks: usize,
    rate: Option<f64>,
    failures: u64,
    errors: &[String],
) -> serde_json::Value {
    let block_us = slice.as_micros() as u64 * Slices::BLOCK;
    let empty = BlockTally {
        started: 0,
        over_2ms: 0,
        histogram: vec![0; BUCKETS],
    };
    // A request belongs to the block it started in, so the tail a slice leaves in flight is
    // counted for it, the same for both targets.
    let mut tallies = [vec![empty.clone(); blocks], vec![empty; blocks]];
    let mut latencies = [Vec::new(), Vec::new()];
    let mut bytes = [0u64; 2];
    for (target, stats, _) in results {
        bytes[*target] += stats.bytes;
        for &(at, latency) in &stats.samples {
            if let Some(t) = tallies[*target].get_mut((at / block_us) as usize) {
                t.started += 1;
                t.over_2ms += u64::from(latency > SLOW_US);
                t.histogram[bucket(latency)] += 1;
            }
            latencies[*target].push(latency);
        }
    }
    let ratio = |a: u64, b: u64| if a == 0 { 0.0 } else { b as f64 / a as f64 };
    // Sums over a pick of blocks, per target: requests, requests over 2 ms, histogram.
    let pooled = |picks: &[usize], t: usize| {
        let mut sum = (0u64, 0u64, vec![0u64; BUCKETS]);
        for &b in picks {
            let tally = &tallies[t][b];
            sum.0 += tally.started;
            sum.1 += tally.over_2ms;
            for (s, c) in sum.2.iter_mut().zip(&tally.histogram) {
                *s += c;
            }
        }
        sum
    };
    // Bootstrap over blocks: the interval each figure would move in over runs like this one.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut resampled: [Vec<f64>; 6] = Default::default();
    for _ in 0..1000 {
        let picks: Vec<usize> = (0..blocks)
            .map(|_| (next_random(&mut rng) % blocks as u64) as usize)
            .collect();
        let (a, b) = (pooled(&picks, 0), pooled(&picks, 1));
        let (p99_a, p99_b) = (
            histogram_percentile(&a.2, 0.99),
            histogram_percentile(&b.2, 0.99),
        );
        for (v, x) in resampled.iter_mut().zip([
            ratio(a.0, b.0),
            p99_a,
            p99_b,
            p99_b - p99_a,
            ratio(a.0, a.1) * 100.0,
            ratio(b.0, b.1) * 100.0,
        ]) {
            v.push(x);
        }
    }
    let [
        ratio_ci,
        p99_a_ci,
        p99_b_ci,
        p99_diff_ci,
        over_a_ci,
        over_b_ci,
    ] = resampled.map(interval);
    // Each target was driven for half of the measured time.
    let seconds = (blocks as u64 * block_us / 2) as f64 / 1e6;
    for l in &mut latencies {
        l.sort_unstable();
    }
    let all: Vec<usize> = (0..blocks).collect();
    let totals = [pooled(&all, 0), pooled(&all, 1)];
    let side = |t: usize, p99_ci: [f64; 2], over_ci: [f64; 2]| {
        let (requests, over_2ms, _) = &totals[t];
        serde_json::json!({
            "requests": requests,
            "seconds": seconds,
            "req_per_s": *requests as f64 / seconds,
            "mb_per_s": bytes[t] as f64 / seconds / 1e6,
            "p50_ms": percentile(&latencies[t], 0.50),
            "p99_ms": percentile(&latencies[t], 0.99),
            "p99_ms_ci95": p99_ci,
            "p999_ms": percentile(&latencies[t], 0.999),
            "max_ms": latencies[t].last().map_or(0.0, |&m| m as f64 / 1000.0),
            "over_2ms_pct": ratio(*requests, *over_2ms) * 100.0,
            "over_2ms_pct_ci95": over_ci,
        })
    };
    let per_block: Vec<(u64, u64)> = (0..blocks)
        .map(|b| (tallies[0][b].started, tallies[1][b].started))
        .collect();
    serde_json::json!({
        "slice_s": slice.as_secs_f64(),
        "blocks": blocks,
        "rate": rate,
        "a": side(0, p99_a_ci, over_a_ci),
        "b": side(1, p99_b_ci, over_b_ci),
        "ratio_b_over_a": ratio(totals[0].0, totals[1].0),
        "ratio_ci95": ratio_ci,
        "blocks_b_ahead": per_block.iter().filter(|(a, b)| b > a).count(),
        "block_ratios": per_block.iter().map(|&(a, b)| ratio(a, b)).collect::<Vec<_>>(),
        // Where the slow requests were: a stall shows as a run of blocks, on one side or both.
        "block_over_2ms": (0..blocks)
            .map(|b| [tallies[0][b].over_2ms, tallies[1][b].over_2ms])
            .collect::<Vec<_>>(),
        "p99_diff_b_minus_a_ms_ci95": p99_diff_ci,
        "failures": failures,
        "errors": errors,
    })
}
