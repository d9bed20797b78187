//! Text analysis shared by indexing and querying: word segmentation for BM25 and character
//! n-grams for the similarity signal.
//!
//! Invariant: the index and the queries go through exactly the same functions here, so a term
//! produced at query time is spelt the way it was indexed. Text is NFKC-normalised (full-width
//! Latin and digits become ASCII) and lower-cased first.
//!
//! - **Words** ([`WordTokenizer`], a tantivy `Tokenizer`): Han runs are segmented with jieba in
//!   search mode (which also emits the shorter words inside long compounds, so "退货运费" matches
//!   "运费"), Latin/digit runs are split into words; a short list of function words is dropped.
//!   English stemming is applied after this tokenizer by tantivy's `Stemmer` filter.
//! - **Character n-grams** ([`char_grams`]): for Han text, single characters and bigrams; for
//!   Latin words, 3-grams of the word padded with spaces (sklearn's `char_wb`) plus the whole
//!   word. They survive typos, missing segmentation and colloquial spellings that defeat words.

use std::sync::LazyLock;

use jieba_rs::Jieba;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use unicode_normalization::UnicodeNormalization;

/// jieba's dictionary takes a noticeable time to load; one per process is enough.
static JIEBA: LazyLock<Jieba> = LazyLock::new(|| {
    let mut j = Jieba::new();
    for w in DOMAIN_WORDS {
        // A high frequency makes the segmenter prefer these words where the general
        // dictionary cuts them wrongly ("退货运费" → 退 / 货运费 without this).
        j.add_word(w, Some(100_000), None);
    }
    j
});

/// Customer-service words the general dictionary segments badly or ranks too low.
const DOMAIN_WORDS: &[&str] = &[
    "退货",
    "退款",
    "换货",
    "运费",
    "邮费",
    "包邮",
    "发货",
    "签收",
    "快递",
    "物流",
    "发票",
    "开票",
    "专票",
    "花呗",
    "分期",
    "售后",
    "价保",
    "差价",
    "尺码",
    "优惠券",
    "积分",
    "注销",
    "到账",
    "催件",
    "收货",
    "下单",
    "拒收",
    "补发",
    "漏发",
    "发错",
    "运费险",
    "抬头",
    "税号",
];

/// Words too common to carry meaning in a support question. Kept short on purpose: BM25's
/// inverse document frequency already discounts common words, and over-eager lists drop words
/// that do matter here ("not", "can").
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "am", "was", "be", "to", "of", "in", "on", "at", "for", "i",
    "me", "my", "it", "its", "do", "does", "did", "and", "or", "you", "your", "this", "that",
    "with", "s", "t", "的", "了", "吗", "呢", "吧", "啊", "呀", "嘛", "么", "哦", "我", "你", "是",
    "请问", "一下",
];

/// True for CJK unified ideographs (the blocks in everyday use).
pub(crate) fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

/// NFKC and lower case: the form every other function here works on.
pub(crate) fn normalize(text: &str) -> String {
    text.nfkc().collect::<String>().to_lowercase()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Han,
    Word,
    Other,
}

fn class(c: char) -> Run {
    if is_han(c) {
        Run::Han
    } else if c.is_alphanumeric() {
        Run::Word
    } else {
        Run::Other
    }
}

/// Splits normalised text into maximal runs of Han characters and of other letters/digits;
/// separators are dropped.
fn runs(text: &str) -> impl Iterator<Item = (Run, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            let first = rest.chars().next()?;
            let kind = class(first);
            let end = rest
                .char_indices()
                .find(|&(_, c)| class(c) != kind)
                .map_or(rest.len(), |(i, _)| i);
            let (run, tail) = rest.split_at(end);
            rest = tail;
            if kind != Run::Other {
                return Some((kind, run));
            }
        }
    })
}

/// The words of `text` (normalised, function words removed, not yet stemmed).
pub(crate) fn words(text: &str) -> Vec<String> {
    let norm = normalize(text);
    let mut out = Vec::new();
    for (kind, run) in runs(&norm) {
        match kind {
            Run::Han => {
                for w in JIEBA.cut_for_search(run, true) {
                    if !w.trim().is_empty() && !STOP_WORDS.contains(&w) {
                        out.push(w.to_owned());
                    }
                }
            }
            Run::Word => {
                if !STOP_WORDS.contains(&run) {
                    out.push(run.to_owned());
                }
            }
            Run::Other => {}
        }
    }
    out
}

/// The tantivy tokenizer over [`words`]. Registered under [`WordTokenizer::NAME`] with a
/// stemming filter after it.
#[derive(Clone, Default)]
pub(crate) struct WordTokenizer;

impl WordTokenizer {
    /// The name the schema refers to.
    pub(crate) const NAME: &'static str = "kefu_words";
}

/// A token stream over words computed up front (segmentation needs the whole run anyway).
pub(crate) struct WordStream {
    tokens: Vec<Token>,
    /// Index of the current token plus one; 0 before the first `advance`.
    next: usize,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        let tokens = words(text)
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                // Offsets are only used for highlighting, which we do not do; positions matter
                // for phrase queries, which we do not issue either, but keep them honest.
                offset_from: 0,
                offset_to: 0,
                position,
                text,
                position_length: 1,
            })
            .collect();
        WordStream { tokens, next: 0 }
    }
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        // `advance` returned true before any call that reaches here (tantivy's contract); the
        // fallback keeps a contract breach from panicking.
        static EMPTY: LazyLock<Token> = LazyLock::new(Token::default);
        self.next
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .unwrap_or(&EMPTY)
    }

    fn token_mut(&mut self) -> &mut Token {
        if self.tokens.is_empty() {
            self.tokens.push(Token::default());
        }
        let i = self.next.saturating_sub(1).min(self.tokens.len() - 1);
        &mut self.tokens[i]
    }
}

/// FNV-1a over the UTF-8 bytes: n-grams are only compared for equality, so a 64-bit hash
/// stands in for the string (collisions are negligible at knowledge-base sizes).
fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so that ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The character n-grams of `text`, hashed, with repetitions (term frequency matters).
pub(crate) fn char_grams(text: &str) -> Vec<u64> {
    let norm = normalize(text);
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    for (kind, run) in runs(&norm) {
        match kind {
            Run::Han => {
                let chars: Vec<char> = run.chars().collect();
                for (i, c) in chars.iter().enumerate() {
                    out.push(hash(&["1", c.encode_utf8(&mut buf)]));
                    if let Some(next) = chars.get(i + 1) {
                        let pair: String = [*c, *next].iter().collect();
                        out.push(hash(&["2", &pair]));
                    }
                }
            }
            Run::Word => {
                out.push(hash(&["w", run]));
                let padded: Vec<char> = std::iter::once(' ')
                    .chain(run.chars())
                    .chain(std::iter::once(' '))
                    .collect();
                for n in [3, 4] {
                    for w in padded.windows(n) {
                        let gram: String = w.iter().collect();
                        out.push(hash(&["n", &gram]));
                    }
                }
            }
            Run::Other => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_segment_chinese_and_split_english() {
        let w = words("退货运费谁出？Can I return ＡＢＣ-123 shoes");
        assert!(w.contains(&"退货".to_owned()), "{w:?}");
        assert!(w.contains(&"运费".to_owned()), "{w:?}");
        assert!(w.contains(&"abc".to_owned()), "{w:?}");
        assert!(w.contains(&"123".to_owned()), "{w:?}");
        assert!(
            !w.contains(&"i".to_owned()),
            "stop words are dropped: {w:?}"
        );
    }

    #[test]
    fn tokenizer_streams_every_word_once() {
        let mut t = WordTokenizer;
        let mut s = t.token_stream("啥时候发货 ship");
        let mut seen = Vec::new();
        while s.advance() {
            seen.push(s.token().text.clone());
        }
        assert_eq!(seen, words("啥时候发货 ship"));
        assert!(!s.advance());
    }

    #[test]
    fn grams_tolerate_typos() {
        let a: std::collections::HashSet<u64> = char_grams("shipping").into_iter().collect();
        let b: std::collections::HashSet<u64> = char_grams("shiping").into_iter().collect();
        assert!(a.intersection(&b).count() >= 4);
        assert!(char_grams("  ,,, ").is_empty());
    }
}
