//! Conversation tests for bots (`kefu test DIR`): YAML files in `DIR/tests/` that say what the
//! user sends and what the bot must answer, run through the production engine
//! ([`FlowEngine::step`]: the same understanding and interpreter as `kefu serve`) without a
//! server.
//!
//! ```yaml
//! tests:
//!   - name: order status asks for the number, then reports
//!     lang: en                      # optional: the conversation's language so far
//!     tags: [vip]                   # optional: the user's tags, as the API's `tags` carries them
//!     turns:
//!       - user: where is my order
//!         intent: order_status
//!         flow: order_status
//!         bot_contains: order number
//!       - user: A12345678
//!         slots: {order_id: A12345678}
//!         flow: null
//! ```
//!
//! Invariants: every test starts from an empty session; a test stops at its first failing
//! turn (later turns would only report the same divergence again) but every expectation of
//! that turn is checked; every failure carries the `file:line:col` of its expectation; names
//! in expectations (slots, flows, intents) are checked against the bot before anything runs,
//! so a typo is a file error, not a confusing failure.

mod parse;
mod report;

use std::path::{Path, PathBuf};

use kefu_actors::engine::{EngineLoadError, EngineState, FlowEngine, TurnMeta, TurnReport};
use kefu_flows::{Bot, Diagnostic, Lang, Pos, Severity};
use regex::Regex;

pub use parse::{DEFAULT_CHANNEL, TEST_KEYS, TURN_KEYS, load_dir, parse_file};
pub use report::render_failure;

/// The folder of a bot directory that holds its conversation tests.
pub const TESTS_DIR: &str = "tests";

/// One test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its tests, in file order.
    pub cases: Vec<TestCase>,
}

/// One conversation test.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// Its name, unique within the file.
    pub name: String,
    /// The file it is in.
    pub file: PathBuf,
    /// Where the test starts in the file.
    pub pos: Pos,
    /// The user id of the conversation (default: derived from the name).
    pub user: String,
    /// The channel the messages come through (default: `web`).
    pub channel: String,
    /// The conversation's language before the first message: used for messages that show
    /// none (default: the bot's default language).
    pub lang: Option<Lang>,
    /// The user's tags (`vip`, ...), sent with every message as the API's `tags` would.
    pub tags: Vec<String>,
    /// The messages and what the bot must do after each.
    pub turns: Vec<TestTurn>,
}

/// One user message and the expectations on the bot's answer.
#[derive(Debug, Clone)]
pub struct TestTurn {
    /// What the user sends.
    pub text: String,
    /// Where the turn starts in the file.
    pub pos: Pos,
    /// What must hold after the turn.
    pub expects: Vec<Expectation>,
}

/// One expectation and where it was written.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Position of its key.
    pub pos: Pos,
    /// What is checked.
    pub check: Check,
}

/// What an expectation checks. Replies of one turn are joined with `\n` for the text checks.
#[derive(Debug, Clone)]
pub enum Check {
    /// `bot:` the replies are exactly this text (a list in the file: one item per reply).
    Bot(String),
    /// `bot_contains:` the replies contain this text.
    BotContains(String),
    /// `bot_not_contains:` the replies do not contain this text.
    BotNotContains(String),
    /// `bot_matches:` the regex matches somewhere in the replies.
    BotMatches(Regex),
    /// `slots: {name: value}`: the slot holds this value (`null`: the slot is empty).
    Slot {
        /// The slot.
        name: String,
        /// Its expected typed value.
        value: serde_json::Value,
    },
    /// `flow:` the active flow after the turn (`None`: no flow running).
    Flow(Option<String>),
    /// `handoff:` whether the turn handed the conversation to a human.
    Handoff(bool),
    /// `intent:` the understood intent (`None`: out of scope).
    Intent(Option<String>),
    /// `lang:` the language the message was understood in.
    Lang(Lang),
    /// `ended:` whether the turn ended the conversation.
    Ended(bool),
}

impl Check {
    /// The key it is written with.
    pub fn key(&self) -> &'static str {
        match self {
            Check::Bot(_) => "bot",
            Check::BotContains(_) => "bot_contains",
            Check::BotNotContains(_) => "bot_not_contains",
            Check::BotMatches(_) => "bot_matches",
            Check::Slot { .. } => "slots",
            Check::Flow(_) => "flow",
            Check::Handoff(_) => "handoff",
            Check::Intent(_) => "intent",
            Check::Lang(_) => "lang",
            Check::Ended(_) => "ended",
        }
    }
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The test file.
    pub file: PathBuf,
    /// Where the expectation is written.
    pub pos: Pos,
    /// 1-based turn number within the test.
    pub turn: usize,
    /// What the user sent on that turn.
    pub user_text: String,
    /// The expectation's key (`bot_contains`, `slots`, ...).
    pub key: &'static str,
    /// What was expected, rendered for people.
    pub expected: String,
    /// What happened, rendered for people.
    pub actual: String,
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The test's name.
    pub name: String,
    /// Its file.
    pub file: PathBuf,
    /// Failed expectations (all of the first failing turn); empty when it passed.
    pub failures: Vec<Failure>,
    /// Turns that were not run because an earlier one failed.
    pub skipped_turns: usize,
}

impl CaseResult {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Every test run, in file and test order.
    pub results: Vec<CaseResult>,
}

impl Summary {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }

    /// Tests that failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// The report people read: one line per test, a diff per failure, then `N passed, N failed`.
    pub fn render(&self) -> String {
        report::render_summary(self)
    }
}

/// Why tests could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum FlowTestError {
    /// The bot does not load (same messages as `kefu check`).
    #[error("{0}")]
    Bot(#[from] EngineLoadError),
    /// Test files are malformed or name things the bot does not have.
    #[error("{}", render_diags(.0))]
    Files(Vec<Diagnostic>),
    /// The built-in skills could not start (the demo order back-end, tickets).
    #[error("the built-in skills could not start: {0}")]
    Skills(String),
    /// There is nothing to run.
    #[error("no conversation tests in {dir}{}\n  hint: {hint}", filter.as_deref().map(|f| format!(" matching `{f}`")).unwrap_or_default())]
    NoTests {
        /// The tests directory looked at.
        dir: PathBuf,
        /// The `--name` filter, if any.
        filter: Option<String>,
        /// What to do.
        hint: &'static str,
    },
}

fn render_diags(diags: &[Diagnostic]) -> String {
    let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
    format!(
        "{}\n{} error(s) in test files",
        lines.join("\n"),
        diags.len()
    )
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only tests whose name contains this text (case-insensitive).
    pub name_filter: Option<String>,
}

/// Loads the bot in `bot_dir` and its tests in `bot_dir/tests/`, and runs the tests.
///
/// The bot runs with the built-in skills, as under `kefu serve`: `orders` against the demo
/// order back-end (a real loopback HTTP service), tickets in memory, so every test starts from
/// the same data.
pub fn run_dir(bot_dir: &Path, options: &RunOptions) -> Result<Summary, FlowTestError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| FlowTestError::Skills(e.to_string()))?;
    rt.block_on(run_dir_async(bot_dir, options))
}

async fn run_dir_async(bot_dir: &Path, options: &RunOptions) -> Result<Summary, FlowTestError> {
    let tickets: std::sync::Arc<dyn kefu_tickets::TicketStore> =
        std::sync::Arc::new(kefu_tickets::MemoryTicketStore::new());
    let mut builtins = crate::builtin::builtin_skills(bot_dir, tickets, None)
        .await
        .map_err(|e| FlowTestError::Skills(e.to_string()))?;
    let host = std::sync::Arc::new(std::mem::take(&mut builtins.host));
    host.start()
        .await
        .map_err(|e| FlowTestError::Skills(e.to_string()))?;
    let engine = FlowEngine::load(bot_dir)?.with_skills(host.clone());
    let result = run_loaded(&engine, bot_dir, options).await;
    host.shutdown().await;
    drop(builtins);
    result
}

async fn run_loaded(
    engine: &FlowEngine,
    bot_dir: &Path,
    options: &RunOptions,
) -> Result<Summary, FlowTestError> {
    let tests_dir = bot_dir.join(TESTS_DIR);
    let files = load_dir(&tests_dir).map_err(FlowTestError::Files)?;
    let problems = check_names(&engine.current().bot, &files);
    if !problems.is_empty() {
        return Err(FlowTestError::Files(problems));
    }
    let summary = run_files(engine, &files, options).await;
    if summary.results.is_empty() {
        return Err(FlowTestError::NoTests {
            dir: tests_dir,
            filter: options.name_filter.clone(),
            hint: if options.name_filter.is_some() {
                "check the --name pattern; it matches part of a test's name, ignoring case"
            } else {
                "add YAML files with a `tests:` list to the bot's tests/ folder (see docs/designer-tools.md)"
            },
        });
    }
    Ok(summary)
}

/// Runs the tests of `files` (those passing the filter) on `engine`.
pub async fn run_files(engine: &FlowEngine, files: &[TestFile], options: &RunOptions) -> Summary {
    let filter = options.name_filter.as_deref().map(str::to_lowercase);
    let mut results = Vec::new();
    for case in files.iter().flat_map(|f| &f.cases).filter(|c| {
        filter
            .as_deref()
            .is_none_or(|f| c.name.to_lowercase().contains(f))
    }) {
        results.push(run_case(engine, case).await);
    }
    Summary { results }
}

/// Runs one test from an empty session.
pub async fn run_case(engine: &FlowEngine, case: &TestCase) -> CaseResult {
    let mut state = EngineState {
        lang: case.lang.map(|l| l.as_str().to_owned()),
        ..EngineState::default()
    };
    let session = format!("test:{}", case.name);
    for (i, turn) in case.turns.iter().enumerate() {
        let meta = TurnMeta {
            user: &case.user,
            session: &session,
            channel: &case.channel,
            tags: &case.tags,
            ..TurnMeta::default()
        };
        let report = engine.step(&mut state, &turn.text, &meta).await;
        let failures: Vec<Failure> = turn
            .expects
            .iter()
            .filter_map(|e| {
                check(e, &report, &state).map(|(expected, actual)| Failure {
                    file: case.file.clone(),
                    pos: e.pos,
                    turn: i + 1,
                    user_text: turn.text.clone(),
                    key: e.check.key(),
                    expected,
                    actual,
                })
            })
            .collect();
        if !failures.is_empty() {
            return CaseResult {
                name: case.name.clone(),
                file: case.file.clone(),
                failures,
                skipped_turns: case.turns.len() - i - 1,
            };
        }
    }
    CaseResult {
        name: case.name.clone(),
        file: case.file.clone(),
        failures: Vec::new(),
        skipped_turns: 0,
    }
}

/// The replies of a turn as one text.
pub fn reply_text(report: &TurnReport) -> String {
    report
        .handled
        .replies
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `None` when the expectation holds, else `(expected, actual)` for the report.
fn check(e: &Expectation, report: &TurnReport, state: &EngineState) -> Option<(String, String)> {
    let text = reply_text(report);
    let quoted = |s: &str| format!("{s:?}");
    let name_or_none = |n: &Option<String>| n.clone().unwrap_or_else(|| "null".to_owned());
    let nlu = report.handled.nlu.as_ref();
    match &e.check {
        Check::Bot(want) => (text != *want).then(|| (want.clone(), text.clone())),
        Check::BotContains(want) => (!text.contains(want.as_str())).then(|| {
            (
                format!("a reply containing {}", quoted(want)),
                quoted(&text),
            )
        }),
        Check::BotNotContains(want) => text.contains(want.as_str()).then(|| {
            (
                format!("no reply containing {}", quoted(want)),
                quoted(&text),
            )
        }),
        Check::BotMatches(re) => (!re.is_match(&text))
            .then(|| (format!("a reply matching /{}/", re.as_str()), quoted(&text))),
        Check::Slot { name, value } => {
            let got = state
                .dialog
                .slot(name)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            (got != *value).then(|| {
                (
                    format!("slot `{name}` = {value}"),
                    format!("slot `{name}` = {got}"),
                )
            })
        }
        Check::Flow(want) => (report.handled.active_flow != *want).then(|| {
            (
                format!("active flow {}", name_or_none(want)),
                format!("active flow {}", name_or_none(&report.handled.active_flow)),
            )
        }),
        Check::Handoff(want) => (report.handoff.is_some() != *want).then(|| {
            let actual = match &report.handoff {
                Some(reason) => format!("handed off ({reason})"),
                None => "no handoff".to_owned(),
            };
            (
                if *want { "a handoff" } else { "no handoff" }.to_owned(),
                actual,
            )
        }),
        Check::Intent(want) => {
            let got = nlu.and_then(|n| n.intent.clone());
            (got != *want).then(|| {
                let confidence = nlu.map(|n| n.confidence).unwrap_or_default();
                (
                    format!("intent {}", name_or_none(want)),
                    format!("intent {} (confidence {confidence:.2})", name_or_none(&got)),
                )
            })
        }
        Check::Lang(want) => {
            let got = nlu.map(|n| n.lang.as_str()).unwrap_or("unknown");
            (got != want.as_str()).then(|| {
                (
                    format!("language {}", want.as_str()),
                    format!("language {got}"),
                )
            })
        }
        Check::Ended(want) => (report.ended != *want).then(|| {
            let say = |b: bool| {
                if b {
                    "the conversation ended"
                } else {
                    "the conversation goes on"
                }
            };
            (say(*want).to_owned(), say(report.ended).to_owned())
        }),
    }
}

/// Names used in expectations that the bot does not define, as file errors.
pub fn check_names(bot: &Bot, files: &[TestFile]) -> Vec<Diagnostic> {
    let slots: Vec<&str> = bot.slots().map(|(n, _)| n).collect();
    let flows: Vec<&str> = bot.flows().map(|(n, _)| n).collect();
    let intents: Vec<&str> = bot.intents().map(|(n, _)| n).collect();
    let mut out = Vec::new();
    for file in files {
        for e in file
            .cases
            .iter()
            .flat_map(|c| &c.turns)
            .flat_map(|t| &t.expects)
        {
            let (what, name, known) = match &e.check {
                Check::Slot { name, .. } => ("slot", name, &slots),
                Check::Flow(Some(name)) => ("flow", name, &flows),
                Check::Intent(Some(name)) => ("intent", name, &intents),
                _ => continue,
            };
            if !known.contains(&name.as_str()) {
                let close = known.iter().min_by_key(|k| parse::edit_distance(name, k));
                out.push(Diagnostic {
                    file: file.path.clone(),
                    line: e.pos.line,
                    col: e.pos.col,
                    severity: Severity::Error,
                    message: format!("the bot has no {what} `{name}`"),
                    hint: Some(match close {
                        Some(c)
                            if parse::edit_distance(name, c) <= name.chars().count() / 3 + 1 =>
                        {
                            format!("did you mean `{c}`?")
                        }
                        _ => format!("the bot's {what}s: {}", known.join(", ")),
                    }),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
