//! `kefu kb eval`: retrieval quality and latency of the knowledge-base search on a labelled
//! query set (see `kefu_kb::eval` for the file formats).
//!
//! Output: a human-readable summary; with `--json`, the last line is one JSON object with
//! `top1`, `top5`, `mrr10`, `p50_us`, `p99_us` (plus counts), which CI parses. Exit codes: 0 ok,
//! 2 when an input cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kefu_kb::eval::{evaluate, load_kb, read_queries};
use kefu_kb::{Lang, SearchOptions, Tuning};

/// `kefu kb ...` subcommands.
#[derive(Subcommand)]
pub(crate) enum KbCommand {
    /// Measure top-1, top-5, MRR@10 and latency on a labelled query set.
    Eval(EvalArgs),
}

/// Arguments of `kefu kb eval`.
#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Knowledge base, JSONL: {"id", "question", "answer"} per line.
    #[arg(long)]
    kb: PathBuf,
    /// Queries, JSONL: {"query", "expected_id"} per line.
    #[arg(long)]
    queries: PathBuf,
    /// Language of the entries (default: detected per entry); also restricts the search.
    #[arg(long, value_parser = ["zh", "en"])]
    lang: Option<String>,
    /// Ranking weights to try instead of the defaults, inline JSON
    /// (`'{"bm25_weight": 0.5, "answer_boost": 0.2}'`); fields as in `kefu_kb::Tuning`.
    #[arg(long)]
    tuning: Option<String>,
    /// Print the figures as one JSON object on the last line.
    #[arg(long)]
    json: bool,
}

/// Runs a `kefu kb` subcommand.
pub(crate) fn run(cmd: KbCommand) -> ExitCode {
    match cmd {
        KbCommand::Eval(args) => eval(args),
    }
}

fn eval(args: EvalArgs) -> ExitCode {
    let lang = args.lang.as_deref().and_then(Lang::parse);
    let tuning = match args.tuning.as_deref().map(serde_json::from_str::<Tuning>) {
        None => Tuning::default(),
        Some(Ok(t)) => match t.validate() {
            Ok(()) => t,
            Err(e) => {
                eprintln!("error: --tuning: {e}");
                return ExitCode::from(2);
            }
        },
        Some(Err(e)) => {
            eprintln!(
                "error: --tuning: {e}\nhint: a JSON object such as '{{\"bm25_weight\": 0.5}}'"
            );
            return ExitCode::from(2);
        }
    };
    let kb = match load_kb(&args.kb, lang, tuning) {
        Ok(kb) => kb,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let queries = match read_queries(&args.queries) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = SearchOptions {
        lang,
        ..SearchOptions::default()
    };
    let r = evaluate(&kb, &queries, &opts);
    println!("entries        {}", r.entries);
    println!("queries        {}", r.queries);
    if r.unknown_expected > 0 {
        println!(
            "unknown ids    {} (expected ids not in the knowledge base; counted as misses)",
            r.unknown_expected
        );
    }
    println!("top-1          {:.4}", r.top1);
    println!("top-5          {:.4}", r.top5);
    println!("MRR@10         {:.4}", r.mrr10);
    println!("latency p50    {} µs", r.p50_us);
    println!("latency p99    {} µs", r.p99_us);
    if args.json {
        match serde_json::to_string(&r) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("error: cannot render the report: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
