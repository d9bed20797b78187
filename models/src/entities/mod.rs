//! Entities: the values a user's turn carries (an ID number, a phone, a date, an amount, an
//! order number, a product from the bot's list), found in mixed Chinese/English text.
//!
//! [`EntityExtractor::extract`] (or [`extract_entities`] with the built-ins only) returns
//! [`Entity`] values with:
//! - `start..end`: **byte offsets into the original text** as the user typed it (full-width
//!   digits, zero-width characters and all), so a channel can highlight or mask the span;
//! - `value`: the normalised value as JSON (see [`EntityKind`] for each kind's shape);
//! - `name`: the built-in kind's name (`mobile`, `date`, ...) or the designer's entity name.
//!
//! How: the text is *folded* once (per character NFKC, lowercase, invisible characters
//! dropped) with a map from each folded byte back to the original character, every finder
//! runs on the folded text, and spans are mapped back. Built-ins validate what they find
//! (check digits, Luhn, calendar dates), so `123456789012345678` is not a resident ID
//! unless its check digit is right.
//!
//! Overlaps are resolved by priority, then length: designer regexes, lookup lists, resident
//! ID, bank card, mobile, e-mail, date, amount, order number. The result is sorted by
//! `start` and spans never overlap. No input can make extraction panic; its cost is linear
//! in the text for the built-ins (regex crate guarantees) plus the lookup lists' size.

mod amounts;
mod cn_number;
mod custom;
mod dates;
pub(crate) mod validate;

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::error::{ModelError, Result};
use crate::normalize::is_invisible;

pub use custom::{LookupEntity, LookupEntry, RegexEntity};
pub use dates::today_at_offset;

/// The default order-number pattern: an optional prefix of 1–4 letters (with an optional
/// `-`/`_`) and 8–20 digits, e.g. `SO20260305001`, `JD-12345678`, `202603050001`.
pub const DEFAULT_ORDER_PATTERN: &str = r"(?:[a-z]{1,4}[-_]?)?[0-9]{8,20}";

/// Upper bound on a compiled designer pattern, as for intent rules.
const SIZE_LIMIT: usize = 1 << 20;

/// What kind of entity was found; built-ins are validated, the others are the designer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// 18-digit PRC resident ID with a valid birth date and ISO 7064 MOD 11-2 check digit.
    /// Value: `{"id", "birth_date": "YYYY-MM-DD", "gender": "male"|"female", "region"}`.
    ResidentId,
    /// Bank card number, 16–19 digits passing the Luhn check.
    /// Value: `{"number", "last4"}`.
    BankCard,
    /// Mainland China mobile number (`1[3-9]` + 9 digits, optional `+86`/`86`).
    /// Value: the 11 digits as a string.
    Mobile,
    /// E-mail address. Value: the address, lowercased.
    Email,
    /// A calendar date, absolute or relative to the supplied "today".
    /// Value: `"YYYY-MM-DD"`.
    Date,
    /// An amount of money. Value: `{"value": number, "currency": "CNY"|"USD"|...}`.
    Amount,
    /// An order number matching the configured pattern. Value: the number, uppercased.
    OrderNumber,
    /// A designer's regular-expression entity. Value: the `value` capture group if the
    /// pattern has one, else the whole match (folded: lowercased, half-width).
    Regex,
    /// A designer's lookup-list entity. Value: the entry's canonical value.
    Lookup,
}

impl EntityKind {
    /// The built-in kind's entity name (`resident_id`, `bank_card`, `mobile`, `email`,
    /// `date`, `amount`, `order_number`); `None` for designer kinds, named by their config.
    pub fn builtin_name(self) -> Option<&'static str> {
        Some(match self {
            EntityKind::ResidentId => "resident_id",
            EntityKind::BankCard => "bank_card",
            EntityKind::Mobile => "mobile",
            EntityKind::Email => "email",
            EntityKind::Date => "date",
            EntityKind::Amount => "amount",
            EntityKind::OrderNumber => "order_number",
            EntityKind::Regex | EntityKind::Lookup => return None,
        })
    }

    /// Overlap priority: lower wins.
    fn priority(self) -> u8 {
        match self {
            EntityKind::Regex => 0,
            EntityKind::Lookup => 1,
            EntityKind::ResidentId => 2,
            EntityKind::BankCard => 3,
            EntityKind::Mobile => 4,
            EntityKind::Email => 5,
            EntityKind::Date => 6,
            EntityKind::Amount => 7,
            EntityKind::OrderNumber => 8,
        }
    }
}

/// One entity found in a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// The entity name: a built-in's name (see [`EntityKind::builtin_name`]) or the
    /// designer's name for regex and lookup entities.
    pub name: String,
    /// What found it.
    pub kind: EntityKind,
    /// Byte offset of the first byte in the original text.
    pub start: usize,
    /// Byte offset one past the last byte in the original text.
    pub end: usize,
    /// The original text of the span, as typed.
    pub text: String,
    /// The normalised value (shape per [`EntityKind`]).
    pub value: Value,
    /// 1 for exact and validated matches; below 1 for fuzzy lookup matches
    /// (`1 - edits / length`).
    pub score: f32,
}

/// What an [`EntityExtractor`] looks for. Deserialises from flow files; unknown fields are
/// rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntityConfig {
    /// Whether the built-in kinds are extracted. Default true.
    pub builtins: bool,
    /// The order-number pattern (Rust regex, matched case-insensitively on folded text,
    /// never inside a longer run of letters/digits). Default [`DEFAULT_ORDER_PATTERN`].
    pub order_pattern: String,
    /// The designer's regular-expression entities.
    pub regexes: Vec<RegexEntity>,
    /// The designer's lookup lists.
    pub lookups: Vec<LookupEntity>,
}

impl Default for EntityConfig {
    fn default() -> Self {
        Self {
            builtins: true,
            order_pattern: DEFAULT_ORDER_PATTERN.to_owned(),
            regexes: Vec::new(),
            lookups: Vec::new(),
        }
    }
}

/// A compiled entity extractor. Immutable; `Send + Sync`; share one per bot version.
#[derive(Debug, Clone)]
pub struct EntityExtractor {
    builtins: bool,
    /// `None` only if the built-in default pattern failed to compile (never in practice).
    order: Option<Regex>,
    regexes: Vec<custom::CompiledRegex>,
    lookups: Vec<custom::CompiledLookup>,
}

impl Default for EntityExtractor {
    fn default() -> Self {
        DEFAULT_EXTRACTOR.clone()
    }
}

static DEFAULT_EXTRACTOR: LazyLock<EntityExtractor> = LazyLock::new(|| EntityExtractor {
    builtins: true,
    // A constant pattern covered by tests; `ok()` only avoids a panic path.
    order: compile_order(DEFAULT_ORDER_PATTERN).ok(),
    regexes: Vec::new(),
    lookups: Vec::new(),
});

fn compile_order(pattern: &str) -> std::result::Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(SIZE_LIMIT)
        .build()
}

/// Extracts the built-in entities from `text` with dates resolved against `today`.
/// Same as `EntityExtractor::default().extract(text, today)` without the clone.
pub fn extract_entities(text: &str, today: NaiveDate) -> Vec<Entity> {
    DEFAULT_EXTRACTOR.extract(text, today)
}

impl EntityExtractor {
    /// Compiles a configuration.
    ///
    /// # Errors
    /// [`ModelError::InvalidEntity`] naming the entity whose pattern does not compile or
    /// whose definition is empty.
    pub fn new(config: &EntityConfig) -> Result<Self> {
        let order =
            compile_order(&config.order_pattern).map_err(|e| ModelError::InvalidEntity {
                name: "order_number".to_owned(),
                reason: e.to_string(),
            })?;
        let regexes = config
            .regexes
            .iter()
            .map(custom::CompiledRegex::new)
            .collect::<Result<Vec<_>>>()?;
        let lookups = config
            .lookups
            .iter()
            .map(custom::CompiledLookup::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            builtins: config.builtins,
            order: Some(order),
            regexes,
            lookups,
        })
    }

    /// Finds the entities of `text`; relative dates (`明天`, `next monday`) are resolved
    /// against `today`. Sorted by `start`, non-overlapping.
    pub fn extract(&self, text: &str, today: NaiveDate) -> Vec<Entity> {
        let folded = Folded::new(text);
        let mut found: Vec<Found> = Vec::new();
        for r in &self.regexes {
            r.find(&folded.text, &mut found);
        }
        for l in &self.lookups {
            l.find(&folded.text, &mut found);
        }
        if self.builtins {
            validate::find_resident_ids(&folded.text, today, &mut found);
            validate::find_bank_cards(&folded.text, &mut found);
            validate::find_mobiles(&folded.text, &mut found);
            validate::find_emails(&folded.text, &mut found);
            dates::find_dates(&folded.text, today, &mut found);
            amounts::find_amounts(&folded.text, &mut found);
            let orders = self.order.iter().flat_map(|o| o.find_iter(&folded.text));
            for m in orders {
                if ascii_bounded(&folded.text, m.start(), m.end())
                    && m.as_str().bytes().any(|b| b.is_ascii_digit())
                {
                    found.push(Found::new(
                        EntityKind::OrderNumber,
                        "order_number",
                        m.start(),
                        m.end(),
                        Value::String(m.as_str().to_ascii_uppercase()),
                    ));
                }
            }
        }
        resolve(found)
            .into_iter()
            .filter_map(|f| folded.to_entity(text, f))
            .collect()
    }
}

/// A candidate on the folded text, before overlap resolution.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) kind: EntityKind,
    pub(crate) name: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) value: Value,
    pub(crate) score: f32,
}

impl Found {
    pub(crate) fn new(
        kind: EntityKind,
        name: &str,
        start: usize,
        end: usize,
        value: Value,
    ) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            start,
            end,
            value,
            score: 1.0,
        }
    }
}

/// Keeps the best non-overlapping candidates: by priority, then longer, then earlier.
fn resolve(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by(|a, b| {
        a.kind
            .priority()
            .cmp(&b.kind.priority())
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(b.score.total_cmp(&a.score))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Found> = Vec::with_capacity(found.len());
    for f in found {
        if f.start < f.end && kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

/// Whether `text[start..end]` is not glued to ASCII letters or digits on either side
/// (CJK, punctuation, spaces and the text's ends all count as boundaries). `\b` would not
/// do: regex treats CJK characters as word characters, so `手机13812345678` has no `\b`.
pub(crate) fn ascii_bounded(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c.is_ascii_alphanumeric())
        && !after.is_some_and(|c| c.is_ascii_alphanumeric())
}

/// The text as finders see it, with the way back to the original's byte offsets.
struct Folded {
    text: String,
    /// For each byte of `text`: the original character's start byte.
    starts: Vec<usize>,
    /// For each byte of `text`: the original character's end byte.
    ends: Vec<usize>,
}

impl Folded {
    fn new(original: &str) -> Self {
        let mut text = String::with_capacity(original.len());
        let mut starts = Vec::with_capacity(original.len());
        let mut ends = Vec::with_capacity(original.len());
        for (i, c) in original.char_indices() {
            if is_invisible(c) && !c.is_whitespace() {
                continue;
            }
            if c.is_ascii() {
                text.push(c.to_ascii_lowercase());
            } else {
                // Per-character NFKC: enough for width and compatibility forms (`１` → `1`,
                // `＠` → `@`, `￥` → `¥`), and it keeps the map to the original exact.
                for d in std::iter::once(c).nfkc() {
                    text.extend(d.to_lowercase());
                }
            }
            let end = i + c.len_utf8();
            starts.resize(text.len(), i);
            ends.resize(text.len(), end);
        }
        Self { text, starts, ends }
    }

    fn to_entity(&self, original: &str, f: Found) -> Option<Entity> {
        let start = *self.starts.get(f.start)?;
        let end = *self.ends.get(f.end.checked_sub(1)?)?;
        Some(Entity {
            name: f.name,
            kind: f.kind,
            start,
            end,
            text: original.get(start..end)?.to_owned(),
            value: f.value,
            score: f.score,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        // A Thursday.
        NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default()
    }

    #[test]
    fn spans_point_into_the_original_text() {
        let text = "我的手机是１３８\u{200B}１２３４５６７８，谢谢";
        let es = extract_entities(text, today());
        assert_eq!(es.len(), 1, "{es:?}");
        assert_eq!(es[0].name, "mobile");
        assert_eq!(es[0].value, json!("13812345678"));
        assert_eq!(&text[es[0].start..es[0].end], es[0].text);
        assert!(es[0].text.starts_with('１') && es[0].text.ends_with('８'));
    }

    #[test]
    fn mixed_text_finds_every_kind_without_overlap() {
        let text = "订单SO2026030500123明天退款¥20, email me at Li.Wei@Example.com or call +86 139-1234-5678";
        let es = extract_entities(text, today());
        let names: Vec<&str> = es.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["order_number", "date", "amount", "email", "mobile"],
            "{es:?}"
        );
        assert_eq!(es[0].value, json!("SO2026030500123"));
        assert_eq!(es[1].value, json!("2026-03-06"));
        assert_eq!(es[2].value, json!({"value": 20.0, "currency": "CNY"}));
        assert_eq!(es[3].value, json!("li.wei@example.com"));
        assert_eq!(es[4].value, json!("13912345678"));
        assert!(es.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn order_pattern_is_configurable_and_checked() {
        let cfg = EntityConfig {
            order_pattern: r"dd[0-9]{6}".to_owned(),
            ..Default::default()
        };
        let ex = match EntityExtractor::new(&cfg) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        let es = ex.extract("查一下DD123456和SO2026030500123", today());
        assert_eq!(es.len(), 1, "{es:?}");
        assert_eq!(es[0].value, json!("DD123456"));
        let bad = EntityConfig {
            order_pattern: "(".to_owned(),
            ..Default::default()
        };
        assert!(matches!(
            EntityExtractor::new(&bad),
            Err(ModelError::InvalidEntity { .. })
        ));
    }

    #[test]
    fn odd_input_is_safe() {
        for t in [
            "",
            "\u{200B}",
            "😀😀",
            "１",
            "¥",
            "$",
            "@@",
            "明",
            "下周",
            "万万万元",
        ] {
            let _ = extract_entities(t, today());
        }
        let long = "13812345678 ".repeat(500);
        assert_eq!(extract_entities(&long, today()).len(), 500);
    }
}
