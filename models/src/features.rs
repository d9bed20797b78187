//! Text → sparse feature vector, by feature hashing.
//!
//! What a text is turned into (after [`normalize`](crate::normalize)):
//! - **CJK runs** (Chinese has no spaces): character n-grams of length 1 to
//!   `cjk_ngram_max` (unigrams, bigrams, trigrams by default) within the run, and, when
//!   `cjk_words` is on, the run's words as segmented by jieba (its shipped dictionary plus
//!   its HMM for unknown words) with adjacent-word bigrams. Character n-grams are robust to
//!   segmentation mistakes and new words; words add the boundaries n-grams cannot see
//!   (`不要` the word vs `不` + `要` straddling two words) at the cost of a few µs per query.
//! - **Latin words** (letters and digits; an apostrophe between letters stays inside):
//!   the word itself, the pair with the previous word (word bigrams), and character n-grams
//!   of the word padded with boundary markers (`<card>` → `<ca`, `car`, `ard`, `rd>`, ...),
//!   lengths `char_ngram_min..=char_ngram_max`, which make the model robust to typos and
//!   inflections (`refund`/`refunded`).
//! - Every digit is mapped to `0` first: order numbers and amounts are entity values, and
//!   the shape (`0000000`) generalises where the value would not. A Latin word of 6 or more
//!   characters with a digit in it (an order number, a phone or card number) becomes one
//!   `<#id>` word feature with no character n-grams, so an identifier weighs like a word.
//!
//! Each feature is hashed (a fixed, platform-independent 64-bit hash, seeded per feature
//! kind so a word and an identical character n-gram never share a slot) into
//! `2^hash_bits` buckets. Repeated features are counted; the output is sorted by bucket,
//! one entry per bucket, with sublinear term frequency `1 + ln(count)`. IDF weighting and
//! L2 normalisation happen in the model, which owns the document frequencies.
//!
//! Cost is linear in the text's length; no input can make it panic.

use std::sync::LazyLock;

use jieba_rs::Jieba;

use crate::normalize::is_cjk;

/// The segmenter, built once per process on first use (loading the dictionary takes a
/// fraction of a second; every classifier shares it, and it is read-only afterwards).
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Loads the Chinese segmenter now rather than on the first Chinese text, so that the
/// dictionary load does not land on a user's turn (call it at start-up; idempotent).
pub fn warm_up_segmenter() {
    LazyLock::force(&JIEBA);
}

/// Feature-kind seeds: distinct, arbitrary odd constants.
const NS_CJK: u64 = 0x243F_6A88_85A3_08D3;
const NS_WORD: u64 = 0x1319_8A2E_0370_7345;
const NS_BIGRAM: u64 = 0xA409_3822_299F_31D1;
const NS_CHAR: u64 = 0x082E_FA98_EC4E_6C89;
const NS_ZH_WORD: u64 = 0x4528_21E6_38D0_1377;
const NS_ZH_BIGRAM: u64 = 0xBE54_66CF_34E9_0C6C;
/// Multiplier of the per-character hashing step (golden-ratio constant: spreads every input
/// bit over the high bits, which are the ones kept).
const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The featurisation settings, copied out of [`ClassifierConfig`](crate::ClassifierConfig)
/// and validated there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Featurizer {
    pub(crate) hash_bits: u32,
    pub(crate) char_ngram_min: usize,
    pub(crate) char_ngram_max: usize,
    pub(crate) cjk_ngram_max: usize,
    pub(crate) word_bigrams: bool,
    pub(crate) cjk_words: bool,
}

/// A featurised text: `(bucket, sublinear tf)` sorted by bucket, buckets unique.
pub(crate) type SparseCounts = Vec<(u32, f32)>;

impl Featurizer {
    /// Number of hash buckets.
    pub(crate) fn n_buckets(&self) -> usize {
        1usize << self.hash_bits
    }

    /// Featurises `text` into `(bucket, 1 + ln(count))` pairs sorted by bucket.
    pub(crate) fn extract(&self, text: &str) -> SparseCounts {
        let chars: Vec<char> = text
            .chars()
            .map(|c| if c.is_ascii_digit() { '0' } else { c })
            .collect();
        let mut buckets: Vec<u32> = Vec::with_capacity(chars.len() * 4 + 4);
        let mut word: Vec<char> = Vec::with_capacity(32);
        // Hash of the previous Latin word, for bigrams; reset at punctuation and CJK runs.
        let mut prev_word: Option<u64> = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if is_cjk(c) {
                let start = i;
                while i < chars.len() && is_cjk(chars[i]) {
                    i += 1;
                }
                self.cjk_ngrams(&chars[start..i], &mut buckets);
                if self.cjk_words && i - start > 1 {
                    self.cjk_words(&chars[start..i], &mut buckets);
                }
                prev_word = None;
            } else if c.is_alphanumeric() {
                word.clear();
                word.push('<');
                while i < chars.len() {
                    let d = chars[i];
                    let inner_apostrophe = d == '\''
                        && chars
                            .get(i + 1)
                            .is_some_and(|n| n.is_alphanumeric() && !is_cjk(*n));
                    if (d.is_alphanumeric() && !is_cjk(d)) || inner_apostrophe {
                        word.push(d);
                        i += 1;
                    } else {
                        break;
                    }
                }
                word.push('>');
                // An identifier (order number, phone, card: 6+ characters with a digit) is
                // one feature, its shape, without character n-grams: otherwise its many
                // n-grams (`<a0`, `a00`, `000`, ...) outweigh the words around it and every
                // message with an order number looks like the intents whose examples had one.
                let is_identifier = word.len() >= 8 && word.contains(&'0');
                if is_identifier {
                    word.clear();
                    word.extend("<#id>".chars());
                }
                let h = hash_chars(NS_WORD, &word);
                buckets.push(self.bucket(h));
                if let (true, Some(p)) = (self.word_bigrams, prev_word) {
                    buckets.push(self.bucket(mix(mix(NS_BIGRAM, p), h)));
                }
                prev_word = Some(h);
                if !is_identifier {
                    self.char_ngrams(&word, &mut buckets);
                }
            } else {
                if !c.is_whitespace() {
                    prev_word = None;
                }
                i += 1;
            }
        }
        buckets.sort_unstable();
        let mut out: SparseCounts = Vec::with_capacity(buckets.len());
        let mut k = 0;
        while k < buckets.len() {
            let b = buckets[k];
            let mut n = 1usize;
            while k + n < buckets.len() && buckets[k + n] == b {
                n += 1;
            }
            out.push((b, 1.0 + (n as f32).ln()));
            k += n;
        }
        out
    }

    fn cjk_ngrams(&self, run: &[char], out: &mut Vec<u32>) {
        for n in 1..=self.cjk_ngram_max.min(run.len()) {
            for gram in run.windows(n) {
                out.push(self.bucket(hash_chars(NS_CJK, gram)));
            }
        }
    }

    /// Jieba's words of one CJK run, and the pairs of adjacent words.
    fn cjk_words(&self, run: &[char], out: &mut Vec<u32>) {
        let text: String = run.iter().collect();
        let mut prev: Option<u64> = None;
        for word in JIEBA.cut(&text, true) {
            let chars: Vec<char> = word.chars().collect();
            let h = hash_chars(NS_ZH_WORD, &chars);
            // Single characters are already unigram features; only their bigrams add.
            if chars.len() > 1 {
                out.push(self.bucket(h));
            }
            if let Some(p) = prev {
                out.push(self.bucket(mix(mix(NS_ZH_BIGRAM, p), h)));
            }
            prev = Some(h);
        }
    }

    fn char_ngrams(&self, padded: &[char], out: &mut Vec<u32>) {
        for n in self.char_ngram_min..=self.char_ngram_max.min(padded.len()) {
            for gram in padded.windows(n) {
                out.push(self.bucket(hash_chars(NS_CHAR, gram)));
            }
        }
    }

    /// Keeps the top `hash_bits` bits, the best mixed ones.
    fn bucket(&self, h: u64) -> u32 {
        // `hash_bits` is validated to 10..=24, so the shift is in range and the result fits.
        (h >> (64 - self.hash_bits)) as u32
    }
}

fn mix(h: u64, v: u64) -> u64 {
    fmix64((h ^ v).wrapping_mul(STEP))
}

fn hash_chars(seed: u64, chars: &[char]) -> u64 {
    let mut h = seed;
    for &c in chars {
        h = (h ^ u64::from(c)).wrapping_mul(STEP);
        h ^= h >> 29;
    }
    fmix64(h ^ chars.len() as u64)
}

/// MurmurHash3's 64-bit finaliser: full avalanche, so any bit range is usable.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fz() -> Featurizer {
        Featurizer {
            hash_bits: 18,
            char_ngram_min: 3,
            char_ngram_max: 5,
            cjk_ngram_max: 3,
            word_bigrams: true,
            cjk_words: false,
        }
    }

    #[test]
    fn cjk_words_add_segmented_words() {
        let with_words = Featurizer {
            cjk_words: true,
            ..fz()
        };
        // 我想退款: 4 + 3 + 2 n-grams; jieba gives 我 / 想 / 退款 → one multi-char word
        // and two bigrams.
        let plain = total(&fz().extract("我想退款"));
        let more = total(&with_words.extract("我想退款"));
        assert_eq!(plain, 9);
        assert_eq!(more, 12, "{:?}", JIEBA.cut("我想退款", true));
        // Latin text is unaffected.
        assert_eq!(fz().extract("refund"), with_words.extract("refund"));
    }

    fn total(v: &SparseCounts) -> usize {
        // Undo the sublinear tf to count raw features (exact for counts of 1 and 2).
        v.iter()
            .map(|(_, tf)| (tf - 1.0).exp().round() as usize)
            .sum()
    }

    #[test]
    fn cjk_counts_unigrams_bigrams_trigrams() {
        // 4 chars: 4 unigrams + 3 bigrams + 2 trigrams.
        assert_eq!(total(&fz().extract("退款多久")), 9);
    }

    #[test]
    fn english_word_features() {
        // `<hi>`: word + 3-grams `<hi`, `hi>` + 4-gram `<hi>` = 4 features.
        assert_eq!(total(&fz().extract("hi")), 4);
        // Two words add one bigram.
        assert_eq!(total(&fz().extract("hi hi")), 9);
    }

    #[test]
    fn output_is_sorted_unique_and_in_range() {
        let v = fz().extract("where is my order 12345? 我的快递啥时候到 don't worry");
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            v.iter()
                .all(|(b, tf)| (*b as usize) < fz().n_buckets() && *tf >= 1.0)
        );
    }

    #[test]
    fn digits_share_a_shape() {
        assert_eq!(fz().extract("order 12345"), fz().extract("order 98765"));
    }

    #[test]
    fn odd_input_yields_no_or_few_features() {
        assert!(fz().extract("").is_empty());
        assert!(fz().extract("😀🙏!!! ...").is_empty());
        assert!(fz().extract("\u{0}\u{1}\u{7f}").is_empty());
        let long = "abc 你好 ".repeat(2_000);
        assert!(!fz().extract(&long).is_empty());
    }

    /// `hash_chars(NS_WORD, "<a>")` as computed when the scheme was written.
    const PINNED_WORD_A: u64 = 8_920_466_374_438_555_776;

    #[test]
    fn hashing_is_stable() {
        // Feature hashing must not change between builds or platforms: models are retrained
        // at load, but tests and evaluation figures rely on stable buckets.
        assert_eq!(hash_chars(NS_WORD, &['<', 'a', '>']), PINNED_WORD_A);
        assert_ne!(
            hash_chars(NS_WORD, &['a', 'b']),
            hash_chars(NS_CHAR, &['a', 'b'])
        );
        assert_ne!(
            hash_chars(NS_CJK, &['a', 'b']),
            hash_chars(NS_CJK, &['b', 'a'])
        );
    }
}
