//! Steps that need the outside world — `call:` (a skill) and `generate:` (the LLM) — split
//! into two halves around the runtime's I/O: starting one emits the `Call`/`Generate`
//! effect and marks the state as waiting; [`crate::resume`] applies the result.
//!
//! Invariants: a started step leaves the active frame *at* that step with
//! `state.waiting` set, so a stored state says exactly what it waits for; applying a result
//! clears `waiting` and moves the frame on (or ends/hands off), so a result is applied at
//! most once. A result of the wrong kind counts as a failure of the step it arrived for.

use serde_json::{Map, Value};

use crate::effect::{Effect, External};
use crate::interpreter::Turn;
use crate::model::{CallArg, CallStep, GenerateStep, Outcome, StepKind};
use crate::slot::{MAX_TEXT_SLOT_CHARS, SlotType};
use crate::state::Waiting;

/// Largest skill result (as JSON) kept in a slot; larger data counts as an `error`, so one
/// verbose backend cannot bloat every persisted dialog state.
pub const MAX_SAVED_DATA_BYTES: usize = 16 * 1024;

impl Turn<'_> {
    /// Emits the `Call` effect for `call` and suspends the turn.
    pub(crate) fn start_call(&mut self, call: &CallStep) {
        let ctx = self.context();
        let mut args = Map::new();
        for (name, arg) in &call.args {
            let value = match arg {
                CallArg::Literal(v) => v.clone(),
                CallArg::Template(id) => match self.bot.templates.render(*id, &ctx) {
                    Ok(s) => Value::String(s.trim().to_string()),
                    // A template that cannot render sends nothing rather than garbage; the
                    // skill reports the missing argument as an error outcome.
                    Err(_) => Value::Null,
                },
            };
            args.insert(name.clone(), value);
        }
        self.effects.push(Effect::Call {
            skill: call.skill.clone(),
            args,
        });
        self.state.waiting = Some(Waiting::Skill {
            skill: call.skill.clone(),
        });
    }

    /// Emits the `Generate` effect for `generate` and suspends the turn.
    pub(crate) fn start_generate(&mut self, generate: &GenerateStep) {
        let ctx = self.context();
        let templates = &self.bot.templates;
        let prompt = templates.render(generate.prompt, &ctx).unwrap_or_default();
        let context = generate
            .context
            .iter()
            .filter_map(|id| templates.render(*id, &ctx).ok())
            .filter(|s| !s.trim().is_empty())
            .collect();
        self.effects.push(Effect::Generate {
            prompt,
            context,
            save: generate.save.clone(),
            max_tokens: generate.max_tokens,
            temperature: generate.temperature,
        });
        self.state.waiting = Some(Waiting::Generation);
    }

    /// Applies the result of the step the state waits at; the caller then runs the flow on.
    pub(crate) fn apply(&mut self, result: External) {
        self.state.waiting = None;
        let Some(frame) = self.state.active.as_ref() else {
            return;
        };
        let Some(step) = self
            .bot
            .flows
            .get(&frame.flow)
            .and_then(|f| f.steps.get(frame.step as usize))
        else {
            return;
        };
        match &step.kind {
            StepKind::Call(call) => {
                let result = match result {
                    External::Skill(r) => r,
                    External::Generated(_) | External::Interrupted => {
                        crate::effect::SkillResult::other(
                            "error",
                            "generated text given for a skill call",
                        )
                    }
                };
                self.apply_call(call, result);
            }
            StepKind::Generate(generate) => {
                let text = match result {
                    External::Generated(Ok(text)) => Some(text),
                    External::Interrupted => {
                        // The user moved on: nothing is owed for this message.
                        self.interrupted = true;
                        if generate.save.is_none() {
                            self.skip_generate();
                            return;
                        }
                        None
                    }
                    _ => None,
                };
                self.apply_generate(generate, text);
            }
            _ => {}
        }
    }

    fn apply_call(&mut self, call: &CallStep, result: crate::effect::SkillResult) {
        let mut outcome = Outcome::parse(&result.outcome);
        if let Some(save) = &call.save {
            let fits = outcome == Outcome::Found
                && serde_json::to_string(&result.data)
                    .is_ok_and(|s| s.len() <= MAX_SAVED_DATA_BYTES);
            if fits && !result.data.is_null() {
                self.state.slots.insert(save.clone(), result.data);
            } else {
                if outcome == Outcome::Found && !result.data.is_null() {
                    outcome = Outcome::Error; // too large to keep
                }
                self.state.slots.remove(save);
            }
        }
        let skill = &call.skill;
        let message = result.message;
        self.follow(call.route(outcome), || match message {
            Some(m) if !m.trim().is_empty() => format!("skill `{skill}`: {m}"),
            _ => format!("skill `{skill}` returned {}", outcome.as_str()),
        });
    }

    /// Moves past the `generate` step the state waits at without saying anything.
    fn skip_generate(&mut self) {
        if let Some(frame) = self.state.active.as_mut() {
            frame.step = frame.step.saturating_add(1);
        }
    }

    fn apply_generate(&mut self, generate: &GenerateStep, text: Option<String>) {
        let text = match text.filter(|t| !t.trim().is_empty()) {
            Some(t) => t.trim().to_string(),
            None => self.render_text(&generate.fallback).0,
        };
        match &generate.save {
            Some(slot) => {
                let value = match self.bot.slots.get(slot).map(|d| &d.ty) {
                    Some(SlotType::Text) => {
                        Value::String(text.chars().take(MAX_TEXT_SLOT_CHARS).collect())
                    }
                    _ => Value::String(text),
                };
                if value.as_str().is_some_and(|s| s.trim().is_empty()) {
                    self.state.slots.remove(slot);
                } else {
                    self.state.slots.insert(slot.clone(), value);
                }
            }
            None => {
                if !text.trim().is_empty() {
                    self.effects.push(Effect::Say { text });
                }
            }
        }
        if let Some(frame) = self.state.active.as_mut() {
            frame.step = frame.step.saturating_add(1);
        }
    }
}
