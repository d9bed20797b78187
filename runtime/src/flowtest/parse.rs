//! Reading conversation test files (`DIR/tests/*.yaml`) into [`TestFile`]s.
//!
//! The files are walked as saphyr's position-carrying YAML tree (not through serde) because
//! every expectation keeps the `line:col` it was written at: a failing test points at the
//! exact `bot_contains:` that failed, and a malformed file gets `file:line:col: message` with
//! a hint, like `kefu check`. Every problem in a file is collected, not just the first.

use std::path::{Path, PathBuf};

use kefu_flows::{Diagnostic, Lang, Pos, Severity};
use regex::Regex;
use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use super::{Check, Expectation, TestCase, TestFile, TestTurn};

type Node = MarkedYamlOwned;

/// Keys a test may have.
pub const TEST_KEYS: &[&str] = &["name", "user", "channel", "lang", "tags", "turns"];

/// Keys a turn may have: `user` (the message) and the expectations.
pub const TURN_KEYS: &[&str] = &[
    "user",
    "bot",
    "bot_contains",
    "bot_not_contains",
    "bot_matches",
    "slots",
    "flow",
    "handoff",
    "intent",
    "lang",
    "ended",
];

/// The channel a test runs on when it names none.
pub const DEFAULT_CHANNEL: &str = "web";

/// Collects diagnostics for one file.
struct Reader<'a> {
    file: &'a Path,
    diags: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            severity: Severity::Error,
            message: message.into(),
            hint,
        });
    }
}

/// Position of the first character of `node`, 1-based (saphyr's columns are 0-based).
fn pos(node: &Node) -> Pos {
    Pos {
        line: u32::try_from(node.span.start.line()).unwrap_or(u32::MAX),
        col: u32::try_from(node.span.start.col().saturating_add(1)).unwrap_or(u32::MAX),
    }
}

fn entries(node: &Node) -> Option<Vec<(&Node, &Node)>> {
    match &node.data {
        YamlDataOwned::Mapping(m) => Some(m.iter().collect()),
        _ => None,
    }
}

fn items(node: &Node) -> Option<&[Node]> {
    match &node.data {
        YamlDataOwned::Sequence(s) => Some(s.as_slice()),
        _ => None,
    }
}

fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

/// A scalar as text: a designer writing `user: 88` means the message "88".
fn scalar_text(node: &Node) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
        YamlDataOwned::Representation(s, _, _) => Some(s.clone()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.to_string()),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// A scalar as the typed JSON value a slot would hold.
fn scalar_json(node: &Node) -> Option<serde_json::Value> {
    use serde_json::Value;
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => Some(Value::Null),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(Value::Bool(*b)),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(Value::from(*i)),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => {
            serde_json::Number::from_f64(f.into_inner()).map(Value::Number)
        }
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(Value::String(s.clone())),
        YamlDataOwned::Representation(s, _, _) => Some(Value::String(s.clone())),
        _ => None,
    }
}

fn as_bool(node: &Node) -> Option<bool> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
        _ => None,
    }
}

fn kind_name(node: &Node) -> &'static str {
    match &node.data {
        YamlDataOwned::Mapping(_) => "a mapping",
        YamlDataOwned::Sequence(_) => "a list",
        YamlDataOwned::Value(ScalarOwned::Null) => "nothing",
        YamlDataOwned::Value(ScalarOwned::Boolean(_)) => "a boolean",
        YamlDataOwned::Value(_) | YamlDataOwned::Representation(..) => "a scalar",
        _ => "an unsupported value",
    }
}

/// A hint naming the closest allowed key, or listing them all.
fn key_hint(got: &str, allowed: &[&str]) -> String {
    let close = allowed
        .iter()
        .map(|k| (edit_distance(got, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(2));
    match close {
        Some((_, k)) => format!("did you mean `{k}`?"),
        None => format!("allowed keys: {}", allowed.join(", ")),
    }
}

/// Levenshtein distance over characters (keys are short).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

/// Reads every `*.yaml`/`*.yml` file directly in `tests_dir`, sorted by name.
///
/// A missing directory is no error here (the caller decides whether "no tests" is one).
pub fn load_dir(tests_dir: &Path) -> Result<Vec<TestFile>, Vec<Diagnostic>> {
    let io = |file: &Path, message: String| Diagnostic {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
        severity: Severity::Error,
        message,
        hint: None,
    };
    if !tests_dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    let listing = std::fs::read_dir(tests_dir).map_err(|e| {
        vec![io(
            tests_dir,
            format!("cannot read the tests directory: {e}"),
        )]
    })?;
    for entry in listing {
        let entry =
            entry.map_err(|e| vec![io(tests_dir, format!("cannot list the tests: {e}"))])?;
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(src) => match parse_file(&path, &src) {
                Ok(f) => files.push(f),
                Err(mut d) => diags.append(&mut d),
            },
            Err(e) => diags.push(io(&path, format!("cannot read the file: {e}"))),
        }
    }
    if diags.is_empty() {
        Ok(files)
    } else {
        Err(diags)
    }
}

/// Parses one test file; `path` is used for positions in results and diagnostics.
///
/// The file is a mapping with one key, `tests`, holding a list of tests.
pub fn parse_file(path: &Path, src: &str) -> Result<TestFile, Vec<Diagnostic>> {
    let mut r = Reader {
        file: path,
        diags: Vec::new(),
    };
    let docs = match Node::load_from_str(src) {
        Ok(d) => d,
        Err(e) => {
            let m = e.marker();
            r.error(
                Pos {
                    line: u32::try_from(m.line()).unwrap_or(u32::MAX),
                    col: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
                },
                format!("YAML syntax error: {}", e.info()),
                Some(
                    "check the indentation and quote texts that contain `: ` or start with `{`"
                        .into(),
                ),
            );
            return Err(r.diags);
        }
    };
    let mut cases = Vec::new();
    match docs.first() {
        None => {}
        Some(doc) if is_null(doc) => {}
        Some(doc) => match entries(doc) {
            None => r.error(
                pos(doc),
                format!(
                    "a test file is a mapping with a `tests:` list, found {}",
                    kind_name(doc)
                ),
                Some("start the file with `tests:` and list the tests under it".into()),
            ),
            Some(top) => {
                for (k, v) in top {
                    match scalar_text(k).as_deref() {
                        Some("tests") => read_tests(&mut r, v, &mut cases),
                        Some(other) => r.error(
                            pos(k),
                            format!("unknown key `{other}` in a test file"),
                            Some("a test file has one key, `tests`".into()),
                        ),
                        None => r.error(pos(k), "keys must be text", None),
                    }
                }
            }
        },
    }
    if docs.len() > 1 {
        r.error(
            pos(&docs[1]),
            "a test file holds one YAML document; found a second one",
            Some("remove the `---` or move the tests into another file".into()),
        );
    }
    if r.diags.is_empty() {
        Ok(TestFile {
            path: path.to_path_buf(),
            cases,
        })
    } else {
        Err(r.diags)
    }
}

fn read_tests(r: &mut Reader<'_>, node: &Node, out: &mut Vec<TestCase>) {
    let Some(list) = items(node) else {
        r.error(
            pos(node),
            format!("`tests` must be a list of tests, found {}", kind_name(node)),
            Some("write each test as `- name: ...` with its `turns:`".into()),
        );
        return;
    };
    for item in list {
        if let Some(case) = read_test(r, item) {
            if let Some(first) = out.iter().find(|c| c.name == case.name) {
                let (line, col) = (first.pos.line, first.pos.col);
                r.error(
                    case.pos,
                    format!("test `{}` is defined twice in this file", case.name),
                    Some(format!(
                        "first defined at {}:{line}:{col}; give each test its own name",
                        r.file.display()
                    )),
                );
            } else {
                out.push(case);
            }
        }
    }
}

fn read_test(r: &mut Reader<'_>, node: &Node) -> Option<TestCase> {
    let Some(fields) = entries(node) else {
        r.error(
            pos(node),
            format!("a test must be a mapping, found {}", kind_name(node)),
            Some(
                "a test has `name:` and `turns:` (and optionally `user:`, `channel:`, `lang:`, `tags:`)"
                    .into(),
            ),
        );
        return None;
    };
    let mut name = None;
    let mut user = None;
    let mut channel = None;
    let mut lang = None;
    let mut tags = Vec::new();
    let mut turns = None;
    let before = r.diags.len();
    for (k, v) in fields {
        let key = scalar_text(k).unwrap_or_default();
        match key.as_str() {
            "name" | "user" | "channel" => match scalar_text(v).filter(|s| !s.trim().is_empty()) {
                Some(s) => match key.as_str() {
                    "name" => name = Some(s),
                    "user" => user = Some(s),
                    _ => channel = Some(s),
                },
                None => r.error(pos(v), format!("`{key}` must be non-empty text"), None),
            },
            "lang" => lang = read_lang(r, v),
            "tags" => tags = read_tags(r, v),
            "turns" => turns = Some(read_turns(r, v)),
            _ => r.error(
                pos(k),
                format!("unknown key `{key}` in a test"),
                Some(key_hint(&key, TEST_KEYS)),
            ),
        }
    }
    let Some(name) = name else {
        r.error(
            pos(node),
            "a test needs a `name`",
            Some("add `name: what this test shows`".into()),
        );
        return None;
    };
    let turns = match turns {
        Some(t) if !t.is_empty() => t,
        Some(_) => {
            if r.diags.len() == before {
                r.error(
                    pos(node),
                    format!("test `{name}` has no turns"),
                    Some("add at least one `- user: ...` turn".into()),
                );
            }
            return None;
        }
        None => {
            r.error(
                pos(node),
                format!("test `{name}` has no `turns`"),
                Some("add `turns:` with `- user: ...` items".into()),
            );
            return None;
        }
    };
    (r.diags.len() == before).then(|| TestCase {
        user: user.unwrap_or_else(|| format!("test-{}", slug(&name))),
        channel: channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned()),
        name,
        file: r.file.to_path_buf(),
        pos: pos(node),
        lang,
        tags,
        turns,
    })
}

/// `tags: [vip]`: the user's tags, as an operator's CRM would send them with each message.
fn read_tags(r: &mut Reader<'_>, v: &Node) -> Vec<String> {
    let Some(list) = items(v) else {
        r.error(
            pos(v),
            "`tags` must be a list",
            Some("write `tags: [vip]`".into()),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list {
        // The same alphabet the API accepts, so a test never relies on a tag the API refuses.
        match scalar_text(item) {
            Some(t)
                if (1..=32).contains(&t.len())
                    && t.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    }) =>
            {
                out.push(t)
            }
            _ => r.error(
                pos(item),
                "a tag is 1 to 32 characters of a-z, 0-9, `_` and `-`",
                Some("write tags in lowercase, e.g. `tags: [vip]`".into()),
            ),
        }
    }
    out
}

/// A user id derived from a test name, so each test's user is distinct and stable.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect()
}

fn read_lang(r: &mut Reader<'_>, v: &Node) -> Option<Lang> {
    let text = scalar_text(v).unwrap_or_default();
    let lang = Lang::from_code(&text);
    if lang.is_none() {
        r.error(
            pos(v),
            format!("unknown language `{text}`"),
            Some("use `zh` or `en`".into()),
        );
    }
    lang
}

fn read_turns(r: &mut Reader<'_>, node: &Node) -> Vec<TestTurn> {
    let Some(list) = items(node) else {
        r.error(
            pos(node),
            format!("`turns` must be a list, found {}", kind_name(node)),
            Some("write each turn as `- user: message` followed by expectations".into()),
        );
        return Vec::new();
    };
    list.iter().filter_map(|t| read_turn(r, t)).collect()
}

fn read_turn(r: &mut Reader<'_>, node: &Node) -> Option<TestTurn> {
    let Some(fields) = entries(node) else {
        r.error(
            pos(node),
            format!("a turn must be a mapping, found {}", kind_name(node)),
            Some("write `- user: message` and the expectations as keys of the same item".into()),
        );
        return None;
    };
    let mut text = None;
    let mut expects = Vec::new();
    for (k, v) in fields {
        let key = scalar_text(k).unwrap_or_default();
        let at = pos(k);
        let mut push = |check| expects.push(Expectation { pos: at, check });
        match key.as_str() {
            "user" => match scalar_text(v) {
                Some(s) => text = Some(s),
                None => r.error(
                    pos(v),
                    format!("`user` must be the message text, found {}", kind_name(v)),
                    None,
                ),
            },
            "bot" => match texts(v) {
                Some(t) => push(Check::Bot(t.join("\n"))),
                None => r.error(
                    pos(v),
                    "`bot` must be a text or a list of texts (one per reply)",
                    None,
                ),
            },
            "bot_contains" | "bot_not_contains" => match texts(v) {
                Some(list) => {
                    for t in list {
                        push(if key == "bot_contains" {
                            Check::BotContains(t)
                        } else {
                            Check::BotNotContains(t)
                        });
                    }
                }
                None => r.error(
                    pos(v),
                    format!("`{key}` must be a text or a list of texts"),
                    None,
                ),
            },
            "bot_matches" => match scalar_text(v).map(|p| Regex::new(&p)) {
                Some(Ok(re)) => push(Check::BotMatches(re)),
                Some(Err(e)) => r.error(
                    pos(v),
                    format!("invalid regex: {e}"),
                    Some(
                        "the syntax is Rust's regex crate; quote the pattern with single quotes"
                            .into(),
                    ),
                ),
                None => r.error(pos(v), "`bot_matches` must be a regex text", None),
            },
            "slots" => {
                match entries(v) {
                    Some(slots) => {
                        for (sk, sv) in slots {
                            match (scalar_text(sk), scalar_json(sv)) {
                            (Some(name), Some(value)) => expects.push(Expectation {
                                pos: pos(sk),
                                check: Check::Slot { name, value },
                            }),
                            _ => r.error(pos(sk), "each slot expectation is `name: value` (`null` for an empty slot)", None),
                        }
                        }
                    }
                    None => r.error(
                        pos(v),
                        format!(
                            "`slots` must be a mapping of slot names to values, found {}",
                            kind_name(v)
                        ),
                        None,
                    ),
                }
            }
            "flow" | "intent" => {
                let value = if is_null(v) {
                    Some(None)
                } else {
                    scalar_text(v).map(Some)
                };
                match value {
                    Some(name) => push(if key == "flow" {
                        Check::Flow(name)
                    } else {
                        Check::Intent(name)
                    }),
                    None => r.error(pos(v), format!("`{key}` must be a name or `null`"), None),
                }
            }
            "handoff" | "ended" => match as_bool(v) {
                Some(b) => push(if key == "handoff" {
                    Check::Handoff(b)
                } else {
                    Check::Ended(b)
                }),
                None => r.error(pos(v), format!("`{key}` must be `true` or `false`"), None),
            },
            "lang" => {
                if let Some(lang) = read_lang(r, v) {
                    expects.push(Expectation {
                        pos: at,
                        check: Check::Lang(lang),
                    });
                }
            }
            _ => r.error(
                at,
                format!("unknown key `{key}` in a turn"),
                Some(key_hint(&key, TURN_KEYS)),
            ),
        }
    }
    match text {
        Some(text) => Some(TestTurn {
            text,
            pos: pos(node),
            expects,
        }),
        None => {
            r.error(
                pos(node),
                "a turn needs `user:`, the message the user sends",
                None,
            );
            None
        }
    }
}

/// A text or a list of texts.
fn texts(node: &Node) -> Option<Vec<String>> {
    match items(node) {
        Some(list) => list.iter().map(scalar_text).collect(),
        None => scalar_text(node).map(|t| vec![t]),
    }
}
