//! Aggregate generation throughput of the llama.cpp back-end with 1 and with 8 concurrent
//! sessions on the generated `bench` preset model (random weights, ~188M parameters, larger
//! than the CPU's last-level cache as any deployed model is): batching should make 8 sessions
//! at least 3× faster in total than one. Prints both figures, the ratio, and the model's size
//! beside the cache's; exits non-zero below 3×.
//!
//! Run: `cargo bench -p kefu-models --features llama --bench llama_batching`
//! (needs Python with gguf, tokenizers and numpy to make the model). Environment:
//! `KEFU_LLAMA_THREADS` (default 1), `KEFU_LLAMA_QUANT` = `f32` (default) | `bf16` | `q8_0` | `q4_0`
//! for the weights, `KEFU_LLAMA_PRESET` = `bench` (default) | `bench-small` (the earlier
//! ~48M-parameter model, which fits in a 480 MB cache) for the shapes. Build with
//! `RUSTFLAGS="-C target-cpu=x86-64-v3"` (AVX2) or `x86-64-v4` (AVX-512) to give llama.cpp the
//! CPU's SIMD; without it llama.cpp is compiled for baseline x86-64 (see docs/llm.md, which also
//! says why not `native` on CPUs with AMX).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use kefu_models::llm::{ChatMessage, LlamaBackend, LlamaConfig, LlmBackend, LlmRequest};

const TOKENS: u32 = 128;

async fn tokens_per_second(backend: &Arc<LlamaBackend>, sessions: usize) -> Option<f64> {
    let started = Instant::now();
    let runs = (0..sessions).map(|i| {
        let backend = backend.clone();
        async move {
            let mut req = LlmRequest::new(
                vec![
                    ChatMessage::system("你是客服助手。"),
                    ChatMessage::user(format!("第{i}个问题：退货要多久？")),
                ],
                TOKENS,
            );
            req.temperature = Some(0.0);
            backend.complete(req).await
        }
    });
    let mut tokens = 0u64;
    for result in futures::future::join_all(runs).await {
        match result {
            Ok(done) => {
                let generated = done.usage.completion_tokens;
                // A short sequence would leave the batch early: the figure would not be for
                // `sessions` concurrent sequences.
                if generated != TOKENS {
                    eprintln!("a session generated {generated} tokens, not {TOKENS}");
                    return None;
                }
                tokens += u64::from(generated);
            }
            Err(e) => {
                eprintln!("generation failed: {e}");
                return None;
            }
        }
    }
    Some(tokens as f64 / started.elapsed().as_secs_f64())
}

fn main() -> ExitCode {
    let dir = std::env::temp_dir().join(format!("kefu-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let model = dir.join("tiny.gguf");
    let quant = std::env::var("KEFU_LLAMA_QUANT").unwrap_or_else(|_| "f32".into());
    let preset = std::env::var("KEFU_LLAMA_PRESET").unwrap_or_else(|_| "bench".into());
    let mut make = std::process::Command::new("python3");
    make.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make_tiny_gguf.py"))
        .arg(&model)
        // Every session then generates exactly TOKENS tokens: with random weights some
        // sequences would otherwise sample an end token early and leave the batch, and the
        // 8-session figure would measure fewer concurrent sequences than it claims.
        .args(["--preset", &preset, "--never-end"]);
    if quant != "f32" {
        make.args(["--quant", &quant]);
    }
    let made = make.status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("cannot make the model: pip install gguf tokenizers numpy");
        return ExitCode::FAILURE;
    }
    let model_size = std::fs::metadata(&model).map_or_else(
        |_| "size unknown".to_owned(),
        |m| format!("{} MB", m.len() / 1_000_000),
    );
    let cache_size = last_level_cache();
    let threads = std::env::var("KEFU_LLAMA_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let mut config = LlamaConfig::new(&model);
    config.parallel = 8;
    config.context_tokens = 512;
    config.threads = threads;
    config.batch_threads = threads;
    let backend = match LlamaBackend::new(config) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("cannot load the model: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async {
        // Warm-up: first decode allocates buffers.
        let _ = tokens_per_second(&backend, 1).await;
        let (Some(one), Some(eight)) = (
            tokens_per_second(&backend, 1).await,
            tokens_per_second(&backend, 8).await,
        ) else {
            return ExitCode::FAILURE;
        };
        let ratio = eight / one;
        println!(
            "llama.cpp, preset {preset} ({quant}, {}), last-level cache {}; {threads} \
             thread(s), {TOKENS} tokens per session:",
            model_size, cache_size
        );
        println!("  1 session : {one:>9.0} tokens/s");
        println!("  8 sessions: {eight:>9.0} tokens/s aggregate");
        println!("  ratio     : {ratio:.1}x (target >= 3x)");
        let _ = std::fs::remove_dir_all(&dir);
        if ratio >= 3.0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// The largest CPU cache Linux reports for CPU 0 (e.g. "480M"): whether the model fits in it
/// decides whether one sequence is limited by memory or by cache bandwidth.
fn last_level_cache() -> String {
    let base = Path::new("/sys/devices/system/cpu/cpu0/cache");
    (0..8)
        .filter_map(|i| {
            let dir = base.join(format!("index{i}"));
            let level: u32 = std::fs::read_to_string(dir.join("level"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let size = std::fs::read_to_string(dir.join("size")).ok()?;
            Some((level, size.trim().to_owned()))
        })
        .max_by_key(|(level, _)| *level)
        .map_or_else(
            || "unknown".to_owned(),
            |(level, size)| format!("L{level} {size}"),
        )
}
