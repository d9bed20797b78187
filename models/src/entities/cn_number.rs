//! Numbers as users write them: Arabic (`1,200.50`), Chinese numerals (`两百`, `三百五十`,
//! `一千零五`, `一亿二千万`), the colloquial shortening (`三百五` = 350, `一千二` = 1200,
//! `两万三` = 23000) and Arabic with a Chinese multiplier (`1.5万` = 15000, `3千`, `2k`).
//!
//! Parsing is strict: anything that is not a well-formed number yields `None`, so a stray
//! `一` in `一下` never becomes 1 by accident (callers only try spans their regexes found).

/// The value of a Chinese digit character, if it is one.
fn cn_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' | '壹' => 1,
        '二' | '两' | '贰' => 2,
        '三' | '叁' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        _ => return None,
    })
}

/// The multiplier of a Chinese unit character below 万.
fn cn_small_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' | '拾' => 10,
        '百' | '佰' => 100,
        '千' | '仟' => 1000,
        _ => return None,
    })
}

/// The characters [`parse_cn_int`] understands, for building regex classes.
pub(crate) const CN_NUMERAL_CLASS: &str =
    "零〇一二两三四五六七八九十百千万亿壹贰叁肆伍陆柒捌玖拾佰仟";

/// Parses a whole string of Chinese numerals into an integer (see the module docs).
pub(crate) fn parse_cn_int(s: &str) -> Option<u64> {
    let mut total: u64 = 0; // completed 万/亿 groups
    let mut section: u64 = 0; // the current group below 万
    let mut digit: Option<u64> = None;
    // The unit just written and whether a 零 followed it: `三百五` means 350, but `三百零五`
    // means 305.
    let mut last_unit: u64 = 1;
    let mut zero_after_unit = false;
    let mut any = false;
    for c in s.chars() {
        any = true;
        if let Some(d) = cn_digit(c) {
            if d == 0 {
                zero_after_unit = true;
                if digit.is_some() {
                    return None;
                }
                continue;
            }
            if digit.is_some() {
                return None; // `一二`: two digits without a unit between them
            }
            digit = Some(d);
        } else if let Some(unit) = cn_small_unit(c) {
            // `十` alone or at the start means ten; other units need their digit.
            let d = match digit.take() {
                Some(d) => d,
                None if unit == 10 && section == 0 => 1,
                None => return None,
            };
            section = section.checked_add(d.checked_mul(unit)?)?;
            last_unit = unit;
            zero_after_unit = false;
        } else if c == '万' || c == '亿' {
            let group = section.checked_add(digit.take().unwrap_or(0))?;
            if c == '万' {
                if group == 0 {
                    return None;
                }
                total = total.checked_add(group.checked_mul(10_000)?)?;
                last_unit = 10_000;
            } else {
                let base = total.checked_add(group)?;
                if base == 0 {
                    return None;
                }
                total = base.checked_mul(100_000_000)?;
                last_unit = 100_000_000;
            }
            section = 0;
            zero_after_unit = false;
        } else {
            return None;
        }
    }
    if !any {
        return None;
    }
    let tail = match digit {
        Some(d) if last_unit >= 10 && !zero_after_unit => d.checked_mul(last_unit / 10)?,
        Some(d) => d,
        None => 0,
    };
    total.checked_add(section)?.checked_add(tail)
}

/// Parses an Arabic number with optional thousands commas and decimals (`1,200.50`).
pub(crate) fn parse_arabic(s: &str) -> Option<f64> {
    let plain: String = s.chars().filter(|&c| c != ',').collect();
    if plain.is_empty() || plain.starts_with('.') || plain.ends_with('.') {
        return None;
    }
    plain.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses a number as written before a currency: Arabic or Chinese numerals, optionally
/// followed by a multiplier (`万`, `千`, `百`, `k`, `w`).
pub(crate) fn parse_amount_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        let (num, mult) = match s.char_indices().last() {
            Some((i, '万' | 'w')) => (&s[..i], 10_000.0),
            Some((i, '千' | 'k')) => (&s[..i], 1_000.0),
            Some((i, '百')) => (&s[..i], 100.0),
            _ => (s, 1.0),
        };
        return parse_arabic(num.trim()).map(|v| v * mult);
    }
    parse_cn_int(s).map(|v| v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_numerals() {
        for (s, v) in [
            ("十", 10),
            ("十五", 15),
            ("二十", 20),
            ("两百", 200),
            ("三百五十", 350),
            ("三百五", 350),
            ("三百零五", 305),
            ("一千二", 1200),
            ("一千零二十", 1020),
            ("两万三", 23_000),
            ("一万五千", 15_000),
            ("一亿二千万", 120_000_000),
            ("九", 9),
            ("零", 0),
        ] {
            assert_eq!(parse_cn_int(s), Some(v), "{s}");
        }
        for bad in ["", "一二", "百", "万", "三x", "一百二三"] {
            assert_eq!(parse_cn_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn amount_numbers() {
        assert_eq!(parse_amount_number("1.5万"), Some(15_000.0));
        assert_eq!(parse_amount_number("1,200.50"), Some(1200.5));
        assert_eq!(parse_amount_number("2k"), Some(2000.0));
        assert_eq!(parse_amount_number("两百"), Some(200.0));
        assert_eq!(parse_amount_number("1..5"), None);
        assert_eq!(parse_amount_number("."), None);
    }
}
