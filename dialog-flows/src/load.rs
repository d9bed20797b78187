//! The loader: YAML files -> a validated [`Bot`](crate::Bot), or every problem found.
//!
//! Passes, in order, so that later passes can check references made by earlier ones:
//! 1. parse every file (syntax errors stop only that file) and check top-level keys;
//! 2. `settings` (languages and thresholds used by later checks);
//! 3. `slots`, then `intents` (both only declare names);
//! 4. flow names across all files, then every flow's steps (which may name any slot,
//!    intent, flow or step id, in any file);
//! 5. `responses` and `policies`, then bot-wide checks (unused intents, unreachable
//!    flows and steps, cycles without a user turn, recursive sub-flows).
//!
//! `entities` and `experiments` are read right after `settings`, because slot types may
//! name entities and any text may be A/B-tested.
//!
//! Invariant: the loader never panics on any input and never stops at the first problem;
//! a bot is only built when no error was recorded (warnings are kept on the bot).

/// The intent whose examples are out of scope for the bot: the classifier learns them as a
/// class of their own, and a message classified as it gets the fallback reply. No flow may
/// start on it.
pub const OOS_INTENT: &str = "oos";

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::bot::LoadOptions;
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, did_you_mean};
use crate::entity::{BuiltinEntity, EntityDef, EntityKind};
use crate::model::{
    ExperimentDef, FlowDef, IntentDef, Lang, PolicyDef, Responses, Settings, SlotDef, Text,
};
use crate::template::{CONTEXT_VARS, TemplateError, Templates};
use crate::yaml::{self, Node};

/// Keys a bot file may have at top level. The JSON Schema lists exactly these (tested).
pub const TOP_LEVEL_KEYS: [&str; 8] = [
    "settings",
    "entities",
    "experiments",
    "intents",
    "slots",
    "flows",
    "responses",
    "policies",
];

/// Where a definition was first seen, for "first defined at" hints.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) file: PathBuf,
    pub(crate) pos: Pos,
}

impl Origin {
    pub(crate) fn describe(&self) -> String {
        format!(
            "first defined at {}:{}:{}",
            self.file.display(),
            self.pos.line,
            self.pos.col
        )
    }
}

/// Everything the passes build up; turned into a `Bot` by [`Loader::finish`].
#[derive(Debug, Default)]
pub(crate) struct Loader {
    pub(crate) diags: Diagnostics,
    pub(crate) templates: Templates,
    pub(crate) settings: Settings,
    pub(crate) settings_seen: HashMap<String, Origin>,
    pub(crate) responses_seen: HashMap<String, Origin>,
    pub(crate) responses: BTreeMap<String, Text>,
    pub(crate) slots: BTreeMap<String, SlotDef>,
    pub(crate) slot_origins: HashMap<String, Origin>,
    pub(crate) intents: BTreeMap<String, IntentDef>,
    pub(crate) intent_origins: HashMap<String, Origin>,
    pub(crate) flow_origins: BTreeMap<String, Origin>,
    pub(crate) flows: BTreeMap<String, FlowDef>,
    /// intent -> flow it starts.
    pub(crate) triggers: HashMap<String, String>,
    /// Flows named by some `flow:` or `call_flow:` step (for the unreachable-flow warning).
    pub(crate) flow_targets: std::collections::HashSet<String>,
    pub(crate) entities: BTreeMap<String, EntityDef>,
    pub(crate) entity_origins: HashMap<String, Origin>,
    pub(crate) experiments: BTreeMap<String, ExperimentDef>,
    pub(crate) policies: Vec<PolicyDef>,
    pub(crate) policy_origins: HashMap<String, Origin>,
    /// Flow -> (its file, the position of each of its steps), for the graph checks.
    pub(crate) step_pos: HashMap<String, (PathBuf, Vec<Pos>)>,
    /// `call_flow` steps: (caller, callee, file, position of the callee's name).
    pub(crate) call_edges: Vec<(String, String, PathBuf, Pos)>,
    /// Skills the runtime has (`None`: not checked).
    pub(crate) known_skills: Option<Vec<String>>,
}

/// The pieces of a loaded bot, handed to `Bot` construction.
pub(crate) struct Loaded {
    pub(crate) settings: Settings,
    pub(crate) responses: Responses,
    pub(crate) slots: BTreeMap<String, SlotDef>,
    pub(crate) intents: BTreeMap<String, IntentDef>,
    pub(crate) flows: BTreeMap<String, FlowDef>,
    pub(crate) triggers: HashMap<String, String>,
    pub(crate) templates: Templates,
    pub(crate) policies: Vec<PolicyDef>,
    pub(crate) experiments: BTreeMap<String, ExperimentDef>,
    pub(crate) entities: BTreeMap<String, EntityDef>,
    pub(crate) warnings: Vec<Diagnostic>,
}

/// A parsed file's top-level sections.
struct FileSections {
    file: PathBuf,
    sections: Vec<(String, Node)>,
}

/// Default replies, used when `responses:` leaves one out.
const DEFAULT_RESPONSES: [(&str, &str, &str); 4] = [
    (
        "fallback",
        "抱歉，我没太明白您的意思，可以换个说法吗？",
        "Sorry, I didn't quite get that. Could you rephrase it?",
    ),
    (
        "handoff",
        "正在为您转接人工客服，请稍候。",
        "Let me get a human agent for you, one moment please.",
    ),
    (
        "resume",
        "我们继续刚才的问题。",
        "Let's get back to where we were.",
    ),
    (
        "anything_else",
        "还有什么可以帮您的吗？",
        "Is there anything else I can help you with?",
    ),
];

/// Keys of `responses:` (the JSON Schema lists exactly these; tested).
pub const RESPONSE_KEYS: [&str; 4] = ["fallback", "handoff", "resume", "anything_else"];

/// Loads a bot from `(file name, YAML text)` pairs; the order of `files` is the merge order.
pub(crate) fn load(
    files: &[(PathBuf, String)],
    opts: &LoadOptions,
) -> Result<Loaded, Vec<Diagnostic>> {
    let mut l = Loader {
        known_skills: opts.known_skills.clone(),
        ..Loader::default()
    };
    for b in BuiltinEntity::ALL {
        l.entities.insert(
            b.name().to_string(),
            EntityDef {
                description: None,
                kind: EntityKind::Builtin(b),
            },
        );
    }
    let mut parsed = Vec::new();
    for (file, src) in files {
        match yaml::parse(src) {
            Ok(Some(root)) => parsed.push(l.top_level(file, root)),
            Ok(None) => {}
            Err(e) => l.diags.error(
                file,
                e.pos,
                format!("YAML syntax error: {}", e.message),
                None,
            ),
        }
    }
    let each = |key: &str| -> Vec<(PathBuf, Node)> {
        parsed
            .iter()
            .flat_map(|f| {
                f.sections
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, n)| (f.file.clone(), n.clone()))
            })
            .collect()
    };
    for (file, node) in each("settings") {
        l.settings_section(&file, &node);
    }
    for (file, node) in each("entities") {
        l.entities_section(&file, &node);
    }
    for (file, node) in each("experiments") {
        l.experiments_section(&file, &node);
    }
    for (file, node) in each("slots") {
        l.slots_section(&file, &node);
    }
    for (file, node) in each("intents") {
        l.intents_section(&file, &node);
    }
    let flows = each("flows");
    for (file, node) in &flows {
        l.flow_names(file, node);
    }
    for (file, node) in &flows {
        l.flows_section(file, node);
    }
    for (file, node) in each("responses") {
        l.responses_section(&file, &node);
    }
    for (file, node) in each("policies") {
        l.policies_section(&file, &node);
    }
    l.cross_checks(files.first().map(|(f, _)| f.as_path()));
    l.graph_checks();
    l.finish()
}

impl Loader {
    pub(crate) fn err(
        &mut self,
        file: &Path,
        node: &Node,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diags.error(file, yaml::pos(node), msg, hint);
    }

    fn top_level(&mut self, file: &Path, root: Node) -> FileSections {
        let mut sections = Vec::new();
        for (key, _, v) in self.map(file, &root, "a bot file", Some(&TOP_LEVEL_KEYS)) {
            sections.push((key, v.clone()));
        }
        FileSections {
            file: file.to_path_buf(),
            sections,
        }
    }

    /// The entries of a mapping as `(key text, key node, value node)`.
    ///
    /// Reports a value that is not a mapping, keys that are not text, and — when `allowed`
    /// is given — keys not in it (with a "did you mean" hint); only good entries are returned.
    pub(crate) fn map<'n>(
        &mut self,
        file: &Path,
        node: &'n Node,
        what: &str,
        allowed: Option<&[&str]>,
    ) -> Vec<(String, &'n Node, &'n Node)> {
        let Some(entries) = yaml::entries(node) else {
            if !yaml::is_null(node) {
                self.err(
                    file,
                    node,
                    format!("{what} must be a mapping, found {}", yaml::kind_name(node)),
                    None,
                );
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(key) = yaml::as_str(k) else {
                self.err(
                    file,
                    k,
                    format!("keys in {what} must be text, found {}", yaml::kind_name(k)),
                    None,
                );
                continue;
            };
            if let Some(allowed) = allowed
                && !allowed.contains(&key)
            {
                let hint = did_you_mean(key, allowed.iter().copied())
                    .or_else(|| Some(format!("expected one of: {}", allowed.join(", "))));
                self.err(file, k, format!("unknown key `{key}` in {what}"), hint);
                continue;
            }
            out.push((key.to_string(), k, v));
        }
        out
    }

    /// Checks a definition name (slot, intent, flow, step id): ASCII identifier, because
    /// names appear in templates (`slots.order_id`) and in URLs and metrics labels.
    pub(crate) fn check_name(&mut self, file: &Path, node: &Node, name: &str, what: &str) -> bool {
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            self.err(
                file,
                node,
                format!("invalid {what} name `{name}`"),
                Some(
                    "names use ASCII letters, digits and `_`, and start with a letter or `_`"
                        .into(),
                ),
            );
        }
        ok
    }

    /// A required text scalar.
    pub(crate) fn string(&mut self, file: &Path, node: &Node, what: &str) -> Option<String> {
        match yaml::scalar_text(node) {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.err(file, node, format!("{what} must not be empty"), None);
                None
            }
            None => {
                self.err(
                    file,
                    node,
                    format!("{what} must be text, found {}", yaml::kind_name(node)),
                    None,
                );
                None
            }
        }
    }

    pub(crate) fn template_error(
        &mut self,
        file: &Path,
        node: &Node,
        what: &str,
        e: &TemplateError,
    ) {
        let at = if e.line > 1 {
            format!(" (line {} of the {what})", e.line)
        } else {
            String::new()
        };
        self.err(
            file,
            node,
            format!("invalid {what}: {}{at}", e.message),
            Some("templates use Jinja syntax: {{ slots.name }}, {% if ... %}...{% endif %}".into()),
        );
    }

    /// Reports template variables that are neither context variables nor defined slots.
    pub(crate) fn check_template_vars(&mut self, file: &Path, node: &Node, idx: u32) {
        for var in self.templates.variables(idx) {
            let mut parts = var.split('.');
            let root = parts.next().unwrap_or("");
            if root == "slots" {
                if let Some(slot) = parts.next()
                    && !self.slot_origins.contains_key(slot)
                {
                    let hint = did_you_mean(slot, self.slot_origins.keys().map(String::as_str));
                    let msg = format!("template uses undefined slot `{slot}`");
                    self.err(file, node, msg, hint);
                }
            } else if !CONTEXT_VARS.contains(&root) && !self.templates.is_global(root) {
                let hint = did_you_mean(root, CONTEXT_VARS)
                    .or_else(|| Some(format!("templates can use {}", CONTEXT_VARS.join(", "))));
                self.err(
                    file,
                    node,
                    format!("template uses unknown variable `{root}`"),
                    hint,
                );
            }
        }
    }

    fn cross_checks(&mut self, first_file: Option<&Path>) {
        let Some(first_file) = first_file else {
            self.diags.error(
                Path::new("."),
                Pos { line: 1, col: 1 },
                "the bot has no files",
                None,
            );
            return;
        };
        if self.flows.is_empty() && self.flow_origins.is_empty() && !self.diags.has_errors() {
            self.diags.error(
                first_file,
                Pos { line: 1, col: 1 },
                "the bot defines no flows",
                Some("add a `flows:` section; see the language reference".into()),
            );
        }
        let unused: Vec<String> = self
            .intents
            .keys()
            // `oos` holds out-of-scope examples: it is meant to start nothing.
            .filter(|i| !self.triggers.contains_key(*i) && i.as_str() != OOS_INTENT)
            .cloned()
            .collect();
        for intent in unused {
            if let Some(o) = self.intent_origins.get(&intent).cloned() {
                self.diags.warning(
                    &o.file,
                    o.pos,
                    format!("intent `{intent}` starts no flow"),
                    Some("messages classified as it get the fallback reply; add a flow with `trigger: {intent: ...}`".into()),
                );
            }
        }
        let unreachable: Vec<String> = self
            .flows
            .iter()
            .filter(|(name, f)| f.trigger.is_none() && !self.flow_targets.contains(*name))
            .map(|(n, _)| n.clone())
            .collect();
        for flow in unreachable {
            if let Some(o) = self.flow_origins.get(&flow).cloned() {
                self.diags.warning(
                    &o.file,
                    o.pos,
                    format!("flow `{flow}` has no trigger and no `flow:` step leads to it"),
                    Some("add `trigger: {intent: ...}` or remove the flow".into()),
                );
            }
        }
    }

    fn finish(mut self) -> Result<Loaded, Vec<Diagnostic>> {
        let mut texts = Vec::new();
        for (key, zh, en) in DEFAULT_RESPONSES {
            if let Some(t) = self.responses.remove(key) {
                texts.push(t);
                continue;
            }
            let mut t = Text::default();
            for (lang, src) in [(Lang::Zh, zh), (Lang::En, en)] {
                match self.templates.compile_text(src) {
                    Ok(id) => *t.base.by_lang.get_mut(lang) = Some(id),
                    Err(e) => {
                        self.diags
                            .error(Path::new("<built-in>"), Pos::default(), e.message, None)
                    }
                }
            }
            texts.push(t);
        }
        if self.diags.has_errors() {
            return Err(self.diags.into_sorted());
        }
        let mut texts = texts.into_iter();
        let mut next = || texts.next().unwrap_or_default();
        let responses = Responses {
            fallback: next(),
            handoff: next(),
            resume: next(),
            anything_else: next(),
        };
        Ok(Loaded {
            settings: self.settings,
            responses,
            slots: self.slots,
            intents: self.intents,
            flows: self.flows,
            triggers: self.triggers,
            templates: self.templates,
            policies: self.policies,
            experiments: self.experiments,
            entities: self.entities,
            warnings: self.diags.into_sorted(),
        })
    }
}
