//! Text normalisation and language detection: the first step on every user turn.
//!
//! [`normalize`] maps the many ways users type the same thing onto one form, so that the
//! classifier, synonyms and rules see a single spelling:
//!
//! 1. Unicode NFKC: full-width Latin letters, digits and punctuation become half-width
//!    (`ＡＢＣ１２３` → `ABC123`, `，` → `,`), compatibility ideographs become their unified form.
//! 2. Invisible characters are removed: zero-width spaces and joiners, BOM, soft hyphen,
//!    bidirectional controls, variation selectors and other control characters. They are
//!    used (sometimes on purpose) to dodge keyword filters and would split n-grams.
//! 3. Lowercasing (`char::to_lowercase`, which is Unicode case folding for every script we
//!    serve; `ß` stays `ß`).
//! 4. Every run of whitespace becomes one ASCII space; leading and trailing space is trimmed.
//!
//! Invariants: the output never contains control or zero-width characters, never has two
//! spaces in a row and never starts or ends with a space; `normalize(normalize(x)) ==
//! normalize(x)`. The caller keeps the original text (for display and storage).
//!
//! [`detect_lang`] decides between Chinese and English from the share of CJK characters
//! against Latin words; see its docs for how mixed text is judged.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Normalises user text for matching: NFKC, invisible characters removed, lowercased,
/// whitespace collapsed and trimmed. See the module docs for the exact steps.
///
/// ```
/// assert_eq!(kefu_models::normalize("  ＡＢＣ１２３\u{200B} Hello\t\tWorld "), "abc123 hello world");
/// ```
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // `pending_space` delays emitting a space until a visible character follows, which both
    // collapses runs and trims the end without a second pass.
    let mut pending_space = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else if !is_invisible(c) {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            // Most characters lowercase to themselves or one char; `extend` handles the rest
            // (e.g. `İ` → `i̇`).
            out.extend(c.to_lowercase());
        }
    };
    if text.is_ascii() {
        // NFKC is the identity on ASCII: skip the decomposition machinery on the common path.
        for c in text.chars() {
            push(c, &mut out);
        }
    } else {
        for c in text.nfkc() {
            push(c, &mut out);
        }
    }
    out
}

/// Whether `c` is a character users cannot see and that carries no meaning for matching:
/// control characters (whitespace excepted, handled by the caller), zero-width characters,
/// the BOM, soft hyphen, bidirectional marks and variation selectors.
pub(crate) fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'                      // soft hyphen
            | '\u{034F}'                    // combining grapheme joiner
            | '\u{061C}'                    // Arabic letter mark
            | '\u{180E}'                    // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'       // zero-width space/non-joiner/joiner, LRM, RLM
            | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
            | '\u{2066}'..='\u{206F}'       // bidi isolates, deprecated format chars
            | '\u{FE00}'..='\u{FE0F}'       // variation selectors
            | '\u{FEFF}'                    // BOM / zero-width no-break space
            | '\u{E0000}'..='\u{E007F}' // tag characters
        )
}

/// Whether `c` is a CJK character written without spaces between words (Han ideographs,
/// kana, Hangul syllables). Such text is featurised by character n-grams instead of words.
pub fn is_cjk(c: char) -> bool {
    matches!(
        c,
        '\u{3040}'..='\u{30FF}'       // hiragana, katakana
        | '\u{3400}'..='\u{4DBF}'     // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'     // CJK unified ideographs
        | '\u{AC00}'..='\u{D7AF}'     // Hangul syllables
        | '\u{F900}'..='\u{FAFF}'     // CJK compatibility ideographs
        | '\u{20000}'..='\u{3134F}' // CJK extensions B–G
    )
}

/// The languages kefu's shipped models understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese (simplified or traditional).
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 code: `"zh"` or `"en"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Detects whether `text` is Chinese or English, falling back to [`Lang::Zh`] (kefu's
/// primary market) when the text has neither CJK characters nor Latin letters.
///
/// See [`detect_lang_or`] for the rule and for choosing another fallback.
pub fn detect_lang(text: &str) -> Lang {
    detect_lang_or(text, Lang::Zh)
}

/// Detects whether `text` is Chinese or English; `fallback` is returned for text with
/// neither CJK characters nor Latin letters (digits, emoji, punctuation, empty). A session
/// would pass the language of its previous turn.
///
/// Rule: one CJK character weighs 1, one Latin word weighs 1.5 (a Chinese word is about
/// 1.5 characters long), and the heavier side wins; a tie goes to Chinese. So
/// `我的iphone坏了` is Chinese (4 vs 1.5), `refund please 谢谢` is English (3 vs 2), and a
/// Chinese sentence quoting a product name stays Chinese.
pub fn detect_lang_or(text: &str, fallback: Lang) -> Lang {
    let mut cjk = 0usize;
    let mut latin_words = 0usize;
    let mut in_word = false;
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
            in_word = false;
        } else if c.is_alphabetic() {
            if !in_word {
                latin_words += 1;
                in_word = true;
            }
        } else {
            // Digits and apostrophes continue a word (`don't`, `mp3`) but do not start one.
            in_word = in_word && (c.is_ascii_digit() || c == '\'');
        }
    }
    if cjk == 0 && latin_words == 0 {
        return fallback;
    }
    // Compare 2·cjk with 3·words: integer form of cjk vs 1.5·words.
    if 2 * cjk >= 3 * latin_words {
        Lang::Zh
    } else {
        Lang::En
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_becomes_half_width() {
        assert_eq!(normalize("ＡＢＣ１２３"), "abc123");
        assert_eq!(normalize("你好，世界！"), "你好,世界!");
    }

    #[test]
    fn zero_width_and_controls_are_removed() {
        assert_eq!(normalize("退\u{200B}款\u{200D}"), "退款");
        assert_eq!(normalize("\u{FEFF}hi\u{00AD}there\u{0007}"), "hithere");
        assert_eq!(normalize("a\u{202E}b\u{2066}c"), "abc");
    }

    #[test]
    fn case_is_folded_and_whitespace_collapsed() {
        assert_eq!(normalize("  Hello \t\n WORLD  "), "hello world");
        assert_eq!(normalize("ÀÉÎ Straße"), "àéî straße");
        assert_eq!(normalize("\u{3000}全角\u{3000}空格\u{3000}"), "全角 空格");
    }

    #[test]
    fn odd_input_is_safe() {
        assert_eq!(normalize(""), "");
        assert_eq!(normalize(" \t\u{200B}\n"), "");
        assert_eq!(normalize("😀🙏"), "😀🙏");
        let long = "ａ".repeat(10_000);
        assert_eq!(normalize(&long), "a".repeat(10_000));
    }

    #[test]
    fn normalize_is_idempotent() {
        for s in [
            "ＡＢＣ　ｄｅｆ",
            "İstanbul",
            "ﬁle ㎏ ①",
            "  x\u{200B}  y ",
            "Ǆ ǅ ǆ",
        ] {
            let once = normalize(s);
            assert_eq!(normalize(&once), once, "input {s:?}");
        }
    }

    #[test]
    fn language_detection() {
        assert_eq!(detect_lang("我的快递啥时候能到"), Lang::Zh);
        assert_eq!(detect_lang("where is my parcel"), Lang::En);
        assert_eq!(detect_lang("我的iphone坏了"), Lang::Zh);
        assert_eq!(detect_lang("refund please 谢谢"), Lang::En);
        assert_eq!(detect_lang("ok 谢谢"), Lang::Zh);
        assert_eq!(detect_lang("my order 12345 还没有到"), Lang::Zh);
        assert_eq!(detect_lang(""), Lang::Zh);
        assert_eq!(detect_lang_or("12345 😀", Lang::En), Lang::En);
        assert_eq!(detect_lang_or("   ", Lang::En), Lang::En);
    }

    #[test]
    fn lang_serialises_as_code() {
        assert_eq!(
            serde_json::to_string(&Lang::Zh).ok().as_deref(),
            Some("\"zh\"")
        );
        assert_eq!(Lang::En.to_string(), "en");
    }
}
