//! What entity extraction costs per user turn: the built-in extractors (dates, amounts,
//! phones, ids, cards, ...) over the load generator's conversation lines, most of which carry
//! no entity at all, plus a few that carry several. Prints nanoseconds per text; run with
//! `cargo bench -p kefu-models --bench entities`.

use std::hint::black_box;
use std::time::Instant;

use chrono::NaiveDate;
use kefu_models::extract_entities;

const ROUNDS: u32 = 20_000;

/// The load generator's conversation lines (one per line), shared with `loadgen`.
const LOAD_SCRIPT: &str = include_str!("../../tests/src/load_script.txt");

/// Texts that carry several entities each, beside the mostly entity-free script.
const WITH_ENTITIES: &[&str] = &[
    "明天下午送到北京，电话13812345678，退两百块",
    "can it arrive next friday? my email is ann@example.com, refund $20",
];

fn main() {
    let texts: Vec<&str> = LOAD_SCRIPT
        .lines()
        .filter(|l| !l.is_empty())
        .chain(WITH_ENTITIES.iter().copied())
        .collect();
    let today = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default();
    let mut found = 0usize;
    for t in &texts {
        found += extract_entities(t, today).len();
    }
    // Warm-up, then timed rounds over every text.
    for _ in 0..ROUNDS / 10 {
        for t in &texts {
            black_box(extract_entities(black_box(t), today));
        }
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        for t in &texts {
            black_box(extract_entities(black_box(t), today));
        }
    }
    let per_text = started.elapsed().as_nanos() as f64 / f64::from(ROUNDS) / texts.len() as f64;
    println!(
        "entities: {} texts ({found} entities in all), {per_text:.0} ns per text",
        texts.len()
    );
}
