//! kefu's load generator: starts the real `kefu` binary on loopback with a fresh data directory,
//! then drives it and prints figures.
//!
//! Phases, all against the same server process in one run:
//! 1. `/healthz` with N keep-alive connections: the machine's ceiling for this server.
//! 2. Conversations: N sessions, each on its own connection, sending the turns of a real
//!    bilingual script one after the other (closed loop); every turn is a durable write.
//! 3. Optionally, `--live-sessions M`: M more sessions get one message each and stay active, and
//!    the server's resident memory is read.
//!
//! Besides rates and latencies, every phase reports the CPU time (user + system, all threads,
//! from `/proc`) that the server and the load generator spent per operation while measuring.
//! On a shared, noisy machine the rates swing with the neighbours' load, but CPU per operation
//! hardly does; and with both processes CPU-bound on the same cores, the throughput ratio of two
//! phases tends to the inverse ratio of their total CPU per operation, which is printed too.
//! The server's CPU is also broken down by kind of thread (tokio workers, sled's I/O pool, the
//! group-commit flusher), with each kind's context switches per second: how much goes to work
//! outside the turn's own code shows in every run, without a profiler.
//!
//! Bounded by design: loopback only, durations capped at 120 s, session counts at 1,000,000.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use kefu_tests::client::Conn;
use kefu_tests::process::KefuProcess;
use kefu_tests::prom::Histogram;
use kefu_tests::stats::percentile;
use kefu_tests::threads;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Drive a kefu server on loopback and print throughput, latency and memory")]
struct Args {
    /// Concurrent sessions (one connection each).
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Seconds to measure each phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Additional sessions to activate afterwards, one message each, to measure memory per live session.
    #[arg(long, default_value_t = 0)]
    live_sessions: usize,
    /// Skip the /healthz phase.
    #[arg(long)]
    no_healthz: bool,
    /// Offered load in turns per second across all sessions (open loop: each session sends on a
    /// fixed schedule and latency counts from the scheduled time, so a slow server cannot hide
    /// its queueing). 0 = closed loop: every session sends its next turn as soon as it has the
    /// answer, which measures the maximum throughput.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Worker threads of the load generator's own runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// A `kefu serve` configuration file for the server (to measure an operator's settings,
    /// such as `[store]` or a skill's `hosting` pool); listen address, data directory and
    /// flows stay the load generator's.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Also print the conversation phases second by second: turns sent and their p99 on the
    /// client, and from the server's `/metrics` (scraped every second) the p99 of the turn and
    /// of its queue, handle and append phases and of the store's flushes. Shows when a long
    /// tail starts and which phase grows first.
    #[arg(long)]
    timeline: bool,
}

/// The conversation each virtual user walks through (one turn per line), offset per user so
/// turns are mixed. A file of its own so the entity-extraction bench measures the same lines.
const SCRIPT_TEXT: &str = include_str!("../load_script.txt");

fn script() -> &'static [&'static str] {
    static SCRIPT: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| SCRIPT_TEXT.lines().filter(|l| !l.is_empty()).collect())
}

struct Phase {
    name: &'static str,
    ok: u64,
    errors: u64,
    secs: f64,
    lat_us: Vec<u32>,
    /// Open loop only: how late this process started each measured request it had slept
    /// for, after its scheduled time (its own timer and scheduling delay), sorted. Part of
    /// `lat_us` too.
    lag_us: Vec<u32>,
    /// CPU seconds (server, load generator) spent while measuring, when `/proc` could be read.
    cpu: Option<(f64, f64)>,
    /// The server's own latency histograms over the measurement window (from `/metrics`).
    server: Vec<(&'static str, Histogram)>,
    /// The server's CPU ticks and context switches per kind of thread over the window.
    threads: Vec<(String, threads::ThreadGroup)>,
    /// Clock ticks per second, to turn `threads` into seconds.
    ticks: f64,
}

/// The server-side series the load generator breaks a turn into: (label, metric, labels).
const SERVER_SERIES: &[(&str, &str, &str)] = &[
    ("turn", "kefu_turn_seconds", ""),
    ("queue", "kefu_turn_phase_seconds", r#"phase="queue""#),
    ("handle", "kefu_turn_phase_seconds", r#"phase="handle""#),
    ("append", "kefu_turn_phase_seconds", r#"phase="append""#),
    // A group commit writes and syncs the write-ahead log; now and then it is a checkpoint
    // instead (sled flushed, log emptied). `flush:sled` is the step of servers before the log.
    ("flush:write", "kefu_store_flush_seconds", r#"step="write""#),
    (
        "flush:fdatasync",
        "kefu_store_flush_seconds",
        r#"step="fdatasync""#,
    ),
    (
        "flush:checkpoint",
        "kefu_store_flush_seconds",
        r#"step="checkpoint""#,
    ),
    ("flush:sled", "kefu_store_flush_seconds", r#"step="sled""#),
    ("skill:kb", "kefu_skill_call_seconds", r#"skill="kb""#),
    (
        "skill:orders",
        "kefu_skill_call_seconds",
        r#"skill="orders""#,
    ),
];

/// `/metrics` of the server, or `None` (an old binary, or the scrape failed: figures only).
async fn scrape(addr: SocketAddr) -> Option<String> {
    let mut conn = Conn::connect(addr).await.ok()?;
    let resp = conn.get("/metrics").await.ok()?;
    resp.status
        .is_success()
        .then(|| String::from_utf8_lossy(&resp.body).into_owned())
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    /// CPU microseconds per operation: (server, load generator).
    fn cpu_us_per_op(&self) -> Option<(f64, f64)> {
        let (server, client) = self.cpu?;
        let ops = self.ok.max(1) as f64;
        Some((server * 1e6 / ops, client * 1e6 / ops))
    }

    fn print(&self) {
        println!(
            "{:<10} {:>10.0}/s  ok {:>9}  errors {:>6}  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms",
            self.name,
            self.rate(),
            self.ok,
            self.errors,
            percentile(&self.lat_us, 50.0) as f64 / 1000.0,
            percentile(&self.lat_us, 95.0) as f64 / 1000.0,
            percentile(&self.lat_us, 99.0) as f64 / 1000.0,
        );
        if let (Some((server, client)), Some((cpu_s, cpu_c))) = (self.cpu_us_per_op(), self.cpu) {
            println!(
                "{:<10} CPU per op: server {server:.1} us, loadgen {client:.1} us  (server {:.2} cores, loadgen {:.2} cores)",
                "",
                cpu_s / self.secs,
                cpu_c / self.secs,
            );
        }
        self.print_threads();
        if let Some(&max) = self.lag_us.last() {
            // The load generator shares the machine: when it is late to send, the latency above
            // grows by as much, although the server never saw the request. (Sends that were
            // overdue because the session's previous turn came back late are not counted.)
            println!(
                "{:<10} loadgen send lag: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
                "",
                percentile(&self.lag_us, 50.0) as f64 / 1000.0,
                percentile(&self.lag_us, 99.0) as f64 / 1000.0,
                percentile(&self.lag_us, 99.9) as f64 / 1000.0,
                f64::from(max) / 1000.0,
            );
        }
        // Quantiles from the server's buckets: only as fine as those (see kefu_tests::prom).
        // Series with no sample in the window (a skill the script never calls) say nothing.
        for (label, h) in self.server.iter().filter(|(_, h)| h.count() > 0.0) {
            let ms = |q: f64| h.quantile(q).map_or(f64::NAN, |v| v * 1000.0);
            println!(
                "{:<10} server {label:<16} n {:>9.0}  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms",
                "",
                h.count(),
                ms(0.5),
                ms(0.99),
                ms(0.999),
            );
        }
    }

    /// One line of the server's threads by kind: CPU per operation and wake-ups per second,
    /// for the kinds that used at least 1% of the server's CPU in the window.
    fn print_threads(&self) {
        let total: u64 = self.threads.iter().map(|(_, g)| g.ticks).sum();
        if total == 0 {
            return;
        }
        let ops = self.ok.max(1) as f64;
        let parts: Vec<String> = self
            .threads
            .iter()
            .filter(|(_, g)| g.ticks * 100 >= total)
            .map(|(name, g)| {
                let us = g.ticks as f64 / self.ticks * 1e6 / ops;
                let switches = g.switches as f64 / self.secs;
                format!(
                    "{name} x{} {us:.1} us ({switches:.0} switches/s)",
                    g.threads
                )
            })
            .collect();
        println!("{:<10} server threads: {}", "", parts.join(", "));
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU seconds of process `pid` (all its threads), `None` off Linux.
fn cpu_secs(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(threads::parse_stat_ticks(&stat)? as f64 / ticks)
}

/// CPU seconds of (the server, this process).
fn cpu_pair(server_pid: u32, ticks: f64) -> Option<(f64, f64)> {
    Some((
        cpu_secs(server_pid, ticks)?,
        cpu_secs(std::process::id(), ticks)?,
    ))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.duration > 0.0 && args.duration <= 120.0,
        "--duration must be in (0, 120]"
    );
    anyhow::ensure!(
        args.warmup >= 0.0 && args.warmup <= 60.0,
        "--warmup must be in [0, 60]"
    );
    anyhow::ensure!(
        args.sessions >= 1 && args.sessions <= 20_000,
        "--sessions must be in [1, 20000]"
    );
    anyhow::ensure!(
        args.live_sessions <= 1_000_000,
        "--live-sessions at most 1,000,000"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Plenty of fds for thousands of connections.
    let config_arg = args.config.as_ref().map(|p| p.display().to_string());
    let extra: Vec<&str> = match &config_arg {
        Some(path) => vec!["--config", path.as_str()],
        None => Vec::new(),
    };
    let server = KefuProcess::start(dir.path(), &extra)?;
    let addr = server.addr;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the load generator only talks to loopback"
    );
    println!(
        "kefu load test: {} sessions, {:.0} s per phase (+{:.0} s warm-up), server pid {} on {addr}",
        args.sessions,
        args.duration,
        args.warmup,
        server.child.id()
    );

    let server_pid = server.child.id();
    let mut healthz = None;
    if !args.no_healthz {
        let p = drive(
            addr,
            server_pid,
            args.sessions,
            args.warmup,
            args.duration,
            Target::Healthz,
            0.0,
            false,
        )
        .await?;
        p.print();
        healthz = Some(p);
    }
    let turns = drive(
        addr,
        server_pid,
        args.sessions,
        args.warmup,
        args.duration,
        Target::Turns,
        0.0,
        args.timeline,
    )
    .await?;
    turns.print();
    if let Some(healthz) = &healthz {
        println!(
            "turns/healthz: measured {:.1}%",
            100.0 * turns.rate() / healthz.rate()
        );
        if let (Some((hs, hc)), Some((ts, tc))) = (healthz.cpu_us_per_op(), turns.cpu_us_per_op()) {
            println!(
                "turns/healthz: CPU-bound {:.1}% (healthz {:.1} us of CPU per request, a turn {:.1} us, server + loadgen)",
                100.0 * (hs + hc) / (ts + tc),
                hs + hc,
                ts + tc
            );
        }
    }
    if args.rate > 0.0 {
        let paced = drive(
            addr,
            server_pid,
            args.sessions,
            args.warmup,
            args.duration,
            Target::Turns,
            args.rate,
            args.timeline,
        )
        .await?;
        println!(
            "offered {:.0} turns/s (open loop, latency from the scheduled send time):",
            args.rate
        );
        paced.print();
    }
    if let Some(kib) = server.peak_rss_kib() {
        println!("server peak RSS {:.1} MiB", kib as f64 / 1024.0);
    }

    if args.live_sessions > 0 {
        let before = server.rss_kib().unwrap_or(0);
        let started = Instant::now();
        activate(addr, args.live_sessions).await?;
        let secs = started.elapsed().as_secs_f64();
        let after = server.rss_kib().unwrap_or(0);
        println!(
            "live sessions: activated {} more in {:.1} s; server RSS {:.1} MiB (was {:.1} MiB, {:.2} KiB per session)",
            args.live_sessions,
            secs,
            after as f64 / 1024.0,
            before as f64 / 1024.0,
            (after.saturating_sub(before)) as f64 / args.live_sessions as f64
        );
        if let Some(kib) = server.peak_rss_kib() {
            println!("server peak RSS {:.1} MiB", kib as f64 / 1024.0);
        }
    }
    server.kill9()?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Target {
    Healthz,
    Turns,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    addr: SocketAddr,
    server_pid: u32,
    n: usize,
    warmup: f64,
    secs: f64,
    target: Target,
    rate: f64,
    timeline: bool,
) -> anyhow::Result<Phase> {
    // Open loop: each session sends every `interval`, phase-shifted so sends spread evenly.
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(n as f64 / rate));
    let origin = tokio::time::Instant::now() + Duration::from_millis(50);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for user in 0..n {
        let measuring = measuring.clone();
        let stop = stop.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut lag = Vec::new();
            // With --timeline: when each measured turn was due, to place it in its second.
            let mut sent = Vec::new();
            let mut conn = match Conn::connect(addr).await {
                Ok(c) => c,
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return (lat, lag, sent);
                }
            };
            let session = format!("load-{user}");
            let path = format!("/v1/conversations/{session}/messages");
            let mut turn = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t0 = match interval {
                    Some(every) => {
                        let phase = every.mul_f64(user as f64 / n as f64);
                        let due = origin + phase + every * turn as u32;
                        // A send already overdue (the session's previous turn came back
                        // late) is the server's delay, not ours: only a send this task slept
                        // for measures how late its own timer and scheduling were.
                        let slept = tokio::time::Instant::now() < due;
                        tokio::time::sleep_until(due).await;
                        if slept && measuring.load(Ordering::Relaxed) {
                            let late = due.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            lag.push(late);
                        }
                        due.into_std()
                    }
                    None => Instant::now(),
                };
                let result = match target {
                    Target::Healthz => conn.get("/healthz").await,
                    Target::Turns => {
                        let script = script();
                        let text = script[(user + turn) % script.len()];
                        let body = json!({"text": text, "message_id": format!("{session}-{turn}")});
                        conn.post_json(&path, &body).await
                    }
                };
                turn += 1;
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                match result {
                    Ok(r) if r.status.is_success() => {
                        if measuring.load(Ordering::Relaxed) {
                            lat.push(us);
                            if timeline {
                                sent.push((t0, us));
                            }
                        }
                    }
                    Ok(_) | Err(_) => {
                        if measuring.load(Ordering::Relaxed) {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        if conn_broken(&mut conn, addr).await.is_err() {
                            break;
                        }
                    }
                }
            }
            (lat, lag, sent)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let ticks = clock_ticks();
    let turns = matches!(target, Target::Turns);
    let metrics_before = if turns { scrape(addr).await } else { None };
    let cpu_before = cpu_pair(server_pid, ticks);
    let threads_before = threads::snapshot(server_pid);
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let scraper = (timeline && turns).then(|| {
        let stop = stop.clone();
        let measuring = measuring.clone();
        tokio::spawn(async move {
            let mut scrapes = Vec::new();
            while measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                if let Some(text) = scrape(addr).await {
                    scrapes.push((Instant::now(), text));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            scrapes
        })
    });
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let threads = threads_before
        .zip(threads::snapshot(server_pid))
        .map(|(before, after)| threads::since(&before, &after))
        .unwrap_or_default();
    let cpu = cpu_before
        .zip(cpu_pair(server_pid, ticks))
        .map(|((s0, c0), (s1, c1))| (s1 - s0, c1 - c0));
    let metrics_after = if turns { scrape(addr).await } else { None };
    let mut server = Vec::new();
    if let (Some(before), Some(after)) = (&metrics_before, &metrics_after) {
        for &(label, name, labels) in SERVER_SERIES {
            if let Some(now) = Histogram::parse(after, name, labels) {
                let earlier = Histogram::parse(before, name, labels);
                server.push((label, now.since(earlier.as_ref())));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut lag = Vec::new();
    let mut sent = Vec::new();
    for t in tasks {
        let (l, g, s) = t.await?;
        lat.extend(l);
        lag.extend(g);
        sent.extend(s);
    }
    lat.sort_unstable();
    lag.sort_unstable();
    if let Some(scraper) = scraper {
        print_timeline(t0, secs, &sent, &scraper.await?);
    }
    Ok(Phase {
        name: match target {
            Target::Healthz => "healthz",
            Target::Turns => "turns",
        },
        ok: lat.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        secs: elapsed,
        lat_us: lat,
        lag_us: lag,
        cpu,
        server,
        threads,
        ticks,
    })
}

/// `--timeline`: one line per second of the measurement. Client side, the turns due in that
/// second and their p99 (from the due time); server side, the histograms' growth between two
/// scrapes a second apart (so a line covers the turns that ended in that second).
fn print_timeline(t0: Instant, secs: f64, sent: &[(Instant, u32)], scrapes: &[(Instant, String)]) {
    let seconds = secs.ceil() as usize;
    let mut by_second: Vec<Vec<u32>> = vec![Vec::new(); seconds.max(1)];
    for &(due, us) in sent {
        let i = due.saturating_duration_since(t0).as_secs() as usize;
        if let Some(bucket) = by_second.get_mut(i) {
            bucket.push(us);
        }
    }
    let ms = |h: Option<&Histogram>| {
        h.and_then(|h| h.quantile(0.99))
            .map_or_else(|| "-".to_owned(), |q| format!("{:.1}", q * 1e3))
    };
    println!(
        "timeline: s  sent  client p99 ms | server turns  p99 ms: turn  queue  handle  append  fsync"
    );
    for (i, bucket) in by_second.iter_mut().enumerate() {
        bucket.sort_unstable();
        let client = if bucket.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.1}", f64::from(percentile(bucket, 99.0)) / 1e3)
        };
        let window = scrapes
            .windows(2)
            .find(|w| w[1].0.saturating_duration_since(t0).as_secs() as usize == i + 1);
        let server = window.map(|w| {
            let series = |name: &str, labels: &str| {
                Histogram::parse(&w[1].1, name, labels)
                    .map(|now| now.since(Histogram::parse(&w[0].1, name, labels).as_ref()))
            };
            let turn = series("kefu_turn_seconds", "");
            format!(
                "{:>6}  {:>8} {:>6} {:>7} {:>7} {:>6}",
                turn.as_ref().map_or(0.0, Histogram::count),
                ms(turn.as_ref()),
                ms(series("kefu_turn_phase_seconds", r#"phase="queue""#).as_ref()),
                ms(series("kefu_turn_phase_seconds", r#"phase="handle""#).as_ref()),
                ms(series("kefu_turn_phase_seconds", r#"phase="append""#).as_ref()),
                ms(series("kefu_store_flush_seconds", r#"step="fdatasync""#).as_ref()),
            )
        });
        println!(
            "      {i:>3} {:>5} {client:>14} | {}",
            bucket.len(),
            server.unwrap_or_else(|| "-".to_owned())
        );
    }
}

/// After a failed request, reconnect (the server may have closed the connection).
async fn conn_broken(conn: &mut Conn, addr: SocketAddr) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    *conn = Conn::connect(addr).await?;
    Ok(())
}

/// Sends one message to each of `m` new sessions over 200 connections.
async fn activate(addr: SocketAddr, m: usize) -> anyhow::Result<()> {
    let conns = 200.min(m);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= m {
                    return anyhow::Ok(());
                }
                let body = json!({"text": "你好", "message_id": format!("live-{i}")});
                let r = conn
                    .post_json(&format!("/v1/conversations/live-{i}/messages"), &body)
                    .await?;
                anyhow::ensure!(r.status.is_success(), "activation failed: {}", r.status);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
