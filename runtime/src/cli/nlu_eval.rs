//! `kefu nlu eval` and `kefu emotion eval`: measure the understanding models on a
//! designer's own labelled data (JSONL `{"text","intent"|"label"}` or CSV with a header such
//! as Banking77's `text,category`).
//!
//! Output: a human-readable report on stdout; with `--json`, one JSON object follows as the
//! last line (intents: `accuracy`, `macro_f1`, `inscope_accuracy`, `oos_recall`,
//! `oos_precision`, `train_seconds`, `p50_us`, `p99_us`; emotion: `accuracy`, `macro_f1`,
//! `f1`, `train_seconds`, `p50_us`, `p99_us`). Exit code 0 on success, 2 when the data
//! cannot be read or a model cannot be trained (the error names file and line).
//!
//! `kefu nlu eval --train ALL.csv --split 0.2 [--seed 42]` evaluates on a stratified, seeded
//! share of one file instead of a separate test file (e.g. Bitext's single CSV).
//!
//! The work is done by `kefu_models::eval`; this module only parses arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use kefu_models::eval::{
    EmotionEvalReport, LabelMap, NluEval, NluEvalOptions, emotion_eval_files, load_labelled,
    nlu_eval, nlu_eval_files, stratified_split,
};
use kefu_models::{ClassifierConfig, Lang};

/// The data's language, for `--lang`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LangArg {
    /// Chinese: jieba word features on.
    Zh,
    /// English: no Chinese segmentation.
    En,
}

/// `kefu nlu ...`
#[derive(Debug, Subcommand)]
pub(crate) enum NluCommand {
    /// Train the intent classifier on TRAIN, evaluate on TEST: accuracy, macro-F1,
    /// out-of-scope recall/precision (label `oos`), training time, latency percentiles.
    Eval {
        /// Training data (JSONL or CSV).
        #[arg(long)]
        train: PathBuf,
        /// Test data (JSONL or CSV).
        #[arg(long, required_unless_present = "split", conflicts_with = "split")]
        test: Option<PathBuf>,
        /// Instead of --test: hold back this share of TRAIN (per intent, seeded) as the
        /// test set, e.g. `--split 0.2` for a stratified 80/20 split.
        #[arg(long)]
        split: Option<f64>,
        /// Seed of --split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The data's language.
        #[arg(long, value_enum)]
        lang: Option<LangArg>,
        /// Rename labels: `from=to,from2=to2` (e.g. `out_of_scope=oos`).
        #[arg(long, default_value = "")]
        map: String,
        /// Classifier settings to try instead of the defaults: inline JSON
        /// (`'{"epochs": 20, "l2": 1e-6}'`) or a JSON file; fields as in the flow files'
        /// classifier config. Overrides --lang.
        #[arg(long)]
        config: Option<String>,
        /// Write every misclassified test example to this file, one JSON object per line
        /// (`text`, `expected`, `predicted`, `confidence`).
        #[arg(long, value_name = "FILE")]
        errors: Option<PathBuf>,
        /// Also print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

/// Reads `--config`: inline JSON when it starts with `{`, else a JSON file.
fn classifier_config(spec: &str) -> Result<ClassifierConfig, String> {
    let text = if spec.trim_start().starts_with('{') {
        spec.to_owned()
    } else {
        std::fs::read_to_string(spec).map_err(|e| format!("--config {spec}: {e}"))?
    };
    let config: ClassifierConfig =
        serde_json::from_str(&text).map_err(|e| format!("--config: {e}"))?;
    config.validate().map_err(|e| format!("--config: {e}"))?;
    Ok(config)
}

/// `kefu emotion ...`
#[derive(Debug, Subcommand)]
pub(crate) enum EmotionCommand {
    /// Evaluate the emotion model on TEST (labels anger, anxiety, sadness, joy, neutral):
    /// the shipped lexicon model, or one trained on --train and blended with it.
    Eval {
        /// Labelled training data; without it the shipped default model is evaluated.
        #[arg(long)]
        train: Option<PathBuf>,
        /// Test data (JSONL or CSV).
        #[arg(long)]
        test: PathBuf,
        /// Rename labels: `from=to,...` (e.g. `angry=anger,fear=anxiety,other=neutral`).
        #[arg(long, default_value = "")]
        map: String,
        /// Also print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// Runs a `kefu nlu` subcommand.
pub(crate) fn run_nlu(cmd: NluCommand) -> ExitCode {
    let NluCommand::Eval {
        train,
        test,
        split,
        seed,
        lang,
        map,
        config,
        errors,
        json,
    } = cmd;
    let map = match LabelMap::parse(&map) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    // Created before training, so a bad path fails at once rather than after a long run.
    let errors = match errors
        .map(|path| match std::fs::File::create(&path) {
            Ok(file) => Ok((path, file)),
            Err(e) => Err(format!("--errors {}: {e}", path.display())),
        })
        .transpose()
    {
        Ok(e) => e,
        Err(msg) => return fail(msg),
    };
    let config = match config.as_deref().map(classifier_config).transpose() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let options = NluEvalOptions {
        lang: lang.map(|l| match l {
            LangArg::Zh => Lang::Zh,
            LangArg::En => Lang::En,
        }),
        config,
    };
    let result = match (test, split) {
        (Some(test), _) => nlu_eval_files(&train, &test, &map, &options),
        (None, Some(fraction)) if fraction > 0.0 && fraction < 1.0 => load_labelled(&train, &map)
            .and_then(|rows| {
                let (train, test) = stratified_split(rows, fraction, seed);
                println!(
                    "split: {} train, {} test (fraction {fraction}, seed {seed})",
                    train.len(),
                    test.len()
                );
                nlu_eval(&train, &test, &options)
            }),
        (None, _) => return fail("--split must be between 0 and 1 (e.g. 0.2), or give --test"),
    };
    match result {
        Ok(eval) => {
            print_nlu(&eval);
            if let Some((path, file)) = errors {
                if let Err(e) = write_misses(file, &eval) {
                    return fail(format!("--errors {}: {e}", path.display()));
                }
                println!(
                    "errors: {} misclassified examples written to {}",
                    eval.misses.len(),
                    path.display()
                );
            }
            if json {
                match serde_json::to_string(&eval.report) {
                    Ok(line) => println!("{line}"),
                    Err(e) => return fail(e),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `--errors FILE`: the misclassified test examples as JSONL.
fn write_misses(file: std::fs::File, eval: &NluEval) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(file);
    for miss in &eval.misses {
        serde_json::to_writer(&mut out, miss)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.4}"))
}

fn print_nlu(eval: &NluEval) {
    let (r, d) = (&eval.report, &eval.details);
    println!(
        "data: {} train, {} test, {} intents; rejection: {}{}",
        d.train_examples,
        d.test_examples,
        d.intents,
        d.rejection,
        d.threshold
            .map(|t| format!(" (threshold {t:.3})"))
            .unwrap_or_default()
    );
    println!("accuracy          {:.4}", r.accuracy);
    println!("macro_f1          {:.4}", r.macro_f1);
    println!("inscope_accuracy  {:.4}", r.inscope_accuracy);
    println!(
        "inscope_top1      {:.4}  (no rejection)",
        d.inscope_top1_accuracy
    );
    if let Some(a) = d.inscope_no_threshold_accuracy {
        println!("inscope_oos_only  {a:.4}  (oos class rejects, no threshold)");
    }
    println!("oos_recall        {}", opt(r.oos_recall));
    println!("oos_precision     {}", opt(r.oos_precision));
    println!("train_seconds     {:.3}", r.train_seconds);
    println!("p50_us            {:.1}", r.p50_us);
    println!("p99_us            {:.1}", r.p99_us);
    let confusions = eval.top_confusions(5);
    if !confusions.is_empty() {
        println!("most confused (expected -> predicted):");
        for (expected, predicted, n) in confusions {
            println!("  {n:>5}  {expected} -> {predicted}");
        }
    }
}

/// Runs a `kefu emotion` subcommand.
pub(crate) fn run_emotion(cmd: EmotionCommand) -> ExitCode {
    let EmotionCommand::Eval {
        train,
        test,
        map,
        json,
    } = cmd;
    let map = match LabelMap::parse(&map) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    match emotion_eval_files(train.as_deref(), &test, &map) {
        Ok(report) => {
            print_emotion(&report, train.is_some());
            if json {
                match serde_json::to_string(&report) {
                    Ok(line) => println!("{line}"),
                    Err(e) => return fail(e),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn print_emotion(r: &EmotionEvalReport, trained: bool) {
    println!(
        "model: {}",
        if trained {
            "trained on --train, blended with the lexicons"
        } else {
            "shipped lexicons (no training data)"
        }
    );
    println!("accuracy          {:.4}", r.accuracy);
    println!("macro_f1          {:.4}", r.macro_f1);
    for (label, f1) in &r.f1 {
        println!("f1 {label:<14} {f1:.4}");
    }
    println!("train_seconds     {:.3}", r.train_seconds);
    println!("p50_us            {:.1}", r.p50_us);
    println!("p99_us            {:.1}", r.p99_us);
}
