//! Loader passes for the steps that reach outside the flow: `call` (a skill), `generate`
//! (the LLM), `call_flow` (a sub-flow) and `handoff` (with an optional agent queue).
//!
//! Invariants on success: a `save` slot has a type that can hold the result (`json` for a
//! skill's data; `text` or `json` for generated text); every `on:` outcome is known and
//! routes to a step of the same flow, `next`, `fallback` or `handoff`; a known-skills list,
//! when given, contains every called skill.

use std::path::Path;

use crate::diagnostic::did_you_mean;
use crate::load::Loader;
use crate::load_flow::StepIds;
use crate::model::{
    CallArg, CallStep, GenerateStep, MAX_GENERATE_TOKENS, Outcome, Route, StepKind, Temperature,
};
use crate::slot::SlotType;
use crate::yaml::{self, Node};

type Extras<'n> = [(&'n str, &'n Node, &'n Node)];

impl Loader {
    pub(crate) fn call_flow(&mut self, file: &Path, value: &Node, flow: &str) -> Option<String> {
        let target = self.string(file, value, "`call_flow`")?;
        if !self.flow_origins.contains_key(&target) {
            let hint = did_you_mean(&target, self.flow_origins.keys().map(String::as_str));
            self.err(file, value, format!("undefined flow `{target}`"), hint);
            return None;
        }
        if target == flow {
            self.err(
                file,
                value,
                format!("flow `{flow}` calls itself"),
                Some("use `goto` to repeat steps; sub-flows cannot recurse".into()),
            );
            return None;
        }
        self.flow_targets.insert(target.clone());
        self.call_edges.push((
            flow.to_string(),
            target.clone(),
            file.to_path_buf(),
            yaml::pos(value),
        ));
        Some(target)
    }

    pub(crate) fn handoff_step(
        &mut self,
        file: &Path,
        value: &Node,
        flow: &str,
    ) -> Option<StepKind> {
        if yaml::is_null(value) {
            return Some(StepKind::Handoff {
                reason: format!("flow `{flow}` handed off"),
                queue: None,
            });
        }
        if yaml::entries(value).is_none() {
            let reason = self.string(file, value, "the handoff reason")?;
            return Some(StepKind::Handoff {
                reason,
                queue: None,
            });
        }
        let mut reason = format!("flow `{flow}` handed off");
        let mut queue = None;
        for (k, _, v) in self.map(file, value, "`handoff`", Some(&["reason", "queue"])) {
            if k == "reason" {
                reason = self.string(file, v, "the handoff reason")?;
            } else {
                queue = Some(self.string(file, v, "`queue`")?);
            }
        }
        Some(StepKind::Handoff { reason, queue })
    }

    pub(crate) fn call_step(
        &mut self,
        file: &Path,
        value: &Node,
        extras: &Extras<'_>,
        ids: &StepIds,
        flow: &str,
    ) -> Option<CallStep> {
        let skill = self.string(file, value, "the skill to call")?;
        let mut ok = self.check_skill(file, value, &skill);
        let mut step = CallStep {
            skill,
            args: Vec::new(),
            save: None,
            routes: CallStep::default_routes(),
        };
        for (k, _, v) in extras {
            match *k {
                "args" => {
                    for (name, _, arg) in self.map(file, v, "`args`", None) {
                        let arg = if let Some(src) = yaml::as_str(arg) {
                            match self.compile_text(file, arg, src) {
                                Some(id) => CallArg::Template(id),
                                None => {
                                    ok = false;
                                    continue;
                                }
                            }
                        } else if let Some(json) = yaml::scalar_json(arg) {
                            CallArg::Literal(json)
                        } else {
                            self.err(
                                file,
                                arg,
                                format!(
                                    "an argument must be text (a template), a number, true/false or null, found {}",
                                    yaml::kind_name(arg)
                                ),
                                None,
                            );
                            ok = false;
                            continue;
                        };
                        step.args.push((name, arg));
                    }
                }
                "save" => match self.save_slot(file, v, "skill data", &["json"]) {
                    Some(s) => step.save = Some(s),
                    None => ok = false,
                },
                "on" => {
                    let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                    for (outcome, _, target) in self.map(file, v, "`on`", Some(&names)) {
                        let o = Outcome::parse(&outcome);
                        let route = match yaml::as_str(target) {
                            Some("next") => Route::Next,
                            Some("fallback") => Route::Fallback,
                            Some("handoff") => Route::Handoff,
                            _ => match self.target(file, target, ids, flow) {
                                Some(i) => Route::Step(i),
                                None => {
                                    ok = false;
                                    continue;
                                }
                            },
                        };
                        step.routes[Outcome::ALL.iter().position(|x| *x == o).unwrap_or(4)] = route;
                    }
                    let given = yaml::entries(v).map_or(0, |e| e.len());
                    let good = self.map_len_ok(v, &names);
                    ok &= given == good;
                }
                _ => {}
            }
        }
        ok.then_some(step)
    }

    /// Number of entries of `node` whose key is in `allowed` (for "was anything rejected").
    fn map_len_ok(&self, node: &Node, allowed: &[&str]) -> usize {
        yaml::entries(node).map_or(0, |e| {
            e.iter()
                .filter(|(k, _)| yaml::as_str(k).is_some_and(|k| allowed.contains(&k)))
                .count()
        })
    }

    fn check_skill(&mut self, file: &Path, node: &Node, skill: &str) -> bool {
        let Some(known) = &self.known_skills else {
            return true;
        };
        if known.iter().any(|k| k == skill) {
            return true;
        }
        let hint = did_you_mean(skill, known.iter().map(String::as_str)).or_else(|| {
            if known.is_empty() {
                Some("no skills are installed".into())
            } else {
                Some(format!("installed skills: {}", known.join(", ")))
            }
        });
        self.err(file, node, format!("unknown skill `{skill}`"), hint);
        false
    }

    /// A `save:` slot that exists and has one of `types`.
    fn save_slot(
        &mut self,
        file: &Path,
        node: &Node,
        what: &str,
        types: &[&str],
    ) -> Option<String> {
        let slot = self.string(file, node, "the slot to save in")?;
        if !self.slot_origins.contains_key(&slot) {
            let hint = did_you_mean(&slot, self.slot_origins.keys().map(String::as_str))
                .or_else(|| Some("define it under `slots:`".into()));
            self.err(file, node, format!("undefined slot `{slot}`"), hint);
            return None;
        }
        let ty = self.slots.get(&slot).map(|d| d.ty.name())?;
        if !types.contains(&ty) {
            let list: Vec<String> = types.iter().map(|t| format!("`{t}`")).collect();
            self.err(
                file,
                node,
                format!(
                    "slot `{slot}` has type `{ty}`; {what} needs a slot of type {}",
                    list.join(" or ")
                ),
                None,
            );
            return None;
        }
        Some(slot)
    }

    pub(crate) fn generate_step(
        &mut self,
        file: &Path,
        key: &Node,
        value: &Node,
        extras: &Extras<'_>,
    ) -> Option<GenerateStep> {
        let src = self.string(file, value, "the prompt")?;
        let prompt = self.compile_text(file, value, &src);
        let mut ok = prompt.is_some();
        let mut context = Vec::new();
        let mut save = None;
        let mut fallback = None;
        let mut max_tokens = None;
        let mut temperature = None;
        for (k, _, v) in extras {
            match *k {
                "max_tokens" => match yaml::as_u64(v)
                    .filter(|n| (1..=u64::from(MAX_GENERATE_TOKENS)).contains(n))
                    .and_then(|n| u32::try_from(n).ok())
                {
                    Some(n) => max_tokens = Some(n),
                    None => {
                        self.err(
                            file,
                            v,
                            format!(
                                "`max_tokens` must be a whole number from 1 to {MAX_GENERATE_TOKENS}"
                            ),
                            Some("the answer's length in tokens, e.g. `max_tokens: 200`".into()),
                        );
                        ok = false;
                    }
                },
                "temperature" => {
                    // f64 -> f32 only loses digits no sampler distinguishes; range checked first.
                    #[allow(clippy::cast_possible_truncation)]
                    let t = yaml::as_f64(v)
                        .filter(|x| (0.0..=f64::from(Temperature::MAX)).contains(x))
                        .and_then(|x| Temperature::new(x as f32));
                    match t {
                        Some(t) => temperature = Some(t),
                        None => {
                            self.err(
                                file,
                                v,
                                "`temperature` must be a number from 0 to 2",
                                Some(
                                    "0 answers alike every time; about 0.7 varies the wording"
                                        .into(),
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                "context" => {
                    let Some(items) = yaml::items(v) else {
                        self.err(
                            file,
                            v,
                            "`context` must be a list of texts such as [\"{{ slots.kb }}\"]",
                            None,
                        );
                        ok = false;
                        continue;
                    };
                    for item in items {
                        match self.string(file, item, "a context passage") {
                            Some(s) => match self.compile_text(file, item, &s) {
                                Some(id) => context.push(id),
                                None => ok = false,
                            },
                            None => ok = false,
                        }
                    }
                }
                "save" => match self.save_slot(file, v, "generated text", &["text", "json"]) {
                    Some(s) => save = Some(s),
                    None => ok = false,
                },
                "fallback" => {
                    fallback = self.text(file, v, "`fallback`");
                    ok &= fallback.is_some();
                }
                _ => {}
            }
        }
        let Some(fallback) = fallback else {
            if ok {
                self.err(
                    file,
                    key,
                    "a `generate` step needs a `fallback` text for when generation fails",
                    Some("add `fallback:` with what to say instead".into()),
                );
            }
            return None;
        };
        ok.then_some(GenerateStep {
            prompt: prompt?,
            context,
            save,
            fallback,
            max_tokens,
            temperature,
        })
    }
}

/// True when asking for a slot of this type makes sense (a `json` slot cannot be typed in).
pub(crate) fn askable(ty: &SlotType) -> bool {
    !matches!(ty, SlotType::Json)
}
