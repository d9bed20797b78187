//! Dates, absolute or relative to a supplied "today" (the caller's date in the tenant's
//! time zone; this module never reads the clock, so results are reproducible).
//!
//! Understood (folded text, so any case and width):
//! - Chinese: `今天`, `明天`, `后天`, `大后天`, `昨天`, `前天`; `3天后`/`三天以后`;
//!   `周五`, `星期五`, `礼拜天` (the next such day, today included); `这周五`/`本周五`
//!   (that day of the current Monday-to-Sunday week); `下周一`, `下下周一`, `上周一`;
//!   `3月5日`/`3月5号`/`三月五号` (this year); `2026年3月5日`; `2026-03-05`, `2026/3/5`,
//!   `2026.3.5`.
//! - English: `today`, `tomorrow`, `(the) day after tomorrow`, `yesterday`, `in 3 days`;
//!   `friday`/`on friday` (next such day, today included), `this friday`, `next monday`
//!   (Monday of next week), `last monday`; `march 5`, `mar 5th`, `5 march`, `march 5, 2026`.
//!
//! Impossible dates (`2月30日`) are not entities. Value: `"YYYY-MM-DD"`.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use regex::{Captures, Regex, RegexSet};
use serde_json::Value;

use super::cn_number::parse_cn_int;
use super::{EntityKind, Found, ascii_bounded};

/// Today's date at a fixed UTC offset in minutes (e.g. `480` for China Standard Time), for
/// callers that have no calendar of their own. Falls back to 1970-01-01 if the system clock
/// is before the epoch.
pub fn today_at_offset(offset_minutes: i32) -> NaiveDate {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let days = (secs + i64::from(offset_minutes) * 60).div_euclid(86_400);
    // 719_163 is 1970-01-01 counted from 0001-01-01 (day 1).
    i32::try_from(days + 719_163)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or_default()
}

/// Turns a rule's captures into a date, given today.
type Resolve = fn(&Captures<'_>, NaiveDate) -> Option<NaiveDate>;

/// One date pattern and how to turn its captures into a date.
struct Rule {
    re: Regex,
    /// Whether the match must not touch ASCII letters/digits (English words, numbers).
    bounded: bool,
    resolve: Resolve,
}

const EN_WEEKDAYS: &str = "monday|tuesday|wednesday|thursday|friday|saturday|sunday";
const EN_MONTHS: &str = "january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let table: [(String, bool, Resolve); 10] = [
        (
            r"([0-9]{4})(?:[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})|年([0-9]{1,2})月([0-9]{1,2})[日号]?)"
                .to_owned(),
            true,
            |c, _| {
                let y = num(c, 1)?;
                let (m, d) = match (num(c, 2), num(c, 3)) {
                    (Some(m), Some(d)) => (m, d),
                    _ => (num(c, 4)?, num(c, 5)?),
                };
                ymd(i32::try_from(y).ok()?, m, d)
            },
        ),
        (
            r"([0-9]{1,2}|[一二三四五六七八九十]{1,3})月([0-9]{1,2}|[一二三四五六七八九十]{1,3})[日号]?"
                .to_owned(),
            false,
            |c, today| ymd(today.year(), num(c, 1)?, num(c, 2)?),
        ),
        (
            "大后天|后天|明天|明日|今天|今日|昨天|昨日|前天".to_owned(),
            false,
            |c, today| {
                let offset: i64 = match c.get(0)?.as_str() {
                    "大后天" => 3,
                    "后天" => 2,
                    "明天" | "明日" => 1,
                    "今天" | "今日" => 0,
                    "昨天" | "昨日" => -1,
                    _ => -2,
                };
                shift(today, offset)
            },
        ),
        (
            r"([0-9]{1,3}|[一二三四五六七八九十两]{1,3})天(?:以后|之后|后)".to_owned(),
            false,
            |c, today| shift(today, i64::from(num(c, 1)?)),
        ),
        (
            r"(下下个?|下个?|上个?|这个?|本)?(?:周|星期|礼拜)([一二三四五六日天1-7])".to_owned(),
            false,
            |c, today| {
                let day = cn_weekday(c.get(2)?.as_str())?;
                let week = match c.get(1).map(|m| m.as_str().trim_end_matches('个')) {
                    None => return Some(next_on_or_after(today, day)),
                    Some("下下") => 2,
                    Some("下") => 1,
                    Some("上") => -1,
                    Some(_) => 0,
                };
                in_week(today, week, day)
            },
        ),
        (
            "the day after tomorrow|day after tomorrow|tomorrow|today|tonight|yesterday".to_owned(),
            true,
            |c, today| {
                let offset = match c.get(0)?.as_str() {
                    "tomorrow" => 1,
                    "today" | "tonight" => 0,
                    "yesterday" => -1,
                    _ => 2,
                };
                shift(today, offset)
            },
        ),
        (
            r"in ([0-9]{1,3}) days?".to_owned(),
            true,
            |c, today| shift(today, i64::from(num(c, 1)?)),
        ),
        (
            format!(r"(?:(next|this|last|on) )?({EN_WEEKDAYS})"),
            true,
            |c, today| {
                let day = c.get(2)?.as_str().parse::<Weekday>().ok()?;
                match c.get(1).map(|m| m.as_str()) {
                    Some("next") => in_week(today, 1, day),
                    Some("last") => in_week(today, -1, day),
                    Some("this") => in_week(today, 0, day),
                    _ => Some(next_on_or_after(today, day)),
                }
            },
        ),
        (
            format!(r"({EN_MONTHS})\.? ([0-9]{{1,2}})(?:st|nd|rd|th)?(?:,? ([0-9]{{4}}))?"),
            true,
            |c, today| {
                let year = num(c, 3).and_then(|y| i32::try_from(y).ok());
                ymd(year.unwrap_or(today.year()), month(c.get(1)?.as_str())?, num(c, 2)?)
            },
        ),
        (
            format!(r"([0-9]{{1,2}})(?:st|nd|rd|th)? (?:of )?({EN_MONTHS})(?:,? ([0-9]{{4}}))?"),
            true,
            |c, today| {
                let year = num(c, 3).and_then(|y| i32::try_from(y).ok());
                ymd(year.unwrap_or(today.year()), month(c.get(2)?.as_str())?, num(c, 1)?)
            },
        ),
    ];
    table
        .into_iter()
        .filter_map(|(pattern, bounded, resolve)| {
            Regex::new(&pattern).ok().map(|re| Rule {
                re,
                bounded,
                resolve,
            })
        })
        .collect()
});

/// Capture `i` as a number, Arabic or Chinese numerals.
fn num(c: &Captures<'_>, i: usize) -> Option<u32> {
    let s = c.get(i)?.as_str();
    match s.parse::<u32>() {
        Ok(v) => Some(v),
        Err(_) => u32::try_from(parse_cn_int(s)?).ok(),
    }
}

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

fn shift(today: NaiveDate, days: i64) -> Option<NaiveDate> {
    let n = Days::new(days.unsigned_abs());
    if days >= 0 {
        today.checked_add_days(n)
    } else {
        today.checked_sub_days(n)
    }
}

fn cn_weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "一" | "1" => Weekday::Mon,
        "二" | "2" => Weekday::Tue,
        "三" | "3" => Weekday::Wed,
        "四" | "4" => Weekday::Thu,
        "五" | "5" => Weekday::Fri,
        "六" | "6" => Weekday::Sat,
        "日" | "天" | "7" => Weekday::Sun,
        _ => return None,
    })
}

fn month(s: &str) -> Option<u32> {
    let m = match s.get(..3)? {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    Some(m)
}

/// The first `day` on or after `today`.
fn next_on_or_after(today: NaiveDate, day: Weekday) -> NaiveDate {
    let ahead = (7 + day.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
    shift(today, i64::from(ahead)).unwrap_or(today)
}

/// `day` in the Monday-to-Sunday week `weeks` away from today's (0: this week).
fn in_week(today: NaiveDate, weeks: i64, day: Weekday) -> Option<NaiveDate> {
    let monday = shift(today, -i64::from(today.weekday().num_days_from_monday()))?;
    shift(monday, weeks * 7 + i64::from(day.num_days_from_monday()))
}

/// All rules' patterns in one set: one pass over the text says which rules can match at all,
/// so the (much slower) capture search runs only for those. Most turns mention no date, and
/// then no rule runs. Indexes are those of [`RULES`] (a pattern that failed to compile there is
/// left out of both, in the same order).
static RULE_SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(RULES.iter().map(|r| r.re.as_str())).unwrap_or_else(|_| RegexSet::empty())
});

pub(crate) fn find_dates(text: &str, today: NaiveDate, out: &mut Vec<Found>) {
    let candidates = RULE_SET.matches(text);
    // An empty set (it failed to build) must not hide dates: then every rule runs.
    let all = RULE_SET.is_empty();
    for (i, rule) in RULES.iter().enumerate() {
        if !all && !candidates.matched(i) {
            continue;
        }
        for caps in rule.re.captures_iter(text) {
            let Some(all) = caps.get(0) else { continue };
            if rule.bounded && !ascii_bounded(text, all.start(), all.end()) {
                continue;
            }
            if let Some(date) = (rule.resolve)(&caps, today) {
                out.push(Found::new(
                    EntityKind::Date,
                    "date",
                    all.start(),
                    all.end(),
                    Value::String(date.format("%Y-%m-%d").to_string()),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::extract_entities;
    use super::*;

    #[test]
    fn the_prefilter_set_mirrors_the_rules() {
        // Same patterns, same order: `find_dates` maps set indexes to rules.
        assert_eq!(RULE_SET.len(), RULES.len());
        assert_eq!(RULES.len(), 10, "every date pattern compiles");
        for (pattern, rule) in RULE_SET.patterns().iter().zip(RULES.iter()) {
            assert_eq!(pattern, rule.re.as_str());
        }
    }

    /// Thursday 2026-03-05.
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 5).unwrap_or_default()
    }

    fn dates(text: &str) -> Vec<String> {
        extract_entities(text, today())
            .into_iter()
            .filter(|e| e.name == "date")
            .filter_map(|e| e.value.as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn chinese_relative_dates() {
        for (text, want) in [
            ("明天能到吗", "2026-03-06"),
            ("后天", "2026-03-07"),
            ("大后天发货", "2026-03-08"),
            ("昨天买的", "2026-03-04"),
            ("三天后", "2026-03-08"),
            ("10天以后", "2026-03-15"),
            ("周五", "2026-03-06"),
            ("星期四", "2026-03-05"),
            ("礼拜天", "2026-03-08"),
            ("这周一", "2026-03-02"),
            ("下周一", "2026-03-09"),
            ("下个星期五", "2026-03-13"),
            ("下下周一", "2026-03-16"),
            ("上周日", "2026-03-01"),
        ] {
            assert_eq!(dates(text), [want], "{text}");
        }
    }

    #[test]
    fn chinese_and_iso_absolute_dates() {
        assert_eq!(dates("3月5日发的货"), ["2026-03-05"]);
        assert_eq!(dates("三月十五号"), ["2026-03-15"]);
        assert_eq!(dates("2025年12月1日"), ["2025-12-01"]);
        assert_eq!(dates("2026-03-05"), ["2026-03-05"]);
        assert_eq!(dates("２０２６/3/5"), ["2026-03-05"]);
        assert!(dates("2月30日").is_empty());
        assert!(dates("2026-13-01").is_empty());
    }

    #[test]
    fn english_dates() {
        for (text, want) in [
            ("can it arrive tomorrow?", "2026-03-06"),
            ("the day after tomorrow", "2026-03-07"),
            ("in 3 days", "2026-03-08"),
            ("next Monday", "2026-03-09"),
            ("on Friday", "2026-03-06"),
            ("this friday", "2026-03-06"),
            ("last monday", "2026-02-23"),
            ("March 5", "2026-03-05"),
            ("mar 15th", "2026-03-15"),
            ("5 March", "2026-03-05"),
            ("december 25, 2025", "2025-12-25"),
        ] {
            assert_eq!(dates(text), [want], "{text}");
        }
        // Words that merely contain a date word are not dates.
        assert!(dates("todays deal").is_empty());
        assert!(dates("may I ask").is_empty());
    }

    #[test]
    fn today_at_offset_is_plausible() {
        let d = today_at_offset(480);
        assert!(d.year() >= 2024, "{d}");
    }
}
