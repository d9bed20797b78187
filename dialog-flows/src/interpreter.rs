//! The pure interpreter: `step(bot, state, input) -> Step { state, effects }`, and
//! `resume(bot, state, input, result)` for a turn that was suspended on a skill call or a
//! generation.
//!
//! No I/O, no clocks, no randomness: the same inputs always give the same outputs, so the
//! session actor can replay turns and the property tests can explore sequences freely.
//!
//! Invariants, each covered by tests:
//! - **never stuck**: every turn ends with a visible effect (`Say`, `Handoff`, `End`) or
//!   with a pending external (`Call`/`Generate`, the last effect, with `state.waiting` set);
//!   a state left waiting (a result that never came, e.g. after a crash) is treated as an
//!   `error` result by the next `step`;
//! - **bounded work**: at most [`MAX_STEPS_PER_TURN`] steps run per turn or resume (a `goto`
//!   loop in a flow ends in a handoff instead of spinning);
//! - **typed slots**: every slot in the returned state is defined and has its type (slots
//!   from an older bot version that no longer fit are dropped on entry);
//! - **bounded stacks**: the digression stack never exceeds `settings.max_stack_depth`, and
//!   sub-flow returns never exceed `settings.max_call_depth`.
//!
//! Order of a turn: a stale wait is failed; escalation policies run (they may reply, hand
//! off, or let the turn go on); then the waiting `ask` takes the message (or a digression
//! interrupts it), or, with no flow running, the intent starts a flow or the fallback runs.
//! While the flow runs on, an `ask` whose slot the message already gives (a self-identifying
//! value: entity, order number, date, enum synonym, ...) is filled and skipped instead of
//! asked; one value fills at most one slot per message.
//!
//! Digressions: while a flow waits at an `ask`, a message whose intent starts another flow
//! with confidence >= `digression_threshold` interrupts it — unless the message also holds
//! a valid value for the asked slot (for typed slots), in which case it is taken as the
//! answer. The interrupted flow is pushed on the stack (the oldest entry is dropped when the
//! stack is full) and resumes, re-asking its question, when the digression flow ends.

use crate::Bot;
use crate::effect::{Effect, External, SkillResult, Step};
use crate::input::TurnInput;
use crate::model::{AskStep, EndScope, Lang, OnFail, PolicyThen, Route, StepKind, Text};
use crate::slot::SlotType;
use crate::state::{DialogState, Frame, Waiting};
use crate::template;

/// Most steps one turn may run before the interpreter gives up on the flow.
pub const MAX_STEPS_PER_TURN: usize = 64;

/// Runs one turn. Pure and total: never panics; the result has a visible effect or a
/// pending one (see [`Step::pending`]).
pub fn step(bot: &Bot, state: &DialogState, input: &TurnInput<'_>) -> Step {
    let mut t = Turn::new(bot, input, state);
    t.repair();
    t.prefill = true;
    if let Some(waiting) = t.state.waiting.clone() {
        // The result of the last call never came back (crash, lost message): count it as
        // failed so the flow takes its error route, then handle the new message.
        let failed = match waiting {
            Waiting::Skill { skill } => External::Skill(SkillResult::other(
                "error",
                format!("no result from skill `{skill}`"),
            )),
            Waiting::Generation => External::Generated(Err("no generated text".into())),
        };
        t.apply(failed);
        t.run();
        if t.state.waiting.is_some() {
            return t.finish();
        }
    }
    if t.policies() {
        return t.finish();
    }
    match t.waiting_ask() {
        Some(ask) => t.answer(ask),
        None => {
            t.state.active = None;
            t.idle();
        }
    }
    t.finish()
}

/// Continues a turn suspended on a `Call`/`Generate` with its result. Pure and total.
///
/// `input` is the message of the suspended turn (templates may use its text). A state that
/// is not waiting (a duplicate or late result) is returned unchanged with no effects.
pub fn resume(bot: &Bot, state: &DialogState, input: &TurnInput<'_>, result: External) -> Step {
    let mut t = Turn::new(bot, input, state);
    t.repair();
    if t.state.waiting.is_none() {
        return Step {
            state: t.state,
            effects: Vec::new(),
        };
    }
    t.apply(result);
    t.run();
    t.finish()
}

/// Last-resort reply when even the bot's fallback template fails to render.
fn builtin_fallback(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "抱歉，我没太明白您的意思。",
        Lang::En => "Sorry, I didn't understand that.",
    }
}

pub(crate) struct Turn<'a> {
    pub(crate) bot: &'a Bot,
    pub(crate) input: &'a TurnInput<'a>,
    pub(crate) state: DialogState,
    pub(crate) effects: Vec<Effect>,
    budget: usize,
    /// The message may fill the slots of `ask` steps it reaches (see [`Turn::prefill_for`]):
    /// true in [`step`], false when resuming after a skill or generation.
    prefill: bool,
    /// Values this message already put into a slot this turn: one value fills one slot, so
    /// a date given for "from" does not also become "until".
    taken: Vec<serde_json::Value>,
    /// The turn was resumed with [`External::Interrupted`]: a newer message is queued and
    /// gets the answer, so this turn owes no reply of its own.
    pub(crate) interrupted: bool,
    /// The last template context built, with the slots and fallback count it was built from.
    /// A turn renders several texts and evaluates policies against one context, and turning
    /// the slots into template values is the costly part (about 5% of a loaded server's CPU
    /// when rebuilt for every render); the other inputs are fixed for the turn.
    ctx_cache: std::cell::RefCell<Option<CachedContext>>,
}

/// See [`Turn::context`].
struct CachedContext {
    slots: std::collections::BTreeMap<String, serde_json::Value>,
    fallbacks: u8,
    value: minijinja::Value,
}

impl<'a> Turn<'a> {
    fn new(bot: &'a Bot, input: &'a TurnInput<'a>, state: &DialogState) -> Self {
        Turn {
            bot,
            input,
            state: state.clone(),
            effects: Vec::new(),
            budget: MAX_STEPS_PER_TURN,
            prefill: false,
            taken: Vec::new(),
            interrupted: false,
            ctx_cache: std::cell::RefCell::new(None),
        }
    }

    /// Ends the turn: a turn that is not suspended and said nothing says `anything_else`
    /// (unless it was interrupted: the newer message gets the answer).
    fn finish(mut self) -> Step {
        let pending = self.state.waiting.is_some();
        if !pending && !self.interrupted && !self.effects.iter().any(Effect::is_visible) {
            let text = &self.bot.responses.anything_else;
            self.say(text);
            if !self.effects.iter().any(Effect::is_visible) {
                // Only if the designer's text renders empty: a reply is still owed.
                self.effects.push(Effect::Say {
                    text: builtin_fallback(self.input.lang).to_string(),
                });
            }
        }
        Step {
            state: self.state,
            effects: self.effects,
        }
    }

    /// Makes a state from storage (possibly from another bot version) safe to run.
    fn repair(&mut self) {
        let bot = self.bot;
        let max_calls = usize::from(bot.settings.max_call_depth);
        let fix = |f: &mut Frame| -> bool {
            f.returns.retain(|r| bot.flows.contains_key(&r.flow));
            if f.returns.len() > max_calls {
                let excess = f.returns.len() - max_calls;
                f.returns.drain(..excess);
            }
            bot.flows.contains_key(&f.flow)
        };
        if let Some(active) = self.state.active.as_mut()
            && !fix(active)
        {
            self.state.active = None;
        }
        self.state.stack.retain_mut(|f| fix(f));
        let depth = usize::from(bot.settings.max_stack_depth);
        if self.state.stack.len() > depth {
            let excess = self.state.stack.len() - depth;
            self.state.stack.drain(..excess);
        }
        self.state
            .slots
            .retain(|name, v| !v.is_null() && bot.slots.get(name).is_some_and(|d| d.ty.accepts(v)));
        self.state
            .fired
            .retain(|p| bot.policies.iter().any(|d| d.name == *p));
        // A wait only makes sense at the matching step of the active flow.
        let at_external = match (&self.state.waiting, self.current_kind()) {
            (Some(Waiting::Skill { skill }), Some(StepKind::Call(c))) => c.skill == *skill,
            (Some(Waiting::Generation), Some(StepKind::Generate(_))) => true,
            _ => false,
        };
        if !at_external {
            self.state.waiting = None;
        }
    }

    /// The kind of the step the active frame is at.
    fn current_kind(&self) -> Option<&'a StepKind> {
        let frame = self.state.active.as_ref()?;
        let flow = self.bot.flows.get(&frame.flow)?;
        Some(&flow.steps.get(frame.step as usize)?.kind)
    }

    /// The `ask` step the active flow is waiting at, if it is waiting at one.
    fn waiting_ask(&self) -> Option<&'a AskStep> {
        match self.current_kind()? {
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

    /// Runs the first escalation policy whose condition holds. True when it ended the turn.
    fn policies(&mut self) -> bool {
        let bot = self.bot;
        if bot.policies.is_empty() {
            return false;
        }
        let ctx = self.context();
        let Some(policy) = bot
            .policies
            .iter()
            .find(|p| bot.templates.eval(p.when, &ctx))
        else {
            return false;
        };
        let first_time = self.state.fired.insert(policy.name.clone());
        let action = match &policy.first {
            Some(first) if first_time => first,
            _ => &policy.action,
        };
        if let Some(text) = &action.say {
            self.say(text);
        }
        match action.then {
            PolicyThen::Continue => false,
            PolicyThen::Reply => true,
            PolicyThen::Handoff => {
                if action.say.is_none() {
                    let text = &bot.responses.handoff;
                    self.say(text);
                }
                self.emit_handoff(policy.reason.clone(), policy.queue.clone());
                true
            }
        }
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
    pub(crate) fn handoff(&mut self, reason: String) {
        let text = &self.bot.responses.handoff;
        self.say(text);
        self.emit_handoff(reason, None);
    }

    /// Emits a handoff and clears all flows (and the policies' memory: a human takes over).
    fn emit_handoff(&mut self, reason: String, queue: Option<String>) {
        self.effects.push(Effect::Handoff { reason, queue });
        self.clear();
    }

    fn clear(&mut self) {
        self.state.active = None;
        self.state.stack.clear();
        self.state.waiting = None;
        self.state.fired.clear();
    }

    /// The active flow waits at `ask`: take the message as the answer, or digress.
    fn answer(&mut self, ask: &'a AskStep) {
        let Some(def) = self.bot.slots.get(&ask.slot) else {
            // Unreachable for a loaded bot (slots are checked); recover anyway.
            self.state.active = None;
            return self.idle();
        };
        // An entity value the NLU found for the slot's entity wins over our own extraction.
        let from_entity = def.entity.as_deref().and_then(|name| {
            self.input
                .entities
                .iter()
                .find(|e| e.name == name && !e.value.is_null() && def.ty.accepts(&e.value))
                .map(|e| e.value.clone())
        });
        let value = from_entity.or_else(|| def.ty.extract(self.input.text));
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
                self.taken.push(v.clone());
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

    /// A value for `ask`'s slot found in this turn's message before the question is asked
    /// (the message that started the flow, or answered an earlier question, may already say
    /// it: "帮我查订单 A12345678"). Only values that identify themselves count: the slot's
    /// NLU entity, or a typed value (order number, phone, e-mail, date, amount, ID, card,
    /// enum synonym, regex). Free text, numbers and yes/no are never guessed from a message
    /// that was not an answer to them. `ask_before_filling: true` turns this off per step.
    fn prefill_for(&self, ask: &AskStep) -> Option<serde_json::Value> {
        if !self.prefill || ask.ask_before_filling {
            return None;
        }
        let def = self.bot.slots.get(&ask.slot)?;
        let from_entity = def.entity.as_deref().and_then(|name| {
            self.input
                .entities
                .iter()
                .find(|e| e.name == name && !e.value.is_null() && def.ty.accepts(&e.value))
                .map(|e| e.value.clone())
        });
        let self_identifying = !matches!(
            def.ty,
            SlotType::Text
                | SlotType::Integer { .. }
                | SlotType::Number { .. }
                | SlotType::Bool
                | SlotType::Json
        );
        let value = from_entity.or_else(|| {
            self_identifying
                .then(|| def.ty.extract(self.input.text))
                .flatten()
        })?;
        (!self.taken.contains(&value)).then_some(value)
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

    /// Ends the active flow: a sub-flow returns to its caller; otherwise the innermost
    /// interrupted flow resumes, if any.
    pub(crate) fn end_flow(&mut self) {
        if let Some(frame) = self.state.active.as_mut()
            && let Some(ret) = frame.returns.pop()
        {
            frame.flow = ret.flow;
            frame.step = ret.step;
            frame.attempts = 0;
            return;
        }
        self.state.active = self.state.stack.pop();
        if self.state.active.is_some() {
            let text = &self.bot.responses.resume;
            self.say(text);
        }
    }

    /// Moves the active flow along `route` (from a skill outcome).
    pub(crate) fn follow(&mut self, route: Route, handoff_reason: impl FnOnce() -> String) {
        let Some(frame) = self.state.active.as_mut() else {
            return;
        };
        match route {
            Route::Next => frame.step = frame.step.saturating_add(1),
            Route::Step(i) => frame.step = u32::try_from(i).unwrap_or(u32::MAX),
            Route::Fallback => {
                let text = &self.bot.responses.fallback;
                self.say(text);
                self.end_flow();
            }
            Route::Handoff => self.handoff(handoff_reason()),
        }
    }

    /// Runs the active flow until it waits at an `ask`, suspends on a `call`/`generate`,
    /// ends, or hands off.
    pub(crate) fn run(&mut self) {
        loop {
            if self.state.waiting.is_some() {
                return;
            }
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
                    } else if let Some(value) = self.prefill_for(ask) {
                        self.taken.push(value.clone());
                        self.state.slots.insert(ask.slot.clone(), value);
                        if let Some(frame) = self.state.active.as_mut() {
                            frame.step = next;
                            frame.attempts = 0;
                        }
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
                StepKind::Flow(name) => {
                    // A jump keeps the return addresses: a sub-flow that jumps elsewhere
                    // still returns to its caller when the new flow ends.
                    frame.flow.clone_from(name);
                    frame.step = 0;
                    frame.attempts = 0;
                }
                StepKind::CallFlow(name) => {
                    if frame.returns.len() >= usize::from(self.bot.settings.max_call_depth) {
                        let reason = format!(
                            "sub-flows nested deeper than {} (calling `{name}`)",
                            self.bot.settings.max_call_depth
                        );
                        return self.handoff(reason);
                    }
                    let ret = crate::state::Return {
                        flow: std::mem::replace(&mut frame.flow, name.clone()),
                        step: next,
                    };
                    frame.returns.push(ret);
                    frame.step = 0;
                    frame.attempts = 0;
                }
                StepKind::Handoff { reason, queue } => {
                    self.emit_handoff(reason.clone(), queue.clone());
                    return;
                }
                StepKind::End(EndScope::Flow) => self.end_flow(),
                StepKind::End(EndScope::Conversation) => {
                    self.effects.push(Effect::End);
                    self.clear();
                    return;
                }
                StepKind::Call(call) => return self.start_call(call),
                StepKind::Generate(generate) => return self.start_generate(generate),
            }
        }
    }

    /// The template context for this turn's current state. Reused while the slots and the
    /// fallback count are what it was built from (compared, not tracked, so no mutation of
    /// the state can leave a stale context behind).
    pub(crate) fn context(&self) -> minijinja::Value {
        let mut cache = self.ctx_cache.borrow_mut();
        if let Some(c) = cache.as_ref()
            && c.fallbacks == self.state.fallbacks
            && c.slots == self.state.slots
        {
            return c.value.clone();
        }
        let value = self.build_context();
        *cache = Some(CachedContext {
            slots: self.state.slots.clone(),
            fallbacks: self.state.fallbacks,
            value: value.clone(),
        });
        value
    }

    fn build_context(&self) -> minijinja::Value {
        template::context(&template::Ctx {
            slots: &self.state.slots,
            lang: self.input.lang.as_str(),
            channel: self.input.channel,
            text: self.input.text,
            user: self.input.user,
            intent: self.input.intent.map(|m| (m.name, m.confidence)),
            signals: &self.input.signals,
            fallbacks: self.state.fallbacks,
        })
    }

    /// Renders `text` for this user, language and channel and emits it (empty renders are
    /// skipped). An A/B-tested text first emits which variant was used.
    pub(crate) fn say(&mut self, text: &Text) {
        let (rendered, variant) = self.render_text(text);
        if rendered.trim().is_empty() {
            return;
        }
        if let Some((name, variant)) = variant {
            self.effects.push(Effect::Experiment { name, variant });
        }
        self.effects.push(Effect::Say { text: rendered });
    }

    /// Renders `text`; also returns `(experiment, variant)` for an A/B-tested text.
    pub(crate) fn render_text(&self, text: &Text) -> (String, Option<(String, String)>) {
        let bot = self.bot;
        let lang = self.input.lang;
        let channel = self.input.channel;
        let default = bot.settings.default_language;
        let mut localized = &text.base;
        let mut variant = None;
        if let Some(exp) = &text.experiment
            && let Some(def) = bot.experiments.get(&exp.name)
        {
            let chosen = def.assign(&exp.name, self.input.user);
            if let Some((name, l)) = exp.variants.iter().find(|(v, _)| v == chosen) {
                localized = l;
                variant = Some((exp.name.clone(), name.clone()));
            }
        }
        let ctx = self.context();
        let rendered = localized
            .pick(lang, default, channel)
            .and_then(|id| bot.templates.render(id, &ctx).ok())
            .or_else(|| {
                bot.responses
                    .fallback
                    .base
                    .pick(lang, default, channel)
                    .and_then(|id| bot.templates.render(id, &ctx).ok())
            })
            .unwrap_or_else(|| builtin_fallback(lang).to_string());
        (rendered, variant)
    }
}
