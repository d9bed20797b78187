//! Parsers for the knowledge-base file formats. Each returns the entries it could read and the
//! problems it found, every problem at a `file:line`.
//!
//! - **YAML**: a list of entries, or a mapping with `entries:` plus file-wide `lang`/`tags`.
//!   Entry keys: `id`, `question`, `phrasings` (alias `also`), `answer`, `tags`, `lang`; any
//!   other key is a problem (a typo such as `phrasing:` would otherwise lose content silently).
//! - **CSV**: a header row naming the same columns; `phrasings` and `tags` are `|`-separated.
//! - **Markdown**: `## question` starts an entry; the lines right after it may be `id:`,
//!   `tags:`, `also:` (one phrasing each) or `lang:`; the rest up to the next `##` is the answer.
//! - **JSONL** (the eval format, also usable as a knowledge base): one object per line, with
//!   `id` (string or number), `question` (or `title`), `answer` (or `body`, optional) and
//!   optionally `phrasings`, `tags`, `lang`. Without an id, the line number is the id.
//!
//! Entries without `lang` take the file's (`faq.zh.md`, or YAML's `lang:`), else the language
//! detected from the question.

use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::Value;

use crate::{Entry, Lang, Problem, Source};

/// An entry as read, before defaults and validation.
#[derive(Default)]
struct Draft {
    line: usize,
    id: Option<String>,
    question: Option<String>,
    phrasings: Vec<String>,
    answer: Option<String>,
    tags: Vec<String>,
    lang: Option<Lang>,
}

/// File-wide defaults.
#[derive(Default, Clone)]
pub(crate) struct FileDefaults {
    pub(crate) lang: Option<Lang>,
    pub(crate) tags: Vec<String>,
}

impl FileDefaults {
    /// The language a file name announces: `faq.zh.yaml`, `shipping.en.md`.
    pub(crate) fn from_name(path: &Path) -> FileDefaults {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let lang = stem.rsplit_once('.').and_then(|(_, l)| Lang::parse(l));
        FileDefaults {
            lang,
            tags: Vec::new(),
        }
    }
}

fn split_list(s: &str, seps: &[char]) -> Vec<String> {
    s.split(seps)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn tag_list(s: &str) -> Vec<String> {
    split_list(s, &[',', '，', '|', ';'])
        .into_iter()
        .map(|t| t.to_lowercase())
        .collect()
}

impl Draft {
    fn finish(
        self,
        file: &Path,
        defaults: &FileDefaults,
        need_answer: bool,
    ) -> Result<Entry, Problem> {
        let at = |m: &str| Problem::new(file, self.line, m);
        let question = self
            .question
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
            .ok_or_else(|| at("the entry has no `question`"))?;
        let id = self
            .id
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| at("the entry has no `id`"))?;
        let answer = self.answer.map(|a| a.trim().to_owned()).unwrap_or_default();
        if need_answer && answer.is_empty() {
            return Err(at(&format!("entry `{id}` has no `answer`")));
        }
        let mut tags = defaults.tags.clone();
        for t in self.tags {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let lang = self
            .lang
            .or(defaults.lang)
            .unwrap_or_else(|| Lang::detect(&question));
        Ok(Entry {
            id,
            phrasings: self
                .phrasings
                .into_iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty() && *p != question)
                .collect(),
            question,
            answer,
            tags,
            lang,
            source: Source {
                file: file.to_path_buf(),
                line: self.line,
            },
        })
    }
}

/// What a parser returns.
pub(crate) type Parsed = (Vec<Entry>, Vec<Problem>);

fn collect(
    drafts: Vec<Draft>,
    file: &Path,
    d: &FileDefaults,
    need_answer: bool,
    mut problems: Vec<Problem>,
) -> Parsed {
    let mut entries = Vec::new();
    for draft in drafts {
        match draft.finish(file, d, need_answer) {
            Ok(e) => entries.push(e),
            Err(p) => problems.push(p),
        }
    }
    (entries, problems)
}

// ---------------------------------------------------------------- YAML

type Node = MarkedYamlOwned;

fn line_of(node: &Node) -> usize {
    node.span.start.line()
}

fn text(node: &Node) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
        YamlDataOwned::Representation(s, _, _) => Some(s.clone()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.to_string()),
        _ => None,
    }
}

/// A list of texts, or one text (split on commas when `split` is set).
fn texts(node: &Node, split: bool) -> Option<Vec<String>> {
    match &node.data {
        YamlDataOwned::Sequence(items) => items.iter().map(text).collect(),
        _ => text(node).map(|t| if split { tag_list(&t) } else { vec![t] }),
    }
}

fn yaml_entry(node: &Node, file: &Path, problems: &mut Vec<Problem>) -> Option<Draft> {
    let YamlDataOwned::Mapping(map) = &node.data else {
        problems.push(Problem::new(
            file,
            line_of(node),
            "an entry must be a mapping with `id`, `question` and `answer`",
        ));
        return None;
    };
    let mut d = Draft {
        line: line_of(node),
        ..Draft::default()
    };
    for (k, v) in map.iter() {
        let key = text(k).unwrap_or_default();
        let bad = |what: &str| Problem::new(file, line_of(v), format!("`{key}` must be {what}"));
        match key.as_str() {
            "id" => {
                d.id = Some(
                    text(v)
                        .ok_or_else(|| bad("text or a number"))
                        .map_err(|p| problems.push(p))
                        .ok()?,
                )
            }
            "question" => {
                d.question = text(v).or_else(|| {
                    problems.push(bad("text"));
                    None
                })
            }
            "answer" => {
                d.answer = text(v).or_else(|| {
                    problems.push(bad("text"));
                    None
                })
            }
            "phrasings" | "also" | "alternatives" => match texts(v, false) {
                Some(t) => d.phrasings = t,
                None => problems.push(bad("a list of texts")),
            },
            "tags" => match texts(v, true) {
                Some(t) => d.tags = t.into_iter().map(|t| t.to_lowercase()).collect(),
                None => problems.push(bad("a list of tags")),
            },
            "lang" => match text(v).as_deref().and_then(Lang::parse) {
                Some(l) => d.lang = Some(l),
                None => problems.push(bad("`zh` or `en`")),
            },
            other => problems.push(Problem::new(
                file,
                line_of(k),
                format!(
                    "unknown key `{other}` (expected id, question, phrasings, answer, tags, lang)"
                ),
            )),
        }
    }
    Some(d)
}

/// Parses a YAML knowledge-base file.
pub(crate) fn parse_yaml(src: &str, file: &Path, mut defaults: FileDefaults) -> Parsed {
    let mut problems = Vec::new();
    let docs = match Node::load_from_str(src) {
        Ok(d) => d,
        Err(e) => {
            let line = e.marker().line();
            return (
                Vec::new(),
                vec![Problem::new(
                    file,
                    line,
                    format!("YAML syntax: {}", e.info()),
                )],
            );
        }
    };
    let Some(doc) = docs.into_iter().next() else {
        return (Vec::new(), Vec::new());
    };
    let list: Vec<Node> = match doc.data {
        YamlDataOwned::Sequence(items) => items,
        YamlDataOwned::Mapping(map) => {
            let mut list = Vec::new();
            for (k, v) in map {
                let key = text(&k).unwrap_or_default();
                match key.as_str() {
                    "entries" => match v.data {
                        YamlDataOwned::Sequence(items) => list = items,
                        _ => problems.push(Problem::new(
                            file,
                            line_of(&v),
                            "`entries` must be a list",
                        )),
                    },
                    "lang" => match text(&v).as_deref().and_then(Lang::parse) {
                        Some(l) => defaults.lang = Some(l),
                        None => problems.push(Problem::new(
                            file,
                            line_of(&v),
                            "`lang` must be `zh` or `en`",
                        )),
                    },
                    "tags" => match texts(&v, true) {
                        Some(t) => {
                            defaults.tags = t.into_iter().map(|t| t.to_lowercase()).collect()
                        }
                        None => problems.push(Problem::new(
                            file,
                            line_of(&v),
                            "`tags` must be a list of tags",
                        )),
                    },
                    other => problems.push(Problem::new(
                        file,
                        line_of(&k),
                        format!("unknown key `{other}` (expected entries, lang, tags)"),
                    )),
                }
            }
            list
        }
        YamlDataOwned::Value(ScalarOwned::Null) => Vec::new(),
        _ => {
            problems.push(Problem::new(
                file,
                line_of(&doc),
                "expected a list of entries or a mapping with `entries`",
            ));
            Vec::new()
        }
    };
    let drafts = list
        .iter()
        .filter_map(|n| yaml_entry(n, file, &mut problems))
        .collect();
    collect(drafts, file, &defaults, true, problems)
}

// ---------------------------------------------------------------- CSV

/// Parses a CSV knowledge-base file with a header row.
pub(crate) fn parse_csv(src: &str, file: &Path, defaults: FileDefaults) -> Parsed {
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(src.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_lowercase()).collect(),
        Err(e) => {
            return (
                Vec::new(),
                vec![Problem::new(file, 1, format!("CSV header: {e}"))],
            );
        }
    };
    for h in &headers {
        if !matches!(
            h.as_str(),
            "id" | "question" | "phrasings" | "answer" | "tags" | "lang"
        ) {
            problems.push(Problem::new(
                file,
                1,
                format!(
                    "unknown column `{h}` (expected id, question, phrasings, answer, tags, lang)"
                ),
            ));
        }
    }
    let mut drafts = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e
                    .position()
                    .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
                problems.push(Problem::new(file, line, format!("CSV: {e}")));
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
        let mut d = Draft {
            line,
            ..Draft::default()
        };
        for (h, v) in headers.iter().zip(record.iter()) {
            match h.as_str() {
                "id" => d.id = Some(v.to_owned()),
                "question" => d.question = Some(v.to_owned()),
                "answer" => d.answer = Some(v.to_owned()),
                "phrasings" => d.phrasings = split_list(v, &['|', '\n']),
                "tags" => d.tags = tag_list(v),
                "lang" if !v.trim().is_empty() => match Lang::parse(v) {
                    Some(l) => d.lang = Some(l),
                    None => problems.push(Problem::new(
                        file,
                        line,
                        format!("lang `{v}` must be `zh` or `en`"),
                    )),
                },
                _ => {}
            }
        }
        drafts.push(d);
    }
    collect(drafts, file, &defaults, true, problems)
}

// ---------------------------------------------------------------- Markdown

/// A metadata line right after a question heading: `id: x`, `tags: a, b`, `also: ...`.
fn meta(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once([':', '：'])?;
    let k = k.trim().trim_start_matches(['-', '*']).trim();
    matches!(k, "id" | "tags" | "also" | "lang").then(|| (k, v.trim()))
}

/// Parses a Markdown FAQ.
pub(crate) fn parse_markdown(src: &str, file: &Path, defaults: FileDefaults) -> Parsed {
    let mut problems = Vec::new();
    let mut drafts: Vec<Draft> = Vec::new();
    // Whether we are still in the metadata block right after the heading.
    let mut in_meta = false;
    let mut answer = String::new();
    let mut in_fence = false;
    for (i, line) in src.lines().enumerate() {
        let n = i + 1;
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && let Some(q) = line.strip_prefix("## ") {
            if let Some(d) = drafts.last_mut() {
                d.answer = Some(std::mem::take(&mut answer));
            }
            drafts.push(Draft {
                line: n,
                question: Some(q.trim().to_owned()),
                ..Draft::default()
            });
            in_meta = true;
            continue;
        }
        let Some(d) = drafts.last_mut() else {
            continue; // Text before the first question (a title, an introduction).
        };
        if in_meta && !in_fence {
            if line.trim().is_empty()
                && d.id.is_none()
                && d.phrasings.is_empty()
                && d.tags.is_empty()
            {
                continue;
            }
            if let Some((k, v)) = meta(line) {
                match k {
                    "id" => d.id = Some(v.to_owned()),
                    "tags" => d.tags = tag_list(v),
                    "also" => d.phrasings.push(v.to_owned()),
                    _ => match Lang::parse(v) {
                        Some(l) => d.lang = Some(l),
                        None => problems.push(Problem::new(
                            file,
                            n,
                            format!("lang `{v}` must be `zh` or `en`"),
                        )),
                    },
                }
                continue;
            }
            in_meta = false;
        }
        answer.push_str(line);
        answer.push('\n');
    }
    if let Some(d) = drafts.last_mut() {
        d.answer = Some(answer);
    }
    collect(drafts, file, &defaults, true, problems)
}

// ---------------------------------------------------------------- JSONL

fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_field<'a>(obj: &'a serde_json::Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| obj.get(*n).filter(|v| !v.is_null()))
}

/// Parses a JSONL knowledge base (the eval format). Answers are optional here: an eval set
/// may carry questions only.
pub(crate) fn parse_jsonl(src: &str, file: &Path, defaults: FileDefaults) -> Parsed {
    let mut problems = Vec::new();
    let mut drafts = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let obj = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                problems.push(Problem::new(file, n, "expected a JSON object"));
                continue;
            }
            Err(e) => {
                problems.push(Problem::new(file, n, format!("JSON: {e}")));
                continue;
            }
        };
        let list = |names: &[&str], split: fn(&str) -> Vec<String>| -> Vec<String> {
            match json_field(&obj, names) {
                Some(Value::Array(a)) => a.iter().filter_map(json_text).collect(),
                Some(v) => json_text(v).map(|s| split(&s)).unwrap_or_default(),
                None => Vec::new(),
            }
        };
        let d = Draft {
            line: n,
            id: Some(
                json_field(&obj, &["id", "_id", "qid", "faq_id"])
                    .and_then(json_text)
                    .unwrap_or_else(|| n.to_string()),
            ),
            question: json_field(&obj, &["question", "title", "q"]).and_then(json_text),
            answer: json_field(&obj, &["answer", "body", "a"]).and_then(json_text),
            phrasings: list(&["phrasings", "paraphrases", "alternatives"], |s| {
                vec![s.to_owned()]
            }),
            tags: list(&["tags"], tag_list),
            lang: json_field(&obj, &["lang", "language"])
                .and_then(json_text)
                .as_deref()
                .and_then(Lang::parse),
        };
        drafts.push(d);
    }
    collect(drafts, file, &defaults, false, problems)
}
