//! Benchmarks (plain `main`, no harness): loading and validating the shop bot, and one
//! interpreter step with no I/O. Prints the figures and exits non-zero when a budget from
//! the issue is missed: load + validate < 200 ms, one step p99 < 20 µs.
//!
//! Run with `cargo bench -p kefu-flows --bench flows` (an optimised build).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use kefu_flows::{Bot, DialogState, External, Lang, SkillResult, TurnInput, resume, step};

const LOAD_BUDGET: Duration = Duration::from_millis(200);
const STEP_P99_BUDGET: Duration = Duration::from_micros(20);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bots/shop");
    let mut loads = Vec::new();
    let mut bot = None;
    for _ in 0..20 {
        let start = Instant::now();
        let b = Bot::load_dir(&dir).expect("the shop bot loads");
        loads.push(start.elapsed());
        bot = Some(b);
    }
    let bot = bot.expect("loaded");
    loads.sort();
    let load_max = *loads.last().expect("20 loads");
    println!(
        "load+validate shop bot: p50 {:?}  max {:?}  (budget {LOAD_BUDGET:?})",
        percentile(&loads, 0.5),
        load_max
    );

    // A realistic mix of turns: greeting, a question with a slot, a digression, a skill call
    // resumed with its result, a complaint, small talk and out-of-scope messages.
    let turns: [(&str, Option<&str>); 10] = [
        ("你好", Some("greet")),
        ("帮我查下物流", Some("order_status")),
        ("我的订单号是 A12345678", None),
        ("我要退货", Some("return_exchange")),
        ("运费多少", Some("shipping_fee")),
        ("退货", None),
        ("这款衣服是什么材质的", Some("product_question")),
        ("随便说点什么", None),
        ("谢谢", Some("thanks")),
        ("再见", Some("goodbye")),
    ];
    let mut samples = Vec::with_capacity(200_000);
    let rounds = 10_000;
    for round in 0..rounds {
        let mut state = DialogState::default();
        let user = format!("user-{}", round % 97);
        for (text, intent) in turns {
            let mut input = TurnInput::new(text, Lang::Zh)
                .on_channel("web")
                .from_user(&user);
            if let Some(i) = intent {
                input = input.with_intent(i, 0.93);
            }
            let start = Instant::now();
            let out = step(black_box(&bot), black_box(&state), black_box(&input));
            samples.push(start.elapsed());
            let pending = out.pending().is_some();
            state = out.state;
            if pending {
                let result = External::Skill(SkillResult::found(
                    serde_json::json!({"status": "shipped", "answer": "纯棉"}),
                ));
                let start = Instant::now();
                let out = resume(&bot, &state, &input, result);
                samples.push(start.elapsed());
                state = out.state;
            }
        }
    }
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    let p99 = percentile(&samples, 0.99);
    println!(
        "interpreter step ({} samples): p50 {p50:?}  p99 {p99:?}  max {:?}  (p99 budget {STEP_P99_BUDGET:?})",
        samples.len(),
        samples.last().copied().unwrap_or_default()
    );
    let mut failed = false;
    if load_max >= LOAD_BUDGET {
        eprintln!("FAIL: loading took {load_max:?}");
        failed = true;
    }
    if p99 >= STEP_P99_BUDGET {
        eprintln!("FAIL: step p99 {p99:?}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
