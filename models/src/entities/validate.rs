//! Built-in entities with real validation: resident ID, bank card, mobile number, e-mail.
//!
//! Each finder scans the folded text (lowercase, half-width) with a permissive regex and
//! then validates: a candidate that fails its check digit, date or length is dropped, not
//! reported with a low score, because a flow that asks for an ID number must re-ask when
//! the number is mistyped. Candidates glued to other ASCII letters or digits are dropped
//! too (a 12-digit run is not a mobile number followed by a digit).

use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use regex::Regex;
use serde_json::{Value, json};

use super::{EntityKind, Found, ascii_bounded};

/// Compiles one of this module's constant patterns. They are covered by the tests, so the
/// `None` arm (a finder that finds nothing) is never taken in practice.
fn compile(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static RESIDENT_ID: LazyLock<Option<Regex>> = LazyLock::new(|| compile(r"[0-9]{17}[0-9x]"));
static BANK_CARD: LazyLock<Option<Regex>> =
    LazyLock::new(|| compile(r"[0-9](?:[ -]?[0-9]){15,18}"));
static MOBILE: LazyLock<Option<Regex>> =
    LazyLock::new(|| compile(r"(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]){8}"));
static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(
        r"[a-z0-9._%+-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,24}",
    )
});

/// ISO 7064 MOD 11-2 weights of the first 17 digits of a resident ID.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each `sum mod 11`.
const ID_CHECK: [u8; 11] = *b"10X98765432";

/// Validates an 18-character resident ID (17 digits and a digit or `X`, any case):
/// region code not starting with 0, a real birth date between 1900-01-01 and `today`, and
/// the MOD 11-2 check character. Returns the birth date.
pub(crate) fn resident_id_birth_date(id: &str, today: NaiveDate) -> Option<NaiveDate> {
    if !resident_id_checksum_ok(id) || id.starts_with('0') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| id.get(r)?.parse::<u32>().ok();
    let year = i32::try_from(num(6..10)?).ok()?;
    let birth = NaiveDate::from_ymd_opt(year, num(10..12)?, num(12..14)?)?;
    (year >= 1900 && birth <= today).then_some(birth)
}

/// Whether `id` is 17 digits and a check character (digit or `X`, any case) that matches
/// their MOD 11-2 checksum. Only the checksum: [`resident_id_birth_date`] also checks the
/// region and the birth date.
pub(crate) fn resident_id_checksum_ok(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b[17].eq_ignore_ascii_case(&ID_CHECK[(sum % 11) as usize])
}

/// Whether `digits` (ASCII digits only) passes the Luhn check.
pub(crate) fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

pub(crate) fn find_resident_ids(text: &str, today: NaiveDate, out: &mut Vec<Found>) {
    let Some(re) = RESIDENT_ID.as_ref() else {
        return;
    };
    for m in re.find_iter(text) {
        if !ascii_bounded(text, m.start(), m.end()) {
            continue;
        }
        let id = m.as_str().to_ascii_uppercase();
        if let Some(birth) = resident_id_birth_date(&id, today) {
            let gender_digit = id.as_bytes()[16] - b'0';
            let value = json!({
                "id": id,
                "birth_date": birth.format("%Y-%m-%d").to_string(),
                "gender": if gender_digit % 2 == 1 { "male" } else { "female" },
                "region": &id[..6],
                "age": age(birth, today),
            });
            out.push(Found::new(
                EntityKind::ResidentId,
                "resident_id",
                m.start(),
                m.end(),
                value,
            ));
        }
    }
}

fn age(birth: NaiveDate, today: NaiveDate) -> i32 {
    let mut years = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

pub(crate) fn find_bank_cards(text: &str, out: &mut Vec<Found>) {
    let Some(re) = BANK_CARD.as_ref() else {
        return;
    };
    for m in re.find_iter(text) {
        if !ascii_bounded(text, m.start(), m.end()) {
            continue;
        }
        let number = digits_of(m.as_str());
        if (16..=19).contains(&number.len()) && luhn_valid(&number) {
            let last4 = number[number.len() - 4..].to_owned();
            out.push(Found::new(
                EntityKind::BankCard,
                "bank_card",
                m.start(),
                m.end(),
                json!({ "number": number, "last4": last4 }),
            ));
        }
    }
}

pub(crate) fn find_mobiles(text: &str, out: &mut Vec<Found>) {
    let Some(re) = MOBILE.as_ref() else {
        return;
    };
    for m in re.find_iter(text) {
        if !ascii_bounded(text, m.start(), m.end()) {
            continue;
        }
        let digits = digits_of(m.as_str());
        // The regex guarantees 11 digits after an optional `86`; keep the national part.
        let national = &digits[digits.len().saturating_sub(11)..];
        out.push(Found::new(
            EntityKind::Mobile,
            "mobile",
            m.start(),
            m.end(),
            Value::String(national.to_owned()),
        ));
    }
}

pub(crate) fn find_emails(text: &str, out: &mut Vec<Found>) {
    let Some(re) = EMAIL.as_ref() else {
        return;
    };
    for m in re.find_iter(text) {
        let addr = m.as_str();
        let Some((local, _domain)) = addr.split_once('@') else {
            continue;
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if local_ok && addr.len() <= 254 && ascii_bounded(text, m.start(), m.end()) {
            out.push(Found::new(
                EntityKind::Email,
                "email",
                m.start(),
                m.end(),
                Value::String(addr.to_owned()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::extract_entities;
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default()
    }

    fn names(text: &str) -> Vec<(String, Value)> {
        extract_entities(text, today())
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    }

    /// The GB 11643 sample number, a valid ID.
    const VALID_ID: &str = "11010519491231002X";

    #[test]
    fn resident_id_check_digit_and_birth_date() {
        assert_eq!(
            resident_id_birth_date(VALID_ID, today()),
            NaiveDate::from_ymd_opt(1949, 12, 31)
        );
        assert!(resident_id_birth_date("11010519491231002x", today()).is_some());
        // Wrong check digit.
        assert!(resident_id_birth_date("110105194912310021", today()).is_none());
        // Impossible date (Feb 30) even with the check digit recomputed.
        let body = "11010519490230002";
        let sum: u32 = body
            .bytes()
            .zip(ID_WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        let id = format!("{body}{}", ID_CHECK[(sum % 11) as usize] as char);
        assert!(resident_id_birth_date(&id, today()).is_none());
        // Born in the future.
        assert!(resident_id_birth_date("110105203001010010", today()).is_none());
    }

    #[test]
    fn resident_id_in_text() {
        let found = names(&format!("我的身份证号是{VALID_ID},帮我查下"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "resident_id");
        assert_eq!(found[0].1["birth_date"], "1949-12-31");
        assert_eq!(found[0].1["gender"], "female");
        assert_eq!(found[0].1["age"], 76);
        // A wrong check digit is not an ID (it may still look like an order number).
        let found = names("身份证110105194912310021");
        assert!(found.iter().all(|(n, _)| n != "resident_id"), "{found:?}");
        // 19 digits: not an ID.
        let found = names("id 1101051949123100211");
        assert!(found.iter().all(|(n, _)| n != "resident_id"), "{found:?}");
    }

    #[test]
    fn bank_cards_need_luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("6222021234567890128"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        let found = names("card: 4111 1111 1111 1111 thanks");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "bank_card");
        assert_eq!(found[0].1["last4"], "1111");
        let found = names("卡号6222-0212-3456-7890-128");
        assert_eq!(found[0].1["number"], "6222021234567890128");
        // Wrong Luhn: no bank card.
        let found = names("card 4111 1111 1111 1112");
        assert!(found.iter().all(|(n, _)| n != "bank_card"), "{found:?}");
        // 15 digits: too short.
        assert!(
            !names("411111111111116")
                .iter()
                .any(|(n, _)| n == "bank_card")
        );
    }

    #[test]
    fn mainland_mobiles() {
        for (text, want) in [
            ("13812345678", "13812345678"),
            ("电话:138 1234 5678", "13812345678"),
            ("call +86 139-1234-5678 pls", "13912345678"),
            ("8619912345678", "19912345678"),
            ("手机号＋８６１５０１２３４５６７８", "15012345678"),
        ] {
            let found = names(text);
            assert_eq!(found, vec![("mobile".to_owned(), json!(want))], "{text}");
        }
        // 12 digits, a second digit 0-2, 10 digits, glued to letters: not mobiles.
        for text in [
            "138123456789",
            "12812345678",
            "1381234567",
            "abc13812345678",
        ] {
            assert!(
                !names(text).iter().any(|(n, _)| n == "mobile"),
                "{text}: {:?}",
                names(text)
            );
        }
    }

    #[test]
    fn emails() {
        let found = names("邮箱是Wang.Fang+shop@mail.example.cn。");
        assert_eq!(
            found,
            vec![("email".to_owned(), json!("wang.fang+shop@mail.example.cn"))]
        );
        for bad in [
            "a..b@example.com",
            ".a@example.com",
            "a@example",
            "@example.com",
            "a@-x.com",
        ] {
            assert!(
                !names(bad).iter().any(|(n, v)| n == "email" && v == bad),
                "{bad}: {:?}",
                names(bad)
            );
        }
    }
}
