//! [`KbSkill`]: the knowledge base as a flow skill.
//!
//! Arguments: `query` (required), `tags` (optional: a list or comma-separated text), `lang`
//! (optional: `zh`/`en`; restricts answers to that language). The best hit at or above the
//! confidence threshold is `Found` with `{id, question, answer, source, score, confidence}`
//! (and the next best as `alternatives`, for "did you mean" replies); otherwise `NotFound`,
//! so the flow can fall back to a person.

use std::sync::Arc;

use kefu_plugin::{Skill, SkillError, SkillInfo, SkillOutcome, SkillRequest, async_trait};
use serde_json::{Value, json};

use crate::{Hit, KnowledgeBase, Lang, SearchOptions};

/// The knowledge-base skill.
#[derive(Debug, Clone)]
pub struct KbSkill {
    name: String,
    kb: Arc<KnowledgeBase>,
    threshold: f32,
}

impl KbSkill {
    /// The default confidence below which the skill answers `NotFound`. Chosen on the
    /// fixtures: above it, the top hit was right in nearly every case; out-of-scope questions
    /// score below it.
    pub const DEFAULT_THRESHOLD: f32 = 0.35;

    /// The skill named `kb` over `kb`.
    pub fn new(kb: Arc<KnowledgeBase>) -> KbSkill {
        KbSkill {
            name: "kb".to_owned(),
            kb,
            threshold: KbSkill::DEFAULT_THRESHOLD,
        }
    }

    /// The same skill under another name (a bot with several knowledge bases).
    pub fn with_name(mut self, name: impl Into<String>) -> KbSkill {
        self.name = name.into();
        self
    }

    /// The same skill with another confidence threshold (clamped to 0..=1).
    pub fn with_threshold(mut self, threshold: f32) -> KbSkill {
        self.threshold = threshold.clamp(0.0, 1.0);
        self
    }

    /// The knowledge base it serves.
    pub fn knowledge_base(&self) -> &Arc<KnowledgeBase> {
        &self.kb
    }
}

fn tags_arg(req: &SkillRequest) -> Result<Vec<String>, SkillError> {
    let bad = |reason: &str| SkillError::BadArgument {
        name: "tags".into(),
        reason: reason.into(),
    };
    match req.arg("tags") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split([',', '，', '|'])
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_lowercase())
                    .ok_or_else(|| bad("expected a list of texts"))
            })
            .collect(),
        Some(_) => Err(bad("expected a list of texts or comma-separated text")),
    }
}

fn hit_json(h: &Hit) -> Value {
    json!({
        "id": h.entry.id,
        "question": h.entry.question,
        "answer": h.entry.answer,
        "source": h.entry.citation(),
        "score": h.score,
        "confidence": h.confidence,
    })
}

#[async_trait]
impl Skill for KbSkill {
    fn name(&self) -> &str {
        &self.name
    }

    fn info(&self) -> SkillInfo {
        SkillInfo {
            description: "Searches the bot's knowledge base (FAQ) and returns the best answer with its source and confidence".into(),
            required_args: vec!["query".into()],
            optional_args: vec!["tags".into(), "lang".into()],
        }
    }

    async fn call(&self, req: SkillRequest) -> Result<SkillOutcome, SkillError> {
        let query = req.arg_str("query")?;
        let tags = tags_arg(&req)?;
        let lang = match req.opt_str("lang") {
            None => None,
            Some(l) => Some(Lang::parse(&l).ok_or_else(|| SkillError::BadArgument {
                name: "lang".into(),
                reason: format!("expected `zh` or `en`, got `{l}`"),
            })?),
        };
        let opts = SearchOptions {
            limit: 3,
            tags,
            lang,
        };
        // Searching an in-memory index takes well under a millisecond: no need to move it off
        // the async worker.
        let hits = self
            .kb
            .try_search(&query, &opts)
            .map_err(|e| SkillError::Backend(e.to_string()))?;
        let Some(best) = hits.first() else {
            return Ok(SkillOutcome::not_found("no knowledge-base entry matches"));
        };
        if best.confidence < self.threshold {
            return Ok(SkillOutcome::not_found(format!(
                "best match `{}` has confidence {:.2}, below {:.2}",
                best.entry.id, best.confidence, self.threshold
            )));
        }
        let mut data = hit_json(best);
        let alternatives: Vec<Value> = hits[1..]
            .iter()
            .filter(|h| h.confidence >= self.threshold)
            .map(hit_json)
            .collect();
        if let Value::Object(m) = &mut data {
            m.insert("alternatives".into(), Value::Array(alternatives));
        }
        Ok(SkillOutcome::found(data))
    }
}
