//! Masking personal data before text leaves the machine (a remote model, a log line).
//!
//! Detected: Chinese mobile numbers (optionally `+86`/`86`, spaces or hyphens inside), Chinese
//! resident ID numbers (18 characters with a valid checksum, or the old 15 digits), bank card
//! numbers (16 to 19 digits passing the Luhn check) and e-mail addresses. Each distinct value
//! becomes a placeholder such as `[PHONE_1]`; a [`PiiVault`] remembers the mapping so that the
//! model's reply can be restored before the user (who gave the data) sees it.
//!
//! Invariants: masking is deterministic within one vault (the same value always gets the same
//! placeholder, so the model can still tell two numbers apart); digit runs are taken whole
//! (a phone number inside a longer number is not a phone number), and when a run is not itself
//! personal data its space- or hyphen-separated groups are checked one by one so that an order
//! number written next to a phone number does not hide it.

use std::sync::LazyLock;

use regex::Regex;

use crate::entities::validate::{luhn_valid, resident_id_checksum_ok};

/// What kind of personal data a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    /// A mobile phone number.
    Phone,
    /// A resident ID number.
    IdNumber,
    /// A bank card number.
    BankCard,
    /// An e-mail address.
    Email,
}

impl PiiKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Phone => "PHONE",
            Self::IdNumber => "ID",
            Self::BankCard => "CARD",
            Self::Email => "EMAIL",
        }
    }
}

static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}").ok()
});
// Digit groups joined by single spaces or hyphens, an optional +, an optional check letter X.
static NUMBER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\+?[0-9]+(?:[ \-][0-9]+)*[Xx]?").ok());

/// The placeholders handed out for one conversation, and what they stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PiiVault {
    entries: Vec<(PiiKind, String, String)>,
}

impl PiiVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct values were masked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was masked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The kinds masked so far (for logs: never the values).
    pub fn kinds(&self) -> Vec<PiiKind> {
        self.entries.iter().map(|(k, _, _)| *k).collect()
    }

    fn placeholder(&mut self, kind: PiiKind, value: &str) -> String {
        if let Some((_, p, _)) = self.entries.iter().find(|(_, _, v)| v == value) {
            return p.clone();
        }
        let n = self.entries.iter().filter(|(k, _, _)| *k == kind).count() + 1;
        let placeholder = format!("[{}_{n}]", kind.tag());
        self.entries
            .push((kind, placeholder.clone(), value.to_owned()));
        placeholder
    }

    /// Puts the original values back in place of the placeholders in `text`.
    pub fn restore(&self, text: &str) -> String {
        let mut out = text.to_owned();
        // Longest placeholders first so `[PHONE_1]` cannot clobber part of `[PHONE_12]`.
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort_by_key(|(_, p, _)| std::cmp::Reverse(p.len()));
        for (_, placeholder, value) in entries {
            out = out.replace(placeholder.as_str(), value);
        }
        out
    }
}

/// Finds and masks personal data. Cheap to create (the patterns are compiled once per process).
#[derive(Debug, Clone, Copy, Default)]
pub struct PiiMasker;

impl PiiMasker {
    /// A masker.
    pub fn new() -> Self {
        Self
    }

    /// `text` with every detected value replaced by its placeholder from `vault`.
    pub fn mask(&self, text: &str, vault: &mut PiiVault) -> String {
        let mut spans: Vec<(usize, usize, PiiKind)> = Vec::new();
        if let Some(email) = EMAIL.as_ref() {
            spans.extend(
                email
                    .find_iter(text)
                    .map(|m| (m.start(), m.end(), PiiKind::Email)),
            );
        }
        if let Some(number) = NUMBER.as_ref() {
            for m in number.find_iter(text) {
                if spans.iter().any(|&(s, e, _)| m.start() < e && s < m.end()) {
                    continue; // digits inside an e-mail address
                }
                // A run glued to letters or digits on either side is part of something else
                // (an order id like A13800138000B); the regex already took all digits.
                if let Some(kind) = classify(m.as_str()) {
                    spans.push((m.start(), m.end(), kind));
                    continue;
                }
                // Not personal data as a whole: try its groups one by one.
                let mut offset = m.start();
                for group in m.as_str().split([' ', '-']) {
                    if let Some(kind) = classify(group) {
                        spans.push((offset, offset + group.len(), kind));
                    }
                    offset += group.len() + 1;
                }
            }
        }
        spans.sort_by_key(|&(s, _, _)| s);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, kind) in spans {
            if start < at {
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str(&vault.placeholder(kind, &text[start..end]));
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// What a number-like run is, if it is personal data.
fn classify(run: &str) -> Option<PiiKind> {
    let check_letter = run.ends_with(['X', 'x']);
    let digits: String = run.chars().filter(char::is_ascii_digit).collect();
    if check_letter {
        return resident_id_checksum_ok(&format!("{digits}X")).then_some(PiiKind::IdNumber);
    }
    let local = if run.starts_with('+') || digits.len() == 13 {
        digits.strip_prefix("86").unwrap_or(&digits)
    } else {
        &digits
    };
    if is_mobile(local) {
        return Some(PiiKind::Phone);
    }
    if resident_id_checksum_ok(&digits) {
        return Some(PiiKind::IdNumber);
    }
    if digits.len() == 15 && !digits.starts_with('0') && !run.contains([' ', '-']) {
        return Some(PiiKind::IdNumber);
    }
    if (16..=19).contains(&digits.len()) && luhn_valid(&digits) {
        return Some(PiiKind::BankCard);
    }
    None
}

fn is_mobile(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(text: &str) -> (String, PiiVault) {
        let mut vault = PiiVault::new();
        (PiiMasker::new().mask(text, &mut vault), vault)
    }

    #[test]
    fn masks_each_kind_in_chinese_and_english_text() {
        let (out, vault) = mask(
            "我的手机13800138000，身份证11010519491231002X，卡号6222020200001234562 mail me at li.ming@example.com",
        );
        assert_eq!(
            out,
            "我的手机[PHONE_1]，身份证[ID_1]，卡号[CARD_1] mail me at [EMAIL_1]"
        );
        assert_eq!(vault.len(), 4);
        assert_eq!(
            vault.restore("已记录 [PHONE_1] 和 [EMAIL_1]"),
            "已记录 13800138000 和 li.ming@example.com"
        );
    }

    #[test]
    fn formatted_and_prefixed_numbers_are_masked() {
        let (out, _) = mask("call +86 138-0013-8000 or 138 0013 8000");
        assert_eq!(out, "call [PHONE_1] or [PHONE_2]");
        let (out, _) = mask("card 6222 0202 0000 1234 562 ok");
        assert_eq!(out, "card [CARD_1] ok");
    }

    #[test]
    fn same_value_same_placeholder_and_neighbours_do_not_hide_a_phone() {
        let (out, vault) = mask("订单 123 13800138000，再说一次 13800138000");
        assert_eq!(out, "订单 123 [PHONE_1]，再说一次 [PHONE_1]");
        assert_eq!(vault.len(), 1);
    }

    #[test]
    fn ordinary_numbers_are_left_alone() {
        for text in [
            "订单号 20240101123456 已发货",
            "price 1999 yuan, qty 2",
            "1234567890123456", // fails Luhn
            "12345678901",      // not a mobile prefix
            "138001380001",     // 12 digits
        ] {
            let (out, vault) = mask(text);
            assert_eq!(out, text);
            assert!(vault.is_empty());
        }
    }

    #[test]
    fn restore_prefers_longer_placeholders() {
        let mut vault = PiiVault::new();
        let masker = PiiMasker::new();
        let phones: Vec<String> = (0..12).map(|i| format!("1380013{i:04}")).collect();
        let masked = masker.mask(&phones.join(" , "), &mut vault);
        assert!(masked.contains("[PHONE_12]"));
        assert_eq!(vault.restore(&masked), phones.join(" , "));
    }
}
