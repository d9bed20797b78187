//! Slot types: extracting a typed value from what the user typed, and checking literals.
//!
//! Invariant: every value [`SlotType::extract`] returns is one [`SlotType::accepts`]
//! accepts, so the slots in a dialog state always have their declared types. Extraction
//! looks for a value *anywhere* in the text ("我的订单号是 A12345678" fills an `order_id`),
//! except for `text`, which takes the whole (trimmed) message. All extractors are linear
//! scans or pre-compiled regexes: they run inside the interpreter's per-turn budget.

use serde_json::Value;

use crate::slot_builtin as builtin;

/// Longest `text` slot value kept, in characters; longer answers are cut so one message
/// cannot bloat the (in-memory, persisted) dialog state.
pub const MAX_TEXT_SLOT_CHARS: usize = 500;

/// The type of a slot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SlotType {
    /// Free text: the whole trimmed message (non-empty, at most [`MAX_TEXT_SLOT_CHARS`]).
    Text,
    /// A whole number, optionally bounded; understands ASCII digits and simple Chinese
    /// numerals up to 99 (`两`, `十五`, `二十三`).
    Integer {
        /// Smallest accepted value.
        min: Option<i64>,
        /// Largest accepted value.
        max: Option<i64>,
    },
    /// A decimal number, optionally bounded.
    Number {
        /// Smallest accepted value.
        min: Option<f64>,
        /// Largest accepted value.
        max: Option<f64>,
    },
    /// Yes or no, from common Chinese and English answers.
    Bool,
    /// One of a fixed list of values, each with optional synonyms.
    Enum {
        /// The accepted values.
        values: Vec<EnumValue>,
    },
    /// Text matching a regex (first capture group if there is one, else the whole match).
    Regex {
        /// The compiled pattern.
        pattern: regex::Regex,
    },
    /// Built-in order number: a run of 8–20 ASCII letters and digits containing at least one
    /// digit, delimited by anything else; stored upper-cased.
    OrderId,
    /// Built-in mainland China mobile number `1[3-9]\d{9}` (spaces/dashes inside and a
    /// `+86`/`86` prefix are tolerated); stored as the 11 digits.
    Phone,
    /// Built-in e-mail address `local@domain.tld`.
    Email,
    /// A calendar date with its year, stored as `YYYY-MM-DD`.
    Date,
    /// An amount of money (non-negative), stored as a number.
    Amount,
    /// A mainland resident ID number (18 characters, checksum verified), upper-cased.
    IdCard,
    /// A bank card number (16–19 digits, Luhn verified), stored as the digits.
    BankCard,
    /// Any JSON value, e.g. the data a skill returned (`call: ... save:`). Never asked for:
    /// there is nothing to extract from a message.
    Json,
}

/// One value of an `enum` slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumValue {
    /// The canonical value stored in the slot.
    pub value: String,
    /// Other words the user may use for it (matched case-insensitively).
    pub synonyms: Vec<String>,
}

/// The YAML names of the slot types, for the loader's "unknown slot type" hint.
pub const SLOT_TYPE_NAMES: [&str; 14] = [
    "text",
    "integer",
    "number",
    "bool",
    "enum",
    "regex",
    "order_id",
    "phone",
    "email",
    "date",
    "amount",
    "id_card",
    "bank_card",
    "json",
];

impl SlotType {
    /// The YAML name of this type.
    pub fn name(&self) -> &'static str {
        match self {
            SlotType::Text => "text",
            SlotType::Integer { .. } => "integer",
            SlotType::Number { .. } => "number",
            SlotType::Bool => "bool",
            SlotType::Enum { .. } => "enum",
            SlotType::Regex { .. } => "regex",
            SlotType::OrderId => "order_id",
            SlotType::Phone => "phone",
            SlotType::Email => "email",
            SlotType::Date => "date",
            SlotType::Amount => "amount",
            SlotType::IdCard => "id_card",
            SlotType::BankCard => "bank_card",
            SlotType::Json => "json",
        }
    }

    /// Finds a value of this type in `text`; `None` when there is none (a failed answer).
    pub fn extract(&self, text: &str) -> Option<Value> {
        match self {
            SlotType::Text => {
                let t = text.trim();
                if t.is_empty() {
                    return None;
                }
                Some(Value::String(t.chars().take(MAX_TEXT_SLOT_CHARS).collect()))
            }
            SlotType::Integer { min, max } => integers(text)
                .find(|n| min.is_none_or(|m| *n >= m) && max.is_none_or(|m| *n <= m))
                .map(Value::from),
            SlotType::Number { min, max } => numbers(text)
                .find(|n| min.is_none_or(|m| *n >= m) && max.is_none_or(|m| *n <= m))
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            SlotType::Bool => yes_no(text).map(Value::Bool),
            SlotType::Enum { values } => enum_value(values, text).map(Value::String),
            SlotType::Regex { pattern } => {
                let caps = pattern.captures(text)?;
                let m = caps.get(1).or_else(|| caps.get(0))?;
                Some(Value::String(m.as_str().to_string()))
            }
            SlotType::OrderId => order_id(text).map(Value::String),
            SlotType::Phone => phone(text).map(Value::String),
            SlotType::Email => email(text).map(Value::String),
            SlotType::Date => builtin::date(text).map(Value::String),
            SlotType::Amount => builtin::amount(text)
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            SlotType::IdCard => builtin::id_card(text).map(Value::String),
            SlotType::BankCard => builtin::bank_card(text).map(Value::String),
            SlotType::Json => None,
        }
    }

    /// True when `v` is a valid value of this type (`null`, meaning "empty", is always valid).
    pub fn accepts(&self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null) => true,
            (SlotType::Text, Value::String(s)) => {
                !s.trim().is_empty() && s.chars().count() <= MAX_TEXT_SLOT_CHARS
            }
            (SlotType::Integer { min, max }, Value::Number(n)) => n
                .as_i64()
                .is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
            (SlotType::Number { min, max }, Value::Number(n)) => n
                .as_f64()
                .is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
            (SlotType::Bool, Value::Bool(_)) => true,
            (SlotType::Enum { values }, Value::String(s)) => values.iter().any(|e| e.value == *s),
            // A pattern with a capture group stores only the group, which need not match
            // the whole pattern again (`SN-(\d{6})` stores `123456`).
            (SlotType::Regex { pattern }, Value::String(s)) => {
                pattern.is_match(s) || (pattern.captures_len() > 1 && !s.trim().is_empty())
            }
            (SlotType::OrderId, Value::String(s)) => order_id(s).as_deref() == Some(s.as_str()),
            (SlotType::Phone, Value::String(s)) => phone(s).as_deref() == Some(s.as_str()),
            (SlotType::Email, Value::String(s)) => email(s).as_deref() == Some(s.as_str()),
            (SlotType::Date, Value::String(s)) => builtin::is_date(s),
            (SlotType::Amount, Value::Number(n)) => n.as_f64().is_some_and(|n| n >= 0.0),
            (SlotType::IdCard, Value::String(s)) => builtin::is_id_card(s),
            (SlotType::BankCard, Value::String(s)) => builtin::is_bank_card(s),
            (SlotType::Json, _) => true,
            _ => false,
        }
    }
}

/// Maximal runs of characters satisfying `keep`, with their byte offsets.
fn runs(text: &str, keep: impl Fn(char) -> bool) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = 0usize;
    std::iter::from_fn(move || {
        let tail = text.get(rest..)?;
        let start = rest + tail.find(|c: char| keep(c))?;
        let after = text.get(start..)?;
        let len = after.find(|c: char| !keep(c)).unwrap_or(after.len());
        rest = start + len;
        Some((start, &after[..len]))
    })
}

/// Integers: ASCII digit runs (with a leading `-`) in reading order, then Chinese numerals
/// (a user who types digits meant the digits).
fn integers(text: &str) -> impl Iterator<Item = i64> + '_ {
    let ascii = runs(text, |c| c.is_ascii_digit()).filter_map(move |(start, digits)| {
        let n: i64 = digits.parse().ok()?;
        let negative = start > 0 && text.as_bytes().get(start - 1) == Some(&b'-');
        Some(if negative { -n } else { n })
    });
    let chinese = runs(text, |c| "零一二两三四五六七八九十".contains(c))
        .filter_map(|(_, s)| chinese_numeral(s));
    ascii.chain(chinese)
}

/// `零`..`九十九` (with `两`); anything longer or odd-shaped is not a number we guess at.
fn chinese_numeral(s: &str) -> Option<i64> {
    let digit = |c: char| {
        "零一二三四五六七八九"
            .find(c)
            .map(|i| (i / 3) as i64)
            .or((c == '两').then_some(2))
    };
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [d] if *d == '十' => Some(10),
        [d] => digit(*d),
        ['十', u] => Some(10 + digit(*u)?),
        [t, '十'] => Some(digit(*t)? * 10),
        [t, '十', u] => Some(digit(*t)? * 10 + digit(*u)?),
        _ => None,
    }
}

/// Decimal numbers in reading order (`-12`, `3.5`).
fn numbers(text: &str) -> impl Iterator<Item = f64> + '_ {
    runs(text, |c| c.is_ascii_digit() || c == '.').filter_map(move |(start, s)| {
        let s = s.trim_matches('.');
        let n: f64 = s.parse().ok()?;
        let negative = start > 0 && text.as_bytes().get(start - 1) == Some(&b'-');
        Some(if negative { -n } else { n })
    })
}

/// Common yes/no answers. Explicit positive phrases containing a negative character
/// (`没问题`, `不错`) are checked first, then negatives (so `不要` is no, not `要`).
fn yes_no(text: &str) -> Option<bool> {
    const ZH_YES_PHRASES: [&str; 3] = ["没问题", "不错", "没错"];
    const ZH_NO: [&str; 8] = ["不是", "不对", "不要", "不用", "不需要", "没有", "否", "不"];
    const ZH_YES: [&str; 10] = [
        "是", "对", "好", "要", "可以", "嗯", "确认", "需要", "行", "确定",
    ];
    const EN_NO: [&str; 7] = ["no", "nope", "not", "don't", "nah", "false", "n"];
    const EN_YES: [&str; 10] = [
        "yes", "yeah", "yep", "sure", "ok", "okay", "true", "y", "correct", "right",
    ];
    if ZH_YES_PHRASES.iter().any(|p| text.contains(p)) {
        return Some(true);
    }
    let lower = text.to_lowercase();
    let words: Vec<&str> = runs(&lower, |c| c.is_ascii_alphabetic() || c == '\'')
        .map(|(_, w)| w)
        .collect();
    if ZH_NO.iter().any(|p| text.contains(p)) || words.iter().any(|w| EN_NO.contains(w)) {
        return Some(false);
    }
    if ZH_YES.iter().any(|p| text.contains(p)) || words.iter().any(|w| EN_YES.contains(w)) {
        return Some(true);
    }
    None
}

/// The enum value whose name or synonym occurs in the text; the longest match wins so
/// `换货退款` style overlaps resolve to the most specific phrase.
fn enum_value(values: &[EnumValue], text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    values
        .iter()
        .flat_map(|v| {
            std::iter::once(&v.value)
                .chain(v.synonyms.iter())
                .filter(|needle| !needle.is_empty() && lower.contains(&needle.to_lowercase()))
                .map(move |needle| (needle.chars().count(), &v.value))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, v)| v.clone())
}

fn order_id(text: &str) -> Option<String> {
    runs(text, |c| c.is_ascii_alphanumeric())
        .map(|(_, s)| s)
        .find(|s| (8..=20).contains(&s.len()) && s.bytes().any(|b| b.is_ascii_digit()))
        .map(str::to_ascii_uppercase)
}

fn phone(text: &str) -> Option<String> {
    // Runs of digits that may contain single spaces or dashes ("138 0013 8000").
    runs(text, |c| c.is_ascii_digit() || c == ' ' || c == '-').find_map(|(_, s)| {
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        let digits = match digits.len() {
            13 if digits.starts_with("86") => &digits[2..],
            _ => digits.as_str(),
        };
        let b = digits.as_bytes();
        (b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1])).then(|| digits.to_string())
    })
}

fn email(text: &str) -> Option<String> {
    let local_ok = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    let domain_ok = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    for (at, _) in text.match_indices('@') {
        let before = &text[..at];
        let local_start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| local_ok(*c))
            .last()
            .map(|(i, _)| i)?;
        let local = before[local_start..].trim_start_matches('.');
        let after = &text[at + 1..];
        let end = after.find(|c: char| !domain_ok(c)).unwrap_or(after.len());
        // A sentence may end right after the address: "my mail is a@b.com."
        let domain = after[..end].trim_end_matches(['.', '-']);
        let tld = domain.rsplit('.').next().unwrap_or("");
        let labels_ok = domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
        if !local.is_empty()
            && domain.contains('.')
            && labels_ok
            && tld.len() >= 2
            && tld.chars().all(|c| c.is_ascii_alphabetic())
        {
            return Some(format!("{local}@{}", domain.to_ascii_lowercase()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(value: &str, syn: &[&str]) -> EnumValue {
        EnumValue {
            value: value.into(),
            synonyms: syn.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn order_id_inside_chinese_sentence() {
        assert_eq!(
            SlotType::OrderId.extract("我的订单号是A12345678哦"),
            Some(json!("A12345678"))
        );
        assert_eq!(
            SlotType::OrderId.extract("order no. ab2024061234"),
            Some(json!("AB2024061234"))
        );
        assert_eq!(
            SlotType::OrderId.extract("订单号 1234567"),
            None,
            "too short"
        );
        assert_eq!(
            SlotType::OrderId.extract("abcdefghij"),
            None,
            "needs a digit"
        );
    }

    #[test]
    fn phone_with_separators_and_prefix() {
        assert_eq!(
            SlotType::Phone.extract("电话 138 0013 8000"),
            Some(json!("13800138000"))
        );
        assert_eq!(
            SlotType::Phone.extract("+86 139-1234-5678"),
            Some(json!("13912345678"))
        );
        assert_eq!(SlotType::Phone.extract("12800138000"), None);
    }

    #[test]
    fn email_trailing_period() {
        assert_eq!(
            SlotType::Email.extract("my mail is Li.Lei@Example.COM."),
            Some(json!("Li.Lei@example.com"))
        );
        assert_eq!(SlotType::Email.extract("a@b"), None);
        assert_eq!(SlotType::Email.extract("@example.com"), None);
    }

    #[test]
    fn integers_bounded_and_chinese() {
        let t = SlotType::Integer {
            min: Some(1),
            max: Some(10),
        };
        assert_eq!(t.extract("要买两件"), Some(json!(2)));
        assert_eq!(t.extract("第 0 个不行, 3 个"), Some(json!(3)));
        assert_eq!(t.extract("二十三"), None, "out of bounds");
        assert_eq!(
            SlotType::Integer {
                min: None,
                max: None
            }
            .extract("-5度"),
            Some(json!(-5))
        );
        assert_eq!(chinese_numeral("二十三"), Some(23));
        assert_eq!(chinese_numeral("十五"), Some(15));
    }

    #[test]
    fn numbers_and_bools() {
        assert_eq!(
            SlotType::Number {
                min: None,
                max: None
            }
            .extract("价格 12.5 元"),
            Some(json!(12.5))
        );
        assert_eq!(SlotType::Bool.extract("不要了"), Some(json!(false)));
        assert_eq!(SlotType::Bool.extract("没问题"), Some(json!(true)));
        assert_eq!(SlotType::Bool.extract("Yes please"), Some(json!(true)));
        assert_eq!(SlotType::Bool.extract("nope"), Some(json!(false)));
        assert_eq!(SlotType::Bool.extract("天气"), None);
    }

    #[test]
    fn enum_longest_synonym_wins() {
        let t = SlotType::Enum {
            values: vec![
                ev("refund", &["退款", "退货退款"]),
                ev("exchange", &["换货", "换"]),
            ],
        };
        assert_eq!(t.extract("我想换货"), Some(json!("exchange")));
        assert_eq!(t.extract("REFUND please"), Some(json!("refund")));
        assert_eq!(t.extract("随便"), None);
        assert!(t.accepts(&json!("refund")));
        assert!(!t.accepts(&json!("退款")));
    }

    #[test]
    fn regex_uses_first_group() {
        let t = SlotType::Regex {
            pattern: regex::Regex::new(r"SN[-:]?(\d{6})").unwrap(),
        };
        assert_eq!(t.extract("serial SN-123456"), Some(json!("123456")));
    }

    #[test]
    fn text_is_trimmed_and_capped() {
        assert_eq!(SlotType::Text.extract("  hi  "), Some(json!("hi")));
        assert_eq!(SlotType::Text.extract("   "), None);
        let long = "字".repeat(MAX_TEXT_SLOT_CHARS + 10);
        let v = SlotType::Text.extract(&long).unwrap();
        assert!(SlotType::Text.accepts(&v));
    }

    #[test]
    fn extracted_values_are_accepted() {
        for (t, s) in [
            (SlotType::OrderId, "单号a12345678"),
            (SlotType::Phone, "13800138000"),
            (SlotType::Email, "x@y.cn"),
            (SlotType::Bool, "好的"),
        ] {
            let v = t.extract(s).unwrap();
            assert!(t.accepts(&v), "{} {v}", t.name());
        }
    }
}
