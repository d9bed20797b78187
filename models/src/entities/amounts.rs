//! Amounts of money: `两百块`, `三百五十元`, `两块五`, `1.5万`, `¥20`, `$20`, `20 dollars`,
//! `USD 20`, `20欧元`.
//!
//! An amount is a number (see [`cn_number`](super::cn_number)) with a currency either
//! before it (symbol or code) or after it (Chinese unit or English word). The one exception
//! is an Arabic number with `万` (`1.5万`), taken as yuan without a unit because that is
//! how prices and refunds are written in Chinese chats. A bare number is never an amount: a
//! quantity or an order number must not turn into money.
//!
//! `块`/`元` followed by a single digit (`两块五`, `3块5毛`) adds tenths (jiao).
//! `$` is read as US dollars. Values are `f64` with the currency's ISO 4217 code.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::json;

use super::cn_number::{CN_NUMERAL_CLASS, parse_amount_number};
use super::{EntityKind, Found};

/// An Arabic number (with optional multiplier) or a run of Chinese numerals.
fn number_pattern() -> String {
    format!(r"(?:[0-9]+(?:,[0-9]{{3}})*(?:\.[0-9]+)?(?:万|千|百|k|w)?|[{CN_NUMERAL_CLASS}]+)")
}

/// Currency words written after the number, longest first where one is a prefix of another.
const SUFFIXES: &str = "块钱|块|元|圆|人民币|美元|美金|刀|欧元|港币|港元|英镑|日元|dollars|dollar|bucks|buck|usd|rmb|yuan|cny|euros|euro|eur|pounds|pound|gbp|hkd|yen|jpy";
/// Currency symbols and codes written before the number.
const PREFIXES: &str = r"us\$|hk\$|¥|\$|€|£|rmb|cny|usd|eur|gbp|hkd|jpy";

static SUFFIXED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"({})\s?({SUFFIXES})", number_pattern())).ok());
static PREFIXED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"({PREFIXES})\s?({})", number_pattern())).ok());
static WAN: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"[0-9]+(?:\.[0-9]+)?万").ok());

/// ISO 4217 code of a currency word or symbol (folded: lowercase).
fn currency(word: &str) -> &'static str {
    match word {
        "块钱" | "块" | "元" | "圆" | "人民币" | "rmb" | "yuan" | "cny" | "¥" => "CNY",
        "美元" | "美金" | "刀" | "dollars" | "dollar" | "bucks" | "buck" | "usd" | "$" | "us$" => {
            "USD"
        }
        "欧元" | "euros" | "euro" | "eur" | "€" => "EUR",
        "港币" | "港元" | "hkd" | "hk$" => "HKD",
        "英镑" | "pounds" | "pound" | "gbp" | "£" => "GBP",
        "日元" | "yen" | "jpy" => "JPY",
        _ => "CNY",
    }
}

/// Whether a match starts cleanly: not inside an ASCII word or number.
fn starts_clean(text: &str, start: usize) -> bool {
    !text[..start]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// Whether a match ends cleanly: an English word or Arabic number must not run on.
fn ends_clean(text: &str, end: usize) -> bool {
    !text[end..]
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Jiao after `块`/`元`: `五` or `5毛`/`5角` or `五毛`; returns (tenths, bytes consumed).
fn jiao_after(rest: &str) -> Option<(f64, usize)> {
    let mut chars = rest.char_indices();
    let (_, c) = chars.next()?;
    let d = match c {
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        '1'..='9' => u32::from(c) - u32::from('0'),
        _ => return None,
    };
    let mut used = c.len_utf8();
    match chars.next() {
        Some((_, m @ ('毛' | '角'))) => used += m.len_utf8(),
        // An Arabic digit needs its 毛/角 (`20元5个` is not 20.5); a Chinese digit must not
        // start a longer number (`两块五十` is odd enough to leave alone).
        _ if c.is_ascii_digit() => return None,
        Some((_, n)) if CN_NUMERAL_CLASS.contains(n) => return None,
        _ => {}
    }
    Some((f64::from(d) / 10.0, used))
}

fn push(out: &mut Vec<Found>, start: usize, end: usize, value: f64, cur: &str) {
    out.push(Found::new(
        EntityKind::Amount,
        "amount",
        start,
        end,
        json!({ "value": value, "currency": cur }),
    ));
}

pub(crate) fn find_amounts(text: &str, out: &mut Vec<Found>) {
    if let Some(re) = SUFFIXED.as_ref() {
        for caps in re.captures_iter(text) {
            let (Some(all), Some(num), Some(unit)) = (caps.get(0), caps.get(1), caps.get(2)) else {
                continue;
            };
            let word_unit = unit.as_str().starts_with(|c: char| c.is_ascii_alphabetic());
            if !starts_clean(text, all.start()) || (word_unit && !ends_clean(text, all.end())) {
                continue;
            }
            let Some(mut value) = parse_amount_number(num.as_str()) else {
                continue;
            };
            let mut end = all.end();
            if matches!(unit.as_str(), "块" | "元")
                && let Some((jiao, used)) = jiao_after(&text[end..])
            {
                value += jiao;
                end += used;
            }
            push(out, all.start(), end, value, currency(unit.as_str()));
        }
    }
    if let Some(re) = PREFIXED.as_ref() {
        for caps in re.captures_iter(text) {
            let (Some(all), Some(sym), Some(num)) = (caps.get(0), caps.get(1), caps.get(2)) else {
                continue;
            };
            let symbol_is_word = sym.as_str().starts_with(|c: char| c.is_ascii_alphabetic());
            if (symbol_is_word && !starts_clean(text, all.start())) || !ends_clean(text, all.end())
            {
                continue;
            }
            if let Some(value) = parse_amount_number(num.as_str()) {
                push(out, all.start(), all.end(), value, currency(sym.as_str()));
            }
        }
    }
    if let Some(re) = WAN.as_ref() {
        for m in re.find_iter(text) {
            if !starts_clean(text, m.start()) {
                continue;
            }
            if let Some(value) = parse_amount_number(m.as_str()) {
                push(out, m.start(), m.end(), value, "CNY");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::{Value, json};

    use super::super::extract_entities;

    fn amounts(text: &str) -> Vec<Value> {
        let today = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default();
        extract_entities(text, today)
            .into_iter()
            .filter(|e| e.name == "amount")
            .map(|e| e.value)
            .collect()
    }

    fn money(v: f64, c: &str) -> Value {
        json!({ "value": v, "currency": c })
    }

    #[test]
    fn chinese_amounts() {
        assert_eq!(amounts("退我两百块"), [money(200.0, "CNY")]);
        assert_eq!(amounts("一共三百五十元"), [money(350.0, "CNY")]);
        assert_eq!(amounts("才两块五"), [money(2.5, "CNY")]);
        assert_eq!(amounts("3块5毛钱"), [money(3.5, "CNY")]);
        assert_eq!(amounts("花了1.5万"), [money(15_000.0, "CNY")]);
        assert_eq!(amounts("1.5万元"), [money(15_000.0, "CNY")]);
        assert_eq!(amounts("一千二块钱"), [money(1200.0, "CNY")]);
        assert_eq!(amounts("50美元"), [money(50.0, "USD")]);
        assert_eq!(amounts("２０元"), [money(20.0, "CNY")]);
    }

    #[test]
    fn symbols_and_english() {
        assert_eq!(amounts("¥20"), [money(20.0, "CNY")]);
        assert_eq!(amounts("￥1,299.00"), [money(1299.0, "CNY")]);
        assert_eq!(amounts("it was $20"), [money(20.0, "USD")]);
        assert_eq!(amounts("refund 20 dollars"), [money(20.0, "USD")]);
        assert_eq!(amounts("USD 15.5 please"), [money(15.5, "USD")]);
        assert_eq!(amounts("€9"), [money(9.0, "EUR")]);
        assert_eq!(
            amounts("退款¥20和$5"),
            [money(20.0, "CNY"), money(5.0, "USD")]
        );
    }

    #[test]
    fn bare_numbers_are_not_money() {
        assert!(amounts("买了2个").is_empty());
        assert!(amounts("order 12345").is_empty());
        assert!(amounts("20 dollarsign").is_empty());
        assert!(amounts("20元5个").iter().all(|v| v == &money(20.0, "CNY")));
        assert!(amounts("万元").is_empty());
    }
}
