//! Templates and conditions: minijinja compiled once at load, rendered per turn.
//!
//! Every reply text and every `branch` condition of a bot lives in one minijinja
//! [`Environment`] owned by the bot, under a generated name (`t0`, `t1`, ...). Conditions are
//! stored as the template `{% if (cond) %}1{% endif %}`, so they need no self-referential
//! `Expression` borrow; their syntax is first checked with `compile_expression`, which gives
//! the designer an error about the expression they wrote, not about our wrapper.
//!
//! Context seen by templates: `slots` (map of filled slots), `lang` (`zh`/`en`), `channel`,
//! `text` (the user's message), `intent` / `confidence` (the classifier's verdict),
//! `emotion` (`label`, `intensity`, `negative_streak`, `slope`, `peak`), `user` (`id`,
//! `vip`, `tags`) and `fallbacks` (consecutive messages not understood before this one). Undefined values are "chainable" (`slots.a.b` is empty,
//! not an error), so a template over an empty slot renders instead of failing a turn.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::input::Signals;

/// Index of a compiled reply template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateId(pub(crate) u32);

/// Index of a compiled condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CondId(pub(crate) u32);

/// The names templates may use at top level.
pub(crate) const CONTEXT_VARS: [&str; 9] = [
    "slots",
    "lang",
    "channel",
    "text",
    "intent",
    "confidence",
    "emotion",
    "user",
    "fallbacks",
];

/// A compile problem, positioned relative to the start of the template source.
#[derive(Debug)]
pub(crate) struct TemplateError {
    /// 1-based line inside the template source.
    pub(crate) line: usize,
    /// What minijinja said.
    pub(crate) message: String,
}

impl TemplateError {
    fn from_minijinja(e: &minijinja::Error) -> Self {
        let message = match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        };
        TemplateError {
            line: e.line().unwrap_or(1),
            message,
        }
    }
}

/// The compiled templates and conditions of one bot.
#[derive(Debug)]
pub(crate) struct Templates {
    env: Environment<'static>,
    /// Generated template names, indexed by id (kept so rendering never formats a name).
    names: Vec<String>,
    /// The designer's source text per name index, for tooling and error messages.
    sources: Vec<String>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // Replies are plain text for chat channels: no HTML escaping.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Templates are written by designers, but a runaway macro must not blow the stack.
        env.set_recursion_limit(64);
        Templates {
            env,
            names: Vec::new(),
            sources: Vec::new(),
        }
    }
}

impl Templates {
    fn add(&mut self, source: String, compiled: String) -> Result<u32, TemplateError> {
        let idx = u32::try_from(self.names.len()).map_err(|_| TemplateError {
            line: 1,
            message: "too many templates in one bot".into(),
        })?;
        let name = format!("t{idx}");
        self.env
            .add_template_owned(name.clone(), compiled)
            .map_err(|e| TemplateError::from_minijinja(&e))?;
        self.names.push(name);
        self.sources.push(source);
        Ok(idx)
    }

    /// Compiles a reply template.
    pub(crate) fn compile_text(&mut self, source: &str) -> Result<TemplateId, TemplateError> {
        self.add(source.to_string(), source.to_string())
            .map(TemplateId)
    }

    /// Compiles a condition (a Jinja expression such as `slots.count > 2`).
    pub(crate) fn compile_condition(&mut self, source: &str) -> Result<CondId, TemplateError> {
        self.env
            .compile_expression(source)
            .map_err(|e| TemplateError::from_minijinja(&e))?;
        if source.contains("%}") || source.contains("{%") {
            // Would break out of the wrapper below; never valid in an expression anyway.
            return Err(TemplateError {
                line: 1,
                message: "a condition cannot contain `{%` or `%}`".into(),
            });
        }
        self.add(
            source.to_string(),
            format!("{{% if ({source}) %}}1{{% endif %}}"),
        )
        .map(CondId)
    }

    /// Variables the template at `idx` reads, with attribute paths (`slots.order_id`).
    pub(crate) fn variables(&self, idx: u32) -> Vec<String> {
        let Some(name) = self.names.get(idx as usize) else {
            return Vec::new();
        };
        let Ok(t) = self.env.get_template(name) else {
            return Vec::new();
        };
        let mut vars: Vec<String> = t.undeclared_variables(true).into_iter().collect();
        vars.sort();
        vars
    }

    /// True when `name` is a global function of the environment (`range`, `dict`, ...).
    pub(crate) fn is_global(&self, name: &str) -> bool {
        self.env.globals().any(|(n, _)| n == name)
    }

    /// The designer's source of a template or condition.
    pub(crate) fn source(&self, idx: u32) -> &str {
        self.sources.get(idx as usize).map_or("", String::as_str)
    }

    fn render_idx(&self, idx: u32, ctx: &Value) -> Result<String, minijinja::Error> {
        let name = self.names.get(idx as usize).ok_or_else(|| {
            minijinja::Error::new(
                minijinja::ErrorKind::TemplateNotFound,
                "unknown template id",
            )
        })?;
        self.env.get_template(name)?.render(ctx)
    }

    /// Renders a reply template.
    pub(crate) fn render(&self, id: TemplateId, ctx: &Value) -> Result<String, minijinja::Error> {
        self.render_idx(id.0, ctx)
    }

    /// Evaluates a condition; a condition that fails at runtime (e.g. comparing text with a
    /// number) is false, so a bad value steers the flow to the `else` branch, not a crash.
    pub(crate) fn eval(&self, id: CondId, ctx: &Value) -> bool {
        self.render_idx(id.0, ctx).is_ok_and(|s| s == "1")
    }
}

/// Everything a template or condition can see during one turn.
pub(crate) struct Ctx<'a> {
    pub(crate) slots: &'a BTreeMap<String, serde_json::Value>,
    pub(crate) lang: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) text: &'a str,
    pub(crate) user: &'a str,
    pub(crate) intent: Option<(&'a str, f32)>,
    pub(crate) signals: &'a Signals,
    pub(crate) fallbacks: u8,
}

/// The template context for one render.
pub(crate) fn context(c: &Ctx<'_>) -> Value {
    let s = c.signals;
    minijinja::context! {
        slots => Value::from_serialize(c.slots),
        lang => c.lang,
        channel => c.channel,
        text => c.text,
        intent => c.intent.map(|(n, _)| n),
        confidence => c.intent.map_or(0.0, |(_, x)| x),
        emotion => minijinja::context! {
            label => s.emotion.as_deref(),
            intensity => s.intensity,
            negative_streak => s.negative_streak,
            slope => s.slope,
            peak => s.peak,
        },
        user => minijinja::context! {
            id => c.user,
            vip => s.vip,
            tags => Value::from_serialize(&s.tags),
        },
        fallbacks => c.fallbacks,
    }
}

/// A context with only `slots`, `lang`, `channel` and `text` (tests and tooling).
pub(crate) fn simple_context(
    slots: &BTreeMap<String, serde_json::Value>,
    lang: &str,
    channel: &str,
    text: &str,
) -> Value {
    let signals = Signals::default();
    context(&Ctx {
        slots,
        lang,
        channel,
        text,
        user: "",
        intent: None,
        signals: &signals,
        fallbacks: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(slots: serde_json::Value) -> Value {
        let map: BTreeMap<String, serde_json::Value> = serde_json::from_value(slots).unwrap();
        simple_context(&map, "zh", "web", "hi")
    }

    #[test]
    fn renders_slots_and_context() {
        let mut t = Templates::default();
        let id = t
            .compile_text("订单 {{ slots.order_id }} ({{ lang }}/{{ channel }}) <b>")
            .unwrap();
        let out = t
            .render(id, &ctx(json!({"order_id": "A12345678"})))
            .unwrap();
        assert_eq!(out, "订单 A12345678 (zh/web) <b>");
    }

    #[test]
    fn missing_slot_renders_empty() {
        let mut t = Templates::default();
        let id = t
            .compile_text("[{{ slots.nope }}][{{ slots.a.b }}]")
            .unwrap();
        assert_eq!(t.render(id, &ctx(json!({}))).unwrap(), "[][]");
    }

    #[test]
    fn conditions_evaluate_and_fail_closed() {
        let mut t = Templates::default();
        let c = t.compile_condition("slots.count > 2").unwrap();
        assert!(t.eval(c, &ctx(json!({"count": 3}))));
        assert!(!t.eval(c, &ctx(json!({"count": 1}))));
        // Comparing text with a number orders by type in minijinja; arithmetic errors.
        let arith = t.compile_condition("slots.count + 1 > 2").unwrap();
        assert!(t.eval(arith, &ctx(json!({"count": 5}))));
        assert!(
            !t.eval(arith, &ctx(json!({"count": "x"}))),
            "runtime error is false"
        );
    }

    #[test]
    fn syntax_errors_are_compile_errors() {
        let mut t = Templates::default();
        let e = t.compile_text("hello {{ slots.x ").unwrap_err();
        assert!(e.message.contains("syntax error"), "{}", e.message);
        assert!(t.compile_condition("slots.x >").is_err());
        assert!(t.compile_condition("1 %} evil {% if 1").is_err());
    }

    #[test]
    fn variables_are_listed_with_paths() {
        let mut t = Templates::default();
        let id = t.compile_text("{{ slots.order_id }} {{ lang }}").unwrap();
        let vars = t.variables(id.0);
        assert!(vars.contains(&"slots.order_id".to_string()), "{vars:?}");
        assert!(t.is_global("range"));
    }
}
