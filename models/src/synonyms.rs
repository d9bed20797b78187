//! Colloquial phrase → canonical phrase replacement, applied after [`normalize`].
//!
//! Bot designers list the colloquial ways users say something (`啥时候能到`, `咋退货`,
//! `wanna`) with the canonical phrasing their intent examples use (`什么时候到货`, `怎么退货`,
//! `want to`). Rewriting the user's text first lets a small example set cover slang it never
//! saw, and keeps the classifier's vocabulary small.
//!
//! Matching rules (the invariants tests check):
//! - Phrases and replacements are normalised with [`normalize`] when the table is built, so
//!   they match normalised user text whatever case or width the designer typed.
//! - Scanning goes left to right; at each position the **longest** phrase that matches wins,
//!   and the scan resumes after it. Replacements are not re-scanned, so rules never chain
//!   or loop.
//! - A phrase that starts (ends) with a Latin letter or digit only matches where the text has
//!   no Latin letter or digit just before (after) it: `u` → `you` must not turn `bug` into
//!   `byoug`. CJK phrases match anywhere, as Chinese has no spaces between words.
//!
//! [`normalize`]: crate::normalize

use std::borrow::Cow;
use std::collections::HashMap;

use crate::error::{ModelError, Result};
use crate::normalize::{is_cjk, normalize};

/// A phrase table: colloquial phrase → canonical phrase. Immutable once built; `Send + Sync`.
#[derive(Debug, Clone, Default)]
pub struct Synonyms {
    /// Entries grouped by the phrase's first character, each group sorted longest phrase
    /// first, so a lookup tries only phrases that can start at the current position and the
    /// first hit is the longest match.
    by_first: HashMap<char, Vec<Entry>>,
    /// Number of distinct phrases.
    len: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    phrase: String,
    replacement: String,
}

/// Whether `c` is a character of a space-delimited word (Latin letters, digits, ...).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

impl Synonyms {
    /// Builds the table from `(phrase, canonical)` pairs. Both sides are normalised; if a
    /// phrase is listed twice the later entry wins, as with a map.
    ///
    /// # Errors
    /// [`ModelError::EmptySynonym`] if a phrase is empty after normalisation (it would match
    /// everywhere). An empty replacement is allowed: it deletes the phrase (filler words).
    pub fn new<I, P, R>(entries: I) -> Result<Self>
    where
        I: IntoIterator<Item = (P, R)>,
        P: AsRef<str>,
        R: AsRef<str>,
    {
        let mut map: HashMap<String, String> = HashMap::new();
        for (index, (phrase, replacement)) in entries.into_iter().enumerate() {
            let key = normalize(phrase.as_ref());
            if key.is_empty() {
                return Err(ModelError::EmptySynonym {
                    index,
                    phrase: phrase.as_ref().to_owned(),
                });
            }
            map.insert(key, normalize(replacement.as_ref()));
        }
        let len = map.len();
        let mut by_first: HashMap<char, Vec<Entry>> = HashMap::new();
        for (phrase, replacement) in map {
            if let Some(first) = phrase.chars().next() {
                by_first.entry(first).or_default().push(Entry {
                    phrase,
                    replacement,
                });
            }
        }
        for group in by_first.values_mut() {
            // Longest first; ties broken by text so the order never depends on hashing.
            group.sort_by(|a, b| {
                b.phrase
                    .len()
                    .cmp(&a.phrase.len())
                    .then_with(|| a.phrase.cmp(&b.phrase))
            });
        }
        Ok(Self { by_first, len })
    }

    /// Number of phrases in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no phrases.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rewrites already-normalised `text`, replacing each matched phrase by its canonical
    /// form (longest match first, left to right). Borrows `text` when nothing matched.
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.by_first.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out: Option<String> = None;
        let mut prev: Option<char> = None;
        let mut pos = 0;
        // Everything before `copied` has already been written to `out` (when it exists).
        let mut copied = 0;
        while let Some(c) = text[pos..].chars().next() {
            if let Some(entry) = self.match_at(text, pos, c, prev) {
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
                buf.push_str(&text[copied..pos]);
                buf.push_str(&entry.replacement);
                pos += entry.phrase.len();
                copied = pos;
                prev = entry.phrase.chars().next_back();
            } else {
                pos += c.len_utf8();
                prev = Some(c);
            }
        }
        match out {
            Some(mut buf) => {
                buf.push_str(&text[copied..]);
                Cow::Owned(buf)
            }
            None => Cow::Borrowed(text),
        }
    }

    /// The longest entry matching `text` at byte offset `pos` (whose char is `c`, preceded by
    /// `prev`), honouring word boundaries for phrases with Latin edges.
    fn match_at(&self, text: &str, pos: usize, c: char, prev: Option<char>) -> Option<&Entry> {
        let group = self.by_first.get(&c)?;
        let rest = &text[pos..];
        group.iter().find(|entry| {
            if !rest.starts_with(entry.phrase.as_str()) {
                return false;
            }
            if is_word_char(c) && prev.is_some_and(is_word_char) {
                return false;
            }
            let last = entry.phrase.chars().next_back();
            let next = rest[entry.phrase.len()..].chars().next();
            !(last.is_some_and(is_word_char) && next.is_some_and(is_word_char))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> Synonyms {
        match Synonyms::new(pairs.iter().copied()) {
            Ok(t) => t,
            Err(e) => panic!("table should build: {e}"),
        }
    }

    #[test]
    fn longest_match_wins() {
        let t = table(&[
            ("啥时候", "什么时候"),
            ("啥时候能到", "什么时候到货"),
            ("啥", "什么"),
        ]);
        assert_eq!(t.apply("我的快递啥时候能到"), "我的快递什么时候到货");
        assert_eq!(t.apply("啥时候发货"), "什么时候发货");
        assert_eq!(t.apply("这是啥"), "这是什么");
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn replacements_do_not_chain() {
        let t = table(&[("a", "b"), ("b", "c")]);
        assert_eq!(t.apply("a b"), "b c");
    }

    #[test]
    fn latin_phrases_respect_word_boundaries() {
        let t = table(&[("u", "you"), ("wanna", "want to")]);
        assert_eq!(t.apply("bug u there"), "bug you there");
        assert_eq!(t.apply("i wanna refund"), "i want to refund");
        assert_eq!(t.apply("wannabe"), "wannabe");
        assert_eq!(t.apply("u"), "you");
        // Next to CJK characters a Latin phrase is still a whole word.
        assert_eq!(t.apply("谢谢u"), "谢谢you");
    }

    #[test]
    fn entries_are_normalised_and_unchanged_text_is_borrowed() {
        let t = table(&[("ＷＡＮＮＡ", "Want To")]);
        assert_eq!(t.apply("i wanna go"), "i want to go");
        assert!(matches!(t.apply("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(Synonyms::default().apply("x"), Cow::Borrowed(_)));
    }

    #[test]
    fn empty_phrase_is_rejected() {
        let err = Synonyms::new([("ok", "fine"), ("\u{200B} ", "x")]);
        assert!(matches!(
            err,
            Err(ModelError::EmptySynonym { index: 1, .. })
        ));
    }

    #[test]
    fn empty_replacement_deletes() {
        let t = table(&[("那个", "")]);
        assert_eq!(t.apply("那个我要退货"), "我要退货");
        assert_eq!(t.apply(""), "");
    }
}
