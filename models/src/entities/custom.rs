//! The designer's entities: regular expressions and lookup lists with fuzzy matching.
//!
//! A **regex entity** is a Rust regex matched case-insensitively on the folded text; its
//! value is the capture group named `value` when there is one (`型号(?P<value>[a-z0-9]+)`),
//! else the whole match.
//!
//! A **lookup entity** is a list of canonical values, each with synonyms (`iPhone 15` ←
//! `苹果15`, `iphone15`). Matching, on folded text:
//! 1. exact: every phrase (value or synonym), longest first; a phrase starting (ending) with
//!    a Latin letter or digit must not be glued to another one (`pro` is not in `product`);
//! 2. fuzzy, when enabled: windows of the text with as many words (Latin) or characters
//!    (CJK, ±1) as the phrase, within Levenshtein distance 1 for phrases of 5+ characters
//!    (3+ for Chinese) and 2 for 9+. Shorter phrases only match exactly: one typo in a
//!    four-letter word usually makes another word. Windows overlapping an exact match of
//!    the same list are skipped, so a fuzzy match never displaces an exact one.
//!
//! Fuzzy cost is (text units × phrases × phrase length²); lists of hundreds of entries
//! are fine per turn, tens of thousands want a dedicated index.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EntityKind, Found, SIZE_LIMIT};
use crate::error::{ModelError, Result};
use crate::normalize::{is_cjk, normalize};

/// A designer's regular-expression entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexEntity {
    /// The entity name the flow refers to.
    pub name: String,
    /// The pattern (Rust regex syntax, case-insensitive). A `(?P<value>...)` group, if
    /// present, is the value.
    pub pattern: String,
}

/// One canonical value of a lookup list and the other ways users write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupEntry {
    /// The canonical value, reported as the entity's value (and matched itself).
    pub value: String,
    /// Other phrasings that mean the same value.
    #[serde(default)]
    pub synonyms: Vec<String>,
}

/// A designer's lookup-list entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupEntity {
    /// The entity name the flow refers to.
    pub name: String,
    /// The values.
    pub entries: Vec<LookupEntry>,
    /// Whether near misses (typos) match too. Default true.
    #[serde(default = "default_true")]
    pub fuzzy: bool,
}

fn default_true() -> bool {
    true
}

fn invalid(name: &str, reason: impl Into<String>) -> ModelError {
    ModelError::InvalidEntity {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRegex {
    name: String,
    re: Regex,
    has_value_group: bool,
}

impl CompiledRegex {
    pub(crate) fn new(def: &RegexEntity) -> Result<Self> {
        if def.name.trim().is_empty() {
            return Err(invalid(&def.name, "the name is empty"));
        }
        let re = RegexBuilder::new(&def.pattern)
            .case_insensitive(true)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| invalid(&def.name, e.to_string()))?;
        let has_value_group = re.capture_names().flatten().any(|n| n == "value");
        Ok(Self {
            name: def.name.trim().to_owned(),
            re,
            has_value_group,
        })
    }

    pub(crate) fn find(&self, text: &str, out: &mut Vec<Found>) {
        for caps in self.re.captures_iter(text) {
            let Some(all) = caps.get(0) else { continue };
            if all.is_empty() {
                continue;
            }
            let value = if self.has_value_group {
                caps.name("value").map_or("", |m| m.as_str())
            } else {
                all.as_str()
            };
            out.push(Found::new(
                EntityKind::Regex,
                &self.name,
                all.start(),
                all.end(),
                Value::String(value.to_owned()),
            ));
        }
    }
}

#[derive(Debug, Clone)]
struct Phrase {
    text: String,
    chars: Vec<char>,
    /// Number of units (Latin words and CJK characters).
    units: usize,
    value: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledLookup {
    name: String,
    values: Vec<String>,
    /// Longest first.
    phrases: Vec<Phrase>,
    fuzzy: bool,
}

/// A text unit: a Latin word or one CJK character, as a byte range of the folded text.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
}

fn units_of(text: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut word: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let latin = c.is_alphanumeric() && !is_cjk(c);
        if latin {
            word.get_or_insert(i);
            continue;
        }
        if let Some(s) = word.take() {
            out.push(Unit { start: s, end: i });
        }
        if is_cjk(c) {
            out.push(Unit {
                start: i,
                end: i + c.len_utf8(),
            });
        }
    }
    if let Some(s) = word {
        out.push(Unit {
            start: s,
            end: text.len(),
        });
    }
    out
}

/// Whether `text[start..end]` is not glued to a Latin word character on a Latin edge.
fn word_bounded(text: &str, start: usize, end: usize) -> bool {
    let latin = |c: char| c.is_alphanumeric() && !is_cjk(c);
    let first = text[start..end].chars().next();
    let last = text[start..end].chars().next_back();
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let glued_before = first.is_some_and(latin) && before.is_some_and(latin);
    let glued_after = last.is_some_and(latin) && after.is_some_and(latin);
    !glued_before && !glued_after
}

fn max_edits(p: &Phrase) -> usize {
    let n = p.chars.len();
    let cjk = p.chars.iter().any(|&c| is_cjk(c));
    match n {
        n if n >= 9 => 2,
        n if n >= 5 || (cjk && n >= 3) => 1,
        _ => 0,
    }
}

impl CompiledLookup {
    pub(crate) fn new(def: &LookupEntity) -> Result<Self> {
        let name = def.name.trim();
        if name.is_empty() {
            return Err(invalid(&def.name, "the name is empty"));
        }
        if def.entries.is_empty() {
            return Err(invalid(name, "the list has no entries"));
        }
        let mut phrases = Vec::new();
        let mut values = Vec::with_capacity(def.entries.len());
        for (vi, entry) in def.entries.iter().enumerate() {
            if entry.value.trim().is_empty() {
                return Err(invalid(name, format!("entry #{vi} has an empty value")));
            }
            values.push(entry.value.trim().to_owned());
            for raw in std::iter::once(&entry.value).chain(&entry.synonyms) {
                let text = normalize(raw);
                if text.is_empty() {
                    return Err(invalid(name, format!("entry #{vi} has an empty synonym")));
                }
                let units = units_of(&text).len();
                if units == 0 {
                    continue;
                }
                phrases.push(Phrase {
                    chars: text.chars().collect(),
                    text,
                    units,
                    value: vi,
                });
            }
        }
        phrases.sort_by_key(|p| std::cmp::Reverse(p.chars.len()));
        Ok(Self {
            name: name.to_owned(),
            values,
            phrases,
            fuzzy: def.fuzzy,
        })
    }

    pub(crate) fn find(&self, text: &str, out: &mut Vec<Found>) {
        let first = out.len();
        for p in &self.phrases {
            let mut from = 0;
            while let Some(pos) = text.get(from..).and_then(|t| t.find(&p.text)) {
                let (s, e) = (from + pos, from + pos + p.text.len());
                if word_bounded(text, s, e) {
                    self.push(out, s, e, p.value, 1.0);
                }
                from = s + text[s..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if !self.fuzzy {
            return;
        }
        let exact: Vec<(usize, usize)> = out[first..].iter().map(|f| (f.start, f.end)).collect();
        let units = units_of(text);
        for p in &self.phrases {
            let k = max_edits(p);
            if k == 0 {
                continue;
            }
            let cjk = p.chars.iter().any(|&c| is_cjk(c));
            let lens: &[usize] = if cjk {
                &[p.units, p.units.saturating_sub(1), p.units + 1]
            } else {
                &[p.units]
            };
            for &n in lens {
                if n == 0 || n > units.len() {
                    continue;
                }
                for w in units.windows(n) {
                    let (s, e) = (w[0].start, w[n - 1].end);
                    if exact.iter().any(|&(a, b)| s < b && a < e) {
                        continue;
                    }
                    let window = &text[s..e];
                    let d = strsim::levenshtein(window, &p.text);
                    if d > 0 && d <= k {
                        let score = 1.0 - d as f32 / p.chars.len().max(1) as f32;
                        self.push(out, s, e, p.value, score);
                    }
                }
            }
        }
    }

    fn push(&self, out: &mut Vec<Found>, s: usize, e: usize, value: usize, score: f32) {
        let v = self.values.get(value).cloned().unwrap_or_default();
        let mut f = Found::new(EntityKind::Lookup, &self.name, s, e, Value::String(v));
        f.score = score;
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::json;

    use super::super::{EntityConfig, EntityExtractor};
    use super::*;

    fn extractor() -> EntityExtractor {
        let cfg = EntityConfig {
            regexes: vec![RegexEntity {
                name: "sku".into(),
                pattern: r"sku[:：]?\s*(?P<value>[a-z]{2}[0-9]{3})".into(),
            }],
            lookups: vec![LookupEntity {
                name: "product".into(),
                entries: vec![
                    LookupEntry {
                        value: "iPhone 15".into(),
                        synonyms: vec!["苹果15".into(), "iphone15".into()],
                    },
                    LookupEntry {
                        value: "AirPods".into(),
                        synonyms: vec!["蓝牙耳机".into()],
                    },
                    LookupEntry {
                        value: "Pro".into(),
                        synonyms: vec![],
                    },
                ],
                fuzzy: true,
            }],
            ..Default::default()
        };
        match EntityExtractor::new(&cfg) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn found(text: &str) -> Vec<(String, serde_json::Value, f32)> {
        let today = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default();
        extractor()
            .extract(text, today)
            .into_iter()
            .map(|e| (e.name, e.value, e.score))
            .collect()
    }

    #[test]
    fn exact_lookup_and_synonyms() {
        assert_eq!(
            found("我的苹果15坏了"),
            [("product".into(), json!("iPhone 15"), 1.0)]
        );
        assert_eq!(
            found("my IPHONE 15 broke"),
            [("product".into(), json!("iPhone 15"), 1.0)]
        );
        assert_eq!(
            found("买的蓝牙耳机"),
            [("product".into(), json!("AirPods"), 1.0)]
        );
        // `pro` inside `product` is not the entry `Pro`.
        assert!(found("this product").is_empty());
        assert_eq!(found("the pro one")[0].1, json!("Pro"));
    }

    #[test]
    fn fuzzy_lookup() {
        let f = found("my airpod is lost");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].1, json!("AirPods"));
        assert!(f[0].2 < 1.0 && f[0].2 > 0.8);
        // One wrong character in a Chinese synonym.
        assert_eq!(found("蓝芽耳机没声音")[0].1, json!("AirPods"));
        // Too far: no match.
        assert!(found("my airbag").is_empty());
    }

    #[test]
    fn regex_entities_use_their_value_group() {
        assert_eq!(
            found("SKU: AB123 还有货吗"),
            [("sku".into(), json!("ab123"), 1.0)]
        );
    }

    #[test]
    fn bad_definitions_are_reported() {
        let bad = EntityConfig {
            regexes: vec![RegexEntity {
                name: "x".into(),
                pattern: "(".into(),
            }],
            ..Default::default()
        };
        assert!(matches!(
            EntityExtractor::new(&bad),
            Err(ModelError::InvalidEntity { name, .. }) if name == "x"
        ));
        let empty = EntityConfig {
            lookups: vec![LookupEntity {
                name: "p".into(),
                entries: vec![],
                fuzzy: true,
            }],
            ..Default::default()
        };
        assert!(EntityExtractor::new(&empty).is_err());
    }
}
