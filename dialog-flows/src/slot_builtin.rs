//! Extractors for the built-in entity types added with the `entities:` section: dates,
//! amounts of money, mainland resident ID cards and bank cards.
//!
//! Invariant (shared with `slot.rs`): each extractor returns only values its validator
//! accepts, so `extract` and `accepts` agree. Everything here is pure — no clock — so a date
//! must carry its year ("2024-06-15", "2024年6月15日"); relative dates ("明天") are left to
//! the NLU, which knows today's date.

use std::sync::LazyLock;

use regex::Regex;

/// `2024-06-15`, `2024/6/15`, `2024.6.15`, `2024年6月15日`.
static DATE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})").ok());

/// An amount with a currency sign before or a unit after.
static AMOUNT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:[¥￥$]|rmb|cny)\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:元|块|圆|rmb|yuan|dollars?|usd)",
    )
    .ok()
});

/// A date in `text`, as `YYYY-MM-DD`.
pub(crate) fn date(text: &str) -> Option<String> {
    let re = DATE.as_ref()?;
    re.captures_iter(text).find_map(|c| {
        let y: u32 = c.get(1)?.as_str().parse().ok()?;
        let m: u32 = c.get(2)?.as_str().parse().ok()?;
        let d: u32 = c.get(3)?.as_str().parse().ok()?;
        valid_date(y, m, d).then(|| format!("{y:04}-{m:02}-{d:02}"))
    })
}

/// True for a `YYYY-MM-DD` string naming a real calendar day.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) => valid_date(y, m, d),
        _ => false,
    }
}

fn valid_date(y: u32, m: u32, d: u32) -> bool {
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2200).contains(&y) && (1..=days).contains(&d)
}

/// An amount of money: a number with `¥`/`$`/`RMB` before or `元`/`块`/`yuan` after; else
/// the first plain number. Never negative.
pub(crate) fn amount(text: &str) -> Option<f64> {
    let marked = AMOUNT.as_ref().and_then(|re| {
        re.captures_iter(text).find_map(|c| {
            let m = c.get(1).or_else(|| c.get(2))?;
            m.as_str().parse::<f64>().ok()
        })
    });
    marked
        .or_else(|| {
            let start = text.find(|c: char| c.is_ascii_digit())?;
            let rest = &text[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches('.').parse::<f64>().ok()
        })
        .filter(|n| n.is_finite() && *n >= 0.0)
}

/// A mainland resident ID number (18 characters, checksum verified), upper-cased.
pub(crate) fn id_card(text: &str) -> Option<String> {
    alnum_runs(text)
        .filter(|s| s.len() == 18)
        .map(str::to_ascii_uppercase)
        .find(|s| is_id_card(s))
}

/// True for 17 digits plus the ISO 7064 MOD 11-2 check character (`0`-`9` or `X`).
pub(crate) fn is_id_card(s: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] == b[17]
}

/// A bank card number: 16–19 digits (groups separated by single spaces or dashes allowed)
/// passing the Luhn check; stored as the digits.
pub(crate) fn bank_card(text: &str) -> Option<String> {
    let mut out = None;
    let mut digits = String::new();
    let mut prev_sep = false;
    // Scan digit groups joined by single separators; test each maximal group.
    for c in text.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_digit() {
            digits.push(c);
            prev_sep = false;
        } else if (c == ' ' || c == '-') && !digits.is_empty() && !prev_sep {
            prev_sep = true;
        } else {
            if is_bank_card(&digits) {
                out = Some(digits.clone());
                break;
            }
            digits.clear();
            prev_sep = false;
        }
    }
    out
}

/// True for 16–19 ASCII digits passing the Luhn check.
pub(crate) fn is_bank_card(s: &str) -> bool {
    let b = s.as_bytes();
    if !(16..=19).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn alnum_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_need_a_year_and_a_real_day() {
        assert_eq!(date("2024年6月15日到货").as_deref(), Some("2024-06-15"));
        assert_eq!(date("on 2024/2/29").as_deref(), Some("2024-02-29"));
        assert_eq!(date("2023-02-29"), None);
        assert_eq!(date("6月15日"), None);
        assert!(is_date("2024-06-15"));
        assert!(!is_date("2024-13-01"));
    }

    #[test]
    fn amounts_prefer_currency_marks() {
        assert_eq!(amount("第2件，一共 ¥12.5"), Some(12.5));
        assert_eq!(amount("退我30块"), Some(30.0));
        assert_eq!(amount("RMB 100"), Some(100.0));
        assert_eq!(amount("大概 99"), Some(99.0));
        assert_eq!(amount("没有数字"), None);
    }

    #[test]
    fn id_cards_are_checksummed() {
        // A well-known sample number with a valid check digit.
        assert_eq!(
            id_card("身份证 11010519491231002x").as_deref(),
            Some("11010519491231002X")
        );
        assert_eq!(id_card("110105194912310021"), None);
    }

    #[test]
    fn bank_cards_pass_luhn() {
        assert_eq!(
            bank_card("卡号 6222 0212 3456 7890 129").as_deref(),
            None,
            "fails Luhn"
        );
        assert_eq!(
            bank_card("card 4111 1111 1111 1111 please").as_deref(),
            Some("4111111111111111")
        );
        assert!(!is_bank_card("13800138000"));
    }
}
