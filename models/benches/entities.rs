//! What entity extraction costs per user turn: the built-in extractors (dates, amounts,
//! phones, ids, cards, ...) over the load generator's conversation lines, most of which carry
//! no entity at all, plus a few that carry several. Prints nanoseconds per text; run with
//! `cargo bench -p kefu-models --bench entities`.

use std::hint::black_box;
use std::time::Instant;

use chrono::NaiveDate;
use kefu_models::extract_entities;

const ROUNDS: u32 = 20_000;

/// The load script's lines (tests/src/bin/loadgen.rs) and some with entities.
const TEXTS: &[&str] = &[
    "你好",
    "我想查一下我的订单",
    "订单号是 A20241101123",
    "啥时候能到啊",
    "运费多少钱",
    "怎么退货",
    "谢谢",
    "hello",
    "where is my order",
    "my order number is B98765432100",
    "how much is shipping",
    "I want to return an item",
    "can I get an invoice",
    "thanks, bye",
    "明天下午送到北京，电话13812345678，退两百块",
    "can it arrive next friday? my email is ann@example.com, refund $20",
];

fn main() {
    let today = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default();
    let mut found = 0usize;
    for t in TEXTS {
        found += extract_entities(t, today).len();
    }
    // Warm-up, then timed rounds over every text.
    for _ in 0..ROUNDS / 10 {
        for t in TEXTS {
            black_box(extract_entities(black_box(t), today));
        }
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        for t in TEXTS {
            black_box(extract_entities(black_box(t), today));
        }
    }
    let per_text = started.elapsed().as_nanos() as f64 / f64::from(ROUNDS) / TEXTS.len() as f64;
    println!(
        "entities: {} texts ({found} entities in all), {per_text:.0} ns per text",
        TEXTS.len()
    );
}
