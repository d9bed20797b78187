//! Durable append throughput and latency of `SledStore` under many concurrent sessions.
//!
//! Runs `TASKS` tokio tasks (default 1000), each appending turns to its own session for
//! `SECS` seconds (default 5): one turn is 3 small events plus a ~300-byte snapshot, with an
//! idempotency key, i.e. what a session actor writes per user message. Prints durable
//! appends/s, p50/p99/max append latency, flushes/s and appends per flush, then the p50/p99
//! latency of `load` for sessions written earlier (activation from the store).
//!
//! `cargo bench -p kefu-store --bench append_throughput` (env: `TASKS`, `SECS`, `WORKERS`
//! (tokio worker threads, default 2), `FSYNC=0` to measure sled's flush alone, `BENCH_DIR`
//! to put the data on a specific disk).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_store::{AppendOutcome, AppendRequest, SledStore, SledStoreConfig, Store};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let tasks: usize = env_or("TASKS", 1000);
    let secs: u64 = env_or("SECS", 5);
    let workers: usize = env_or("WORKERS", 2);
    let fsync = env_or("FSYNC", 1u8) != 0;
    let dir = match std::env::var("BENCH_DIR") {
        Ok(base) => tempfile::tempdir_in(base)?,
        Err(_) => tempfile::tempdir()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let config = SledStoreConfig {
        fsync,
        ..SledStoreConfig::default()
    };
    let store = Arc::new(SledStore::open_with(dir.path(), config)?);
    println!(
        "kefu-store append bench: {tasks} sessions, {secs} s, {workers} workers, fsync={fsync}, dir={}",
        dir.path().display()
    );

    let (latencies, elapsed, flushes) = runtime.block_on(async {
        let flushes_before = store.flush_count();
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let session = format!("bench-session-{task}");
                    let mut latencies = Vec::new();
                    let mut head = 0u64;
                    while Instant::now() < deadline {
                        let req = AppendRequest {
                            expected_seq: head,
                            idempotency_key: Some(format!("msg-{head}")),
                            user: format!("user-{task}"),
                            events: vec![vec![b'i'; 60], vec![b'n'; 40], vec![b'r'; 80]],
                            snapshot: Some(vec![b's'; 300]),
                        };
                        let begin = Instant::now();
                        match store.append(&session, req).await? {
                            AppendOutcome::Appended { last_seq, .. } => head = last_seq,
                            other => anyhow::bail!("unexpected outcome {other:?}"),
                        }
                        latencies.push(begin.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await??);
        }
        let elapsed = started.elapsed();
        anyhow::Ok((all, elapsed, store.flush_count() - flushes_before))
    })?;

    let mut latencies = latencies;
    latencies.sort_unstable();
    let appends = latencies.len() as f64;
    let secs_f = elapsed.as_secs_f64();
    println!("durable appends/s : {:.0}", appends / secs_f);
    println!(
        "append latency    : p50 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "flushes/s         : {:.0}  ({:.1} appends per flush)",
        flushes as f64 / secs_f,
        appends / (flushes.max(1) as f64)
    );

    // Activation: load sessions written above, in a different order than they were written.
    let load_latencies = runtime.block_on(async {
        let mut out = Vec::new();
        for i in 0..tasks.min(10_000) {
            let session = format!("bench-session-{}", (i * 7919) % tasks);
            let begin = Instant::now();
            let loaded = store.load(&session).await?;
            out.push(begin.elapsed());
            anyhow::ensure!(loaded.is_some(), "session {session} missing");
        }
        anyhow::Ok(out)
    })?;
    let mut load_latencies = load_latencies;
    load_latencies.sort_unstable();
    println!(
        "load latency      : p50 {:?}  p99 {:?}  ({} loads)",
        percentile(&load_latencies, 0.50),
        percentile(&load_latencies, 0.99),
        load_latencies.len()
    );
    Ok(())
}
