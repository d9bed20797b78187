//! Loader passes for `flows:` — flows, their triggers and steps.
//!
//! Flow names are collected from every file first ([`Loader::flow_names`]), so a `flow:`
//! step may name a flow defined later or in another file. Within a flow, step `id`s are
//! collected before steps are read, so jumps may go forward. Invariant on success: every
//! jump target is an index into the same flow's `steps`, every named slot/flow/intent exists.

use std::collections::HashMap;
use std::path::Path;

use crate::diagnostic::did_you_mean;
use crate::load::{Loader, Origin};
use crate::model::{AskStep, EndScope, FlowDef, OnFail, StepDef, StepKind};
use crate::yaml::{self, Node};

const FLOW_KEYS: [&str; 3] = ["description", "trigger", "steps"];
/// Step kinds: exactly one of these keys makes a step (the JSON Schema lists these; tested).
pub const STEP_KINDS: [&str; 11] = [
    "say",
    "ask",
    "set",
    "branch",
    "goto",
    "flow",
    "call_flow",
    "call",
    "generate",
    "handoff",
    "end",
];
/// Keys that only some step kinds may carry, with those kinds.
const EXTRA_KEYS: [(&str, &[&str]); 12] = [
    ("prompt", &["ask"]),
    ("ask_before_filling", &["ask"]),
    ("reprompt", &["ask"]),
    ("max_attempts", &["ask"]),
    ("on_fail", &["ask"]),
    ("args", &["call"]),
    ("on", &["call"]),
    ("save", &["call", "generate"]),
    ("context", &["generate"]),
    ("fallback", &["generate"]),
    ("max_tokens", &["generate"]),
    ("temperature", &["generate"]),
];
const BRANCH_KEYS: [&str; 3] = ["if", "then", "else"];
/// Default and maximum `max_attempts` of an `ask` step.
const DEFAULT_MAX_ATTEMPTS: u8 = 3;
const MAX_MAX_ATTEMPTS: u64 = 10;

/// Step ids of one flow -> step index.
pub(crate) type StepIds = HashMap<String, usize>;

impl Loader {
    /// Pass 1 over `flows:`: declare every flow name (duplicates across files are errors).
    pub(crate) fn flow_names(&mut self, file: &Path, node: &Node) {
        for (name, k, _) in self.map(file, node, "flows", None) {
            if !self.check_name(file, k, &name, "flow") {
                continue;
            }
            if let Some(first) = self.flow_origins.get(&name) {
                let hint = Some(first.describe());
                self.err(file, k, format!("flow `{name}` is defined twice"), hint);
                continue;
            }
            self.flow_origins.insert(
                name,
                Origin {
                    file: file.to_path_buf(),
                    pos: yaml::pos(k),
                },
            );
        }
    }

    /// Pass 2 over `flows:`: read each flow declared in pass 1 (problems with the
    /// mapping itself were reported there, so this walks it without re-reporting).
    pub(crate) fn flows_section(&mut self, file: &Path, node: &Node) {
        let Some(entries) = yaml::entries(node) else {
            return;
        };
        for (k, v) in entries {
            let Some(name) = yaml::as_str(k) else {
                continue;
            };
            let declared_here = self
                .flow_origins
                .get(name)
                .is_some_and(|o| o.file == file && o.pos == yaml::pos(k));
            if !declared_here {
                continue;
            }
            if let Some(flow) = self.flow(file, k, v, name) {
                self.flows.insert(name.to_string(), flow);
            }
        }
    }

    fn flow(&mut self, file: &Path, key: &Node, node: &Node, name: &str) -> Option<FlowDef> {
        let what = format!("flow `{name}`");
        let entries = self.map(file, node, &what, Some(&FLOW_KEYS));
        let mut def = FlowDef {
            description: None,
            trigger: None,
            steps: Vec::new(),
        };
        let mut steps_node = None;
        for (k, _, v) in entries {
            match k.as_str() {
                "description" => def.description = self.string(file, v, "`description`"),
                "trigger" => def.trigger = self.trigger(file, v, name),
                "steps" => steps_node = Some(v),
                _ => {}
            }
        }
        let Some(steps_node) = steps_node else {
            self.err(
                file,
                key,
                format!("{what} has no steps"),
                Some("add `steps:` with at least one step".into()),
            );
            return None;
        };
        let Some(items) = yaml::items(steps_node).filter(|i| !i.is_empty()) else {
            let found = if yaml::items(steps_node).is_some() {
                "an empty list"
            } else {
                yaml::kind_name(steps_node)
            };
            self.err(
                file,
                steps_node,
                format!("{what} has no steps (found {found})"),
                Some("`steps:` is a list such as `- say: 你好`".into()),
            );
            return None;
        };
        let ids = self.step_ids(file, items, name);
        self.step_pos.insert(
            name.to_string(),
            (file.to_path_buf(), items.iter().map(yaml::pos).collect()),
        );
        let mut ok = true;
        for item in items {
            match self.step(file, item, &ids, name) {
                Some(s) => def.steps.push(s),
                None => ok = false,
            }
        }
        ok.then_some(def)
    }

    fn trigger(&mut self, file: &Path, node: &Node, flow: &str) -> Option<String> {
        let entries = self.map(file, node, "`trigger`", Some(&["intent"]));
        let Some((_, _, v)) = entries.into_iter().next() else {
            if yaml::entries(node).is_some_and(|e| e.is_empty()) {
                self.err(
                    file,
                    node,
                    "`trigger` is empty",
                    Some("write `trigger: {intent: name}`".into()),
                );
            }
            return None;
        };
        let intent = self.string(file, v, "`intent`")?;
        if !self.intent_origins.contains_key(&intent) {
            let hint = did_you_mean(&intent, self.intent_origins.keys().map(String::as_str))
                .or_else(|| Some("define it under `intents:`".into()));
            self.err(file, v, format!("undefined intent `{intent}`"), hint);
            return None;
        }
        if let Some(other) = self.triggers.get(&intent) {
            let msg = format!("intent `{intent}` already starts flow `{other}`");
            self.err(
                file,
                v,
                msg,
                Some("an intent starts one flow; use `branch` inside it".into()),
            );
            return None;
        }
        self.triggers.insert(intent.clone(), flow.to_string());
        Some(intent)
    }

    fn step_ids(&mut self, file: &Path, items: &[Node], flow: &str) -> StepIds {
        let mut ids = StepIds::new();
        for (i, item) in items.iter().enumerate() {
            let Some(entries) = yaml::entries(item) else {
                continue;
            };
            let Some((_, v)) = entries.iter().find(|(k, _)| yaml::as_str(k) == Some("id")) else {
                continue;
            };
            let Some(id) = yaml::as_str(v) else {
                self.err(
                    file,
                    v,
                    format!("a step `id` must be text, found {}", yaml::kind_name(v)),
                    None,
                );
                continue;
            };
            if !self.check_name(file, v, id, "step id") {
                continue;
            }
            if ids.insert(id.to_string(), i).is_some() {
                self.err(
                    file,
                    v,
                    format!("duplicate step id `{id}` in flow `{flow}`"),
                    Some("step ids are unique within a flow".into()),
                );
            }
        }
        ids
    }

    pub(crate) fn target(
        &mut self,
        file: &Path,
        node: &Node,
        ids: &StepIds,
        flow: &str,
    ) -> Option<usize> {
        let id = self.string(file, node, "a step id")?;
        if let Some(i) = ids.get(&id) {
            return Some(*i);
        }
        let hint = did_you_mean(&id, ids.keys().map(String::as_str))
            .or_else(|| Some("give the target step an `id:`".into()));
        self.err(
            file,
            node,
            format!("undefined step id `{id}` in flow `{flow}`"),
            hint,
        );
        None
    }

    fn step(&mut self, file: &Path, node: &Node, ids: &StepIds, flow: &str) -> Option<StepDef> {
        let line = yaml::pos(node).line;
        if let Some(s) = yaml::as_str(node) {
            if s == "end" {
                return Some(StepDef {
                    id: None,
                    kind: StepKind::End(EndScope::Flow),
                    line,
                });
            }
            let hint = did_you_mean(s, STEP_KINDS)
                .or_else(|| Some(format!("a step is one of: {}", STEP_KINDS.join(", "))));
            self.err(file, node, format!("unknown step kind `{s}`"), hint);
            return None;
        }
        let Some(entries) = yaml::entries(node) else {
            self.err(
                file,
                node,
                format!(
                    "a step must be a mapping such as `- say: 你好`, found {}",
                    yaml::kind_name(node)
                ),
                None,
            );
            return None;
        };
        let mut kind: Option<(&str, &Node, &Node)> = None;
        let mut extras: Vec<(&str, &Node, &Node)> = Vec::new();
        let mut unknown: Vec<(&str, &Node)> = Vec::new();
        let mut id = None;
        for (k, v) in entries {
            let Some(key) = yaml::as_str(k) else {
                self.err(
                    file,
                    k,
                    format!("keys in a step must be text, found {}", yaml::kind_name(k)),
                    None,
                );
                return None;
            };
            if key == "id" {
                id = yaml::as_str(v).map(str::to_string);
            } else if STEP_KINDS.contains(&key) {
                if let Some((first, _, _)) = kind {
                    self.err(
                        file,
                        k,
                        format!("a step does one thing; this one has both `{first}` and `{key}`"),
                        Some("split it into two steps".into()),
                    );
                    return None;
                }
                kind = Some((key, k, v));
            } else if EXTRA_KEYS.iter().any(|(x, _)| *x == key) {
                extras.push((key, k, v));
            } else {
                unknown.push((key, k));
            }
        }
        let Some((kind_name, kind_key, value)) = kind else {
            for (key, k) in &unknown {
                let hint = did_you_mean(key, STEP_KINDS)
                    .or_else(|| Some(format!("a step is one of: {}", STEP_KINDS.join(", "))));
                self.err(file, k, format!("unknown step kind `{key}`"), hint);
            }
            if unknown.is_empty() {
                self.err(
                    file,
                    node,
                    "this step has no kind",
                    Some(format!("a step is one of: {}", STEP_KINDS.join(", "))),
                );
            }
            return None;
        };
        let mut ok = true;
        for (key, k) in &unknown {
            let candidates = STEP_KINDS
                .iter()
                .copied()
                .chain(EXTRA_KEYS.iter().map(|(x, _)| *x))
                .chain(["id"]);
            self.err(
                file,
                k,
                format!("unknown key `{key}` in `{kind_name}` step"),
                did_you_mean(key, candidates),
            );
            ok = false;
        }
        for (key, k, _) in &extras {
            let owners = EXTRA_KEYS
                .iter()
                .find(|(x, _)| x == key)
                .map_or(&[][..], |(_, o)| *o);
            if !owners.contains(&kind_name) {
                let list: Vec<String> = owners.iter().map(|o| format!("`{o}`")).collect();
                let article = if owners.first().is_some_and(|o| o.starts_with('a')) {
                    "an"
                } else {
                    "a"
                };
                self.err(
                    file,
                    k,
                    format!(
                        "`{key}` only belongs to {article} {} step",
                        list.join(" or ")
                    ),
                    None,
                );
                ok = false;
            }
        }
        let kind = match kind_name {
            "say" => StepKind::Say(self.text(file, value, "`say`")?),
            "ask" => {
                let (ask, has_prompt) = self.ask(file, value, &extras, ids, flow)?;
                // After a misspelt `promt` was reported, "needs a prompt" would only repeat it.
                if !has_prompt {
                    if ok {
                        let hint = Some("add `prompt:` with the question to ask".into());
                        self.err(file, kind_key, "an `ask` step needs a `prompt`", hint);
                    }
                    return None;
                }
                StepKind::Ask(ask)
            }
            "set" => StepKind::Set(self.set(file, value)?),
            "branch" => self.branch(file, kind_key, value, ids, flow)?,
            "goto" => StepKind::Goto(self.target(file, value, ids, flow)?),
            "flow" => {
                let target = self.string(file, value, "`flow`")?;
                if !self.flow_origins.contains_key(&target) {
                    let hint = did_you_mean(&target, self.flow_origins.keys().map(String::as_str));
                    self.err(file, value, format!("undefined flow `{target}`"), hint);
                    return None;
                }
                self.flow_targets.insert(target.clone());
                StepKind::Flow(target)
            }
            "call_flow" => StepKind::CallFlow(self.call_flow(file, value, flow)?),
            "call" => StepKind::Call(self.call_step(file, value, &extras, ids, flow)?),
            "generate" => StepKind::Generate(self.generate_step(file, kind_key, value, &extras)?),
            "handoff" => self.handoff_step(file, value, flow)?,
            _ => StepKind::End(match yaml::as_str(value) {
                _ if yaml::is_null(value) => EndScope::Flow,
                Some("flow") => EndScope::Flow,
                Some("conversation") => EndScope::Conversation,
                _ => {
                    self.err(
                        file,
                        value,
                        "`end` is `end`, `end: flow` or `end: conversation`",
                        None,
                    );
                    return None;
                }
            }),
        };
        ok.then_some(StepDef { id, kind, line })
    }

    fn ask(
        &mut self,
        file: &Path,
        value: &Node,
        extras: &[(&str, &Node, &Node)],
        ids: &StepIds,
        flow: &str,
    ) -> Option<(AskStep, bool)> {
        let slot = self.string(file, value, "the slot to ask for")?;
        let mut ok = true;
        if !self.slot_origins.contains_key(&slot) {
            let hint = did_you_mean(&slot, self.slot_origins.keys().map(String::as_str))
                .or_else(|| Some("define it under `slots:`".into()));
            self.err(file, value, format!("undefined slot `{slot}`"), hint);
            ok = false;
        } else if let Some(def) = self.slots.get(&slot)
            && !crate::load_steps::askable(&def.ty)
        {
            self.err(
                file,
                value,
                format!(
                    "slot `{slot}` has type `{}` and cannot be asked for",
                    def.ty.name()
                ),
                Some("`json` slots are filled by `call: ... save:`".into()),
            );
            ok = false;
        }
        let mut step = AskStep {
            slot,
            prompt: crate::model::Text::default(),
            reprompt: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            on_fail: OnFail::Handoff,
            ask_before_filling: false,
        };
        let mut has_prompt = false;
        for (k, _, v) in extras {
            match *k {
                "prompt" => match self.text(file, v, "`prompt`") {
                    Some(t) => {
                        step.prompt = t;
                        has_prompt = true;
                    }
                    None => ok = false,
                },
                "reprompt" => {
                    step.reprompt = self.text(file, v, "`reprompt`");
                    ok &= step.reprompt.is_some();
                }
                "max_attempts" => match self.int_in(file, v, "max_attempts", 1, MAX_MAX_ATTEMPTS) {
                    Some(n) => step.max_attempts = n,
                    None => ok = false,
                },
                "ask_before_filling" => match yaml::as_bool(v) {
                    Some(b) => step.ask_before_filling = b,
                    None => {
                        self.err(
                            file,
                            v,
                            "`ask_before_filling` must be true or false",
                            Some("write `ask_before_filling: true` to always ask".into()),
                        );
                        ok = false;
                    }
                },
                _ => {
                    step.on_fail = match yaml::as_str(v) {
                        Some("fallback") => OnFail::Fallback,
                        Some("handoff") => OnFail::Handoff,
                        _ => match self.target(file, v, ids, flow) {
                            Some(i) => OnFail::Step(i),
                            None => {
                                ok = false;
                                continue;
                            }
                        },
                    }
                }
            }
        }
        ok.then_some((step, has_prompt))
    }

    fn set(&mut self, file: &Path, value: &Node) -> Option<Vec<(String, serde_json::Value)>> {
        let mut out = Vec::new();
        let mut ok = true;
        let entries = self.map(file, value, "`set`", None);
        if entries.is_empty() && yaml::entries(value).is_some() {
            self.err(
                file,
                value,
                "`set` sets nothing",
                Some("write `set: {slot: value}`".into()),
            );
            return None;
        }
        for (slot, k, v) in entries {
            if !self.slot_origins.contains_key(&slot) {
                let hint = did_you_mean(&slot, self.slot_origins.keys().map(String::as_str));
                self.err(file, k, format!("undefined slot `{slot}`"), hint);
                ok = false;
                continue;
            }
            let Some(json) = yaml::scalar_json(v) else {
                self.err(
                    file,
                    v,
                    "a `set` value must be plain: text, a number, true/false or null",
                    None,
                );
                ok = false;
                continue;
            };
            if let Some(def) = self.slots.get(&slot)
                && !def.ty.accepts(&json)
            {
                let msg = format!(
                    "{json} is not a valid value for slot `{slot}` (type `{}`)",
                    def.ty.name()
                );
                self.err(file, v, msg, None);
                ok = false;
                continue;
            }
            out.push((slot, json));
        }
        ok.then_some(out)
    }

    fn branch(
        &mut self,
        file: &Path,
        key: &Node,
        value: &Node,
        ids: &StepIds,
        flow: &str,
    ) -> Option<StepKind> {
        let entries = self.map(file, value, "`branch`", Some(&BRANCH_KEYS));
        let get = |k: &str| entries.iter().find(|(n, _, _)| n == k).map(|(_, _, v)| *v);
        let (Some(cond), Some(then)) = (get("if"), get("then")) else {
            self.err(
                file,
                key,
                "a `branch` needs `if:` and `then:`",
                Some("e.g. branch: {if: \"slots.vip\", then: vip_path}".into()),
            );
            return None;
        };
        let cond_id = self.condition(file, cond);
        let then = self.target(file, then, ids, flow);
        let otherwise = match get("else") {
            Some(e) => Some(self.target(file, e, ids, flow)?),
            None => None,
        };
        Some(StepKind::Branch {
            cond: cond_id?,
            then: then?,
            otherwise,
        })
    }
}
