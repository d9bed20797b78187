//! [`IntentRules`]: regular-expression rules that decide an intent before the model does.
//!
//! Designers use rules for phrasings that must never be misread, whatever the model learned:
//! `^(转人工|人工客服)$` → `human_agent`, `\b(unsubscribe|stop)\b` → `opt_out`. A rule that
//! matches wins over the classifier with confidence 1.
//!
//! Invariants: patterns are compiled once, when the rules are built, case-insensitively (user
//! text is lowercased by [`normalize`](crate::normalize), designers may write any case); the
//! regex engine guarantees matching in time linear in the text, so a pattern cannot be made
//! to backtrack catastrophically by user input; when several rules match, the first in list
//! order wins.

use regex::{RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

use crate::classifier::IntentPrediction;
use crate::error::{ModelError, Result};

/// Upper bound on the compiled size of all patterns together; a designer's typo such as
/// `(a{1000}){1000}` is reported instead of eating memory.
const SIZE_LIMIT: usize = 8 << 20;

/// One rule: when `pattern` matches the normalised text, the intent is `intent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRule {
    /// A regular expression (Rust `regex` syntax), matched anywhere in the text unless
    /// anchored with `^`/`$`.
    pub pattern: String,
    /// The intent this rule yields.
    pub intent: String,
}

impl IntentRule {
    /// Convenience constructor.
    pub fn new(pattern: impl Into<String>, intent: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            intent: intent.into(),
        }
    }
}

/// A compiled, ordered list of rules. Immutable; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct IntentRules {
    set: RegexSet,
    intents: Vec<String>,
}

impl Default for IntentRules {
    fn default() -> Self {
        Self {
            set: RegexSet::empty(),
            intents: Vec::new(),
        }
    }
}

impl IntentRules {
    /// Compiles `rules`, keeping their order (first match wins).
    ///
    /// # Errors
    /// [`ModelError::InvalidRule`] naming the first rule whose pattern does not compile
    /// (or is too large), and [`ModelError::EmptyIntent`] for a rule without an intent.
    pub fn new(rules: &[IntentRule]) -> Result<Self> {
        // Compile one by one first: a RegexSet error would not say which pattern is wrong.
        for (index, rule) in rules.iter().enumerate() {
            if rule.intent.trim().is_empty() {
                return Err(ModelError::EmptyIntent { index });
            }
            RegexSetBuilder::new([rule.pattern.as_str()])
                .case_insensitive(true)
                .size_limit(SIZE_LIMIT)
                .build()
                .map_err(|e| ModelError::InvalidRule {
                    index,
                    intent: rule.intent.clone(),
                    reason: e.to_string(),
                })?;
        }
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.pattern.as_str()))
            .case_insensitive(true)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| ModelError::InvalidRule {
                index: rules.len().saturating_sub(1),
                intent: rules.last().map(|r| r.intent.clone()).unwrap_or_default(),
                reason: format!("the rules together are too large: {e}"),
            })?;
        Ok(Self {
            set,
            intents: rules.iter().map(|r| r.intent.trim().to_owned()).collect(),
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.intents.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }

    /// The intent of the first rule matching `text` (already normalised), if any.
    pub fn matching(&self, text: &str) -> Option<&str> {
        if self.intents.is_empty() {
            return None;
        }
        // `matches` reports every rule; the lowest index is the first in list order.
        let first = self.set.matches(text).iter().next()?;
        self.intents.get(first).map(String::as_str)
    }

    /// A prediction with confidence 1 for the first matching rule, if any.
    pub fn predict(&self, text: &str) -> Option<IntentPrediction> {
        self.matching(text).map(|intent| IntentPrediction {
            intent: Some(intent.to_owned()),
            confidence: 1.0,
            ranking: vec![(intent.to_owned(), 1.0)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(&str, &str)]) -> IntentRules {
        let list: Vec<IntentRule> = list.iter().map(|(p, i)| IntentRule::new(*p, *i)).collect();
        match IntentRules::new(&list) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let r = rules(&[
            (r"^(转人工|人工客服)$", "human_agent"),
            ("人工", "other"),
            (r"\bagent\b", "human_agent"),
        ]);
        assert_eq!(r.matching("转人工"), Some("human_agent"));
        assert_eq!(r.matching("我要转人工"), Some("other"));
        assert_eq!(r.matching("Agent please"), Some("human_agent"));
        assert_eq!(r.matching("agents"), None);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn predictions_are_certain() {
        let r = rules(&[("refund", "refund_status")]);
        let p = r.predict("where is my refund");
        assert_eq!(
            p.as_ref().and_then(|p| p.intent.as_deref()),
            Some("refund_status")
        );
        assert_eq!(p.map(|p| p.confidence), Some(1.0));
        assert!(r.predict("hello").is_none());
        assert!(IntentRules::default().predict("anything").is_none());
    }

    #[test]
    fn bad_patterns_are_reported_with_their_index() {
        let list = [
            IntentRule::new("ok", "a"),
            IntentRule::new("(unclosed", "b"),
        ];
        assert!(matches!(
            IntentRules::new(&list),
            Err(ModelError::InvalidRule { index: 1, .. })
        ));
        let list = [IntentRule::new("ok", "  ")];
        assert_eq!(
            IntentRules::new(&list).err(),
            Some(ModelError::EmptyIntent { index: 0 })
        );
        let huge = [IntentRule::new("(a{1000}){1000}", "x")];
        assert!(IntentRules::new(&huge).is_err());
    }
}
