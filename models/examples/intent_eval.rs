//! Trains the intent classifier and reports accuracy, training time and classify latency.
//!
//! ```text
//! cargo run --release -p kefu-models --example intent_eval                 # default sets
//! cargo run --release -p kefu-models --example intent_eval -- TRAIN TEST   # your own
//! ```
//!
//! Files are JSONL (`{"text": ..., "intent": ...}` per line) or CSV with a header and
//! `text,category` columns (Banking77's format). Without arguments it evaluates:
//! 1. the bilingual fixture of the tests (`models/tests/fixtures/`);
//! 2. Banking77 from `../shared/data/banking77/{train,test}.csv` (relative to the repository
//!    root, where `cargo run` is started) when present, otherwise a synthetic 77-intent set
//!    of the same size, whose accuracy means nothing: it is there for timing only.
//!
//! Run from the repository root.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kefu_models::{ClassifierConfig, IntentClassifier, IntentExample, normalize};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [train, test] = args.as_slice() {
        let train = load(Path::new(train))?;
        let test = load(Path::new(test))?;
        evaluate("custom", &train, &test)?;
        return Ok(());
    }
    let fixtures = Path::new("models/tests/fixtures");
    let mut train = load(&fixtures.join("intents_train.jsonl"))?;
    let test = load(&fixtures.join("intents_test.jsonl"))?;
    evaluate("bilingual fixture (10 intents, no oos)", &train, &test)?;
    train.extend(load(&fixtures.join("oos_train.jsonl"))?);
    let mut test_oos = test.clone();
    test_oos.extend(load(&fixtures.join("oos_test.jsonl"))?);
    evaluate("bilingual fixture + oos", &train, &test_oos)?;

    let banking: PathBuf = ["..", "shared", "data", "banking77"].iter().collect();
    if banking.join("train.csv").is_file() && banking.join("test.csv").is_file() {
        let train = load(&banking.join("train.csv"))?;
        let test = load(&banking.join("test.csv"))?;
        evaluate("Banking77", &train, &test)?;
    } else {
        println!(
            "\n{} not found: using a synthetic 77-intent set (timing only; accuracy meaningless)",
            banking.display()
        );
        let (train, test) = synthetic(77, 10_003, 3_080);
        evaluate("synthetic 77 intents", &train, &test)?;
    }
    Ok(())
}

fn evaluate(name: &str, train: &[IntentExample], test: &[IntentExample]) -> anyhow::Result<()> {
    println!("\n== {name}: {} train, {} test", train.len(), test.len());
    let config = ClassifierConfig::default();
    let started = Instant::now();
    let clf = IntentClassifier::train(train, &config)?;
    let train_time = started.elapsed();
    println!(
        "intents {}, training {:.1} ms, calibration {:?}",
        clf.intents().len(),
        ms(train_time),
        clf.calibration()
    );

    let normalised: Vec<String> = test.iter().map(|ex| normalize(&ex.text)).collect();
    let (mut top, mut accepted, mut in_scope, mut oos, mut oos_rejected) = (0, 0, 0, 0, 0);
    for (ex, text) in test.iter().zip(&normalised) {
        let p = clf.classify(text);
        if ex.intent == kefu_models::OOS_INTENT {
            oos += 1;
            oos_rejected += usize::from(p.intent.is_none());
        } else {
            in_scope += 1;
            top += usize::from(p.ranking.first().is_some_and(|(i, _)| *i == ex.intent));
            accepted += usize::from(p.intent.as_deref() == Some(ex.intent.as_str()));
        }
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "in-scope top-1 accuracy {:.2}%, accepted-and-correct {:.2}%",
        pct(top, in_scope),
        pct(accepted, in_scope)
    );
    if oos > 0 {
        println!(
            "oos recall (rejected) {:.2}% of {oos}",
            pct(oos_rejected, oos)
        );
    }

    // Latency: at least 50k classifications, cycling over the test texts.
    let rounds = 50_000usize.div_ceil(normalised.len().max(1));
    let mut classify_ns = Vec::with_capacity(rounds * normalised.len());
    let mut full_ns = Vec::with_capacity(rounds * normalised.len());
    for _ in 0..rounds {
        for (ex, text) in test.iter().zip(&normalised) {
            let t = Instant::now();
            std::hint::black_box(clf.classify(std::hint::black_box(text)));
            classify_ns.push(t.elapsed().as_nanos() as u64);
            let t = Instant::now();
            std::hint::black_box(clf.classify(&normalize(std::hint::black_box(&ex.text))));
            full_ns.push(t.elapsed().as_nanos() as u64);
        }
    }
    report("classify", &mut classify_ns);
    report("normalize+classify", &mut full_ns);
    Ok(())
}

fn report(what: &str, ns: &mut [u64]) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    let mean = ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64 / 1000.0;
    println!(
        "{what}: n={} mean {mean:.2} µs, p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        ns.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn load(path: &Path) -> anyhow::Result<Vec<IntentExample>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let is_csv = path.extension().is_some_and(|e| e == "csv");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (is_csv && n == 0) {
            continue;
        }
        if is_csv {
            let fields = csv_fields(line);
            if let [text, intent] = fields.as_slice() {
                out.push(IntentExample::new(text.clone(), intent.clone()));
            } else {
                anyhow::bail!("{}:{}: expected 2 CSV fields", path.display(), n + 1);
            }
        } else {
            out.push(
                serde_json::from_str(line)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?,
            );
        }
    }
    Ok(out)
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines: true of Banking77).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = fields.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

/// A synthetic set shaped like Banking77 (77 intents, short English requests): each intent
/// has its own keywords, mixed with filler shared by all intents.
fn synthetic(
    n_intents: usize,
    n_train: usize,
    n_test: usize,
) -> (Vec<IntentExample>, Vec<IntentExample>) {
    let mut rng = StdRng::seed_from_u64(77);
    let syllables = [
        "ba", "ko", "ri", "mu", "te", "sa", "lo", "ni", "pe", "da", "zu", "ve", "ga", "fi", "ho",
        "ju",
    ];
    let word = |rng: &mut StdRng| -> String {
        let n = rng.random_range(2..4);
        (0..n)
            .map(|_| *syllables.choose(rng).unwrap_or(&"ba"))
            .collect()
    };
    let filler: Vec<String> = [
        "i", "my", "the", "can", "you", "please", "how", "do", "why", "is", "it", "a", "to",
        "what", "have", "not", "been", "card", "account", "money",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let keywords: Vec<Vec<String>> = (0..n_intents)
        .map(|_| (0..8).map(|_| word(&mut rng)).collect())
        .collect();
    let make = |rng: &mut StdRng, n: usize| -> Vec<IntentExample> {
        (0..n)
            .map(|i| {
                let intent = i % n_intents;
                let len = rng.random_range(6..15);
                let words: Vec<&str> = (0..len)
                    .map(|_| {
                        if rng.random_bool(0.3) {
                            keywords[intent].choose(rng).map_or("x", String::as_str)
                        } else {
                            filler.choose(rng).map_or("x", String::as_str)
                        }
                    })
                    .collect();
                IntentExample::new(words.join(" "), format!("intent_{intent}"))
            })
            .collect()
    };
    let train = make(&mut rng, n_train);
    let test = make(&mut rng, n_test);
    (train, test)
}
