//! The lexicon scanner: longest-entry matching with negation and intensifier scope, and the
//! arousal cues of the raw text (see the [module docs](super) for the rules).

use std::collections::HashMap;
use std::sync::LazyLock;

use super::lexicon::{INTENSIFIERS, NEGATORS, TERMS};
use super::{EmotionLabel, SCOPE};
use crate::normalize::{is_cjk, normalize};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Term(EmotionLabel, f32),
    Negator,
    Intensifier(f32),
}

#[derive(Debug)]
struct Entry {
    phrase: String,
    kind: Kind,
}

/// Entries by first character, longest phrase first.
static ENTRIES: LazyLock<HashMap<char, Vec<Entry>>> = LazyLock::new(|| {
    let mut map: HashMap<char, Vec<Entry>> = HashMap::new();
    let all = TERMS
        .iter()
        .map(|&(p, l, w)| (p, Kind::Term(l, w)))
        .chain(NEGATORS.iter().map(|&p| (p, Kind::Negator)))
        .chain(INTENSIFIERS.iter().map(|&(p, f)| (p, Kind::Intensifier(f))));
    for (phrase, kind) in all {
        let phrase = normalize(phrase);
        if let Some(first) = phrase.chars().next() {
            map.entry(first).or_default().push(Entry { phrase, kind });
        }
    }
    for list in map.values_mut() {
        list.sort_by_key(|e| std::cmp::Reverse(e.phrase.len()));
    }
    map
});

fn is_latin(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

fn is_clause_break(c: char) -> bool {
    matches!(c, ',' | '.' | '!' | '?' | ';' | '、' | '。' | '~' | '\n')
}

/// The longest entry matching at `text[i..]`, respecting English word boundaries.
fn entry_at(text: &str, i: usize) -> Option<&'static Entry> {
    let rest = &text[i..];
    let first = rest.chars().next()?;
    let before_latin = text[..i].chars().next_back().is_some_and(is_latin);
    ENTRIES.get(&first)?.iter().find(|e| {
        if !rest.starts_with(&e.phrase) {
            return false;
        }
        let starts_latin = e.phrase.chars().next().is_some_and(is_latin);
        let ends_latin = e.phrase.chars().next_back().is_some_and(is_latin);
        let after_latin = rest[e.phrase.len()..].chars().next().is_some_and(is_latin);
        let glued = (starts_latin && before_latin) || (ends_latin && after_latin);
        !glued
    })
}

/// Lexicon scores per label (indexed like [`EmotionLabel::ALL`]; neutral stays 0), with
/// negation, intensifiers and arousal cues applied.
pub(crate) fn lexicon_scores(raw: &str) -> [f32; 5] {
    let text = normalize(raw);
    let mut scores = [0.0f32; 5];
    // Pending modifiers of the current clause: (unit index, kind).
    let mut pending: Vec<(usize, Kind)> = Vec::new();
    let mut unit = 0usize;
    let mut i = 0usize;
    while i < text.len() {
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        if let Some(entry) = entry_at(&text, i) {
            match entry.kind {
                Kind::Term(label, weight) => {
                    let in_scope = |u: usize| unit - u <= SCOPE;
                    let negations = pending
                        .iter()
                        .filter(|(u, k)| matches!(k, Kind::Negator) && in_scope(*u))
                        .count();
                    let factor: f32 = pending
                        .iter()
                        .filter(|(u, _)| in_scope(*u))
                        .filter_map(|(_, k)| match k {
                            Kind::Intensifier(f) => Some(*f),
                            _ => None,
                        })
                        .product::<f32>()
                        .clamp(0.3, 2.5);
                    let w = weight * factor;
                    match (negations % 2 == 1, label) {
                        // `不开心`, `not happy`: unhappy, a little weaker than `sad`.
                        (true, EmotionLabel::Joy) => {
                            scores[EmotionLabel::Sadness.index()] += 0.8 * w
                        }
                        // `没有不满意`, `not angry`: the negative term is cancelled.
                        (true, _) => {}
                        (false, l) => scores[l.index()] += w,
                    }
                    pending.clear();
                }
                kind => pending.push((unit, kind)),
            }
            unit += 1;
            i += entry.phrase.len();
            continue;
        }
        if is_clause_break(c) {
            pending.clear();
            i += c.len_utf8();
        } else if is_latin(c) {
            // Skip the rest of an unknown word: it is one unit.
            let len: usize = text[i..]
                .chars()
                .take_while(|&d| is_latin(d) || d == '\'')
                .map(char::len_utf8)
                .sum();
            i += len.max(c.len_utf8());
            unit += 1;
        } else {
            if !c.is_whitespace() {
                unit += 1;
            }
            i += c.len_utf8();
        }
    }
    apply_arousal(raw, &mut scores);
    scores
}

/// Adds the arousal cues of the raw text: repeated `!`/`?`, capitals, repetition.
fn apply_arousal(raw: &str, scores: &mut [f32; 5]) {
    let exclaim = longest_run(raw, |c| c == '!' || c == '！');
    let question = longest_run(raw, |c| c == '?' || c == '？');
    let exclaim_boost = 0.15 * exclaim.saturating_sub(1).min(4) as f32;
    let question_boost = 0.2 * question.saturating_sub(1).min(3) as f32;
    // "?!" / "？！" (in either order) is indignation, not a question: it counts like a
    // second exclamation mark and, without other evidence, reads as anger.
    let indignant = has_interrobang(raw);
    let exclaim_boost = if indignant {
        exclaim_boost.max(0.35)
    } else {
        exclaim_boost
    };
    let caps_boost = if shouting(raw) { 0.4 } else { 0.0 };
    let repeat_boost = if repetitive(raw) { 0.25 } else { 0.0 };

    let negative = [
        EmotionLabel::Anger,
        EmotionLabel::Anxiety,
        EmotionLabel::Sadness,
    ];
    let dominant_negative = negative
        .into_iter()
        .filter(|l| scores[l.index()] > 0.0)
        .max_by(|a, b| scores[a.index()].total_cmp(&scores[b.index()]));
    let joy = scores[EmotionLabel::Joy.index()];
    match dominant_negative {
        Some(l) if scores[l.index()] >= joy => {
            scores[l.index()] += exclaim_boost + question_boost + caps_boost + repeat_boost;
        }
        _ if joy > 0.0 => scores[EmotionLabel::Joy.index()] += exclaim_boost + repeat_boost,
        _ => {
            // No lexicon evidence: loudness reads as anger, insistence as impatience.
            scores[EmotionLabel::Anger.index()] += exclaim_boost + caps_boost;
            scores[EmotionLabel::Anxiety.index()] += question_boost + repeat_boost;
        }
    }
}

/// A question mark directly next to an exclamation mark, full- or half-width, either order.
fn has_interrobang(text: &str) -> bool {
    let is_q = |c: char| c == '?' || c == '？';
    let is_e = |c: char| c == '!' || c == '！';
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    chars
        .windows(2)
        .any(|w| (is_q(w[0]) && is_e(w[1])) || (is_e(w[0]) && is_q(w[1])))
}

fn longest_run(text: &str, pred: impl Fn(char) -> bool) -> usize {
    let (mut best, mut cur) = (0, 0);
    for c in text.chars() {
        if pred(c) {
            cur += 1;
            best = best.max(cur);
        } else if !c.is_whitespace() {
            cur = 0;
        }
    }
    best
}

/// At least 6 Latin letters, 70% or more of them capitals, and at least two words.
fn shouting(raw: &str) -> bool {
    let letters = raw.chars().filter(char::is_ascii_alphabetic).count();
    let upper = raw.chars().filter(char::is_ascii_uppercase).count();
    let words = raw
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 2)
        .count();
    letters >= 6 && words >= 2 && upper * 10 >= letters * 7
}

/// A letter or CJK character three times in a row (`啊啊啊`, `whyyy`), or a word or
/// two-character group repeated back to back (`快点快点`, `hello hello`).
fn repetitive(raw: &str) -> bool {
    let chars: Vec<char> = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if chars
        .windows(3)
        .any(|w| w[0] == w[1] && w[1] == w[2] && (w[0].is_alphabetic() || is_cjk(w[0])))
    {
        return true;
    }
    if chars
        .windows(4)
        .any(|w| w[0] == w[2] && w[1] == w[3] && w[0] != w[1] && is_cjk(w[0]) && is_cjk(w[1]))
    {
        return true;
    }
    let words: Vec<String> = raw
        .split(|c: char| !c.is_alphanumeric() || is_cjk(c))
        .filter(|w| w.len() >= 2)
        .map(str::to_lowercase)
        .collect();
    words.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_whole_english_words_only() {
        // `mad` is a term; `made` and `nomad` are not it.
        assert_eq!(lexicon_scores("they made it")[0], 0.0);
        assert_eq!(lexicon_scores("nomad life")[0], 0.0);
        assert!(lexicon_scores("i am mad")[0] > 0.0);
    }

    #[test]
    fn cues() {
        assert!(shouting("WHERE IS MY ORDER"));
        assert!(!shouting("USB cable"));
        assert!(repetitive("啊啊啊"));
        assert!(repetitive("快点快点"));
        assert!(repetitive("hello hello"));
        assert!(!repetitive("你好世界"));
        assert_eq!(longest_run("what?? really ? ? ?", |c| c == '?'), 3);
    }
}
