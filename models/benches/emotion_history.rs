//! What persisting a session's emotion history costs per turn: the compact string form that
//! snapshots use now against the earlier JSON array of `{label, intensity}` objects (still
//! accepted when loading). Prints bytes and nanoseconds per encode and decode of a full
//! 20-turn history; run with `cargo bench -p kefu-models --bench emotion_history`.

use std::hint::black_box;
use std::time::Instant;

use kefu_models::emotion::HISTORY_LEN;
use kefu_models::{EmotionHistory, EmotionLabel, EmotionTurn};

const ROUNDS: u32 = 200_000;

fn time_ns(mut f: impl FnMut()) -> f64 {
    // Warm caches and the allocator first.
    for _ in 0..ROUNDS / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    started.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
}

fn main() -> Result<(), serde_json::Error> {
    let mut history = EmotionHistory::new();
    for i in 0..HISTORY_LEN {
        history.push_turn(EmotionLabel::ALL[i % 5], (i * 7 % 100) as f32 / 100.0);
    }
    let turns: Vec<EmotionTurn> = history.turns().copied().collect();

    let compact = serde_json::to_vec(&history)?;
    let old = serde_json::to_vec(&turns)?;
    let encode_compact = time_ns(|| {
        black_box(serde_json::to_vec(black_box(&history)).unwrap_or_default());
    });
    let encode_old = time_ns(|| {
        black_box(serde_json::to_vec(black_box(&turns)).unwrap_or_default());
    });
    let decode_compact = time_ns(|| {
        black_box(serde_json::from_slice::<EmotionHistory>(black_box(&compact)).ok());
    });
    let decode_old = time_ns(|| {
        black_box(serde_json::from_slice::<EmotionHistory>(black_box(&old)).ok());
    });
    println!("emotion history of {HISTORY_LEN} turns, per snapshot:");
    println!(
        "  compact string : {:>4} bytes, encode {encode_compact:>6.0} ns, decode {decode_compact:>6.0} ns",
        compact.len()
    );
    println!(
        "  JSON objects   : {:>4} bytes, encode {encode_old:>6.0} ns, decode {decode_old:>6.0} ns",
        old.len()
    );
    Ok(())
}
