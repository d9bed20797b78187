//! The pure interpreter: `step(bot, state, input) -> Step { state, effects }`.
//!
//! No I/O, no clocks, no randomness: the same inputs always give the same outputs, so the
//! session actor can replay turns and the property tests can explore sequences freely.
//!
//! Invariants, each covered by tests:
//! - **never stuck**: every call returns at least one `Say`, `Handoff` or `End` effect;
//! - **bounded work**: at most [`MAX_STEPS_PER_TURN`] steps run per turn (a `goto` loop in a
//!   flow ends in a handoff instead of spinning);
//! - **typed slots**: every slot in the returned state is defined and has its type (slots
//!   from an older bot version that no longer fit are dropped on entry);
//! - **bounded stack**: the digression stack never exceeds `settings.max_stack_depth`.
//!
//! Digressions: while a flow waits at an `ask`, a message whose intent starts another flow
//! with confidence >= `digression_threshold` interrupts it — unless the message also holds
//! a valid value for the asked slot (for typed slots), in which case it is taken as the
//! answer. The interrupted flow is pushed on the stack (the oldest entry is dropped when the
//! stack is full) and resumes, re-asking its question, when the digression flow ends.

use serde::{Deserialize, Serialize};

use crate::Bot;
use crate::model::{AskStep, EndScope, Lang, OnFail, StepKind, Text};
use crate::slot::SlotType;
use crate::state::{DialogState, Frame};
use crate::template;

/// Most steps one turn may run before the interpreter gives up on the flow.
pub const MAX_STEPS_PER_TURN: usize = 64;

/// The classifier's verdict on a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentMatch<'a> {
    /// Intent name, as defined in the bot.
    pub name: &'a str,
    /// Confidence in `0.0..=1.0`.
    pub confidence: f32,
}

/// One user message, already understood by the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnInput<'a> {
    /// The normalised message text (slot values are extracted from it).
    pub text: &'a str,
    /// The language to reply in.
    pub lang: Lang,
    /// The channel the message came from (visible to templates as `channel`).
    pub channel: &'a str,
    /// The best intent, or `None` when the message is out of scope.
    pub intent: Option<IntentMatch<'a>>,
}

impl<'a> TurnInput<'a> {
    /// A message with no intent on no particular channel.
    pub fn new(text: &'a str, lang: Lang) -> Self {
        TurnInput {
            text,
            lang,
            channel: "",
            intent: None,
        }
    }

    /// The same message classified as `name` with `confidence`.
    pub fn with_intent(mut self, name: &'a str, confidence: f32) -> Self {
        self.intent = Some(IntentMatch { name, confidence });
        self
    }

    /// The same message on `channel`.
    pub fn on_channel(mut self, channel: &'a str) -> Self {
        self.channel = channel;
        self
    }
}

/// What the runtime must do after a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Effect {
    /// Send this reply to the user.
    Say {
        /// The rendered reply.
        text: String,
    },
    /// Hand the conversation to a human agent; the bot's flows are cleared.
    Handoff {
        /// Why, for the agent and for metrics.
        reason: String,
    },
    /// The conversation is complete from the bot's side (e.g. after goodbye).
    End,
}

impl Effect {
    /// True for effects the user perceives (a reply, a transfer, an ending).
    pub fn is_visible(&self) -> bool {
        matches!(
            self,
            Effect::Say { .. } | Effect::Handoff { .. } | Effect::End
        )
    }
}

/// The result of one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The state to keep for the next turn.
    pub state: DialogState,
    /// What to do, in order.
    pub effects: Vec<Effect>,
}

/// Runs one turn. Pure and total: never panics, never returns without a visible effect.
pub fn step(bot: &Bot, state: &DialogState, input: &TurnInput<'_>) -> Step {
    let mut t = Turn {
        bot,
        input,
        state: state.clone(),
        effects: Vec::new(),
        budget: MAX_STEPS_PER_TURN,
    };
    t.repair();
    match t.waiting_ask() {
        Some(ask) => t.answer(ask),
        None => {
            t.state.active = None;
            t.idle();
        }
    }
    if !t.effects.iter().any(Effect::is_visible) {
        let text = &bot.responses.anything_else;
        t.say(text);
        if t.effects.is_empty() {
            // Only if the designer's text renders empty: a reply is still owed.
            t.effects.push(Effect::Say {
                text: builtin_fallback(input.lang).to_string(),
            });
        }
    }
    Step {
        state: t.state,
        effects: t.effects,
    }
}

/// Last-resort reply when even the bot's fallback template fails to render.
fn builtin_fallback(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "抱歉，我没太明白您的意思。",
        Lang::En => "Sorry, I didn't understand that.",
    }
}

struct Turn<'a> {
    bot: &'a Bot,
    input: &'a TurnInput<'a>,
    state: DialogState,
    effects: Vec<Effect>,
    budget: usize,
}

impl<'a> Turn<'a> {
    /// Makes a state from storage (possibly from another bot version) safe to run.
    fn repair(&mut self) {
        let bot = self.bot;
        let flow_ok = |f: &Frame| bot.flows.contains_key(&f.flow);
        if self.state.active.as_ref().is_some_and(|f| !flow_ok(f)) {
            self.state.active = None;
        }
        self.state.stack.retain(|f| flow_ok(f));
        let depth = usize::from(bot.settings.max_stack_depth);
        if self.state.stack.len() > depth {
            let excess = self.state.stack.len() - depth;
            self.state.stack.drain(..excess);
        }
        self.state
            .slots
            .retain(|name, v| !v.is_null() && bot.slots.get(name).is_some_and(|d| d.ty.accepts(v)));
    }

    /// The `ask` step the active flow is waiting at, if it is waiting at one.
    fn waiting_ask(&self) -> Option<&'a AskStep> {
        let frame = self.state.active.as_ref()?;
        let flow = self.bot.flows.get(&frame.flow)?;
        match &flow.steps.get(frame.step as usize)?.kind {
            StepKind::Ask(ask) => Some(ask),
            _ => None,
        }
    }

    /// The flow the input's intent starts, if its confidence reaches `threshold`.
    fn triggered(&self, threshold: f32) -> Option<&'a str> {
        let m = self.input.intent?;
        if m.confidence
            .partial_cmp(&threshold)
            .is_none_or(|o| o.is_lt())
        {
            return None; // also rejects NaN
        }
        self.bot.triggers.get(m.name).map(String::as_str)
    }

    /// No flow is waiting: start the flow the intent triggers, or fall back.
    fn idle(&mut self) {
        match self.triggered(self.bot.settings.intent_threshold) {
            Some(flow) => {
                self.state.fallbacks = 0;
                self.state.active = Some(Frame::start(flow));
                self.run();
            }
            None => self.fallback(),
        }
    }

    fn fallback(&mut self) {
        self.state.fallbacks = self.state.fallbacks.saturating_add(1);
        if self.state.fallbacks >= self.bot.settings.max_fallbacks {
            self.state.fallbacks = 0;
            self.handoff(format!(
                "{} messages in a row not understood",
                self.bot.settings.max_fallbacks
            ));
        } else {
            let text = &self.bot.responses.fallback;
            self.say(text);
        }
    }

    /// Says the handoff reply, emits the handoff and clears all flows.
    fn handoff(&mut self, reason: String) {
        let text = &self.bot.responses.handoff;
        self.say(text);
        self.effects.push(Effect::Handoff { reason });
        self.state.active = None;
        self.state.stack.clear();
    }

    /// The active flow waits at `ask`: take the message as the answer, or digress.
    fn answer(&mut self, ask: &'a AskStep) {
        let Some(def) = self.bot.slots.get(&ask.slot) else {
            // Unreachable for a loaded bot (slots are checked); recover anyway.
            self.state.active = None;
            return self.idle();
        };
        let value = def.ty.extract(self.input.text);
        let digression = self
            .triggered(self.bot.settings.digression_threshold)
            .filter(|f| self.state.active.as_ref().is_some_and(|a| a.flow != *f));
        if let Some(flow) = digression
            && (value.is_none() || matches!(def.ty, SlotType::Text))
        {
            return self.digress(flow);
        }
        let max_attempts = ask.max_attempts;
        let Some(frame) = self.state.active.as_mut() else {
            return;
        };
        match value {
            Some(v) => {
                self.state.slots.insert(ask.slot.clone(), v);
                frame.attempts = 0;
                frame.step += 1;
                self.state.fallbacks = 0;
                self.run();
            }
            None => {
                frame.attempts = frame.attempts.saturating_add(1);
                if frame.attempts < max_attempts {
                    let text = ask.reprompt.as_ref().unwrap_or(&ask.prompt);
                    return self.say(text);
                }
                frame.attempts = 0;
                match ask.on_fail {
                    OnFail::Step(i) => {
                        frame.step = u32::try_from(i).unwrap_or(u32::MAX);
                        self.run();
                    }
                    OnFail::Fallback => {
                        let text = &self.bot.responses.fallback;
                        self.say(text);
                        self.end_flow();
                        self.run();
                    }
                    OnFail::Handoff => {
                        self.handoff(format!(
                            "slot `{}` not understood after {max_attempts} attempts",
                            ask.slot
                        ));
                    }
                }
            }
        }
    }

    fn digress(&mut self, flow: &str) {
        self.state.fallbacks = 0;
        let depth = usize::from(self.bot.settings.max_stack_depth);
        // Stack full: forget the oldest interruption rather than refuse the new topic.
        if let Some(current) = self.state.active.take()
            && depth > 0
        {
            if self.state.stack.len() >= depth {
                self.state.stack.remove(0);
            }
            self.state.stack.push(current);
        }
        self.state.active = Some(Frame::start(flow));
        self.run();
    }

    /// Ends the active flow; resumes the innermost interrupted one, if any.
    fn end_flow(&mut self) {
        self.state.active = self.state.stack.pop();
        if self.state.active.is_some() {
            let text = &self.bot.responses.resume;
            self.say(text);
        }
    }

    /// Runs the active flow until it waits at an `ask`, ends, or hands off.
    fn run(&mut self) {
        loop {
            let Some(frame) = self.state.active.as_mut() else {
                return;
            };
            if self.budget == 0 {
                let reason = format!(
                    "flow `{}` ran {MAX_STEPS_PER_TURN} steps without waiting for the user",
                    frame.flow
                );
                return self.handoff(reason);
            }
            self.budget -= 1;
            let Some(flow) = self.bot.flows.get(&frame.flow) else {
                self.end_flow();
                continue;
            };
            let Some(step) = flow.steps.get(frame.step as usize) else {
                // Ran past the last step: the flow is done.
                self.end_flow();
                continue;
            };
            let next = frame.step.saturating_add(1);
            match &step.kind {
                StepKind::Say(text) => {
                    frame.step = next;
                    self.say(text);
                }
                StepKind::Ask(ask) => {
                    if self
                        .state
                        .slots
                        .get(&ask.slot)
                        .is_some_and(|v| !v.is_null())
                    {
                        frame.step = next;
                    } else {
                        return self.say(&ask.prompt);
                    }
                }
                StepKind::Set(pairs) => {
                    frame.step = next;
                    for (slot, value) in pairs {
                        if value.is_null() {
                            self.state.slots.remove(slot);
                        } else {
                            self.state.slots.insert(slot.clone(), value.clone());
                        }
                    }
                }
                StepKind::Branch {
                    cond,
                    then,
                    otherwise,
                } => {
                    let ctx = self.context();
                    let target = if self.bot.templates.eval(*cond, &ctx) {
                        Some(*then)
                    } else {
                        *otherwise
                    };
                    let Some(frame) = self.state.active.as_mut() else {
                        return;
                    };
                    frame.step = target.map_or(next, |i| u32::try_from(i).unwrap_or(u32::MAX));
                }
                StepKind::Goto(i) => frame.step = u32::try_from(*i).unwrap_or(u32::MAX),
                StepKind::Flow(name) => *frame = Frame::start(name),
                StepKind::Handoff { reason } => {
                    let reason = reason.clone();
                    self.effects.push(Effect::Handoff { reason });
                    self.state.active = None;
                    self.state.stack.clear();
                    return;
                }
                StepKind::End(EndScope::Flow) => self.end_flow(),
                StepKind::End(EndScope::Conversation) => {
                    self.effects.push(Effect::End);
                    self.state.active = None;
                    self.state.stack.clear();
                    return;
                }
            }
        }
    }

    fn context(&self) -> minijinja::Value {
        template::context(
            &self.state.slots,
            self.input.lang.as_str(),
            self.input.channel,
            self.input.text,
        )
    }

    /// Renders `text` in the user's language and emits it (empty renders are skipped).
    fn say(&mut self, text: &Text) {
        let rendered = self.render(text);
        if !rendered.trim().is_empty() {
            self.effects.push(Effect::Say { text: rendered });
        }
    }

    fn render(&self, text: &Text) -> String {
        let bot = self.bot;
        let lang = self.input.lang;
        let default = bot.settings.default_language;
        let ctx = self.context();
        let render = |t: &Text| {
            t.pick(lang, default)
                .and_then(|id| bot.templates.render(id, &ctx).ok())
        };
        render(text)
            .or_else(|| render(&bot.responses.fallback))
            .unwrap_or_else(|| builtin_fallback(lang).to_string())
    }
}
