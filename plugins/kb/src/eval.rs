//! Retrieval evaluation: top-1, top-5, MRR@10 and query latency over a set of queries with
//! known answers, as `kefu kb eval` prints them.
//!
//! Input files are JSONL. Knowledge-base lines are read by the JSONL loader (`id`, `question`
//! or `title`, `answer` or `body`; ids as strings or numbers); lines that repeat an id are
//! merged into one entry, the repeated question becoming a phrasing, so a data set with one
//! line per (thread, question) still evaluates per thread. Query lines hold `query` (or
//! `question`, `text`, `paraphrase`) and `expected_id` (or `id`, `answer_id`, `target`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::formats::{FileDefaults, parse_jsonl};
use crate::{
    Entry, KbError, KnowledgeBase, Lang, Problem, Result, SearchOptions, Synonyms, Tuning,
};

/// One evaluation query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalQuery {
    /// What the user asks.
    pub query: String,
    /// The id of the entry that answers it.
    pub expected_id: String,
}

/// The figures of one evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Queries evaluated.
    pub queries: usize,
    /// Entries in the knowledge base.
    pub entries: usize,
    /// Queries whose expected id is not in the knowledge base (counted as misses).
    pub unknown_expected: usize,
    /// Share of queries whose expected entry ranks first.
    pub top1: f64,
    /// Share of queries whose expected entry ranks in the first five.
    pub top5: f64,
    /// Mean reciprocal rank of the expected entry, 0 beyond rank 10.
    pub mrr10: f64,
    /// Median query latency in microseconds.
    pub p50_us: u64,
    /// 99th-percentile query latency in microseconds.
    pub p99_us: u64,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| KbError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a JSONL knowledge base for evaluation; `lang` overrides detection for every entry.
pub fn load_kb(path: &Path, lang: Option<Lang>, tuning: Tuning) -> Result<KnowledgeBase> {
    let src = read(path)?;
    let defaults = FileDefaults {
        lang,
        tags: Vec::new(),
    };
    let display = Path::new(path.file_name().unwrap_or(path.as_os_str()));
    let (entries, problems) = parse_jsonl(&src, display, defaults);
    if !problems.is_empty() {
        return Err(KbError::Invalid { problems });
    }
    let mut merged: Vec<Entry> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for mut e in entries {
        if let Some(lang) = lang {
            e.lang = lang;
        }
        match by_id.get(&e.id) {
            Some(&i) => {
                let first = &mut merged[i];
                first.phrasings.push(e.question);
                first.phrasings.extend(e.phrasings);
                if first.answer.is_empty() {
                    first.answer = e.answer;
                }
            }
            None => {
                by_id.insert(e.id.clone(), merged.len());
                merged.push(e);
            }
        }
    }
    KnowledgeBase::from_entries(merged, Synonyms::default(), tuning)
}

fn text_field(obj: &serde_json::Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match obj.get(*n) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Reads a JSONL query file; every malformed line is reported with its number.
pub fn read_queries(path: &Path) -> Result<Vec<EvalQuery>> {
    let src = read(path)?;
    let display = Path::new(path.file_name().unwrap_or(path.as_os_str()));
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in src.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |m: String| Problem::new(display, i + 1, m);
        let obj = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                problems.push(at("expected a JSON object".into()));
                continue;
            }
            Err(e) => {
                problems.push(at(format!("JSON: {e}")));
                continue;
            }
        };
        let query = text_field(&obj, &["query", "question", "text", "paraphrase"]);
        let expected = text_field(&obj, &["expected_id", "id", "answer_id", "target"]);
        match (query, expected) {
            (Some(query), Some(expected_id)) => out.push(EvalQuery { query, expected_id }),
            _ => problems.push(at("expected `query` and `expected_id`".into())),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(KbError::Invalid { problems })
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs every query (top 10, with `base`'s filters) and measures ranks and latency.
pub fn evaluate(kb: &KnowledgeBase, queries: &[EvalQuery], base: &SearchOptions) -> EvalReport {
    let opts = SearchOptions {
        limit: 10,
        ..base.clone()
    };
    let known: std::collections::HashSet<String> =
        kb.entries().iter().map(|e| e.id.clone()).collect();
    // One untimed query first: lazy initialisation (the segmenter's dictionary) is not query cost.
    if let Some(q) = queries.first() {
        let _ = kb.search(&q.query, &opts);
    }
    let (mut top1, mut top5, mut rr) = (0usize, 0usize, 0f64);
    let mut lat = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = kb.search(&q.query, &opts);
        lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
        if let Some(rank) = hits.iter().position(|h| h.entry.id == q.expected_id) {
            top1 += usize::from(rank == 0);
            top5 += usize::from(rank < 5);
            rr += 1.0 / (rank as f64 + 1.0);
        }
    }
    lat.sort_unstable();
    let n = queries.len().max(1) as f64;
    EvalReport {
        queries: queries.len(),
        entries: kb.len(),
        unknown_expected: queries
            .iter()
            .filter(|q| !known.contains(&q.expected_id))
            .count(),
        top1: top1 as f64 / n,
        top5: top5 as f64 / n,
        mrr10: rr / n,
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
    }
}
